/* xen-sim-xenstored conformance through the real libxenstore and raw wire messages: ops, errors, watches, transactions, perms, domains, big directories, limits, floods. */
#include "harness.h"
#include "util.h"
#include "lib/xsd.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>
#include <xen/io/xs_wire.h>

static char sock[108];
static pid_t xsd;

/* ---- helpers -------------------------------------------------------- */

static struct xs_handle *xopen(void)
{
    struct xs_handle *h = xs_open(0);
    T_ASSERT(h, "xs_open: %s", strerror(errno));
    return h;
}

/* Read a node; NULL and errno on failure.  Caller frees. */
static char *rd(struct xs_handle *h, xs_transaction_t t, const char *path)
{
    unsigned len;
    return xs_read(h, t, path, &len);
}

static bool wr(struct xs_handle *h, xs_transaction_t t, const char *path, const char *val)
{
    return xs_write(h, t, path, val, (unsigned)strlen(val));
}

/* Check that path reads as want (NULL: must be ENOENT). */
static void check_read(struct xs_handle *h, xs_transaction_t t, const char *path, const char *want, int line)
{
    errno = 0;
    char *v = rd(h, t, path);
    int e = errno;
    bool ok = want ? v && strcmp(v, want) == 0 : !v && e == ENOENT;
    if (!ok) {
        t_failures++;
        fprintf(stderr, "FAIL line %d: %s = '%.60s' (errno %d), want '%.60s'\n", line, path,
                v ? v : "(null)", e, want ? want : "(ENOENT)");
    }
    free(v);
}
#define T_READ(h, t, path, want) check_read(h, t, path, want, __LINE__)

/* Next watch event within timeout_ms: 1 with path/token copied, 0 on timeout. */
static int next_event(struct xs_handle *h, int timeout_ms, char *path, char *token)
{
    struct pollfd p = { .fd = xs_fileno(h), .events = POLLIN };
    for (;;) {
        char **v = xs_check_watch(h);
        if (v) {
            snprintf(path, 256, "%s", v[XS_WATCH_PATH]);
            snprintf(token, 64, "%s", v[XS_WATCH_TOKEN]);
            free(v);
            return 1;
        }
        if (poll(&p, 1, timeout_ms) <= 0)
            return 0;
    }
}

/* Expect the next event to be exactly path/token. */
static void expect_event(struct xs_handle *h, const char *wpath, const char *wtok, int line)
{
    char p[256], t[64];
    if (!next_event(h, 5000, p, t)) {
        t_failures++;
        fprintf(stderr, "FAIL line %d: no watch event, wanted %s/%s\n", line, wpath, wtok);
        return;
    }
    if (strcmp(p, wpath) || strcmp(t, wtok)) {
        t_failures++;
        fprintf(stderr, "FAIL line %d: event %s/%s, wanted %s/%s\n", line, p, t, wpath, wtok);
    }
}
#define EXPECT_EVENT(h, p, t) expect_event(h, p, t, __LINE__)

/* No event pending after a round trip through the server. */
static void expect_no_event(struct xs_handle *h, int line)
{
    char p[256], t[64];
    free(rd(h, XBT_NULL, "/local/domain/0/name"));     /* events before this reply are queued */
    if (next_event(h, 200, p, t)) {
        t_failures++;
        fprintf(stderr, "FAIL line %d: unexpected event %s/%s\n", line, p, t);
    }
}
#define EXPECT_NO_EVENT(h) expect_no_event(h, __LINE__)

/* Raw wire client for what libxenstore cannot send. */
static int raw_open(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    T_ASSERT(fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s", strerror(errno));
    return fd;
}

static void raw_send(int fd, uint32_t type, uint32_t req_id, uint32_t tx, const void *p, uint32_t len)
{
    struct xsd_sockmsg h = { type, req_id, tx, len };
    char buf[sizeof(h) + 8192];
    T_ASSERT(len <= 8192);
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), p, len);
    T_ASSERT(send(fd, buf, sizeof(h) + len, MSG_NOSIGNAL) == (ssize_t)(sizeof(h) + len), "send: %s", strerror(errno));
}

static int read_full(int fd, void *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    while (got < len) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, timeout_ms) <= 0)
            return -ETIMEDOUT;
        ssize_t r = read(fd, (char *)buf + got, len - got);
        if (r == 0)
            return -EPIPE;
        if (r < 0)
            return -errno;
        got += (size_t)r;
    }
    return 0;
}

/* Receive one message: payload into buf (NUL added), returns the header type or -errno. */
static int raw_recv(int fd, struct xsd_sockmsg *h, char *buf, size_t blen)
{
    int rc = read_full(fd, h, sizeof(*h), 5000);
    if (rc)
        return rc;
    if (h->len >= blen)
        return -E2BIG;
    if ((rc = read_full(fd, buf, h->len, 5000)))
        return rc;
    buf[h->len] = '\0';
    return (int)h->type;
}

/* Send a request and return the reply (skipping watch events). */
static int raw_call(int fd, uint32_t type, uint32_t tx, const void *p, uint32_t len, char *out, size_t olen)
{
    struct xsd_sockmsg h;
    raw_send(fd, type, 77, tx, p, len);
    for (;;) {
        int t = raw_recv(fd, &h, out, olen);
        if (t != XS_WATCH_EVENT) {
            if (t >= 0)
                T_CHECK(h.req_id == 77, "req_id echoed: %u", h.req_id);
            return t;
        }
    }
}

/* ---- sections ------------------------------------------------------- */

