/* t_resize: online resize of a connected device: the image file grows, `xen-blkbackctl resize` (or the periodic check of a restarted daemon) writes the new `sectors` and the unchanged `state` in one transaction (state watch fires), I/O past the old end works and past the new end is refused; shrinking, a size not a whole number of sectors, a read-only device and an unknown device are refused with a reason. */
#include "harness.h"
#include "util.h"
#include "lib/e2e.h"
#include "lib/guest.h"
#include "lib/hostile.h"
#include "blkif_abi.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>
#include <xenstore.h>
#include <xen/io/xenbus.h>

#define DEVID 51712
#define RW_DOM 5
#define RO_DOM 6
#define MiB (1024ll * 1024)

static struct e2e E;
static char xsd_log[512];

/* xen-blkbackctl resize DOMID DEVID: exit status, output in *out. */
static int ctl_resize(unsigned domid, unsigned devid, char **out)
{
    int rc = e2e_sh(out, "%s -s %s resize %u %u 2>&1", t_prog("xen-blkbackctl"), E.d.sock,
                    domid, devid);
    T_LOG("resize %u %u: exit %d: %s", domid, devid, rc, *out ? *out : "");
    return rc;
}

/* ctl_resize exits `want_exit` and says `needle`. */
static void expect_resize(unsigned domid, int want_exit, const char *needle)
{
    char *out = NULL;
    T_EQ(ctl_resize(domid, DEVID, &out), want_exit);
    T_CHECK(out && strstr(out, needle), "resize %u: no '%s' in the output", domid, needle);
    free(out);
}

static void grow(const char *img, long long bytes)
{
    T_ASSERT(truncate(img, bytes) == 0, "truncate %s to %lld", img, bytes);
}

/* Drain the watch events queued so far; true if one for `path` was seen. */
static bool saw_watch(struct xs_handle *xs, const char *path, unsigned timeout_ms)
{
    bool seen = false;
    uint64_t end = xbd_now_ms() + timeout_ms;
    for (;;) {
        struct pollfd p = { .fd = xs_fileno(xs), .events = POLLIN };
        int left = seen ? 50 : (int)(end > xbd_now_ms() ? end - xbd_now_ms() : 0);
        if (poll(&p, 1, left) <= 0)
            return seen;
        unsigned n;
        char **ev = xs_read_watch(xs, &n);
        if (!ev)
            return seen;
        if (!strcmp(ev[XS_WATCH_PATH], path))
            seen = true;
        free(ev);
    }
}

/* The xenstored trace (CONTROL log on): the daemon's WRITE of <be>/sectors
 * and of <be>/state = 4 carry the same transaction id, and that
 * transaction was committed. */
static void check_one_transaction(const struct hvbd *v, long long sectors)
{
    FILE *f = fopen(xsd_log, "r");
    T_ASSERT(f, "%s", xsd_log);
    char want_sect[256], want_state[256], *line = NULL;
    snprintf(want_sect, sizeof(want_sect), "\"%s/sectors|%lld\"", v->be, sectors);
    snprintf(want_state, sizeof(want_state), "\"%s/state|4\"", v->be);
    size_t cap = 0;
    unsigned tx_sect = 0, tx_state = 0;
    bool committed = false;
    while (getline(&line, &cap, f) > 0) {
        char op[32];
        unsigned tx;
        char *p = strstr(line, " > ");
        if (!p || sscanf(p, " > %31s tx=%u", op, &tx) != 2 || !tx)
            continue;
        if (!strcmp(op, "WRITE") && strstr(p, want_sect))
            tx_sect = tx;
        else if (!strcmp(op, "WRITE") && strstr(p, want_state) && tx == tx_sect)
            tx_state = tx;
        else if (!strcmp(op, "TRANSACTION_END") && strstr(p, "\"T|\"") && tx_state &&
                 tx == tx_state)
            committed = true;
    }
    free(line);
    fclose(f);
    T_CHECK(tx_sect != 0, "no transactional WRITE of %s/sectors = %lld in the trace", v->be, sectors);
    T_CHECK(tx_state == tx_sect, "state = 4 not written in the transaction (%u) of sectors",
            tx_sect);
    T_CHECK(committed, "transaction %u not committed", tx_sect);
}

/* One page at `sector`: WRITE then READ back (want OKAY), or both refused. */
static void io_at(struct guest *g, uint64_t sector, int16_t want, const char *what)
{
    static uint64_t id = 1000;
    struct treq w, r;
    guest_rw_req(g, &w, BLKIF_OP_WRITE, id++, sector, 1, sector);
    guest_do_req(g, 0, &w, want, what);
    guest_rw_req(g, &r, BLKIF_OP_READ, id++, sector, 1, 0);
    guest_do_req(g, 0, &r, want, what);
    if (want == BLKIF_RSP_OKAY)
        T_CHECK(!memcmp(sim_dom_page(g->dom, w.pfn[0]), sim_dom_page(g->dom, r.pfn[0]), GUEST_PG),
                "%s: data read back differs", what);
}

static void wait_sectors(const struct hvbd *v, long long want, unsigned timeout_ms)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/sectors", v->be);
    T_EQ(hx_wait_int(p, want, timeout_ms), want);
}

