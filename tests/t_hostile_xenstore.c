/* t_hostile_xenstore: bogus frontend and toolstack xenstore data (ring refs, orders, queues, event channels, protocol, params, mode, frontend path), flapping frontend states, directories removed mid-connect and a thousand writes to watched nodes: each device goes to Closing with an error node, keeps waiting or connects safely, never crashes the daemon, maps nothing it should not, leaks nothing, and another guest's device keeps working. */
#include "harness.h"
#include "util.h"
#include "lib/e2e.h"
#include "lib/guest.h"
#include "lib/hostile.h"
#include "sim.h"
#include "blkif_abi.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xenstore.h>
#include <xen/io/xenbus.h>

#define DEVID 51712
#define GOOD_DOM 20
#define FOREIGN_DOM 5
#define IMG_MIB 4

enum expect {
    X_FATAL,            /* Closing, with <be>/error = "<errno> ..." */
    X_WAIT,             /* stays InitWait: nothing mapped, nothing bound */
    X_CLOSED,           /* goes to Closed (frontend state unusable) */
    X_CONNECT_RO,       /* connects read-only (info 4): WRITE refused */
};

struct xcase {
    const char *name;
    enum expect expect;
    const char *const *be_extra;                /* toolstack keys, see hx_add */
    void (*spoil)(struct hvbd *v, struct guest *g);     /* after the keys, before state 3 */
    unsigned nq, npages;
};

static const char *img, *good_img, *workdir;
static struct e2e E;
static struct guest good_g;
static struct hvbd good_v;
static uint64_t good_seq;

/* ---- spoilers ------------------------------------------------------------------ */

/* Write key of v's frontend directory (printf-style value). */
#define fe_put(v, key, ...) hx_write_in((v)->fe, key, __VA_ARGS__)

static void ring_ref_missing(struct hvbd *v, struct guest *g) { (void)g; hx_rm("%s/ring-ref", v->fe); }
static void ring_ref_text(struct hvbd *v, struct guest *g) { (void)g; fe_put(v, "ring-ref", "eight"); }
static void ring_ref_huge(struct hvbd *v, struct guest *g) { (void)g; fe_put(v, "ring-ref", "99999999999999999999999"); }
static void ring_ref_2_32(struct hvbd *v, struct guest *g) { (void)g; fe_put(v, "ring-ref", "4294967304"); }
static void ring_ref_neg(struct hvbd *v, struct guest *g) { (void)g; fe_put(v, "ring-ref", "-8"); }
static void ring_ref_empty(struct hvbd *v, struct guest *g) { (void)g; fe_put(v, "ring-ref", "%s", ""); }
static void ring_ref_never(struct hvbd *v, struct guest *g) { (void)g; fe_put(v, "ring-ref", "12345"); }

/* The ring page granted read-only, or to another domain, instead. */
static void ring_ref_ro(struct hvbd *v, struct guest *g)
{
    uint32_t ref;
    T_ASSERT(sim_gnt_grant(g->dom, 0, 0, true, &ref) == 0);
    fe_put(v, "ring-ref", "%u", ref);
}

static void ring_ref_foreign(struct hvbd *v, struct guest *g)
{
    uint32_t ref;
    T_ASSERT(sim_gnt_grant(g->dom, FOREIGN_DOM, 0, false, &ref) == 0);
    fe_put(v, "ring-ref", "%u", ref);
}

static void order_too_big(struct hvbd *v, struct guest *g) { (void)g; fe_put(v, "ring-page-order", "3"); }
static void order_huge(struct hvbd *v, struct guest *g) { (void)g; fe_put(v, "ring-page-order", "4294967297"); }
static void order_text(struct hvbd *v, struct guest *g) { (void)g; fe_put(v, "ring-page-order", "two"); }
static void order_ref_missing(struct hvbd *v, struct guest *g) { (void)g; hx_rm("%s/ring-ref1", v->fe); }
static void mq_zero(struct hvbd *v, struct guest *g) { (void)g; fe_put(v, "multi-queue-num-queues", "0"); }
static void mq_many(struct hvbd *v, struct guest *g) { (void)g; fe_put(v, "multi-queue-num-queues", "3"); }
static void mq_huge(struct hvbd *v, struct guest *g) { (void)g; fe_put(v, "multi-queue-num-queues", "100000"); }
static void mq_queue_missing(struct hvbd *v, struct guest *g) { (void)g; hx_rm("%s/queue-1", v->fe); }
static void evt_never(struct hvbd *v, struct guest *g) { (void)g; fe_put(v, "event-channel", "4000"); }
static void evt_huge(struct hvbd *v, struct guest *g) { (void)g; fe_put(v, "event-channel", "4294967295"); }
static void evt_missing(struct hvbd *v, struct guest *g) { (void)g; hx_rm("%s/event-channel", v->fe); }

