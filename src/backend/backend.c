/*
 * backend.c - the control plane's main thread: open the Xen services, watch
 * /local/domain/<self>/backend/<kind> for devices, dispatch watch events to
 * the vbds, serve the control socket, handle SIGTERM/SIGINT/SIGHUP/SIGUSR1/
 * SIGUSR2 through a signalfd, talk to systemd (notify.c).  One poll loop; no
 * other thread touches xenstore.
 */
#include "backend.h"
#include "util.h"
#include "log.h"
#include "xs_keys.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define TOP_TOKEN_PREFIX "xbd:top:"
#define VBD_TOKEN_PREFIX "xbd:vbd:"
#define MAX_POLL 40
/* Watch events handled per turn of the main loop: a guest rewriting its
 * nodes nonstop (or a toolstack's storm) must not starve the control socket,
 * signals, timers and the watchdog ping, which are served between batches
 * (libxenstore keeps xs_fileno readable while events are queued: xen.git
 * tools/libs/store/xs.c, xs_maybe_clear_watch_pipe). */
#define WATCH_BATCH 64

static const char *const kinds[] = { XSK_KIND_VBD, XSK_KIND_VBD3 };

static bool kind_enabled(const struct backend *b, const char *kind)
{
    return !strcmp(kind, XSK_KIND_VBD) ? b->cfg->type_vbd : b->cfg->type_vbd3;
}

/* Kinds whose directory is watched: the served ones, and vbd3 in any case, so
 * that a vbd3 disk (Xen >= 4.19 backendtype=tap) says why nobody serves it
 * (admit.c backend_admit_unserved).  An unserved vbd is the kernel's
 * (--backend-types=vbd3). */
static bool kind_watched(const struct backend *b, const char *kind)
{
    return kind_enabled(b, kind) || !strcmp(kind, XSK_KIND_VBD3);
}

struct vbd *backend_find_vbd(struct backend *b, const char *kind, xen_domid_t fe, unsigned devid)
{
    for (struct vbd *v = b->vbds; v; v = v->next)
        if (v->fe_domid == fe && v->devid == devid && !strcmp(v->kind, kind))
            return v;
    return NULL;
}

static struct vbd *find_serial(struct backend *b, unsigned serial)
{
    for (struct vbd *v = b->vbds; v; v = v->next)
        if (v->serial == serial)
            return v;
    return NULL;
}

/* Strict decimal component; false if not a number in [0, max]. */
static bool parse_id(const char *s, size_t len, unsigned long max, unsigned long *out)
{
    if (!len || len > 10)
        return false;
    unsigned long x = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (unsigned long)(s[i] - '0');
    }
    if (x > max)
        return false;
    *out = x;
    return true;
}

static void reap(struct backend *b)
{
    struct vbd *v = b->vbds, *next;
    for (; v; v = next) {
        next = v->next;
        if (v->finished)
            vbd_free(v);
    }
}

/* A device directory appeared or changed: track it if it is live. */
static void sync_device(struct backend *b, const char *kind, xen_domid_t fe, unsigned devid)
{
    struct vbd *v = backend_find_vbd(b, kind, fe, devid);
    if (v) {
        vbd_changed(v);
        return;
    }
    char dir[256];
    long long st, on;
    snprintf(dir, sizeof(dir), "%s/%s/%s/%u/%u", b->home, XSK_BACKEND_DIR, kind, fe, devid);
    if (!kind_enabled(b, kind)) {
        backend_admit_unserved(b, kind, fe, devid, dir);
        return;
    }
    if (!backend_admit(b, kind, fe, devid, dir))
        return;                 /* gone, not ours, or its frontend is not there */
    if (xs_read_int(b, dir, XSK_STATE, &st))
        return;                 /* not (yet) a device */
    if (xs_read_int(b, dir, XSK_ONLINE, &on) || on != 1) {
        if (st == 6 || st == 1 || st == 2 || st == 0)
            return;             /* offline and finished: nothing for us */
    }
    if (vbd_new(b, kind, fe, devid, &v) == 0)
        vbd_changed(v);
}

/* List a directory; *names one malloc'd block. */
static int list_dir(struct backend *b, const char *path, char ***names, unsigned *n)
{
    return b->ops->xs_directory(b->xs, XEN_XS_NO_TX, path, names, n);
}

static void scan_frontend_domain(struct backend *b, const char *kind, xen_domid_t fe)
{
    char dir[256];
    char **ids = NULL;
    unsigned n = 0;
    snprintf(dir, sizeof(dir), "%s/%s/%s/%u", b->home, XSK_BACKEND_DIR, kind, fe);
    if (list_dir(b, dir, &ids, &n) == 0) {
        for (unsigned i = 0; i < n; i++) {
            unsigned long devid;
            if (parse_id(ids[i], strlen(ids[i]), UINT32_MAX, &devid))
                sync_device(b, kind, fe, (unsigned)devid);
        }
        free(ids);
    }
    backend_admit_prune(b, kind, (int)fe);
    /* devices we know of that may have gone */
    for (struct vbd *v = b->vbds; v; v = v->next)
        if (v->fe_domid == fe && !strcmp(v->kind, kind))
            vbd_changed(v);
}

