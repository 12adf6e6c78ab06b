/* t_stats: the latency histogram's log-linear buckets (stats.h) follow Prometheus `le`: every bound falls in its own bucket and one more nanosecond in the next, bounds rise by at most a quarter per step from 4.096 us to 8.59 s, the rest overflows; vbd_stats_add sums histograms and vbd_stats_clear_gauges keeps counters. */
#include "harness.h"
#include "stats.h"

#include <stdint.h>

int main(void)
{
    T_EQ(VBD_LAT_BUCKETS, 86);
    T_EQ(vbd_lat_bound_ns(0), 4096);
    T_EQ(vbd_lat_bound_ns(VBD_LAT_BUCKETS - 2), 1ull << 33);
    T_CHECK(vbd_lat_bound_ns(VBD_LAT_BUCKETS - 1) == UINT64_MAX, "overflow bucket has a bound");
    T_EQ(vbd_lat_bucket(0), 0);
    T_EQ(vbd_lat_bucket(1), 0);
    T_EQ(vbd_lat_bucket(UINT64_MAX), VBD_LAT_BUCKETS - 1);
    T_EQ(vbd_lat_bucket((1ull << 33) + 1), VBD_LAT_BUCKETS - 1);
    for (unsigned i = 0; i + 1 < VBD_LAT_BUCKETS; i++) {
        uint64_t b = vbd_lat_bound_ns(i);
        T_CHECK(vbd_lat_bucket(b) == i, "bound %llu of bucket %u lands in %u",
                (unsigned long long)b, i, vbd_lat_bucket(b));
        T_CHECK(vbd_lat_bucket(b + 1) == i + 1, "bound+1 %llu lands in %u, expected %u",
                (unsigned long long)b + 1, vbd_lat_bucket(b + 1), i + 1);
        if (i) {
            uint64_t lo = vbd_lat_bound_ns(i - 1);
            T_CHECK(b > lo && (b - lo) * 4 <= lo, "bucket %u: (%llu, %llu] wider than 25%%", i,
                    (unsigned long long)lo, (unsigned long long)b);
            T_EQ(vbd_lat_bucket(lo + (b - lo) / 2), i);
        }
    }

    struct vbd_stats a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    b.rd_req = 3;
    b.inflight = 2;
    b.ring_occupancy = 5;
    b.lat[VBD_OP_WRITE].total.bucket[7] = 4;
    b.lat[VBD_OP_DISCARD].engine.sum_ns = 99;
    vbd_stats_add(&a, &b);
    vbd_stats_add(&a, &b);
    T_EQ(a.rd_req, 6);
    T_EQ(a.lat[VBD_OP_WRITE].total.bucket[7], 8);
    T_EQ(a.lat[VBD_OP_DISCARD].engine.sum_ns, 198);
    vbd_stats_clear_gauges(&a);
    T_EQ(a.inflight, 0);
    T_EQ(a.ring_occupancy, 0);
    T_EQ(a.rd_req, 6);
    T_EQ(a.lat[VBD_OP_WRITE].total.bucket[7], 8);
    return t_done();
}
