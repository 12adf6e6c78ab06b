/* End to end on an image file: both guest ABIs, every op (read, write, flush, discard), data verified, discard seen as a hole; grant mode auto picks copy on io_uring and persistent on aio, and xen-blkbackctl list shows the resolved mode. */
#include "harness.h"
#include "lib/e2e.h"

#include <stdio.h>

/* Counters from the stats table printed by --before-detach ("vbd DOMID DEVID oo rd wr f ds rs ws err"). */
static int parse_stats(const char *out, unsigned domid, long long v[8])
{
    for (const char *l = out; (l = strstr(l, "\nvbd ")); l++) {
        unsigned d, dev;
        if (sscanf(l + 1, "vbd %u %u %lld %lld %lld %lld %lld %lld %lld %lld", &d, &dev,
                   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 10 && d == domid)
            return 0;
    }
    return -1;
}

static void one_abi(struct e2e *e, const char *abi, unsigned domid)
{
    T_LOG("---- ABI %s ----", abi);
    char name[64], sha[65], before[512], disc[64], region[2][32];
    snprintf(name, sizeof(name), "disk-%s.img", abi);
    const char *img = e2e_make_image(e, name, 32);
    T_ASSERT(e2e_sha256_file(img, sha) == 0);

    /* the workload stays in the first 24 MiB; the last 8 MiB are discarded */
    snprintf(region[0], sizeof(region[0]), "%u", 0);
    snprintf(region[1], sizeof(region[1]), "%u", 24u << 20);
    snprintf(disc, sizeof(disc), "%u:%u", 24u << 20, 8u << 20);
    snprintf(before, sizeof(before), "%s -s %s stats", t_prog("xen-blkbackctl"), e->d.sock);
    const char *args[] = { "--abi", abi, "--mode", "w", "--sha256",
        "--rw", "randrw", "--bs-range", "512-1020k", "--indirect-segs", "256",
        "--iodepth", "32", "--size", "48m", "--verify", "--page-offset", "rand",
        "--offset", region[0], "--length", region[1],
        "--flush", "--discard", disc, "--before-detach", before, NULL };
    char *out = NULL;
    int rc = e2e_bench(e, domid, img, args, &out);
    e2e_check_run(out, rc, abi);
    /* whole-disk read through the backend == the file as it was */
    e2e_check_sha256(out, sha, abi);
    T_CHECK(e2e_is_hole(img, 24u << 20, 8u << 20), "discarded range is not a hole");

    long long v[8];
    T_ASSERT(parse_stats(out, domid, v) == 0, "no stats row for domid %u", domid);
    /* oo_req rd_req wr_req f_req ds_req rd_sect wr_sect errors */
    T_CHECK(v[1] > 0 && v[2] > 0, "rd_req %lld wr_req %lld", v[1], v[2]);
    T_CHECK(v[3] >= 1, "f_req %lld", v[3]);
    T_CHECK(v[4] >= 1, "ds_req %lld", v[4]);
    T_CHECK(v[5] >= 65536, "rd_sect %lld (whole disk read is 65536)", v[5]);
    T_EQ(v[7], 0);
    free(out);
}

/* Grant mode auto is the crash-safe choice (xen-blkbackd(8) RESTART): grant
 * copy with io_uring, persistent grants with libaio when the frontend asks;
 * `xen-blkbackctl list` shows the mode the data plane resolved. */
static void auto_mode(struct e2e *e, const char *prefix, unsigned domid, long long want)
{
    char target[600], before[512];
    const char *img = e2e_make_image(e, "auto.img", 8);
    snprintf(target, sizeof(target), "%s%s", prefix, img);
    snprintf(before, sizeof(before), "%s -s %s list", t_prog("xen-blkbackctl"), e->d.sock);
    const char *args[] = { "--persistent", "--rw", "randrw", "--size", "2m", "--verify",
                           "--before-detach", before, NULL };
    char *out = NULL;
    T_CHECK(e2e_bench(e, domid, target, args, &out) == 0, "%s: xen-blkbench failed", target);
    T_CHECK(out && e2e_field(out, "device", "persistent") == want,
            "grant mode auto on '%s': feature-persistent %lld, expected %lld", target,
            out ? e2e_field(out, "device", "persistent") : -1, want);
    const char *mode = want ? " grant=persistent " : " grant=copy ";
    T_CHECK(out && strstr(out, mode), "grant mode auto on '%s': list lacks '%s':\n%s", target,
            mode, out ? out : "");
    free(out);
}

int main(void)
{
    struct e2e e;
    e2e_start(&e, NULL);
    one_abi(&e, "x86_64", 1);
    one_abi(&e, "x86_32", 2);
    auto_mode(&e, "", 3, 0);
    auto_mode(&e, "aio:", 4, 1);
    T_EQ(t_daemon_ndevices(&e.d), 0);
    T_EQ(e2e_stop(&e), 0);
    return t_done();
}
