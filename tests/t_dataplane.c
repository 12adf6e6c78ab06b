/* t_dataplane: the data plane serves a guest played by this test on the simulated host (both ABIs, 1/2/4-page rings, 2 queues, map and copy grant modes): data lands in the image, faults get blkback's answers, a bogus req_prod halts only its ring (also when polling), dp_stop answers or abandons in-flight I/O in time and returns every grant and port; a read-only vbd refuses write and flush. */
#include "harness.h"

#include <liburing.h>
#include "util.h"
#include "dataplane.h"
#include "engine.h"
#include "log.h"
#include "sim.h"
#include "lib/guest.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DOMID 7
#define MiB (1024ull * 1024)
#define IMG_BYTES (64 * MiB)
#define IMG_SECTORS (IMG_BYTES / 512)
#define GUEST_PAGES 4096
#define PG GUEST_PG

static const struct xen_ops *ops = &xen_ops_sim;
static char *hostdir;
static struct xen_host *xh;         /* the backend's view of the simulated host */
static char imgpath[512];

/* The guest of this test: domain DOMID with GUEST_PAGES of memory. */
static void guest_start(struct guest *g, enum blkif_abi abi, unsigned nq, unsigned npages)
{
    guest_init(g, hostdir, DOMID, abi, nq, npages, GUEST_PAGES);
}

/* ---- the backend -------------------------------------------------------- */

static void make_image(void)
{
    int fd = open(imgpath, O_CREAT | O_RDWR | O_TRUNC, 0600);
    T_ASSERT(fd >= 0, "image");
    uint8_t *b = calloc(1, MiB);
    memset(b, 0x33, MiB);
    for (uint64_t off = 0; off < IMG_BYTES; off += MiB)
        T_ASSERT(pwrite(fd, b, MiB, (off_t)off) == (ssize_t)MiB, "fill");
    free(b);
    close(fd);
}

/* Does this kernel's io_uring wait with a timeout in io_uring_enter
 * (IORING_FEAT_EXT_ARG, 5.11)?  The uring engine's wait needs it. */
static bool uring_has_ext_arg(void)
{
    struct io_uring r;
    if (io_uring_queue_init(1, &r, 0) < 0)
        return false;
    bool ok = r.features & IORING_FEAT_EXT_ARG;
    io_uring_queue_exit(&r);
    return ok;
}

static void base_cfg(struct dp_config *c, struct guest *g, struct engine *e)
{
    guest_dp_config(c, g, e);
    c->name = "vbd 7/51712";
}

static struct engine *open_engine(const char *params)
{
    struct engine_params p = { .path = NULL, .readonly = false, .direct = true, .name = "vbd 7/51712" };
    struct engine *e;
    int rc = engine_open_params(params, &p, true, &e);
    T_ASSERT(rc == 0, "engine %s: %d", params, rc);
    return e;
}

static bool file_equals(uint64_t off, const void *buf, size_t len)
{
    int fd = open(imgpath, O_RDONLY);
    uint8_t *b = malloc(len);
    bool eq = fd >= 0 && pread(fd, b, len, (off_t)off) == (ssize_t)len && !memcmp(b, buf, len);
    free(b);
    if (fd >= 0)
        close(fd);
    return eq;
}

/* A guest (guest_start), an engine on `params` (open_engine) and cfg for
 * the two (base_cfg), ready for a scenario's own settings; the engine. */
static struct engine *rig_up(struct guest *g, struct dp_config *cfg, enum blkif_abi abi,
                             unsigned nq, unsigned npages, const char *params)
{
    guest_start(g, abi, nq, npages);
    struct engine *e = open_engine(params);
    base_cfg(cfg, g, e);
    return e;
}

/* dp_create (asserted, `what` in the message) and dp_start (asserted). */
static struct dp *dp_up(const struct dp_config *cfg, const char *what)
{
    struct dp *dp;
    T_ASSERT(dp_create(ops, xh, cfg, &dp) == 0, "%s", what);
    T_ASSERT(dp_start(dp) == 0, "dp_start");
    return dp;
}

/* dp_destroy; guest_check_released(g, released) unless NULL; the engine
 * closed and the guest gone. */
static void rig_down(struct dp *dp, struct engine *e, struct guest *g, const char *released)
{
    dp_destroy(dp);
    if (released)
        guest_check_released(g, released);
    e->ops->close(e);
    guest_fini(g);
}

/* ---- scenarios ------------------------------------------------------------ */

