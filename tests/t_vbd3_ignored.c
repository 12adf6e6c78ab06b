/* t_vbd3_ignored: a daemon whose --backend-types lacks vbd3 (the default, vbd) logs exactly one line per device that appears under backend/vbd3 (Xen >= 4.19 backendtype=tap) saying why it ignores it, not again when that device's keys change, a new line for a second device and for a re-created one, and writes nothing to xenstore for any of them (checked with a watch on / against a sync point: a vbd device the daemon takes to InitWait after the vbd3 events). */
#include "harness.h"
#include "util.h"
#include "lib/daemon.h"
#include "lib/xsd.h"
#include "sim.h"

#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <unistd.h>
#include <xenstore.h>

#define BE "/local/domain/0/backend"
#define TIMEOUT_MS 10000

static struct xs_handle *xsh;
static struct sim_host *host;
static struct t_daemon daemon_;

/* Our own changes since the watch on / was set: each fires one event at its
 * path (xenstore.txt; src/sim/xenstored/watch.c), consumed by pump(). */
static char *pending[256];
static unsigned npending;
static bool watching;

static void expect(const char *path)
{
    if (!watching)
        return;
    T_ASSERT(npending < ARRAY_SIZE(pending), "too many pending events");
    pending[npending++] = strdup(path);
}

/* One change of ours at the formatted path: write val, or remove (val NULL). */
static void vchange(xs_transaction_t t, const char *val, const char *fmt, va_list ap)
{
    char p[256];
    vsnprintf(p, sizeof(p), fmt, ap);
    if (val)
        T_ASSERT(xs_write(xsh, t, p, val, strlen(val)), "xs_write %s", p);
    else
        T_ASSERT(xs_rm(xsh, t, p), "xs_rm %s", p);
    expect(p);
}

