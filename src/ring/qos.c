/*
 * qos.c - per-disk QoS: the limit names and their parser (dataplane.h), and
 * the token buckets a vbd's queues share (qos.h).
 *
 * One set of buckets per vbd, not per queue: the limit is the device's,
 * whatever number of queues the frontend negotiated (blkfront spreads its
 * requests over queues by CPU, so a per-queue split would give a guest
 * using one CPU 1/N of its limit).  The buckets are guarded by one per-vbd
 * mutex that is taken only when some limit is set (dpqos->on), for a few
 * dozen instructions per request; an unlimited vbd costs one predictable
 * branch per request (qemu/qemu:block/throttle-groups.c@v7.2.0 shares one
 * ThrottleState under a lock between the members of a group the same way).
 */
#include "qos.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[DP_QOS_N] = {
    [DP_QOS_IOPS] = "iops",      [DP_QOS_READ_IOPS] = "read-iops",
    [DP_QOS_WRITE_IOPS] = "write-iops", [DP_QOS_BPS] = "bps",
    [DP_QOS_READ_BPS] = "read-bps", [DP_QOS_WRITE_BPS] = "write-bps",
};

const char *dp_qos_name(enum dp_qos_kind k)
{
    return (unsigned)k < DP_QOS_N ? names[k] : NULL;
}

int dp_qos_kind_parse(const char *name, enum dp_qos_kind *out)
{
    if (!name)
        return -ENOENT;
    if (!strncmp(name, "qos-", 4))
        name += 4;
    for (unsigned k = 0; k < DP_QOS_N; k++)
        if (!strcmp(name, names[k])) {
            *out = (enum dp_qos_kind)k;
            return 0;
        }
    return -ENOENT;
}

static bool is_bps(enum dp_qos_kind k)
{
    return k >= DP_QOS_BPS;
}

static uint64_t rate_min(enum dp_qos_kind k)
{
    return is_bps(k) ? DP_QOS_BPS_MIN : DP_QOS_IOPS_MIN;
}

static uint64_t rate_max(enum dp_qos_kind k)
{
    return is_bps(k) ? DP_QOS_BPS_MAX : DP_QOS_IOPS_MAX;
}

/* One number with its optional suffix; 0 or -EINVAL. */
static int parse_num(enum dp_qos_kind k, const char *s, size_t n, uint64_t *out)
{
    char buf[32];
    if (!n || n >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, n);
    buf[n] = 0;
    uint64_t mult = 1;
    char c = buf[n - 1];
    static const char dec[] = "kmg", bin[] = "KMGT";
    const char *p = c ? strchr(is_bps(k) ? bin : dec, c) : NULL;
    if (p) {
        for (long i = 0; i <= p - (is_bps(k) ? bin : dec); i++)
            mult *= is_bps(k) ? 1024 : 1000;
        buf[--n] = 0;
    }
    uint64_t v;
    if (!n || xbd_parse_u64(buf, 10, 0, UINT64_MAX / mult, &v))
        return -EINVAL;
    *out = v * mult;
    return 0;
}

/* The range of a limit checked (0 or -EINVAL). */
static int check_limit(enum dp_qos_kind k, const struct dp_qos_limit *l)
{
    if (!l->rate)
        return l->burst ? -EINVAL : 0;
    if (l->rate < rate_min(k) || l->rate > rate_max(k))
        return -EINVAL;
    if (l->burst && (l->burst < (is_bps(k) ? DP_QOS_BPS_MIN : 1) ||
                     l->burst > l->rate * DP_QOS_BURST_MULT))
        return -EINVAL;
    return 0;
}

int dp_qos_parse(enum dp_qos_kind k, const char *v, struct dp_qos_limit *out,
                 char *err, size_t errlen)
{
    if ((unsigned)k >= DP_QOS_N)
        return -EINVAL;
    struct dp_qos_limit l = { 0, 0 };
    if (v && !strcmp(v, "none")) {
        *out = l;
        return 0;
    }
    const char *slash = v ? strchr(v, '/') : NULL;
    int rc = v ? parse_num(k, v, slash ? (size_t)(slash - v) : strlen(v), &l.rate) : -EINVAL;
    if (!rc && slash)
        rc = parse_num(k, slash + 1, strlen(slash + 1), &l.burst);
    if (!rc && !l.rate)
        rc = -EINVAL;                   /* 0 would stop the device: "none" lifts a limit */
    if (!rc && slash && !l.burst)
        rc = -EINVAL;
    if (!rc)
        rc = check_limit(k, &l);
    if (rc) {
        if (is_bps(k))
            xbd_seterr(err, errlen, "expected none or RATE[/BURST] bytes/s, RATE %" PRIu64
                   "..%" PRIu64 " (suffix K, M, G, T: x1024), BURST %" PRIu64
                   "..RATE x %" PRIu64 ", got '%s'", rate_min(k), rate_max(k),
                   DP_QOS_BPS_MIN, DP_QOS_BURST_MULT, v ? v : "");
        else
            xbd_seterr(err, errlen, "expected none or RATE[/BURST] requests/s, RATE %" PRIu64
                   "..%" PRIu64 " (suffix k, m, g: x1000), BURST 1..RATE x %" PRIu64
                   ", got '%s'", rate_min(k), rate_max(k), DP_QOS_BURST_MULT,
                   v ? v : "");
        return -EINVAL;
    }
    *out = l;
    return 0;
}