static void test_initial_tree(struct xs_handle *h)
{
    T_READ(h, XBT_NULL, "/local/domain/0/name", "Domain-0");
    T_READ(h, XBT_NULL, "/local/domain/0/domid", "0");
    T_READ(h, XBT_NULL, "name", "Domain-0");            /* relative to /local/domain/0 */
    T_READ(h, XBT_NULL, "/tool", "");
    unsigned n;
    char **d = xs_directory(h, XBT_NULL, "/", &n);
    T_ASSERT(d, "directory /: %s", strerror(errno));
    bool local = false, tool = false;
    for (unsigned i = 0; i < n; i++) {
        local |= strcmp(d[i], "local") == 0;
        tool |= strcmp(d[i], "tool") == 0;
    }
    T_CHECK(local && tool && n == 2, "/ has local and tool (%u entries)", n);
    free(d);
}

static void test_basic_ops(struct xs_handle *h)
{
    /* WRITE creates parents with empty values. */
    T_CHECK(wr(h, XBT_NULL, "/t/a/b/c", "v1"));
    T_READ(h, XBT_NULL, "/t/a/b/c", "v1");
    T_READ(h, XBT_NULL, "/t/a/b", "");
    T_CHECK(wr(h, XBT_NULL, "/t/a/b/c", "second"));
    T_READ(h, XBT_NULL, "/t/a/b/c", "second");
    /* Binary values with NULs survive; an empty value is a value. */
    unsigned len = 0;
    T_CHECK(xs_write(h, XBT_NULL, "/t/bin", "x\0y\0", 4));
    char *v = xs_read(h, XBT_NULL, "/t/bin", &len);
    T_CHECK(v && len == 4 && memcmp(v, "x\0y\0", 4) == 0, "binary value, len %u", len);
    free(v);
    T_CHECK(wr(h, XBT_NULL, "/t/empty", ""));
    v = xs_read(h, XBT_NULL, "/t/empty", &len);
    T_CHECK(v && len == 0, "empty value");
    free(v);
    /* Relative write lands under /local/domain/0. */
    T_CHECK(wr(h, XBT_NULL, "relkey", "r"));
    T_READ(h, XBT_NULL, "/local/domain/0/relkey", "r");
    /* A value of almost the payload limit. */
    char big[4000];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    T_CHECK(wr(h, XBT_NULL, "/t/big", big));
    T_READ(h, XBT_NULL, "/t/big", big);

    /* MKDIR: creates, and leaves an existing value alone. */
    T_CHECK(xs_mkdir(h, XBT_NULL, "/t/m/n"));
    T_READ(h, XBT_NULL, "/t/m/n", "");
    T_CHECK(xs_mkdir(h, XBT_NULL, "/t/a/b/c"));
    T_READ(h, XBT_NULL, "/t/a/b/c", "second");

    /* DIRECTORY in creation order. */
    T_CHECK(wr(h, XBT_NULL, "/t/d/zeta", "1") && wr(h, XBT_NULL, "/t/d/alpha", "2") &&
            wr(h, XBT_NULL, "/t/d/mid", "3"));
    unsigned n;
    char **d = xs_directory(h, XBT_NULL, "/t/d", &n);
    T_CHECK(d && n == 3 && !strcmp(d[0], "zeta") && !strcmp(d[1], "alpha") && !strcmp(d[2], "mid"),
            "directory order");
    free(d);
    d = xs_directory(h, XBT_NULL, "/t/d/zeta", &n);
    T_CHECK(d && n == 0, "leaf has no children");
    free(d);

    /* RM is recursive; missing node with an existing parent is fine. */
    T_CHECK(xs_rm(h, XBT_NULL, "/t/a"));
    T_READ(h, XBT_NULL, "/t/a/b/c", NULL);
    T_READ(h, XBT_NULL, "/t/a", NULL);
    T_CHECK(xs_rm(h, XBT_NULL, "/t/a"), "rm of a missing node, parent exists");
    errno = 0;
    T_CHECK(!xs_rm(h, XBT_NULL, "/t/nope/deeper") && errno == ENOENT, "rm, parent missing: %d", errno);
    errno = 0;
    T_CHECK(!xs_rm(h, XBT_NULL, "/") && errno == EINVAL, "rm /: %d", errno);
}

static void test_errors(struct xs_handle *h)
{
    static const char *const bad[] = { "/a//b", "/a/", "/a b", "", "/a\x01", "/a/b/", "//", "/ä" };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        errno = 0;
        T_CHECK(!wr(h, XBT_NULL, bad[i], "x") && errno == EINVAL, "write '%s' -> %d", bad[i], errno);
        errno = 0;
        char *v = rd(h, XBT_NULL, bad[i]);
        T_CHECK(!v && errno == EINVAL, "read '%s' -> %d", bad[i], errno);
        free(v);
    }
    char longp[XENSTORE_ABS_PATH_MAX + 8];
    memset(longp, 'a', sizeof(longp));
    longp[0] = '/';
    longp[XENSTORE_ABS_PATH_MAX + 1] = '\0';            /* 3073 bytes */
    errno = 0;
    T_CHECK(!wr(h, XBT_NULL, longp, "x") && errno == EINVAL, "over-long path -> %d", errno);
    longp[XENSTORE_ABS_PATH_MAX] = '\0';                /* 3072: allowed */
    T_CHECK(wr(h, XBT_NULL, longp, "x"), "3072-byte path: %s", strerror(errno));
    T_CHECK(xs_rm(h, XBT_NULL, longp));
    T_CHECK(wr(h, XBT_NULL, "/-_@/A9", "ok"), "all valid characters");
    T_READ(h, XBT_NULL, "/-_@/A9", "ok");
    T_CHECK(xs_rm(h, XBT_NULL, "/-_@"));

    T_READ(h, XBT_NULL, "/no/such/node", NULL);
    unsigned n;
    errno = 0;
    T_CHECK(!xs_directory(h, XBT_NULL, "/no/such", &n) && errno == ENOENT);
    errno = 0;
    T_CHECK(!xs_get_permissions(h, XBT_NULL, "/no/such", &n) && errno == ENOENT);
    errno = 0;
    T_CHECK(!rd(h, 424242, "/local") && errno == ENOENT, "unknown transaction -> %d", errno);
}

