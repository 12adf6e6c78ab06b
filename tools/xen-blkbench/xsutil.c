/*
 * xsutil.c - libxenstore helpers for xen-blkbench: typed reads, writes and a
 * state wait with a timeout built on a watch (xs_watch fires once at once;
 * then every change at or below the path; xs_fileno + xs_check_watch).
 */
#include "dev.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int bbx_open(struct bbx *x, double timeout_s)
{
    struct xs_handle *h = xs_open(0);
    if (!h)
        return errno ? -errno : -ECONNREFUSED;
    x->h = h;
    x->timeout_s = timeout_s;
    x->token_seq = 0;
    return 0;
}

void bbx_close(struct bbx *x)
{
    if (x->h)
        xs_close(x->h);
    x->h = NULL;
}

int bbx_read(struct bbx *x, xs_transaction_t t, const char *path, char **val)
{
    unsigned len;
    errno = 0;
    char *v = xs_read(x->h, t, path, &len);
    if (!v)
        return errno ? -errno : -EIO;
    *val = v;
    return 0;
}

int bbx_read_u64(struct bbx *x, const char *path, uint64_t *out)
{
    char *v;
    int rc = bbx_read(x, XBT_NULL, path, &v);
    if (rc)
        return rc;
    rc = xbd_parse_u64(v, 0, 0, UINT64_MAX, out);
    free(v);
    return rc;
}

int bbx_read_u64_def(struct bbx *x, const char *path, uint64_t def, uint64_t *out)
{
    int rc = bbx_read_u64(x, path, out);
    if (rc == -ENOENT) {
        *out = def;
        return 0;
    }
    return rc;
}

int bbx_write(struct bbx *x, xs_transaction_t t, const char *path, const char *val)
{
    errno = 0;
    if (!xs_write(x->h, t, path, val, (unsigned)strlen(val)))
        return errno ? -errno : -EIO;
    return 0;
}

int bbx_writef(struct bbx *x, xs_transaction_t t, const char *path, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return bbx_write(x, t, path, buf);
}

int bbx_rm(struct bbx *x, xs_transaction_t t, const char *path)
{
    errno = 0;
    if (!xs_rm(x->h, t, path))
        return errno == ENOENT ? 0 : (errno ? -errno : -EIO);
    return 0;
}

bool bbx_exists(struct bbx *x, const char *path)
{
    char *v;
    if (bbx_read(x, XBT_NULL, path, &v))
        return false;
    free(v);
    return true;
}

static void mask_names(uint32_t mask, char *buf, size_t len)
{
    buf[0] = 0;
    size_t off = 0;
    for (int s = 0; s < 9; s++) {
        if (!(mask & (1u << s)))
            continue;
        int n = snprintf(buf + off, len - off, "%s%d (%s)", off ? " or " : "", s, xenbus_state_name(s));
        if (n < 0 || (size_t)n >= len - off)
            return;
        off += (size_t)n;
    }
}

/* -1: missing; -2: not a number; else the state */
static int read_state(struct bbx *x, const char *path, char *raw, size_t rawlen)
{
    char *v;
    if (bbx_read(x, XBT_NULL, path, &v)) {
        snprintf(raw, rawlen, "(missing)");
        return -1;
    }
    snprintf(raw, rawlen, "%s", v);
    uint64_t s;
    int rc = xbd_parse_u64(v, 0, 0, UINT64_MAX, &s);
    free(v);
    if (rc || s > 30)
        return -2;
    return (int)s;
}

int bbx_wait_state(struct bbx *x, const char *path, uint32_t ok_mask, uint32_t fail_mask,
                   const char *what, int *state)
{
    char token[64], raw[64], want[160];
    snprintf(token, sizeof(token), "blkbench-wait-%u", x->token_seq++);
    if (!xs_watch(x->h, path, token)) {
        int e = errno;
        snprintf(x->err, sizeof(x->err), "cannot watch %s: %s", path, strerror(e));
        return e ? -e : -EIO;
    }
    int fd = xs_fileno(x->h);
    double deadline = (xbd_now_ns() / 1e9) + x->timeout_s;
    int rc, s;
    for (;;) {
        s = read_state(x, path, raw, sizeof(raw));
        if (s >= 0 && (ok_mask & (1u << s))) {
            rc = 0;
            break;
        }
        if ((s == -1 && (fail_mask & BBX_MISSING)) || (s >= 0 && (fail_mask & (1u << s)))) {
            mask_names(ok_mask, want, sizeof(want));
            snprintf(x->err, sizeof(x->err), "%s state %s is '%s' (%s) while waiting for %s",
                     what, path, raw, xenbus_state_name(s), want);
            rc = -EPIPE;
            break;
        }
        double left = deadline - (xbd_now_ns() / 1e9);
        if (left <= 0) {
            mask_names(ok_mask, want, sizeof(want));
            snprintf(x->err, sizeof(x->err), "timeout after %.1f s waiting for %s state %s to become %s; "
                     "last value '%s'", x->timeout_s, what, path, want, raw);
            rc = -ETIMEDOUT;
            break;
        }
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int ms = (int)(left * 1000.0) + 1;
        if (ms > 200)
            ms = 200;           /* also re-read now and then: never trust one event */
        int pr = poll(&p, 1, fd >= 0 ? ms : 0);
        if (pr < 0 && errno != EINTR) {
            rc = -errno;
            snprintf(x->err, sizeof(x->err), "poll on the xenstore connection: %s", strerror(-rc));
            break;
        }
        if (fd < 0) {
            struct timespec ts = { 0, 20 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
        char **ev;
        while ((ev = xs_check_watch(x->h)) != NULL)
            free(ev);
    }
    xs_unwatch(x->h, path, token);
    /* drop events of this token that are still queued */
    char **ev;
    while ((ev = xs_check_watch(x->h)) != NULL)
        free(ev);
    if (state)
        *state = s;
    return rc;
}