static void put(xs_transaction_t t, const char *val, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void put(xs_transaction_t t, const char *val, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vchange(t, val, fmt, ap);
    va_end(ap);
}

static void rm(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void rm(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vchange(XBT_NULL, NULL, fmt, ap);
    va_end(ap);
}

/* The backend and frontend nodes libxl writes for a disk (docs/protocol.md
 * §1.1), in one transaction; kind "vbd3" is what Xen >= 4.19 writes for
 * backendtype=tap (params "<fmt>:<path>"). */
static void toolstack_add(const char *kind, unsigned fe, unsigned devid, const char *params)
{
    char be[128], fd[128], v[160];
    snprintf(be, sizeof(be), BE "/%s/%u/%u", kind, fe, devid);
    snprintf(fd, sizeof(fd), "/local/domain/%u/device/vbd/%u", fe, devid);
    for (;;) {
        unsigned np0 = npending;
        xs_transaction_t t = xs_transaction_start(xsh);
        T_ASSERT(t, "tx");
        put(t, fd, "%s/frontend", be);
        snprintf(v, sizeof(v), "%u", fe);
        put(t, v, "%s/frontend-id", be);
        put(t, "1", "%s/online", be);
        put(t, "1", "%s/state", be);
        put(t, params, "%s/params", be);
        put(t, "xvdb", "%s/dev", be);
        put(t, "w", "%s/mode", be);
        put(t, be, "%s/backend", fd);
        put(t, "0", "%s/backend-id", fd);
        put(t, "1", "%s/state", fd);
        snprintf(v, sizeof(v), "%u", devid);
        put(t, v, "%s/virtual-device", fd);
        if (xs_transaction_end(xsh, t, false))
            return;
        T_ASSERT(errno == EAGAIN, "tx end: %s", strerror(errno));
        while (npending > np0)
            free(pending[--npending]);
    }
}

static void toolstack_remove(const char *kind, unsigned fe, unsigned devid)
{
    rm("/local/domain/%u/device/vbd/%u", fe, devid);
    rm(BE "/%s/%u/%u", kind, fe, devid);
}

/* Next event of our watch on /, NULL after timeout_ms without one. */
static char *next_event(unsigned timeout_ms)
{
    struct pollfd pfd = { .fd = xs_fileno(xsh), .events = POLLIN };
    for (;;) {
        unsigned n;
        /* libxenstore may already hold queued events: poll only when it has none */
        if (poll(&pfd, 1, 0) <= 0 && poll(&pfd, 1, (int)timeout_ms) <= 0)
            return NULL;
        char **ev = xs_read_watch(xsh, &n);
        if (!ev)
            continue;
        char *p = strdup(ev[XS_WATCH_PATH]);
        free(ev);
        return p;
    }
}

/* Where the daemon must never write here: a vbd3 backend, the error nodes,
 * a frontend's directory. */
static bool forbidden(const char *p)
{
    return !strncmp(p, BE "/vbd3", strlen(BE "/vbd3")) || !strncmp(p, "/local/domain/0/error", 21) ||
           (!strncmp(p, "/local/domain/", 14) && strncmp(p, "/local/domain/0/", 16));
}

/* One event: ours (consumed from pending), the daemon's (allowed: only outside
 * forbidden()), or a failure.  Returns the path (malloc'd). */
static char *pump(void)
{
    char *p = next_event(TIMEOUT_MS);
    T_ASSERT(p, "no xenstore event for %u s", TIMEOUT_MS / 1000);
    for (unsigned i = 0; i < npending; i++)
        if (!strcmp(pending[i], p)) {
            free(pending[i]);
            memmove(&pending[i], &pending[i + 1], (npending - i - 1) * sizeof(pending[0]));
            npending--;
            return p;
        }
    T_CHECK(!forbidden(p), "the daemon wrote %s", p);
    return p;
}

/*
 * Sync point: add vbd device <fe>/51712 (the daemon serves vbd) and read our
 * watch's events until the daemon has written its `state` = 2 (InitWait).  The
 * daemon handles its watch events in order on one connection, so whatever it
 * did for the vbd3 events before was committed and seen here by then; and
 * every change of ours made before must have come back (none pending).
 */
static void sync_point(unsigned fe, const char *img)
{
    char st[128];
    struct sim_dom *dom;
    T_ASSERT(sim_dom_create(host, (xen_domid_t)fe, 16, 64, &dom) == 0, "sim_dom_create %u", fe);
    toolstack_add("vbd", fe, 51712, img);
    snprintf(st, sizeof(st), BE "/vbd/%u/51712/state", fe);
    for (bool done = false; !done;) {
        unsigned np0 = npending;
        char *p = pump();
        /* the daemon's write of state, not the toolstack's own (which comes
         * first, but the value read may already be the daemon's 2) */
        if (npending == np0 && !strcmp(p, st)) {
            unsigned len;
            char *v = xs_read(xsh, XBT_NULL, st, &len);
            done = v && !strcmp(v, "2");
            free(v);
        }
        free(p);
    }
    T_EQ(npending, 0);
    toolstack_remove("vbd", fe, 51712);
    sim_dom_destroy(dom);
}

/* Lines of the daemon's log naming the ignored vbd3 device fe/devid. */
static int ignored_lines(unsigned fe, unsigned devid)
{
    char want[64], line[1024];
    snprintf(want, sizeof(want), "vbd %u/%u: vbd3 device ", fe, devid);
    FILE *f = fopen(daemon_.log, "r");
    T_ASSERT(f, "daemon log");
    int n = 0;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, want)) {
            n++;
            T_CHECK(strstr(line, "--backend-types does not include vbd3") &&
                    strstr(line, "ignored, nothing written"), "reason missing: %s", line);
        }
    fclose(f);
    return n;
}

/* Keys under a directory (-1: none). */
static int nkeys(const char *dir)
{
    unsigned n;
    char **d = xs_directory(xsh, XBT_NULL, dir, &n);
    if (!d)
        return -1;
    free(d);
    return (int)n;
}