static void test_perms(struct xs_handle *h)
{
    unsigned n;
    T_CHECK(wr(h, XBT_NULL, "/p/x", "1"));
    struct xs_permissions *p = xs_get_permissions(h, XBT_NULL, "/p/x", &n);
    T_CHECK(p && n == 1 && p[0].id == 0 && p[0].perms == XS_PERM_NONE, "default perms n0");
    free(p);
    struct xs_permissions set[3] = {
        { .id = 5, .perms = XS_PERM_NONE },
        { .id = 0, .perms = XS_PERM_READ },
        { .id = 7, .perms = XS_PERM_READ | XS_PERM_WRITE },
    };
    T_CHECK(xs_set_permissions(h, XBT_NULL, "/p/x", set, 3), "set perms: %s", strerror(errno));
    p = xs_get_permissions(h, XBT_NULL, "/p/x", &n);
    T_CHECK(p && n == 3 && p[0].id == 5 && p[0].perms == XS_PERM_NONE && p[1].id == 0 &&
            p[1].perms == XS_PERM_READ && p[2].id == 7 && p[2].perms == (XS_PERM_READ | XS_PERM_WRITE),
            "perms read back");
    free(p);
    /* New children (and missing parents on the way) inherit. */
    T_CHECK(wr(h, XBT_NULL, "/p/x/y/z", "2"));
    p = xs_get_permissions(h, XBT_NULL, "/p/x/y/z", &n);
    T_CHECK(p && n == 3 && p[0].id == 5 && p[2].id == 7, "child inherits parent perms");
    free(p);
    errno = 0;
    T_CHECK(!xs_set_permissions(h, XBT_NULL, "/p/none", set, 1) && errno == ENOENT);

    /* Raw: the n<id>/r/w/b strings, and bad ones. */
    int fd = raw_open();
    char buf[5000];
    struct { const char *pl; unsigned len; int want; } cases[] = {
        { "/p/x\0b3\0w4\0", 11, XS_SET_PERMS },
        { "/p/x\0q3\0", 8, XS_ERROR },
        { "/p/x\0r\0", 7, XS_ERROR },
        { "/p/x\0", 5, XS_ERROR },
        { "/p/x\0r3x\0", 9, XS_ERROR },
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        int t = raw_call(fd, XS_SET_PERMS, 0, cases[i].pl, cases[i].len, buf, sizeof(buf));
        T_CHECK(t == cases[i].want && (t != XS_ERROR || !strcmp(buf, "EINVAL")),
                "set_perms case %zu -> %d %s", i, t, buf);
    }
    int t = raw_call(fd, XS_GET_PERMS, 0, "/p/x", 5, buf, sizeof(buf));
    T_CHECK(t == XS_GET_PERMS && !memcmp(buf, "b3\0w4\0", 6), "GET_PERMS payload");
    close(fd);
}

static void test_domains(struct xs_handle *h, struct xs_handle *w)
{
    char *p = xs_get_domain_path(h, 7);
    T_CHECK(p && !strcmp(p, "/local/domain/7"), "domain path %s", p ? p : "(null)");
    free(p);
    p = xs_get_domain_path(h, 0);
    T_CHECK(p && !strcmp(p, "/local/domain/0"));
    free(p);

    T_CHECK(xs_watch(w, "@introduceDomain", "intro"));
    EXPECT_EVENT(w, "@introduceDomain", "intro");
    T_CHECK(xs_watch(w, "@releaseDomain", "rel"));
    EXPECT_EVENT(w, "@releaseDomain", "rel");
    T_CHECK(xs_is_domain_introduced(h, 0), "dom0 is introduced");
    T_CHECK(!xs_is_domain_introduced(h, 5));
    T_CHECK(xs_introduce_domain(h, 5, 0x1234, 3), "introduce: %s", strerror(errno));
    EXPECT_EVENT(w, "@introduceDomain", "intro");
    T_CHECK(xs_is_domain_introduced(h, 5));
    T_CHECK(xs_introduce_domain(h, 6, 0x1235, 4));
    EXPECT_EVENT(w, "@introduceDomain", "intro");
    T_CHECK(xs_set_target(h, 6, 5), "set_target: %s", strerror(errno));
    errno = 0;
    T_CHECK(!xs_set_target(h, 6, 99) && errno == ENOENT);
    T_CHECK(xs_resume_domain(h, 5));
    errno = 0;
    T_CHECK(!xs_introduce_domain(h, 0, 1, 1) && errno == EINVAL, "introduce dom0 -> %d", errno);
    T_CHECK(xs_release_domain(h, 5));
    EXPECT_EVENT(w, "@releaseDomain", "rel");
    T_CHECK(!xs_is_domain_introduced(h, 5));
    errno = 0;
    T_CHECK(!xs_release_domain(h, 5) && errno == ENOENT, "double release -> %d", errno);
    errno = 0;
    T_CHECK(!xs_resume_domain(h, 5) && errno == ENOENT);
    T_CHECK(xs_release_domain(h, 6));
    EXPECT_EVENT(w, "@releaseDomain", "rel");
    /* Node changes do not fire special watches. */
    T_CHECK(wr(h, XBT_NULL, "/local/domain/5/x", "1"));
    EXPECT_NO_EVENT(w);
    T_CHECK(xs_unwatch(w, "@introduceDomain", "intro") && xs_unwatch(w, "@releaseDomain", "rel"));
    T_CHECK(xs_rm(h, XBT_NULL, "/local/domain/5"));

    /* CONTROL */
    char *r = xs_control_command(h, "help", NULL, 0);
    T_CHECK(r && strstr(r, "check"), "control help");
    free(r);
    r = xs_control_command(h, "print", "hello from t_xenstored", 23);
    T_CHECK(r != NULL, "control print");
    free(r);
    errno = 0;
    r = xs_control_command(h, "no-such-command", NULL, 0);
    T_CHECK(!r && errno == EINVAL);
    free(r);
}