void dp_qos_format(const struct dp_qos_limit *l, char *buf, size_t len)
{
    if (!l->rate)
        snprintf(buf, len, "none");
    else if (!l->burst)
        snprintf(buf, len, "%" PRIu64, l->rate);
    else
        snprintf(buf, len, "%" PRIu64 "/%" PRIu64, l->rate, l->burst);
}

bool dp_qos_any(const struct dp_qos *q)
{
    for (unsigned k = 0; k < DP_QOS_N; k++)
        if (q->l[k].rate)
            return true;
    return false;
}

/* ---- the buckets ----------------------------------------------------------- */

static double bucket_size(enum dp_qos_kind k, const struct dp_qos_limit *l)
{
    if (l->burst)
        return (double)l->burst;
    double b = (double)l->rate / 10;
    double min = is_bps(k) ? 4096 : 1;
    return b < min ? min : b;
}

void dpqos_init(struct dpqos *b)
{
    memset(b, 0, sizeof(*b));
    pthread_mutex_init(&b->lock, NULL);
}

void dpqos_fini(struct dpqos *b)
{
    pthread_mutex_destroy(&b->lock);
}

int dpqos_set(struct dpqos *b, const struct dp_qos *q, uint64_t now_ns)
{
    for (unsigned k = 0; k < DP_QOS_N; k++)
        if (check_limit((enum dp_qos_kind)k, &q->l[k]))
            return -EINVAL;
    pthread_mutex_lock(&b->lock);
    for (unsigned k = 0; k < DP_QOS_N; k++) {
        double size = bucket_size((enum dp_qos_kind)k, &q->l[k]);
        if (!b->cfg.l[k].rate || b->level[k] > size)
            b->level[k] = size;         /* new: full; kept: capped at the new burst */
        b->size[k] = size;
    }
    b->cfg = *q;
    b->last_ns = now_ns;
    __atomic_store_n(&b->on, dp_qos_any(q), __ATOMIC_RELEASE);
    pthread_mutex_unlock(&b->lock);
    return 0;
}

void dpqos_get(struct dpqos *b, struct dp_qos *out)
{
    pthread_mutex_lock(&b->lock);
    *out = b->cfg;
    pthread_mutex_unlock(&b->lock);
}

uint64_t dpqos_take(struct dpqos *b, bool write, uint64_t bytes, uint64_t now_ns)
{
    const unsigned kinds[4] = { DP_QOS_IOPS, write ? DP_QOS_WRITE_IOPS : DP_QOS_READ_IOPS,
                                DP_QOS_BPS, write ? DP_QOS_WRITE_BPS : DP_QOS_READ_BPS };
    uint64_t wait = 0;

    pthread_mutex_lock(&b->lock);
    double dt = now_ns > b->last_ns ? (double)(now_ns - b->last_ns) / 1e9 : 0;
    b->last_ns = now_ns > b->last_ns ? now_ns : b->last_ns;
    for (unsigned k = 0; k < DP_QOS_N; k++) {
        if (!b->cfg.l[k].rate)
            continue;
        b->level[k] += (double)b->cfg.l[k].rate * dt;
        if (b->level[k] > b->size[k])
            b->level[k] = b->size[k];
    }
    for (unsigned i = 0; i < 4; i++) {
        unsigned k = kinds[i];
        if (!b->cfg.l[k].rate)
            continue;
        double cost = i < 2 ? 1 : (double)bytes;
        double need = cost < b->size[k] ? cost : b->size[k];
        if (b->level[k] < need) {
            uint64_t w = (uint64_t)((need - b->level[k]) * 1e9 / (double)b->cfg.l[k].rate) + 1;
            if (w > wait)
                wait = w;
        }
    }
    if (wait) {
        /* Sleep a little longer than one request needs, so that a wake-up
         * lets several go (the thread's cost is per wake-up, and a limited
         * guest is still a neighbour): up to DPQOS_MIN_WAIT_NS, but never
         * longer than half of the smallest bucket takes to fill, which
         * keeps the rate exact. */
        uint64_t min = DPQOS_MIN_WAIT_NS;
        for (unsigned i = 0; i < 4; i++) {
            unsigned k = kinds[i];
            if (!b->cfg.l[k].rate)
                continue;
            uint64_t half = (uint64_t)(b->size[k] / 2 * 1e9 / (double)b->cfg.l[k].rate);
            if (half < min)
                min = half;
        }
        if (wait < min)
            wait = min;
    }
    if (!wait)
        for (unsigned i = 0; i < 4; i++)
            if (b->cfg.l[kinds[i]].rate)
                b->level[kinds[i]] -= i < 2 ? 1 : (double)bytes;
    pthread_mutex_unlock(&b->lock);
    return wait;
}
