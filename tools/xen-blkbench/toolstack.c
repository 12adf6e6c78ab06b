/*
 * toolstack.c - what xl/libxl 4.17 does for a phy vbd, on our xenstore
 * (docs/protocol.md §1, §6): domain nodes (libxl__domain_make), the frontend
 * and backend directories in one transaction with libxl's permissions
 * (libxl__device_generic_add; device_disk_add of
 * xen-project/xen:tools/libs/light/libxl_disk.c@RELEASE-4.17.7), the hotplug script's
 * hotplug-status, and removal the way block-detach (safe_remove) and
 * destroy (FORCE_ON: frontend dir deleted first) do it.
 */
#include "dev.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XS_TX_RETRIES 16

static int set_perms(struct bb_dev *d, xs_transaction_t t, const char *path,
                     unsigned owner, unsigned reader, bool has_reader)
{
    struct xs_permissions p[2] = {
        { .id = owner, .perms = XS_PERM_NONE },
        { .id = reader, .perms = XS_PERM_READ },
    };
    errno = 0;
    if (!xs_set_permissions(d->xs.h, t, path, p, has_reader ? 2 : 1))
        return errno ? -errno : -EIO;
    return 0;
}

static int mkdir_perms(struct bb_dev *d, xs_transaction_t t, const char *path,
                       unsigned owner, unsigned reader, bool has_reader)
{
    int rc = bbx_rm(&d->xs, t, path);
    if (rc)
        return rc;
    errno = 0;
    if (!xs_mkdir(d->xs.h, t, path))
        return errno ? -errno : -EIO;
    return set_perms(d, t, path, owner, reader, has_reader);
}

/* Run fn inside a transaction, retried on EAGAIN (libxl__xs_transaction_*). */
static int in_tx(struct bb_dev *d, int (*fn)(struct bb_dev *, xs_transaction_t), const char *what)
{
    for (int i = 0; i < XS_TX_RETRIES; i++) {
        xs_transaction_t t = xs_transaction_start(d->xs.h);
        if (!t) {
            int e = errno ? errno : EIO;
            bb_err(d, "%s: xs_transaction_start: %s", what, strerror(e));
            return -e;
        }
        int rc = fn(d, t);
        if (rc) {
            xs_transaction_end(d->xs.h, t, true);
            bb_err(d, "%s: %s", what, strerror(-rc));
            return rc;
        }
        errno = 0;
        if (xs_transaction_end(d->xs.h, t, false))
            return 0;
        if (errno != EAGAIN) {
            int e = errno ? errno : EIO;
            bb_err(d, "%s: commit: %s", what, strerror(e));
            return -e;
        }
    }
    bb_err(d, "%s: transaction kept conflicting (%d tries)", what, XS_TX_RETRIES);
    return -EAGAIN;
}

/* ---- domain ------------------------------------------------------------ */
static int domain_tx(struct bb_dev *d, xs_transaction_t t)
{
    const struct bb_opts *o = d->o;
    char p[160];
    int rc;
    /* libxl__domain_make: dom_path owned by dom0, readable by the guest;
     * device/ owned by the guest */
    if ((rc = mkdir_perms(d, t, d->dompath, 0, o->domid, true)))
        return rc;
    snprintf(p, sizeof(p), "%s/device", d->dompath);
    if ((rc = mkdir_perms(d, t, p, o->domid, 0, false)))
        return rc;
    snprintf(p, sizeof(p), "%s/domid", d->dompath);
    if ((rc = bbx_writef(&d->xs, t, p, "%u", o->domid)))
        return rc;
    snprintf(p, sizeof(p), "%s/name", d->dompath);
    if (o->name)
        rc = bbx_write(&d->xs, t, p, o->name);
    else
        rc = bbx_writef(&d->xs, t, p, "blkbench%u", o->domid);
    return rc;
}

int ts_domain_create(struct bb_dev *d)
{
    const struct bb_opts *o = d->o;
    snprintf(d->dompath, sizeof(d->dompath), "/local/domain/%u", o->domid);
    snprintf(d->fe, sizeof(d->fe), "/local/domain/%u/device/vbd/%u", o->domid, o->devid);
    snprintf(d->be, sizeof(d->be), "/local/domain/%u/backend/%s/%u/%u", o->be_domid,
             BB_BE_KIND_NAME(o->be_kind), o->domid, o->devid);
    snprintf(d->lx, sizeof(d->lx), "/libxl/%u/device/vbd/%u", o->domid, o->devid);
    return in_tx(d, domain_tx, "writing domain nodes");
}

