/* t_xen_ops: the Xen seam: ops tables, libxen failing cleanly without Xen, a guest/backend exchange through xen_ops_sim, xenstore through libxenstore. */
#include "harness.h"
#include "util.h"
#include "lib/peer.h"
#include "lib/xsd.h"
#include "sim.h"
#include "xen_ops.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GUEST 3
#define BACK 1              /* a non-default backend domid: "DIR,domid=1" */
#define PAGE 4096
#define ROUNDS 2000


static bool readable(int fd, int ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    return poll(&pfd, 1, ms) == 1;
}

/* ---- 1. the tables ----------------------------------------------------- */
static void check_table(const struct xen_ops *o, const char *name)
{
    T_CHECK(o->size == sizeof(struct xen_ops) && o->version == XEN_OPS_VERSION, "%s header", name);
    T_CHECK(strcmp(o->name, name) == 0, "name %s", o->name);
    void (*const *fn)(void) = (void (*const *)(void))&o->host_open;
    void (*const *end)(void) = (void (*const *)(void))(&o->evtchn_unmask + 1);
    int missing = 0;
    for (; fn < end; fn++)
        missing += *fn == NULL;
    T_EQ(missing, 0);
    T_CHECK(xen_ops_find(name) == o, "find %s", name);
}

/* ---- 2. libxen without Xen --------------------------------------------- */
static void libxen_without_xen(void)
{
    const struct xen_ops *o = &xen_ops_libxen;
    if (access("/dev/xen/gntdev", F_OK) == 0 || access("/dev/xen/evtchn", F_OK) == 0) {
        T_LOG("Xen devices present: skipping the no-Xen checks");
        return;
    }
    struct xen_host *h = (struct xen_host *)1;
    T_EQ(o->host_open(NULL, &h), -ENOENT);
    T_CHECK(h == (struct xen_host *)1, "out-param touched");
    T_EQ(o->host_open("noprobe", &h), 0);
    T_ASSERT(h && h != (struct xen_host *)1, "host");
    struct xen_gnt *g = (struct xen_gnt *)1;
    struct xen_evtchn *e = (struct xen_evtchn *)1;
    int rc = o->gnt_open(h, &g);
    T_CHECK(rc < 0 && rc > -4096, "gnt_open without Xen: %d", rc);
    T_CHECK(g == (struct xen_gnt *)1, "out-param touched");
    rc = o->evtchn_open(h, &e);
    T_CHECK(rc < 0 && rc > -4096, "evtchn_open without Xen: %d", rc);
    T_CHECK(e == (struct xen_evtchn *)1, "out-param touched");
    o->host_close(h);
}

/* ---- 3. host_open arguments ------------------------------------------- */
static void sim_args(const char *dir)
{
    const struct xen_ops *o = &xen_ops_sim;
    struct xen_host *h = NULL;
    char arg[4200];
    static const char *const bad[] = { ",domid=1", ",domid=x", ",domid=", ",foo", ",domid=1x",
                                       ",domid=99999" };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        snprintf(arg, sizeof(arg), "%s%s", dir, bad[i]);
        T_EQ(o->host_open(i == 0 ? bad[i] : arg, &h), -EINVAL);
    }
    T_EQ(o->host_open("", &h), -EINVAL);
    T_CHECK(h == NULL, "out-param touched");
    snprintf(arg, sizeof(arg), "%s,domid=%d", dir, BACK);
    T_EQ(o->host_open(arg, &h), 0);
    T_ASSERT(h, "host");
    o->host_close(h);
}

/* ---- 4. a guest and a backend through the seam -------------------------- */
struct ring_page {                  /* a toy "ring": one request, one response */
    volatile uint32_t req, rsp;
};