static void scenario_io(enum blkif_abi abi, unsigned npages, enum grant_mode mode)
{
    char what[64];
    snprintf(what, sizeof(what), "%s ring %u page(s) %s", blkif_abi_name(abi), npages,
             mode == GRANT_MODE_COPY ? "copy" : "map");
    T_LOG("scenario io: %s", what);
    make_image();
    struct guest g;
    struct dp_config cfg;
    struct engine *e = rig_up(&g, &cfg, abi, 1, npages, imgpath);
    cfg.grant_mode = mode;
    struct dp *dp;
    int rc = dp_create(ops, xh, &cfg, &dp);
    T_ASSERT(rc == 0, "dp_create: %d", rc);
    T_EQ(sim_gnt_mapped_count(g.dom), npages);
    T_ASSERT(dp_start(dp) == 0, "dp_start");

    struct treq r, r2;
    uint64_t id = 1000;

    /* WRITE 4 pages at 1 MiB, READ them back, compare with the image */
    guest_rw_req(&g, &r, BLKIF_OP_WRITE, id++, 2048, 4, 1);
    uint8_t *src = malloc(4 * PG);
    for (unsigned i = 0; i < 4; i++)
        memcpy(src + i * PG, sim_dom_page(g.dom, r.pfn[i]), PG);
    guest_do_req(&g, 0, &r, BLKIF_RSP_OKAY, "write 4 pages");
    T_CHECK(file_equals(MiB, src, 4 * PG), "%s: image differs after WRITE", what);
    guest_rw_req(&g, &r2, BLKIF_OP_READ, id++, 2048, 4, 0);
    for (unsigned i = 0; i < 4; i++)
        memset(sim_dom_page(g.dom, r2.pfn[i]), 0xEE, PG);
    guest_do_req(&g, 0, &r2, BLKIF_RSP_OKAY, "read 4 pages");
    for (unsigned i = 0; i < 4; i++)
        T_CHECK(!memcmp(sim_dom_page(g.dom, r2.pfn[i]), src + i * PG, PG), "%s: READ page %u differs", what, i);

    /* partial segments: sectors 2..5 of page A then 0..1 of page B -> 6 sectors at 9 */
    memset(&r, 0, sizeof(r));
    r.op = BLKIF_OP_WRITE; r.id = id++; r.sector = 9; r.nr_segs = 2;
    guest_add_pages(&g, &r, 1, true, &r.seg[0], 2, 5);
    guest_add_pages(&g, &r, 1, true, &r.seg[1], 0, 1);
    guest_fill(sim_dom_page(g.dom, r.pfn[0]), PG, 77);
    guest_fill(sim_dom_page(g.dom, r.pfn[1]), PG, 78);
    uint8_t part[6 * 512];
    memcpy(part, (uint8_t *)sim_dom_page(g.dom, r.pfn[0]) + 2 * 512, 4 * 512);
    memcpy(part + 4 * 512, sim_dom_page(g.dom, r.pfn[1]), 2 * 512);
    guest_do_req(&g, 0, &r, BLKIF_RSP_OKAY, "partial write");
    T_CHECK(file_equals(9 * 512, part, sizeof(part)), "%s: partial segments landed wrong", what);
    uint8_t around[512];
    memset(around, 0x33, sizeof(around));
    T_CHECK(file_equals(8 * 512, around, 512) && file_equals(15 * 512, around, 512),
            "%s: partial write touched neighbours", what);

    /* FLUSH without and with data */
    memset(&r, 0, sizeof(r));
    r.op = BLKIF_OP_FLUSH_DISKCACHE; r.id = id++;
    guest_do_req(&g, 0, &r, BLKIF_RSP_OKAY, "flush");
    guest_rw_req(&g, &r, BLKIF_OP_WRITE, id++, 4096, 2, 55);
    r.op = BLKIF_OP_FLUSH_DISKCACHE;
    memcpy(src, sim_dom_page(g.dom, r.pfn[0]), PG);
    memcpy(src + PG, sim_dom_page(g.dom, r.pfn[1]), PG);
    guest_do_req(&g, 0, &r, BLKIF_RSP_OKAY, "flush with data");
    T_CHECK(file_equals(4096 * 512, src, 2 * PG), "%s: flush data not in image", what);

    /* BARRIER not advertised -> EOPNOTSUPP */
    memset(&r, 0, sizeof(r));
    r.op = BLKIF_OP_WRITE_BARRIER; r.id = id++;
    guest_do_req(&g, 0, &r, BLKIF_RSP_EOPNOTSUPP, "barrier not advertised");

    /* INDIRECT WRITE of 300 pages (2 indirect pages), INDIRECT READ back */
    static struct treq ri, ri2;
    guest_ind_req(&g, &ri, BLKIF_OP_WRITE, id++, 20480, 300, 9);
    uint8_t *big = malloc(300 * PG);
    for (unsigned i = 0; i < 300; i++)
        memcpy(big + (size_t)i * PG, sim_dom_page(g.dom, ri.pfn[i]), PG);
    guest_do_req(&g, 0, &ri, BLKIF_RSP_ERROR, "indirect 300 > 256");
    guest_ind_req(&g, &ri, BLKIF_OP_WRITE, id++, 20480, 256, 9);
    for (unsigned i = 0; i < 256; i++)
        memcpy(big + (size_t)i * PG, sim_dom_page(g.dom, ri.pfn[i]), PG);
    guest_do_req(&g, 0, &ri, BLKIF_RSP_OKAY, "indirect write 256");
    T_CHECK(file_equals(20480 * 512, big, 256 * PG), "%s: indirect write not in image", what);
    guest_ind_req(&g, &ri2, BLKIF_OP_READ, id++, 20480, 256, 0);
    guest_do_req(&g, 0, &ri2, BLKIF_RSP_OKAY, "indirect read 256");
    bool same = true;
    for (unsigned i = 0; i < 256; i++)
        same &= !memcmp(sim_dom_page(g.dom, ri2.pfn[i]), big + (size_t)i * PG, PG);
    T_CHECK(same, "%s: indirect read differs", what);

    /* DISCARD 1 MiB at 8 MiB: a hole in the image */
    if (cfg.discard) {
        memset(&r, 0, sizeof(r));
        r.op = BLKIF_OP_DISCARD; r.id = id++; r.sector = 16384; r.nr_sectors = 2048;
        guest_do_req(&g, 0, &r, BLKIF_RSP_OKAY, "discard");
        int fd = open(imgpath, O_RDONLY);
        off_t h = lseek(fd, 8 * MiB, SEEK_HOLE);
        T_CHECK(h == (off_t)(8 * MiB), "%s: SEEK_HOLE after discard: %lld", what, (long long)h);
        close(fd);
        r.id = id++; r.flag = BLKIF_DISCARD_SECURE;
        guest_do_req(&g, 0, &r, BLKIF_RSP_EOPNOTSUPP, "secure discard");
    }

    /* hostile requests */
    memset(&r, 0, sizeof(r));
    r.op = 9; r.id = id++;
    guest_do_req(&g, 0, &r, BLKIF_RSP_EOPNOTSUPP, "unknown op");
    guest_rw_req(&g, &r, BLKIF_OP_READ, id++, 0, 1, 0);
    uint32_t good = r.seg[0].gref;
    r.seg[0].gref = 16000;                      /* never granted */
    guest_do_req(&g, 0, &r, BLKIF_RSP_ERROR, "unknown gref");
    (void)good;
    guest_rw_req(&g, &r, BLKIF_OP_READ, id++, 0, 2, 0);
    sim_gnt_end(g.dom, r.refs[1]);
    T_ASSERT(sim_gnt_grant(g.dom, 0, r.pfn[1], true, &r.refs[1]) == 0, "regrant ro");
    r.seg[1].gref = r.refs[1];                  /* READ into a read-only grant */
    guest_do_req(&g, 0, &r, BLKIF_RSP_ERROR, "read into read-only grant");
    guest_rw_req(&g, &r, BLKIF_OP_WRITE, id++, IMG_SECTORS - 8, 2, 0);
    guest_do_req(&g, 0, &r, BLKIF_RSP_ERROR, "write past the end");
    guest_rw_req(&g, &r, BLKIF_OP_WRITE, id++, 0, 11, 0);
    r.nr_segs = 12;
    guest_do_req(&g, 0, &r, BLKIF_RSP_ERROR, "12 direct segments");
    guest_rw_req(&g, &r, BLKIF_OP_READ, id++, 0, 1, 0);
    r.seg[0].last_sect = 8;
    guest_do_req(&g, 0, &r, BLKIF_RSP_ERROR, "last_sect 8");

    /* a full ring in one push: every request answered, ids all seen */
    unsigned n = 32 * npages;
    static struct treq batch[128];
    for (unsigned i = 0; i < n; i++) {
        guest_rw_req(&g, &batch[i], i % 2 ? BLKIF_OP_READ : BLKIF_OP_WRITE, 5000 + i, 40960 + 8ull * i, 1, i);
        guest_put_req(&g, 0, &batch[i]);
    }
    unsigned notif0 = g.q[0].notifies;
    guest_push(&g, 0);
    static struct trsp rs[128];
    T_CHECK(guest_wait_rsps(&g, 0, rs, n, 10000), "%s: batch of %u not answered", what, n);
    uint64_t seen = 0;
    bool all_ok = true;
    for (unsigned i = 0; i < n; i++) {
        all_ok &= rs[i].status == BLKIF_RSP_OKAY && rs[i].id >= 5000 && rs[i].id < 5000 + n &&
                  rs[i].op == (rs[i].id % 2 ? BLKIF_OP_READ : BLKIF_OP_WRITE);
        if (rs[i].id >= 5000 && rs[i].id < 5000 + 64)
            seen |= 1ull << (rs[i].id - 5000);
    }
    T_CHECK(all_ok, "%s: batch responses wrong", what);
    T_CHECK(n > 64 || seen == (n == 64 ? ~0ull : (1ull << n) - 1), "%s: not every id answered", what);
    T_LOG("%s: batch of %u answered with %u notification(s)", what, n, g.q[0].notifies - notif0);
    for (unsigned i = 0; i < n; i++)
        guest_end_grants(&g, &batch[i]);

    struct vbd_stats st;
    dp_get_stats(dp, &st);
    T_LOG("%s: rd_req %llu wr_req %llu f_req %llu ds_req %llu rd_sect %llu wr_sect %llu errors %llu "
          "eopnotsupp %llu bad_req %llu gnt_map %llu notify %llu kicks %llu submits %llu",
          what, (unsigned long long)st.rd_req, (unsigned long long)st.wr_req,
          (unsigned long long)st.f_req, (unsigned long long)st.ds_req,
          (unsigned long long)st.rd_sect, (unsigned long long)st.wr_sect,
          (unsigned long long)st.errors, (unsigned long long)st.eopnotsupp,
          (unsigned long long)st.bad_req, (unsigned long long)st.gnt_map,
          (unsigned long long)st.notify, (unsigned long long)st.kicks, (unsigned long long)st.submits);
    T_EQ(st.grants_mapped, npages);
    T_EQ(st.inflight, 0);
    T_EQ(st.halted, 0);
    T_EQ(st.f_req, 2);                          /* flush, flush with data (barrier refused) */
    T_EQ(st.rd_req, 5 + n / 2);                 /* read, indirect read, 3 hostile reads, batch */
    T_EQ(st.errors, 6);
    T_EQ(st.bad_req, cfg.discard ? 7 : 6);
    T_EQ(st.eopnotsupp, cfg.discard ? 3 : 2);
    /* sectors are counted once validated, before grants are mapped (as Linux) */
    T_EQ(st.rd_sect, 32 + 256 * 8 + 8 + 16 + 8 * (n / 2));
    T_EQ(st.wr_sect, 32 + 6 + 16 + 256 * 8 + 8 * (n / 2));
    T_EQ(st.io_errors, 0);
    if (mode == GRANT_MODE_COPY) {              /* nothing but the ring is ever mapped */
        T_EQ(st.gnt_map, 1);
        T_CHECK(st.gnt_copy > 0, "%s: no grant copy in copy mode", what);
    } else {
        T_EQ(st.gnt_copy, 0);
    }
    T_CHECK(st.submits <= st.rd_req + st.wr_req + st.f_req + st.ds_req, "one submit per sweep");
    T_CHECK(!dp_halted(dp), "halted");
    /* The uring engine: every sleep is its wait (submit + sleep in one
     * io_uring_enter), on kernels with IORING_FEAT_EXT_ARG. */
    T_CHECK(st.sleeps > 0, "%s: the queue thread never slept", what);
    if (!strcmp(e->ops->name, "uring") && uring_has_ext_arg())
        T_CHECK(st.engine_waits == st.sleeps, "%s: %llu of %llu sleeps in the engine's wait",
                what, (unsigned long long)st.engine_waits, (unsigned long long)st.sleeps);

    dp_stop(dp, 2000);
    guest_check_released(&g, what);
    dp_stop(dp, 2000);                          /* idempotent */
    rig_down(dp, e, &g, NULL);
    free(src);
    free(big);
}

