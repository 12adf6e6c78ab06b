/*
 * grant.h - how the data plane reaches guest memory (private to src/ring/).
 *
 * One struct dpg per queue thread (it owns the grant-table handle, the
 * persistent-grant cache, the bounce buffers and the grant-copy batch); one
 * struct dpg_map per request slot.  The queue code only calls the functions
 * below, whatever the mode; each mode is one struct dpg_ops (below), picked
 * by dpg_setup:
 *
 *   GRANT_MODE_MAP         one gnt_map of all data pages of a request
 *                          (read-only for WRITE, read-write for READ), one
 *                          gnt_unmap at completion (grant.c).
 *   GRANT_MODE_PERSISTENT  blkif.h feature-persistent (Linux blkback.c
 *                          persistent_gnt, docs/protocol.md §1.2): data and indirect pages are
 *                          mapped read-write once and kept in a per-queue
 *                          cache keyed by gref (grant_persist.c), at most
 *                          persistent_cap pages; beyond the cap the extra
 *                          pages of a request are mapped for that request
 *                          only; LRU purge, idle release, unmap at stop.
 *   GRANT_MODE_COPY        grant copy through preallocated bounce buffers
 *                          (grant_copy.c; QEMU qdisk, tapdisk3): no guest
 *                          page is ever mapped; the data of every WRITE of a
 *                          sweep is copied in by one gnt_copy, the data of
 *                          every READ of a completion batch out by one.
 *
 * Counters (gnt_map, gnt_unmap, gnt_copy calls; grants_mapped pages) are kept
 * in the queue's struct vbd_stats by these functions.  Units: pages are
 * XEN_PAGE_SIZE bytes; segment sectors are 512 bytes.
 */
#ifndef XBD_RING_GRANT_H
#define XBD_RING_GRANT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include "blkif_abi.h"
#include "dataplane.h"
#include "stats.h"

/* Single-writer counter update (the queue thread), read with atomics by
 * dp_get_stats: a relaxed store, no lock prefix on the hot path. */
#define ST_ADD(st, field, v) \
    __atomic_store_n(&(st)->field, (st)->field + (uint64_t)(v), __ATOMIC_RELAXED)
#define ST_SUB(st, field, v) \
    __atomic_store_n(&(st)->field, (st)->field - (uint64_t)(v), __ATOMIC_RELAXED)
#define ST_SET(st, field, v) __atomic_store_n(&(st)->field, (uint64_t)(v), __ATOMIC_RELAXED)

#define DPG_PERSISTENT_CAP_DEFAULT 1056u        /* pages per queue (Linux max_pgrants) */
#define DPG_PERSISTENT_CAP_AUTO_MAX 8192u       /* pages per queue (32 MiB) for cap 0 = auto */
#define DPG_PERSISTENT_IDLE_MS_DEFAULT 60000u   /* Linux persistent_grant_unused_seconds */
#define DPG_PURGE_INTERVAL_MS 100u              /* Linux LRU_INTERVAL */
#define DPG_PURGE_PERCENT 5u                    /* Linux LRU_PERCENT_CLEAN */
#define DPG_NIL UINT32_MAX

/* One persistent grant (an entry of the per-queue cache). */
struct dpg_pgnt {
    uint32_t gref;
    uint32_t hnext;             /* hash chain / free list, DPG_NIL ends */
    uint32_t prev, next;        /* LRU list: head = most recently used */
    void *addr;                 /* our mapping of the page (read-write) */
    uint64_t last_ns;           /* last use, CLOCK_MONOTONIC */
    const void *owner;          /* the request using it; NULL = idle */
};