int main(void)
{
    const char *workdir = t_tmpdir(0), *hostdir = t_tmpdir(1);
    char xs_sock[108], img[512], raw[600];
    pid_t xsd_pid;
    int rc = t_xsd_start(workdir, xs_sock, sizeof(xs_sock), &xsd_pid);
    T_SKIP_IF(rc == -ENOENT, "xen-sim-xenstored not built");
    T_ASSERT(rc == 0, "t_xsd_start: %d", rc);
    xsh = xs_open(0);
    T_ASSERT(xsh, "xs_open: %s", strerror(errno));
    T_ASSERT(sim_host_open(hostdir, &host) == 0, "sim_host_open");
    snprintf(img, sizeof(img), "%s/img.raw", workdir);
    FILE *f = fopen(img, "w");
    T_ASSERT(f && ftruncate(fileno(f), 8 << 20) == 0, "image");
    fclose(f);
    snprintf(raw, sizeof(raw), "raw:%s", img);

    /* 0. A vbd3 device that exists before the daemon starts is reported too. */
    toolstack_add("vbd3", 4, 51760, raw);
    char xen[600];
    snprintf(xen, sizeof(xen), "--xen=sim:%s,domid=0", hostdir);
    const char *args[] = { xen, "--wait-hotplug=no", NULL };    /* default --backend-types=vbd */
    rc = t_daemon_start(&daemon_, workdir, args, TIMEOUT_MS);
    T_ASSERT(rc == 0, "daemon start: %d", rc);
    T_ASSERT(xs_watch(xsh, "/", "all"), "watch /");
    watching = true;
    sync_point(20, img);
    T_EQ(ignored_lines(4, 51760), 1);

    /* 1. One device appears: one line, nothing written. */
    T_LOG("1. vbd3 device 5/51728");
    toolstack_add("vbd3", 5, 51728, raw);
    sync_point(21, img);
    T_EQ(ignored_lines(5, 51728), 1);
    T_EQ(nkeys(BE "/vbd3/5/51728"), 7);         /* the toolstack's keys only */

    /* 2. A second device gets its own line; the first one's changes (the
     *    toolstack and its frontend moving on) do not repeat its line. */
    T_LOG("2. a second device, changes of the first");
    toolstack_add("vbd3", 7, 51744, raw);
    put(XBT_NULL, "0", BE "/vbd3/5/51728/online");
    put(XBT_NULL, "connected", BE "/vbd3/5/51728/hotplug-status");
    put(XBT_NULL, "3", "/local/domain/5/device/vbd/51728/state");
    put(XBT_NULL, "1", BE "/vbd3/5/51728/online");
    sync_point(22, img);
    T_EQ(ignored_lines(5, 51728), 1);
    T_EQ(ignored_lines(7, 51744), 1);
    T_EQ(nkeys(BE "/vbd3/5/51728"), 8);         /* + hotplug-status */
    unsigned len;
    char *st = xs_read(xsh, XBT_NULL, BE "/vbd3/5/51728/state", &len);
    T_CHECK(st && !strcmp(st, "1"), "vbd3 state %s, the toolstack wrote 1", st ? st : "(none)");
    free(st);

    /* 3. Removed and created again (a new disk with the same ids): a new line. */
    T_LOG("3. the first device removed and created again");
    toolstack_remove("vbd3", 5, 51728);
    sync_point(23, img);
    T_EQ(ignored_lines(5, 51728), 1);
    toolstack_add("vbd3", 5, 51728, raw);
    sync_point(24, img);
    T_EQ(ignored_lines(5, 51728), 2);
    T_EQ(ignored_lines(7, 51744), 1);
    T_EQ(ignored_lines(4, 51760), 1);

    T_EQ(t_daemon_ndevices(&daemon_), 0);       /* none of them is a device of ours */
    T_EQ(t_daemon_stop(&daemon_, TIMEOUT_MS), 0);
    while (npending)
        free(pending[--npending]);
    xs_close(xsh);
    sim_host_close(host);
    t_xsd_stop(xsd_pid);
    return t_done();
}
