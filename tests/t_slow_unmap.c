/* Regression (found under Xen in QEMU): with slow grant unmaps, closing a vbd with many persistent grants must wait for the unmaps, never leak them. */
#include "harness.h"
#include "lib/e2e.h"

#include <stdio.h>

int main(void)
{
    struct e2e e;
    /* 3 ms per unmap: releasing ~900 persistent grants takes ~3 s, past
     * --stop-timeout (300 ms) plus the engine close grace (1 s); the tool may
     * wait up to 60 s for Closed so a loaded machine does not fail the test. */
    const char *dargs[] = { "--stop-timeout=300", "--persistent=yes", "--grant-mode=persistent", NULL };
    e2e_start_sim(&e, "unmap_delay_us=3000", dargs);
    const char *img = e2e_make_image(&e, "slow.img", 32);

    const char *args[] = { "--timeout", "60", "--persistent", "--rw", "randrw", "--bs-range", "4k-124k",
        "--iodepth", "32", "--size", "24m", "--verify", NULL };
    char *out = NULL;
    int rc = e2e_bench(&e, 1, img, args, &out);
    T_CHECK(rc == 0, "xen-blkbench exit %d", rc);
    T_CHECK(out && e2e_field(out, "device", "persistent") == 1, "persistent grants not negotiated");
    T_EQ(out ? e2e_field(out, "detach", "grants-leaked") : -1, 0);
    free(out);
    T_EQ(t_daemon_ndevices(&e.d), 0);

    char *log = NULL;
    e2e_sh(&log, "grep -c 'resources leaked' %s || true", e.d.log);
    T_CHECK(log && atoi(log) == 0, "the daemon leaked a queue: %s", log ? log : "?");
    free(log);
    e2e_sh(&log, "grep -c 'still releasing grants' %s || true", e.d.log);
    T_LOG("'still releasing grants at the stop deadline' logged %d time(s)", log ? atoi(log) : -1);
    T_CHECK(log && atoi(log) >= 1, "the release was not slow enough to exercise the path");
    free(log);
    T_EQ(e2e_stop(&e), 0);
    return t_done();
}
