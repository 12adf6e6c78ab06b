/*
 * report.c - xen-blkbench results: a line-oriented text report ("<section>
 * key=value ...", one section per line, "sha256 <hex>" on its own line) or
 * one JSON object (--json), and the exit code.  Formats are documented in
 * man/xen-blkbench.8 and are an interface (tests and the demo parse them).
 */
#include "dev.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <string.h>

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static const char *protocol_name(const struct bb_dev *d)
{
    return d->protocol ? d->protocol : "native";
}

int report_exit_code(struct bb_dev *d)
{
    const struct bb_result *r = &d->res;
    if (d->fatal || r->failure[0] || r->mismatches || r->unexpected || r->protocol_errors ||
        r->gnt_end_failures || r->gnt_leaked)
        return 1;
    if (d->o->sha256 && !r->sha_done)
        return 1;
    if (d->o->expect == BB_EXPECT_OK && d->o->sha256 && !r->sha_ok)
        return 1;
    return 0;
}

static void result_text(struct bb_dev *d, char *buf, size_t len)
{
    const struct bb_result *r = &d->res;
    if (!report_exit_code(d)) {
        snprintf(buf, len, "ok");
        return;
    }
    size_t off = snprintf(buf, len, "FAIL");
#define ADD(cond, ...) do { if ((cond) && off < len) off += snprintf(buf + off, len - off, __VA_ARGS__); } while (0)
    ADD(r->mismatches, " mismatches=%" PRIu64, r->mismatches);
    ADD(r->unexpected, " unexpected-status=%" PRIu64, r->unexpected);
    ADD(r->protocol_errors, " protocol-errors=%" PRIu64, r->protocol_errors);
    ADD(r->gnt_end_failures, " grant-end-failures=%" PRIu64, r->gnt_end_failures);
    ADD(r->gnt_leaked, " grants-leaked=%" PRIu64, r->gnt_leaked);
    ADD(r->failure[0], " error=\"%s\"", r->failure);
#undef ADD
}

void report_text(struct bb_dev *d, FILE *f)
{
    const struct bb_opts *o = d->o;
    const struct bb_result *r = &d->res;
    if (d->sectors || d->connected)
        fprintf(f, "device domid=%u devid=%u vdev=%s backend-domid=%u protocol=%s sectors=%" PRIu64
                " sector-size=%" PRIu64 " physical-sector-size=%" PRIu64 " info=%" PRIu64
                " ring-order=%u queues=%u max-indirect-segs=%u persistent=%d flush=%d barrier=%d"
                " discard=%d discard-granularity=%" PRIu64 " discard-alignment=%" PRIu64
                " discard-secure=%d\n",
                o->domid, o->devid, o->vdev, o->be_domid, protocol_name(d), d->sectors, d->sector_size,
                d->phys_sector_size, d->info, d->ring_order, d->nq, d->max_indirect, d->persistent,
                d->flush, d->barrier, d->discard, d->discard_gran, d->discard_align, d->discard_secure);
    if (r->sha_done)
        fprintf(f, "sha256 %s\n", r->sha_hex);
    if (o->rw != BB_RW_NONE && r->elapsed_s > 0) {
        double el = r->elapsed_s;
        fprintf(f, "workload rw=%s bs=%u-%u iodepth=%u runtime=%.3f ops=%" PRIu64 " reads=%" PRIu64
                " writes=%" PRIu64 " read-bytes=%" PRIu64 " write-bytes=%" PRIu64 "\n",
                bb_rw_name(o->rw), o->bs_min, o->bs_max, o->iodepth, el, r->ops, r->rd_ops, r->wr_ops,
                r->rd_bytes, r->wr_bytes);
        fprintf(f, "throughput iops=%.1f MB/s=%.2f read-MB/s=%.2f write-MB/s=%.2f\n", (double)r->ops / el,
                (double)(r->rd_bytes + r->wr_bytes) / el / 1e6, (double)r->rd_bytes / el / 1e6,
                (double)r->wr_bytes / el / 1e6);
        const struct bb_hist *h = &r->lat;
        fprintf(f, "latency-us min=%.1f p50=%.1f p99=%.1f p99.9=%.1f max=%.1f mean=%.1f\n",
                h->count ? us(h->min) : 0.0, us(bb_hist_quantile(h, 0.5)), us(bb_hist_quantile(h, 0.99)),
                us(bb_hist_quantile(h, 0.999)), us(h->max), h->count ? us(h->sum / h->count) : 0.0);
    }
    fprintf(f, "status requests=%" PRIu64 " okay=%" PRIu64 " error=%" PRIu64 " eopnotsupp=%" PRIu64
            " other=%" PRIu64 " unexpected=%" PRIu64 " protocol-errors=%" PRIu64 " grant-end-failures=%" PRIu64
            "\n", r->requests, r->st_okay, r->st_error, r->st_eopnotsupp, r->st_other, r->unexpected,
            r->protocol_errors, r->gnt_end_failures);
    if (o->verify)
        fprintf(f, "verify sectors=%" PRIu64 " mismatches=%" PRIu64 "\n", r->verified_sectors, r->mismatches);
    if (o->flush)
        fprintf(f, "flush op=%s status=%s\n", r->flush_op ? r->flush_op : "none",
                !r->flush_done ? "none" : r->flush_status == 0 ? "okay" :
                r->flush_status == -1 ? "error" : r->flush_status == -2 ? "eopnotsupp" : "other");
    if (o->nr_discards)
        fprintf(f, "discard requests=%" PRIu64 " sectors=%" PRIu64 " failed=%" PRIu64 "\n", r->discard_reqs,
                r->discard_sectors, r->discard_fail);
    if (r->detach_done || o->keep)
        fprintf(f, "detach how=%s ok=%d grants-leaked=%" PRIu64 " abandoned=%" PRIu64 "\n",
                r->detach_how ? r->detach_how : "kept", r->detach_ok, r->gnt_leaked, r->abandoned);
    char res[512];
    result_text(d, res, sizeof(res));
    fprintf(f, "result %s\n", res);
}

