/* t_sim_evtchn: simulated event channels across processes: bind rules, notify both ways with poll(), masking, close/unbind, dead peers; event-channel tables stay mapped only while used. */
#include "harness.h"
#include "util.h"
#include "lib/peer.h"
#include "lib/simevt.h"
#include "sim.h"

#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BACK 0
#define GUEST 5

static int count_fifos(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/evq", dir);
    return t_count_dir(path);
}

#define ROUNDS 20000

/* ---- the guest (child) ------------------------------------------------- */
static void guest(struct peer *p, void *arg)
{
    const char *dir = arg;
    struct sim_host *h = NULL;
    struct sim_evtchn *e = NULL;
    T_ASSERT(sim_host_open(dir, &h) == 0, "host");
    T_ASSERT(sim_evtchn_open(h, GUEST, &e) == 0, "evtchn open");
    xen_port_t gp = 0, other = 0, got = 0;
    T_EQ(sim_evtchn_alloc_unbound(e, BACK, &gp), 0);
    T_EQ(sim_evtchn_alloc_unbound(e, 7, &other), 0);        /* for someone else */
    T_CHECK(gp > 0 && other > 0 && gp != other, "ports %u %u", gp, other);
    T_EQ(sim_evtchn_port_state(h, GUEST, gp), 1);
    T_EQ(sim_evtchn_ports_in_use(h, GUEST), 2);
    peer_put_u32(p, gp);
    peer_put_u32(p, other);

    /* Bound by the backend: it notifies, we poll. */
    T_ASSERT(peer_get_u32(p) == 1, "sync");
    T_EQ(sim_evtchn_port_state(h, GUEST, gp), 2);
    T_EQ(sim_wait_port(e, 5000, &got), 0);
    T_EQ(got, gp);
    T_EQ(sim_evtchn_pending(e, &got), -EAGAIN);
    T_EQ(sim_evtchn_notify(e, gp), 0);                     /* -> backend */

    /* Masked: the backend notifies 3 times while we have not unmasked. */
    T_ASSERT(peer_get_u32(p) == 2, "sync");
    T_EQ(sim_wait_port(e, 100, &got), -ETIMEDOUT);
    T_EQ(sim_evtchn_pending(e, &got), -EAGAIN);
    T_EQ(sim_evtchn_unmask(e, gp), 0);                     /* redelivers once */
    T_EQ(sim_wait_port(e, 1000, &got), 0);
    T_EQ(got, gp);
    T_EQ(sim_evtchn_pending(e, &got), -EAGAIN);
    T_EQ(sim_evtchn_unmask(e, gp), 0);                     /* nothing new: no event */
    T_EQ(sim_wait_port(e, 100, &got), -ETIMEDOUT);
    T_EQ(sim_evtchn_unmask(e, gp), 0);                     /* idempotent */
    T_EQ(sim_evtchn_notify(e, other), 0);                  /* unbound: dropped */
    T_EQ(sim_evtchn_notify(e, 4000), -ENOTCONN);
    T_EQ(sim_evtchn_notify(e, 0), -EINVAL);
    T_EQ(sim_evtchn_notify(e, 70000), -EINVAL);
    T_EQ(sim_evtchn_unmask(e, 4000), -ENOTCONN);
    peer_put_u32(p, 3);

    /* Ping-pong. */
    for (int i = 0; i < ROUNDS; i++) {
        if (sim_wait_port(e, 5000, &got) != 0 || got != gp) {
            T_CHECK(0, "round %d: no event", i);
            break;
        }
        sim_evtchn_unmask(e, gp);
        sim_evtchn_notify(e, gp);
    }

    /* Close: our ports go free, the backend's goes back to unbound. */
    T_ASSERT(peer_get_u32(p) == 4, "sync");
    sim_evtchn_close(e);
    T_EQ(sim_evtchn_ports_in_use(h, GUEST), 0);
    peer_put_u32(p, 5);
    T_ASSERT(peer_get_u32(p) == 55, "sync");

    /* Backend restart: our port goes back to unbound and is rebound. */
    T_ASSERT(sim_evtchn_open(h, GUEST, &e) == 0, "evtchn reopen");
    T_EQ(sim_evtchn_alloc_unbound(e, BACK, &gp), 0);
    peer_put_u32(p, gp);
    T_ASSERT(peer_get_u32(p) == 6, "sync");                      /* backend closed */
    T_EQ(sim_evtchn_port_state(h, GUEST, gp), 1);
    T_EQ(sim_wait_port(e, 100, &got), -ETIMEDOUT);
    peer_put_u32(p, 7);
    T_ASSERT(peer_get_u32(p) == 8, "sync");                      /* rebound + notified */
    T_EQ(sim_wait_port(e, 5000, &got), 0);
    T_EQ(got, gp);
    sim_evtchn_close(e);
    sim_host_close(h);
    peer_put_u32(p, 9);
}

