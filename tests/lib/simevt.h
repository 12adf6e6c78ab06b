/*
 * simevt.h - event-channel helpers for tests on the simulated host
 * (include/sim.h): wait for a port to fire, and a child process (peer.h)
 * that holds an unbound port until it is killed.
 */
#ifndef XBD_TEST_SIMEVT_H
#define XBD_TEST_SIMEVT_H

#include "peer.h"
#include "sim.h"

/* Wait up to ms for the handle's fd, then one sim_evtchn_pending() result:
 * 0 and *port, -EAGAIN (woken, nothing pending), -ETIMEDOUT, -errno of poll. */
int  sim_wait_port(struct sim_evtchn *e, int ms, xen_port_t *port);

struct hold_arg {
    const char *dir;            /* host dir */
    xen_domid_t self, remote;   /* the child plays `self`; the port is for `remote` */
};

/* peer_fork body (arg: struct hold_arg): open the host as `self`, allocate a
 * port unbound for `remote`, send its number (u32), then pause() forever. */
void peer_hold_unbound(struct peer *p, void *arg);

#endif
