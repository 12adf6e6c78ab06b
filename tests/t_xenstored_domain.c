/* xen-sim-xenstored --domain-socket: a client acting as unprivileged domain 5 (a driver domain) through the real libxenstore gets xenstored's permission checks on libxl's layout: its own domid by a relative path, reads/writes/mkdir/rm only where the perms allow (EACCES, or ENOENT only under a readable parent), owns what it creates, may not give a node away (EPERM) or set more than 5 perms (ENOSPC), no domain requests or CONTROL, watch events only for nodes it may read (a perms change that takes its access away still fires; a removed subtree fires for the nodes it could read), none for @releaseDomain; dom0 on the main socket is unchanged. */
#include "harness.h"
#include "util.h"
#include "lib/xsd.h"

#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>
#include <xenstore.h>

#define DD 5                    /* the driver domain */
#define FE 9                    /* a guest with its disk on DD */
#define BE "/local/domain/5/backend/vbd/9/51712"
#define FEP "/local/domain/9/device/vbd/51712"

static struct xs_handle *open_at(const char *sock)
{
    setenv("XENSTORED_PATH", sock, 1);
    struct xs_handle *h = xs_open(0);
    T_ASSERT(h, "xs_open %s: %s", sock, strerror(errno));
    return h;
}

/* errno of a failed read, 0 if it succeeded (value compared with want). */
static int rd_err(struct xs_handle *h, xs_transaction_t t, const char *path, const char *want)
{
    unsigned len;
    errno = 0;
    char *v = xs_read(h, t, path, &len);
    int e = v ? 0 : errno;
    if (v && want)
        T_CHECK(!strcmp(v, want), "%s = '%s', expected '%s'", path, v, want);
    free(v);
    return e;
}

static int wr_err(struct xs_handle *h, xs_transaction_t t, const char *path, const char *val)
{
    errno = 0;
    return xs_write(h, t, path, val, (unsigned)strlen(val)) ? 0 : errno;
}

static void set_perms(struct xs_handle *h, const char *path, unsigned owner, char other_mode,
                      unsigned other)
{
    struct xs_permissions p[2] = { { .id = owner, .perms = XS_PERM_NONE },
                                   { .id = other, .perms = other_mode == 'r' ? XS_PERM_READ :
                                     XS_PERM_READ | XS_PERM_WRITE } };
    T_ASSERT(xs_set_permissions(h, XBT_NULL, path, p, other_mode ? 2 : 1), "set perms %s: %s",
             path, strerror(errno));
}

static void mknod_perms(struct xs_handle *h, const char *path, unsigned owner, char mode, unsigned other)
{
    T_ASSERT(xs_mkdir(h, XBT_NULL, path), "mkdir %s", path);
    set_perms(h, path, owner, mode, other);
}

/* Events queued for h within 300 ms: recorded, then counted by path/token. */
#define MAX_EV 32
static char ev_path[MAX_EV][160], ev_tok[MAX_EV][32];
static int nev;

static void drain(struct xs_handle *h)
{
    struct pollfd p = { .fd = xs_fileno(h), .events = POLLIN };
    nev = 0;
    for (;;) {
        char **v = xs_check_watch(h);
        if (v) {
            if (nev < MAX_EV) {
                snprintf(ev_path[nev], sizeof(ev_path[nev]), "%s", v[XS_WATCH_PATH]);
                snprintf(ev_tok[nev], sizeof(ev_tok[nev]), "%s", v[XS_WATCH_TOKEN]);
                nev++;
            }
            free(v);
            continue;
        }
        if (poll(&p, 1, 300) <= 0)
            return;
    }
}

static int seen(const char *path, const char *token)
{
    int n = 0;
    for (int i = 0; i < nev; i++)
        n += !strcmp(ev_path[i], path) && !strcmp(ev_tok[i], token);
    return n;
}

/* dom0 (libxl 4.17): the driver domain's and the guest's domain nodes
 * (libxl__domain_make: dom path n0,r<domid>; error n<domid>) and one vbd of
 * the guest on the driver domain (libxl__device_generic_add: frontend
 * n<fe>,r<be>; backend n<be>,r<fe>; parents inherit the dom path's). */
static void libxl_layout(struct xs_handle *h)
{
    mknod_perms(h, "/local/domain/5", 0, 'r', DD);
    T_ASSERT(!wr_err(h, XBT_NULL, "/local/domain/5/domid", "5"));
    mknod_perms(h, "/local/domain/5/error", DD, 0, 0);
    mknod_perms(h, "/local/domain/5/data", 0, 'b', DD);
    mknod_perms(h, "/local/domain/9", 0, 'r', FE);
    T_ASSERT(!wr_err(h, XBT_NULL, "/local/domain/9/name", "guest"));
    mknod_perms(h, FEP, FE, 'r', DD);
    T_ASSERT(!wr_err(h, XBT_NULL, FEP "/state", "1"));
    mknod_perms(h, BE, DD, 'r', FE);
    T_ASSERT(!wr_err(h, XBT_NULL, BE "/state", "1"));
    T_ASSERT(!wr_err(h, XBT_NULL, BE "/params", "/srv/img"));
}