static void scan_kind(struct backend *b, const char *kind)
{
    char dir[256];
    char **fes = NULL;
    unsigned n = 0;
    snprintf(dir, sizeof(dir), "%s/%s/%s", b->home, XSK_BACKEND_DIR, kind);
    if (list_dir(b, dir, &fes, &n) == 0) {
        for (unsigned i = 0; i < n; i++) {
            unsigned long fe;
            if (parse_id(fes[i], strlen(fes[i]), 65535, &fe))
                scan_frontend_domain(b, kind, (xen_domid_t)fe);
        }
        free(fes);
    }
    backend_admit_prune(b, kind, -1);
    for (struct vbd *v = b->vbds; v; v = v->next)
        if (!strcmp(v->kind, kind))
            vbd_changed(v);
}

/* A watch event under <home>/backend/<kind>. */
static void top_event(struct backend *b, const char *kind, const char *path)
{
    char base[256];
    int bl = snprintf(base, sizeof(base), "%s/%s/%s", b->home, XSK_BACKEND_DIR, kind);
    if (strncmp(path, base, (size_t)bl) || (path[bl] && path[bl] != '/'))
        return;
    const char *rest = path + bl;
    if (!*rest || !rest[1]) {
        scan_kind(b, kind);
        return;
    }
    rest++;
    const char *slash = strchr(rest, '/');
    unsigned long fe, devid;
    if (!parse_id(rest, slash ? (size_t)(slash - rest) : strlen(rest), 65535, &fe))
        return;
    if (!slash || !slash[1]) {
        scan_frontend_domain(b, kind, (xen_domid_t)fe);
        return;
    }
    const char *d = slash + 1;
    const char *slash2 = strchr(d, '/');
    if (!parse_id(d, slash2 ? (size_t)(slash2 - d) : strlen(d), UINT32_MAX, &devid))
        return;
    struct vbd *v = backend_find_vbd(b, kind, (xen_domid_t)fe, (unsigned)devid);
    /* For a known device only the directory itself matters here (removal);
     * its keys have their own watches. */
    if (v && slash2 && slash2[1])
        return;
    sync_device(b, kind, (xen_domid_t)fe, (unsigned)devid);
}

static void watch_event(struct backend *b, const char *path, const char *token)
{
    if (!strncmp(token, TOP_TOKEN_PREFIX, strlen(TOP_TOKEN_PREFIX))) {
        LOG_DBG(LOG_CAT_XENSTORE, NULL, LOG_NO_QUEUE, "watch %s [%s]", path, token);
        const char *kind = token + strlen(TOP_TOKEN_PREFIX);
        for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
            if (!strcmp(kind, kinds[i]) && kind_watched(b, kinds[i]))
                top_event(b, kinds[i], path);
    } else if (!strncmp(token, VBD_TOKEN_PREFIX, strlen(VBD_TOKEN_PREFIX))) {
        unsigned long serial;
        const char *s = token + strlen(VBD_TOKEN_PREFIX);
        if (parse_id(s, strlen(s), UINT32_MAX, &serial)) {
            struct vbd *v = find_serial(b, (unsigned)serial);
            LOG_DBG(LOG_CAT_XENSTORE, v ? &v->log_id : NULL, LOG_NO_QUEUE, "watch %s [%s]%s",
                    path, token, v ? "" : ": no such device (stale token)");
            if (v)
                vbd_changed(v);     /* stale tokens of freed devices are ignored */
        }
    }
    reap(b);
}

static int resolve_domid(struct backend *b)
{
    const struct xbd_config *c = b->cfg;
    if (c->domid >= 0) {
        b->self = (xen_domid_t)c->domid;
        return 0;
    }
    int sd = xbd_config_sim_domid(c);
    if (sd >= 0) {
        b->self = (xen_domid_t)sd;
        return 0;
    }
    char *v = NULL;
    int rc = b->ops->xs_read(b->xs, XEN_XS_NO_TX, XSK_SELF_DOMID, &v, NULL);
    if (rc == 0) {
        unsigned long d;
        bool ok = parse_id(v, strlen(v), 32767, &d);
        free(v);
        if (ok) {
            b->self = (xen_domid_t)d;
            return 0;
        }
        log_err("xenstore `domid` is not a domid; use --domid");
        return -EINVAL;
    }
    if (rc == -EACCES) {
        /* Only an unprivileged domain is refused its own node: we are not
         * dom0, and guessing would watch the wrong backend path. */
        log_err("cannot read xenstore `domid` (%s): not dom0; use --domid", strerror(-rc));
        return rc;
    }
    log_notice("cannot read xenstore `domid` (%s): assuming dom0", strerror(-rc));
    b->self = 0;
    return 0;
}

