/*
 * sim_evtchn.c - event channels of the simulated host, across processes.
 *
 * Each domain has a port table in shared memory (dom<N>.evtchn); each handle
 * owns a FIFO evq/<id> whose fd is the handle's pollable fd.  Control
 * operations (alloc_unbound, bind_interdomain, unbind, close) run under the
 * host lock; notify, pending and unmask are lock-free (one CAS on the port's
 * PENDING/MASKED word plus at most one write or read).  Protocol in
 * sim_priv.h.  Xen semantics kept (xen/common/event_channel.c):
 *  - bind_interdomain needs the remote port ECS_UNBOUND and allocated for our
 *    domain, else -EINVAL; it leaves an event pending on the new local port
 *    ("we may have lost notifications on the remote unbound port");
 *  - closing an interdomain port puts the remote end back to ECS_UNBOUND for
 *    our domain, so it can be bound again;
 *  - notify on an unbound port is silently dropped;
 *  - a port that fired stays masked until unmask; a notification while
 *    masked is delivered at unmask.
 * Linux evtchn device semantics: ports not bound by this handle give
 * -ENOTCONN on notify/unbind/unmask; ports out of range -EINVAL; when the
 * process that holds a handle dies, its ports are closed as above
 * (drivers/xen/evtchn.c evtchn_release), here by whoever next finds it dead
 * (sim_owner.c; when, in sim_priv.h).
 */
#include "sim_priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct sim_lport {                      /* a port this handle holds */
    int peer_fd;                        /* FIFO of the remote port's owner, -1 none */
    uint32_t peer_owner;                /* handle id peer_fd was opened for */
    bool rtbl_ok;
    xen_domid_t rtbl_dom;
    struct sim_evt_port *rtbl;          /* remote domain's table (a reference held) */
};

struct sim_evtchn {
    struct sim_host *h;
    xen_domid_t self;
    uint32_t id;
    uint32_t slot;                      /* owner slot in host.ctl */
    int fd;
    char fifo[32];                      /* "evq/<id>" relative to the host dir */
    struct sim_evt_port *tbl;           /* our domain's ports (a reference held) */
    struct sim_lport *lp[SIM_EVT_NR_PORTS];
};

static void lport_free(struct sim_host *h, struct sim_lport *lp)
{
    if (!lp)
        return;
    if (lp->peer_fd >= 0)
        close(lp->peer_fd);
    if (lp->rtbl_ok)
        sim_evt_table_put(h, lp->rtbl);
    free(lp);
}

static struct sim_lport *lport_new(void)
{
    struct sim_lport *lp = calloc(1, sizeof(*lp));
    if (lp)
        lp->peer_fd = -1;
    return lp;
}

/* Free port `port` of `domid`'s table if `owner` (0: any) holds it; the
 * remote end of an interdomain channel goes back to unbound.  Host lock held. */
static void port_close_locked(struct sim_host *h, xen_domid_t domid, struct sim_evt_port *tbl,
                              xen_port_t port, uint32_t owner)
{
    struct sim_evt_port *e = &tbl[port];
    uint32_t st = SIM_LOAD(&e->state);
    if (st == SIM_ECS_FREE || (owner && SIM_RELAXED(&e->owner) != owner))
        return;
    if (st == SIM_ECS_INTERDOMAIN) {
        xen_domid_t rdom = SIM_RELAXED(&e->remote_dom);
        xen_port_t rport = SIM_RELAXED(&e->remote_port);
        struct sim_evt_port *rtbl;
        if (rport > 0 && rport < SIM_EVT_NR_PORTS && sim_evt_table(h, rdom, false, &rtbl) == 0) {
            struct sim_evt_port *re = &rtbl[rport];
            if (SIM_LOAD(&re->state) == SIM_ECS_INTERDOMAIN &&
                SIM_RELAXED(&re->remote_dom) == domid && SIM_RELAXED(&re->remote_port) == port) {
                SIM_STORE(&re->remote_port, 0);
                SIM_STORE(&re->state, SIM_ECS_UNBOUND);   /* remote_dom stays: us */
            }
            sim_evt_table_put(h, rtbl);
        }
    }
    SIM_STORE(&e->state, SIM_ECS_FREE);
    SIM_STORE(&e->owner, 0);
    SIM_STORE(&e->owner_slot, 0);
    SIM_STORE(&e->remote_dom, 0);
    SIM_STORE(&e->remote_port, 0);
    SIM_STORE(&e->pm, 0);
}

