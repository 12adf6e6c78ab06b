/*
 * stats.h - per-vbd counters, named as Linux blkback names them
 * (Documentation/ABI/testing/sysfs-driver-xen-blkback: oo_req rd_req wr_req
 * f_req ds_req rd_sect wr_sect), kept per queue by the queue thread and summed
 * on read.  Sectors are 512-byte units.
 */
#ifndef XBD_STATS_H
#define XBD_STATS_H
#include <stdint.h>

struct vbd_stats {
    uint64_t oo_req;        /* times the ring had requests but no free request slot */
    uint64_t rd_req, wr_req, f_req, ds_req;   /* requests by kind (f_req: flush+barrier) */
    uint64_t rd_sect, wr_sect;                /* 512-byte sectors transferred */
    uint64_t errors;        /* responses with BLKIF_RSP_ERROR */
    uint64_t eopnotsupp;    /* responses with BLKIF_RSP_EOPNOTSUPP */
    uint64_t bad_req;       /* requests refused by validation (subset of errors/eopnotsupp) */
    uint64_t io_errors;     /* storage errors (subset of errors) */
    uint64_t replayed;      /* requests re-issued from the restart state (xen-blkbackd(8) RESTART) */
    /* protocol cost */
    uint64_t gnt_map, gnt_unmap, gnt_copy;    /* ops calls (batched calls count once) */
    uint64_t notify;        /* event channel notifications sent */
    uint64_t kicks;         /* event channel notifications received */
    uint64_t submits;       /* engine submit calls */
    uint64_t grants_mapped; /* gauge: pages currently mapped (ring + data + persistent) */
    uint64_t inflight;      /* gauge: requests being processed */
    uint64_t halted;        /* gauge: rings halted for a protocol violation */
};

/* dst += src, gauges included. */
static inline void vbd_stats_add(struct vbd_stats *dst, const struct vbd_stats *src)
{
    const uint64_t *s = (const uint64_t *)src;
    uint64_t *d = (uint64_t *)dst;
    for (unsigned i = 0; i < sizeof(*src) / sizeof(uint64_t); i++)
        d[i] += __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

#endif