void backend_sigset(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1);
    sigaddset(set, SIGUSR2);
    sigaddset(set, SIGCHLD);        /* an isolation worker died (worker.c) */
}

int backend_create(const struct xbd_config *cfg, struct backend **out)
{
    struct backend *b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->cfg = cfg;
    b->sig_fd = -1;
    for (unsigned i = 0; i < OWNER_MAX_KINDS; i++)
        b->lock_fd[i] = -1;
    b->base_log_level = log_get_level();
    const char *impl = xbd_config_is_sim(cfg) ? "sim" : "libxen";
    int rc;
    /* Owner first: a daemon that loses touches neither xenstore nor the
     * control socket of the one that serves the kind. */
    const char *mine[OWNER_MAX_KINDS];
    for (size_t i = 0; i < OWNER_MAX_KINDS; i++)
        mine[i] = kind_enabled(b, kinds[i]) ? kinds[i] : NULL;
    rc = owner_acquire(b, mine, OWNER_MAX_KINDS);
    if (rc)
        goto fail;
    b->ops = xen_ops_find(impl);
    if (!b->ops) {
        log_err("no Xen implementation '%s' in this build", impl);
        rc = -ENOENT;
        goto fail;
    }
    const char *arg = xbd_config_sim_arg(cfg);
    rc = b->ops->host_open(arg, &b->host);
    if (rc) {
        log_err("cannot open the %s Xen host%s%s: %s", impl, arg ? " " : "", arg ? arg : "",
                strerror(-rc));
        goto fail;
    }
    rc = b->ops->xs_open(b->host, &b->xs);
    if (rc) {
        log_err("cannot connect to xenstore: %s", strerror(-rc));
        goto fail;
    }
    rc = resolve_domid(b);
    if (rc)
        goto fail;
    snprintf(b->home, sizeof(b->home), XSK_DOMAIN_FMT, b->self);
    b->wait_hotplug = xbd_config_wait_hotplug(cfg);
    b->max_queues = xbd_config_max_queues(cfg);

    sigset_t set;
    backend_sigset(&set);
    b->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (b->sig_fd < 0) {
        rc = -errno;
        log_err("signalfd: %s", strerror(-rc));
        goto fail;
    }
    const char *cp = cfg->control_path ? cfg->control_path : XBD_DEFAULT_CONTROL;
    if (*cp) {
        rc = control_open(b, cp, &b->ctl);
        if (rc) {
            log_err("control socket %s: %s", cp, control_strerror(rc));
            goto fail;
        }
    }
    /* Metrics are not worth a disk: a listener that cannot start (port in
     * use, address not allowed) is one error line, the disks are served. */
    if (cfg->metrics_listen && metrics_http_open(b, cfg->metrics_listen, &b->mhttp) < 0) {
        b->mhttp = NULL;
        log_err("metrics listener %s not started; serving the disks without it "
                "(xen-blkbackctl metrics still answers)", cfg->metrics_listen);
    }
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
        if (!kind_watched(b, kinds[i]))
            continue;
        char path[256], token[32];
        bool served = kind_enabled(b, kinds[i]);
        snprintf(path, sizeof(path), "%s/%s/%s", b->home, XSK_BACKEND_DIR, kinds[i]);
        snprintf(token, sizeof(token), TOP_TOKEN_PREFIX "%s", kinds[i]);
        rc = b->ops->xs_watch(b->xs, path, token);
        if (rc && served) {
            log_err("cannot watch %s: %s", path, strerror(-rc));
            goto fail;
        }
        if (rc)                 /* only for the "not served" lines: not worth failing */
            log_notice("cannot watch %s: %s", path, strerror(-rc));
        else if (served)
            log_info("watching %s", path);
        else
            log_info("%s is not served (--backend-types): watched to log its devices as ignored", path);
        rc = 0;
    }
    log_notice("xen-blkbackd " XBD_VERSION " up: xen %s, domid %u, hotplug gate %s, "
               "max-ring-page-order %u, max-queues %u, max-indirect-segments %u, persistent %s",
               impl, b->self, b->wait_hotplug ? "on" : "off", cfg->max_ring_page_order,
               b->max_queues, cfg->max_indirect_segs, cfg->persistent ? "yes" : "no");
    notify_init(b);
    *out = b;
    return 0;
fail:
    backend_destroy(b);
    return rc;
}

