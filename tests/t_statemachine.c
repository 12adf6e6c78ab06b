/* t_statemachine: xen-blkbackd (child process, simulated host, test xenstored) follows the xenbus state machine of docs/protocol.md §2 for connect, reconnect, online=0 unplug and a vanishing frontend, releases every grant and port, and a bogus req_prod halts only that device; a daemon killed with SIGKILL is replaced by one that reattaches. */
#include "harness.h"
#include "util.h"
#include "lib/daemon.h"
#include "lib/hostile.h"
#include "lib/xsd.h"
#include "sim.h"
#include "blkif_abi.h"         /* xenctrl.h barriers for ring.h */

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>
#include <xen/io/blkif.h>
#include <xen/io/xenbus.h>

#define BE_DOMID 0
#define IMG_BYTES (8u << 20)
#define TIMEOUT_MS 10000        /* libxl's limit for every backend transition */

static struct xs_handle *xsh;
static struct sim_host *host;
static struct t_daemon daemon_;
static const char *workdir;
static char img_path[512];
static char img2_path[512];     /* the same content, for a second writer at the same time */

/* ---- xenstore as toolstack and frontend ---------------------------------------------- */

static void xs_put(xs_transaction_t t, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void xs_put(xs_transaction_t t, const char *path, const char *fmt, ...)
{
    char v[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    T_ASSERT(xs_write(xsh, t, path, v, strlen(v)), "xs_write %s", path);
}

struct fe {
    unsigned domid, devid;
    char be[128], fe[128], bstate[160];
    struct sim_dom *dom;
    struct sim_evtchn *evt;
    uint32_t ring_pfn, data_pfn;
    uint32_t ring_ref, data_ref;
    xen_port_t port;
    blkif_front_ring_t ring;
    bool granted;
};

/* libxl 4.17 layout (docs/protocol.md §1.1), one transaction for both ends. */
static void toolstack_add_kind(struct fe *f, const char *kind, unsigned domid, unsigned devid,
                               const char *vdev, const char *params)
{
    memset(f, 0, sizeof(*f));
    f->domid = domid;
    f->devid = devid;
    snprintf(f->be, sizeof(f->be), "/local/domain/%u/backend/%s/%u/%u", BE_DOMID, kind, domid, devid);
    snprintf(f->fe, sizeof(f->fe), "/local/domain/%u/device/vbd/%u", domid, devid);
    snprintf(f->bstate, sizeof(f->bstate), "%s/state", f->be);
    T_ASSERT(sim_dom_create(host, domid, 16, 64, &f->dom) == 0, "sim_dom_create %u", domid);
    T_ASSERT(sim_evtchn_open(host, domid, &f->evt) == 0, "sim_evtchn_open");
    f->ring_pfn = 0;
    f->data_pfn = 1;

    char p[256];
    for (;;) {
        xs_transaction_t t = xs_transaction_start(xsh);
        T_ASSERT(t, "tx");
#define B(k, ...) do { snprintf(p, sizeof(p), "%s/%s", f->be, k); xs_put(t, p, __VA_ARGS__); } while (0)
#define F(k, ...) do { snprintf(p, sizeof(p), "%s/%s", f->fe, k); xs_put(t, p, __VA_ARGS__); } while (0)
        B("frontend", "%s", f->fe);
        B("frontend-id", "%u", domid);
        B("online", "1");
        B("state", "1");
        B("params", "%s", params);
        B("script", "/etc/xen/scripts/block-xen-blkbackd");
        B("type", "phy");
        B("mode", "w");
        B("device-type", "disk");
        B("removable", "0");
        B("bootable", "1");
        B("dev", "%s", vdev);
        B("discard-enable", "1");
        B("specification", "xen");
        F("backend", "%s", f->be);
        F("backend-id", "%u", BE_DOMID);
        F("state", "1");
        F("virtual-device", "%u", devid);
        F("device-type", "disk");
        F("trusted", "1");
#undef B
#undef F
        if (xs_transaction_end(xsh, t, false))
            break;
        T_ASSERT(errno == EAGAIN, "tx end: %s", strerror(errno));
    }
}

static void toolstack_add(struct fe *f, unsigned domid, unsigned devid, const char *vdev)
{
    toolstack_add_kind(f, "vbd", domid, devid, vdev, img_path);
}

/* xl block-detach: online=0 and state=5 (Closing) in one transaction. */
static void toolstack_unplug(const struct fe *f)
{
    xs_transaction_t t = xs_transaction_start(xsh);
    char p[256];
    snprintf(p, sizeof(p), "%s/online", f->be);
    xs_put(t, p, "0");
    xs_put(t, f->bstate, "5");
    T_ASSERT(xs_transaction_end(xsh, t, false), "tx");
}

static void be_write(const struct fe *f, const char *key, const char *val)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", f->be, key);
    xs_put(XBT_NULL, p, "%s", val);
}

/* Frontend: grant a fresh ring page, allocate the event channel, publish,
 * go to Initialised (Linux talk_to_blkback). */
static void fe_publish(struct fe *f)
{
    void *ring = sim_dom_page(f->dom, f->ring_pfn);
    T_ASSERT(ring, "ring page");
    memset(ring, 0, XEN_PAGE_SIZE);
    SHARED_RING_INIT((blkif_sring_t *)ring);
    FRONT_RING_INIT(&f->ring, (blkif_sring_t *)ring, XEN_PAGE_SIZE);
    T_ASSERT(sim_gnt_grant(f->dom, BE_DOMID, f->ring_pfn, false, &f->ring_ref) == 0, "grant ring");
    T_ASSERT(sim_gnt_grant(f->dom, BE_DOMID, f->data_pfn, false, &f->data_ref) == 0, "grant data");
    f->granted = true;
    T_ASSERT(sim_evtchn_alloc_unbound(f->evt, BE_DOMID, &f->port) == 0, "alloc unbound");
    hx_write_in(f->fe, "ring-ref", "%u", f->ring_ref);
    hx_write_in(f->fe, "event-channel", "%u", f->port);
    hx_write_in(f->fe, "protocol", "%s", "x86_64-abi");
    hx_write_in(f->fe, "feature-persistent", "1");
    hx_write_in(f->fe, "state", "%d", XenbusStateInitialised);
}

/* Frontend: give the grants back (fails with -EBUSY while the backend maps them). */
static void fe_revoke(struct fe *f)
{
    if (!f->granted)
        return;
    T_CHECK(sim_gnt_end(f->dom, f->ring_ref) == 0, "ring grant still mapped (vbd %u/%u)", f->domid, f->devid);
    T_CHECK(sim_gnt_end(f->dom, f->data_ref) == 0, "data grant still mapped (vbd %u/%u)", f->domid, f->devid);
    sim_evtchn_unbind(f->evt, f->port);
    f->granted = false;
}

/* One READ of sector `sector` (8 sectors = the data page); returns status. */
static int fe_read(struct fe *f, uint64_t sector, int timeout_ms)
{
    blkif_request_t *req = RING_GET_REQUEST(&f->ring, f->ring.req_prod_pvt);
    memset(req, 0, sizeof(*req));
    req->operation = BLKIF_OP_READ;
    req->nr_segments = 1;
    req->handle = (blkif_vdev_t)f->devid;
    req->id = 0x1234 + f->ring.req_prod_pvt;
    req->sector_number = sector;
    req->seg[0].gref = f->data_ref;
    req->seg[0].first_sect = 0;
    req->seg[0].last_sect = 7;
    uint64_t id = req->id;
    f->ring.req_prod_pvt++;
    int notify;
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&f->ring, notify);
    sim_evtchn_notify(f->evt, f->port);
    (void)notify;
    long long end = (long long)xbd_now_ms() + timeout_ms;
    while (!RING_HAS_UNCONSUMED_RESPONSES(&f->ring)) {
        if ((long long)xbd_now_ms() >= end)
            return -1000;
        usleep(1000);
    }
    blkif_response_t *rsp = RING_GET_RESPONSE(&f->ring, f->ring.rsp_cons);
    int st = rsp->status;
    T_CHECK(rsp->id == id, "response id %llx, expected %llx", (unsigned long long)rsp->id,
            (unsigned long long)id);
    T_CHECK(rsp->operation == BLKIF_OP_READ, "response op %u", rsp->operation);
    f->ring.rsp_cons++;
    return st;
}