static void test_access(struct xs_handle *h, struct xs_handle *d)
{
    T_EQ(rd_err(d, XBT_NULL, "domid", "5"), 0);                     /* relative: our home */
    T_EQ(rd_err(d, XBT_NULL, BE "/params", "/srv/img"), 0);
    T_EQ(rd_err(d, XBT_NULL, FEP "/state", "1"), 0);                /* frontend: r<dd> */
    T_EQ(rd_err(d, XBT_NULL, "/local/domain/9", NULL), EACCES);     /* the guest's home: no */
    T_EQ(rd_err(d, XBT_NULL, "/local/domain/9/name", NULL), EACCES);
    T_EQ(rd_err(d, XBT_NULL, "/local/domain/77", NULL), EACCES);    /* missing, parent n0 */
    T_EQ(rd_err(d, XBT_NULL, "/local/domain/5/nothing", NULL), ENOENT);   /* parent readable */
    T_EQ(rd_err(d, XBT_NULL, "/tool", NULL), EACCES);

    unsigned n;
    char **l = xs_directory(d, XBT_NULL, "/local/domain/5/backend/vbd/9", &n);
    T_CHECK(l && n == 1 && !strcmp(l[0], "51712"), "directory of the backend parent");
    free(l);
    errno = 0;
    T_CHECK(!xs_directory(d, XBT_NULL, "/local/domain", &n) && errno == EACCES, "list /local/domain");

    /* Writes: its own backend dir yes, the parents (owned by dom0) and the frontend no. */
    T_EQ(wr_err(d, XBT_NULL, BE "/state", "2"), 0);
    T_EQ(wr_err(d, XBT_NULL, BE "/feature-flush-cache", "1"), 0);
    T_EQ(wr_err(d, XBT_NULL, "/local/domain/5/backend/vbd/9/51728", "x"), EACCES);
    T_EQ(wr_err(d, XBT_NULL, FEP "/state", "6"), EACCES);
    T_EQ(wr_err(d, XBT_NULL, "/local/domain/9/device/vbd/51712/x", "y"), EACCES);
    T_EQ(wr_err(d, XBT_NULL, "/local/domain/77/x", "y"), EACCES);
    T_EQ(wr_err(d, XBT_NULL, "error/backend/vbd/9/51712/error", "5 x"), 0);   /* Linux's error node */
    T_EQ(rd_err(h, XBT_NULL, FEP "/state", "1"), 0);
    T_EQ(rd_err(h, XBT_NULL, "/local/domain/5/backend/vbd/9/51728", NULL), ENOENT);

    /* What it creates is its own, the rest of the perms inherited. */
    T_EQ(wr_err(d, XBT_NULL, "/local/domain/5/data/k", "v"), 0);
    struct xs_permissions *p = xs_get_permissions(h, XBT_NULL, "/local/domain/5/data/k", &n);
    T_CHECK(p && n == 2 && p[0].id == DD && p[1].id == DD, "owner of a node domain 5 made: %u",
            p ? p[0].id : 9999);
    free(p);
    p = xs_get_permissions(h, XBT_NULL, BE "/feature-flush-cache", &n);
    T_CHECK(p && n == 2 && p[0].id == DD && p[1].id == FE && p[1].perms == XS_PERM_READ,
            "a backend key keeps n<dd>,r<fe>");
    free(p);

    /* mkdir and rm */
    errno = 0;
    T_CHECK(xs_mkdir(d, XBT_NULL, BE "/sub"), "mkdir in own dir: %s", strerror(errno));
    errno = 0;
    T_CHECK(!xs_mkdir(d, XBT_NULL, "/local/domain/5/backend/x") && errno == EACCES, "mkdir in dom0's");
    errno = 0;
    T_CHECK(!xs_mkdir(d, XBT_NULL, FEP) && errno == EACCES, "mkdir of an existing unwritable node");
    T_CHECK(xs_rm(d, XBT_NULL, BE "/sub"), "rm own node: %s", strerror(errno));
    T_CHECK(xs_rm(d, XBT_NULL, BE "/never"), "rm of a missing node in an own dir");
    errno = 0;
    T_CHECK(!xs_rm(d, XBT_NULL, FEP) && errno == EACCES, "rm the frontend");
    errno = 0;
    T_CHECK(!xs_rm(d, XBT_NULL, "/local/domain/5/backend/vbd/9/nope") && errno == EACCES,
            "rm a missing node under a dom0 dir");
    T_EQ(rd_err(h, XBT_NULL, FEP "/state", "1"), 0);

    /* SET_PERMS: owner only, may not give it away, at most 5 entries. */
    struct xs_permissions keep[2] = { { .id = DD, .perms = XS_PERM_NONE }, { .id = FE, .perms = XS_PERM_READ } };
    struct xs_permissions away[1] = { { .id = FE, .perms = XS_PERM_NONE } };
    struct xs_permissions many[6];
    for (unsigned i = 0; i < 6; i++)
        many[i] = (struct xs_permissions){ .id = DD + i, .perms = XS_PERM_READ };
    T_CHECK(xs_set_permissions(d, XBT_NULL, BE "/params", keep, 2), "set own perms: %s", strerror(errno));
    errno = 0;
    T_CHECK(!xs_set_permissions(d, XBT_NULL, BE "/params", away, 1) && errno == EPERM, "give away: %s",
            strerror(errno));
    errno = 0;
    T_CHECK(!xs_set_permissions(d, XBT_NULL, BE "/params", many, 6) && errno == ENOSPC, "6 perms: %s",
            strerror(errno));
    errno = 0;
    T_CHECK(!xs_set_permissions(d, XBT_NULL, FEP, keep, 2) && errno == EACCES, "perms of the frontend");
    T_CHECK(xs_set_permissions(h, XBT_NULL, BE "/params", many, 6), "dom0 has no such limit");
    T_CHECK(xs_set_permissions(h, XBT_NULL, BE "/params", away, 1), "dom0 gives a node away");
    T_EQ(rd_err(d, XBT_NULL, BE "/params", NULL), EACCES);
    T_CHECK(xs_set_permissions(h, XBT_NULL, BE "/params", keep, 2), "dom0 gives it back");

    /* Transactions see the same checks. */
    xs_transaction_t t = xs_transaction_start(d);
    T_ASSERT(t, "transaction as domain 5");
    T_EQ(wr_err(d, t, BE "/state", "4"), 0);
    T_EQ(wr_err(d, t, FEP "/state", "4"), EACCES);
    T_EQ(rd_err(d, t, "/local/domain/9", NULL), EACCES);
    T_CHECK(xs_transaction_end(d, t, false), "commit: %s", strerror(errno));
    T_EQ(rd_err(h, XBT_NULL, BE "/state", "4"), 0);
    t = xs_transaction_start(d);
    T_ASSERT(t);
    T_EQ(wr_err(d, t, "/local/domain/5/data/fresh", "1"), 0);
    T_CHECK(xs_transaction_end(d, t, false), "commit: %s", strerror(errno));
    p = xs_get_permissions(h, XBT_NULL, "/local/domain/5/data/fresh", &n);
    T_CHECK(p && n >= 1 && p[0].id == DD, "a node made in a transaction is the domain's too");
    free(p);

    /* Domain requests and CONTROL are dom0's; GET_DOMAIN_PATH is not. */
    errno = 0;
    T_CHECK(!xs_introduce_domain(d, 12, 1, 1) && errno == EACCES, "INTRODUCE: %s", strerror(errno));
    errno = 0;
    T_CHECK(!xs_release_domain(d, 12) && errno == EACCES, "RELEASE");
    errno = 0;
    T_CHECK(!xs_resume_domain(d, 0) && errno == EACCES, "RESUME");
    errno = 0;
    T_CHECK(!xs_set_target(d, 12, 9) && errno == EACCES, "SET_TARGET");
    errno = 0;
    char *cr = xs_control_command(d, "check", NULL, 0);
    T_CHECK(!cr && errno == EACCES, "CONTROL: %s", cr ? cr : strerror(errno));
    free(cr);
    char *dp = xs_get_domain_path(d, FE);
    T_CHECK(dp && !strcmp(dp, "/local/domain/9"), "GET_DOMAIN_PATH");
    free(dp);
}

