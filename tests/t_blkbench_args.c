/* xen-blkbench host-free parts: option parsing, sizes, vdev numbers, verify patterns + generation map, latency histogram. */
#include "harness.h"

#include <stdint.h>
#include <unistd.h>

/* The tool's daemon-free modules, compiled into this test. */
#include "../tools/xen-blkbench/opts.c"
#include "../tools/xen-blkbench/verify.c"
#include "../tools/xen-blkbench/hist.c"

static int parse(struct bb_opts *o, char *err, const char *const *args)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"xen-blkbench";
    for (; *args && argc < 63; args++)
        argv[argc++] = (char *)*args;
    argv[argc] = NULL;
    bb_opts_defaults(o);
    err[0] = 0;
    return bb_parse_args(argc, argv, o, err, 256);
}

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })

static void test_args(void)
{
    struct bb_opts o;
    char err[256];

    T_EQ(parse(&o, err, ARGS("--sim", "/dev/shm/h")), 0);
    T_CHECK(!strcmp(o.sim_dir, "/dev/shm/h"), "%s", "failed");
    T_EQ(o.domid, 1);
    T_EQ(o.be_domid, 0);
    T_EQ(o.be_kind, BB_BE_VBD);
    T_EQ(o.devid, 51712);
    T_EQ(o.mode, 'w');
    T_EQ(o.discard_enable, 1);          /* libxl default: 1 when read-write */
    T_EQ(o.rw, BB_RW_NONE);
    T_EQ(o.bs_min, 4096);
    T_EQ(o.indirect_segs, BB_LINUX_INDIRECT_DEFAULT);
    T_CHECK(o.timeout_s == 10.0, "%s", "failed");

    T_EQ(parse(&o, err, ARGS("--sim", "d", "--domid", "7", "--backend-domid", "3", "--backend-type", "vbd3", "--vdev", "xvdb",
                             "--target", "/img", "--mode", "r", "--abi", "x86_32", "--ring-order", "2",
                             "--queues", "4", "--indirect-segs", "256", "--persistent", "--rw", "randrw",
                             "--rwmixread", "70", "--bs-range", "512-64k", "--iodepth", "32",
                             "--runtime", "500ms", "--offset", "1M", "--length", "8M", "--seed", "42",
                             "--verify", "--sha256", "--flush", "--discard", "0:1M", "--discard", "4k:8k",
                             "--page-offset", "rand", "--timeout", "2", "--hotplug", "--json")), 0);
    T_CHECK(!err[0], "%s", err);
    T_EQ(o.domid, 7);
    T_EQ(o.be_domid, 3);
    T_EQ(o.be_kind, BB_BE_VBD3);
    T_EQ(o.devid, 51728);
    T_CHECK(!strcmp(o.target, "/img"), "%s", "failed");
    T_EQ(o.mode, 'r');
    T_EQ(o.discard_enable, 0);          /* libxl default: 0 when read-only */
    T_EQ(o.abi, BB_ABI_X86_32);
    T_EQ(o.ring_order, 2);
    T_EQ(o.queues, 4);
    T_EQ(o.indirect_segs, 256);
    T_CHECK(o.persistent, "%s", "failed");
    T_EQ(o.rw, BB_RW_RANDRW);
    T_EQ(o.rwmixread, 70);
    T_EQ(o.bs_min, 512);
    T_EQ(o.bs_max, 65536);
    T_EQ(o.iodepth, 32);
    T_CHECK(o.runtime_s > 0.499 && o.runtime_s < 0.501, "runtime %f", o.runtime_s);
    T_EQ(o.offset, 1 << 20);
    T_EQ(o.length, 8 << 20);
    T_EQ(o.seed, 42);
    T_CHECK(o.verify && o.sha256 && o.flush && o.hotplug && o.json, "%s", "failed");
    T_EQ(o.nr_discards, 2);
    T_EQ(o.discard[1].offset, 4096);
    T_EQ(o.discard[1].len, 8192);
    T_EQ(o.page_offset, -1);
    T_CHECK(o.timeout_s == 2.0, "%s", "failed");

    T_EQ(parse(&o, err, ARGS("--sim", "d", "--expect-error")), 0);
    T_EQ(o.expect, BB_EXPECT_ERROR);
    T_EQ(parse(&o, err, ARGS("--sim", "d", "--expect-error=eopnotsupp")), 0);
    T_EQ(o.expect, BB_EXPECT_EOPNOTSUPP);

    /* each of these must be refused with a message */
    const char *const *bad[] = {
        ARGS("--domid", "1"),                                   /* no --sim */
        ARGS("--sim", "d", "--bs", "1000"),                     /* not a multiple of 512 */
        ARGS("--sim", "d", "--bs", "0"),
        ARGS("--sim", "d", "--bs", "4k", "--bs-range", "4k-8k"),
        ARGS("--sim", "d", "--bs-range", "8k-4k"),
        ARGS("--sim", "d", "--verify"),                         /* no workload */
        ARGS("--sim", "d", "--mode", "rw"),
        ARGS("--sim", "d", "--rw", "trim"),
        ARGS("--sim", "d", "--vdev", "xyz"),
        ARGS("--sim", "d", "--queues", "0"),
        ARGS("--sim", "d", "--ring-order", "9"),
        ARGS("--sim", "d", "--iodepth", "0"),
        ARGS("--sim", "d", "--rwmixread", "101"),
        ARGS("--sim", "d", "--offset", "100"),
        ARGS("--sim", "d", "--discard", "0-4096"),
        ARGS("--sim", "d", "--discard", "0:0"),
        ARGS("--sim", "d", "--keep", "--destroy"),
        ARGS("--sim", "d", "--domid", "0"),
        ARGS("--sim", "d", "--timeout", "0"),
        ARGS("--sim", "d", "--abi", "arm"),
        ARGS("--sim", "d", "--backend-type", "qdisk"),
        ARGS("--sim", "d", "--page-offset", "8"),
        ARGS("--sim", "d", "--bogus"),
        ARGS("--sim", "d", "extra"),
        ARGS("--sim", "d", "--expect-error=maybe"),
        ARGS("--sim", "d", "--rw", "write", "--verify", "--expect-error"),
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        int rc = parse(&o, err, bad[i]);
        T_CHECK(rc == -EINVAL, "case %zu (%s %s): rc %d", i, bad[i][0], bad[i][1] ? bad[i][1] : "", rc);
        T_CHECK(err[0], "case %zu: no message", i);
    }
}

