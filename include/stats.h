/*
 * stats.h - per-vbd counters, named as Linux blkback names them
 * (Documentation/ABI/testing/sysfs-driver-xen-blkback: oo_req rd_req wr_req
 * f_req ds_req rd_sect wr_sect), kept per queue by the queue thread and summed
 * on read.  Sectors are 512-byte units.
 *
 * Every field is a uint64_t the queue thread alone writes (relaxed atomic
 * stores: ST_ADD in src/ring/grant.h) and any thread reads with relaxed
 * atomic loads (vbd_stats_add): each value is read whole, a snapshot of
 * several may be torn across fields (a histogram's count one request ahead
 * of its buckets, say).
 *
 * Latency histograms (per op, struct vbd_lat): log-linear buckets in
 * nanoseconds, VBD_LAT_SUB linear steps per power of two from
 * 2^VBD_LAT_MIN_SHIFT to 2^VBD_LAT_MAX_SHIFT (4.096 us .. 8.59 s), plus one
 * overflow bucket; bucket i counts values v with bound(i-1) < v <= bound(i)
 * (Prometheus `le`), bucket 0 everything up to 2^VBD_LAT_MIN_SHIFT.
 * `total`: from the request being consumed off the ring to its response
 * being pushed (rsp_prod); `engine`: the part spent in the storage engine
 * (engine submit to completion reaped, summed over the request's stages).
 */
#ifndef XBD_STATS_H
#define XBD_STATS_H
#include <stdint.h>

enum vbd_op {                   /* the ops of the histograms and xen_blkback_*{op=} */
    VBD_OP_READ = 0,
    VBD_OP_WRITE,
    VBD_OP_FLUSH,               /* FLUSH_DISKCACHE and WRITE_BARRIER (blkback's f_req) */
    VBD_OP_DISCARD,
    VBD_OP_N,
    VBD_OP_NONE = 0xff,         /* a request refused before its kind was counted */
};

#define VBD_LAT_SUB_BITS 2
#define VBD_LAT_SUB (1u << VBD_LAT_SUB_BITS)
#define VBD_LAT_MIN_SHIFT 12
#define VBD_LAT_MAX_SHIFT 33
/* bucket 0, VBD_LAT_SUB per octave, the overflow bucket (+Inf) */
#define VBD_LAT_BUCKETS (2 + (VBD_LAT_MAX_SHIFT - VBD_LAT_MIN_SHIFT) * VBD_LAT_SUB)

struct vbd_hist {
    uint64_t bucket[VBD_LAT_BUCKETS];       /* not cumulative */
    uint64_t sum_ns;
};

struct vbd_lat {
    struct vbd_hist total, engine;
};

struct vbd_stats {
    uint64_t oo_req;        /* times the ring had requests but no free request slot */
    uint64_t rd_req, wr_req, f_req, ds_req;   /* requests by kind (f_req: flush+barrier) */
    uint64_t rd_sect, wr_sect;                /* 512-byte sectors transferred */
    uint64_t errors;        /* responses with BLKIF_RSP_ERROR */
    uint64_t eopnotsupp;    /* responses with BLKIF_RSP_EOPNOTSUPP */
    uint64_t bad_req;       /* requests refused by validation (subset of errors/eopnotsupp) */
    uint64_t io_errors;     /* storage errors (subset of errors) */
    uint64_t throttled;     /* READ/WRITE requests held back by the QoS limits */
    uint64_t throttle_ns;   /* time they waited for the buckets, CLOCK_MONOTONIC ns */
    uint64_t replayed;      /* requests re-issued from the restart state (xen-blkbackd(8) RESTART) */
    /* protocol cost */
    uint64_t gnt_map, gnt_unmap, gnt_copy;    /* ops calls (batched calls count once) */
    uint64_t notify;        /* event channel notifications sent */
    uint64_t kicks;         /* event channel notifications received */
    uint64_t submits;       /* engine submit calls */
    uint64_t sleeps;        /* times a queue thread slept (ppoll or the engine's wait) */
    uint64_t engine_waits;  /* of those, in the engine's wait (submit + sleep in one call) */
    uint64_t grants_mapped; /* gauge: pages currently mapped (ring + data + persistent) */
    uint64_t inflight;      /* gauge: requests being processed */
    uint64_t halted;        /* gauge: rings halted for a protocol violation */
    uint64_t ring_slots;    /* gauge: requests the ring holds (RING_SIZE) */
    uint64_t ring_occupancy;    /* gauge: requests on the ring not answered yet
                                   (req_prod last seen - rsp_prod) */
    struct vbd_lat lat[VBD_OP_N];   /* latency histograms by enum vbd_op */
};

