/*
 * hist.c - latency histogram for xen-blkbench: log-linear buckets over
 * nanoseconds (32 sub-buckets per power of two, so any value is reported
 * within ~3 % above its true value).  No host needed; unit-tested.
 */
#include "bb.h"

#include <string.h>

void bb_hist_init(struct bb_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

unsigned bb_hist_index(uint64_t ns)
{
    if (ns < BB_HIST_SUB)
        return (unsigned)ns;
    unsigned msb = 63u - (unsigned)__builtin_clzll(ns);
    if (msb > 40)
        return BB_HIST_BUCKETS - 1;
    unsigned shift = msb - BB_HIST_SUB_BITS;
    unsigned sub = (unsigned)(ns >> shift) & (BB_HIST_SUB - 1);
    return (shift + 1) * BB_HIST_SUB + sub;
}

uint64_t bb_hist_upper(unsigned idx)
{
    if (idx < BB_HIST_SUB)
        return idx;
    unsigned group = idx / BB_HIST_SUB, sub = idx % BB_HIST_SUB;
    unsigned shift = group - 1;
    uint64_t lower = (uint64_t)(BB_HIST_SUB + sub) << shift;
    return lower + ((uint64_t)1 << shift) - 1;
}

void bb_hist_add(struct bb_hist *h, uint64_t ns)
{
    h->bucket[bb_hist_index(ns)]++;
    h->count++;
    h->sum += ns;
    if (ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
}

void bb_hist_merge(struct bb_hist *dst, const struct bb_hist *src)
{
    for (unsigned i = 0; i < BB_HIST_BUCKETS; i++)
        dst->bucket[i] += src->bucket[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t bb_hist_quantile(const struct bb_hist *h, double q)
{
    if (!h->count)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    /* rank of the wanted sample, 1-based: ceil(q * count), at least 1 */
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BB_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t u = bb_hist_upper(i);
            return u > h->max ? h->max : u;
        }
    }
    return h->max;
}