static void test_sizes(void)
{
    static const struct { const char *s; int rc; uint64_t v; } t[] = {
        { "512", 0, 512 }, { "4k", 0, 4096 }, { "4K", 0, 4096 }, { "4KiB", 0, 4096 },
        { "1m", 0, 1 << 20 }, { "2G", 0, 2ull << 30 }, { "1t", 0, 1ull << 40 },
        { "0x1000", 0, 4096 }, { "010", 0, 10 }, { "7b", 0, 7 },
        { "", -EINVAL, 0 }, { "k", -EINVAL, 0 }, { "-1", -EINVAL, 0 }, { "4q", -EINVAL, 0 },
        { "4kx", -EINVAL, 0 }, { " 4", -EINVAL, 0 }, { "99999999999T", -ERANGE, 0 },
        { "99999999999999999999", -ERANGE, 0 },
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        uint64_t v = 12345;
        int rc = bb_parse_size(t[i].s, &v);
        T_CHECK(rc == t[i].rc, "'%s': rc %d want %d", t[i].s, rc, t[i].rc);
        if (!t[i].rc)
            T_CHECK(v == t[i].v, "'%s': %llu want %llu", t[i].s, (unsigned long long)v, (unsigned long long)t[i].v);
        else
            T_CHECK(v == 12345, "'%s': out-param touched on failure", t[i].s);
    }
    double d;
    T_CHECK(!bb_parse_seconds("1.5", &d) && d == 1.5, "%s", "failed");
    T_CHECK(!bb_parse_seconds("2m", &d) && d == 120, "%s", "failed");
    T_CHECK(!bb_parse_seconds("250ms", &d) && d == 0.25, "%s", "failed");
    T_CHECK(bb_parse_seconds("1x", &d) == -EINVAL, "%s", "failed");
    T_CHECK(bb_parse_seconds("-1", &d) == -EINVAL, "%s", "failed");
}

