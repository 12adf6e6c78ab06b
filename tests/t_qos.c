/* t_qos: the QoS limits' parser (ranges, suffixes, none, refusals with the accepted range) and formatter, and the token buckets on a made-up clock: a full bucket pays its burst and then refuses with the wait until the next token, the long-run rate is the limit, a request larger than the burst waits for a full bucket and leaves it in debt, reads and writes pay their own and the total buckets, new limits keep the level capped at the new burst. */
#include "harness.h"
#include "../src/ring/qos.h"

#include <stdio.h>
#include <string.h>

#define S 1000000000ull     /* ns per second */

static void parse_ok(enum dp_qos_kind k, const char *v, uint64_t rate, uint64_t burst)
{
    struct dp_qos_limit l = { 7, 7 };
    char err[256] = "";
    T_CHECK(dp_qos_parse(k, v, &l, err, sizeof(err)) == 0, "%s '%s': %s", dp_qos_name(k), v, err);
    T_CHECK(l.rate == rate && l.burst == burst, "%s '%s': %llu/%llu, expected %llu/%llu",
            dp_qos_name(k), v, (unsigned long long)l.rate, (unsigned long long)l.burst,
            (unsigned long long)rate, (unsigned long long)burst);
}

static void parse_bad(enum dp_qos_kind k, const char *v, const char *range)
{
    struct dp_qos_limit l = { 7, 7 };
    char err[256] = "";
    T_EQ(dp_qos_parse(k, v, &l, err, sizeof(err)), -EINVAL);
    T_CHECK(l.rate == 7 && l.burst == 7, "%s '%s': out-parameter changed", dp_qos_name(k), v);
    T_CHECK(strstr(err, range), "%s '%s': message '%s' lacks '%s'", dp_qos_name(k), v, err, range);
}