static void guest(struct peer *p, void *arg)
{
    const char *dir = arg;
    struct sim_host *h = NULL;
    struct sim_dom *d = NULL;
    struct sim_evtchn *e = NULL;
    T_ASSERT(sim_host_open(dir, &h) == 0, "host");
    T_ASSERT(sim_dom_create(h, GUEST, 8, 32, &d) == 0, "dom");
    T_ASSERT(sim_evtchn_open(h, GUEST, &e) == 0, "evtchn");
    uint32_t ring_ref, rd_ref, wr_ref, to0_ref;
    xen_port_t port;
    T_EQ(sim_gnt_grant(d, BACK, 0, false, &ring_ref), 0);
    T_EQ(sim_gnt_grant(d, BACK, 1, false, &rd_ref), 0);       /* backend writes (READ) */
    T_EQ(sim_gnt_grant(d, BACK, 2, true, &wr_ref), 0);        /* backend reads (WRITE) */
    T_EQ(sim_gnt_grant(d, 0, 3, false, &to0_ref), 0);          /* for domain 0 only */
    T_EQ(sim_evtchn_alloc_unbound(e, BACK, &port), 0);
    peer_put_u32(p, ring_ref);
    peer_put_u32(p, rd_ref);
    peer_put_u32(p, wr_ref);
    peer_put_u32(p, to0_ref);
    peer_put_u32(p, port);

    struct ring_page *ring = sim_dom_page(d, 0);
    uint8_t *rd = sim_dom_page(d, 1), *wr = sim_dom_page(d, 2);
    T_ASSERT(peer_get_u32(p) == 1, "sync");                         /* backend connected */
    xen_port_t got;
    for (uint32_t i = 1; i <= ROUNDS; i++) {
        memset(wr, (int)(i & 0xff), PAGE);
        ring->req = i;
        sim_evtchn_notify(e, port);
        for (;;) {
            if (!readable(sim_evtchn_fd(e), 5000)) {
                T_CHECK(0, "round %u: no response event", i);
                goto out;
            }
            if (sim_evtchn_pending(e, &got) == 0) {
                sim_evtchn_unmask(e, got);
                if (ring->rsp == i)
                    break;
            }
        }
        if (rd[0] != (uint8_t)~i || rd[PAGE - 1] != (uint8_t)~i) {
            T_CHECK(0, "round %u: data not copied to guest", i);
            break;
        }
    }
out:
    peer_put_u32(p, 2);
    T_ASSERT(peer_get_u32(p) == 3, "sync");                         /* backend gone */
    T_EQ(sim_gnt_mapped_count(d), 0);
    T_EQ(sim_evtchn_port_state(h, GUEST, port), 1);            /* unbound again */
    T_EQ(sim_gnt_end(d, ring_ref), 0);
    sim_evtchn_close(e);
    sim_dom_destroy(d);
    sim_host_close(h);
}

