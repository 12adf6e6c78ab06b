/* Event-channel helpers for simulated-host tests (see simevt.h). */
#include "simevt.h"
#include "../harness.h"

#include <poll.h>
#include <unistd.h>

int sim_wait_port(struct sim_evtchn *e, int ms, xen_port_t *port)
{
    struct pollfd pfd = { .fd = sim_evtchn_fd(e), .events = POLLIN };
    int n = poll(&pfd, 1, ms);
    if (n < 0)
        return -errno;
    if (n == 0)
        return -ETIMEDOUT;
    return sim_evtchn_pending(e, port);
}

void peer_hold_unbound(struct peer *p, void *arg)
{
    const struct hold_arg *a = arg;
    struct sim_host *h = NULL;
    struct sim_evtchn *e = NULL;
    xen_port_t port;
    T_ASSERT(sim_host_open(a->dir, &h) == 0, "host");
    T_ASSERT(sim_evtchn_open(h, a->self, &e) == 0, "evtchn open");
    T_ASSERT(sim_evtchn_alloc_unbound(e, a->remote, &port) == 0, "alloc unbound");
    peer_put_u32(p, port);
    for (;;)
        pause();
}
