/*
 * vbd_connect.c - the connect and disconnect halves of a vbd: what we
 * advertise before InitWait, reading the frontend's ring keys, opening the
 * backing store, starting the data plane, advertising the device
 * (docs/protocol.md §1.2, §1.3; connect_ring() and connect() of
 * torvalds/linux:drivers/block/xen-blkback/xenbus.c@v6.1), and the one fatal
 * error path (Linux xenbus_dev_fatal).
 */
#include "backend.h"
#include "util.h"
#include "log.h"
#include "xs_keys.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xen/io/xenbus.h>


/* ---- InitWait --------------------------------------------------------------- */

int vbd_init_wait(struct vbd *v)
{
    struct backend *b = v->be;
    const struct xbd_config *c = b->cfg;
    struct xs_kv kv[3];

    /* Only what the data plane supports and the admin configured
     * (docs/protocol.md §1.2; blkif.h max-ring-page-order, BLKIF_OP_INDIRECT). */
    if (c->max_ring_page_order > 0)
        xs_kv_set(&kv[0], XSK_MAX_RING_PAGE_ORDER, c->max_ring_page_order);
    else
        xs_kv_rm(&kv[0], XSK_MAX_RING_PAGE_ORDER);
    if (b->max_queues > 1)
        xs_kv_set(&kv[1], XSK_MQ_MAX_QUEUES, b->max_queues);
    else
        xs_kv_rm(&kv[1], XSK_MQ_MAX_QUEUES);
    if (c->max_indirect_segs > 0)
        xs_kv_set(&kv[2], XSK_MAX_INDIRECT_SEGS, c->max_indirect_segs);
    else
        xs_kv_rm(&kv[2], XSK_MAX_INDIRECT_SEGS);

    int rc = xs_tx_write(b, v->be_path, kv, 3, XenbusStateInitWait);
    if (rc) {
        if (rc != -ENOENT)
            VLOG(v, LOG_ERR, "cannot switch to InitWait: %s", strerror(-rc));
        return rc;
    }
    VLOG(v, LOG_INFO, "backend %s -> InitWait (frontend %s)", xenbus_state_name(v->be_state),
         xenbus_state_name(v->fe_state));
    v->be_state = XenbusStateInitWait;
    return 0;
}

/* ---- disconnect / fatal --------------------------------------------------------- */

void vbd_disconnect(struct vbd *v)
{
    v->store_id_ok = false;
    if (v->dp) {
        vdp_stop(v->dp, v->be->cfg->stop_timeout_ms);
        struct vbd_stats s;
        memset(&s, 0, sizeof(s));
        vdp_get_stats(v->dp, &s);
        vbd_stats_clear_gauges(&s);                    /* gauges of a dead ring */
        vbd_stats_add(&v->stats_base, &s);
        v->td3_leaked = vdp_leaked(v->dp);
        vdp_destroy(v->dp, v->be);
        v->dp = NULL;
        VLOG(v, LOG_INFO, "disconnected (ring unmapped, event channels unbound)");
    }
    if (v->engine) {
        v->engine->ops->close(v->engine);
        v->engine = NULL;
    }
    free(v->open.spec);
    v->open.spec = NULL;
    vbd_td3_close(v);           /* after the queue threads that wrote it */
}