static void test_vdev(void)
{
    static const struct { const char *s; int rc; uint32_t v; } t[] = {
        /* docs/man/xen-vbd-interface.7.pandoc */
        { "xvda", 0, 51712 }, { "xvdb", 0, 51728 }, { "xvdc", 0, 51744 }, { "xvda1", 0, 51713 },
        { "xvdp", 0, 51952 }, { "xvdp15", 0, 51967 },
        { "xvdq", 0, (1u << 28) | (16u << 8) }, { "xvda16", 0, (1u << 28) | 16u },
        { "xvdaa", 0, (1u << 28) | (26u << 8) },
        { "sda", 0, 2048 }, { "sdb2", 0, 2066 }, { "hda", 0, 768 }, { "hdb", 0, 832 },
        { "hdc", 0, 5632 }, { "hdd1", 0, 5697 },
        { "51712", 0, 51712 },
        { "", -EINVAL, 0 }, { "xvd", -EINVAL, 0 }, { "xvdA", -EINVAL, 0 }, { "xvda0", -EINVAL, 0 },
        { "xvda256", -EINVAL, 0 }, { "hde", -EINVAL, 0 }, { "vda", -EINVAL, 0 }, { "0", -EINVAL, 0 },
        { "12x", -EINVAL, 0 },
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        uint32_t v = 7;
        int rc = bb_parse_vdev(t[i].s, &v);
        T_CHECK(rc == t[i].rc, "'%s': rc %d want %d", t[i].s, rc, t[i].rc);
        if (!t[i].rc)
            T_CHECK(v == t[i].v, "'%s': %u want %u", t[i].s, v, t[i].v);
        else
            T_CHECK(v == 7, "'%s': out-param touched", t[i].s);
    }
}

static void test_pattern(void)
{
    uint8_t a[BB_SECTOR], b[BB_SECTOR];
    uint64_t fs;
    uint32_t fg;
    bb_pattern_fill(a, 1234, 5, 42);
    T_EQ(bb_pattern_check(a, 1234, 5, 42, &fs, &fg), 0);
    T_EQ(bb_pattern_check(a, 1234, 6, 42, &fs, &fg), -EILSEQ);     /* stale data */
    T_EQ(fs, 1234);
    T_EQ(fg, 5);
    T_EQ(bb_pattern_check(a, 1235, 5, 42, &fs, &fg), -EILSEQ);     /* wrong place */
    T_EQ(fs, 1234);
    T_EQ(bb_pattern_check(a, 1234, 5, 43, &fs, &fg), -EILSEQ);     /* other run */
    memcpy(b, a, sizeof(a));
    b[300] ^= 1;                                                    /* torn */
    T_EQ(bb_pattern_check(b, 1234, 5, 42, &fs, &fg), -EILSEQ);
    memset(b, 0, sizeof(b));
    T_EQ(bb_pattern_check(b, 1234, 5, 42, &fs, &fg), -EILSEQ);     /* zeroes */
    T_CHECK(fs == ~0ull && fg == ~0u, "%s", "failed");
    /* patterns of neighbours differ everywhere past the header */
    bb_pattern_fill(b, 1235, 5, 42);
    int same = 0;
    for (unsigned i = 32; i < BB_SECTOR; i++)
        same += a[i] == b[i];
    T_CHECK(same < 16, "%d equal bytes", same);

    struct bb_vmap m;
    T_EQ(bb_vmap_init(&m, 100, 50), 0);
    T_EQ(bb_vmap_get(&m, 100), 0);
    uint32_t g1 = bb_vmap_new_gen(&m), g2 = bb_vmap_new_gen(&m);
    T_CHECK(g1 && g2 && g1 != g2, "%s", "failed");
    bb_vmap_set(&m, 90, 20, g1);            /* clipped to 100..109 */
    T_EQ(bb_vmap_get(&m, 99), 0);
    T_EQ(bb_vmap_get(&m, 100), g1);
    T_EQ(bb_vmap_get(&m, 109), g1);
    T_EQ(bb_vmap_get(&m, 110), 0);
    bb_vmap_set(&m, 140, 100, g2);          /* clipped to 140..149 */
    T_EQ(bb_vmap_get(&m, 149), g2);
    T_EQ(bb_vmap_get(&m, 150), 0);
    T_CHECK(!bb_vmap_busy(&m, 100, 50), "%s", "failed");
    bb_vmap_set_busy(&m, 120, 8, true);
    T_CHECK(bb_vmap_busy(&m, 127, 1), "%s", "failed");
    T_CHECK(bb_vmap_busy(&m, 110, 11), "%s", "failed");
    T_CHECK(!bb_vmap_busy(&m, 110, 10), "%s", "failed");
    T_CHECK(!bb_vmap_busy(&m, 128, 22), "%s", "failed");
    T_CHECK(!bb_vmap_busy(&m, 0, 100), "%s", "failed");
    bb_vmap_set_busy(&m, 120, 8, false);
    T_CHECK(!bb_vmap_busy(&m, 100, 50), "%s", "failed");
    bb_vmap_free(&m);
}