struct dpg_pcache {
    struct dpg_pgnt *ent;       /* [cap], preallocated */
    uint32_t *bucket;           /* [nbucket] heads, power of two */
    uint32_t nbucket, cap, count;
    uint32_t free_head, lru_head, lru_tail;
    bool overflow;              /* a request went past the cap since the last purge */
    uint64_t idle_ns;           /* release after this long unused */
    uint64_t idle_scan_ns;      /* interval of the idle scan */
    uint64_t next_purge_ns, next_idle_ns;
    uint64_t busy_refusals;     /* grefs refused because another request held them */
    uint32_t *oref, *oidx;      /* [max_segs] scratch: refs past the cap, their index */
    uint32_t ind_ent[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];   /* entries of indirect pages */
};

struct dpg_copy {
    uint8_t *pool;              /* nr_slots * per_slot bytes, page aligned (mmap) */
    size_t pool_len, per_slot;
    xengnttab_grant_copy_segment_t *seg;   /* the batch [cap] */
    struct dpg_map **map;       /* requests in the batch [cap] */
    unsigned cap, nseg, nmap;
    uint64_t fallbacks;         /* requests larger than their slot's bounce area */
    uint8_t **spare;            /* freed fallback buffers kept for reuse [DPG_COPY_SPARE_MAX] */
    unsigned nspare;
    size_t spare_len;           /* bytes of every fallback buffer: max_segs pages */
};

struct dpg_ops;

struct dpg {
    const struct xen_ops *ops;
    const struct dpg_ops *mode_ops;   /* of `mode`, chosen once by dpg_setup */
    struct xen_gnt *gnt;        /* this queue's handle */
    xen_domid_t domid;          /* the frontend */
    enum grant_mode mode;       /* resolved (never AUTO) */
    struct vbd_stats *st;
    unsigned max_segs;
    uint64_t now_ns;            /* the queue loop's clock (dpg_tick) */
    uint32_t busy_gref;         /* last gref refused as in use (for the log line) */
    /* scratch for one request (the queue thread is single threaded) */
    uint32_t *sref;             /* [max_segs] refs of the request */
    void **spage;               /* [max_segs] page address per segment */
    struct dpg_pcache pc;
    struct dpg_copy cp;
};

struct dpg_map {
    uint32_t count;             /* MAP: pages of the mapping; PERSISTENT: overflow pages */
    void *base;                 /* start of that contiguous mapping */
    uint32_t *ent;              /* PERSISTENT: cache entries held [max_segs] (slot storage) */
    uint32_t nent;
    /* COPY */
    uint8_t *bounce;            /* this slot's bounce area (pool), or the fallback */
    uint8_t *own;               /* fallback buffer to free, NULL = pool */
    uint32_t cstart, ccount;    /* segments of this request in the copy batch */
    bool held;                  /* something to release with dpg_put */
    bool copy_pending;          /* data moves at the next dpg_copy_flush */
    bool copy_err;              /* result of that copy: a segment failed */
};

/* Mode actually used: AUTO -> PERSISTENT when feature-persistent was
 * negotiated, else COPY (measured ~2x faster than MAP on the simulated host,
 * see xen-blkbackd-engines(7)); PERSISTENT without negotiation -> MAP
 * (what Linux blkback does); MAP and COPY as asked. */
enum grant_mode dpg_resolve_mode(enum grant_mode asked, bool persistent);

/* Open the grant handle (needed to map the ring).  0 or -errno of gnt_open. */
int  dpg_init(struct dpg *g, const struct xen_ops *ops, struct xen_host *host,
              xen_domid_t domid, struct vbd_stats *st);

/*
 * Allocate what the mode needs for a queue of nr_slots request slots of at
 * most max_segs segments: scratch arrays; PERSISTENT: the cache of
 * cfg->persistent_cap pages (0 = dpg_persistent_cap_auto), idle release after
 * cfg->persistent_idle_ms (0 = 60 s); COPY: the bounce pool and the batch.
 * mode: resolved; it selects g->mode_ops (MAP for anything else).
 * 0 or -ENOMEM (dpg_fini frees what was allocated).
 */