/* Two queues on 4-page rings; a bogus req_prod on queue 1 halts only it.
 * poll_us: the same through the polling loop (spin, serve what the memory
 * shows without a ppoll, re-arm, sleep). */
static void scenario_halt(unsigned poll_us)
{
    T_LOG("scenario halt: native, 2 queues, 4-page rings, poll_us %u", poll_us);
    make_image();
    struct guest g;
    struct dp_config cfg;
    struct engine *e = rig_up(&g, &cfg, BLKIF_ABI_NATIVE, 2, 4, imgpath);
    cfg.poll_us = poll_us;
    struct dp *dp;
    T_ASSERT(dp_create(ops, xh, &cfg, &dp) == 0, "dp_create");
    T_EQ(sim_gnt_mapped_count(g.dom), 8);
    T_ASSERT(dp_start(dp) == 0, "dp_start");
    struct treq r;
    for (unsigned qi = 0; qi < 2; qi++) {
        guest_rw_req(&g, &r, BLKIF_OP_WRITE, 10 + qi, 100 * qi, 2, qi);
        guest_do_req(&g, qi, &r, BLKIF_RSP_OKAY, "write before halt");
    }
    /* queue 1: req_prod far ahead of anything possible */
    struct gq *q1 = &g.q[1];
    q1->fr.sring->req_prod = q1->fr.sring->rsp_prod + RING_SIZE(&q1->fr) + 5;
    sim_evtchn_notify(g.ev, q1->port);
    uint64_t end = xbd_now_ms() + 3000;
    while (!dp_halted(dp) && xbd_now_ms() < end)
        usleep(1000);
    T_CHECK(dp_halted(dp), "bogus req_prod did not halt the ring");
    struct vbd_stats st;
    dp_get_stats(dp, &st);
    T_EQ(st.halted, 1);
    RING_IDX rsp1 = q1->fr.sring->rsp_prod;
    /* queue 0 still serves */
    guest_rw_req(&g, &r, BLKIF_OP_READ, 20, 0, 2, 0);
    guest_do_req(&g, 0, &r, BLKIF_RSP_OKAY, "queue 0 after queue 1 halted");
    usleep(100 * 1000);
    T_EQ(q1->fr.sring->rsp_prod, rsp1);        /* halted ring answers nothing */
    dp_stop(dp, 2000);
    guest_check_released(&g, "halt");
    rig_down(dp, e, &g, NULL);
}

