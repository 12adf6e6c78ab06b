/*
 * xen_ops_libxen.c - the Xen seam on a real Xen host: grant tables through
 * libxengnttab (/dev/xen/gntdev), event channels through libxenevtchn
 * (/dev/xen/evtchn), xenstore through libxenstore (xs_libxs.c).
 * docs/protocol.md §5 (libraries) lists the calls and their rules.
 */
#include "xs_libxs.h"
#include "util.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xentoollog.h>

/* gntdev caps one map at 65536 pages (torvalds/linux:drivers/xen/gntdev.c@v6.1,
 * module parameter `limit`). */
#define LIBXEN_MAX_GRANTS 65536u

struct xen_host {
    int unused;
};

struct xen_gnt {
    xengnttab_handle *h;
};

struct xen_evtchn {
    xenevtchn_handle *h;
    int fd;
};

static int neg_errno(void)
{
    return errno > 0 ? -errno : -EIO;
}

/*
 * The logger handed to xengnttab_open and xenevtchn_open.  Given none, each
 * open makes a stdio logger on stderr, whose isatty() is an ioctl TCGETS on
 * fd 2: under --seccomp the control list forbids it, and the daemon died on
 * the first open after confinement (a storage driver domain's first vbd;
 * xen-project/xen:tools/libs/evtchn/core.c@RELEASE-4.17.0 xenevtchn_open, the
 * same in tools/libs/gnttab/gnttab_core.c xengnttab_open, and
 * tools/libs/toollog/xtl_logger_stdio.c xtl_createlogger_stdiostream at the
 * same tag).  Their messages go to our log instead: notices and worse,
 * rate-limited, from any thread.
 */
static pthread_mutex_t lx_log_mu = PTHREAD_MUTEX_INITIALIZER;
static struct log_ratelimit lx_log_rl = LOG_RATELIMIT_INIT;

static void lx_log_vmessage(xentoollog_logger *lg, xentoollog_level level, int errnoval,
                            const char *context, const char *fmt, va_list ap)
{
    (void)lg;
    if (level < XTL_NOTICE)
        return;
    int prio = level >= XTL_ERROR ? LOG_ERR : level == XTL_WARN ? LOG_WARNING : LOG_NOTICE;
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    pthread_mutex_lock(&lx_log_mu);
    log_rl(&lx_log_rl, prio, "%s: %s%s%s", context ? context : "libxen", msg,
           errnoval >= 0 ? ": " : "", errnoval >= 0 ? strerror(errnoval) : "");
    pthread_mutex_unlock(&lx_log_mu);
}

static void lx_log_progress(xentoollog_logger *lg, const char *context, const char *doing_what,
                            int percent, unsigned long done, unsigned long total)
{
    (void)lg; (void)context; (void)doing_what; (void)percent; (void)done; (void)total;
}

static void lx_log_destroy(xentoollog_logger *lg)
{
    (void)lg;                   /* static: the libraries free only their own */
}

static xentoollog_logger lx_logger = {
    .vmessage = lx_log_vmessage, .progress = lx_log_progress, .destroy = lx_log_destroy,
};

/* arg: NULL or "" probes for the Xen devices (-ENOENT without Xen, so the
 * daemon fails early with a clear message); "noprobe" skips the probe (tests,
 * xenstore-only use). */
static int libxen_host_open(const char *arg, struct xen_host **out)
{
    if (!arg || strcmp(arg, "noprobe") != 0) {
        static const char *const devs[] = { "/dev/xen/evtchn", "/dev/xen/gntdev" };
        for (unsigned i = 0; i < ARRAY_SIZE(devs); i++) {
            if (access(devs[i], R_OK | W_OK) < 0) {
                int rc = -errno;
                log_err("xen: %s: %s (not running on Xen, or xen-evtchn/xen-gntdev not loaded)",
                        devs[i], strerror(-rc));
                return rc;
            }
        }
    }
    struct xen_host *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    *out = h;
    return 0;
}

static void libxen_host_close(struct xen_host *h)
{
    free(h);
}

static int libxen_gnt_open(struct xen_host *h, struct xen_gnt **out)
{
    (void)h;
    struct xen_gnt *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    errno = 0;
    g->h = xengnttab_open(&lx_logger, 0);
    if (!g->h) {
        int rc = neg_errno();
        free(g);
        return rc;
    }
    /* A no-op on pvops kernels; call it first anyway (docs/protocol.md §5). */
    xengnttab_set_max_grants(g->h, LIBXEN_MAX_GRANTS);
    *out = g;
    return 0;
}