static void handle_signals(struct backend *b)
{
    struct signalfd_siginfo si;
    while (read(b->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            int rc = log_reopen();
            log_notice("SIGHUP: log reopened%s%s", rc ? ": " : "", rc ? strerror(-rc) : "");
        } else if (si.ssi_signo == SIGCHLD) {
            worker_reap(b);
        } else if (si.ssi_signo == SIGUSR1) {
            confine_test_violation(CONFINE_ROLE_CONTROL);   /* test build only */
            control_log_devices(b);
        } else if (si.ssi_signo == SIGUSR2) {
            /* debug <-> the configured level (info if that is debug) */
            int quiet = b->base_log_level < LOG_DEBUG ? b->base_log_level : LOG_INFO;
            int lvl = log_get_level() == LOG_DEBUG ? quiet : LOG_DEBUG;
            log_set_level(LOG_NOTICE > lvl ? LOG_NOTICE : lvl);     /* say it, then apply */
            log_notice("SIGUSR2: log level %s", lvl == LOG_DEBUG ? "debug" : "back to the quiet one");
            log_set_level(lvl);
        } else {
            log_notice("%s: shutting down", strsignal((int)si.ssi_signo));
            notify_stopping(b);
            b->stopping = true;
        }
    }
}

int backend_run(struct backend *b)
{
    const struct xen_ops *ops = b->ops;
    int xfd = ops->xs_fd(b->xs);
    int rc = 0;
    /* The first watch events (each watch fires once) start the scan; scan
     * anyway in case the server does not send them. */
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
        if (kind_watched(b, kinds[i]))
            scan_kind(b, kinds[i]);
    reap(b);
    notify_ready(b);            /* watches armed, existing devices reattached */

    while (!b->stopping) {
        struct pollfd pfd[MAX_POLL];
        int cfds[MAX_POLL];
        unsigned n = 0, nc = 0;
        pfd[n++] = (struct pollfd){ .fd = xfd, .events = POLLIN };
        pfd[n++] = (struct pollfd){ .fd = b->sig_fd, .events = POLLIN };
        if (b->ctl) {
            nc = control_fds(b->ctl, cfds, MAX_POLL - n);
            for (unsigned i = 0; i < nc; i++)
                pfd[n++] = (struct pollfd){ .fd = cfds[i], .events = POLLIN };
        }
        if (b->mhttp)
            pfd[n++] = (struct pollfd){ .fd = metrics_http_fd(b->mhttp), .events = POLLIN };
        int t_wd = notify_tick(b), t_vbd = vbd_poll_timeout(b);
        int timeout = t_wd < 0 ? t_vbd : t_vbd < 0 ? t_wd : (t_wd < t_vbd ? t_wd : t_vbd);
        int t_http = b->mhttp ? metrics_http_timeout(b->mhttp) : -1;
        if (t_http >= 0 && (timeout < 0 || t_http < timeout))
            timeout = t_http;
        if (poll(pfd, n, timeout) < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            log_err("poll: %s", strerror(-rc));
            break;
        }
        if (pfd[1].revents)
            handle_signals(b);
        if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)) {
            log_err("xenstore connection lost");
            rc = -EPIPE;
            break;
        }
        for (unsigned ev = 0; ev < WATCH_BATCH; ev++) {
            char *path = NULL, *token = NULL;
            int r = ops->xs_read_watch(b->xs, &path, &token);
            if (r == -EAGAIN)
                break;
            if (r) {
                log_err("reading watch events: %s", strerror(-r));
                rc = r;
                b->stopping = true;
                break;
            }
            watch_event(b, path, token);
            free(path);
            free(token);
        }
        for (unsigned i = 0; i < nc; i++)
            if (pfd[2 + i].revents)
                control_handle(b->ctl, cfds[i]);
        if (b->mhttp)
            metrics_http_run(b->mhttp);     /* its fd, or a connection timeout */
        vbd_run_timers(b);
        reap(b);
        worker_sync_log(b);
    }

    bool close = b->cfg->on_exit == XBD_ON_EXIT_CLOSE;
    unsigned count = 0;
    for (struct vbd *v = b->vbds; v; v = v->next, count++)
        vbd_shutdown(v, close);
    log_notice("%u device(s) %s; every grant and event channel released", count,
               close ? "closed" : "left as they are for a restarted daemon");
    return rc;
}

void backend_destroy(struct backend *b)
{
    if (!b)
        return;
    while (b->vbds)
        vbd_free(b->vbds);
    backend_admit_free(b);
    if (b->ctl)
        control_close(b->ctl);
    metrics_http_close(b->mhttp);
    if (b->sig_fd >= 0)
        close(b->sig_fd);
    if (b->xs)
        b->ops->xs_close(b->xs);
    if (b->host)
        b->ops->host_close(b->host);
    owner_release(b);
    free(b);
}
