/*
 * xen_ops.h - the Xen seam: xenstore, event channels and grant tables behind
 * one ops table (cf. QEMU include/hw/xen/xen_backend_ops.h).
 *
 * Two implementations:
 *   xen_ops_libxen  (src/xen/)  libxenstore + libxenevtchn + libxengnttab, as on a
 *                               real Xen host;
 *   xen_ops_sim     (src/sim/)  grant table and event channels of a simulated Xen
 *                               host in shared memory; xenstore is the real
 *                               libxenstore talking to whatever XENSTORED_PATH names
 *                               (our test xenstored), exactly as in libxen mode.
 *
 * Conventions for every function here: return 0 (or a non-negative value where
 * stated) on success, a negative errno on failure; never rely on errno after a
 * call; out-parameters are left untouched on failure.  Handles are not shared
 * between threads unless stated (libxenevtchn rule: xenevtchn.h, "do not share").
 */
#ifndef XBD_XEN_OPS_H
#define XBD_XEN_OPS_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/mman.h>
#include <xengnttab.h>          /* xengnttab_grant_copy_segment_t, GNTCOPY_* via xen/grant_table.h */
#include <xen/grant_table.h>

#ifndef XEN_PAGE_SIZE
#define XEN_PAGE_SIZE 4096u
#endif
#ifndef XEN_PAGE_SHIFT
#define XEN_PAGE_SHIFT 12
#endif

struct xen_host;        /* one per process: the Xen services of this host         */
struct xen_xs;          /* a xenstore connection                                   */
struct xen_gnt;         /* a grant-table handle (one per queue thread)             */
struct xen_evtchn;      /* an event-channel handle (one per queue thread)          */

typedef uint32_t xen_domid_t;
typedef uint32_t xen_port_t;
typedef uint32_t xen_tx_t;      /* xenstore transaction id, XEN_XS_NO_TX = none */
#define XEN_XS_NO_TX 0u

#define XEN_OPS_VERSION 1

struct xen_ops {
    uint32_t size;              /* sizeof(struct xen_ops) of the implementation */
    uint32_t version;           /* XEN_OPS_VERSION; fields are only ever appended */
    const char *name;           /* "libxen" or "sim" */

    /* ---- host ---------------------------------------------------------- */
    /* arg: implementation specific (sim: the simulated host's directory; libxen:
     * ignored).  Errors: -ENOENT (no such host), -EACCES, -ENOMEM. */
    int  (*host_open)(const char *arg, struct xen_host **out);
    void (*host_close)(struct xen_host *h);

    /* ---- xenstore (libxenstore in both implementations) ------------------ */
    int  (*xs_open)(struct xen_host *h, struct xen_xs **out);
    void (*xs_close)(struct xen_xs *xs);
    /* A pollable fd that is readable when a watch event may be queued. */
    int  (*xs_fd)(struct xen_xs *xs);
    /* *val is a malloc'd NUL-terminated copy; *len (optional) its length.
     * -ENOENT when the node does not exist. */
    int  (*xs_read)(struct xen_xs *xs, xen_tx_t t, const char *path, char **val, unsigned *len);
    int  (*xs_write)(struct xen_xs *xs, xen_tx_t t, const char *path, const char *val);
    int  (*xs_mkdir)(struct xen_xs *xs, xen_tx_t t, const char *path);
    int  (*xs_rm)(struct xen_xs *xs, xen_tx_t t, const char *path);
    /* *list is one malloc'd block (free(*list) frees all); *n entries. */
    int  (*xs_directory)(struct xen_xs *xs, xen_tx_t t, const char *path, char ***list, unsigned *n);
    int  (*xs_watch)(struct xen_xs *xs, const char *path, const char *token);
    int  (*xs_unwatch)(struct xen_xs *xs, const char *path, const char *token);
    /* Non-blocking.  0 and malloc'd *path, *token when an event was queued;
     * -EAGAIN when none. */
    int  (*xs_read_watch)(struct xen_xs *xs, char **path, char **token);
    int  (*xs_tx_start)(struct xen_xs *xs, xen_tx_t *t);
    /* -EAGAIN: conflict, the caller retries the whole transaction. */
    int  (*xs_tx_end)(struct xen_xs *xs, xen_tx_t t, bool abort);

    /* ---- grant tables -------------------------------------------------- */
    int  (*gnt_open)(struct xen_host *h, struct xen_gnt **out);
    void (*gnt_close)(struct xen_gnt *g);
    /* Map `count` grant refs of domain `domid` into one contiguous range of
     * count * XEN_PAGE_SIZE bytes.  prot: PROT_READ or PROT_READ|PROT_WRITE.
     * All or nothing (xengnttab_map_domain_grant_refs).  -EINVAL for an unknown,
     * revoked or foreign ref or a read-only grant mapped writable, -ENOMEM. */
    int  (*gnt_map)(struct xen_gnt *g, xen_domid_t domid, uint32_t count,
                    const uint32_t *refs, int prot, void **addr);
    /* Unmap a range returned by gnt_map; count must match. */
    int  (*gnt_unmap)(struct xen_gnt *g, void *addr, uint32_t count);
    /* Batched grant copy (xengnttab_grant_copy).  Returns 0 when the call was
     * made; per-segment result in segs[i].status (GNTST_okay or GNTST_*). */
    int  (*gnt_copy)(struct xen_gnt *g, uint32_t count, xengnttab_grant_copy_segment_t *segs);