/* The data page holds the image's sector `sector`..+7? */
static bool data_matches(struct fe *f, uint64_t sector)
{
    const uint32_t *w = sim_dom_page(f->dom, f->data_pfn);
    for (unsigned i = 0; i < XEN_PAGE_SIZE / 4; i++)
        if (w[i] != (uint32_t)(sector * 512 / 4 + i))
            return false;
    return true;
}

/* Connect and check the advertised keys (docs/protocol.md §1.2). */
static void connect_and_check(struct fe *f, bool hotplug_gate)
{
    T_ASSERT(hx_wait_int(f->bstate, XenbusStateInitWait, TIMEOUT_MS) == XenbusStateInitWait,
             "vbd %u/%u did not reach InitWait", f->domid, f->devid);
    fe_publish(f);
    if (hotplug_gate) {
        /* No hotplug-status yet: the backend must not pass InitWait, and after
         * --hotplug-warn (500 ms here) it says once why it waits (xen-blkbackd(8)
         * --hotplug-warn); the wait itself is logged once, not per watch event. */
        char dev[32];
        snprintf(dev, sizeof(dev), "vbd %u/%u:", f->domid, f->devid);
        const char *warn = "no hotplug-status after";
        long w0 = hx_log_count(&daemon_, warn, dev);
        usleep(300000);
        T_EQ(hx_read_int("%s", f->bstate), XenbusStateInitWait);
        for (int i = 0; i < 50 && hx_log_count(&daemon_, warn, dev) == w0; i++) {
            hx_write_in(f->fe, "state", "%d", XenbusStateInitialised);  /* more watch events */
            usleep(100000);
        }
        usleep(300000);
        T_EQ(hx_log_count(&daemon_, warn, dev) - w0, 1);
        T_EQ(hx_log_count(&daemon_, "waiting for hotplug-status=connected", dev), 1);
        T_EQ(hx_read_int("%s", f->bstate), XenbusStateInitWait);
        be_write(f, "hotplug-status", "connected");
    }
    long long t0 = (long long)xbd_now_ms();
    long long st = hx_wait_int(f->bstate, XenbusStateConnected, TIMEOUT_MS);
    if (st != XenbusStateConnected)
        t_daemon_dump_log(&daemon_, 40);
    T_ASSERT(st == XenbusStateConnected, "vbd %u/%u: backend state %lld, not Connected", f->domid,
             f->devid, st);
    T_LOG("vbd %u/%u connected in %lld ms", f->domid, f->devid, (long long)xbd_now_ms() - t0);
    hx_write_in(f->fe, "state", "%d", XenbusStateConnected);

    T_EQ(hx_read_int("%s/sectors", f->be), IMG_BYTES / 512);
    T_EQ(hx_read_int("%s/info", f->be), 0);
    T_EQ(hx_read_int("%s/sector-size", f->be), 512);
    long long pss = hx_read_int("%s/physical-sector-size", f->be);
    T_CHECK(pss >= 512 && (pss & (pss - 1)) == 0, "physical-sector-size %lld", pss);
    T_EQ(hx_read_int("%s/feature-flush-cache", f->be), 1);
    T_EQ(hx_read_int("%s/feature-barrier", f->be), 0);
    /* grant mode auto with io_uring is grant copy (crash-safe): not offered */
    T_EQ(hx_read_int("%s/feature-persistent", f->be), 0);
    long long fd = hx_read_int("%s/feature-discard", f->be);
    T_CHECK(fd == -1 || fd == 1, "feature-discard %lld", fd);
    if (fd == 1) {
        T_CHECK(hx_read_int("%s/discard-granularity", f->be) > 0, "discard-granularity");
        T_CHECK(hx_read_int("%s/discard-alignment", f->be) >= 0, "discard-alignment");
    }
    T_EQ(sim_gnt_ref_mapped(f->dom, f->ring_ref), 1);
    T_EQ(sim_evtchn_port_state(host, f->domid, f->port), 2);     /* interdomain */
}