/* A started dp on an engine of `params` (a fresh x86_64 guest, one 1-page
 * ring, grant mode `mode`) with one READ/WRITE r of n pages at sector 0
 * pushed and given 50 ms to get in flight; *e is the engine. */
static struct dp *dp_one_in_flight(struct guest *g, struct engine **e, const char *params,
                                   enum grant_mode mode, struct treq *r, uint8_t op, uint64_t id,
                                   unsigned n)
{
    struct dp_config cfg;
    *e = rig_up(g, &cfg, BLKIF_ABI_X86_64, 1, 1, params);
    cfg.grant_mode = mode;
    struct dp *dp = dp_up(&cfg, "dp_create");
    guest_rw_req(g, r, op, id, 0, n, 0);
    guest_put_req(g, 0, r);
    guest_push(g, 0);
    usleep(50 * 1000);
    return dp;
}

/* Storage errors, dp_stop with I/O in flight (answered), dp_stop past its
 * timeout (abandoned, never hangs). */
static void scenario_faults(enum grant_mode mode)
{
    T_LOG("scenario faults: error and delay engines, grant mode %s",
          mode == GRANT_MODE_COPY ? "copy" : "map");
    make_image();
    char spec[600];
    struct treq r;

    /* -EIO from the engine -> ERROR, io_errors */
    struct guest g;
    struct dp_config cfg;
    snprintf(spec, sizeof(spec), "error:1M-2M:uring:%s", imgpath);
    struct engine *e = rig_up(&g, &cfg, BLKIF_ABI_X86_32, 1, 1, spec);
    cfg.grant_mode = mode;
    struct dp *dp = dp_up(&cfg, "dp_create");
    guest_rw_req(&g, &r, BLKIF_OP_READ, 1, 2048 + 8, 1, 0);
    guest_do_req(&g, 0, &r, BLKIF_RSP_ERROR, "read of failing range");
    guest_rw_req(&g, &r, BLKIF_OP_READ, 2, 0, 1, 0);
    guest_do_req(&g, 0, &r, BLKIF_RSP_OKAY, "read outside failing range");
    struct vbd_stats st;
    dp_get_stats(dp, &st);
    T_EQ(st.io_errors, 1);
    T_EQ(st.errors, 1);
    T_CHECK(st.sleeps > 0 && st.engine_waits == 0, "error engine: %llu sleeps, %llu in an "
            "engine wait (a filter has none: ppoll)", (unsigned long long)st.sleeps,
            (unsigned long long)st.engine_waits);
    rig_down(dp, e, &g, "error engine");

    /* stop while a 300 ms I/O is in flight: answered before dp_stop returns */
    snprintf(spec, sizeof(spec), "delay:300000:uring:%s", imgpath);
    dp = dp_one_in_flight(&g, &e, spec, mode, &r, BLKIF_OP_READ, 3, 4);
    dp_get_stats(dp, &st);
    T_EQ(st.inflight, 1);
    uint64_t t0 = xbd_now_ms();
    dp_stop(dp, 3000);
    uint64_t dt = xbd_now_ms() - t0;
    T_CHECK(g.q[0].fr.sring->rsp_prod == 1, "in-flight request not answered by dp_stop");
    struct trsp rsp;
    if (guest_wait_rsps(&g, 0, &rsp, 1, 10))
        T_CHECK(rsp.id == 3 && rsp.status == BLKIF_RSP_OKAY, "in-flight answer %llu/%d",
                (unsigned long long)rsp.id, rsp.status);
    T_CHECK(dt < 2000, "dp_stop took %llu ms", (unsigned long long)dt);
    guest_check_released(&g, "stop in flight");
    guest_end_grants(&g, &r);
    rig_down(dp, e, &g, NULL);

    /* stop with a 5 s I/O and a 200 ms timeout: returns in time, holds nothing */
    dp = dp_one_in_flight(&g, &e, "delay:5000000:null:64M", mode, &r, BLKIF_OP_WRITE, 4, 2);
    t0 = xbd_now_ms();
    dp_stop(dp, 200);
    dt = xbd_now_ms() - t0;
    T_CHECK(dt < 1500, "dp_stop(200 ms) took %llu ms", (unsigned long long)dt);
    guest_check_released(&g, "stop timeout");
    rig_down(dp, e, &g, NULL);
}

