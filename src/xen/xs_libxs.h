/*
 * xs_libxs.h - the xenstore part of both ops tables (xen_ops.h), on the real
 * libxenstore.  In sim mode XENSTORED_PATH points libxenstore at the test
 * xenstored; nothing here knows the difference.  Private to src/xen and
 * src/sim/xen_ops_sim.c.  Conventions as in xen_ops.h (0 or -errno).
 */
#ifndef XBD_XS_LIBXS_H
#define XBD_XS_LIBXS_H

#include "xen_ops.h"

/* xs_open(0): the host is not used (libxenstore picks its transport from
 * XENSTORED_PATH etc., docs/protocol.md §5). -errno of xs_open (ENOENT, ECONNREFUSED). */
int  xen_lxs_open(struct xen_host *h, struct xen_xs **out);
void xen_lxs_close(struct xen_xs *xs);
/* xs_fileno: readable when a watch event may be queued. */
int  xen_lxs_fd(struct xen_xs *xs);
int  xen_lxs_read(struct xen_xs *xs, xen_tx_t t, const char *path, char **val, unsigned *len);
int  xen_lxs_write(struct xen_xs *xs, xen_tx_t t, const char *path, const char *val);
int  xen_lxs_mkdir(struct xen_xs *xs, xen_tx_t t, const char *path);
int  xen_lxs_rm(struct xen_xs *xs, xen_tx_t t, const char *path);
int  xen_lxs_directory(struct xen_xs *xs, xen_tx_t t, const char *path, char ***list, unsigned *n);
int  xen_lxs_watch(struct xen_xs *xs, const char *path, const char *token);
int  xen_lxs_unwatch(struct xen_xs *xs, const char *path, const char *token);
int  xen_lxs_read_watch(struct xen_xs *xs, char **path, char **token);
int  xen_lxs_tx_start(struct xen_xs *xs, xen_tx_t *t);
int  xen_lxs_tx_end(struct xen_xs *xs, xen_tx_t t, bool abort);
int  xen_lxs_get_owner(struct xen_xs *xs, xen_tx_t t, const char *path, xen_domid_t *owner);

/* Initialiser for the xenstore members of a struct xen_ops. */
#define XEN_LXS_OPS \
    .xs_open = xen_lxs_open, .xs_close = xen_lxs_close, .xs_fd = xen_lxs_fd, \
    .xs_read = xen_lxs_read, .xs_write = xen_lxs_write, .xs_mkdir = xen_lxs_mkdir, \
    .xs_rm = xen_lxs_rm, .xs_directory = xen_lxs_directory, .xs_watch = xen_lxs_watch, \
    .xs_unwatch = xen_lxs_unwatch, .xs_read_watch = xen_lxs_read_watch, \
    .xs_tx_start = xen_lxs_tx_start, .xs_tx_end = xen_lxs_tx_end, \
    .xs_get_owner = xen_lxs_get_owner

#endif