static void test_watches(struct xs_handle *h, struct xs_handle *w)
{
    T_CHECK(wr(h, XBT_NULL, "/w/deep/node/leaf", "0"));
    T_CHECK(xs_watch(w, "/w", "top"), "watch: %s", strerror(errno));
    EXPECT_EVENT(w, "/w", "top");                      /* the initial event */
    T_CHECK(wr(h, XBT_NULL, "/w/x", "1"));
    EXPECT_EVENT(w, "/w/x", "top");
    T_CHECK(wr(h, XBT_NULL, "/w/x", "1"));              /* unchanged value fires too */
    EXPECT_EVENT(w, "/w/x", "top");
    T_CHECK(wr(h, XBT_NULL, "/wx", "no"));               /* sibling with a common prefix */
    T_CHECK(wr(h, XBT_NULL, "/other", "no"));
    EXPECT_NO_EVENT(w);
    T_CHECK(xs_mkdir(h, XBT_NULL, "/w/m"));
    EXPECT_EVENT(w, "/w/m", "top");
    T_CHECK(xs_mkdir(h, XBT_NULL, "/w/m"));              /* exists: no change, no event */
    EXPECT_NO_EVENT(w);
    struct xs_permissions perm = { .id = 3, .perms = XS_PERM_READ };
    T_CHECK(xs_set_permissions(h, XBT_NULL, "/w/m", &perm, 1));
    EXPECT_EVENT(w, "/w/m", "top");
    T_CHECK(xs_rm(h, XBT_NULL, "/w/m"));
    EXPECT_EVENT(w, "/w/m", "top");

    /* Duplicate watch: EEXIST; same path, other token: fine. */
    errno = 0;
    T_CHECK(!xs_watch(w, "/w", "top") && errno == EEXIST, "duplicate watch -> %d", errno);
    T_CHECK(xs_watch(w, "/w/deep/node", "leafw"));
    EXPECT_EVENT(w, "/w/deep/node", "leafw");
    T_CHECK(xs_watch(w, "/w/deep/node/leaf/never", "below"));   /* need not exist */
    EXPECT_EVENT(w, "/w/deep/node/leaf/never", "below");
    /* Removing an ancestor fires the watches below it, with their own paths. */
    T_CHECK(xs_rm(h, XBT_NULL, "/w"));
    char p[256], t[64];
    int got_top = 0, got_leaf = 0, got_below = 0, other = 0;
    for (int i = 0; i < 3; i++) {
        if (!next_event(w, 5000, p, t))
            break;
        if (!strcmp(p, "/w") && !strcmp(t, "top")) got_top++;
        else if (!strcmp(p, "/w/deep/node") && !strcmp(t, "leafw")) got_leaf++;
        else if (!strcmp(p, "/w/deep/node/leaf/never") && !strcmp(t, "below")) got_below++;
        else { other++; T_LOG("unexpected event %s %s", p, t); }
    }
    T_CHECK(got_top == 1 && got_leaf == 1 && got_below == 1 && !other,
            "rm of ancestor: top %d leaf %d below %d other %d", got_top, got_leaf, got_below, other);
    EXPECT_NO_EVENT(w);

    /* UNWATCH */
    T_CHECK(xs_unwatch(w, "/w/deep/node", "leafw") && xs_unwatch(w, "/w/deep/node/leaf/never", "below"));
    errno = 0;
    T_CHECK(!xs_unwatch(w, "/w", "nosuchtoken") && errno == ENOENT);
    T_CHECK(xs_unwatch(w, "/w", "top"));
    T_CHECK(wr(h, XBT_NULL, "/w/after", "1"));
    EXPECT_NO_EVENT(w);

    /* Relative watches get relative event paths. */
    T_CHECK(xs_watch(w, "relw", "rt"));
    EXPECT_EVENT(w, "relw", "rt");
    T_CHECK(wr(h, XBT_NULL, "/local/domain/0/relw/k", "1"));
    EXPECT_EVENT(w, "relw/k", "rt");
    T_CHECK(xs_unwatch(w, "relw", "rt"));
    /* A watch on / sees everything. */
    T_CHECK(xs_watch(w, "/", "root"));
    EXPECT_EVENT(w, "/", "root");
    T_CHECK(wr(h, XBT_NULL, "/anything/at/all", "1"));
    EXPECT_EVENT(w, "/anything/at/all", "root");
    T_CHECK(xs_unwatch(w, "/", "root"));
    errno = 0;
    T_CHECK(!xs_watch(w, "/bad//path", "x") && errno == EINVAL);

    /* Raw: OK comes first, then the initial event; RESET_WATCHES drops all. */
    int fd = raw_open();
    char buf[5000];
    struct xsd_sockmsg hd;
    raw_send(fd, XS_WATCH, 9, 0, "/raw\0tk\0", 8);
    T_CHECK(raw_recv(fd, &hd, buf, sizeof(buf)) == XS_WATCH && hd.req_id == 9 && !strcmp(buf, "OK"), "watch reply first");
    T_CHECK(raw_recv(fd, &hd, buf, sizeof(buf)) == XS_WATCH_EVENT && hd.req_id == 0 && hd.tx_id == 0 &&
            hd.len == 8 && !memcmp(buf, "/raw\0tk\0", 8), "initial event payload");
    T_CHECK(raw_call(fd, XS_RESET_WATCHES, 0, "", 1, buf, sizeof(buf)) == XS_RESET_WATCHES);
    T_CHECK(raw_call(fd, XS_UNWATCH, 0, "/raw\0tk\0", 8, buf, sizeof(buf)) == XS_ERROR && !strcmp(buf, "ENOENT"),
            "reset removed the watch");
    close(fd);
}