static void backend_via_ops(const char *dir)
{
    const struct xen_ops *o = &xen_ops_sim;
    struct peer p;
    peer_fork(&p, guest, (void *)dir);
    uint32_t ring_ref = peer_get_u32(&p), rd_ref = peer_get_u32(&p), wr_ref = peer_get_u32(&p);
    uint32_t to0_ref = peer_get_u32(&p);
    xen_port_t gport = peer_get_u32(&p);

    char arg[4200];
    snprintf(arg, sizeof(arg), "%s,domid=%d", dir, BACK);
    struct xen_host *h = NULL, *h0 = NULL;
    struct xen_gnt *g = NULL, *g0 = NULL;
    struct xen_evtchn *e = NULL;
    T_ASSERT(o->host_open(arg, &h) == 0, "host");
    T_ASSERT(o->host_open(dir, &h0) == 0, "host dom0");
    T_ASSERT(o->gnt_open(h, &g) == 0 && o->gnt_open(h0, &g0) == 0, "gnt");
    T_ASSERT(o->evtchn_open(h, &e) == 0, "evtchn");

    void *x = NULL, *ring = NULL;
    T_EQ(o->gnt_map(g, GUEST, 1, &to0_ref, PROT_READ, &x), -EINVAL);   /* not ours */
    T_EQ(o->gnt_map(g0, GUEST, 1, &ring_ref, PROT_READ, &x), -EINVAL); /* not dom0's */
    T_EQ(o->gnt_map(g0, GUEST, 1, &to0_ref, PROT_READ, &x), 0);
    T_EQ(o->gnt_unmap(g0, x, 1), 0);
    uint32_t data[2] = { rd_ref, wr_ref };
    T_EQ(o->gnt_map(g, GUEST, 2, data, PROT_READ | PROT_WRITE, &x), -EINVAL);  /* wr_ref is r/o */
    T_EQ(o->gnt_map(g, GUEST, 2, data, PROT_READ, &x), 0);
    T_EQ(o->gnt_unmap(g, x, 2), 0);
    T_EQ(o->gnt_map(g, GUEST, 1, &ring_ref, PROT_READ | PROT_WRITE, &ring), 0);
    T_ASSERT(ring, "ring");

    xen_port_t lport = 0, got = 0;
    T_EQ(o->evtchn_bind(e, GUEST, gport + 1, &lport), -EINVAL);
    T_EQ(o->evtchn_bind(e, GUEST, gport, &lport), 0);
    int efd = o->evtchn_fd(e);
    T_CHECK(fcntl(efd, F_GETFL) & O_NONBLOCK, "evtchn fd must be non-blocking");
    T_CHECK(readable(efd, 1000), "no event after bind");
    while (o->evtchn_pending(e, &got) == 0)
        T_EQ(got, lport);
    T_EQ(o->evtchn_pending(e, &got), -EAGAIN);
    T_EQ(o->evtchn_unmask(e, lport), 0);
    peer_put_u32(&p, 1);

    struct ring_page *rp = ring;
    uint8_t buf[PAGE], out[PAGE];
    uint32_t done = 0;
    double t0 = (xbd_now_ns() / 1e9);
    while (done < ROUNDS) {
        if (!readable(efd, 5000)) {
            T_CHECK(0, "no request event after %u rounds", done);
            break;
        }
        if (o->evtchn_pending(e, &got) != 0)
            continue;
        T_EQ(got, lport);
        o->evtchn_unmask(e, got);
        uint32_t req = rp->req;
        if (req == done)
            continue;                               /* spurious */
        xengnttab_grant_copy_segment_t s[2];
        memset(s, 0, sizeof(s));
        s[0].flags = GNTCOPY_source_gref;
        s[0].source.foreign.ref = wr_ref;
        s[0].source.foreign.domid = GUEST;
        s[0].dest.virt = buf;
        s[0].len = PAGE;
        memset(out, (int)(uint8_t)~req, PAGE);
        s[1].flags = GNTCOPY_dest_gref;
        s[1].dest.foreign.ref = rd_ref;
        s[1].dest.foreign.domid = GUEST;
        s[1].source.virt = out;
        s[1].len = PAGE;
        T_EQ(o->gnt_copy(g, 2, s), 0);
        if (s[0].status || s[1].status || buf[0] != (uint8_t)req || buf[PAGE - 1] != (uint8_t)req) {
            T_CHECK(0, "round %u: copy status %d %d data %u", req, s[0].status, s[1].status, buf[0]);
            break;
        }
        rp->rsp = req;
        done = req;
        T_EQ(o->evtchn_notify(e, lport), 0);
    }
    double dt = (xbd_now_ns() / 1e9) - t0;
    T_EQ(done, ROUNDS);
    T_LOG("request/response through xen_ops_sim (notify, poll, 2 x 4 KiB grant copy): %.2f us per round trip",
          dt * 1e6 / (done ? done : 1));
    T_ASSERT(peer_get_u32(&p) == 2, "sync");
    T_EQ(o->gnt_unmap(g, ring, 1), 0);
    o->evtchn_close(e);
    o->gnt_close(g);
    o->gnt_close(g0);
    o->host_close(h);
    o->host_close(h0);
    peer_put_u32(&p, 3);
    T_EQ(peer_wait(&p), 0);
}

