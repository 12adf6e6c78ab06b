/*
 * xs_libxs.c - xenstore operations of both ops tables on the real
 * libxenstore (xenstore.h; docs/protocol.md §5).  libxenstore reports errors in
 * errno; here they become -errno (-EIO if errno was left 0).
 */
#include "xs_libxs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xenstore.h>
#include <xen/io/xs_wire.h>  /* XS_WATCH_PATH, XS_WATCH_TOKEN */

struct xen_xs {
    struct xs_handle *xsh;
    int fd;                     /* xs_fileno, made at open */
};

static int neg_errno(void)
{
    return errno > 0 ? -errno : -EIO;
}

int xen_lxs_open(struct xen_host *h, struct xen_xs **out)
{
    (void)h;
    struct xen_xs *xs = calloc(1, sizeof(*xs));
    if (!xs)
        return -ENOMEM;
    errno = 0;
    xs->xsh = xs_open(0);
    if (!xs->xsh) {
        int rc = neg_errno();
        free(xs);
        return rc;
    }
    /* Make the watch pipe now, so the fd is stable from the start. */
    errno = 0;
    xs->fd = xs_fileno(xs->xsh);
    if (xs->fd < 0) {
        int rc = neg_errno();
        xs_close(xs->xsh);
        free(xs);
        return rc;
    }
    *out = xs;
    return 0;
}

void xen_lxs_close(struct xen_xs *xs)
{
    if (!xs)
        return;
    xs_close(xs->xsh);
    free(xs);
}

int xen_lxs_fd(struct xen_xs *xs)
{
    return xs->fd;
}

int xen_lxs_read(struct xen_xs *xs, xen_tx_t t, const char *path, char **val, unsigned *len)
{
    unsigned n = 0;
    errno = 0;
    char *v = xs_read(xs->xsh, t, path, &n);
    if (!v)
        return neg_errno();
    *val = v;
    if (len)
        *len = n;
    return 0;
}

int xen_lxs_write(struct xen_xs *xs, xen_tx_t t, const char *path, const char *val)
{
    errno = 0;
    return xs_write(xs->xsh, t, path, val, (unsigned)strlen(val)) ? 0 : neg_errno();
}

int xen_lxs_mkdir(struct xen_xs *xs, xen_tx_t t, const char *path)
{
    errno = 0;
    return xs_mkdir(xs->xsh, t, path) ? 0 : neg_errno();
}

int xen_lxs_rm(struct xen_xs *xs, xen_tx_t t, const char *path)
{
    errno = 0;
    return xs_rm(xs->xsh, t, path) ? 0 : neg_errno();
}

int xen_lxs_directory(struct xen_xs *xs, xen_tx_t t, const char *path, char ***list, unsigned *n)
{
    unsigned num = 0;
    errno = 0;
    char **l = xs_directory(xs->xsh, t, path, &num);
    if (!l)
        return neg_errno();
    *list = l;
    *n = num;
    return 0;
}

int xen_lxs_watch(struct xen_xs *xs, const char *path, const char *token)
{
    errno = 0;
    return xs_watch(xs->xsh, path, token) ? 0 : neg_errno();
}

int xen_lxs_unwatch(struct xen_xs *xs, const char *path, const char *token)
{
    errno = 0;
    return xs_unwatch(xs->xsh, path, token) ? 0 : neg_errno();
}

int xen_lxs_read_watch(struct xen_xs *xs, char **path, char **token)
{
    errno = 0;
    char **ev = xs_check_watch(xs->xsh);
    if (!ev)
        return errno == EAGAIN || errno == 0 ? -EAGAIN : -errno;
    char *p = strdup(ev[XS_WATCH_PATH]), *tok = strdup(ev[XS_WATCH_TOKEN]);
    free(ev);
    if (!p || !tok) {
        free(p);
        free(tok);
        return -ENOMEM;         /* the event is lost; callers rescan on ENOMEM */
    }
    *path = p;
    *token = tok;
    return 0;
}

int xen_lxs_tx_start(struct xen_xs *xs, xen_tx_t *t)
{
    errno = 0;
    xs_transaction_t tx = xs_transaction_start(xs->xsh);
    if (tx == XBT_NULL)
        return neg_errno();
    *t = tx;
    return 0;
}

int xen_lxs_tx_end(struct xen_xs *xs, xen_tx_t t, bool abort)
{
    errno = 0;
    return xs_transaction_end(xs->xsh, t, abort) ? 0 : neg_errno();
}

int xen_lxs_get_owner(struct xen_xs *xs, xen_tx_t t, const char *path, xen_domid_t *owner)
{
    unsigned n = 0;
    errno = 0;
    struct xs_permissions *p = xs_get_permissions(xs->xsh, t, path, &n);
    if (!p)
        return neg_errno();
    int rc = n ? 0 : -EIO;
    if (n)
        *owner = p[0].id;
    free(p);
    return rc;
}