static void test_transactions(struct xs_handle *h, struct xs_handle *o)
{
    T_CHECK(wr(h, XBT_NULL, "/tx/c", "old"));
    /* Isolation both ways, then commit. */
    xs_transaction_t t = xs_transaction_start(h);
    T_ASSERT(t, "transaction_start: %s", strerror(errno));
    T_CHECK(wr(h, t, "/tx/a", "in-t"));
    T_READ(h, t, "/tx/a", "in-t");
    T_READ(o, XBT_NULL, "/tx/a", NULL);
    T_CHECK(wr(o, XBT_NULL, "/txo/unrelated", "u"));      /* not touched by t: no conflict */
    T_CHECK(xs_transaction_end(h, t, false), "commit: %s", strerror(errno));
    T_READ(o, XBT_NULL, "/tx/a", "in-t");
    T_READ(o, XBT_NULL, "/txo/unrelated", "u");
    /* A snapshot: changes made after the start are not seen. */
    t = xs_transaction_start(h);
    T_CHECK(wr(o, XBT_NULL, "/txo/later", "l") && wr(o, XBT_NULL, "/txo/unrelated", "u2"));
    T_READ(h, t, "/txo/later", NULL);
    T_READ(h, t, "/txo/unrelated", "u");
    T_CHECK(xs_transaction_end(h, t, true));

    /* Abort discards. */
    t = xs_transaction_start(h);
    T_CHECK(wr(h, t, "/tx/aborted", "x") && xs_rm(h, t, "/tx/a"));
    T_CHECK(xs_transaction_end(h, t, true));
    T_READ(h, XBT_NULL, "/tx/aborted", NULL);
    T_READ(h, XBT_NULL, "/tx/a", "in-t");

    /* Read-then-conflict -> EAGAIN, nothing applied; the retry succeeds. */
    int tries = 0;
    for (;;) {
        tries++;
        t = xs_transaction_start(h);
        T_ASSERT(t);
        char *v = rd(h, t, "/tx/c");
        char nv[64];
        snprintf(nv, sizeof(nv), "%s+1", v ? v : "?");
        free(v);
        if (tries == 1) {
            T_CHECK(wr(o, XBT_NULL, "/tx/c", "changed"));   /* someone else, meanwhile */
            T_READ(h, t, "/tx/c", "old");                   /* t still sees its snapshot */
        }
        T_CHECK(wr(h, t, "/tx/c", nv) && wr(h, t, "/tx/side", nv));
        if (xs_transaction_end(h, t, false))
            break;
        T_CHECK(errno == EAGAIN, "conflict errno %d", errno);
        T_READ(h, XBT_NULL, "/tx/side", NULL);              /* nothing of t applied */
        if (tries > 3)
            break;
    }
    T_EQ(tries, 2);
    T_READ(h, XBT_NULL, "/tx/c", "changed+1");

    /* A directory listing counts as a read. */
    t = xs_transaction_start(h);
    unsigned n;
    free(xs_directory(h, t, "/tx", &n));
    T_CHECK(wr(o, XBT_NULL, "/tx/newchild", "1"));
    T_CHECK(wr(h, t, "/tx2/z", "1"));
    errno = 0;
    T_CHECK(!xs_transaction_end(h, t, false) && errno == EAGAIN, "listing conflict -> %d", errno);
    T_READ(h, XBT_NULL, "/tx2/z", NULL);
    /* ...and a node created meanwhile where t created one too. */
    t = xs_transaction_start(h);
    T_CHECK(wr(h, t, "/tx3/q", "t"));
    T_CHECK(wr(o, XBT_NULL, "/tx3/q", "o"));
    errno = 0;
    T_CHECK(!xs_transaction_end(h, t, false) && errno == EAGAIN, "create/create conflict -> %d", errno);
    T_READ(h, XBT_NULL, "/tx3/q", "o");

    /* Watch events fire at commit, not before. */
    T_CHECK(xs_watch(o, "/tx", "txw"));
    EXPECT_EVENT(o, "/tx", "txw");
    t = xs_transaction_start(h);
    T_CHECK(wr(h, t, "/tx/ev", "1") && xs_rm(h, t, "/tx/c"));
    EXPECT_NO_EVENT(o);
    T_CHECK(xs_transaction_end(h, t, false));
    EXPECT_EVENT(o, "/tx/ev", "txw");
    EXPECT_EVENT(o, "/tx/c", "txw");
    t = xs_transaction_start(h);
    T_CHECK(wr(h, t, "/tx/ev2", "1"));
    T_CHECK(xs_transaction_end(h, t, true));
    EXPECT_NO_EVENT(o);
    T_CHECK(xs_unwatch(o, "/tx", "txw"));

    /* Raw: END without a transaction, bad argument, nested START. */
    int fd = raw_open();
    char buf[5000];
    T_CHECK(raw_call(fd, XS_TRANSACTION_END, 0, "T", 2, buf, sizeof(buf)) == XS_ERROR && !strcmp(buf, "ENOENT"));
    T_CHECK(raw_call(fd, XS_TRANSACTION_START, 0, "", 1, buf, sizeof(buf)) == XS_TRANSACTION_START);
    uint32_t id = (uint32_t)strtoul(buf, NULL, 10);
    T_CHECK(id != 0, "transaction id %s", buf);
    T_CHECK(raw_call(fd, XS_TRANSACTION_START, id, "", 1, buf, sizeof(buf)) == XS_ERROR && !strcmp(buf, "EBUSY"));
    T_CHECK(raw_call(fd, XS_TRANSACTION_END, id, "X", 2, buf, sizeof(buf)) == XS_ERROR && !strcmp(buf, "EINVAL"));
    T_CHECK(raw_call(fd, XS_TRANSACTION_END, id, "F", 2, buf, sizeof(buf)) == XS_TRANSACTION_END);
    T_CHECK(raw_call(fd, XS_TRANSACTION_END, id, "F", 2, buf, sizeof(buf)) == XS_ERROR && !strcmp(buf, "ENOENT"));
    /* Per-connection limit (server runs with --max-transactions 8). */
    int ok = 0, fail = 0;
    for (int i = 0; i < 9; i++) {
        int r = raw_call(fd, XS_TRANSACTION_START, 0, "", 1, buf, sizeof(buf));
        if (r == XS_TRANSACTION_START) ok++;
        else if (r == XS_ERROR && !strcmp(buf, "ENOSPC")) fail++;
    }
    T_CHECK(ok == 8 && fail == 1, "transaction quota: %d ok %d ENOSPC", ok, fail);
    close(fd);                  /* its transactions go with it */
}