/* A device added by the toolstack (toolstack_add_kind), its hotplug script
 * done, connected and checked. */
static void add_connected(struct fe *f, const char *kind, unsigned domid, unsigned devid,
                          const char *vdev, const char *params)
{
    toolstack_add_kind(f, kind, domid, devid, vdev, params);
    be_write(f, "hotplug-status", "connected");
    connect_and_check(f, false);
}

/* Frontend closes (6): backend must reach Closed with the frontend's grants free. */
static void fe_close(struct fe *f)
{
    hx_write_in(f->fe, "state", "%d", XenbusStateClosing);
    long long st = hx_wait_int(f->bstate, XenbusStateClosing, TIMEOUT_MS);
    T_CHECK(st == XenbusStateClosing, "frontend Closing: backend %lld", st);
    hx_write_in(f->fe, "state", "%d", XenbusStateClosed);
    st = hx_wait_int(f->bstate, XenbusStateClosed, TIMEOUT_MS);
    T_CHECK(st == XenbusStateClosed, "frontend Closed: backend %lld", st);
    T_EQ(sim_gnt_mapped_count(f->dom), 0);
    fe_revoke(f);
}

static void toolstack_remove(struct fe *f)
{
    xs_rm(xsh, XBT_NULL, f->fe);
    xs_rm(xsh, XBT_NULL, f->be);
    if (f->granted)
        fe_revoke(f);
    sim_evtchn_close(f->evt);
    sim_dom_destroy(f->dom);
    f->dom = NULL;
}