/* A port the frontend allocated for domain FOREIGN_DOM, not for us. */
static void evt_foreign(struct hvbd *v, struct guest *g)
{
    xen_port_t p;
    T_ASSERT(sim_evtchn_alloc_unbound(g->ev, FOREIGN_DOM, &p) == 0);
    fe_put(v, "event-channel", "%u", p);
}

/* A port already bound (by a domain-0 handle that is not the daemon's). */
static struct sim_evtchn *squatter;
static void evt_bound(struct hvbd *v, struct guest *g)
{
    xen_port_t p, local;
    T_ASSERT(sim_evtchn_alloc_unbound(g->ev, 0, &p) == 0);
    T_ASSERT(sim_evtchn_open(g->sh, 0, &squatter) == 0);
    T_ASSERT(sim_evtchn_bind_interdomain(squatter, g->domid, p, &local) == 0);
    fe_put(v, "event-channel", "%u", p);
}

static void proto_arm(struct hvbd *v, struct guest *g) { (void)g; fe_put(v, "protocol", "arm-abi"); }
static void proto_junk(struct hvbd *v, struct guest *g)
{
    (void)g;
    fe_put(v, "protocol", "x86_64-abi-and-then-some-%0200d", 7);
}

static void fe_state_junk(struct hvbd *v, struct guest *g) { (void)g; fe_put(v, "state", "connected!"); }

/* ---- the well-behaved neighbour ---------------------------------------------------- */

static void connect_guest(struct guest *g, struct hvbd *v, unsigned domid, const char *params)
{
    guest_init(g, E.sim, domid, BLKIF_ABI_X86_64, 1, 1, 256);
    hx_add(v, domid, DEVID, params, NULL);
    T_ASSERT(hx_wait_be(&E.d, v, XenbusStateInitWait, 10000), "vbd %u InitWait", domid);
    hx_publish(v, g, "x86_64-abi", false);
    hx_fe_state(v, XenbusStateInitialised);
    T_ASSERT(hx_wait_be(&E.d, v, XenbusStateConnected, 10000), "vbd %u Connected", domid);
    hx_fe_state(v, XenbusStateConnected);
}

/* The neighbour still works: WRITE then READ back one page. */
static void good_io(const char *after)
{
    struct treq w, r;
    uint64_t sector = 8 * (good_seq++ % 512);
    guest_rw_req(&good_g, &w, BLKIF_OP_WRITE, 1000 + good_seq, sector, 1, good_seq);
    uint32_t wpfn = w.pfn[0];
    char what[128];
    snprintf(what, sizeof(what), "neighbour WRITE after %s", after);
    T_CHECK(guest_do_req(&good_g, 0, &w, BLKIF_RSP_OKAY, what) == BLKIF_RSP_OKAY);
    guest_rw_req(&good_g, &r, BLKIF_OP_READ, 2000 + good_seq, sector, 1, 0);
    snprintf(what, sizeof(what), "neighbour READ after %s", after);
    T_CHECK(guest_do_req(&good_g, 0, &r, BLKIF_RSP_OKAY, what) == BLKIF_RSP_OKAY);
    T_CHECK(!memcmp(sim_dom_page(good_g.dom, wpfn), sim_dom_page(good_g.dom, r.pfn[0]), GUEST_PG),
            "neighbour data after %s", after);
    T_EQ(hx_be_state(&good_v), XenbusStateConnected);
}

/* ---- one bogus device ------------------------------------------------------------- */

/* The main loop still answers the control socket (5 s receive timeout). */
static bool responsive(void)
{
    char *r = t_daemon_request(&E.d, "version");
    bool ok = r && strstr(r, "\"ok\":true");
    free(r);
    return ok;
}