static void test_watches(struct xs_handle *h, struct xs_handle *d)
{
    int n;
    T_ASSERT(xs_watch(d, "/local/domain/5/backend/vbd", "top"));
    T_ASSERT(xs_watch(d, "backend", "rel"));
    T_ASSERT(xs_watch(d, FEP "/state", "fe"));
    T_ASSERT(xs_watch(d, "/local/domain/9", "home9"));
    T_ASSERT(xs_watch(d, "@releaseDomain", "rel-dom"));
    T_ASSERT(xs_watch(h, "@releaseDomain", "rel-dom0"));
    /* each fires once at once, wherever it points */
    drain(d);
    T_CHECK((n = seen("/local/domain/9", "home9")) == 1, "initial event of an unreadable path: %d", n);
    T_CHECK((n = seen("@releaseDomain", "rel-dom")) == 1, "initial @releaseDomain: %d", n);
    T_CHECK((n = seen("backend", "rel")) == 1, "initial relative event: %d", n);
    drain(h);

    T_ASSERT(!wr_err(h, XBT_NULL, BE "/online", "1"));
    drain(d);
    T_CHECK((n = seen(BE "/online", "top")) == 1, "backend key event: %d", n);
    T_CHECK((n = seen("backend/vbd/9/51712/online", "rel")) == 1, "relative to home: %d", n);

    /* A node it may not read: no event; one it may read: one. */
    T_ASSERT(!wr_err(h, XBT_NULL, "/local/domain/9/memory", "1"));
    T_ASSERT(!wr_err(h, XBT_NULL, FEP "/state", "3"));
    drain(d);
    T_CHECK((n = seen("/local/domain/9/memory", "home9")) == 0, "event of an unreadable node: %d", n);
    T_CHECK((n = seen(FEP "/state", "fe")) == 1, "frontend state event: %d", n);
    T_CHECK((n = seen(FEP "/state", "home9")) == 1, "a readable node below a watch: %d", n);
    T_EQ(nev, 2);

    /* Read access taken away: that change still fires, the next does not
     * (neither the node nor its parent readable; either one would do). */
    mknod_perms(h, "/local/domain/5/data/hid", 0, 0, 0);
    T_ASSERT(!wr_err(h, XBT_NULL, "/local/domain/5/data/hid/x", "1"));
    set_perms(h, "/local/domain/5/data/hid/x", 0, 'r', DD);
    T_ASSERT(xs_watch(d, "/local/domain/5/data", "data"));
    drain(d);
    T_ASSERT(!wr_err(h, XBT_NULL, "/local/domain/5/data/hid/x", "2"));
    drain(d);
    T_CHECK((n = seen("/local/domain/5/data/hid/x", "data")) == 1, "readable node: %d", n);
    set_perms(h, "/local/domain/5/data/hid/x", 0, 0, 0);
    drain(d);
    T_CHECK((n = seen("/local/domain/5/data/hid/x", "data")) == 1, "perms change taking access away: %d", n);
    T_ASSERT(!wr_err(h, XBT_NULL, "/local/domain/5/data/hid/x", "3"));
    drain(d);
    T_CHECK(nev == 0, "events for nodes no longer readable: %d (%s)", nev, nev ? ev_path[0] : "");

    /* xl destroy: dom0 removes the guest's home; the frontend's state
     * (readable) fires, the home itself (not readable) does not. */
    T_CHECK(xs_introduce_domain(h, FE, 1, 1), "introduce 9");
    T_ASSERT(xs_rm(h, XBT_NULL, "/local/domain/9"));
    T_CHECK(xs_release_domain(h, FE), "release 9");
    drain(d);
    T_CHECK((n = seen(FEP "/state", "fe")) == 1, "removed frontend state: %d", n);
    T_CHECK((n = seen("/local/domain/9", "home9")) == 0, "removed unreadable home: %d", n);
    T_CHECK((n = seen("@releaseDomain", "rel-dom")) == 0, "@releaseDomain to a domU: %d", n);
    T_EQ(nev, 1);
    drain(h);
    T_CHECK((n = seen("@releaseDomain", "rel-dom0")) == 1, "@releaseDomain to dom0: %d", n);
}

int main(void)
{
    const char *dir = t_tmpdir(0);
    char sock[108], dsock[108], arg[160];
    pid_t xsd;
    snprintf(dsock, sizeof(dsock), "%s/xs-dom5.sock", dir);
    snprintf(arg, sizeof(arg), "%u:%s", DD, dsock);
    const char *const args[] = { "--domain-socket", arg, NULL };
    int rc = t_xsd_start_args(dir, args, sock, sizeof(sock), &xsd);
    T_SKIP_IF(rc == -ENOENT, "xen-sim-xenstored not built");
    T_ASSERT(rc == 0, "t_xsd_start: %s", strerror(-rc));

    struct xs_handle *h = open_at(sock), *d = open_at(dsock);
    libxl_layout(h);
    test_access(h, d);
    test_watches(h, d);
    xs_close(d);
    xs_close(h);
    rc = t_xsd_stop_status(xsd);
    T_EQ(rc, 0);
    T_CHECK(access(dsock, F_OK) != 0, "domain socket removed on exit");
    return t_done();
}