/* The daemon forgets a device within timeout_ms. */
static bool wait_forgotten(const struct fe *f, unsigned timeout_ms)
{
    long long end = (long long)xbd_now_ms() + timeout_ms;
    while (t_daemon_dev_int(&daemon_, f->domid, f->devid, "state") != -1) {
        if ((long long)xbd_now_ms() >= end)
            return false;
        usleep(10000);
    }
    return true;
}

/* The daemon reports the device connected within timeout_ms: its
 * "connected" field (1), or what it last was. */
static long long wait_reattached(const struct fe *f, unsigned timeout_ms)
{
    long long end = (long long)xbd_now_ms() + timeout_ms, v;
    while ((v = t_daemon_dev_int(&daemon_, f->domid, f->devid, "connected")) != 1 && (long long)xbd_now_ms() < end)
        usleep(10000);
    return v;
}

static void make_image(char *path, size_t len, const char *name)
{
    snprintf(path, len, "%s/%s", workdir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    T_ASSERT(fd >= 0, "image");
    uint32_t *buf = malloc(IMG_BYTES);
    for (unsigned i = 0; i < IMG_BYTES / 4; i++)
        buf[i] = i;
    T_ASSERT(write(fd, buf, IMG_BYTES) == (ssize_t)IMG_BYTES, "write image");
    free(buf);
    close(fd);
}

int main(void)
{
    int rc;
    workdir = t_tmpdir(0);
    const char *hostdir = t_tmpdir(1);
    make_image(img_path, sizeof(img_path), "img.raw");
    make_image(img2_path, sizeof(img2_path), "img2.raw");
    char xs_sock[108];
    pid_t xsd_pid;
    rc = t_xsd_start(workdir, xs_sock, sizeof(xs_sock), &xsd_pid);
    T_SKIP_IF(rc == -ENOENT, "xen-sim-xenstored not built");
    T_ASSERT(rc == 0, "t_xsd_start: %d", rc);
    hx_open();
    xsh = hx_xs();
    T_ASSERT(sim_host_open(hostdir, &host) == 0, "sim_host_open");

    char xen[600];
    snprintf(xen, sizeof(xen), "--xen=sim:%s,domid=%d", hostdir, BE_DOMID);
    const char *args[] = { xen, "--wait-hotplug=yes", "--hotplug-warn=500", "--max-queues=2", NULL };
    rc = t_daemon_start(&daemon_, workdir, args, 10000);
    T_ASSERT(rc == 0, "daemon start: %d", rc);
    T_EQ(t_daemon_ndevices(&daemon_), 0);
    int fds0 = t_count_fds_pid(daemon_.pid), threads0 = t_count_threads_pid(daemon_.pid);

    /* 1. Normal connect, with the hotplug gate, then I/O through the ring. */
    T_LOG("1. connect");
    struct fe a;
    long long t0 = (long long)xbd_now_ms();
    toolstack_add(&a, 5, 51712, "xvda");
    T_ASSERT(hx_wait_int(a.bstate, XenbusStateInitWait, TIMEOUT_MS) == XenbusStateInitWait, "InitWait");
    T_LOG("InitWait after %lld ms", (long long)xbd_now_ms() - t0);
    T_EQ(hx_read_int("%s/max-ring-page-order", a.be), 4);
    T_EQ(hx_read_int("%s/multi-queue-max-queues", a.be), 2);
    T_EQ(hx_read_int("%s/feature-max-indirect-segments", a.be), 256);
    connect_and_check(&a, true);
    T_EQ(fe_read(&a, 16, 5000), BLKIF_RSP_OKAY);
    T_CHECK(data_matches(&a, 16), "READ data differs from the image");
    T_EQ(t_daemon_stat(&daemon_, 5, 51712, "rd_req"), 1);
    T_EQ(t_daemon_stat(&daemon_, 5, 51712, "rd_sect"), 8);
    T_EQ(t_daemon_dev_int(&daemon_, 5, 51712, "connected"), 1);

    /* 2. Reconnect: frontend 6 then 1 -> backend 2 -> connect again. */
    T_LOG("2. reconnect");
    fe_close(&a);
    hx_write_in(a.fe, "state", "%d", XenbusStateInitialising);
    T_EQ(hx_wait_int(a.bstate, XenbusStateInitWait, TIMEOUT_MS), XenbusStateInitWait);
    connect_and_check(&a, false);      /* hotplug-status is still connected */
    T_EQ(fe_read(&a, 0, 5000), BLKIF_RSP_OKAY);
    T_CHECK(data_matches(&a, 0), "READ data differs after reconnect");
    T_EQ(t_daemon_dev_int(&daemon_, 5, 51712, "connects"), 2);
    T_EQ(t_daemon_stat(&daemon_, 5, 51712, "rd_req"), 2);   /* counters survive a reconnect */

    /* 3. Bogus req_prod on one device halts only that device.  Device b
     *    has an image of its own: a writes to img.raw, which is locked. */
    T_LOG("3. bogus req_prod");
    struct fe b;
    add_connected(&b, "vbd", 6, 51728, "xvdb", img2_path);
    a.ring.sring->req_prod = a.ring.sring->rsp_prod + 1000;
    sim_evtchn_notify(a.evt, a.port);
    long long end = (long long)xbd_now_ms() + 5000;
    while (t_daemon_dev_int(&daemon_, 5, 51712, "halted") != 1 && (long long)xbd_now_ms() < end)
        usleep(10000);
    T_EQ(t_daemon_dev_int(&daemon_, 5, 51712, "halted"), 1);
    T_EQ(fe_read(&b, 8, 5000), BLKIF_RSP_OKAY);
    T_CHECK(data_matches(&b, 8), "device b data");
    T_EQ(t_daemon_dev_int(&daemon_, 6, 51728, "halted"), 0);
    T_CHECK(t_daemon_alive(&daemon_), "daemon died");
    T_EQ(hx_read_int("%s", b.bstate), XenbusStateConnected);
    fe_close(&a);                       /* the halted device still closes cleanly */

    /* 4. online=0 unplug (xl block-detach): toolstack writes online=0 and
     *    state=5; the connected frontend closes; the device is finished. */
    T_LOG("4. online=0 unplug");
    toolstack_unplug(&b);
    usleep(200000);
    T_EQ(hx_read_int("%s", b.bstate), XenbusStateClosing);   /* frontend still connected: wait */
    hx_write_in(b.fe, "state", "%d", XenbusStateClosing);
    hx_write_in(b.fe, "state", "%d", XenbusStateClosed);
    T_EQ(hx_wait_int(b.bstate, XenbusStateClosed, TIMEOUT_MS), XenbusStateClosed);
    T_EQ(sim_gnt_mapped_count(b.dom), 0);
    T_CHECK(wait_forgotten(&b, 5000), "vbd 6/51728 not released after online=0 + Closed");
    fe_revoke(&b);
    toolstack_remove(&b);

    /* 4b. online=0 while the frontend never connected: Closed at once. */
    T_LOG("4b. online=0 with an idle frontend");
    struct fe c;
    toolstack_add(&c, 7, 51744, "xvdc");
    T_EQ(hx_wait_int(c.bstate, XenbusStateInitWait, TIMEOUT_MS), XenbusStateInitWait);
    toolstack_unplug(&c);
    T_EQ(hx_wait_int(c.bstate, XenbusStateClosed, TIMEOUT_MS), XenbusStateClosed);
    T_CHECK(wait_forgotten(&c, 5000), "vbd 7/51744 not released");
    toolstack_remove(&c);

    /* 5. Frontend directory vanishes (xl destroy): Closed within 10 s, no
     *    grant mapped, no port bound, backend directory kept. */
    T_LOG("5. frontend vanishes");
    hx_write_in(a.fe, "state", "%d", XenbusStateInitialising);
    T_EQ(hx_wait_int(a.bstate, XenbusStateInitWait, TIMEOUT_MS), XenbusStateInitWait);
    connect_and_check(&a, false);
    T_EQ(fe_read(&a, 24, 5000), BLKIF_RSP_OKAY);
    int ports_before = sim_evtchn_ports_in_use(host, BE_DOMID);
    T_CHECK(ports_before >= 1, "backend ports in use: %d", ports_before);
    t0 = (long long)xbd_now_ms();
    T_ASSERT(xs_rm(xsh, XBT_NULL, a.fe), "rm frontend");
    long long st = hx_wait_int(a.bstate, XenbusStateClosed, TIMEOUT_MS);
    long long took = (long long)xbd_now_ms() - t0;
    T_EQ(st, XenbusStateClosed);
    T_LOG("Closed %lld ms after the frontend vanished", took);
    T_CHECK(took < 5000, "Closed only after %lld ms", took);
    T_EQ(sim_gnt_mapped_count(a.dom), 0);
    T_EQ(sim_evtchn_ports_in_use(host, BE_DOMID), 0);
    char *dirv = hx_read("%s", a.be);
    T_CHECK(dirv != NULL, "backend directory deleted by the daemon");
    free(dirv);
    /* libxl FORCE_ON then writes online=0 and removes the backend. */
    be_write(&a, "online", "0");
    T_CHECK(wait_forgotten(&a, 5000), "vbd 5/51712 not released");
    fe_revoke(&a);
    toolstack_remove(&a);
    /* Four devices came and went: no fd or thread left behind. */
    T_EQ(t_daemon_ndevices(&daemon_), 0);
    T_EQ(t_count_fds_pid(daemon_.pid), fds0);
    T_EQ(t_count_threads_pid(daemon_.pid), threads0);

    /* 6. SIGTERM: exit 0, nothing left mapped. */
    T_LOG("6. shutdown");
    struct fe d;
    add_connected(&d, "vbd", 8, 51760, "xvdd", img_path);
    T_EQ(fe_read(&d, 32, 5000), BLKIF_RSP_OKAY);
    rc = t_daemon_stop(&daemon_, 10000);
    T_EQ(rc, 0);
    T_EQ(sim_gnt_mapped_count(d.dom), 0);
    T_EQ(sim_evtchn_ports_in_use(host, BE_DOMID), 0);
    T_EQ(hx_read_int("%s", d.bstate), XenbusStateConnected);   /* on-exit=leave */

    /* 7. A restarted daemon reattaches to the connected ring (no state change). */
    T_LOG("7. restart and reattach");
    const char *args2[] = { xen, "--wait-hotplug=yes", "--max-queues=2",
                            "--backend-types=vbd,vbd3", NULL };
    rc = t_daemon_start(&daemon_, workdir, args2, 10000);
    T_ASSERT(rc == 0, "daemon restart: %d", rc);
    T_EQ(wait_reattached(&d, 5000), 1);
    T_EQ(hx_read_int("%s", d.bstate), XenbusStateConnected);
    T_EQ(fe_read(&d, 40, 5000), BLKIF_RSP_OKAY);
    T_CHECK(data_matches(&d, 40), "READ after reattach");
    fe_close(&d);
    toolstack_remove(&d);

    /* 7b. kill -9 with a guest connected: the host releases the dead
     *     daemon's ports and mappings as the kernel does at exit (sim_owner.c),
     *     so a new daemon rebinds the same port and maps the same ring. */
    T_LOG("7b. kill -9 and restart");
    struct fe k;
    add_connected(&k, "vbd", 12, 51824, "xvdh", img_path);
    T_EQ(fe_read(&k, 56, 5000), BLKIF_RSP_OKAY);          /* the data page is mapped too */
    T_CHECK(sim_gnt_mapped_count(k.dom) >= 1, "nothing mapped before the kill");
    kill(daemon_.pid, SIGKILL);
    T_EQ(waitpid(daemon_.pid, NULL, 0), daemon_.pid);
    daemon_.pid = 0;
    T_EQ(sim_evtchn_port_state(host, k.domid, k.port), 1);  /* unbound for dom0 again */
    T_EQ(sim_gnt_mapped_count(k.dom), 0);
    struct stat lst;
    off_t log_off = stat(daemon_.log, &lst) == 0 ? lst.st_size : 0;
    rc = t_daemon_start(&daemon_, workdir, args2, 10000);
    T_ASSERT(rc == 0, "daemon start after kill -9: %d", rc);
    T_EQ(wait_reattached(&k, 5000), 1);
    T_EQ(hx_read_int("%s", k.bstate), XenbusStateConnected);
    T_EQ(sim_evtchn_port_state(host, k.domid, k.port), 2);
    T_EQ(sim_gnt_ref_mapped(k.dom, k.ring_ref), 1);          /* the new daemon's only */
    FILE *lf = fopen(daemon_.log, "r");
    T_ASSERT(lf, "daemon log");
    fseeko(lf, log_off, SEEK_SET);
    char line[1024];
    unsigned bind_errors = 0;
    while (fgets(line, sizeof(line), lf))
        bind_errors += strstr(line, "cannot bind event channel") != NULL;
    fclose(lf);
    T_EQ(bind_errors, 0);
    fe_close(&k);
    toolstack_remove(&k);

    /* 8. vbd3 (Xen >= 4.19 tap): "raw:<path>" connects; "qcow2:" is refused
     *    through vbd_fatal: error nodes, Closing, then Closed with no grants. */
    T_LOG("8. vbd3");
    char raw[600];
    snprintf(raw, sizeof(raw), "raw:%s", img_path);
    struct fe e;
    add_connected(&e, "vbd3", 9, 51776, "xvde", raw);
    T_EQ(fe_read(&e, 48, 5000), BLKIF_RSP_OKAY);
    T_CHECK(data_matches(&e, 48), "vbd3 READ");
    fe_close(&e);
    toolstack_remove(&e);
    snprintf(raw, sizeof(raw), "qcow2:%s", img_path);
    struct fe g;
    toolstack_add_kind(&g, "vbd3", 10, 51792, "xvdf", raw);
    be_write(&g, "hotplug-status", "connected");
    T_EQ(hx_wait_int(g.bstate, XenbusStateInitWait, TIMEOUT_MS), XenbusStateInitWait);
    fe_publish(&g);
    T_EQ(hx_wait_int(g.bstate, XenbusStateClosing, TIMEOUT_MS), XenbusStateClosing);
    char *errv = hx_read("%s/error", g.be);
    T_CHECK(errv && atoi(errv) == EOPNOTSUPP, "backend error node: %s", errv ? errv : "(none)");
    free(errv);
    errv = hx_read("/local/domain/%d/error/backend/vbd3/10/51792/error", BE_DOMID);
    T_CHECK(errv != NULL, "Linux-style error node missing");
    free(errv);
    T_EQ(sim_gnt_mapped_count(g.dom), 0);
    hx_write_in(g.fe, "state", "%d", XenbusStateClosed);
    T_EQ(hx_wait_int(g.bstate, XenbusStateClosed, TIMEOUT_MS), XenbusStateClosed);
    fe_revoke(&g);
    be_write(&g, "online", "0");
    T_CHECK(wait_forgotten(&g, 5000), "vbd 10/51792 not released");
    errv = hx_read("/local/domain/%d/error/backend/vbd3/10/51792/error", BE_DOMID);
    T_CHECK(errv == NULL, "Linux-style error node left behind");
    free(errv);
    toolstack_remove(&g);

    /* 9. The toolstack removes an online backend directory (failed attach):
     *    the device is released and the directory is not resurrected. */
    T_LOG("9. backend directory removed");
    struct fe h;
    toolstack_add(&h, 11, 51808, "xvdg");
    T_EQ(hx_wait_int(h.bstate, XenbusStateInitWait, TIMEOUT_MS), XenbusStateInitWait);
    T_ASSERT(xs_rm(xsh, XBT_NULL, h.be), "rm backend");
    T_CHECK(wait_forgotten(&h, 5000), "vbd 11/51808 not released");
    usleep(100000);
    char *gone = hx_read("%s", h.be);
    T_CHECK(gone == NULL, "backend directory resurrected");
    free(gone);
    toolstack_remove(&h);

    rc = t_daemon_stop(&daemon_, 10000);
    T_EQ(rc, 0);

    if (t_failures)
        t_daemon_dump_log(&daemon_, 60);
    xs_close(xsh);
    sim_host_close(host);
    T_EQ(t_xsd_stop_status(xsd_pid), 0);
    return t_done();
}