/* Tear a device down the way the toolstack does and check it left nothing. */
static void cleanup(struct hvbd *v, struct guest *g, const char *name)
{
    hx_fe_state(v, XenbusStateClosed);
    char p[200];
    snprintf(p, sizeof(p), "%s/online", v->be);
    char *be = hx_read("%s", v->be);
    if (be)                             /* never resurrect a removed directory */
        hx_write(p, "0");
    free(be);
    hx_remove(v);
    T_CHECK(hx_wait_forgotten(&E.d, v->domid, v->devid, 5000), "%s: device not released", name);
    char *err = hx_read("/local/domain/0/error/backend/vbd/%u/%u/error", v->domid, v->devid);
    T_CHECK(!err, "%s: Linux-style error node left behind: %s", name, err);
    free(err);
    T_EQ(sim_gnt_mapped_count(g->dom), 0);
    if (squatter) {
        sim_evtchn_close(squatter);
        squatter = NULL;
    }
    guest_fini(g);
}

static void run_case(const struct xcase *c, unsigned domid)
{
    struct guest g;
    struct hvbd v;
    T_LOG("case %s (domid %u)", c->name, domid);
    guest_init(&g, E.sim, domid, BLKIF_ABI_X86_64, c->nq ? c->nq : 1, c->npages ? c->npages : 1, 128);
    hx_add(&v, domid, DEVID, img, c->be_extra);
    T_CHECK(hx_wait_be(&E.d, &v, XenbusStateInitWait, 10000), "%s: InitWait", c->name);
    hx_publish(&v, &g, "x86_64-abi", false);
    if (c->spoil)
        c->spoil(&v, &g);
    if (c->spoil != fe_state_junk)
        hx_fe_state(&v, XenbusStateInitialised);

    switch (c->expect) {
    case X_FATAL: {
        T_CHECK(hx_wait_be(&E.d, &v, XenbusStateClosing, 5000), "%s: not Closing", c->name);
        char *err = hx_read("%s/error", v.be);
        T_CHECK(err && atoi(err) > 0, "%s: backend error node: %s", c->name, err ? err : "(none)");
        if (err)
            T_LOG("  error: %s", err);
        free(err);
        break;
    }
    case X_WAIT:
        usleep(300000);
        T_EQ(hx_be_state(&v), XenbusStateInitWait);
        break;
    case X_CLOSED:
        T_CHECK(hx_wait_be(&E.d, &v, XenbusStateClosed, 5000), "%s: not Closed", c->name);
        break;
    case X_CONNECT_RO: {
        T_CHECK(hx_wait_be(&E.d, &v, XenbusStateConnected, 5000), "%s: not Connected", c->name);
        T_EQ(hx_read_int("%s/info", v.be) & 4, 4);
        hx_fe_state(&v, XenbusStateConnected);
        struct treq w;
        guest_rw_req(&g, &w, BLKIF_OP_WRITE, 77, 0, 1, 1);
        guest_do_req(&g, 0, &w, BLKIF_RSP_ERROR, c->name);
        break;
    }
    }
    if (c->expect != X_CONNECT_RO) {
        /* nothing of this guest is held: no ring mapped, no port bound */
        T_EQ(sim_gnt_mapped_count(g.dom), 0);
        for (unsigned i = 0; i < g.nq; i++)
            T_EQ(sim_evtchn_port_state(g.sh, domid, g.q[i].port), 1);
    }
    T_ASSERT(t_daemon_alive(&E.d), "daemon died in case %s", c->name);
    T_ASSERT(responsive(), "daemon hung in case %s (control socket does not answer)", c->name);
    cleanup(&v, &g, c->name);
    good_io(c->name);
}

/* ---- state and directory races ------------------------------------------------------ */