/* Daemon restart: reattach at the shared rsp_prod; refuse an impossible ring. */
static void scenario_reattach(void)
{
    T_LOG("scenario reattach");
    make_image();
    struct guest g;
    struct dp_config cfg;
    struct engine *e = rig_up(&g, &cfg, BLKIF_ABI_X86_64, 1, 1, imgpath);
    cfg.reattach = true;
    struct gq *q = &g.q[0];
    /* a ring that served 7 requests before */
    q->fr.sring->req_prod = q->fr.sring->rsp_prod = 7;
    q->fr.req_prod_pvt = q->fr.rsp_cons = 7;
    /* impossible: req_prod - rsp_prod > size */
    q->fr.sring->req_prod = 7 + 33;
    struct dp *dp = NULL;
    T_EQ(dp_create(ops, xh, &cfg, &dp), -EIO);
    T_CHECK(sim_gnt_mapped_count(g.dom) == 0, "failed dp_create left a mapping");
    T_CHECK(sim_evtchn_port_state(g.sh, DOMID, q->port) == 1, "failed dp_create left the port bound");
    q->fr.sring->req_prod = 7;
    /* the previous daemon died after publishing responses 5..6 and before
     * notifying (rsp_event armed at 5): the new one must notify once */
    q->fr.rsp_cons = 5;
    q->fr.sring->rsp_event = 5;
    dp = dp_up(&cfg, "reattach");
    bool notified = false;
    for (uint64_t end = xbd_now_ms() + 3000; !notified && xbd_now_ms() < end;) {
        struct pollfd pfd = { .fd = sim_evtchn_fd(g.ev), .events = POLLIN };
        poll(&pfd, 1, 50);
        xen_port_t p;
        while (sim_evtchn_pending(g.ev, &p) == 0) {
            notified |= p == q->port;
            sim_evtchn_unmask(g.ev, p);
        }
    }
    T_CHECK(notified, "no notification after reattach: published responses would go unseen");
    q->fr.rsp_cons = 7;
    struct treq r;
    guest_rw_req(&g, &r, BLKIF_OP_WRITE, 77, 0, 1, 3);
    guest_do_req(&g, 0, &r, BLKIF_RSP_OKAY, "request after reattach");
    T_EQ(q->fr.sring->rsp_prod, 8);
    rig_down(dp, e, &g, "reattach");
}