void sim_evt_reset_dom_locked(struct sim_host *h, xen_domid_t domid)
{
    struct sim_evt_port *tbl;
    if (sim_evt_table(h, domid, false, &tbl) < 0)
        return;
    for (xen_port_t p = 1; p < SIM_EVT_NR_PORTS; p++)
        port_close_locked(h, domid, tbl, p, 0);
    sim_evt_table_put(h, tbl);
}

void sim_evt_reclaim_locked(struct sim_host *h, uint32_t slot, uint32_t handle_id)
{
    DIR *dir = sim_host_opendir(h);
    if (!dir)
        return;
    struct dirent *de;
    while ((de = readdir(dir))) {
        unsigned domid;
        char tail;
        if (sscanf(de->d_name, "dom%u.evtchn%c", &domid, &tail) != 1 || domid > 0xffff)
            continue;
        struct sim_evt_port *tbl;
        if (sim_evt_table(h, (xen_domid_t)domid, false, &tbl) < 0)
            continue;
        for (xen_port_t p = 1; p < SIM_EVT_NR_PORTS; p++)
            if (SIM_RELAXED(&tbl[p].owner_slot) == slot)
                port_close_locked(h, (xen_domid_t)domid, tbl, p, handle_id);
        sim_evt_table_put(h, tbl);
    }
    closedir(dir);
    char name[32];
    snprintf(name, sizeof(name), "evq/%u", handle_id);
    unlinkat(h->dirfd, name, 0);
}

/* A free port of our table, claimed for this handle (state set by caller).
 * A full table is swept for ports of dead processes once. */
static int port_alloc_locked(struct sim_evtchn *e, xen_port_t *port)
{
    for (int pass = 0; pass < 2; pass++) {
        for (xen_port_t p = 1; p < SIM_EVT_NR_PORTS; p++) {
            if (SIM_LOAD(&e->tbl[p].state) == SIM_ECS_FREE) {
                *port = p;
                return 0;
            }
        }
        if (pass == 0 && sim_reclaim_dead_locked(e->h) == 0)
            break;
    }
    return -ENOSPC;
}