/* 1-3-4-5-6-1 as fast as xenstore takes it, then a clean connect and I/O. */
static void flapping(unsigned domid)
{
    struct guest g;
    struct hvbd v;
    T_LOG("case flapping frontend (domid %u)", domid);
    guest_init(&g, E.sim, domid, BLKIF_ABI_X86_64, 1, 1, 128);
    hx_add(&v, domid, DEVID, img, NULL);
    T_ASSERT(hx_wait_be(&E.d, &v, XenbusStateInitWait, 10000), "flapping: InitWait");
    hx_publish(&v, &g, "x86_64-abi", false);
    static const int seq[] = { 1, 3, 4, 5, 6, 1, 3, 6, 4, 1, 5, 0, 7, 8, 2, 3 };
    uint64_t t0 = xbd_now_ms();
    for (unsigned i = 0; i < 1200; i++)
        hx_fe_state(&v, seq[i % (ARRAY_SIZE(seq))]);
    T_LOG("  1200 state writes in %" PRIu64 " ms", xbd_now_ms() - t0);
    T_ASSERT(t_daemon_alive(&E.d), "daemon died while the frontend flapped");
    /* settle: Closed, Initialising, Initialised -> Connected */
    hx_fe_state(&v, XenbusStateClosed);
    T_CHECK(hx_wait_be(&E.d, &v, XenbusStateClosed, 10000), "flapping: not Closed");
    T_EQ(sim_gnt_mapped_count(g.dom), 0);
    hx_fe_state(&v, XenbusStateInitialising);
    T_CHECK(hx_wait_be(&E.d, &v, XenbusStateInitWait, 10000), "flapping: not InitWait again");
    hx_fe_state(&v, XenbusStateInitialised);
    T_CHECK(hx_wait_be(&E.d, &v, XenbusStateConnected, 10000), "flapping: no clean connect after");
    hx_fe_state(&v, XenbusStateConnected);
    struct treq r;
    guest_rw_req(&g, &r, BLKIF_OP_READ, 5, 8, 1, 0);
    guest_do_req(&g, 0, &r, BLKIF_RSP_OKAY, "READ after flapping");
    long long connects = t_daemon_dev_int(&E.d, domid, DEVID, "connects");
    T_LOG("  connects while flapping: %lld", connects);
    cleanup(&v, &g, "flapping");
    good_io("flapping");
}

/* The frontend (or the backend) directory disappears right after the
 * frontend said Initialised, with growing delays to hit every step of
 * the connect. */
static void removed_mid_connect(unsigned domid0, bool backend)
{
    const char *what = backend ? "backend dir removed mid-connect" : "frontend dir removed mid-connect";
    T_LOG("case %s (domids %u..%u)", what, domid0, domid0 + 11);
    for (unsigned i = 0; i < 12; i++) {
        struct guest g;
        struct hvbd v;
        unsigned domid = domid0 + i;
        guest_init(&g, E.sim, domid, BLKIF_ABI_X86_64, 1, 1, 128);
        hx_add(&v, domid, DEVID, img, NULL);
        T_ASSERT(hx_wait_be(&E.d, &v, XenbusStateInitWait, 10000), "%s: InitWait", what);
        hx_publish(&v, &g, "x86_64-abi", false);
        hx_fe_state(&v, XenbusStateInitialised);
        if (i)
            usleep(i * 700);
        hx_rm("%s", backend ? v.be : v.fe);
        if (backend) {
            T_CHECK(hx_wait_forgotten(&E.d, domid, DEVID, 5000), "%s #%u: device kept", what, i);
            usleep(50000);
            char *st = hx_read("%s/state", v.be);
            T_CHECK(!st, "%s #%u: backend state resurrected (%s)", what, i, st);
            free(st);
        } else {
            char p[200];
            snprintf(p, sizeof(p), "%s/state", v.be);
            long long s = hx_wait_int(p, XenbusStateClosed, 5000);
            T_CHECK(s == XenbusStateClosed, "%s #%u: backend state %lld, expected Closed", what, i, s);
        }
        uint64_t end = xbd_now_ms() + 3000;
        while (sim_gnt_mapped_count(g.dom) && xbd_now_ms() < end)
            usleep(5000);
        T_EQ(sim_gnt_mapped_count(g.dom), 0);
        T_EQ(sim_evtchn_port_state(g.sh, domid, g.q[0].port), 1);
        T_ASSERT(t_daemon_alive(&E.d), "daemon died (%s)", what);
        cleanup(&v, &g, what);
    }
    good_io(what);
}

/* A thousand writes to each watched node of a connected device: it stays
 * Connected and keeps working, and the daemon keeps up. */