/* Event-channel tables are mapped only while used: a backend that served
 * many guest domains in turn (either side allocating the port) ends with
 * as many mappings as it started with (sim_host.c reference counts). */
static void tables_released(const char *dir, struct sim_host *h)
{
    struct sim_host *gh = NULL;                /* the guests' view: a second host handle */
    struct sim_evtchn *be = NULL;
    T_ASSERT(sim_host_open(dir, &gh) == 0, "guest host");
    T_ASSERT(sim_evtchn_open(h, BACK, &be) == 0, "backend open");
    int m0 = t_count_maps_pid(getpid(), ".evtchn");
    for (xen_domid_t d = 100; d < 140; d++) {
        struct sim_evtchn *ge = NULL;
        xen_port_t gp = 0, bp = 0, got = 0;
        T_ASSERT(sim_evtchn_open(gh, d, &ge) == 0, "guest %u open", d);
        if (d % 2) {                            /* guest allocates, backend binds */
            T_EQ(sim_evtchn_alloc_unbound(ge, BACK, &gp), 0);
            T_EQ(sim_evtchn_bind_interdomain(be, d, gp, &bp), 0);
        } else {                                /* backend allocates, guest binds */
            T_EQ(sim_evtchn_alloc_unbound(be, d, &bp), 0);
            T_EQ(sim_evtchn_bind_interdomain(ge, BACK, bp, &gp), 0);
        }
        T_EQ(sim_evtchn_notify(be, bp), 0);     /* the first notify takes the peer's table */
        T_EQ(sim_wait_port(ge, 1000, &got), 0);
        T_EQ(sim_evtchn_notify(ge, gp), 0);
        /* while bound: this process maps dom<d>.evtchn twice (guest, backend) */
        char name[32];
        snprintf(name, sizeof(name), "/dom%u.evtchn", d);
        T_EQ(t_count_maps_pid(getpid(), name), 2);
        if (d % 3) {
            T_EQ(sim_evtchn_unbind(be, bp), 0);
            sim_evtchn_close(ge);
        } else {                                /* guest goes first */
            sim_evtchn_close(ge);
            T_EQ(sim_evtchn_unbind(be, bp), 0);
        }
        T_EQ(t_count_maps_pid(getpid(), name), 0);
    }
    T_EQ(t_count_maps_pid(getpid(), ".evtchn"), m0);
    T_EQ(sim_evtchn_ports_in_use(h, BACK), 0);
    sim_evtchn_close(be);
    sim_host_close(gh);
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL);                  /* a dead peer must not kill us */
    const char *dir = t_tmpdir(1);
    struct sim_host *h = NULL;
    struct sim_evtchn *e = NULL;
    int fds0 = t_count_fds_pid(getpid());
    T_ASSERT(sim_host_open(dir, &h) == 0, "host");
    T_EQ(sim_evtchn_port_state(h, GUEST, 1), -ENOENT);
    T_ASSERT(sim_evtchn_open(h, BACK, &e) == 0, "open");

    struct peer p;
    peer_fork(&p, guest, (void *)dir);
    xen_port_t gp = peer_get_u32(&p), other = peer_get_u32(&p), bp = 0, x = 12345, got = 0;

    T_EQ(sim_evtchn_bind_interdomain(e, GUEST, gp + 100, &x), -EINVAL);   /* free port */
    T_EQ(sim_evtchn_bind_interdomain(e, GUEST, 0, &x), -EINVAL);
    T_EQ(sim_evtchn_bind_interdomain(e, GUEST, 5000, &x), -EINVAL);
    T_EQ(sim_evtchn_bind_interdomain(e, GUEST, other, &x), -EINVAL);      /* for dom 7 */
    T_EQ(sim_evtchn_bind_interdomain(e, 9, gp, &x), -ESRCH);             /* no such domain */
    T_EQ(x, 12345);
    T_EQ(sim_evtchn_ports_in_use(h, BACK), 0);
    T_EQ(sim_evtchn_bind_interdomain(e, GUEST, gp, &bp), 0);
    T_CHECK(bp > 0, "local port %u", bp);
    T_EQ(sim_evtchn_bind_interdomain(e, GUEST, gp, &x), -EINVAL);         /* already bound */
    T_EQ(sim_evtchn_port_state(h, BACK, bp), 2);
    /* Xen leaves an event pending on a freshly bound port. */
    T_EQ(sim_wait_port(e, 1000, &got), 0);
    T_EQ(got, bp);
    T_EQ(sim_evtchn_unmask(e, bp), 0);
    T_EQ(sim_evtchn_notify(e, bp), 0);
    peer_put_u32(&p, 1);
    T_EQ(sim_wait_port(e, 5000, &got), 0);                     /* guest -> backend */
    T_EQ(got, bp);
    T_EQ(sim_evtchn_unmask(e, bp), 0);

    for (int i = 0; i < 3; i++)
        T_EQ(sim_evtchn_notify(e, bp), 0);                 /* guest left gp masked */
    peer_put_u32(&p, 2);
    T_ASSERT(peer_get_u32(&p) == 3, "sync");

    double t0 = (xbd_now_ns() / 1e9);
    int i;
    for (i = 0; i < ROUNDS; i++) {
        sim_evtchn_notify(e, bp);
        if (sim_wait_port(e, 5000, &got) != 0 || got != bp)
            break;
        sim_evtchn_unmask(e, bp);
    }
    double dt = (xbd_now_ns() / 1e9) - t0;
    T_EQ(i, ROUNDS);
    T_LOG("ping-pong across processes: %d round trips, %.2f us each", i, dt * 1e6 / i);

    peer_put_u32(&p, 4);
    T_ASSERT(peer_get_u32(&p) == 5, "sync");
    T_EQ(sim_evtchn_port_state(h, BACK, bp), 1);           /* remote closed: unbound */
    T_EQ(sim_evtchn_port_state(h, GUEST, gp), 0);
    T_EQ(sim_evtchn_notify(e, bp), 0);                     /* dropped */
    T_EQ(sim_evtchn_unbind(e, bp), 0);
    T_EQ(sim_evtchn_unbind(e, bp), -ENOTCONN);
    T_EQ(sim_evtchn_port_state(h, BACK, bp), 0);
    T_EQ(sim_evtchn_ports_in_use(h, BACK), 0);
    peer_put_u32(&p, 55);

    /* Backend restart. */
    gp = peer_get_u32(&p);
    T_EQ(sim_evtchn_bind_interdomain(e, GUEST, gp, &bp), 0);
    sim_evtchn_close(e);
    e = NULL;
    T_EQ(sim_evtchn_ports_in_use(h, BACK), 0);
    peer_put_u32(&p, 6);
    T_ASSERT(peer_get_u32(&p) == 7, "sync");
    T_ASSERT(sim_evtchn_open(h, BACK, &e) == 0, "reopen");
    T_EQ(sim_evtchn_bind_interdomain(e, GUEST, gp, &bp), 0);
    T_EQ(sim_evtchn_notify(e, bp), 0);
    peer_put_u32(&p, 8);
    T_ASSERT(peer_get_u32(&p) == 9, "sync");
    T_EQ(sim_evtchn_port_state(h, BACK, bp), 1);
    T_EQ(peer_wait(&p), 0);
    T_EQ(sim_evtchn_unbind(e, bp), 0);
    T_EQ(count_fifos(dir), 1);                             /* only ours is left */

    /* A guest killed without closing: notifying it is harmless. */
    struct hold_arg doomed = { dir, GUEST + 1, BACK };    /* a guest, killed below */
    peer_fork(&p, peer_hold_unbound, &doomed);
    gp = peer_get_u32(&p);
    T_EQ(sim_evtchn_bind_interdomain(e, GUEST + 1, gp, &bp), 0);
    T_EQ(sim_wait_port(e, 1000, &got), 0);
    kill(p.pid, SIGKILL);
    T_EQ(peer_wait(&p), 128 + SIGKILL);
    for (int k = 0; k < 100; k++) {
        T_EQ(sim_evtchn_notify(e, bp), 0);
        sim_evtchn_unmask(e, bp);
    }
    /* Its exit closed its handle (evtchn_release): its port is free, ours
     * is back to unbound for its domain. */
    T_EQ(sim_evtchn_port_state(h, BACK, bp), 1);
    T_EQ(sim_evtchn_port_state(h, GUEST + 1, gp), 0);
    T_EQ(sim_evtchn_notify(e, bp), 0);                  /* unbound: dropped */
    sim_evtchn_close(e);
    T_EQ(sim_evtchn_port_state(h, GUEST + 1, gp), 0);
    T_EQ(sim_evtchn_ports_in_use(h, BACK), 0);
    T_EQ(t_count_maps_pid(getpid(), ".evtchn"), 0);           /* no handle left: none mapped */
    tables_released(dir, h);
    sim_host_close(h);
    T_EQ(t_count_fds_pid(getpid()), fds0);
    T_EQ(t_count_maps_pid(getpid(), dir), 0);
    return t_done();
}