/*
 * The statistics record tapdisk3 keeps per vbd in a shared-memory file and
 * libxenstat (xentop) reads for a vbd3 device since Xen 4.19: struct stats of
 * xapi-project/blktap:drivers/tapdisk-metrics-stats.h@79774319a75a, read as
 * struct vbd3_stats (xen-project/xen:tools/libs/stat/xenstat_priv.h@RELEASE-4.20.0)
 * by read_attributes_vbd3 of tools/libs/stat/xenstat_linux.c, which takes
 * the first sizeof (96) bytes, refuses a version other than
 * TD3_STATS_VERSION and uses oo_reqs, read_reqs_submitted, read_sectors,
 * write_reqs_submitted and write_sectors (xentop's VBD_OO, VBD_RD, VBD_WR,
 * VBD_RSECT, VBD_WSECT).  Host byte order.  Sectors are 512-byte units;
 * ticks are microseconds (tapdisk: gettimeofday from submission to
 * completion; ours: the `total` latency of struct vbd_lat).  Where the file
 * lives: src/backend/td3_stats.c.
 */
#define TD3_STATS_VERSION 1u
struct td3_stats {
    uint32_t version;
    uint32_t __pad;
    uint64_t oo_reqs;               /* vbd_stats.oo_req */
    uint64_t read_reqs_submitted;   /* rd_req: READs taken off the ring and validated */
    uint64_t read_reqs_completed;   /* of those, answered */
    uint64_t read_sectors;          /* rd_sect */
    uint64_t read_total_ticks;      /* us, summed over the completed READs */
    uint64_t write_reqs_submitted;  /* wr_req */
    uint64_t write_reqs_completed;
    uint64_t write_sectors;         /* wr_sect (FLUSH/BARRIER data included, as blkback) */
    uint64_t write_total_ticks;     /* us */
    uint64_t io_errors;             /* io_errors */
    uint64_t flags;                 /* 0 (tapdisk3 sets none either) */
};
_Static_assert(sizeof(struct td3_stats) == 96, "libxenstat's struct vbd3_stats");

/* dst += src, gauges included. */
static inline void vbd_stats_add(struct vbd_stats *dst, const struct vbd_stats *src)
{
    const uint64_t *s = (const uint64_t *)src;
    uint64_t *d = (uint64_t *)dst;
    for (unsigned i = 0; i < sizeof(*src) / sizeof(uint64_t); i++)
        d[i] += __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

/* Zero the gauges (the counters of a ring that is gone are kept, its gauges not). */
static inline void vbd_stats_clear_gauges(struct vbd_stats *s)
{
    s->grants_mapped = s->inflight = s->halted = s->ring_slots = s->ring_occupancy = 0;
}

/* Histogram bucket of a latency of `ns` nanoseconds (0..VBD_LAT_BUCKETS-1). */
static inline unsigned vbd_lat_bucket(uint64_t ns)
{
    if (ns <= (1ull << VBD_LAT_MIN_SHIFT))
        return 0;
    uint64_t x = ns - 1;
    unsigned o = 63u - (unsigned)__builtin_clzll(x);
    if (o >= VBD_LAT_MAX_SHIFT)
        return VBD_LAT_BUCKETS - 1;
    return 1 + (o - VBD_LAT_MIN_SHIFT) * VBD_LAT_SUB +
           (unsigned)((x >> (o - VBD_LAT_SUB_BITS)) & (VBD_LAT_SUB - 1));
}

/* Upper bound of bucket i in nanoseconds; UINT64_MAX for the overflow bucket. */
static inline uint64_t vbd_lat_bound_ns(unsigned i)
{
    if (i == 0)
        return 1ull << VBD_LAT_MIN_SHIFT;
    if (i >= VBD_LAT_BUCKETS - 1)
        return UINT64_MAX;
    unsigned o = VBD_LAT_MIN_SHIFT + (i - 1) / VBD_LAT_SUB, k = (i - 1) % VBD_LAT_SUB + 1;
    return (1ull << o) + ((uint64_t)k << (o - VBD_LAT_SUB_BITS));
}

#endif