static void watch_storm(unsigned domid)
{
    struct guest g;
    struct hvbd v;
    T_LOG("case watch storm (domid %u)", domid);
    connect_guest(&g, &v, domid, img);
    char fs[200], bs[200], hs[200], on[200];
    snprintf(fs, sizeof(fs), "%s/state", v.fe);
    snprintf(bs, sizeof(bs), "%s/state", v.be);
    snprintf(hs, sizeof(hs), "%s/hotplug-status", v.be);
    snprintf(on, sizeof(on), "%s/online", v.be);
    /* the daemon logs each watch event it handles (debug), in the order sent */
    char fs_event[220];
    snprintf(fs_event, sizeof(fs_event), "watch %s [xbd:vbd:", fs);
    long fs0 = hx_log_count(&E.d, fs_event, NULL);
    uint64_t t0 = xbd_now_ms();
    for (unsigned i = 0; i < 1000; i++) {
        hx_write(fs, "%d", XenbusStateConnected);
        hx_write(hs, i & 1 ? "connected" : "garbage-%u", i);
        hx_write(on, "1");
        hx_write(bs, "%d", XenbusStateConnected);
    }
    /* a control request is answered while the events are still queued (the
     * daemon handles them in batches), not after the whole backlog */
    T_EQ(t_daemon_dev_int(&E.d, domid, DEVID, "connected"), 1);
    T_LOG("  4000 writes, and a control request answered %" PRIu64 " ms after the storm began",
          xbd_now_ms() - t0);
    /* one more frontend-state write: once its event is handled, every event
     * of the storm is (a generous bound on the condition, not a timing goal) */
    hx_write(fs, "%d", XenbusStateConnected);
    uint64_t end = xbd_now_ms() + 120000;
    long seen;
    while ((seen = hx_log_count(&E.d, fs_event, NULL)) < fs0 + 1001 && xbd_now_ms() < end &&
           t_daemon_alive(&E.d))
        usleep(100000);
    T_CHECK(seen >= fs0 + 1001, "%ld of the 1001 frontend-state events handled", seen - fs0);
    T_LOG("  the daemon caught up in %" PRIu64 " ms", xbd_now_ms() - t0);
    T_EQ(hx_be_state(&v), XenbusStateConnected);
    T_EQ(t_daemon_dev_int(&E.d, domid, DEVID, "connects"), 1);
    struct treq r;
    guest_rw_req(&g, &r, BLKIF_OP_READ, 9, 16, 1, 0);
    guest_do_req(&g, 0, &r, BLKIF_RSP_OKAY, "READ after the watch storm");
    cleanup(&v, &g, "watch storm");
    good_io("watch storm");
}

/* ---- main ------------------------------------------------------------------------- */