struct worker { int idx; int errors; };

static void *worker(void *arg)
{
    struct worker *wk = arg;
    struct xs_handle *h = xs_open(0);
    if (!h) {
        wk->errors++;
        return NULL;
    }
    for (int i = 0; i < 300; i++) {
        char path[64], val[32];
        snprintf(path, sizeof(path), "/conc/%d/k%d", wk->idx, i % 17);
        snprintf(val, sizeof(val), "%d-%d", wk->idx, i);
        if (!xs_write(h, XBT_NULL, path, val, (unsigned)strlen(val)))
            wk->errors++;
        unsigned len;
        char *v = xs_read(h, XBT_NULL, path, &len);
        if (!v || strcmp(v, val))
            wk->errors++;
        free(v);
        /* A transaction that increments a shared counter. */
        if (i % 10 == 0) {
            for (int tries = 0; tries < 100; tries++) {
                xs_transaction_t t = xs_transaction_start(h);
                char *c = xs_read(h, t, "/conc/counter", &len);
                char nv[32];
                snprintf(nv, sizeof(nv), "%ld", (c ? strtol(c, NULL, 10) : 0) + 1);
                free(c);
                xs_write(h, t, "/conc/counter", nv, (unsigned)strlen(nv));
                if (xs_transaction_end(h, t, false))
                    break;
                if (errno != EAGAIN) {
                    wk->errors++;
                    break;
                }
            }
        }
    }
    xs_close(h);
    return NULL;
}

static void test_concurrent(void)
{
    pthread_t th[4];
    struct worker wk[4];
    for (int i = 0; i < 4; i++) {
        wk[i] = (struct worker){ .idx = i };
        T_ASSERT(pthread_create(&th[i], NULL, worker, &wk[i]) == 0);
    }
    int errors = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        errors += wk[i].errors;
    }
    T_EQ(errors, 0);
    struct xs_handle *h = xopen();
    T_READ(h, XBT_NULL, "/conc/counter", "120");        /* 4 clients x 30 increments, none lost */
    unsigned n;
    char **d = xs_directory(h, XBT_NULL, "/conc/2", &n);
    T_CHECK(d && n == 17, "17 keys per client, got %u", n);
    free(d);
    xs_close(h);
}

static void test_big_directory(struct xs_handle *h)
{
    enum { N = 700 };          /* ~22 B per name: ~15 KiB, several DIRECTORY_PART rounds */
    for (int i = 0; i < N; i++) {
        char p[96];
        snprintf(p, sizeof(p), "/big/child-with-a-long-name-%04d", i);
        T_ASSERT(xs_mkdir(h, XBT_NULL, p), "%s", strerror(errno));
    }
    int fd = raw_open();
    char buf[5000];
    T_CHECK(raw_call(fd, XS_DIRECTORY, 0, "/big", 5, buf, sizeof(buf)) == XS_ERROR && !strcmp(buf, "E2BIG"),
            "DIRECTORY over the payload limit -> E2BIG (%s)", buf);
    /* One raw DIRECTORY_PART: generation, then whole names, not the end marker yet. */
    struct xsd_sockmsg hd;
    raw_send(fd, XS_DIRECTORY_PART, 1, 0, "/big\0" "0", 7);
    T_CHECK(raw_recv(fd, &hd, buf, sizeof(buf)) == XS_DIRECTORY_PART && hd.len <= XENSTORE_PAYLOAD_MAX &&
            hd.len > 3000 && buf[hd.len - 1] == '\0' && buf[hd.len - 2] != '\0', "first part, len %u", hd.len);
    T_CHECK(raw_call(fd, XS_DIRECTORY_PART, 0, "/big\0" "999999", 12, buf, sizeof(buf)) == XS_DIRECTORY_PART,
            "offset past the end");
    close(fd);

    /* libxenstore falls back to DIRECTORY_PART and gets everything, in order. */
    unsigned n;
    char **d = xs_directory(h, XBT_NULL, "/big", &n);
    T_ASSERT(d, "xs_directory /big: %s", strerror(errno));
    T_EQ(n, N);
    int bad = 0;
    for (unsigned i = 0; i < n; i++) {
        char want[64];
        snprintf(want, sizeof(want), "child-with-a-long-name-%04u", i);
        bad += strcmp(d[i], want) != 0;
    }
    T_EQ(bad, 0);
    free(d);
    /* In a transaction too. */
    xs_transaction_t t = xs_transaction_start(h);
    d = xs_directory(h, t, "/big", &n);
    T_CHECK(d && n == N, "in a transaction: %u", n);
    free(d);
    xs_transaction_end(h, t, true);
    T_CHECK(xs_rm(h, XBT_NULL, "/big"));
}