int  dpg_setup(struct dpg *g, const struct dp_config *cfg, enum grant_mode mode,
               unsigned nr_slots, unsigned max_segs);

/*
 * The persistent-grant cap used when the configuration gives 0 ("auto"):
 * what a frontend that keeps every grant of a full ring persistent can use,
 * nr_slots * (max_segs data pages + their indirect pages), so that e.g.
 * 1 MiB requests (256 segments) at queue depth 8-32 never overflow into
 * per-request mappings; at least DPG_PERSISTENT_CAP_DEFAULT (Linux
 * max_pgrants, 1056: a 32-slot ring of 11-segment requests x 3) and at most
 * DPG_PERSISTENT_CAP_AUTO_MAX pages (32 MiB of guest memory mapped per
 * queue: on Xen each mapping holds a dom0 page frame).  Pages.
 */
unsigned dpg_persistent_cap_auto(unsigned nr_slots, unsigned max_segs);

/* Give slot number `idx` its map: `ent` is slot storage of max_segs entries. */
void dpg_map_init(struct dpg *g, struct dpg_map *m, unsigned idx, uint32_t *ent);

/* Unmap every persistent grant (dp_stop; no request may hold one). */
void dpg_release_all(struct dpg *g);

/* Release everything (cache, pool, batch) and close the handle. */
void dpg_fini(struct dpg *g);

/*
 * Make the n data segments of one request accessible and describe them as
 * iovecs (iov: room for n entries; adjacent pieces are merged).  segs is the
 * private copy.  to_guest: data moves into guest memory (READ).
 * MAP: read-only mapping for WRITE, read-write for READ (docs/protocol.md
 * §4.7 (grant-access)).  COPY: for a WRITE m->copy_pending is set: the data is in
 * the iovecs only after dpg_copy_flush (then check m->copy_err); the caller
 * must have checked dpg_copy_room first.
 * 0, or -errno: -EINVAL bad/revoked/read-only ref, -EBUSY a persistent gref
 * in use by another in-flight request (g->busy_gref; Linux "requesting a
 * grant already in use"), -ENOMEM.  The request is then answered ERROR;
 * nothing is held.
 */
int  dpg_get(struct dpg *g, struct dpg_map *m, const struct blkif_request_segment *segs,
             unsigned n, bool to_guest, struct iovec *iov, unsigned *niov);

/* Release what dpg_get took (idempotent). */
void dpg_put(struct dpg *g, struct dpg_map *m);

/* DPG_F_COPY (dpg_copies): can n more segments join the current batch?
 * (Else flush first.) */
bool dpg_copy_room(const struct dpg *g, unsigned n);

/* DPG_F_COPY: queue the copy of a completed READ's data from the bounce area back
 * to the guest (GNTCOPY_dest_gref); done at the next dpg_copy_flush, which
 * sets m->copy_err.  Caller checked dpg_copy_room. */
void dpg_copy_out(struct dpg *g, struct dpg_map *m, const struct blkif_request_segment *segs,
                  unsigned n);

/* DPG_F_COPY: one gnt_copy of the whole batch; sets copy_err of every request in
 * it and clears copy_pending.  No-op on an empty batch. */
void dpg_copy_flush(struct dpg *g);

/*
 * INDIRECT: read nsegs segment descriptors from the npages indirect pages
 * (refs) into the private array dst, each byte once (docs/protocol.md §4.5;
 * torvalds/linux:drivers/block/xen-blkback/blkback.c@v6.1 xen_blkbk_parse_indirect).
 * MAP: the pages are mapped read-only and unmapped before returning;
 * PERSISTENT: through the cache; COPY: one gnt_copy straight into dst.
 * 0 or -errno (as dpg_get).
 */
int  dpg_read_indirect(struct dpg *g, const uint32_t *refs, unsigned npages,
                       struct blkif_request_segment *dst, unsigned nsegs);

