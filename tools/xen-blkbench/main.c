/*
 * main.c - xen-blkbench: a userspace blkfront and a toolstack in one, playing
 * guest <domid> on the simulated Xen host against xen-blkbackd.
 *
 * Sequence (man/xen-blkbench.8): attach (domain, vbd nodes, [hotplug],
 * negotiation), --sha256, workload (--rw) [+ verify read-back], --flush,
 * --discard, detach (block-detach, or --destroy, or none with --keep).
 */
#include "dev.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static volatile sig_atomic_t g_stop;    /* the one global: a signal flag */

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

void bb_err(struct bb_dev *d, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fprintf(stderr, "xen-blkbench: error: %s\n", buf);
    if (d && !d->res.failure[0]) {
        size_t n = strnlen(buf, sizeof(d->res.failure) - 1);
        memcpy(d->res.failure, buf, n);
        d->res.failure[n] = 0;
    }
}

void bb_info(struct bb_dev *d, const char *fmt, ...)
{
    if (d && d->o->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("xen-blkbench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int bb_wait_state(struct bb_dev *d, const char *path, uint32_t ok_mask, uint32_t fail_mask,
                  const char *what, int *state)
{
    int rc = bbx_wait_state(&d->xs, path, ok_mask, fail_mask, what, state);
    if (rc)
        bb_err(d, "%s", d->xs.err);
    return rc;
}

static unsigned div_up(uint64_t a, uint64_t b)
{
    return (unsigned)((a + b - 1) / b);
}

/* Pages a request of bs_max needs at the worst page offset. */
static unsigned need_pages(const struct bb_opts *o)
{
    unsigned po = o->page_offset < 0 ? BB_SECTORS_PER_PAGE - 1 : (unsigned)o->page_offset;
    return div_up(po + o->bs_max / BB_SECTOR, BB_SECTORS_PER_PAGE);
}

/* Guest memory: rings + per slot (data + indirect pages), from the requested
 * (not yet negotiated, so upper-bound) parameters. */
static int plan_memory(struct bb_dev *d, uint32_t *nr_pages, uint32_t *nr_grefs)
{
    const struct bb_opts *o = d->o;
    unsigned cap = o->indirect_segs > BLKIF_MAX_SEGMENTS_PER_REQUEST ? o->indirect_segs
                                                                     : BLKIF_MAX_SEGMENTS_PER_REQUEST;
    unsigned need = need_pages(o);
    if (need > cap) {
        bb_err(d, "--bs %u at page offset %s needs %u segments; at most %u without more --indirect-segs",
               o->bs_max, o->page_offset < 0 ? "rand" : "given", need, cap);
        return -EINVAL;
    }
    unsigned pages = need > (cap < 32 ? cap : 32) ? need : (cap < 32 ? cap : 32);
    unsigned ind = cap > BLKIF_MAX_SEGMENTS_PER_REQUEST ? div_up(pages, BLKIF_SEGS_PER_INDIRECT_PAGE) : 0;
    uint64_t depth = o->iodepth;
    uint64_t ring_entries = (uint64_t)o->queues * (32u << o->ring_order);
    if (depth > ring_entries)
        depth = ring_entries;
    uint64_t n = (uint64_t)o->queues * (1u << o->ring_order) + depth * (pages + ind) + 16;
    if (n > (1u << 24)) {
        bb_err(d, "guest memory of %" PRIu64 " pages is too much; lower --iodepth or --bs", n);
        return -E2BIG;
    }
    d->slot_data_pages = pages;
    *nr_pages = (uint32_t)n;
    *nr_grefs = (uint32_t)n + 64;
    return 0;
}

/* Checks that need the backend's answer (skipped for negative tests). */
static int check_workload_fits(struct bb_dev *d)
{
    const struct bb_opts *o = d->o;
    if (need_pages(o) > d->max_segs) {
        bb_err(d, "--bs %u needs %u segments per request, the device allows %u "
               "(feature-max-indirect-segments=%" PRIu64 ", --indirect-segs %u)", o->bs_max, need_pages(o),
               d->max_segs, d->be_max_indirect, o->indirect_segs);
        return -EINVAL;
    }
    if (o->expect != BB_EXPECT_OK)
        return 0;
    if (o->rw != BB_RW_NONE) {
        uint64_t ss = d->sector_size;
        if (o->bs_min % ss || o->bs_max % ss || o->offset % ss || o->length % ss) {
            bb_err(d, "--bs/--offset/--length must be multiples of the backend sector-size %" PRIu64, ss);
            return -EINVAL;
        }
        uint64_t first, nr = io_region_sectors(d, &first);
        if (first + nr > d->sectors || first >= d->sectors) {
            bb_err(d, "region %" PRIu64 "+%" PRIu64 " sectors is beyond the disk end (%" PRIu64 " sectors)",
                   first, nr, d->sectors);
            return -EINVAL;
        }
        if (o->bs_min / BB_SECTOR > nr) {
            bb_err(d, "--bs is larger than the region");
            return -EINVAL;
        }
    }
    if (o->expect_readonly && !(d->info & VDISK_READONLY)) {
        bb_err(d, "--expect-readonly: backend info=%" PRIu64 " lacks VDISK_READONLY (4)", d->info);
        return -EINVAL;
    }
    return 0;
}

/* Our ports must be back to unbound once the backend closed. */
static void check_ports(struct bb_dev *d)
{
    for (unsigned i = 0; i < d->nq; i++) {
        if (!d->q[i].port_alloc)
            continue;
        int st = sim_evtchn_port_state(d->host, d->o->domid, d->q[i].port);
        if (st == 2)
            bb_err(d, "event channel port %u of queue %u is still bound by the backend after Closed",
                   d->q[i].port, i);
    }
}

static void detach(struct bb_dev *d, bool force)
{
    struct bb_result *r = &d->res;
    r->detach_done = true;
    r->detach_how = force ? "destroy" : "block-detach";
    int rc = ts_vbd_remove_begin(d, force);
    if (!rc && !force && d->connected)
        rc = fe_close(d);
    if (!rc && !force && !d->connected) {
        /* never connected (setup failed): the frontend just closes */
        char p[256];
        snprintf(p, sizeof(p), "%s/state", d->fe);
        bbx_write(&d->xs, XBT_NULL, p, "6");
    }
    if (!rc)
        rc = ts_vbd_wait_closed(d);
    r->detach_ok = rc == 0;
    if (rc == 0) {
        check_ports(d);
        if (force) {
            uint64_t m = sim_gnt_mapped_count(d->dom);
            if (m) {
                r->gnt_leaked += m;
                bb_err(d, "backend still maps %" PRIu64 " grant(s) of domain %u after Closed", m, d->o->domid);
            }
        }
    }
    if (!force)
        fe_release(d);          /* end every grant: must succeed now */
    ts_vbd_remove_nodes(d);
}

static void set_xenstore_env(const struct bb_opts *o)
{
    if (o->xenstore) {
        setenv("XENSTORED_PATH", o->xenstore, 1);
        return;
    }
    if (getenv("XENSTORED_PATH"))
        return;
    char p[4096];
    struct stat st;
    snprintf(p, sizeof(p), "%s/xs.sock", o->sim_dir);
    if (!stat(p, &st) && S_ISSOCK(st.st_mode))
        setenv("XENSTORED_PATH", p, 1);
}

int main(int argc, char **argv)
{
    struct bb_opts o;
    char err[256] = "";
    bb_opts_defaults(&o);
    int prc = bb_parse_args(argc, argv, &o, err, sizeof(err));
    if (prc < 0) {
        fprintf(stderr, "xen-blkbench: %s\n(see xen-blkbench --help)\n", err);
        return 2;
    }
    if (prc > 0)
        return 0;
    set_xenstore_env(&o);
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    static struct bb_dev dev;           /* large (histogram): not on the stack */
    struct bb_dev *d = &dev;
    d->o = &o;
    d->stopf = &g_stop;
    bb_hist_init(&d->res.lat);
    switch (o.abi) {
    case BB_ABI_X86_32: d->abi = BLKIF_ABI_X86_32; d->protocol = XEN_IO_PROTO_ABI_X86_32; break;
    case BB_ABI_X86_64: d->abi = BLKIF_ABI_X86_64; d->protocol = XEN_IO_PROTO_ABI_X86_64; break;
    default: d->abi = BLKIF_ABI_X86_64; d->protocol = NULL; break;   /* native = x86_64 here */
    }

    uint32_t nr_pages, nr_grefs;
    int code = 1;
    int rc = plan_memory(d, &nr_pages, &nr_grefs);
    if (rc)
        return 2;
    d->nr_pages = nr_pages;

    rc = sim_host_open(o.sim_dir, &d->host);
    if (rc) {
        bb_err(d, "opening simulated host %s: %s", o.sim_dir, strerror(-rc));
        return 1;
    }
    rc = bbx_open(&d->xs, o.timeout_s);
    if (rc) {
        const char *p = getenv("XENSTORED_PATH");
        bb_err(d, "cannot connect to xenstored (XENSTORED_PATH=%s): %s", p ? p : "(unset)", strerror(-rc));
        sim_host_close(d->host);
        return 1;
    }
    rc = sim_dom_create(d->host, o.domid, nr_pages, nr_grefs, &d->dom);
    if (rc) {
        bb_err(d, "creating simulated domain %u (%u pages): %s%s", o.domid, nr_pages, strerror(-rc),
               rc == -EEXIST ? " (left by a --keep run? use another --domid)" : "");
        goto out_host;
    }
    d->dom_created = true;
    d->next_pfn = 0;
    rc = sim_evtchn_open(d->host, o.domid, &d->evt);
    if (rc) {
        bb_err(d, "opening event channels of domain %u: %s", o.domid, strerror(-rc));
        goto out_dom;
    }

    /* ---- attach ---- */
    if ((rc = ts_domain_create(d)) || (rc = ts_vbd_add(d)))
        goto out_detach;
    bb_info(d, "vbd %s added: backend %s", d->fe, d->be);
    if (o.hotplug) {
        /* libxl waits for InitWait, then runs the hotplug script */
        char p[256];
        if (snprintf(p, sizeof(p), "%s/state", d->be) >= (int)sizeof(p))
            goto out_detach;
        rc = bb_wait_state(d, p, 1u << XenbusStateInitWait,
                            (1u << XenbusStateClosing) | (1u << XenbusStateClosed) | BBX_MISSING,
                            "backend", NULL);
        if (rc || (rc = ts_hotplug(d)))
            goto out_detach;
    }
    if ((rc = fe_connect(d)))
        goto out_detach;
    bb_info(d, "connected: %" PRIu64 " sectors, sector-size %" PRIu64 ", %s, %u queue(s), ring-order %u, "
            "indirect %u, persistent %d", d->sectors, d->sector_size, d->protocol ? d->protocol : "native",
            d->nq, d->ring_order, d->max_indirect, d->persistent);
    if ((rc = check_workload_fits(d)) || (rc = io_setup(d)))
        goto out_detach;

    /* ---- actions ---- */
    if (o.sha256 && !d->fatal)
        io_sha256(d);
    if (o.rw != BB_RW_NONE && !d->fatal && !g_stop) {
        rc = io_workload(d);
        if (!rc && o.verify && !o.destroy && !d->fatal)
            rc = io_verify_pass(d);
    }
    if (o.flush && !d->fatal && !g_stop)
        io_flush(d);
    if (o.nr_discards && !d->fatal && !g_stop)
        io_discard(d);

out_detach:
    if (o.before_detach && d->connected) {
        fflush(stdout);
        int st = system(o.before_detach);
        if (st != 0)
            bb_info(d, "--before-detach command exited with status %d", st);
    }
    if (rc && !d->res.failure[0])
        bb_err(d, "failed: %s", strerror(rc < 0 ? -rc : rc));
    if (o.keep && d->connected) {
        d->res.detach_how = "kept";
        bb_info(d, "--keep: leaving %s connected and domain %u alive", d->fe, o.domid);
    } else {
        if (d->nodes_written)
            detach(d, o.destroy || !d->connected || d->fatal);
        ts_domain_destroy(d);
    }
    if (o.json)
        report_json(d, stdout);
    else
        report_text(d, stdout);
    fflush(stdout);
    code = report_exit_code(d);
    if (o.keep && d->connected) {
        /* leave the guest's memory, grants and ports as they are */
        io_free(d);
        bbx_close(&d->xs);
        return code;
    }
    sim_evtchn_close(d->evt);
out_dom:
    sim_dom_destroy(d->dom);
    io_free(d);
out_host:
    bbx_close(&d->xs);
    sim_host_close(d->host);
    return d->dom_created ? code : 1;
}
