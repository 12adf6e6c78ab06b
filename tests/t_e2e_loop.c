/* End to end on a loop block device (losetup): both ABIs, every op, data verified, discard reaching the backing file. */
#include "harness.h"
#include "lib/e2e.h"

#include <stdio.h>
#include <unistd.h>

int main(void)
{
    e2e_need_loop();
    struct e2e e;
    e2e_start(&e, NULL);
    const char *abis[] = { "x86_64", "x86_32" };
    for (unsigned i = 0; i < 2; i++) {
        char name[32], sha[65], disc[64];
        snprintf(name, sizeof(name), "loop-%s.img", abis[i]);
        const char *img = e2e_make_image(&e, name, 32);
        T_ASSERT(e2e_sha256_file(img, sha) == 0);
        const char *dev = e2e_losetup(img);
        T_LOG("---- %s on %s (backing %s) ----", abis[i], dev, img);

        snprintf(disc, sizeof(disc), "%u:%u", 28u << 20, 4u << 20);
        const char *args[] = { "--abi", abis[i], "--mode", "w", "--sha256",
            "--rw", "randrw", "--bs-range", "512-124k", "--iodepth", "32",
            "--size", "24m", "--verify", "--page-offset", "rand",
            "--offset", "0", "--length", "25165824",
            "--flush", "--discard", disc, NULL };
        char *bout = NULL;
        int rc = e2e_bench(&e, 1 + i, dev, args, &bout);
        T_CHECK(rc == 0, "xen-blkbench exit %d", rc);
        T_ASSERT(bout);
        e2e_check_sha256(bout, sha, abis[i]);
        T_EQ(e2e_field(bout, "verify", "mismatches"), 0);
        T_CHECK(e2e_field(bout, "verify", "sectors") > 0, "nothing verified");
        T_CHECK(strstr(bout, "flush op=flush-cache status=okay") != NULL, "flush not OKAY");
        T_EQ(e2e_field(bout, "discard", "failed"), 0);
        T_CHECK(e2e_field(bout, "device", "discard") == 1, "loop device: discard not advertised");
        T_EQ(e2e_field(bout, "detach", "grants-leaked"), 0);
        /* BLKDISCARD on a loop device punches a hole in its backing file */
        e2e_sh(NULL, "sync");
        T_CHECK(e2e_is_hole(img, 28u << 20, 4u << 20), "discard did not reach the backing file");
        free(bout);
    }
    T_EQ(e2e_stop(&e), 0);
    return t_done();
}