static void libxen_gnt_close(struct xen_gnt *g)
{
    if (!g)
        return;
    xengnttab_close(g->h);
    free(g);
}

static int libxen_gnt_map(struct xen_gnt *g, xen_domid_t domid, uint32_t count,
                          const uint32_t *refs, int prot, void **addr)
{
    if (count == 0 || count > LIBXEN_MAX_GRANTS)
        return -EINVAL;
    errno = 0;
    void *p = xengnttab_map_domain_grant_refs(g->h, count, domid, (uint32_t *)refs, prot);
    if (!p)
        return neg_errno();
    *addr = p;
    return 0;
}

static int libxen_gnt_unmap(struct xen_gnt *g, void *addr, uint32_t count)
{
    errno = 0;
    return xengnttab_unmap(g->h, addr, count) == 0 ? 0 : neg_errno();
}

static int libxen_gnt_copy(struct xen_gnt *g, uint32_t count, xengnttab_grant_copy_segment_t *segs)
{
    errno = 0;
    return xengnttab_grant_copy(g->h, count, segs) == 0 ? 0 : neg_errno();
}

static int libxen_evtchn_open(struct xen_host *h, struct xen_evtchn **out)
{
    (void)h;
    struct xen_evtchn *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    errno = 0;
    e->h = xenevtchn_open(&lx_logger, 0);
    if (!e->h) {
        int rc = neg_errno();
        free(e);
        return rc;
    }
    e->fd = xenevtchn_fd(e->h);
    int fl = fcntl(e->fd, F_GETFL);
    if (fl < 0 || fcntl(e->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int rc = neg_errno();
        xenevtchn_close(e->h);
        free(e);
        return rc;
    }
    *out = e;
    return 0;
}

/* Closing the device unbinds every port the handle holds (Linux evtchn.c). */
static void libxen_evtchn_close(struct xen_evtchn *e)
{
    if (!e)
        return;
    xenevtchn_close(e->h);
    free(e);
}

static int libxen_evtchn_fd(struct xen_evtchn *e)
{
    return e->fd;
}

static int libxen_evtchn_bind(struct xen_evtchn *e, xen_domid_t domid, xen_port_t remote,
                              xen_port_t *local)
{
    errno = 0;
    xenevtchn_port_or_error_t p = xenevtchn_bind_interdomain(e->h, domid, remote);
    if (p < 0)
        return neg_errno();
    *local = (xen_port_t)p;
    return 0;
}

static int libxen_evtchn_unbind(struct xen_evtchn *e, xen_port_t local)
{
    errno = 0;
    return xenevtchn_unbind(e->h, local) == 0 ? 0 : neg_errno();
}

static int libxen_evtchn_notify(struct xen_evtchn *e, xen_port_t local)
{
    errno = 0;
    return xenevtchn_notify(e->h, local) == 0 ? 0 : neg_errno();
}

static int libxen_evtchn_pending(struct xen_evtchn *e, xen_port_t *port)
{
    errno = 0;
    xenevtchn_port_or_error_t p = xenevtchn_pending(e->h);
    if (p < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : neg_errno();
    *port = (xen_port_t)p;
    return 0;
}

/* Linux's evtchn device: a read returns the fired ports (evtchn_port_t each),
 * a write of ports unmasks them (torvalds/linux:drivers/xen/evtchn.c@v6.1
 * evtchn_read, evtchn_write), which is what xenevtchn_pending and
 * xenevtchn_unmask do (xen-project/xen:tools/libs/evtchn/linux.c@RELEASE-4.17.0). */
static int libxen_evtchn_pending_read(struct xen_evtchn *e, const void *buf, size_t n,
                                      xen_port_t *port)
{
    (void)e;
    if (n < sizeof(xen_port_t) || n % sizeof(xen_port_t))
        return -EIO;
    memcpy(port, buf, sizeof(*port));
    return 0;
}

static int libxen_evtchn_unmask_write(struct xen_evtchn *e, xen_port_t local, void *buf, size_t *len)
{
    (void)e;
    if (*len < sizeof(local))
        return -EINVAL;
    memcpy(buf, &local, sizeof(local));
    *len = sizeof(local);
    return 0;
}

static int libxen_evtchn_unmask(struct xen_evtchn *e, xen_port_t local)
{
    errno = 0;
    return xenevtchn_unmask(e->h, local) == 0 ? 0 : neg_errno();
}

XEN_OPS_DEFINE(xen_ops_libxen, "libxen", libxen, XEN_LXS_OPS);