int main(void)
{
    /* The test xenstored inherits our stderr: point it at a file for the
     * trace, then take ours back. */
    const char *dir = t_tmpdir(0);
    snprintf(xsd_log, sizeof(xsd_log), "%s/xenstored.log", dir);
    int logfd = open(xsd_log, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0600);
    int saved = dup(2);
    T_ASSERT(logfd >= 0 && saved >= 0 && dup2(logfd, 2) == 2, "redirect stderr");
    const char *dargs[] = { "--resize-check=0", NULL };
    e2e_start(&E, dargs);
    dup2(saved, 2);
    close(saved);
    close(logfd);
    hx_open();
    struct xs_handle *xs = hx_xs();

    struct hvbd v, ro;
    struct guest g, gro;
    const char *img = e2e_make_image(&E, "rw.img", 8);
    const char *roimg = e2e_make_image(&E, "ro.img", 8);
    hx_connect(&E.d, &v, &g, E.sim, RW_DOM, DEVID, img);
    const char *const ro_keys[] = { "mode", "r", NULL };
    hx_connect_extra(&E.d, &ro, &gro, E.sim, RO_DOM, DEVID, roimg, ro_keys);
    wait_sectors(&v, 16384, 1000);
    io_at(&g, 16384 - 8, BLKIF_RSP_OKAY, "last page of 8 MiB");
    io_at(&g, 16384, BLKIF_RSP_ERROR, "past the end of 8 MiB");

    /* grow to 16 MiB and ask: sectors and state in one transaction */
    char bstate[160];
    snprintf(bstate, sizeof(bstate), "%s/state", v.be);
    T_ASSERT(xs_watch(xs, bstate, "t_resize"), "xs_watch");
    saw_watch(xs, bstate, 1000);                   /* the watch's first event */
    free(xs_control_command(xs, "log", "on", 3));
    grow(img, 16 * MiB);
    expect_resize(RW_DOM, 0, "from 16384 to 32768 sectors");
    T_CHECK(saw_watch(xs, bstate, 2000), "no watch event on %s after the resize", bstate);
    free(xs_control_command(xs, "log", "off", 4));
    T_EQ(hx_read_int("%s/sectors", v.be), 32768);
    T_EQ(hx_read_int("%s/state", v.be), XenbusStateConnected);
    check_one_transaction(&v, 32768);
    io_at(&g, 16384, BLKIF_RSP_OKAY, "first page past the old end");
    io_at(&g, 32768 - 8, BLKIF_RSP_OKAY, "last page of 16 MiB");
    io_at(&g, 32768, BLKIF_RSP_ERROR, "past the new end");
    expect_resize(RW_DOM, 0, "unchanged, 32768 sectors");

    /* refused: shrink, not whole sectors, read-only, unknown device */
    grow(img, 12 * MiB);
    expect_resize(RW_DOM, 1, "shrinking is not supported");
    T_CHECK(hx_log_count(&E.d, "resize refused", "shrank to 24576 sectors") == 1,
            "shrink: one log line");
    grow(img, 16 * MiB + 100);
    expect_resize(RW_DOM, 1, "not a whole number of 512-byte sectors");
    grow(roimg, 16 * MiB);
    expect_resize(RO_DOM, 1, "read-only device");
    T_EQ(hx_read_int("%s/sectors", ro.be), 16384);
    grow(roimg, 8 * MiB);                           /* as advertised again */
    expect_resize(99, 1, "no such device");
    T_EQ(hx_read_int("%s/sectors", v.be), 32768);
    io_at(&g, 32768 - 8, BLKIF_RSP_OKAY, "last page after the refusals");

    /* A daemon with the periodic check takes over (on-exit=leave, reattach)
     * and notices growth by itself; a shrink is logged once, not per check. */
    grow(img, 16 * MiB);
    T_EQ(t_daemon_stop(&E.d, 15000), 0);
    char xen_arg[600];
    snprintf(xen_arg, sizeof(xen_arg), "--xen=sim:%s", E.sim);
    const char *dargs2[] = { xen_arg, "--resize-check=100", NULL };
    T_ASSERT(t_daemon_start(&E.d, E.sim, dargs2, 20000) == 0, "second daemon");
    uint64_t end = xbd_now_ms() + 10000;
    while (t_daemon_dev_int(&E.d, RW_DOM, DEVID, "connected") != 1 && xbd_now_ms() < end)
        usleep(10000);
    T_EQ(t_daemon_dev_int(&E.d, RW_DOM, DEVID, "connected"), 1);
    grow(img, 24 * MiB);
    grow(roimg, 16 * MiB);
    wait_sectors(&v, 49152, 5000);
    io_at(&g, 49152 - 8, BLKIF_RSP_OKAY, "last page of 24 MiB (periodic)");
    io_at(&g, 49152, BLKIF_RSP_ERROR, "past 24 MiB (periodic)");
    T_EQ(hx_log_count(&E.d, "resized (store grew): 32768 -> 49152 sectors", NULL), 1);
    grow(img, 20 * MiB);
    usleep(800 * 1000);                             /* several checks */
    T_EQ(hx_log_count(&E.d, "resize refused", "shrank to 40960 sectors"), 1);
    T_EQ(hx_read_int("%s/sectors", ro.be), 16384);  /* read-only: never checked */

    hx_close(&E.d, &v);
    hx_close(&E.d, &ro);
    guest_fini(&g);
    guest_fini(&gro);
    T_EQ(e2e_stop(&E), 0);
    return t_done();
}