static void test_raw_protocol(void)
{
    int fd = raw_open();
    char buf[9000];
    T_CHECK(raw_call(fd, 99, 0, "", 0, buf, sizeof(buf)) == XS_ERROR && !strcmp(buf, "ENOSYS"), "unknown type");
    T_CHECK(raw_call(fd, XS_WATCH_EVENT, 0, "/\0x\0", 4, buf, sizeof(buf)) == XS_ERROR && !strcmp(buf, "ENOSYS"));
    T_CHECK(raw_call(fd, XS_READ, 0, "/local", 6, buf, sizeof(buf)) == XS_ERROR && !strcmp(buf, "EINVAL"),
            "READ without NUL");
    T_CHECK(raw_call(fd, XS_READ, 0, "/local\0/x\0", 10, buf, sizeof(buf)) == XS_ERROR && !strcmp(buf, "EINVAL"),
            "READ with two args");
    T_CHECK(raw_call(fd, XS_GET_DOMAIN_PATH, 0, "abc", 4, buf, sizeof(buf)) == XS_ERROR && !strcmp(buf, "EINVAL"));
    T_CHECK(raw_call(fd, XS_IS_DOMAIN_INTRODUCED, 0, "0", 2, buf, sizeof(buf)) == XS_IS_DOMAIN_INTRODUCED &&
            !strcmp(buf, "T"));
    T_CHECK(raw_call(fd, XS_WRITE, 0, "/raw/w\0val", 10, buf, sizeof(buf)) == XS_WRITE && !strcmp(buf, "OK"));
    T_CHECK(raw_call(fd, XS_READ, 0, "/raw/w", 7, buf, sizeof(buf)) == XS_READ && !strcmp(buf, "val"));
    /* A payload at the limit is accepted; one byte more kills the connection. */
    static char big[XENSTORE_PAYLOAD_MAX];
    memset(big, 'v', sizeof(big));
    memcpy(big, "/raw/big", 9);
    T_CHECK(raw_call(fd, XS_WRITE, 0, big, XENSTORE_PAYLOAD_MAX, buf, sizeof(buf)) == XS_WRITE);
    struct xsd_sockmsg h = { XS_WRITE, 0, 0, XENSTORE_PAYLOAD_MAX + 1 };
    T_CHECK(send(fd, &h, sizeof(h), MSG_NOSIGNAL) == sizeof(h));
    T_CHECK(read_full(fd, buf, 1, 5000) == -EPIPE, "connection closed after an oversized header");
    close(fd);
    /* Byte-at-a-time delivery still frames correctly. */
    fd = raw_open();
    struct xsd_sockmsg r = { XS_READ, 5, 0, 21 };
    char msg[sizeof(r) + 21];
    memcpy(msg, &r, sizeof(r));
    memcpy(msg + sizeof(r), "/local/domain/0/name", 21);
    for (size_t i = 0; i < sizeof(msg); i++) {
        T_ASSERT(send(fd, msg + i, 1, MSG_NOSIGNAL) == 1);
        usleep(200);
    }
    T_CHECK(raw_recv(fd, &h, buf, sizeof(buf)) == XS_READ && h.req_id == 5 && !strcmp(buf, "Domain-0"));
    close(fd);
}

/* Garbage from hostile clients (fixed seed): the server must stay up and correct. */
static void test_garbage(struct xs_handle *h)
{
    static const char *const words[] = { "/", "/g", "/g/a", "g", "@introduceDomain", "", "//", "/g/",
                                         "T", "F", "0", "7", "r0", "b7", "x7", "help", "log" };
    unsigned seed = 12345;
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = raw_open();
    char p[600], junk[65536];
    for (int it = 0; it < 6000; it++) {
        int c = rand_r(&seed) % 3;
        uint32_t type = (uint32_t)(rand_r(&seed) % 24), len = 0;
        int n = rand_r(&seed) % 4;
        for (int k = 0; k < n && len < 500; k++) {
            const char *w = words[rand_r(&seed) % (ARRAY_SIZE(words))];
            memcpy(p + len, w, strlen(w) + 1);
            len += (uint32_t)strlen(w) + 1;
        }
        if (rand_r(&seed) % 5 == 0 && len)
            len--;                                      /* drop the last NUL */
        if (rand_r(&seed) % 20 == 0)
            for (len = (uint32_t)(rand_r(&seed) % 200), n = 0; n < (int)len; n++)
                p[n] = (char)rand_r(&seed);
        raw_send(fds[c], type, (uint32_t)it, (uint32_t)(rand_r(&seed) % 4), p, len);
        if (it % 50 == 0)
            for (int k = 0; k < 3; k++)
                while (recv(fds[k], junk, sizeof(junk), MSG_DONTWAIT) > 0)
                    ;
    }
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    T_READ(h, XBT_NULL, "/local/domain/0/name", "Domain-0");
    T_CHECK(wr(h, XBT_NULL, "/g/after", "ok"));
    T_READ(h, XBT_NULL, "/g/after", "ok");
    T_CHECK(xs_rm(h, XBT_NULL, "/g"));
}

/* Limits: watches per connection, a client that never reads its events, a
 * client that floods requests without reading replies. */