/* ---- 5. xenstore through libxenstore and the test xenstored ----------- */
/* Next watch event within ms: 0 and the path (token checked), else -errno. */
static int next_event(const struct xen_ops *o, struct xen_xs *xs, int ms, const char *token,
                      char *path, size_t n)
{
    double end = (xbd_now_ns() / 1e9) + ms / 1000.0;
    for (;;) {
        char *pth = NULL, *tok = NULL;
        int rc = o->xs_read_watch(xs, &pth, &tok);
        if (rc == 0) {
            T_CHECK(strcmp(tok, token) == 0, "token %s", tok);
            snprintf(path, n, "%s", pth);
            free(pth);
            free(tok);
            return 0;
        }
        if (rc != -EAGAIN)
            return rc;
        int left = (int)((end - (xbd_now_ns() / 1e9)) * 1000);
        if (left <= 0 || !readable(o->xs_fd(xs), left))
            return -ETIMEDOUT;
    }
}

static void xenstore(const char *dir)
{
    char sock[108];
    pid_t xsd_pid;
    int rc = t_xsd_start(dir, sock, sizeof(sock), &xsd_pid);
    T_ASSERT(rc == 0, "test xenstored did not start: %d", rc);
    T_CHECK(xen_ops_sim.xs_read == xen_ops_libxen.xs_read, "both tables share libxenstore");

    const struct xen_ops *o = &xen_ops_sim;
    struct xen_host *h = NULL;
    struct xen_xs *xs = NULL, *xs2 = NULL;
    T_ASSERT(o->host_open(dir, &h) == 0, "host");
    T_ASSERT(o->xs_open(h, &xs) == 0, "xs_open");
    T_ASSERT(o->xs_open(h, &xs2) == 0, "xs_open 2");
    T_CHECK(o->xs_fd(xs) >= 0, "xs fd");

    char *v = NULL, **list = NULL, ev[256];
    unsigned len = 0, n = 0;
    T_EQ(o->xs_read(xs, XEN_XS_NO_TX, "/t/none", &v, &len), -ENOENT);
    T_CHECK(v == NULL, "out-param touched");
    T_EQ(o->xs_mkdir(xs, XEN_XS_NO_TX, "/t"), 0);
    T_EQ(o->xs_write(xs, XEN_XS_NO_TX, "/t/a", "hello"), 0);
    T_EQ(o->xs_write(xs, XEN_XS_NO_TX, "/t/b", ""), 0);
    T_EQ(o->xs_read(xs2, XEN_XS_NO_TX, "/t/a", &v, &len), 0);
    T_CHECK(v && strcmp(v, "hello") == 0 && len == 5, "read %s/%u", v ? v : "(null)", len);
    free(v);
    T_EQ(o->xs_directory(xs, XEN_XS_NO_TX, "/t", &list, &n), 0);
    T_EQ(n, 2);
    if (list && n == 2)
        T_CHECK((!strcmp(list[0], "a") && !strcmp(list[1], "b")) ||
                (!strcmp(list[0], "b") && !strcmp(list[1], "a")), "dir %s %s", list[0], list[1]);
    free(list);

    /* Watch: fires once at once, then on writes below the path. */
    T_EQ(o->xs_watch(xs, "/t", "tok"), 0);
    T_EQ(next_event(o, xs, 2000, "tok", ev, sizeof(ev)), 0);
    T_CHECK(strcmp(ev, "/t") == 0, "initial event for %s", ev);
    while (next_event(o, xs, 100, "tok", ev, sizeof(ev)) == 0)
        ;
    char *pth = NULL, *tok = NULL;
    T_EQ(o->xs_read_watch(xs, &pth, &tok), -EAGAIN);
    T_EQ(o->xs_write(xs2, XEN_XS_NO_TX, "/t/c", "1"), 0);
    T_EQ(next_event(o, xs, 2000, "tok", ev, sizeof(ev)), 0);
    T_CHECK(strcmp(ev, "/t/c") == 0, "event for %s", ev);

    /* Helpers. */
    uint64_t u = 7;
    T_EQ(xen_xs_printf(o, xs, XEN_XS_NO_TX, "/t/n", "%llu", 18446744073709551615ull), 0);
    T_EQ(xen_xs_read_u64(o, xs, XEN_XS_NO_TX, &u, "/t/%s", "n"), 0);
    T_CHECK(u == UINT64_MAX, "u64 %llu", (unsigned long long)u);
    T_EQ(xen_xs_printf(o, xs, XEN_XS_NO_TX, "/t/n", "18446744073709551616"), 0);
    T_EQ(xen_xs_read_u64(o, xs, XEN_XS_NO_TX, &u, "/t/n"), -ERANGE);
    T_EQ(xen_xs_read_u64(o, xs, XEN_XS_NO_TX, &u, "/t/a"), -EINVAL);
    T_EQ(xen_xs_read_u64(o, xs, XEN_XS_NO_TX, &u, "/t/b"), -EINVAL);
    T_EQ(xen_xs_read_u64(o, xs, XEN_XS_NO_TX, &u, "/t/%d", 42), -ENOENT);
    T_CHECK(u == UINT64_MAX, "out-param touched");

    /* Transactions: commit, abort, conflict -> EAGAIN. */
    xen_tx_t t = XEN_XS_NO_TX;
    T_EQ(o->xs_tx_start(xs, &t), 0);
    T_CHECK(t != XEN_XS_NO_TX, "tx id");
    T_EQ(o->xs_write(xs, t, "/t/tx", "in"), 0);
    T_EQ(o->xs_read(xs2, XEN_XS_NO_TX, "/t/tx", &v, NULL), -ENOENT);
    T_EQ(o->xs_tx_end(xs, t, false), 0);
    T_EQ(o->xs_read(xs2, XEN_XS_NO_TX, "/t/tx", &v, NULL), 0);
    free(v);
    T_EQ(o->xs_tx_start(xs, &t), 0);
    T_EQ(o->xs_write(xs, t, "/t/ab", "x"), 0);
    T_EQ(o->xs_tx_end(xs, t, true), 0);
    T_EQ(o->xs_read(xs, XEN_XS_NO_TX, "/t/ab", &v, NULL), -ENOENT);
    T_EQ(o->xs_tx_start(xs, &t), 0);
    T_EQ(o->xs_read(xs, t, "/t/a", &v, NULL), 0);
    free(v);
    T_EQ(o->xs_write(xs2, XEN_XS_NO_TX, "/t/a", "changed"), 0);
    T_EQ(o->xs_write(xs, t, "/t/a", "mine"), 0);
    T_EQ(o->xs_tx_end(xs, t, false), -EAGAIN);
    T_EQ(o->xs_read(xs, XEN_XS_NO_TX, "/t/a", &v, NULL), 0);
    T_CHECK(v && strcmp(v, "changed") == 0, "conflicting tx committed: %s", v ? v : "");
    free(v);

    T_EQ(o->xs_unwatch(xs, "/t", "tok"), 0);
    T_EQ(o->xs_rm(xs, XEN_XS_NO_TX, "/t"), 0);
    T_EQ(o->xs_read(xs2, XEN_XS_NO_TX, "/t/a", &v, NULL), -ENOENT);
    o->xs_close(xs);
    o->xs_close(xs2);
    o->host_close(h);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    check_table(&xen_ops_libxen, "libxen");
    check_table(&xen_ops_sim, "sim");
    T_CHECK(xen_ops_find("nope") == NULL && xen_ops_find(NULL) == NULL, "unknown name");
    libxen_without_xen();
    const char *dir = t_tmpdir(1);
    sim_args(dir);
    backend_via_ops(dir);
    xenstore(dir);
    return t_done();
}
