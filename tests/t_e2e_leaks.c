/* No leaked fds, mappings (event-channel tables included), threads, grants, ports or memory after repeated attach/detach (normal and xl-destroy style) with I/O in flight, a new guest domain each cycle. */
#include "harness.h"
#include "lib/e2e.h"
#include "sim.h"

#include <stdio.h>

int main(void)
{
    struct e2e e;
    e2e_start(&e, NULL);
    const char *img = e2e_make_image(&e, "leak.img", 16);

    /* one warm-up cycle: lazily created things (io_uring rings, caches) may stay */
    const char *warm[] = { "--rw", "randrw", "--bs", "4k", "--iodepth", "8", "--size", "1m", NULL };
    T_ASSERT(e2e_bench(&e, 1, img, warm, NULL) == 0);
    struct e2e_counts c0 = e2e_counts(&e);
    T_LOG("after warm-up: %d fds, %d mappings (%d evtchn tables), %d threads", c0.fds, c0.maps,
          c0.evt, c0.threads);

    /* a new guest domain each cycle: nothing may be kept per domain ever seen */
    for (unsigned i = 0; i < 12; i++) {
        const unsigned domid = 2 + i;
        const bool destroy = i % 3 == 2;       /* every third: frontend vanishes mid-I/O */
        const char *abi = i % 2 ? "x86_32" : "x86_64";
        const char *args[] = { "--abi", abi, "--rw", "randrw", "--bs-range", "512-64k",
            "--iodepth", "32", "--size", destroy ? "64m" : "2m", "--verify",
            "--queues", i % 4 < 2 ? "1" : "2", destroy ? "--destroy" : "--quiet", NULL };
        char *out = NULL;
        int rc = e2e_bench(&e, domid, img, args, &out);
        T_CHECK(rc == 0, "cycle %u (dom%u, %s): exit %d", i, domid, destroy ? "destroy" : "detach", rc);
        T_CHECK(out && e2e_field(out, "detach", "grants-leaked") == 0, "cycle %u: grants leaked", i);
        free(out);
    }
    T_EQ(t_daemon_ndevices(&e.d), 0);

    struct e2e_counts c1 = e2e_counts(&e);
    T_LOG("after 12 cycles: %d fds, %d mappings (%d evtchn tables), %d threads", c1.fds, c1.maps,
          c1.evt, c1.threads);
    T_EQ(c1.fds, c0.fds);
    T_EQ(c1.threads, c0.threads);
    T_EQ(c1.maps, c0.maps);
    T_EQ(c1.evt, c0.evt);
    if (c1.maps != c0.maps)
        e2e_log_sim_maps(&e);

    /* event-channel ports of the backend (domain 0) all released */
    struct sim_host *h;
    T_ASSERT(sim_host_open(e.sim, &h) == 0);
    T_EQ(sim_evtchn_ports_in_use(h, 0), 0);
    sim_host_close(h);

    /* the daemon exits 0 on SIGTERM; under ASan, LeakSanitizer makes a leak a non-zero exit */
    T_EQ(e2e_stop(&e), 0);
    return t_done();
}