void ts_domain_destroy(struct bb_dev *d)
{
    char p[64];
    if (d->dompath[0])
        bbx_rm(&d->xs, XBT_NULL, d->dompath);
    snprintf(p, sizeof(p), "/libxl/%u", d->o->domid);
    bbx_rm(&d->xs, XBT_NULL, p);
}

/* ---- vbd add ----------------------------------------------------------- */
struct kv { const char *k; char v[160]; };

static int write_kvs(struct bb_dev *d, xs_transaction_t t, const char *dir, const struct kv *kv, unsigned n)
{
    char p[256];
    for (unsigned i = 0; i < n; i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, kv[i].k);
        int rc = bbx_write(&d->xs, t, p, kv[i].v);
        if (rc)
            return rc;
    }
    return 0;
}

static int vbd_add_tx(struct bb_dev *d, xs_transaction_t t)
{
    const struct bb_opts *o = d->o;
    int rc;
    /* backend keys (libxl device_disk_add, docs/protocol.md §1.1), in libxl's order */
    struct kv be[] = {
        { "frontend", "" }, { "params", "" }, { "script", "" }, { "frontend-id", "" },
        { "online", "1" }, { "removable", "0" }, { "bootable", "1" }, { "state", "1" },
        { "dev", "" }, { "type", "phy" }, { "mode", "" }, { "device-type", "disk" },
        { "discard-enable", "" }, { "specification", "xen" },
    };
    snprintf(be[0].v, sizeof(be[0].v), "%s", d->fe);
    /* vbd3: libxl's "<format>:<path>" of backendtype=tap (bb.h enum bb_be_kind) */
    snprintf(be[1].v, sizeof(be[1].v), "%s%s", o->be_kind == BB_BE_VBD3 ? "raw:" : "", o->target);
    snprintf(be[2].v, sizeof(be[2].v), "%s", o->script);
    snprintf(be[3].v, sizeof(be[3].v), "%u", o->domid);
    snprintf(be[8].v, sizeof(be[8].v), "%s", o->vdev);
    snprintf(be[10].v, sizeof(be[10].v), "%c", o->mode);
    snprintf(be[9].v, sizeof(be[9].v), "%s", o->be_kind == BB_BE_VBD3 ? "tap" : "phy");
    snprintf(be[12].v, sizeof(be[12].v), "%d", o->discard_enable);
    /* frontend keys (libxl device_disk_add, docs/protocol.md §1.3) */
    struct kv fe[] = {
        { "backend", "" }, { "backend-id", "" }, { "state", "1" }, { "virtual-device", "" },
        { "device-type", "disk" }, { "trusted", "1" }, { "protocol", "" },
    };
    snprintf(fe[0].v, sizeof(fe[0].v), "%s", d->be);
    snprintf(fe[1].v, sizeof(fe[1].v), "%u", o->be_domid);
    snprintf(fe[3].v, sizeof(fe[3].v), "%u", o->devid);
    unsigned nfe = 7;
    if (d->protocol)
        snprintf(fe[6].v, sizeof(fe[6].v), "%s", d->protocol);
    else
        nfe = 6;                        /* --abi native: no protocol key */

    /* libxl private copy: dom0 only */
    if ((rc = mkdir_perms(d, t, d->lx, 0, 0, false)))
        return rc;
    char p[256];
    snprintf(p, sizeof(p), "%s/frontend", d->lx);
    if ((rc = bbx_write(&d->xs, t, p, d->fe)))
        return rc;
    snprintf(p, sizeof(p), "%s/backend", d->lx);
    if ((rc = bbx_write(&d->xs, t, p, d->be)))
        return rc;
    /* each side owns its directory, the other side may read it (docs/protocol.md §1) */
    if ((rc = mkdir_perms(d, t, d->fe, o->domid, o->be_domid, true)))
        return rc;
    if ((rc = write_kvs(d, t, d->fe, fe, nfe)))
        return rc;
    if ((rc = mkdir_perms(d, t, d->be, o->be_domid, o->domid, true)))
        return rc;
    if ((rc = write_kvs(d, t, d->be, be, ARRAY_SIZE(be))))
        return rc;
    if (o->grant_mode) {            /* xen-blkbackd's per-device grant mode (xen-blkbackd(8)) */
        char p[256];
        snprintf(p, sizeof(p), "%s/grant-mode", d->be);
        if ((rc = bbx_write(&d->xs, t, p, o->grant_mode)))
            return rc;
    }
    for (unsigned i = 0; i < o->n_be_keys; i++) {  /* --backend-key KEY=VALUE */
        char p[256];
        const char *eq = strchr(o->be_keys[i], '=');
        snprintf(p, sizeof(p), "%s/%.*s", d->be, (int)(eq - o->be_keys[i]), o->be_keys[i]);
        if ((rc = bbx_write(&d->xs, t, p, eq + 1)))
            return rc;
    }
    return 0;
}

