/*
 * vbd_resize.c - online resize of a connected vbd (xen-blkbackd(8) RESIZE).
 *
 * The backing store grew (a file extended, a block device resized): the data
 * plane accepts the new range first (dp_set_sectors), then `sectors` and the
 * unchanged `state` are written in ONE transaction, retried on EAGAIN, which
 * is how Linux blkback makes blkfront notice: xen_vbd_resize in
 * torvalds/linux:drivers/block/xen-blkback/blkback.c@v6.1 (docs/protocol.md
 * §7); blkfront's
 * backend_changed() re-reads `sectors` on a state-Connected event
 * (torvalds/linux:drivers/block/xen-blkfront.c@v6.1 blkfront_connect).
 *
 * Linux blkback compares the size on every request batch
 * (xen-blkback/blkback.c xen_blkif_schedule); our data plane never looks at
 * the store's size, so the control plane checks it instead: every
 * resize-check ms (one fstat or BLKGETSIZE64 per connected read-write
 * device, main thread) and on the control request `resize`.
 */
#include "backend.h"
#include "log.h"
#include "xs_keys.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <xen/io/xenbus.h>

static int refuse(struct vbd *v, bool quiet, int rc, char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int refuse(struct vbd *v, bool quiet, int rc, char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    if (!quiet)
        VLOG(v, LOG_WARNING, "resize refused: %s", why);
    return rc;
}

int vbd_resize(struct vbd *v, const char *trigger, char *why, size_t len, uint64_t *old_out,
               uint64_t *new_out)
{
    struct vbd_conn *c = &v->conn;
    bool periodic = !strcmp(trigger, VBD_RESIZE_PERIODIC);
    why[0] = 0;
    if (!v->dp || v->be_state != XenbusStateConnected)
        return refuse(v, periodic, -ENOTCONN, why, len, "not connected");
    *old_out = c->sectors;
    struct dp_info d;
    vdp_get_info(v->dp, &d);
    if (d.lim.readonly)
        return refuse(v, periodic, -EROFS, why, len, "read-only device: its size is fixed "
                      "while connected");
    uint64_t bytes;
    int rc = engine_get_size(v->engine, &bytes);
    if (rc)
        return refuse(v, periodic, rc, why, len, "cannot read the size of '%s': %s", v->params,
                      strerror(-rc));
    if (bytes == c->sectors << 9) {
        *new_out = c->sectors;
        return 0;
    }
    /* The periodic check says each refusal once per store size. */
    bool quiet = periodic && bytes == v->resize_refused_bytes;
    v->resize_refused_bytes = bytes;
    if (bytes % d.lim.sector_size)
        return refuse(v, quiet, -EINVAL, why, len, "'%s' is %llu bytes, not a whole number of "
                      "%u-byte sectors", v->params, (unsigned long long)bytes, d.lim.sector_size);
    uint64_t sectors = bytes >> 9;
    if (sectors < c->sectors)
        return refuse(v, quiet, -ERANGE, why, len, "'%s' shrank to %llu sectors below the "
                      "advertised %llu: a guest's data would vanish; shrinking is not supported",
                      v->params, (unsigned long long)sectors, (unsigned long long)c->sectors);

    rc = vdp_set_sectors(v->dp, sectors);
    if (rc)
        return refuse(v, quiet, rc, why, len, "data plane: %s", strerror(-rc));
    struct xs_kv kv;
    xs_kv_set(&kv, XSK_SECTORS, sectors);
    rc = xs_tx_write(v->be, v->be_path, &kv, 1, XenbusStateConnected);
    if (rc) {
        /* The data plane already takes the larger range; the next check or
         * request writes xenstore again. */
        snprintf(why, len, "writing %s/%s: %s", v->be_path, XSK_SECTORS, strerror(-rc));
        VLOG(v, LOG_ERR, "resize to %llu sectors: %s", (unsigned long long)sectors, why);
        return rc;
    }
    VLOG(v, LOG_NOTICE, "resized (%s): %llu -> %llu sectors", trigger,
         (unsigned long long)c->sectors, (unsigned long long)sectors);
    v->resize_refused_bytes = 0;
    c->sectors = sectors;
    *new_out = sectors;
    return 0;
}

void vbd_check_sizes(struct backend *b)
{
    char why[256];
    uint64_t o, n;
    for (struct vbd *v = b->vbds; v; v = v->next) {
        struct dp_info d;
        if (!v->dp || v->be_state != XenbusStateConnected)
            continue;
        vdp_get_info(v->dp, &d);
        if (!d.lim.readonly)
            vbd_resize(v, VBD_RESIZE_PERIODIC, why, sizeof(why), &o, &n);
    }
}