static void test_hist(void)
{
    struct bb_hist h;
    bb_hist_init(&h);
    T_EQ(bb_hist_quantile(&h, 0.5), 0);
    /* index/upper round trip: every value lies in [lower, upper] of its bucket, error <= 1/32 */
    uint64_t seed = 7;
    for (int i = 0; i < 100000; i++) {
        uint64_t v = bb_rand_next(&seed) >> (bb_rand_next(&seed) % 64);
        unsigned idx = bb_hist_index(v);
        T_ASSERT(idx < BB_HIST_BUCKETS, "%s", "failed");
        if (v < (1ull << 40)) {
            uint64_t up = bb_hist_upper(idx);
            T_ASSERT(up >= v && (double)(up - v) <= (double)v / 32.0 + 1, "v %llu up %llu",
                     (unsigned long long)v, (unsigned long long)up);
            T_ASSERT(idx == 0 || bb_hist_upper(idx - 1) < v, "v %llu", (unsigned long long)v);
        }
    }
    /* 1..10000 us uniform: quantiles within 3.2 % */
    for (uint64_t us = 1; us <= 10000; us++)
        bb_hist_add(&h, us * 1000);
    T_EQ(h.count, 10000);
    T_EQ(h.min, 1000);
    T_EQ(h.max, 10000000);
    static const double q[] = { 0.5, 0.99, 0.999, 1.0 };
    for (unsigned i = 0; i < 4; i++) {
        double want = q[i] * 10000 * 1000, got = (double)bb_hist_quantile(&h, q[i]);
        T_CHECK(got >= want && got <= want * 1.032, "q %.3f: %.0f want %.0f", q[i], got, want);
    }
    /* small values are exact */
    struct bb_hist s;
    bb_hist_init(&s);
    for (int i = 0; i < 99; i++)
        bb_hist_add(&s, 3);
    bb_hist_add(&s, 20);
    T_EQ(bb_hist_quantile(&s, 0.5), 3);
    T_EQ(bb_hist_quantile(&s, 0.99), 3);
    T_EQ(bb_hist_quantile(&s, 0.999), 20);
    bb_hist_merge(&s, &h);
    T_EQ(s.count, 10100);
    T_EQ(s.min, 3);
    T_EQ(s.max, 10000000);
}

int main(void)
{
    test_args();
    test_sizes();
    test_vdev();
    test_pattern();
    test_hist();
    return t_done();
}
