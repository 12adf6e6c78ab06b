/* xen-blkbackd as a storage driver domain (domain 5, unprivileged, on a --domain-socket of the test xenstored, libxl 4.17's layout and permissions): it finds its domid in xenstore (and refuses to guess when that node is refused), serves verified I/O of guests whose vbds libxl put under /local/domain/5/backend/vbd, picks up a device created before it started, closes an xl-destroyed guest's device at once; a vbd of a domain that does not exist, a backend directory owned by another domain and one not readable to it each get one log line and nothing written, also after more changes in them (a new line once such a directory went and came back); a device whose frontend appears later is then taken on; an offline leftover of a dead domain is closed (for xl devd to remove). */
#include "harness.h"
#include "util.h"
#include "lib/e2e.h"
#include "lib/xsd.h"

#include <fcntl.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xen/io/xenbus.h>
#include <xenstore.h>

#define DD 5                    /* the driver domain */
#define WAIT_MS 20000

static struct e2e E;
static struct xs_handle *xsh;   /* dom0: the toolstack */
static char dd_sock[108];

/* The transaction put() and mknod_perms() write in (XBT_NULL: none). */
static xs_transaction_t tx = XBT_NULL;

static void put(const char *path, const char *val)
{
    T_ASSERT(xs_write(xsh, tx, path, val, (unsigned)strlen(val)), "write %s: %s", path,
             strerror(errno));
}

/* Start a transaction for put()/mknod_perms(); tx_end: true when committed,
 * false when it conflicted (EAGAIN: redo the writes). */
static void tx_start(void)
{
    tx = xs_transaction_start(xsh);
    T_ASSERT(tx, "xs_transaction_start: %s", strerror(errno));
}

static bool tx_end(void)
{
    bool ok = xs_transaction_end(xsh, tx, false);
    T_ASSERT(ok || errno == EAGAIN, "transaction end: %s", strerror(errno));
    tx = XBT_NULL;
    return ok;
}

static void putf(const char *val, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(const char *val, const char *fmt, ...)
{
    char p[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, sizeof(p), fmt, ap);
    va_end(ap);
    put(p, val);
}

/* mkdir with libxl's two-entry perms: owner (none to others) and one reader. */
static void mknod_perms(const char *path, unsigned owner, int reader)
{
    struct xs_permissions p[2] = { { .id = owner, .perms = XS_PERM_NONE },
                                   { .id = (unsigned)reader, .perms = XS_PERM_READ } };
    /* in one transaction, as libxl does (libxl__xs_mknod): a watcher never
     * sees the node with the creator's perms */
    bool own = tx == XBT_NULL;
    for (unsigned tries = 0;; tries++) {
        T_ASSERT(tries < 16, "mknod %s: transaction keeps conflicting", path);
        if (own)
            tx_start();
        T_ASSERT(xs_mkdir(xsh, tx, path), "mkdir %s", path);
        T_ASSERT(xs_set_permissions(xsh, tx, path, p, reader >= 0 ? 2 : 1), "perms %s", path);
        if (!own || tx_end())
            return;
    }
}

/* libxl__domain_make (libxl_create.c@RELEASE-4.17.7): dom path n0,r<domid>;
 * device, control n0,r<domid>; error, data n<domid>; the domid node. */
static void domain_make(unsigned domid, const char *name)
{
    char p[128], v[16];
    snprintf(p, sizeof(p), "/local/domain/%u", domid);
    mknod_perms(p, 0, (int)domid);
    snprintf(v, sizeof(v), "%u", domid);
    putf(v, "/local/domain/%u/domid", domid);
    putf(name, "/local/domain/%u/name", domid);
    snprintf(p, sizeof(p), "/local/domain/%u/device", domid);
    mknod_perms(p, 0, (int)domid);
    snprintf(p, sizeof(p), "/local/domain/%u/error", domid);
    mknod_perms(p, domid, -1);
    snprintf(p, sizeof(p), "/local/domain/%u/data", domid);
    mknod_perms(p, domid, -1);
}

/* A backend directory the way libxl__device_generic_add writes one, but with
 * the owner and frontend given: owner DD and a frontend of domain fe are
 * libxl's; another owner is what this daemon must refuse. */
static void backend_dir(unsigned fe, unsigned devid, unsigned owner, int online, int state,
                        const char *params)
{
    char be[128], v[128];
    snprintf(be, sizeof(be), "/local/domain/%u/backend/vbd/%u/%u", DD, fe, devid);
    /* the whole directory in one transaction, as libxl__device_generic_add
     * writes it: the daemon sees it complete or not at all */
    for (unsigned tries = 0;; tries++) {
        T_ASSERT(tries < 16, "backend dir %s: transaction keeps conflicting", be);
        tx_start();
        mknod_perms(be, owner, (int)(owner == DD ? fe : DD));
        snprintf(v, sizeof(v), "/local/domain/%u/device/vbd/%u", fe, devid);
        putf(v, "%s/frontend", be);
        snprintf(v, sizeof(v), "%u", fe);
        putf(v, "%s/frontend-id", be);
        putf(params, "%s/params", be);
        putf(online ? "1" : "0", "%s/online", be);
        snprintf(v, sizeof(v), "%d", state);
        putf(v, "%s/state", be);
        putf("phy", "%s/type", be);
        putf("w", "%s/mode", be);
        putf("xvdb", "%s/dev", be);
        putf("disk", "%s/device-type", be);
        if (tx_end())
            return;
    }
}

/* Every node below path with its value and perms, one line each. */
static void snapshot(const char *path, char *out, size_t len, size_t *off)
{
    unsigned n = 0, plen = 0;
    char *v = xs_read(xsh, XBT_NULL, path, &plen);
    struct xs_permissions *p = xs_get_permissions(xsh, XBT_NULL, path, &n);
    *off += (size_t)snprintf(out + *off, *off < len ? len - *off : 0, "%s=%s [%u:%u", path,
                             v ? v : "(none)", n, p && n ? p[0].id : 9999);
    for (unsigned i = 0; p && i < n; i++)
        *off += (size_t)snprintf(out + *off, *off < len ? len - *off : 0, " %u/%d", p[i].id, p[i].perms);
    *off += (size_t)snprintf(out + *off, *off < len ? len - *off : 0, "]\n");
    free(v);
    free(p);
    char **kids = xs_directory(xsh, XBT_NULL, path, &n);
    for (unsigned i = 0; kids && i < n; i++) {
        char k[256];
        snprintf(k, sizeof(k), "%s/%s", path, kids[i]);
        snapshot(k, out, len, off);
    }
    free(kids);
}

static char *snap(const char *path)
{
    size_t len = 16384, off = 0;
    char *s = calloc(1, len);
    T_ASSERT(s);
    snapshot(path, s, len, &off);
    return s;
}

static long long read_int(const char *path)
{
    unsigned len;
    char *v = xs_read(xsh, XBT_NULL, path, &len);
    long long x = v ? strtoll(v, NULL, 10) : -1;
    free(v);
    return x;
}

static long long wait_int(const char *path, long long want)
{
    long long end = (long long)xbd_now_ms() + WAIT_MS, v;
    while ((v = read_int(path)) != want && (long long)xbd_now_ms() < end)
        usleep(10000);
    return v;
}

/* Lines of the daemon's log holding both a and b. */
static int log_lines(const char *a, const char *b)
{
    FILE *f = fopen(E.d.log, "r");
    if (!f)
        return -1;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, a) && strstr(line, b);
    fclose(f);
    return n;
}

