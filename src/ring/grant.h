/*
 * grant.h - how the data plane reaches guest memory (private to src/ring/).
 *
 * One struct dpg per queue thread (it owns the grant-table handle); one
 * struct dpg_map per request slot.  The queue code only ever calls the four
 * functions below, so other grant modes slot in here without touching the
 * ring code:
 *
 *   GRANT_MODE_MAP         (implemented) one gnt_map of all data pages of a
 *                          request per request, one gnt_unmap at completion.
 *   GRANT_MODE_PERSISTENT  (next issue) dpg_get looks refs up in a per-queue
 *                          cache (persistent_cap pages, feature-persistent),
 *                          maps the misses; pages[] need not be contiguous;
 *                          dpg_put keeps the mappings.
 *   GRANT_MODE_COPY        (next issue) dpg_get hands out bounce pages and,
 *                          for !to_guest (WRITE), grant-copies the segments in
 *                          (gnt_copy, GNTCOPY_source_gref); dpg_put copies them
 *                          out for to_guest (READ) when io_ok (GNTCOPY_dest_gref)
 *                          and reports a failed copy as -EFAULT.
 *
 * Counters (gnt_map, gnt_unmap, gnt_copy, grants_mapped) are kept in the
 * queue's struct vbd_stats by these functions.
 */
#ifndef XBD_RING_GRANT_H
#define XBD_RING_GRANT_H

#include <stdbool.h>
#include <stdint.h>
#include "blkif_abi.h"
#include "dataplane.h"
#include "stats.h"

/* Single-writer counter update (the queue thread), read with atomics by
 * dp_get_stats: a relaxed store, no lock prefix on the hot path. */
#define ST_ADD(st, field, v) \
    __atomic_store_n(&(st)->field, (st)->field + (uint64_t)(v), __ATOMIC_RELAXED)
#define ST_SUB(st, field, v) \
    __atomic_store_n(&(st)->field, (st)->field - (uint64_t)(v), __ATOMIC_RELAXED)

struct dpg {
    const struct xen_ops *ops;
    struct xen_gnt *gnt;        /* this queue's handle */
    xen_domid_t domid;          /* the frontend */
    enum grant_mode mode;       /* resolved (never AUTO) */
    struct vbd_stats *st;
};

struct dpg_map {
    void *base;                 /* MAP: start of the contiguous mapping */
    uint32_t count;             /* pages held; 0 = nothing */
};

/* Open the grant handle.  mode: what the config asked; modes not implemented
 * yet fall back to MAP (*fell_back set).  0 or -errno of gnt_open. */
int  dpg_init(struct dpg *g, const struct xen_ops *ops, struct xen_host *host,
              xen_domid_t domid, enum grant_mode mode, struct vbd_stats *st, bool *fell_back);
void dpg_fini(struct dpg *g);

/*
 * Make the n data pages of one request accessible: refs[i] / segs[i] are the
 * private copies (segs[i].gref == refs[i]).  to_guest: the request moves data
 * into guest memory (READ: mapped read-write), else read-only (protocol.md
 * §4 "Grant access").  pages[i] gets the local address of page i.
 * 0, or -errno (bad, revoked or read-only ref: the request is answered ERROR).
 */
int  dpg_get(struct dpg *g, struct dpg_map *m, const uint32_t *refs,
             const struct blkif_request_segment *segs, unsigned n, bool to_guest, void **pages);

/* Release what dpg_get took.  0, or -EFAULT when data could not be handed
 * back to the guest (copy mode); idempotent (m->count == 0: nothing). */
int  dpg_put(struct dpg *g, struct dpg_map *m, bool to_guest, bool io_ok);

/*
 * INDIRECT: read nsegs segment descriptors from the npages indirect pages
 * (refs) into the private array dst, each byte once; the pages are mapped
 * read-only and released before returning (bb/blkback.c:929-950).
 * 0 or -errno.
 */
int  dpg_read_indirect(struct dpg *g, const uint32_t *refs, unsigned npages,
                       struct blkif_request_segment *dst, unsigned nsegs);

#endif