static void scenario_config(void)
{
    struct guest g;
    struct dp_config cfg;
    struct engine *e = rig_up(&g, &cfg, BLKIF_ABI_X86_64, 1, 1, "null:1M");
    struct dp *dp = (struct dp *)0x1;
    cfg.nr_queues = 0;
    T_EQ(dp_create(ops, xh, &cfg, &dp), -EINVAL);
    base_cfg(&cfg, &g, e);
    cfg.queue[0].nr_ring_pages = 3;
    T_EQ(dp_create(ops, xh, &cfg, &dp), -EINVAL);
    base_cfg(&cfg, &g, e);
    cfg.queue[0].nr_ring_pages = 64;
    T_EQ(dp_create(ops, xh, &cfg, &dp), -EINVAL);
    base_cfg(&cfg, &g, e);
    cfg.queue[0].ring_ref[0] = 15999;           /* not granted */
    T_CHECK(dp_create(ops, xh, &cfg, &dp) < 0, "bad ring ref accepted");
    base_cfg(&cfg, &g, e);
    cfg.queue[0].evtchn = 999;                  /* not an unbound port for us */
    T_CHECK(dp_create(ops, xh, &cfg, &dp) < 0, "bad port accepted");
    T_CHECK(dp == (struct dp *)0x1, "out-param touched on failure");
    T_CHECK(sim_gnt_mapped_count(g.dom) == 0, "failed dp_create left a mapping");
    /* never started: stop/destroy still release everything */
    base_cfg(&cfg, &g, e);
    T_ASSERT(dp_create(ops, xh, &cfg, &dp) == 0, "dp_create");
    rig_down(dp, e, &g, "never started");
}

/* BARRIER drains: nothing behind it starts and it starts only when alone;
 * a whole-disk DISCARD of a 4 GiB store goes down in <= 1 GiB pieces. */