int ts_vbd_add(struct bb_dev *d)
{
    int rc = in_tx(d, vbd_add_tx, "adding vbd");
    if (!rc)
        d->nodes_written = true;
    return rc;
}

/* What our hotplug script does after libxl saw InitWait (docs/protocol.md §6.4,
 * §6.5). */
int ts_hotplug(struct bb_dev *d)
{
    char p[256];
    int rc;
    snprintf(p, sizeof(p), "%s/physical-device-path", d->be);
    if ((rc = bbx_write(&d->xs, XBT_NULL, p, d->o->target)))
        goto fail;
    snprintf(p, sizeof(p), "%s/hotplug-status", d->be);
    if ((rc = bbx_write(&d->xs, XBT_NULL, p, "connected")))
        goto fail;
    return 0;
fail:
    bb_err(d, "writing %s: %s", p, strerror(-rc));
    return rc;
}

/* ---- vbd remove -------------------------------------------------------- */
static int remove_tx(struct bb_dev *d, xs_transaction_t t)
{
    char p[256], *v = NULL;
    /* libxl__initiate_device_generic_remove: online=0, state=5 unless already 6 */
    snprintf(p, sizeof(p), "%s/state", d->be);
    int rc = bbx_read(&d->xs, t, p, &v);
    if (rc == -ENOENT)
        return 0;                       /* already gone */
    if (rc)
        return rc;
    bool closed = !strcmp(v, "6");
    free(v);
    snprintf(p, sizeof(p), "%s/online", d->be);
    if ((rc = bbx_write(&d->xs, t, p, "0")))
        return rc;
    if (!closed) {
        snprintf(p, sizeof(p), "%s/state", d->be);
        if ((rc = bbx_write(&d->xs, t, p, "5")))
            return rc;
    }
    return 0;
}

static int remove_force_tx(struct bb_dev *d, xs_transaction_t t)
{
    /* FORCE_ON (xl destroy, block-detach -f): the frontend dir goes first */
    int rc = bbx_rm(&d->xs, t, d->fe);
    if (rc)
        return rc;
    return remove_tx(d, t);
}

int ts_vbd_remove_begin(struct bb_dev *d, bool force)
{
    return in_tx(d, force ? remove_force_tx : remove_tx, force ? "destroying vbd" : "detaching vbd");
}

/* libxl waits LIBXL_DESTROY_TIMEOUT (10 s) for exactly Closed. */
int ts_vbd_wait_closed(struct bb_dev *d)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/state", d->be);
    return bb_wait_state(d, p, 1u << XenbusStateClosed, BBX_MISSING, "backend", NULL);
}

void ts_vbd_remove_nodes(struct bb_dev *d)
{
    /* libxl__device_destroy: frontend, libxl and backend paths */
    bbx_rm(&d->xs, XBT_NULL, d->fe);
    bbx_rm(&d->xs, XBT_NULL, d->lx);
    bbx_rm(&d->xs, XBT_NULL, d->be);
    /* libxl__xs_path_cleanup: drop the now empty backend/<kind>/<domid> */
    char parent[128];
    snprintf(parent, sizeof(parent), "/local/domain/%u/backend/%s/%u", d->o->be_domid,
             BB_BE_KIND_NAME(d->o->be_kind), d->o->domid);
    unsigned n = 0;
    char **l = xs_directory(d->xs.h, XBT_NULL, parent, &n);
    if (l && n == 0)
        bbx_rm(&d->xs, XBT_NULL, parent);
    free(l);
    d->nodes_written = false;
}
