/*
 * xs_util.c - xenstore helpers on top of the ops table (xen_ops.h):
 * printf-style paths, unsigned decimal values.
 */
#include "xen_ops.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* Parse a whole unsigned decimal (no sign, no spaces, no junk).
 * -EINVAL not a number, -ERANGE too big for 64 bits. */
static int parse_u64(const char *s, uint64_t *out)
{
    if (*s < '0' || *s > '9')
        return -EINVAL;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* Errors: -ENOENT (no node), -EINVAL (not an unsigned decimal), -ERANGE
 * (over 2^64-1), -ENOMEM, or the xs_read error. */
int xen_xs_read_u64(const struct xen_ops *ops, struct xen_xs *xs, xen_tx_t t,
                    uint64_t *out, const char *fmt, ...)
{
    char *path = NULL, *val = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&path, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -ENOMEM;
    int rc = ops->xs_read(xs, t, path, &val, NULL);
    free(path);
    if (rc < 0)
        return rc;
    uint64_t v;
    rc = parse_u64(val, &v);
    free(val);
    if (rc == 0)
        *out = v;
    return rc;
}

/* Write the printf-formatted value to `path`.  -ENOMEM or the xs_write error. */
int xen_xs_printf(const struct xen_ops *ops, struct xen_xs *xs, xen_tx_t t,
                  const char *path, const char *fmt, ...)
{
    char *val = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&val, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -ENOMEM;
    int rc = ops->xs_write(xs, t, path, val);
    free(val);
    return rc;
}