static void test_floods(struct xs_handle *h)
{
    char buf[5000];
    int fd = raw_open();
    int ok = 0, big = 0;
    for (int i = 0; i < 65; i++) {
        char pl[64];
        int l = snprintf(pl, sizeof(pl), "/q/%d", i) + 1;
        l += snprintf(pl + l, sizeof(pl) - (size_t)l, "t") + 1;
        int t = raw_call(fd, XS_WATCH, 0, pl, (uint32_t)l, buf, sizeof(buf));
        if (t == XS_WATCH) ok++;
        else if (t == XS_ERROR && !strcmp(buf, "E2BIG")) big++;
    }
    T_CHECK(ok == 64 && big == 1, "watch quota: %d ok, %d E2BIG", ok, big);
    close(fd);

    /* A watcher that never reads: dropped once its queue passes --max-outq,
     * while the writer goes on at full speed. */
    int lazy = raw_open();
    int rcvbuf = 4096;
    setsockopt(lazy, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    raw_send(lazy, XS_WATCH, 0, 0, "/flood\0lazy\0", 12);
    int fds_before = t_count_fds_pid(xsd);
    long long t0 = (long long)xbd_now_ms();
    char val[200];
    memset(val, 'f', sizeof(val) - 1);
    val[sizeof(val) - 1] = '\0';
    int werr = 0;
    for (int i = 0; i < 4000; i++) {
        char p[64];
        snprintf(p, sizeof(p), "/flood/key%d", i % 50);
        werr += !wr(h, XBT_NULL, p, val);
    }
    long long dt = (long long)xbd_now_ms() - t0;
    T_EQ(werr, 0);
    T_LOG("4000 writes with a stalled watcher: %lld ms", dt);
    T_CHECK(dt < 30000, "writer not blocked by the stalled watcher (%lld ms)", dt);
    /* Drain: the server must have closed the lazy client (EOF after the backlog). */
    int eof = 0;
    long long t1 = (long long)xbd_now_ms();
    while ((long long)xbd_now_ms() - t1 < 10000) {
        struct pollfd p = { .fd = lazy, .events = POLLIN };
        if (poll(&p, 1, 1000) <= 0)
            break;
        ssize_t r = read(lazy, buf, sizeof(buf));
        if (r <= 0) {
            eof = 1;
            break;
        }
    }
    T_CHECK(eof, "stalled watcher was dropped");
    close(lazy);
    T_CHECK(t_count_fds_pid(xsd) <= fds_before, "server fds %d -> %d", fds_before, t_count_fds_pid(xsd));

    /* A client that sends requests and never reads: once its replies fill the
     * socket and the server's queue, the server stops reading it. */
    int flood = raw_open();
    enum { PER = 2000 };
    struct xsd_sockmsg rq = { XS_DIRECTORY, 0, 0, 14 };
    static char chunk[PER * (sizeof(rq) + 14)];
    for (int i = 0; i < PER; i++) {
        memcpy(chunk + i * (sizeof(rq) + 14), &rq, sizeof(rq));
        memcpy(chunk + i * (sizeof(rq) + 14) + sizeof(rq), "/local/domain", 14);   /* with its NUL */
    }
    size_t sent = 0, off = 0;
    bool stalled = false;
    t0 = (long long)xbd_now_ms();
    while ((long long)xbd_now_ms() - t0 < 20000) {
        struct pollfd p = { .fd = flood, .events = POLLOUT };
        if (poll(&p, 1, 1000) <= 0) {
            stalled = true;             /* a whole second without room */
            break;
        }
        ssize_t r = send(flood, chunk + off, sizeof(chunk) - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0 && errno != EAGAIN)
            break;
        if (r > 0) {
            sent += (size_t)r;
            off = (off + (size_t)r) % sizeof(chunk);
        }
    }
    T_LOG("flooding client sent %zu bytes of requests before the server stopped reading", sent);
    T_CHECK(stalled, "server stopped reading a client that does not read its replies");
    t0 = (long long)xbd_now_ms();
    werr = 0;
    for (int i = 0; i < 200; i++)
        werr += !wr(h, XBT_NULL, "/flood/alive", "yes");
    T_EQ(werr, 0);
    T_READ(h, XBT_NULL, "/flood/alive", "yes");
    dt = (long long)xbd_now_ms() - t0;
    T_CHECK(dt < 10000, "others served while a client floods (%lld ms for 200 writes)", dt);
    close(flood);
    T_READ(h, XBT_NULL, "/local/domain/0/name", "Domain-0");
    T_CHECK(xs_rm(h, XBT_NULL, "/flood"));
}

int main(void)
{
    const char *dir = t_tmpdir(0);
    static const char *const args[] = { "--max-outq", "65536", "--max-watches", "64",
                                        "--max-transactions", "8", NULL };
    int rc = t_xsd_start_args(dir, args, sock, sizeof(sock), &xsd);
    T_SKIP_IF(rc == -ENOENT, "xen-sim-xenstored not built");
    T_ASSERT(rc == 0, "t_xsd_start: %s", strerror(-rc));
    T_LOG("server pid %d on %s", (int)xsd, sock);
    int fds0 = t_count_fds_pid(xsd);

    struct xs_handle *h = xopen(), *w = xopen();
    test_initial_tree(h);
    test_basic_ops(h);
    test_errors(h);
    test_perms(h);
    test_watches(h, w);
    test_domains(h, w);
    test_transactions(h, w);
    test_concurrent();
    test_big_directory(h);
    test_raw_protocol();
    test_garbage(h);
    test_floods(h);
    xs_close(w);
    xs_close(h);

    /* All client connections are gone: the server is back to its own fds. */
    usleep(100000);
    T_EQ(t_count_fds_pid(xsd), fds0);

    rc = t_xsd_stop_status(xsd);
    T_EQ(rc, 0);                                        /* includes ASan's leak check */
    T_CHECK(access(sock, F_OK) != 0, "socket removed on exit");
    return t_done();
}