static json_object *u64(uint64_t v)
{
    return json_object_new_int64((int64_t)v);
}

void report_json(struct bb_dev *d, FILE *f)
{
    const struct bb_opts *o = d->o;
    const struct bb_result *r = &d->res;
    json_object *root = json_object_new_object();
    json_object *dev = json_object_new_object();
    json_object_object_add(dev, "domid", u64(o->domid));
    json_object_object_add(dev, "devid", u64(o->devid));
    json_object_object_add(dev, "vdev", json_object_new_string(o->vdev));
    json_object_object_add(dev, "backend_domid", u64(o->be_domid));
    json_object_object_add(dev, "protocol", json_object_new_string(protocol_name(d)));
    json_object_object_add(dev, "sectors", u64(d->sectors));
    json_object_object_add(dev, "sector_size", u64(d->sector_size));
    json_object_object_add(dev, "physical_sector_size", u64(d->phys_sector_size));
    json_object_object_add(dev, "info", u64(d->info));
    json_object_object_add(dev, "ring_order", u64(d->ring_order));
    json_object_object_add(dev, "queues", u64(d->nq));
    json_object_object_add(dev, "max_indirect_segs", u64(d->max_indirect));
    json_object_object_add(dev, "persistent", json_object_new_boolean(d->persistent));
    json_object_object_add(dev, "flush", json_object_new_boolean(d->flush));
    json_object_object_add(dev, "barrier", json_object_new_boolean(d->barrier));
    json_object_object_add(dev, "discard", json_object_new_boolean(d->discard));
    json_object_object_add(dev, "discard_granularity", u64(d->discard_gran));
    json_object_object_add(dev, "discard_alignment", u64(d->discard_align));
    json_object_object_add(dev, "discard_secure", json_object_new_boolean(d->discard_secure));
    json_object_object_add(dev, "backend_max_ring_page_order", u64(d->be_max_ring_order));
    json_object_object_add(dev, "backend_max_queues", u64(d->be_max_queues));
    json_object_object_add(dev, "backend_max_indirect_segments", u64(d->be_max_indirect));
    json_object_object_add(root, "device", dev);
    if (r->sha_done)
        json_object_object_add(root, "sha256", json_object_new_string(r->sha_hex));
    if (o->rw != BB_RW_NONE) {
        json_object *w = json_object_new_object();
        double el = r->elapsed_s > 0 ? r->elapsed_s : 1e-9;
        json_object_object_add(w, "rw", json_object_new_string(bb_rw_name(o->rw)));
        json_object_object_add(w, "bs_min", u64(o->bs_min));
        json_object_object_add(w, "bs_max", u64(o->bs_max));
        json_object_object_add(w, "iodepth", u64(o->iodepth));
        json_object_object_add(w, "runtime_s", json_object_new_double(r->elapsed_s));
        json_object_object_add(w, "ops", u64(r->ops));
        json_object_object_add(w, "reads", u64(r->rd_ops));
        json_object_object_add(w, "writes", u64(r->wr_ops));
        json_object_object_add(w, "read_bytes", u64(r->rd_bytes));
        json_object_object_add(w, "write_bytes", u64(r->wr_bytes));
        json_object_object_add(w, "iops", json_object_new_double((double)r->ops / el));
        json_object_object_add(w, "mb_per_s", json_object_new_double((double)(r->rd_bytes + r->wr_bytes) / el / 1e6));
        const struct bb_hist *h = &r->lat;
        json_object *l = json_object_new_object();
        json_object_object_add(l, "min", json_object_new_double(h->count ? us(h->min) : 0));
        json_object_object_add(l, "p50", json_object_new_double(us(bb_hist_quantile(h, 0.5))));
        json_object_object_add(l, "p99", json_object_new_double(us(bb_hist_quantile(h, 0.99))));
        json_object_object_add(l, "p99_9", json_object_new_double(us(bb_hist_quantile(h, 0.999))));
        json_object_object_add(l, "max", json_object_new_double(us(h->max)));
        json_object_object_add(l, "mean", json_object_new_double(h->count ? us(h->sum / h->count) : 0));
        json_object_object_add(w, "latency_us", l);
        json_object_object_add(root, "workload", w);
    }
    json_object *s = json_object_new_object();
    json_object_object_add(s, "requests", u64(r->requests));
    json_object_object_add(s, "okay", u64(r->st_okay));
    json_object_object_add(s, "error", u64(r->st_error));
    json_object_object_add(s, "eopnotsupp", u64(r->st_eopnotsupp));
    json_object_object_add(s, "other", u64(r->st_other));
    json_object_object_add(s, "unexpected", u64(r->unexpected));
    json_object_object_add(s, "protocol_errors", u64(r->protocol_errors));
    json_object_object_add(s, "grant_end_failures", u64(r->gnt_end_failures));
    json_object_object_add(root, "status", s);
    if (o->verify) {
        json_object *v = json_object_new_object();
        json_object_object_add(v, "sectors", u64(r->verified_sectors));
        json_object_object_add(v, "mismatches", u64(r->mismatches));
        json_object_object_add(root, "verify", v);
    }
    if (o->flush) {
        json_object *fl = json_object_new_object();
        json_object_object_add(fl, "op", json_object_new_string(r->flush_op ? r->flush_op : "none"));
        if (r->flush_done)
            json_object_object_add(fl, "status", json_object_new_int(r->flush_status));
        json_object_object_add(root, "flush", fl);
    }
    if (o->nr_discards) {
        json_object *di = json_object_new_object();
        json_object_object_add(di, "requests", u64(r->discard_reqs));
        json_object_object_add(di, "sectors", u64(r->discard_sectors));
        json_object_object_add(di, "failed", u64(r->discard_fail));
        json_object_object_add(root, "discard", di);
    }
    json_object *dt = json_object_new_object();
    json_object_object_add(dt, "how", json_object_new_string(r->detach_how ? r->detach_how : "kept"));
    json_object_object_add(dt, "ok", json_object_new_boolean(r->detach_ok));
    json_object_object_add(dt, "grants_leaked", u64(r->gnt_leaked));
    json_object_object_add(dt, "abandoned", u64(r->abandoned));
    json_object_object_add(root, "detach", dt);
    char res[512];
    result_text(d, res, sizeof(res));
    json_object_object_add(root, "result", json_object_new_string(res));
    json_object_object_add(root, "exit_code", json_object_new_int(report_exit_code(d)));
    fprintf(f, "%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
}