/* Start the daemon as domain DD: its xenstore is the driver domain's socket. */
static void daemon_start_dd(const char *xen_arg)
{
    const char *args[] = { xen_arg, NULL };
    setenv("XENSTORED_PATH", dd_sock, 1);
    int rc = t_daemon_start(&E.d, E.sim, args, WAIT_MS);
    setenv("XENSTORED_PATH", E.xs_sock, 1);
    T_ASSERT(rc == 0, "daemon start: %s", strerror(-rc));
}

/* A guest's verified run with its disk on the driver domain. */
static const char *const guest_args[] = { "--backend-domid", "5", "--hotplug", "--vdev", "xvdb",
    "--rw", "randrw", "--bs-range", "512-64k", "--iodepth", "8", "--size", "2m", "--verify",
    "--flush", "--discard", "1048576:65536", "--timeout", "60", NULL };

static void guest_run(unsigned domid, const char *img, const char *what)
{
    char *out = NULL;
    int rc = e2e_bench(&E, domid, img, guest_args, &out);
    if (rc)
        t_daemon_dump_log(&E.d, 30);
    e2e_check_run(out, rc, what);
    free(out);
}

int main(void)
{
    E.sim = t_tmpdir(1);
    setenv("TMPDIR", getenv("XBD_WORKDIR") ? getenv("XBD_WORKDIR") : "/var/tmp", 0);
    E.work = t_tmpdir(0);
    T_LOG("host %s, images %s", E.sim, E.work);
    char arg[160];
    snprintf(dd_sock, sizeof(dd_sock), "%s/xs-dd.sock", E.sim);
    snprintf(arg, sizeof(arg), "%u:%s", DD, dd_sock);
    const char *const xsd_args[] = { "--domain-socket", arg, NULL };
    int rc = t_xsd_start_args(E.sim, xsd_args, E.xs_sock, sizeof(E.xs_sock), &E.xsd_pid);
    T_SKIP_IF(rc == -ENOENT, "xen-sim-xenstored not built");
    T_ASSERT(rc == 0, "xenstored: %s", strerror(-rc));
    xsh = xs_open(0);
    T_ASSERT(xsh, "xs_open: %s", strerror(errno));
    domain_make(DD, "storage-dd");          /* xl create storage-dd.cfg (driver_domain=1) */
    const char *img = e2e_make_image(&E, "disk.img", 8);
    char xen_sim[600], xen_dd[640];
    snprintf(xen_sim, sizeof(xen_sim), "--xen=sim:%s", E.sim);
    snprintf(xen_dd, sizeof(xen_dd), "--xen=sim:%s,domid=%u", E.sim, DD);

    /* 1. Its own domid, from the relative `domid` node of its own home. */
    T_LOG("1. domid from xenstore");
    daemon_start_dd(xen_sim);
    T_EQ(e2e_stop(&E), 0);
    T_CHECK(log_lines("domid 5,", "up:") == 1, "no 'domid 5' start-up line");
    T_CHECK(log_lines("watching /local/domain/5/backend/vbd", "") == 1, "not watching its own path");
    unlink(E.d.log);
    /* Refused its own domid: we are not dom0; an error naming --domid, no guess. */
    struct xs_permissions none = { .id = 0, .perms = XS_PERM_NONE };
    T_ASSERT(xs_set_permissions(xsh, XBT_NULL, "/local/domain/5/domid", &none, 1));
    const char *auto_args[] = { xen_sim, NULL };
    setenv("XENSTORED_PATH", dd_sock, 1);
    rc = t_daemon_start(&E.d, E.sim, auto_args, WAIT_MS);
    setenv("XENSTORED_PATH", E.xs_sock, 1);
    T_CHECK(rc == -ECHILD, "daemon refused its domid: start %d", rc);
    T_CHECK(log_lines("not dom0; use --domid", "") == 1, "no error naming --domid");
    mknod_perms("/local/domain/5/domid", 0, DD);
    unlink(E.d.log);

    /* 2. A guest created before the daemon runs: its xl create waits; the
     *    daemon, once started, picks the device up and serves it. */
    T_LOG("2. device first, daemon later");
    char out2[600];
    snprintf(out2, sizeof(out2), "%s/guest9.out", E.work);
    pid_t g9 = e2e_bench_bg(&E, 9, img, guest_args, out2);
    T_CHECK(wait_int("/local/domain/5/backend/vbd/9/51728/state", XenbusStateInitialising) ==
            XenbusStateInitialising, "the toolstack did not write the backend");
    unsigned n = 0;
    struct xs_permissions *p = xs_get_permissions(xsh, XBT_NULL, "/local/domain/5/backend/vbd/9/51728", &n);
    T_CHECK(p && n == 2 && p[0].id == DD && p[1].id == 9 && p[1].perms == XS_PERM_READ,
            "backend dir perms are libxl's (n5 r9)");
    free(p);
    daemon_start_dd(xen_dd);
    int st = 0;
    T_ASSERT(waitpid(g9, &st, 0) == g9);
    if (!WIFEXITED(st) || WEXITSTATUS(st)) {
        char *o = NULL;
        e2e_sh(&o, "cat %s", out2);
        T_LOG("guest 9 output:\n%s", o ? o : "");
        free(o);
        t_daemon_dump_log(&E.d, 40);
    }
    T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "guest 9 (device created before the daemon) failed");
    guest_run(10, img, "guest 10 on the running daemon");

    /* xl destroy of a connected guest: its frontend directory goes, which a
     * driver domain reads as EACCES (the guest's device/ is not readable to
     * it): the device must still close at once, all grants released. */
    const char *destroy_args[] = { "--backend-domid", "5", "--vdev", "xvdb", "--rw", "randwrite",
        "--iodepth", "8", "--size", "1m", "--destroy", "--timeout", "10", NULL };
    char *out = NULL;
    rc = e2e_bench(&E, 13, img, destroy_args, &out);
    T_CHECK(rc == 0, "guest 13 destroyed: xen-blkbench exit %d\n%s", rc, out ? out : "");
    T_CHECK(out && strstr(out, "destroy"), "no destroy");
    T_EQ(e2e_field(out, "detach", "grants-leaked"), 0);
    free(out);

    /* 3. Bad directories: a vbd of domain 33, which does not exist; one of
     *    domain 40 whose backend directory domain 40 owns; an offline
     *    leftover of domain 34, which is gone. */
    T_LOG("3. refused directories");
    domain_make(40, "guest40");
    mknod_perms("/local/domain/40/device/vbd/51712", 40, DD);
    put("/local/domain/40/device/vbd/51712/state", "1");
    backend_dir(33, 51712, DD, 1, XenbusStateInitialising, img);
    backend_dir(40, 51712, 40, 1, XenbusStateInitialising, img);
    backend_dir(34, 51712, DD, 0, XenbusStateClosing, img);
    backend_dir(41, 51712, 41, 1, XenbusStateInitialising, img);
    mknod_perms("/local/domain/5/backend/vbd/41/51712", 41, -1);       /* not even readable to us */
    char *s33 = snap("/local/domain/5/backend/vbd/33"), *s40 = snap("/local/domain/5/backend/vbd/40");
    char *s41 = snap("/local/domain/5/backend/vbd/41");
    guest_run(11, img, "guest 11 after the bad directories");   /* every earlier event handled */
    T_EQ(wait_int("/local/domain/5/backend/vbd/34/51712/state", XenbusStateClosed), XenbusStateClosed);
    int l33 = log_lines("vbd 33/51712:", "does not exist");
    int l40 = log_lines("vbd 40/51712:", "owned by domain 40");
    T_CHECK(l33 == 1, "log lines for the vbd of a missing domain: %d", l33);
    T_CHECK(l40 == 1, "log lines for a directory owned by domain 40: %d", l40);
    T_EQ(log_lines("vbd 41/51712:", "not readable to us"), 1);
    char *t41 = snap("/local/domain/5/backend/vbd/41");
    T_CHECK(!strcmp(s41, t41), "something written for domain 41:\n%s---\n%s", s41, t41);
    free(s41);
    free(t41);
    char *t33 = snap("/local/domain/5/backend/vbd/33"), *t40 = snap("/local/domain/5/backend/vbd/40");
    T_CHECK(!strcmp(s33, t33), "something written for domain 33:\n%s---\n%s", s33, t33);
    T_CHECK(!strcmp(s40, t40), "something written for domain 40:\n%s---\n%s", s40, t40);
    char *err = snap("/local/domain/5/error");
    T_CHECK(!strstr(err, "vbd/33") && !strstr(err, "vbd/40"), "error node written:\n%s", err);
    T_EQ(t_daemon_dev_int(&E.d, 33, 51712, "state"), -1);
    T_EQ(t_daemon_dev_int(&E.d, 40, 51712, "state"), -1);
    free(t33);
    free(t40);
    free(err);

    /* More changes in them: still one line each, still nothing written. */
    put("/local/domain/5/backend/vbd/33/51712/params", "/dev/null");
    put("/local/domain/5/backend/vbd/40/51712/state", "1");
    free(s33);
    free(s40);
    s33 = snap("/local/domain/5/backend/vbd/33");
    s40 = snap("/local/domain/5/backend/vbd/40");
    guest_run(12, img, "guest 12 after more writes");
    T_EQ(log_lines("vbd 33/51712:", "does not exist"), 1);
    T_EQ(log_lines("vbd 40/51712:", "owned by domain 40"), 1);
    t33 = snap("/local/domain/5/backend/vbd/33");
    t40 = snap("/local/domain/5/backend/vbd/40");
    T_CHECK(!strcmp(s33, t33), "written for domain 33 after a change:\n%s---\n%s", s33, t33);
    T_CHECK(!strcmp(s40, t40), "written for domain 40 after a change:\n%s---\n%s", s40, t40);
    free(s33);
    free(s40);
    free(t33);
    free(t40);

    /* Removed with its parent and made again: a new refusal, logged again. */
    T_ASSERT(xs_rm(xsh, XBT_NULL, "/local/domain/5/backend/vbd/40"));
    guest_run(14, img, "guest 14 after a refused directory went");
    backend_dir(40, 51712, 40, 1, XenbusStateInitialising, img);
    guest_run(15, img, "guest 15 after it came back");
    T_EQ(log_lines("vbd 40/51712:", "owned by domain 40"), 2);

    /* 4. Domain 33's frontend appears (a toolstack that writes the backend
     *    first): the next change in the backend directory takes it on. */
    T_LOG("4. frontend appears");
    domain_make(33, "guest33");
    mknod_perms("/local/domain/33/device/vbd/51712", 33, DD);
    put("/local/domain/33/device/vbd/51712/state", "1");
    put("/local/domain/5/backend/vbd/33/51712/params", img);
    T_EQ(wait_int("/local/domain/5/backend/vbd/33/51712/state", XenbusStateInitWait), XenbusStateInitWait);
    T_EQ(log_lines("vbd 33/51712:", "taken on"), 1);
    put("/local/domain/5/backend/vbd/33/51712/online", "0");
    put("/local/domain/5/backend/vbd/33/51712/state", "5");
    T_EQ(wait_int("/local/domain/5/backend/vbd/33/51712/state", XenbusStateClosed), XenbusStateClosed);

    T_CHECK(log_lines("Permission denied", "") == 0, "a refused xenstore access in the log");
    T_EQ(e2e_stop(&E), 0);
    xs_close(xsh);
    return t_done();
}
