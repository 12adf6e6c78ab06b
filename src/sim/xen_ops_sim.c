/*
 * xen_ops_sim.c - the Xen seam on the simulated host (sim.h): grant tables
 * and event channels in a host dir's shared memory, xenstore through the
 * real libxenstore (XENSTORED_PATH names the test xenstored).
 *
 * host_open(arg): "DIR[,domid=N][,unmap_delay_us=N]": the host dir (created if
 * missing), the domain id this process plays (the backend; default 0), and an
 * optional delay added to every grant unmap call, to reproduce what a slow
 * hypervisor (Xen under QEMU software emulation) does to teardown timing.
 */
#include "sim_priv.h"
#include "util.h"
#include "../xen/xs_libxs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct xen_host {
    struct sim_host *sh;
    xen_domid_t self;
    unsigned unmap_delay_us;
};

/* A grant handle: the sim handle plus the host's unmap delay. */
struct xen_gnt {
    struct sim_bgnt *b;
    unsigned unmap_delay_us;
};

/* xen_evtchn is the sim handle itself. */
#define GNT(g)  ((g)->b)
#define EVT(e)  ((struct sim_evtchn *)(void *)(e))

/* One "name=N" option (N < limit) into *v; 0, or -EINVAL. */
static int parse_opt(const char *opt, const char *name, unsigned long limit, unsigned long *v)
{
    size_t n = strlen(name);
    uint64_t x;
    if (strncmp(opt, name, n) != 0 || opt[n] != '=' || xbd_parse_u64(opt + n + 1, 10, 0, limit - 1, &x))
        return -EINVAL;
    *v = (unsigned long)x;
    return 0;
}

static int sim_ops_host_open(const char *arg, struct xen_host **out)
{
    if (!arg || !*arg)
        return -EINVAL;
    char *dir = strdup(arg);
    if (!dir)
        return -ENOMEM;
    xen_domid_t self = 0;
    unsigned long delay = 0, v;
    char *opt = strchr(dir, ',');
    if (opt)
        *opt++ = '\0';
    while (opt) {
        char *next = strchr(opt, ',');
        if (next)
            *next++ = '\0';
        if (parse_opt(opt, "domid", 0x7ff0, &v) == 0)
            self = (xen_domid_t)v;
        else if (parse_opt(opt, "unmap_delay_us", 1000000, &v) == 0)
            delay = v;
        else {
            free(dir);
            return -EINVAL;
        }
        opt = next;
    }
    struct xen_host *h = calloc(1, sizeof(*h));
    if (!h) {
        free(dir);
        return -ENOMEM;
    }
    int rc = sim_host_open(dir, &h->sh);
    free(dir);
    if (rc < 0) {
        free(h);
        return rc;
    }
    h->self = self;
    h->unmap_delay_us = (unsigned)delay;
    *out = h;
    return 0;
}

static void sim_ops_host_close(struct xen_host *h)
{
    if (!h)
        return;
    sim_host_close(h->sh);
    free(h);
}

static int sim_ops_gnt_open(struct xen_host *h, struct xen_gnt **out)
{
    struct xen_gnt *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    int rc = sim_bgnt_open(h->sh, h->self, &g->b);
    if (rc < 0) {
        free(g);
        return rc;
    }
    g->unmap_delay_us = h->unmap_delay_us;
    *out = g;
    return 0;
}

static void sim_ops_gnt_close(struct xen_gnt *g)
{
    if (!g)
        return;
    sim_bgnt_close(GNT(g));
    free(g);
}

static int sim_ops_gnt_map(struct xen_gnt *g, xen_domid_t domid, uint32_t count,
                           const uint32_t *refs, int prot, void **addr)
{
    return sim_bgnt_map(GNT(g), domid, count, refs, prot, addr);
}

static int sim_ops_gnt_unmap(struct xen_gnt *g, void *addr, uint32_t count)
{
    if (g->unmap_delay_us)
        usleep(g->unmap_delay_us);
    return sim_bgnt_unmap(GNT(g), addr, count);
}

static int sim_ops_gnt_copy(struct xen_gnt *g, uint32_t count, xengnttab_grant_copy_segment_t *segs)
{
    return sim_bgnt_copy(GNT(g), count, segs);
}

static int sim_ops_evtchn_open(struct xen_host *h, struct xen_evtchn **out)
{
    struct sim_evtchn *e;
    int rc = sim_evtchn_open(h->sh, h->self, &e);
    if (rc == 0)
        *out = (struct xen_evtchn *)(void *)e;
    return rc;
}

static void sim_ops_evtchn_close(struct xen_evtchn *e)
{
    sim_evtchn_close(EVT(e));
}

static int sim_ops_evtchn_fd(struct xen_evtchn *e)
{
    return sim_evtchn_fd(EVT(e));
}

static int sim_ops_evtchn_bind(struct xen_evtchn *e, xen_domid_t domid, xen_port_t remote,
                               xen_port_t *local)
{
    return sim_evtchn_bind_interdomain(EVT(e), domid, remote, local);
}

static int sim_ops_evtchn_unbind(struct xen_evtchn *e, xen_port_t local)
{
    return sim_evtchn_unbind(EVT(e), local);
}

static int sim_ops_evtchn_notify(struct xen_evtchn *e, xen_port_t local)
{
    return sim_evtchn_notify(EVT(e), local);
}

static int sim_ops_evtchn_pending(struct xen_evtchn *e, xen_port_t *port)
{
    return sim_evtchn_pending(EVT(e), port);
}

static int sim_ops_evtchn_pending_read(struct xen_evtchn *e, const void *buf, size_t n,
                                       xen_port_t *port)
{
    return sim_evtchn_pending_read(EVT(e), buf, n, port);
}

/* The sim's unmask is a CAS in shared memory (and at most one write that
 * delivers an event that came while masked): done here, nothing to write. */
static int sim_ops_evtchn_unmask_write(struct xen_evtchn *e, xen_port_t local, void *buf, size_t *len)
{
    (void)buf;
    int rc = sim_evtchn_unmask(EVT(e), local);
    if (rc == 0)
        *len = 0;
    return rc;
}

static int sim_ops_evtchn_unmask(struct xen_evtchn *e, xen_port_t local)
{
    return sim_evtchn_unmask(EVT(e), local);
}

XEN_OPS_DEFINE(xen_ops_sim, "sim", sim_ops, XEN_LXS_OPS);