int sim_evtchn_open(struct sim_host *h, xen_domid_t self, struct sim_evtchn **out)
{
    struct sim_evtchn *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->h = h;
    e->self = self;
    e->fd = -1;
    e->id = __atomic_fetch_add(&h->ctl->next_handle_id, 1, __ATOMIC_RELAXED);
    int rc = sim_host_lock(h);
    if (rc < 0)
        goto fail;
    rc = sim_evt_table(h, self, true, &e->tbl);
    if (rc == 0) {
        rc = sim_owner_claim_locked(h, SIM_OWN_EVTCHN, e->id, &e->slot);
        if (rc < 0) {
            sim_evt_table_put(h, e->tbl);
            e->tbl = NULL;
        }
    }
    sim_host_unlock(h);
    if (rc < 0)
        goto fail;
    snprintf(e->fifo, sizeof(e->fifo), "evq/%u", e->id);
    unlinkat(h->dirfd, e->fifo, 0);     /* stale from an older host.ctl */
    if (mkfifoat(h->dirfd, e->fifo, 0600) < 0) {
        rc = -errno;
        goto fail_tbl;
    }
    e->fd = openat(h->dirfd, e->fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (e->fd < 0) {
        rc = -errno;
        unlinkat(h->dirfd, e->fifo, 0);
        goto fail_tbl;
    }
    *out = e;
    return 0;
fail_tbl:
    if (sim_host_lock(h) == 0) {
        sim_owner_release_locked(h, e->slot);
        sim_host_unlock(h);
    }
    sim_evt_table_put(h, e->tbl);
fail:
    free(e);
    return rc;
}

void sim_evtchn_close(struct sim_evtchn *e)
{
    if (!e)
        return;
    bool locked = sim_host_lock(e->h) == 0;
    for (xen_port_t p = 1; p < SIM_EVT_NR_PORTS; p++) {
        if (!e->lp[p])
            continue;
        if (locked)
            port_close_locked(e->h, e->self, e->tbl, p, e->id);
        lport_free(e->h, e->lp[p]);
        e->lp[p] = NULL;
    }
    if (locked) {
        sim_owner_release_locked(e->h, e->slot);
        sim_host_unlock(e->h);
    }
    sim_evt_table_put(e->h, e->tbl);
    close(e->fd);
    unlinkat(e->h->dirfd, e->fifo, 0);
    free(e);
}

int sim_evtchn_fd(struct sim_evtchn *e)
{
    return e->fd;
}

int sim_evtchn_alloc_unbound(struct sim_evtchn *e, xen_domid_t remote, xen_port_t *port)
{
    struct sim_lport *lp = lport_new();
    if (!lp)
        return -ENOMEM;
    int rc = sim_host_lock(e->h);
    if (rc < 0) {
        free(lp);
        return rc;
    }
    xen_port_t p;
    rc = port_alloc_locked(e, &p);
    if (rc == 0) {
        struct sim_evt_port *pe = &e->tbl[p];
        SIM_STORE(&pe->remote_dom, remote);
        SIM_STORE(&pe->remote_port, 0);
        SIM_STORE(&pe->owner, e->id);
        SIM_STORE(&pe->owner_slot, e->slot);
        SIM_STORE(&pe->pm, 0);
        SIM_STORE(&pe->state, SIM_ECS_UNBOUND);
    }
    sim_host_unlock(e->h);
    if (rc < 0) {
        free(lp);
        return rc;
    }
    e->lp[p] = lp;
    *port = p;
    return 0;
}

int sim_evtchn_bind_interdomain(struct sim_evtchn *e, xen_domid_t remote,
                                xen_port_t remote_port, xen_port_t *local)
{
    if (remote_port == 0 || remote_port >= SIM_EVT_NR_PORTS)
        return -EINVAL;
    struct sim_evt_port *rtbl;
    int rc = sim_evt_table(e->h, remote, false, &rtbl);
    if (rc < 0)
        return rc == -ENOENT ? -ESRCH : rc;     /* no such domain */
    struct sim_lport *lp = lport_new();
    if (!lp) {
        sim_evt_table_put(e->h, rtbl);
        return -ENOMEM;
    }
    rc = sim_host_lock(e->h);
    if (rc < 0) {
        free(lp);
        sim_evt_table_put(e->h, rtbl);
        return rc;
    }
    struct sim_evt_port *re = &rtbl[remote_port];
    xen_port_t p = 0;
    /* Bound to a process that died (its handle not yet reclaimed): reclaim,
     * as its exit would have closed the port on a real host. */
    if (SIM_LOAD(&re->state) == SIM_ECS_INTERDOMAIN && SIM_RELAXED(&re->remote_dom) == e->self)
        sim_reclaim_dead_locked(e->h);
    if (SIM_LOAD(&re->state) != SIM_ECS_UNBOUND || SIM_RELAXED(&re->remote_dom) != e->self)
        rc = -EINVAL;
    else
        rc = port_alloc_locked(e, &p);
    if (rc == 0) {
        struct sim_evt_port *pe = &e->tbl[p];
        SIM_STORE(&pe->remote_dom, remote);
        SIM_STORE(&pe->remote_port, remote_port);
        SIM_STORE(&pe->owner, e->id);
        SIM_STORE(&pe->owner_slot, e->slot);
        /* Xen sets the new local port pending: the event is delivered now. */
        SIM_STORE(&pe->pm, SIM_PM_PENDING | SIM_PM_MASKED | SIM_PM_QUEUED);
        SIM_STORE(&pe->state, SIM_ECS_INTERDOMAIN);
        SIM_STORE(&re->remote_port, p);
        SIM_STORE(&re->state, SIM_ECS_INTERDOMAIN);
    }
    sim_host_unlock(e->h);
    if (rc < 0) {
        free(lp);
        sim_evt_table_put(e->h, rtbl);
        return rc;
    }
    lp->rtbl_ok = true;                 /* the port keeps the reference */
    lp->rtbl_dom = remote;
    lp->rtbl = rtbl;
    e->lp[p] = lp;
    if (write(e->fd, &p, sizeof(p)) < 0) {
        /* FIFO full: the wake-up is lost, the port stays pending+masked. */
    }
    *local = p;
    return 0;
}

static int held(struct sim_evtchn *e, xen_port_t port, struct sim_lport **lp)
{
    if (port == 0 || port >= SIM_EVT_NR_PORTS)
        return -EINVAL;
    if (!e->lp[port])
        return -ENOTCONN;
    *lp = e->lp[port];
    return 0;
}

int sim_evtchn_unbind(struct sim_evtchn *e, xen_port_t local)
{
    struct sim_lport *lp;
    int rc = held(e, local, &lp);
    if (rc < 0)
        return rc;
    rc = sim_host_lock(e->h);
    if (rc < 0)
        return rc;
    port_close_locked(e->h, e->self, e->tbl, local, e->id);
    sim_host_unlock(e->h);
    e->lp[local] = NULL;
    lport_free(e->h, lp);
    return 0;
}

/* The fd to wake handle `owner` with (cached per port). */
static int peer_fd(struct sim_evtchn *e, struct sim_lport *lp, uint32_t owner)
{
    if (owner == e->id)
        return e->fd;
    if (lp->peer_fd >= 0 && lp->peer_owner == owner)
        return lp->peer_fd;
    if (lp->peer_fd >= 0)
        close(lp->peer_fd);
    char name[32];
    snprintf(name, sizeof(name), "evq/%u", owner);
    lp->peer_fd = openat(e->h->dirfd, name, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    lp->peer_owner = owner;
    return lp->peer_fd;
}

int sim_evtchn_notify(struct sim_evtchn *e, xen_port_t local)
{
    struct sim_lport *lp;
    int rc = held(e, local, &lp);
    if (rc < 0)
        return rc;
    struct sim_evt_port *me = &e->tbl[local];
    if (SIM_LOAD(&me->state) != SIM_ECS_INTERDOMAIN || SIM_RELAXED(&me->owner) != e->id)
        return 0;                               /* unbound: dropped, as Xen does */
    xen_domid_t rdom = SIM_RELAXED(&me->remote_dom);
    xen_port_t rport = SIM_RELAXED(&me->remote_port);
    if (rport == 0 || rport >= SIM_EVT_NR_PORTS)
        return 0;
    if (!lp->rtbl_ok || lp->rtbl_dom != rdom) {
        /* First notify of a port allocated unbound (or a new peer domain):
         * take a reference to the peer's table, kept until unbind/close. */
        struct sim_evt_port *rtbl;
        if (sim_evt_table(e->h, rdom, false, &rtbl) < 0)
            return 0;
        if (lp->rtbl_ok)
            sim_evt_table_put(e->h, lp->rtbl);
        lp->rtbl = rtbl;
        lp->rtbl_ok = true;
        lp->rtbl_dom = rdom;
    }
    struct sim_evt_port *re = &lp->rtbl[rport];
    if (SIM_LOAD(&re->state) != SIM_ECS_INTERDOMAIN || SIM_RELAXED(&re->remote_dom) != e->self ||
        SIM_RELAXED(&re->remote_port) != local)
        return 0;
    uint32_t pm = SIM_LOAD(&re->pm), n;
    do {
        if (pm & SIM_PM_PENDING)
            return 0;                           /* already pending: nothing to do */
        n = pm | SIM_PM_PENDING;
        if (!(pm & SIM_PM_MASKED))
            n |= SIM_PM_MASKED | SIM_PM_QUEUED; /* deliver now, masked */
    } while (!SIM_CAS(&re->pm, &pm, n));
    if (pm & SIM_PM_MASKED)
        return 0;                               /* delivered at unmask */
    int fd = peer_fd(e, lp, SIM_RELAXED(&re->owner));
    if (fd >= 0 && write(fd, &rport, sizeof(rport)) < 0) {
        /* Owner gone or FIFO full: nobody to wake (the port stays pending). */
    }
    return 0;
}

int sim_evtchn_pending_read(struct sim_evtchn *e, const void *buf, size_t n, xen_port_t *port)
{
    uint32_t p;
    if (n != sizeof(p))
        return -EIO;                            /* writes are 4 bytes and atomic */
    memcpy(&p, buf, sizeof(p));
    if (p == 0 || p >= SIM_EVT_NR_PORTS || !e->lp[p])
        return -EAGAIN;                         /* stale: port unbound since */
    __atomic_fetch_and(&e->tbl[p].pm, ~(SIM_PM_PENDING | SIM_PM_QUEUED), __ATOMIC_ACQ_REL);
    *port = p;
    return 0;
}

int sim_evtchn_pending(struct sim_evtchn *e, xen_port_t *port)
{
    for (;;) {
        uint32_t p;
        ssize_t n = read(e->fd, &p, sizeof(p));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? -EAGAIN : -errno;
        }
        int rc = sim_evtchn_pending_read(e, &p, (size_t)n, port);
        if (rc != -EAGAIN)
            return rc;                          /* a port, or malformed */
    }
}

int sim_evtchn_unmask(struct sim_evtchn *e, xen_port_t local)
{
    struct sim_lport *lp;
    int rc = held(e, local, &lp);
    if (rc < 0)
        return rc;
    uint32_t *pm = &e->tbl[local].pm;
    uint32_t v = SIM_LOAD(pm);
    for (;;) {
        if (!(v & SIM_PM_MASKED))
            return 0;
        if (v & SIM_PM_QUEUED)
            return 0;                           /* a delivery is in flight */
        if (v & SIM_PM_PENDING) {
            /* Fired while masked: deliver now, the port stays masked. */
            if (!SIM_CAS(pm, &v, v | SIM_PM_QUEUED))
                continue;
            if (write(e->fd, &local, sizeof(local)) < 0) {
                /* FIFO full: lost wake-up, as in notify */
            }
            return 0;
        }
        if (SIM_CAS(pm, &v, v & ~SIM_PM_MASKED))
            return 0;
    }
}

int sim_evtchn_port_state(struct sim_host *h, xen_domid_t domid, xen_port_t port)
{
    struct sim_evt_port *tbl;
    int rc = sim_evt_table(h, domid, false, &tbl);
    if (rc < 0)
        return rc;
    rc = port < SIM_EVT_NR_PORTS ? (int)SIM_LOAD(&tbl[port].state) : -ENOENT;
    if (rc > SIM_ECS_FREE && sim_reclaim_dead(h) > 0)   /* what a dead process held is gone */
        rc = (int)SIM_LOAD(&tbl[port].state);
    sim_evt_table_put(h, tbl);
    return rc;
}

int sim_evtchn_ports_in_use(struct sim_host *h, xen_domid_t domid)
{
    struct sim_evt_port *tbl;
    int rc = sim_evt_table(h, domid, false, &tbl);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    int n = 0;
    for (int pass = 0; pass < 2; pass++) {
        n = 0;
        for (xen_port_t p = 1; p < SIM_EVT_NR_PORTS; p++)
            n += SIM_LOAD(&tbl[p].state) != SIM_ECS_FREE;
        if (n == 0 || pass || sim_reclaim_dead(h) == 0)
            break;
    }
    sim_evt_table_put(h, tbl);
    return n;
}