/* Periodic work of the persistent cache (LRU purge after an overflow,
 * every 100 ms; release of grants idle for the idle time).  Also sets the
 * clock used to stamp grants.  Cheap when nothing is due. */
void dpg_tick(struct dpg *g, uint64_t now_ns);

/* CLOCK_MONOTONIC ns of the next dpg_tick with work to do, 0 = none. */
uint64_t dpg_next_tick(const struct dpg *g);

/*
 * One grant mode behind an ops table (as the engines, engine.h, and the Xen
 * seam, xen_ops.h; cf. QEMU's gnttab backend ops with their features bits):
 * dpg_setup picks the table of the resolved mode once, the dpg_* entry
 * points above check their arguments and dispatch, and the queue asks for a
 * capability (dpg_copies, dpg_has_tick) instead of testing the mode.  Each
 * implementation keeps the grant counters of g->st (gnt_map, gnt_unmap,
 * gnt_copy calls; grants_mapped pages) for what it does.
 */
#define DPG_F_COPY 1u           /* data moves by batched grant copy: a WRITE's data is in
                                 * its iovecs only after dpg_copy_flush (m->copy_pending);
                                 * a completed READ's goes back by dpg_copy_out + flush */

struct dpg_ops {
    unsigned features;          /* DPG_F_* */
    /* Optional.  Allocate the mode's state (dpg_setup, after the scratch
     * arrays).  0 or -ENOMEM. */
    int  (*setup)(struct dpg *g, const struct dp_config *cfg, unsigned nr_slots,
                  unsigned max_segs);
    /* Optional.  The mode's part of slot idx's map (dpg_map_init). */
    void (*map_init)(struct dpg *g, struct dpg_map *m, unsigned idx);
    /* Required.  dpg_get, 0 < n <= max_segs already checked. */
    int  (*get)(struct dpg *g, struct dpg_map *m, const struct blkif_request_segment *segs,
                unsigned n, bool to_guest, struct iovec *iov, unsigned *niov);
    /* Required.  dpg_put of a held map (the caller then clears base, count, held). */
    void (*put)(struct dpg *g, struct dpg_map *m);
    /* Required.  dpg_read_indirect, npages and nsegs already checked. */
    int  (*read_indirect)(struct dpg *g, const uint32_t *refs, unsigned npages,
                          struct blkif_request_segment *dst, unsigned nsegs);
    /* Optional.  dpg_release_all. */
    void (*release_all)(struct dpg *g);
    /* Optional.  Free the mode's state, also after a failed or partial
     * setup (dpg_fini, before the handle is closed). */
    void (*fini)(struct dpg *g);
    /* Optional (both or neither).  Periodic housekeeping (dpg_tick, after
     * g->now_ns is set) and when it is next due (dpg_next_tick; 0 = none). */
    void (*tick)(struct dpg *g, uint64_t now_ns);
    uint64_t (*next_tick)(const struct dpg *g);
};

extern const struct dpg_ops dpg_ops_map;          /* grant.c */
extern const struct dpg_ops dpg_ops_copy;         /* grant_copy.c */
extern const struct dpg_ops dpg_ops_persistent;   /* grant_persist.c */

/* Does the data of g's requests move by batched grant copy (DPG_F_COPY)? */
static inline bool dpg_copies(const struct dpg *g)
{
    return g->mode_ops->features & DPG_F_COPY;
}

/* Does g's mode need dpg_tick from the queue loop? */
static inline bool dpg_has_tick(const struct dpg *g)
{
    return g->mode_ops->tick != NULL;
}

/* ---- private to grant*.c ------------------------------------------------ */
/* iovecs of n segments whose pages are at pages[i]: first_sect..last_sect of
 * each (512-byte sectors), adjacent pieces merged.  Returns the count. */
unsigned dpg_build_iov(const struct blkif_request_segment *segs, unsigned n, void **pages,
                       struct iovec *iov);

#endif