int main(void)
{
    const char *dargs[] = { "--max-queues=2", "--max-ring-page-order=2", NULL };
    e2e_start(&E, dargs);
    workdir = E.work;
    img = e2e_make_image(&E, "img.raw", IMG_MIB);
    /* the neighbour writes its own image: img.raw is the bogus devices' one,
     * and one image has one writer at a time */
    good_img = e2e_make_image(&E, "good.raw", IMG_MIB);
    hx_open();

    connect_guest(&good_g, &good_v, GOOD_DOM, good_img);
    good_io("connect");
    int fds0 = t_count_fds_pid(E.d.pid), thr0 = t_count_threads_pid(E.d.pid);

    char missing[600], dir[600], fifo[600];
    snprintf(missing, sizeof(missing), "%s/no-such-image", workdir);
    snprintf(dir, sizeof(dir), "%s/a-directory", workdir);
    snprintf(fifo, sizeof(fifo), "%s/a-fifo", workdir);
    T_ASSERT(mkdir(dir, 0700) == 0);
    T_ASSERT(mkfifo(fifo, 0600) == 0);
    const char *no_params[] = { "params", NULL, NULL };
    const char *empty_params[] = { "params", "", NULL };
    const char *missing_params[] = { "params", missing, NULL };
    const char *dir_params[] = { "params", dir, NULL };
    const char *dir_params_ro[] = { "params", dir, "mode", "r", NULL };
    const char *fifo_params[] = { "params", fifo, NULL };
    const char *fifo_params_ro[] = { "params", fifo, "mode", "r", NULL };
    char elsewhere[128];
    snprintf(elsewhere, sizeof(elsewhere), "/local/domain/%u/device/vbd/%u", GOOD_DOM, DEVID);
    const char *fe_elsewhere[] = { "frontend", elsewhere, NULL };
    const char *filter_params[] = { "params", "delay:1:/etc/passwd", NULL };
    const char *mode_junk[] = { "mode", "\x01garbage-mode", NULL };
    const char *mode_empty[] = { "mode", "", NULL };
    const char *no_mode[] = { "mode", NULL, NULL };

    const struct xcase cases[] = {
        { "ring-ref missing", X_FATAL, NULL, ring_ref_missing, 0, 0 },
        { "ring-ref not a number", X_FATAL, NULL, ring_ref_text, 0, 0 },
        { "ring-ref huge", X_FATAL, NULL, ring_ref_huge, 0, 0 },
        { "ring-ref 2^32+8", X_FATAL, NULL, ring_ref_2_32, 0, 0 },
        { "ring-ref negative", X_FATAL, NULL, ring_ref_neg, 0, 0 },
        { "ring-ref empty", X_FATAL, NULL, ring_ref_empty, 0, 0 },
        { "ring-ref never granted", X_FATAL, NULL, ring_ref_never, 0, 0 },
        { "ring-ref granted read-only", X_FATAL, NULL, ring_ref_ro, 0, 0 },
        { "ring-ref granted to another domain", X_FATAL, NULL, ring_ref_foreign, 0, 0 },
        { "ring-page-order above the maximum", X_FATAL, NULL, order_too_big, 0, 2 },
        { "ring-page-order huge", X_FATAL, NULL, order_huge, 0, 2 },
        { "ring-page-order not a number", X_FATAL, NULL, order_text, 0, 2 },
        { "ring-ref1 missing", X_FATAL, NULL, order_ref_missing, 0, 2 },
        { "multi-queue-num-queues 0", X_FATAL, NULL, mq_zero, 2, 0 },
        { "multi-queue-num-queues above the maximum", X_FATAL, NULL, mq_many, 2, 0 },
        { "multi-queue-num-queues huge", X_FATAL, NULL, mq_huge, 2, 0 },
        { "queue-1 directory missing", X_FATAL, NULL, mq_queue_missing, 2, 0 },
        { "event-channel not allocated", X_FATAL, NULL, evt_never, 0, 0 },
        { "event-channel huge", X_FATAL, NULL, evt_huge, 0, 0 },
        { "event-channel missing", X_FATAL, NULL, evt_missing, 0, 0 },
        { "event-channel allocated for another domain", X_FATAL, NULL, evt_foreign, 0, 0 },
        { "event-channel already bound", X_FATAL, NULL, evt_bound, 0, 0 },
        { "protocol arm-abi", X_FATAL, NULL, proto_arm, 0, 0 },
        { "protocol garbage", X_FATAL, NULL, proto_junk, 0, 0 },
        { "params missing", X_FATAL, no_params, NULL, 0, 0 },
        { "params empty", X_FATAL, empty_params, NULL, 0, 0 },
        { "params a missing file", X_FATAL, missing_params, NULL, 0, 0 },
        { "params a directory", X_FATAL, dir_params, NULL, 0, 0 },
        { "params a directory, mode r", X_FATAL, dir_params_ro, NULL, 0, 0 },
        { "params a FIFO", X_FATAL, fifo_params, NULL, 0, 0 },
        { "params a FIFO, mode r", X_FATAL, fifo_params_ro, NULL, 0, 0 },
        { "params a test filter engine", X_FATAL, filter_params, NULL, 0, 0 },
        { "mode garbage", X_CONNECT_RO, mode_junk, NULL, 0, 0 },
        { "mode empty", X_CONNECT_RO, mode_empty, NULL, 0, 0 },
        { "mode missing", X_CONNECT_RO, no_mode, NULL, 0, 0 },
        { "frontend path of another domain", X_WAIT, fe_elsewhere, NULL, 0, 0 },
        { "frontend state garbage (read as Unknown)", X_CLOSED, NULL, fe_state_junk, 0, 0 },
    };
    unsigned domid = 30;
    for (unsigned i = 0; i < ARRAY_SIZE(cases); i++)
        run_case(&cases[i], domid++);
    flapping(domid++);
    removed_mid_connect(domid, false);
    domid += 12;
    removed_mid_connect(domid, true);
    domid += 12;
    watch_storm(domid++);

    T_EQ(t_daemon_ndevices(&E.d), 1);
    T_EQ(t_count_fds_pid(E.d.pid), fds0);
    T_EQ(t_count_threads_pid(E.d.pid), thr0);
    long refused = hx_log_count(&E.d, "refused", NULL);
    T_LOG("daemon log: %ld lines, %ld of them refusals", hx_log_count(&E.d, "", NULL), refused);

    /* the neighbour leaves cleanly; nothing bound or mapped; LeakSanitizer clean */
    hx_fe_state(&good_v, XenbusStateClosing);
    hx_fe_state(&good_v, XenbusStateClosed);
    T_CHECK(hx_wait_be(&E.d, &good_v, XenbusStateClosed, 10000), "neighbour not Closed");
    cleanup(&good_v, &good_g, "neighbour");
    struct sim_host *h;
    T_ASSERT(sim_host_open(E.sim, &h) == 0);
    T_EQ(sim_evtchn_ports_in_use(h, 0), 0);
    sim_host_close(h);
    T_EQ(e2e_stop(&E), 0);
    if (t_failures)
        t_daemon_dump_log(&E.d, 60);
    return t_done();
}