static void scenario_barrier(void)
{
    T_LOG("scenario barrier");
    make_image();
    struct guest g;
    struct dp_config cfg;
    char spec[600];
    snprintf(spec, sizeof(spec), "delay:100000:uring:%s", imgpath);
    struct engine *e = rig_up(&g, &cfg, BLKIF_ABI_X86_64, 1, 1, spec);
    cfg.barrier = true;
    struct dp *dp = dp_up(&cfg, "dp_create");
    static struct treq w1, w2, b, rd;
    guest_rw_req(&g, &w1, BLKIF_OP_WRITE, 1, 0, 1, 1);
    guest_rw_req(&g, &w2, BLKIF_OP_WRITE, 2, 8, 1, 2);
    guest_rw_req(&g, &b, BLKIF_OP_WRITE, 3, 16, 1, 3);
    b.op = BLKIF_OP_WRITE_BARRIER;
    guest_rw_req(&g, &rd, BLKIF_OP_READ, 4, 0, 1, 0);
    guest_put_req(&g, 0, &w1);
    guest_put_req(&g, 0, &w2);
    guest_put_req(&g, 0, &b);
    guest_put_req(&g, 0, &rd);
    uint64_t t0 = xbd_now_ms();
    guest_push(&g, 0);
    struct trsp rs[4];
    T_ASSERT(guest_wait_rsps(&g, 0, rs, 4, 5000), "barrier batch not answered");
    uint64_t dt = xbd_now_ms() - t0;
    /* writes (100 ms) -> barrier write (100 ms) + flush (100 ms) -> read (100 ms) */
    T_CHECK(rs[0].id <= 2 && rs[1].id <= 2, "writes before the barrier answered after it: %llu %llu",
            (unsigned long long)rs[0].id, (unsigned long long)rs[1].id);
    T_CHECK(rs[2].id == 3 && rs[2].op == BLKIF_OP_WRITE_BARRIER && rs[2].status == BLKIF_RSP_OKAY,
            "barrier answer %llu op %u status %d", (unsigned long long)rs[2].id, rs[2].op, rs[2].status);
    T_CHECK(rs[3].id == 4 && rs[3].status == BLKIF_RSP_OKAY, "read after barrier");
    T_CHECK(dt >= 380, "barrier did not serialize: %llu ms", (unsigned long long)dt);
    T_CHECK(!memcmp(sim_dom_page(g.dom, rd.pfn[0]), sim_dom_page(g.dom, w1.pfn[0]), PG),
            "read after barrier sees the first write");
    guest_end_grants(&g, &w1);
    guest_end_grants(&g, &w2);
    guest_end_grants(&g, &b);
    guest_end_grants(&g, &rd);
    rig_down(dp, e, &g, "barrier");

    e = rig_up(&g, &cfg, BLKIF_ABI_X86_64, 1, 1, "null:4G");     /* a fresh ring */
    dp = dp_up(&cfg, "dp_create null");
    struct treq r;
    memset(&r, 0, sizeof(r));
    r.op = BLKIF_OP_DISCARD; r.id = 9; r.sector = 0; r.nr_sectors = (4ull << 30) / 512;
    guest_do_req(&g, 0, &r, BLKIF_RSP_OKAY, "whole-disk discard");
    struct vbd_stats st;
    dp_get_stats(dp, &st);
    T_EQ(st.ds_req, 1);
    rig_down(dp, e, &g, NULL);
}

/* Read-only vbd: reads served; write, flush (even without data) and
 * discard answered ERROR (docs/protocol.md §4.6, Linux -EACCES). */
static void scenario_readonly(void)
{
    T_LOG("scenario read-only");
    make_image();
    struct guest g;
    struct dp_config cfg;
    struct engine *e = rig_up(&g, &cfg, BLKIF_ABI_X86_64, 1, 1, imgpath);
    cfg.readonly = true;
    cfg.grant_mode = GRANT_MODE_COPY;
    struct dp *dp = dp_up(&cfg, "dp_create");
    struct treq r;
    guest_rw_req(&g, &r, BLKIF_OP_READ, 1, 0, 2, 0);
    guest_do_req(&g, 0, &r, BLKIF_RSP_OKAY, "read on read-only vbd");
    guest_rw_req(&g, &r, BLKIF_OP_WRITE, 2, 0, 1, 1);
    guest_do_req(&g, 0, &r, BLKIF_RSP_ERROR, "write on read-only vbd");
    memset(&r, 0, sizeof(r));
    r.op = BLKIF_OP_FLUSH_DISKCACHE; r.id = 3;
    guest_do_req(&g, 0, &r, BLKIF_RSP_ERROR, "flush on read-only vbd");
    memset(&r, 0, sizeof(r));
    r.op = BLKIF_OP_DISCARD; r.id = 4; r.nr_sectors = 8;
    guest_do_req(&g, 0, &r, cfg.discard ? BLKIF_RSP_ERROR : BLKIF_RSP_EOPNOTSUPP,
                 "discard on read-only vbd");
    uint8_t zero[512];
    memset(zero, 0x33, sizeof(zero));
    T_CHECK(file_equals(0, zero, sizeof(zero)), "read-only vbd written");
    rig_down(dp, e, &g, "read-only");
}

/* Online resize: dp_set_sectors grows the limit of every queue while the
 * threads run; shrinking is refused and changes nothing. */