void vbd_fatal(struct vbd *v, int err, const char *fmt, ...)
{
    struct backend *b = v->be;
    int e = -err;                       /* the error node holds the positive errno */
    char msg[256], val[300], p[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    VLOG(v, LOG_ERR, "%s: %s", msg, strerror(e));
    snprintf(v->last_error, sizeof(v->last_error), "%.255s: %.60s", msg, strerror(e));
    vbd_disconnect(v);
    v->busy_since_ms = v->busy_retry_ms = 0;
    v->retry_since_ms = 0;
    v->retries = 0;

    snprintf(val, sizeof(val), "%d %s", e, msg);
    /* Linux: <home>/error/backend/<kind>/<fe>/<devid>/error (docs/protocol.md §1.1;
     * torvalds/linux:drivers/xen/xenbus/xenbus_client.c@v6.1 xenbus_va_dev_error) */
    snprintf(p, sizeof(p), "%s/%s/%s/%s/%u/%u/%s", b->home, XSK_ERROR_DIR, XSK_BACKEND_DIR,
             v->kind, v->fe_domid, v->devid, XSK_ERROR);
    if (b->ops->xs_write(b->xs, XEN_XS_NO_TX, p, val) == 0)
        v->error_written = true;
    struct xs_kv kv;
    xs_kv_str(&kv, XSK_ERROR, val);
    int rc = xs_tx_write(b, v->be_path, &kv, 1, XenbusStateClosing);
    if (rc == 0) {
        VLOG(v, LOG_INFO, "backend %s -> Closing (error)", xenbus_state_name(v->be_state));
        v->be_state = XenbusStateClosing;
    } else if (rc != -ENOENT) {
        VLOG(v, LOG_ERR, "cannot switch to Closing: %s", strerror(-rc));
    }
    v->fatal = true;
}

/* ---- reading the frontend ---------------------------------------------------------- */

static int read_u32(struct backend *b, const char *dir, const char *key, uint32_t *out)
{
    long long x;
    int rc = xs_read_int(b, dir, key, &x);
    if (rc)
        return rc;
    if (x < 0 || x > UINT32_MAX)
        return -ERANGE;
    *out = (uint32_t)x;
    return 0;
}

/* Ring refs and event channel of one queue in `dir` (Linux read_per_ring_refs). */
static int read_queue(struct vbd *v, const char *dir, bool has_order, unsigned order,
                      struct dp_queue_cfg *q)
{
    struct backend *b = v->be;
    int rc;
    q->nr_ring_pages = 1u << order;
    if (!has_order) {
        rc = read_u32(b, dir, XSK_RING_REF, &q->ring_ref[0]);
        if (rc) {
            vbd_fatal(v, rc, "reading %s/%s", dir, XSK_RING_REF);
            return rc;
        }
    } else {
        for (unsigned i = 0; i < q->nr_ring_pages; i++) {
            char key[24];
            snprintf(key, sizeof(key), XSK_RING_REF_N_FMT, i);
            rc = read_u32(b, dir, key, &q->ring_ref[i]);
            if (rc) {
                vbd_fatal(v, rc, "reading %s/%s", dir, key);
                return rc;
            }
        }
    }
    rc = read_u32(b, dir, XSK_EVENT_CHANNEL, &q->evtchn);
    if (rc) {
        vbd_fatal(v, rc, "reading %s/%s", dir, XSK_EVENT_CHANNEL);
        return rc;
    }
    return 0;
}

/* Frontend keys into dc (docs/protocol.md §1.3).  On error vbd_fatal has run. */
static int read_frontend(struct vbd *v, struct dp_config *dc, bool *fe_persistent)
{
    struct backend *b = v->be;
    const char *fe = v->fe_path;
    long long x;
    int rc;

    unsigned order = 0;
    bool has_order = false;
    rc = xs_read_int(b, fe, XSK_RING_PAGE_ORDER, &x);
    if (rc == 0) {
        if (x < 0 || x > (long long)b->cfg->max_ring_page_order) {
            vbd_fatal(v, -EINVAL, "ring-page-order %lld above max-ring-page-order %u", x,
                      b->cfg->max_ring_page_order);
            return -EINVAL;
        }
        order = (unsigned)x;
        has_order = true;
    } else if (rc != -ENOENT) {
        vbd_fatal(v, rc, "reading %s/%s", fe, XSK_RING_PAGE_ORDER);
        return rc;
    }

    unsigned nq = 1;
    rc = xs_read_int(b, fe, XSK_MQ_NUM_QUEUES, &x);
    if (rc == 0) {
        if (x < 1 || x > (long long)b->max_queues) {
            vbd_fatal(v, -EINVAL, "multi-queue-num-queues %lld not in 1..%u", x, b->max_queues);
            return -EINVAL;
        }
        nq = (unsigned)x;
    } else if (rc != -ENOENT) {
        vbd_fatal(v, rc, "reading %s/%s", fe, XSK_MQ_NUM_QUEUES);
        return rc;
    }
    dc->nr_queues = nq;
    for (unsigned i = 0; i < nq; i++) {
        char dir[512];
        if (nq == 1)
            snprintf(dir, sizeof(dir), "%s", fe);
        else
            snprintf(dir, sizeof(dir), "%s/" XSK_QUEUE_FMT, fe, i);
        rc = read_queue(v, dir, has_order, order, &dc->queue[i]);
        if (rc)
            return rc;
    }

    char *proto = NULL;
    rc = xs_read_str(b, fe, XSK_PROTOCOL, &proto);
    if (rc && rc != -ENOENT) {
        vbd_fatal(v, rc, "reading %s/%s", fe, XSK_PROTOCOL);
        return rc;
    }
    rc = blkif_abi_parse(proto, &dc->abi);     /* missing: native (docs/protocol.md §1.3) */
    if (rc) {
        vbd_fatal(v, -EINVAL, "unsupported protocol '%.32s'", proto ? proto : "");
        free(proto);
        return -EINVAL;
    }
    free(proto);

    *fe_persistent = xs_read_int(b, fe, XSK_FEATURE_PERSISTENT, &x) == 0 && x == 1;
    return 0;
}

/* ---- the backing store ------------------------------------------------------------- */

/* ---- a store held by someone else ---------------------------------------------- */

/* Reattach wait (the rule is in src/engine/lock.c): the lock or O_EXCL claim
 * of a store is released only when its last in-flight I/O completes, so a
 * restarted daemon that finds it held assumes the previous daemon's I/O is
 * still draining in the kernel and retries, without blocking the main loop
 * (vbd_poll_timeout/vbd_run_timers in vbd.c), before it maps the ring. */
#define BUSY_RETRY_MS 25
#define BUSY_LOG_MS 5000
#define BUSY_GIVE_UP_MS 60000

/* The vbd of this daemon that holds `spec` open, or NULL. */
static struct vbd *own_holder(struct vbd *v, const char *spec)
{
    struct engine_store_id id;
    if (engine_store_id(spec, &id) == 0)
        for (struct vbd *o = v->be->vbds; o; o = o->next)
            if (o != v && o->engine && o->store_id_ok && o->store_id.dev == id.dev &&
                o->store_id.ino == id.ino && o->store_id.blockdev == id.blockdev)
                return o;
    return NULL;
}

/* Who holds `spec`: another vbd of this daemon, else engine_store_holder. */
static void store_holder(struct vbd *v, const char *spec, char *buf, size_t len)
{
    struct vbd *o = own_holder(v, spec);
    if (o)
        snprintf(buf, len, "%s of this daemon (mode %s)", o->name, o->mode);
    else
        engine_store_holder(spec, buf, len);
}

/* "/local/domain/<domid>/<key>" as a malloc'd string, or NULL. */
static char *dom_read(struct backend *b, unsigned domid, const char *key)
{
    char dir[48], *val = NULL;
    snprintf(dir, sizeof(dir), "/local/domain/%u", domid);
    return xs_read_str(b, dir, key, &val) ? NULL : val;
}

/* The vm path of the domain a device model domain serves (its `target`), or NULL. */
static char *target_vm(struct backend *b, unsigned domid)
{
    char *t = dom_read(b, domid, "target"), *vm = NULL;
    uint64_t td;
    if (t && !xbd_parse_u64(t, 10, 0, 0x7fef, &td))
        vm = dom_read(b, (unsigned)td, "vm");
    free(t);
    return vm;
}

static bool str_eq(const char *a, const char *b) { return a && b && !strcmp(a, b); }

/* Are the frontends of v (new) and o (holding the store) the same VM?  The
 * rule of Xen's block script for a disk that is already in use (same_vm of
 * xen-project/xen:tools/hotplug/Linux/block-common.sh@RELEASE-4.17.7): the
 * /local/domain/<id>/vm paths are equal (libxl gives the domain that a
 * migration or restore creates the vm path "/vm/<uuid>" of the VM it came
 * from: tools/libs/light/libxl_create.c@RELEASE-4.17.7 libxl__domain_make),
 * with a "-1" suffix of the new one's ignored (xend's naming), or o's vm node
 * is already gone (a domain being destroyed), or one is the device model
 * domain (`target`) of the other's VM. */
static bool same_vm(struct vbd *v, struct vbd *o)
{
    struct backend *b = v->be;
    char *fe = dom_read(b, v->fe_domid, "vm");
    if (!fe)
        return false;
    size_t n = strlen(fe);
    if (n > 2 && !strcmp(fe + n - 2, "-1"))
        fe[n - 2] = 0;
    char *other = dom_read(b, o->fe_domid, "vm");
    char *tvm = target_vm(b, v->fe_domid), *otvm = target_vm(b, o->fe_domid);
    bool same = !other || str_eq(fe, other) || str_eq(tvm, other) || str_eq(fe, otvm) ||
                str_eq(tvm, otvm);
    free(fe);
    free(other);
    free(tvm);
    free(otvm);
    return same;
}

/* The store could not be claimed (-EBUSY): vbd_fatal on a fresh connect or
 * after BUSY_GIVE_UP_MS, else schedule the next try. */
static void store_busy(struct vbd *v, const char *spec, bool reattach)
{
    char who[192];
    uint64_t now = xbd_now_ms();
    if (!reattach || (v->busy_since_ms && now - v->busy_since_ms >= BUSY_GIVE_UP_MS)) {
        store_holder(v, spec, who, sizeof(who));
        if (reattach)
            vbd_fatal(v, -EBUSY, "reattach gave up after %u s: '%.80s' still in use by %s",
                      BUSY_GIVE_UP_MS / 1000, spec, who);
        else
            vbd_fatal(v, -EBUSY, "'%.80s' in use by %s", spec, who);
        return;
    }
    if (!v->busy_since_ms) {
        v->busy_since_ms = v->busy_logged_ms = now;
        store_holder(v, spec, who, sizeof(who));
        VLOG(v, LOG_NOTICE, "reattach: waiting for '%s', in use by %s (the previous daemon's "
             "I/O may still be in the kernel); retrying every %u ms for up to %u s", spec, who,
             BUSY_RETRY_MS, BUSY_GIVE_UP_MS / 1000);
    } else if (now - v->busy_logged_ms >= BUSY_LOG_MS) {
        v->busy_logged_ms = now;
        store_holder(v, spec, who, sizeof(who));
        VLOG(v, LOG_NOTICE, "reattach: still waiting for '%s' after %llu s, in use by %s", spec,
             (unsigned long long)(now - v->busy_since_ms) / 1000, who);
    }
    v->busy_retry_ms = now + BUSY_RETRY_MS;
}

/* A reattach (the daemon restarted under a connected frontend) whose ring
 * set-up or advertisement failed with err (negative errno) in `what`: what
 * the previous daemon held (its event channel binding, ring mapping,
 * xenstore connection) may still be going away in the kernel or xenstored
 * (its event channel is unbound when the last reference to its evtchn file
 * goes, and its queue's io_uring, which had the file registered, drops its
 * reference only after the ring's I/O in flight ended: src/engine/uring.c),
 * and a restart must be a pause for the guest, never an error
 * (xen-blkbackd(8) RESTART).  Disconnects what this try set up and schedules
 * the next one (100 ms, doubling to 1 s) for up to BUSY_GIVE_UP_MS after the
 * first failure.  true: retry scheduled; false: the caller goes fatal. */
static bool reattach_retry(struct vbd *v, bool reattach, int err, const char *what)
{
    if (!reattach)
        return false;
    uint64_t now = xbd_now_ms();
    if (!v->retry_since_ms) {
        v->retry_since_ms = v->busy_logged_ms = now;
        v->retries = 0;
        VLOG(v, LOG_WARNING, "reattach: %s failed: %s; retrying for up to %u s (what the "
             "previous daemon held may still be going away)", what, strerror(-err),
             BUSY_GIVE_UP_MS / 1000);
    } else if (now - v->retry_since_ms >= BUSY_GIVE_UP_MS) {
        return false;
    } else if (now - v->busy_logged_ms >= BUSY_LOG_MS) {
        v->busy_logged_ms = now;
        VLOG(v, LOG_WARNING, "reattach: %s still failing after %llu s (%u tries): %s", what,
             (unsigned long long)(now - v->retry_since_ms) / 1000, v->retries + 1,
             strerror(-err));
    }
    vbd_disconnect(v);
    unsigned shift = v->retries < 4 ? v->retries : 4;
    uint64_t delay = 100ull << shift;
    v->busy_retry_ms = now + (delay > 1000 ? 1000 : delay);
    v->retries++;
    return true;
}

/* params -> engine; vbd3 params are "<fmt>:<path>" with fmt raw or aio.
 * -EBUSY: the store is held (store_busy ran: fatal, or a reattach retry). */
static int open_engine(struct vbd *v, const char *params, bool readonly, bool shared,
                       bool reattach)
{
    struct backend *b = v->be;
    const char *spec = params;
    if (!strcmp(v->kind, XSK_KIND_VBD3)) {
        const char *colon = strchr(params, ':');
        size_t n = colon ? (size_t)(colon - params) : 0;
        if (!colon || !((n == 3 && !strncmp(params, "raw", 3)) ||
                        (n == 3 && !strncmp(params, "aio", 3)))) {
            vbd_fatal(v, -EOPNOTSUPP, "vbd3 params '%.64s': only raw: and aio: images", params);
            return -EOPNOTSUPP;
        }
        spec = colon + 1;
    }
    if (!*spec) {
        vbd_fatal(v, -ENOENT, "empty params (no medium)");
        return -ENOENT;
    }
    /* Only regular files and block devices: open(2) of a FIFO for reading
     * blocks until a writer comes, and that would stall every device. */
    struct stat st;
    if (stat(spec, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        vbd_fatal(v, -EINVAL, "'%.64s' is not a regular file or block device", spec);
        return -EINVAL;
    }
    char why[160] = "";
    struct engine_params ep = {
        .path = spec,
        .readonly = readonly,
        .direct = b->cfg->direct_io,
        .name = v->name,
        .dev = &v->log_id,
        .shared_write = shared,
        .why = why,
        .why_len = sizeof(why),
    };
    struct engine *e = NULL;
    int rc = engine_open_params(spec, &ep, b->cfg->allow_test_engines, &e);
    struct vbd *o = rc == -EBUSY ? own_holder(v, spec) : NULL;
    if (o && !shared && !strcmp(o->mode, readonly ? "r" : "w") && same_vm(v, o)) {
        ep.share_claim = o->engine;
        rc = engine_open_params(spec, &ep, b->cfg->allow_test_engines, &e);
        if (rc == 0)
            VLOG(v, LOG_NOTICE, "'%s' is in use by %s, a domain of the same VM (a migration "
                 "or restore on this host): sharing its claim", spec, o->name);
    }
    if (rc == -EBUSY) {
        store_busy(v, spec, reattach);
        return rc;
    }
    if (rc) {
        if (why[0])     /* the engine's own explanation, e.g. the NBD server's answer */
            vbd_fatal(v, rc, "opening '%.64s': %s", spec, why);
        else
            vbd_fatal(v, rc, "opening '%.64s'", spec);
        return rc;
    }
    if (v->busy_since_ms)
        VLOG(v, LOG_NOTICE, "reattach: '%s' free after %llu ms", spec,
             (unsigned long long)(xbd_now_ms() - v->busy_since_ms));
    v->busy_since_ms = 0;
    LOG_DBG(LOG_CAT_ENGINE, &v->log_id, LOG_NO_QUEUE, "opened '%s' with the %s engine: %llu "
            "bytes, block %u/%u B, %s, %s, flush %d, discard %d, fua %d", spec, e->ops->name,
            (unsigned long long)e->size, e->logical_block_size, e->physical_block_size,
            e->readonly ? "ro" : "rw", e->direct ? "O_DIRECT" : "buffered", e->caps.flush,
            e->caps.discard, e->caps.fua);
    if (shared)
        VLOG(v, LOG_NOTICE, "mode w!: '%s' read-write and shared on purpose: no exclusive "
             "claim, other writers allowed (cluster filesystems only)", spec);
    v->engine = e;
    v->open.spec = strdup(spec);
    v->open.readonly = readonly;
    v->open.shared = shared;
    v->store_id_ok = engine_store_id(spec, &v->store_id) == 0;
    return 0;
}

/* ---- connect ------------------------------------------------------------------------ */

/* Advertise the device in one transaction, with state 4 unless already 4. */
/* We offer feature-persistent when configured (`persistent`) and the device's
 * grant mode can use it: persistent, or auto when the engine's I/O is drained
 * by the kernel when the daemon dies (engine.h exit_drains_io: aio), so that
 * auto is always crash-safe; with io_uring auto is grant copy.  Map and copy
 * never keep grants. */
static bool vbd_offers_persistent(const struct vbd *v)
{
    enum grant_mode m = v->conn.grant_mode;
    if (!v->be->cfg->persistent)
        return false;
    return m == GRANT_MODE_PERSISTENT ||
           (m == GRANT_MODE_AUTO && v->engine && v->engine->caps.exit_drains_io);
}

static int advertise(struct vbd *v)
{
    const struct vbd_conn *c = &v->conn;
    const struct engine_caps *caps = &v->engine->caps;
    struct dp_info d;
    vdp_get_info(v->dp, &d);
    struct xs_kv kv[13];
    unsigned n = 0;

    xs_kv_set(&kv[n++], XSK_SECTORS, c->sectors);
    xs_kv_set(&kv[n++], XSK_INFO, c->info);
    xs_kv_set(&kv[n++], XSK_SECTOR_SIZE, d.lim.sector_size);
    xs_kv_set(&kv[n++], XSK_PHYS_SECTOR_SIZE, c->phys_sector_size);
    xs_kv_set(&kv[n++], XSK_FEATURE_FLUSH, d.lim.flush);
    xs_kv_set(&kv[n++], XSK_FEATURE_BARRIER, d.lim.barrier);
    if (d.lim.discard) {
        xs_kv_set(&kv[n++], XSK_FEATURE_DISCARD, 1);
        xs_kv_set(&kv[n++], XSK_DISCARD_GRANULARITY,
                  caps->discard_granularity ? caps->discard_granularity : d.lim.sector_size);
        xs_kv_set(&kv[n++], XSK_DISCARD_ALIGNMENT, caps->discard_alignment);
        xs_kv_set(&kv[n++], XSK_DISCARD_SECURE, d.lim.secure_discard);
    } else {
        /* discard-enable=0: write none of them (Linux xen_blkbk_discard,
         * docs/protocol.md §1.2) */
        xs_kv_rm(&kv[n++], XSK_FEATURE_DISCARD);
        xs_kv_rm(&kv[n++], XSK_DISCARD_GRANULARITY);
        xs_kv_rm(&kv[n++], XSK_DISCARD_ALIGNMENT);
        xs_kv_rm(&kv[n++], XSK_DISCARD_SECURE);
    }
    /* Our own setting; the result is the AND with the frontend's
     * (docs/protocol.md §1.2; torvalds/linux:drivers/block/xen-blkback/xenbus.c@v6.1 connect) */
    xs_kv_set(&kv[n++], XSK_FEATURE_PERSISTENT, vbd_offers_persistent(v));
    /* vbd3: where libxenstat finds the statistics file (td3_stats.c); none,
     * not a previous daemon's */
    if (v->td3.mem)
        xs_kv_set(&kv[n++], XSK_KTHREAD_PID, (unsigned long long)getpid());
    else if (vbd_td3_wanted(v))
        xs_kv_rm(&kv[n++], XSK_KTHREAD_PID);
    int to = v->be_state == XenbusStateConnected ? -1 : XenbusStateConnected;
    return xs_tx_write(v->be, v->be_path, kv, n, to);
}

int vbd_connect(struct vbd *v)
{
    struct backend *b = v->be;
    const struct xbd_config *cfg = b->cfg;
    bool reattach = v->be_state == XenbusStateConnected;
    long long x;
    int rc;

    vbd_disconnect(v);          /* any old ring (idempotent) */
    memset(&v->conn, 0, sizeof(v->conn));
    v->resize_refused_bytes = 0;

    struct dp_config *dc = calloc(1, sizeof(*dc));
    char *params = NULL, *mode = NULL, *devtype = NULL;
    if (!dc) {
        vbd_fatal(v, -ENOMEM, "connecting");
        return -ENOMEM;
    }
    bool fe_persistent = false;
    rc = read_frontend(v, dc, &fe_persistent);
    if (rc)
        goto out;

    rc = xs_read_str(b, v->be_path, XSK_PARAMS, &params);
    if (rc) {
        vbd_fatal(v, rc, "reading %s/%s", v->be_path, XSK_PARAMS);
        goto out;
    }
    if (xs_read_str(b, v->be_path, XSK_MODE, &mode) && !v->busy_since_ms)
        VLOG(v, LOG_WARNING, "no `mode`: read-only");
    /* As Xen's canonicalise_mode
     * (xen-project/xen:tools/hotplug/Linux/block-common.sh@RELEASE-4.17.7):
     * no 'w' is read-only, 'w' with '!' ("w!") is read-write without the
     * sharing check. */
    bool readonly = !mode || !strchr(mode, 'w');
    bool shared = !readonly && strchr(mode, '!');
    unsigned info = 0;
    if (!xs_read_str(b, v->be_path, XSK_DEVICE_TYPE, &devtype) && !strcmp(devtype, "cdrom"))
        info |= XSK_VDISK_CDROM;
    if (!xs_read_int(b, v->be_path, XSK_REMOVABLE, &x) && x == 1)
        info |= XSK_VDISK_REMOVABLE;
    bool discard_enable = xs_read_int(b, v->be_path, XSK_DISCARD_ENABLE, &x) || x != 0;

    rc = open_engine(v, params, readonly, shared, reattach);
    if (rc)
        goto out;
    struct engine *e = v->engine;
    if (e->readonly)
        readonly = true;
    if (readonly)
        info |= XSK_VDISK_READONLY;

    /* What the data plane is to run with: dc, once; it reports what it
     * chose (dp_get_info). */
    struct vbd_conn *c = &v->conn;
    dc->sectors = c->sectors = e->size >> 9;
    dc->sector_size = e->logical_block_size ? e->logical_block_size : 512;
    c->phys_sector_size = e->physical_block_size ? e->physical_block_size : dc->sector_size;
    c->info = info;
    dc->readonly = readonly;
    dc->discard = e->caps.discard && discard_enable && !readonly;
    dc->barrier = cfg->feature_barrier;
    dc->flush = true;
    dc->max_indirect_segs = cfg->max_indirect_segs;
    c->grant_mode = cfg->grant_mode;
    char *gm = NULL;
    if (!xs_read_str(b, v->be_path, XSK_GRANT_MODE, &gm) &&
        grant_mode_parse(gm, &c->grant_mode))
        VLOG(v, LOG_WARNING, "ignoring %s/%s = '%s': expected auto, map, copy or persistent",
             v->be_path, XSK_GRANT_MODE, gm);
    free(gm);
    dc->grant_mode = c->grant_mode;
    dc->persistent = vbd_offers_persistent(v) && fe_persistent;
    if ((c->grant_mode == GRANT_MODE_MAP || c->grant_mode == GRANT_MODE_PERSISTENT) &&
        !e->caps.exit_drains_io)
        VLOG(v, LOG_WARNING, "grant mode %s with the %s engine is not crash-safe: if the daemon "
             "dies with I/O in flight, a PV dom0 kernel cannot unmap the guest pages under that "
             "I/O (BUG: Bad page map, grants leaked); grant mode auto or copy, or the aio "
             "engine, are (xen-blkbackd(8) RESTART)",
             grant_mode_name(c->grant_mode), e->ops->name);

    dc->name = v->name;
    dc->fe_domid = v->fe_domid;
    dc->devid = v->devid;
    dc->vdev = v->vdev;
    dc->engine = e;
    dc->persistent_cap = cfg->persistent_cap;
    dc->seccomp = cfg->seccomp;
    if (cfg->seccomp != CONFINE_OFF && !e->caps.seccomp_ok)
        VLOG(v, LOG_NOTICE, "seccomp %s: the %s engine is not confined; its queue threads "
             "run without the allow-list (xen-blkbackd(8) CONFINEMENT)",
             confine_mode_name(cfg->seccomp), e->ops->name);
    dc->poll_us = cfg->poll_us;
    vbd_qos_read(v, &cfg->qos, &dc->qos);
    dc->reattach = reattach;
    char sdir[256], spath[320];
    xbd_config_state_dir(cfg, sdir, sizeof(sdir));   /* made by owner_acquire at start-up */
    snprintf(spath, sizeof(spath), "%s/%s-%u-%u.state", sdir, v->kind, v->fe_domid, v->devid);
    dc->state_path = spath;
    dc->td3 = vbd_td3_open(v);

    rc = vdp_create(v, dc, &v->dp);
    if (rc) {
        v->dp = NULL;
        if (!(rc == -EPIPE && vdp_worker_died(v)) &&
            !reattach_retry(v, reattach, rc, "mapping the ring / binding the event channel"))
            vbd_fatal(v, rc, "mapping the ring / binding the event channel");
        goto out;
    }
    rc = vdp_start(v->dp);
    if (rc) {
        if (!(rc == -EPIPE && vdp_worker_died(v)))
            vbd_fatal(v, rc, "starting the data plane");
        goto out;
    }
    rc = advertise(v);
    if (rc == -ENOENT) {
        VLOG(v, LOG_INFO, "backend directory vanished while connecting");
        vbd_disconnect(v);
        goto out;
    }
    if (rc && reattach) {
        /* The previous daemon wrote them and the ring is served again: a
         * failed refresh of the keys is no reason to fail the guest. */
        VLOG(v, LOG_WARNING, "reattach: cannot refresh the device properties: %s (the "
             "previous daemon's stay)", strerror(-rc));
    } else if (rc) {
        vbd_fatal(v, rc, "writing the device properties");
        goto out;
    }
    if (v->retry_since_ms)
        VLOG(v, LOG_NOTICE, "reattach: ring set up after %u tries in %llu ms", v->retries + 1,
             (unsigned long long)(xbd_now_ms() - v->retry_since_ms));
    v->retry_since_ms = 0;
    v->retries = 0;
    free(v->params);
    v->params = params;
    params = NULL;
    snprintf(v->mode, sizeof(v->mode), "%s", readonly ? "r" : shared ? "w!" : "w");
    v->connects++;
    if (!reattach) {
        VLOG(v, LOG_INFO, "backend %s -> Connected (frontend %s)", xenbus_state_name(v->be_state),
             xenbus_state_name(v->fe_state));
        v->be_state = XenbusStateConnected;
    }
    struct dp_info d;
    vdp_get_info(v->dp, &d);
    VLOG(v, LOG_NOTICE, "%s '%s': %llu sectors, sector %u B, %s, %u queue(s), ring order %u, "
         "%s, grant mode %s, persistent %s, discard %s, indirect %u",
         reattach ? "reattached" : "connected", v->params, (unsigned long long)c->sectors,
         d.lim.sector_size, d.lim.readonly ? "ro" : "rw", d.nr_queues, d.ring_order,
         blkif_abi_name(d.abi), grant_mode_name(d.grant_mode), d.persistent ? "yes" : "no",
         d.lim.discard ? "yes" : "no", d.lim.max_indirect_segs);
out:
    free(params);
    free(mode);
    free(devtype);
    free(dc);
    return rc;
}