int main(void)
{
    parse_ok(DP_QOS_IOPS, "none", 0, 0);
    parse_ok(DP_QOS_IOPS, "1", 1, 0);
    parse_ok(DP_QOS_READ_IOPS, "2k/500", 2000, 500);
    parse_ok(DP_QOS_WRITE_IOPS, "10m", 10000000, 0);
    parse_ok(DP_QOS_BPS, "4096", 4096, 0);
    parse_ok(DP_QOS_READ_BPS, "50M/1M", 50ull << 20, 1ull << 20);
    parse_ok(DP_QOS_WRITE_BPS, "1T", 1ull << 40, 0);
    const char *ir = "RATE 1..10000000", *br = "RATE 4096..1099511627776";
    parse_bad(DP_QOS_IOPS, "0", ir);
    parse_bad(DP_QOS_IOPS, "-5", ir);
    parse_bad(DP_QOS_IOPS, "10000001", ir);
    parse_bad(DP_QOS_IOPS, "11m", ir);
    parse_bad(DP_QOS_IOPS, "1M", ir);           /* bps suffixes are not iops ones */
    parse_bad(DP_QOS_IOPS, "100/0", "BURST 1..RATE x 3600");
    parse_bad(DP_QOS_IOPS, "100/360001", "BURST 1..RATE x 3600");
    parse_bad(DP_QOS_IOPS, "100/", ir);
    parse_bad(DP_QOS_IOPS, "", ir);
    parse_bad(DP_QOS_IOPS, " 100", ir);
    parse_bad(DP_QOS_IOPS, "99999999999999999999999", ir);
    parse_bad(DP_QOS_BPS, "4095", br);
    parse_bad(DP_QOS_BPS, "2T", br);
    parse_bad(DP_QOS_BPS, "1M/4095", "BURST 4096..RATE x 3600");
    parse_bad(DP_QOS_BPS, "1k", br);            /* iops suffixes are not bps ones */

    enum dp_qos_kind k;
    T_CHECK(dp_qos_kind_parse("qos-read-bps", &k) == 0 && k == DP_QOS_READ_BPS, "qos-read-bps");
    T_CHECK(dp_qos_kind_parse("write-iops", &k) == 0 && k == DP_QOS_WRITE_IOPS, "write-iops");
    T_EQ(dp_qos_kind_parse("iops-total", &k), -ENOENT);
    char buf[48];
    dp_qos_format(&(struct dp_qos_limit){ 0, 0 }, buf, sizeof(buf));
    T_CHECK(!strcmp(buf, "none"), "format none: %s", buf);
    dp_qos_format(&(struct dp_qos_limit){ 2000, 500 }, buf, sizeof(buf));
    T_CHECK(!strcmp(buf, "2000/500"), "format 2000/500: %s", buf);

    /* iops 100, burst 10: ten at once, then one each 10 ms */
    struct dpqos b;
    dpqos_init(&b);
    struct dp_qos q = { 0 };
    q.l[DP_QOS_IOPS] = (struct dp_qos_limit){ 100, 10 };
    T_EQ(dpqos_set(&b, &q, 0), 0);
    T_CHECK(b.on, "a limit set: on");
    for (int i = 0; i < 10; i++)
        T_EQ(dpqos_take(&b, false, 4096, 0), 0);
    uint64_t w = dpqos_take(&b, true, 4096, 0);
    T_CHECK(w >= S / 100 && w <= S / 100 + 1000, "wait %llu ns for one token at 100/s",
            (unsigned long long)w);
    /* over 10 s of asking whenever told: 10 + 100 x 10 requests */
    uint64_t now = 0, n = 10;
    while (now < 10 * S) {
        w = dpqos_take(&b, n & 1, 4096, now);
        if (w)
            now += w;
        else
            n++;
    }
    T_CHECK(n >= 1009 && n <= 1011, "%llu requests in 10 s at 100/s, burst 10", (unsigned long long)n);
    /* idle: the bucket refills to its burst, not beyond */
    now += 100 * S;
    for (n = 0; dpqos_take(&b, false, 512, now) == 0 && n < 100; n++)
        ;
    T_EQ(n, 10);

    /* read-bps 1 MiB/s, burst 64 KiB: a 256 KiB read waits for a full bucket,
     * goes, and the debt holds the next one for its share */
    memset(&q, 0, sizeof(q));
    q.l[DP_QOS_READ_BPS] = (struct dp_qos_limit){ 1 << 20, 64 << 10 };
    T_EQ(dpqos_set(&b, &q, 0), 0);
    T_EQ(dpqos_take(&b, false, 256 << 10, 0), 0);
    T_EQ(dpqos_take(&b, true, 256 << 10, 0), 0);        /* writes are not limited */
    w = dpqos_take(&b, false, 4096, 0);
    T_CHECK(w >= (192ull + 4) * S / 1024 && w <= (192ull + 4) * S / 1024 + 1000,
            "after 256 KiB with a 64 KiB bucket at 1 MiB/s: wait %llu ns", (unsigned long long)w);
    /* the burst shrinks: the level is capped at the new one */
    memset(&q, 0, sizeof(q));
    q.l[DP_QOS_WRITE_IOPS] = (struct dp_qos_limit){ 10, 2 };
    q.l[DP_QOS_IOPS] = (struct dp_qos_limit){ 1000, 0 };        /* burst default 100 */
    T_EQ(dpqos_set(&b, &q, 5 * S), 0);
    T_EQ(dpqos_take(&b, true, 512, 5 * S), 0);
    T_EQ(dpqos_take(&b, true, 512, 5 * S), 0);
    T_CHECK(dpqos_take(&b, true, 512, 5 * S) > 0, "write-iops burst 2: the third write waits");
    for (n = 0; dpqos_take(&b, false, 512, 5 * S) == 0 && n < 1000; n++)
        ;
    T_EQ(n, 98);                                        /* iops bucket 100, 2 paid by writes */
    /* out of range: refused, nothing changed */
    struct dp_qos bad = q, got;
    bad.l[DP_QOS_BPS] = (struct dp_qos_limit){ 100, 0 };
    T_EQ(dpqos_set(&b, &bad, 6 * S), -EINVAL);
    dpqos_get(&b, &got);
    T_CHECK(!memcmp(&got, &q, sizeof(q)), "a refused dpqos_set changed the limits");
    memset(&q, 0, sizeof(q));
    T_EQ(dpqos_set(&b, &q, 7 * S), 0);
    T_CHECK(!b.on, "no limit: off");
    dpqos_fini(&b);
    return t_done();
}
