/*
 * vbd.c - one device's lifecycle and the XenBus state machine of the backend
 * (docs/protocol.md §2 (states); torvalds/linux:drivers/block/xen-blkback/xenbus.c@v6.1
 * frontend_changed; qemu/qemu:hw/xen/xen-bus.c@v7.2.0
 * xen_device_backend_changed).  Level triggered: every watch event of the
 * device re-reads backend state, online, hotplug-status and the frontend state
 * and does what the current values call for, so merged or skipped events and
 * skipped frontend states are harmless.
 */
#include "backend.h"
#include "util.h"
#include "log.h"
#include "xs_keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xen/io/xenbus.h>


static int watch_path(struct vbd *v, const char *dir, const char *key, bool on)
{
    char p[512];
    if (snprintf(p, sizeof(p), "%s/%s", dir, key) >= (int)sizeof(p))
        return -ENAMETOOLONG;
    struct backend *b = v->be;
    return on ? b->ops->xs_watch(b->xs, p, v->token) : b->ops->xs_unwatch(b->xs, p, v->token);
}

/* The QoS keys too (vbd_qos.c): a change applies live. */
static const char *const be_watch_keys[] = {
    XSK_STATE, XSK_ONLINE, XSK_HOTPLUG_STATUS,
    XSK_QOS_IOPS, XSK_QOS_READ_IOPS, XSK_QOS_WRITE_IOPS,
    XSK_QOS_BPS, XSK_QOS_READ_BPS, XSK_QOS_WRITE_BPS,
};