    /* ---- event channels ------------------------------------------------ */
    int  (*evtchn_open)(struct xen_host *h, struct xen_evtchn **out);
    void (*evtchn_close)(struct xen_evtchn *e);   /* unbinds every port left */
    /* Pollable, non-blocking fd: readable when evtchn_pending may return a port. */
    int  (*evtchn_fd)(struct xen_evtchn *e);
    /* Bind our end to the frontend's unbound port; *local gets our port. */
    int  (*evtchn_bind)(struct xen_evtchn *e, xen_domid_t domid, xen_port_t remote, xen_port_t *local);
    int  (*evtchn_unbind)(struct xen_evtchn *e, xen_port_t local);
    int  (*evtchn_notify)(struct xen_evtchn *e, xen_port_t local);
    /* 0 and *port when a port fired (it is left masked); -EAGAIN when none. */
    int  (*evtchn_pending)(struct xen_evtchn *e, xen_port_t *port);
    int  (*evtchn_unmask)(struct xen_evtchn *e, xen_port_t local);

    /* ---- xenstore, appended ---------------------------------------------- */
    /* The owner of a node: the domain of its first permission entry
     * (xenstore.h xs_get_permissions; Xen docs/misc/xenstore.txt GET_PERMS).
     * -ENOENT, -EACCES (not readable to us: an unprivileged domain's view). */
    int  (*xs_get_owner)(struct xen_xs *xs, xen_tx_t t, const char *path, xen_domid_t *owner);

    /* ---- event channels, appended: the fd's read and write made by the caller ----
     * For a queue thread that does the read(2) of evtchn_pending and the
     * write(2) of evtchn_unmask itself, through io_uring (src/engine/uring.c
     * wait), with the rest of its wake-up, instead of one system call each.
     * Both, or neither (NULL).  XEN_EVTCHN_READ_LEN: the bytes to read. */
    /* What read(2) of evtchn_fd returned (n bytes at buf): as evtchn_pending
     * (0 and *port when a port fired, left masked; -EAGAIN when the bytes
     * name no port of this handle any more), -EIO when malformed. */
    int  (*evtchn_pending_read)(struct xen_evtchn *e, const void *buf, size_t n, xen_port_t *port);
    /* Unmask local: done here (0, *len = 0), or the bytes to write(2) to
     * evtchn_fd put in buf (0, *len bytes, at most the *len given, which is
     * at least XEN_EVTCHN_READ_LEN).  -ENOTCONN, -EINVAL as evtchn_unmask. */
    int  (*evtchn_unmask_write)(struct xen_evtchn *e, xen_port_t local, void *buf, size_t *len);
};

/* Bytes a read of the event-channel fd takes for one port (Linux: an array of
 * evtchn_port_t, torvalds/linux:drivers/xen/evtchn.c@v6.1 evtchn_read). */
#define XEN_EVTCHN_READ_LEN sizeof(xen_port_t)

/* Defines `const struct xen_ops var` named `name` from functions called
 * prefix##_host_open, prefix##_gnt_map, ... (one list of members for every
 * implementation); the xenstore members come from `xs_init` (XEN_LXS_OPS in
 * src/xen/xs_libxs.h for both today). */
#define XEN_OPS_DEFINE(var, name_, prefix, xs_init) \
    const struct xen_ops var = { \
        .size = sizeof(struct xen_ops), .version = XEN_OPS_VERSION, .name = name_, \
        .host_open = prefix##_host_open, .host_close = prefix##_host_close, \
        xs_init, \
        .gnt_open = prefix##_gnt_open, .gnt_close = prefix##_gnt_close, \
        .gnt_map = prefix##_gnt_map, .gnt_unmap = prefix##_gnt_unmap, \
        .gnt_copy = prefix##_gnt_copy, \
        .evtchn_open = prefix##_evtchn_open, .evtchn_close = prefix##_evtchn_close, \
        .evtchn_fd = prefix##_evtchn_fd, .evtchn_bind = prefix##_evtchn_bind, \
        .evtchn_unbind = prefix##_evtchn_unbind, .evtchn_notify = prefix##_evtchn_notify, \
        .evtchn_pending = prefix##_evtchn_pending, .evtchn_unmask = prefix##_evtchn_unmask, \
        .evtchn_pending_read = prefix##_evtchn_pending_read, \
        .evtchn_unmask_write = prefix##_evtchn_unmask_write, \
    }

extern const struct xen_ops xen_ops_libxen;
extern const struct xen_ops xen_ops_sim;

/* Look up an implementation by name ("libxen", "sim"); NULL if unknown. */
const struct xen_ops *xen_ops_find(const char *name);

/* Helpers built on the ops (src/xen/xs_util.c). */
/* printf-style path; reads an unsigned decimal. -ENOENT, -EINVAL (not a number). */
int xen_xs_read_u64(const struct xen_ops *ops, struct xen_xs *xs, xen_tx_t t,
                    uint64_t *out, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int xen_xs_printf(const struct xen_ops *ops, struct xen_xs *xs, xen_tx_t t,
                  const char *path, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