static void scenario_resize(void)
{
    T_LOG("scenario resize: native, 2 queues");
    make_image();
    struct guest g;
    struct dp_config cfg;
    struct engine *e = rig_up(&g, &cfg, BLKIF_ABI_NATIVE, 2, 1, imgpath);
    const uint64_t old = IMG_SECTORS / 2;
    cfg.sectors = old;
    struct dp *dp = dp_up(&cfg, "dp_create resize");
    struct treq r;
    uint64_t id = 1;
    for (unsigned qi = 0; qi < 2; qi++) {
        guest_rw_req(&g, &r, BLKIF_OP_READ, id++, old - 8, 1, 0);
        guest_do_req(&g, qi, &r, BLKIF_RSP_OKAY, "read the last page before the resize");
        guest_rw_req(&g, &r, BLKIF_OP_WRITE, id++, old, 1, 5);
        guest_do_req(&g, qi, &r, BLKIF_RSP_ERROR, "write past the old end");
    }
    T_EQ(dp_set_sectors(dp, old - 8), -ERANGE);
    T_EQ(dp_get_sectors(dp), old);
    T_EQ(dp_set_sectors(NULL, old), -EINVAL);
    T_EQ(dp_set_sectors(dp, IMG_SECTORS), 0);
    T_EQ(dp_get_sectors(dp), IMG_SECTORS);
    for (unsigned qi = 0; qi < 2; qi++) {
        guest_rw_req(&g, &r, BLKIF_OP_WRITE, id++, old + 8 * qi, 1, 5 + qi);
        uint32_t pfn = r.pfn[0];
        guest_do_req(&g, qi, &r, BLKIF_RSP_OKAY, "write past the old end after the resize");
        T_CHECK(file_equals((old + 8 * qi) * 512, sim_dom_page(g.dom, pfn), PG),
                "queue %u: data past the old end not in the image", qi);
        guest_rw_req(&g, &r, BLKIF_OP_READ, id++, IMG_SECTORS - 8, 2, 0);
        guest_do_req(&g, qi, &r, BLKIF_RSP_ERROR, "read across the new end");
        guest_rw_req(&g, &r, BLKIF_OP_READ, id++, IMG_SECTORS - 8, 1, 0);
        guest_do_req(&g, qi, &r, BLKIF_RSP_OKAY, "read the new last page");
    }
    T_EQ(dp_set_sectors(dp, IMG_SECTORS), 0);          /* same size: fine */
    struct dp_info info;
    dp_get_info(dp, &info);
    T_EQ(info.lim.sectors, IMG_SECTORS);               /* the size now, not at dp_create */
    rig_down(dp, e, &g, "resize");
}

/* dp_get_info reports what the data plane runs with: the grant mode resolved
 * from the one asked and feature-persistent, the ring, the queues and the
 * request limits from the config, discard-secure from the engine. */
static void scenario_info(void)
{
    static const struct {
        enum grant_mode asked;
        bool persistent;
        enum grant_mode runs;
    } t[] = {
        { GRANT_MODE_AUTO, false, GRANT_MODE_COPY },
        { GRANT_MODE_AUTO, true, GRANT_MODE_PERSISTENT },
        { GRANT_MODE_PERSISTENT, false, GRANT_MODE_MAP },
        { GRANT_MODE_PERSISTENT, true, GRANT_MODE_PERSISTENT },
        { GRANT_MODE_MAP, true, GRANT_MODE_MAP },
        { GRANT_MODE_COPY, true, GRANT_MODE_COPY },
    };
    T_LOG("scenario info: the resolved grant mode and limits");
    make_image();
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        struct guest g;
        struct dp_config cfg;
        struct engine *e = rig_up(&g, &cfg, BLKIF_ABI_X86_32, 2, 4, imgpath);
        cfg.grant_mode = t[i].asked;
        cfg.persistent = t[i].persistent;
        cfg.barrier = i % 2;
        cfg.discard = true;
        cfg.max_indirect_segs = 64;
        char what[64];
        snprintf(what, sizeof(what), "asked %s, persistent %d", grant_mode_name(t[i].asked),
                 t[i].persistent);
        struct dp *dp = dp_up(&cfg, what);
        struct dp_info info;
        dp_get_info(dp, &info);
        T_CHECK(info.grant_mode == t[i].runs, "%s: runs %s, expected %s", what,
                grant_mode_name(info.grant_mode), grant_mode_name(t[i].runs));
        T_EQ(info.persistent, t[i].persistent);
        T_CHECK((info.persistent_cap > 0) == (t[i].runs == GRANT_MODE_PERSISTENT),
                "%s: persistent_cap %u", what, info.persistent_cap);
        T_EQ(info.abi, BLKIF_ABI_X86_32);
        T_EQ(info.nr_queues, 2);
        T_EQ(info.ring_order, 2);
        T_EQ(info.lim.sectors, cfg.sectors);
        T_EQ(info.lim.barrier, i % 2);
        T_EQ(info.lim.flush, cfg.flush);
        T_EQ(info.lim.discard, true);
        T_EQ(info.lim.secure_discard, e->caps.secure_discard);
        T_EQ(info.lim.max_indirect_segs, 64);
        rig_down(dp, e, &g, what);
    }
}

int main(void)
{
    log_init("t_dataplane", LOG_TARGET_STDERR, NULL, LOG_INFO);
    guest_test_host(ops, &hostdir, imgpath, sizeof(imgpath), &xh);
    scenario_config();
    scenario_io(BLKIF_ABI_X86_64, 2, GRANT_MODE_MAP);
    scenario_io(BLKIF_ABI_X86_32, 1, GRANT_MODE_COPY);
    scenario_io(BLKIF_ABI_NATIVE, 4, GRANT_MODE_MAP);
    scenario_io(BLKIF_ABI_NATIVE, 4, GRANT_MODE_COPY);
    scenario_halt(0);
    scenario_halt(200);
    scenario_faults(GRANT_MODE_MAP);
    scenario_faults(GRANT_MODE_COPY);
    scenario_reattach();
    scenario_barrier();
    scenario_readonly();
    scenario_resize();
    scenario_info();
    ops->host_close(xh);
    free(hostdir);
    return t_done();
}