int vbd_new(struct backend *b, const char *kind, xen_domid_t fe, unsigned devid, struct vbd **out)
{
    struct vbd *v = calloc(1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    v->be = b;
    snprintf(v->kind, sizeof(v->kind), "%s", kind);
    v->fe_domid = fe;
    v->devid = devid;
    v->serial = ++b->next_serial;
    snprintf(v->name, sizeof(v->name), "vbd %u/%u", fe, devid);
    snprintf(v->token, sizeof(v->token), "xbd:vbd:%u", v->serial);
    v->be_state = v->fe_state = v->online = -1;
    if (asprintf(&v->be_path, "%s/%s/%s/%u/%u", b->home, XSK_BACKEND_DIR, kind, fe, devid) < 0) {
        free(v);
        return -ENOMEM;
    }
    char *dev = NULL;
    if (xs_read_str(b, v->be_path, XSK_DEV, &dev) == 0)
        snprintf(v->vdev, sizeof(v->vdev), "%s", dev);     /* for the log fields only */
    free(dev);
    log_dev_init(&v->log_id, v->name, fe, devid, v->vdev);
    v->next = b->vbds;
    b->vbds = v;
    for (size_t i = 0; i < ARRAY_SIZE(be_watch_keys); i++) {
        int rc = watch_path(v, v->be_path, be_watch_keys[i], true);
        if (rc) {
            VLOG(v, LOG_ERR, "cannot watch %s/%s: %s", v->be_path, be_watch_keys[i], strerror(-rc));
            vbd_free(v);
            return rc;
        }
    }
    v->watching_be = true;
    VLOG(v, LOG_INFO, "new device at %s", v->be_path);
    *out = v;
    return 0;
}

void vbd_free(struct vbd *v)
{
    struct backend *b = v->be;
    vbd_disconnect(v);
    if (v->watching_be)
        for (size_t i = 0; i < ARRAY_SIZE(be_watch_keys); i++)
            watch_path(v, v->be_path, be_watch_keys[i], false);
    if (v->watching_fe)
        watch_path(v, v->fe_path, XSK_STATE, false);
    if (v->error_written) {
        char p[512];
        snprintf(p, sizeof(p), "%s/%s/%s/%s/%u/%u", b->home, XSK_ERROR_DIR, XSK_BACKEND_DIR,
                 v->kind, v->fe_domid, v->devid);
        b->ops->xs_rm(b->xs, XEN_XS_NO_TX, p);
    }
    for (struct vbd **pp = &b->vbds; *pp; pp = &(*pp)->next)
        if (*pp == v) {
            *pp = v->next;
            break;
        }
    VLOG(v, LOG_INFO, "released");
    free(v->be_path);
    free(v->fe_path);
    free(v->params);
    free(v);
}

void vbd_get_stats(struct vbd *v, struct vbd_stats *out)
{
    *out = v->stats_base;
    if (v->dp) {
        struct vbd_stats live;
        memset(&live, 0, sizeof(live));
        vdp_get_stats(v->dp, &live);
        vbd_stats_add(out, &live);
    }
}

/* Switch our state (checked transaction).  Returns 0 or -errno. */
static int set_state(struct vbd *v, int state)
{
    int rc = xs_tx_write(v->be, v->be_path, NULL, 0, state);
    if (rc) {
        if (rc != -ENOENT)
            VLOG(v, LOG_ERR, "cannot write state %d: %s", state, strerror(-rc));
        return rc;
    }
    VLOG(v, LOG_INFO, "backend %s -> %s (frontend %s)", xenbus_state_name(v->be_state),
         xenbus_state_name(state), xenbus_state_name(v->fe_state));
    v->be_state = state;
    return 0;
}

/* The frontend path must be the frontend domain's own device directory. */
static bool frontend_path_ok(const struct vbd *v, const char *p)
{
    char pre[48];
    int n = snprintf(pre, sizeof(pre), "/local/domain/%u/", v->fe_domid);
    return !strncmp(p, pre, (size_t)n) && strlen(p) > (size_t)n && strlen(p) < 256 &&
           !strstr(p, "//") && p[strlen(p) - 1] != '/';
}

/* A xenstore read of the frontend failed with rc (negative errno, not
 * -ENOENT): log it (once per 5 s) and run the state machine again in 100 ms. */
static void vbd_reread_soon(struct vbd *v, int rc)
{
    uint64_t now = xbd_now_ms();
    if (!v->reread_logged_ms || now - v->reread_logged_ms >= 5000) {
        v->reread_logged_ms = now;
        VLOG(v, LOG_WARNING, "cannot read %s/%s: %s; keeping frontend state %s, reading again",
             v->fe_path, XSK_STATE, strerror(-rc), xenbus_state_name(v->fe_state));
    }
    if (!v->busy_retry_ms || v->busy_retry_ms > now + 100)
        v->busy_retry_ms = now + 100;
}

/* Learn the frontend path from `frontend` and watch its state. */
static void find_frontend(struct vbd *v)
{
    char *fp = NULL;
    if (v->fe_path || xs_read_str(v->be, v->be_path, XSK_FRONTEND, &fp))
        return;
    if (!frontend_path_ok(v, fp)) {
        VLOG(v, LOG_ERR, "ignoring bad frontend path '%.64s'", fp);
        free(fp);
        return;
    }
    v->fe_path = fp;
    int rc = watch_path(v, v->fe_path, XSK_STATE, true);
    if (rc)
        VLOG(v, LOG_ERR, "cannot watch %s/state: %s", v->fe_path, strerror(-rc));
    else
        v->watching_fe = true;
}

/* Re-read everything the state machine looks at.  false: backend dir gone. */
static bool refresh(struct vbd *v)
{
    struct backend *b = v->be;
    long long x;
    int rc = xs_read_int(b, v->be_path, XSK_STATE, &x);
    if (rc == -ENOENT) {
        char *d = NULL;
        if (b->ops->xs_read(b->xs, XEN_XS_NO_TX, v->be_path, &d, NULL) == -ENOENT)
            return false;
        free(d);
        v->be_state = -1;
    } else {
        v->be_state = rc ? -1 : (int)x;
    }
    v->online = xs_read_int(b, v->be_path, XSK_ONLINE, &x) ? 0 : (x == 1);
    char *hs = NULL;
    v->hotplug_connected = !xs_read_str(b, v->be_path, XSK_HOTPLUG_STATUS, &hs) &&
                           !strcmp(hs, XSK_HOTPLUG_CONNECTED);
    free(hs);
    if (v->hotplug_connected)
        v->hotplug_wait_ms = 0, v->hotplug_warned = false;
    find_frontend(v);
    if (v->fe_path) {
        rc = xs_read_int(b, v->fe_path, XSK_STATE, &x);
        /* Gone.  In a driver domain a removed frontend reads as EACCES: its
         * parents are not readable to us, while the node itself was (libxl
         * gives the backend read access); xenstored answers EACCES for a
         * missing node under an unreadable parent
         * (xen-project/xen:tools/xenstore/xenstored_core.c@RELEASE-4.17.7
         * errno_from_parents). */
        if (rc == -ENOENT || rc == -EACCES)
            v->fe_state = -1;
        else if (rc && rc != -EINVAL)
            /* The read itself failed (xenstore connection, memory): the
             * frontend did not change, keep what we knew and look again
             * soon; closing a connected disk on it would fail the guest. */
            vbd_reread_soon(v, rc);
        else
            v->fe_state = (rc || x < 0 || x > 8) ? 0 : (int)x;   /* garbage reads as Unknown */
        if (v->fe_state > 0)
            v->fe_seen = true;
    }
    return true;
}

/* Quiesce, release guest resources, write Closed. */
static void close_device(struct vbd *v)
{
    vbd_disconnect(v);
    v->busy_since_ms = v->busy_retry_ms = 0;       /* a reattach wait ends here too */
    v->retry_since_ms = 0;
    v->retries = 0;
    if (v->be_state != XenbusStateClosed)
        set_state(v, XenbusStateClosed);
    v->fatal = false;
}

void vbd_changed(struct vbd *v)
{
    if (v->finished)
        return;
    if (!refresh(v)) {
        VLOG(v, LOG_INFO, "backend directory removed");
        vbd_disconnect(v);
        v->finished = true;
        return;
    }
    int be = v->be_state, fe = v->fe_state;
    bool online = v->online == 1;
    LOG_DBG(LOG_CAT_XENSTORE, &v->log_id, LOG_NO_QUEUE, "backend %s, frontend %s, online %d, "
            "hotplug %s", xenbus_state_name(be), xenbus_state_name(fe), online,
            v->hotplug_connected ? "connected" : "-");
    if (be < 0)
        return;                 /* toolstack half-way; wait for `state` */
    vbd_qos_changed(v);

    /* online=0 and nothing (more) connected: the device is finished. */
    if (!online && (be == XenbusStateClosed || be == XenbusStateInitialising ||
                    be == XenbusStateInitWait || be == XenbusStateUnknown)) {
        vbd_disconnect(v);
        v->finished = true;
        return;
    }

    /* New device, or reconnect after Closed when the frontend re-initialises. */
    if (online && (be == XenbusStateInitialising ||
                   (be == XenbusStateClosed && fe == XenbusStateInitialising))) {
        vbd_disconnect(v);
        v->fatal = false;
        if (vbd_init_wait(v))
            return;
        be = v->be_state;
    }

    /* Unplug (toolstack wrote online=0, state=5): close at once unless a
     * frontend is there to take part in the handshake. */
    if (!online && !(fe >= XenbusStateInitWait && fe <= XenbusStateClosing)) {
        close_device(v);
        v->finished = true;
        return;
    }

    switch (fe) {
    case XenbusStateInitialised:
    case XenbusStateConnected:
        if (!online || v->fatal)
            break;
        if (be == XenbusStateInitWait || be == XenbusStateInitialised ||
            (be == XenbusStateConnected && !v->dp)) {
            if (v->be->wait_hotplug && !v->hotplug_connected) {
                if (!v->hotplug_wait_ms) {      /* once: every watch event lands here */
                    v->hotplug_wait_ms = xbd_now_ms();
                    VLOG(v, LOG_INFO, "frontend ready; waiting for hotplug-status=connected");
                }
                break;
            }
            vbd_connect(v);
        }
        break;
    case XenbusStateClosing:
        if (be == XenbusStateInitWait || be == XenbusStateInitialised ||
            be == XenbusStateConnected)
            set_state(v, XenbusStateClosing);        /* keep serving the ring */
        break;
    case XenbusStateClosed:
        close_device(v);
        if (!online)
            v->finished = true;
        break;
    case XenbusStateUnknown:
    case -1:                    /* frontend directory gone (xl destroy) */
        if (!v->fe_seen && !v->dp)
            break;              /* never had a frontend: nothing to tear down */
        if (be != XenbusStateClosed)
            VLOG(v, LOG_INFO, "frontend %s: closing", fe < 0 ? "vanished" : "Unknown");
        close_device(v);
        if (!online)
            v->finished = true;
        break;
    default:
        break;
    }
}

void vbd_shutdown(struct vbd *v, bool close)
{
    if (!close && v->dp) {
        vdp_keep_state(v->dp);   /* for the next daemon: xen-blkbackd(8) RESTART */
        v->td3_keep = true;     /* and the xentop figures to go on from (td3_stats.c) */
    }
    vbd_disconnect(v);
    if (close && v->be_state >= 0 && v->be_state != XenbusStateClosed)
        set_state(v, XenbusStateClosed);
}

/* When the "no hotplug-status" warning is due (monotonic ms), 0 = not due:
 * the device waits for its hotplug script (vbd_changed) and was not warned about. */
static uint64_t hotplug_warn_at(const struct vbd *v)
{
    unsigned ms = v->be->cfg->hotplug_warn_ms;
    if (!ms || !v->hotplug_wait_ms || v->hotplug_warned || v->hotplug_connected || v->finished)
        return 0;
    return v->hotplug_wait_ms + ms;
}

int vbd_poll_timeout(struct backend *b)
{
    uint64_t next = 0;
    bool connected = false;
    for (struct vbd *v = b->vbds; v; v = v->next) {
        if (v->busy_retry_ms && (!next || v->busy_retry_ms < next))
            next = v->busy_retry_ms;
        uint64_t hw = hotplug_warn_at(v);
        if (hw && (!next || hw < next))
            next = hw;
        connected |= v->dp != NULL;
    }
    /* The resize check runs only while some device is connected. */
    if (connected && b->cfg->resize_check_ms) {
        if (!b->next_size_check_ms)
            b->next_size_check_ms = xbd_now_ms() + b->cfg->resize_check_ms;
        if (!next || b->next_size_check_ms < next)
            next = b->next_size_check_ms;
    } else {
        b->next_size_check_ms = 0;
    }
    if (!next)
        return -1;
    uint64_t now = xbd_now_ms();
    return next <= now ? 0 : (int)(next - now);
}

void vbd_run_timers(struct backend *b)
{
    uint64_t now = xbd_now_ms();
    for (struct vbd *v = b->vbds; v; v = v->next) {
        if (v->busy_retry_ms && v->busy_retry_ms <= now) {
            v->busy_retry_ms = 0;
            vbd_changed(v);     /* level triggered: connects again if still wanted */
        }
        uint64_t hw = hotplug_warn_at(v);
        if (hw && hw <= now) {
            /* docs/protocol.md §6.4 (attach): the script runs only after libxl saw
             * InitWait within LIBXL_INIT_TIMEOUT; libxl then leaves the device. */
            VLOG(v, LOG_WARNING, "no hotplug-status after %llu s: the toolstack has not run "
                 "the hotplug script (libxl runs it only when the backend reached InitWait "
                 "within its 10 s, so a disk attached while no xen-blkbackd ran is left so); "
                 "xl block-detach it and attach it again",
                 (unsigned long long)(now - v->hotplug_wait_ms) / 1000);
            v->hotplug_warned = true;
        }
    }
    if (b->next_size_check_ms && b->next_size_check_ms <= now) {
        b->next_size_check_ms = now + b->cfg->resize_check_ms;
        vbd_check_sizes(b);
    }
}
