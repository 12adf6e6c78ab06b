/*
 * grant_copy.c - GRANT_MODE_COPY (dpg_ops_copy): guest data moves by grant copy
 * (xengnttab_grant_copy, GNTTABOP_copy) between guest pages and our own
 * bounce buffers, as QEMU's qdisk (xen_device_copy_grant_refs) and tapdisk3
 * do.  No guest page is ever mapped, so nothing can be left mapped and a
 * frontend may revoke grants at any time.
 *
 * Bounce buffers: one anonymous mapping per queue (page aligned, touched
 * lazily), split into one area per request slot of
 *   min(max_segs, max(11, DPG_COPY_POOL_PAGES / nr_slots)) pages;
 * a request's data is packed contiguously (one iovec, one engine READ/WRITE).
 * A request larger than its slot's area (only with indirect segments on big
 * rings) gets a page-aligned buffer of max_segs pages of its own for its
 * lifetime (fallback); released fallback buffers are kept for reuse, up to
 * DPG_COPY_SPARE_MAX per queue, so a stream of big requests does not pay
 * an allocation, page faults and a munmap per request (measured: 1 MiB
 * requests spent most of their time there).
 *
 * Batching: dpg_get of a WRITE and dpg_copy_out of a completed READ only add
 * segments to the queue's batch; the queue calls dpg_copy_flush once per
 * sweep (WRITEs, before the engine submit) and once per completion batch
 * (READs, before the responses): one gnt_copy call each, per-segment status
 * checked, a failed segment fails its request only.
 */
#include "grant.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define DPG_COPY_POOL_PAGES 16384u      /* bounce pages per queue (64 MiB virtual) */
#define DPG_COPY_BATCH_MAX 65536u       /* segments per gnt_copy call */
#define DPG_COPY_SPARE_MAX 16u          /* fallback buffers kept per queue */

static int cp_setup(struct dpg *g, const struct dp_config *cfg, unsigned nr_slots,
                    unsigned max_segs)
{
    (void)cfg;
    struct dpg_copy *cp = &g->cp;
    unsigned per = DPG_COPY_POOL_PAGES / nr_slots;
    if (per < BLKIF_MAX_SEGMENTS_PER_REQUEST)
        per = BLKIF_MAX_SEGMENTS_PER_REQUEST;
    if (per > max_segs)
        per = max_segs;
    cp->per_slot = (size_t)per * XEN_PAGE_SIZE;
    cp->pool_len = cp->per_slot * nr_slots;
    void *pool = mmap(NULL, cp->pool_len, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (pool == MAP_FAILED) {
        cp->pool = NULL;
        return -ENOMEM;
    }
    cp->pool = pool;
    size_t cap = (size_t)nr_slots * max_segs;
    cp->cap = cap > DPG_COPY_BATCH_MAX ? DPG_COPY_BATCH_MAX : (unsigned)cap;
    cp->seg = calloc(cp->cap, sizeof(*cp->seg));
    cp->map = calloc(nr_slots, sizeof(*cp->map));
    cp->spare = calloc(DPG_COPY_SPARE_MAX, sizeof(*cp->spare));
    cp->nspare = 0;
    cp->spare_len = (size_t)max_segs * XEN_PAGE_SIZE;
    if (!cp->seg || !cp->map || !cp->spare)
        return -ENOMEM;
    cp->nseg = cp->nmap = 0;
    return 0;
}

static void cp_fini(struct dpg *g)
{
    struct dpg_copy *cp = &g->cp;
    if (cp->pool)
        munmap(cp->pool, cp->pool_len);
    cp->pool = NULL;
    for (unsigned i = 0; cp->spare && i < cp->nspare; i++)
        free(cp->spare[i]);
    free(cp->spare);
    cp->spare = NULL;
    cp->nspare = 0;
    free(cp->seg);
    free(cp->map);
    cp->seg = NULL;
    cp->map = NULL;
}

bool dpg_copy_room(const struct dpg *g, unsigned n)
{
    return g->cp.nseg + n <= g->cp.cap;
}

/* Add the n segments of m to the batch; to_guest: bounce -> guest. */
static void add_segs(struct dpg *g, struct dpg_map *m, const struct blkif_request_segment *segs,
                     unsigned n, bool to_guest)
{
    struct dpg_copy *cp = &g->cp;
    uint8_t *p = m->base;
    m->cstart = cp->nseg;
    m->ccount = n;
    for (unsigned i = 0; i < n; i++) {
        xengnttab_grant_copy_segment_t *c = &cp->seg[cp->nseg++];
        uint16_t off = (uint16_t)(segs[i].first_sect << 9);
        uint16_t len = (uint16_t)((segs[i].last_sect - segs[i].first_sect + 1) << 9);
        memset(c, 0, sizeof(*c));
        if (to_guest) {
            c->source.virt = p;
            c->dest.foreign.ref = segs[i].gref;
            c->dest.foreign.offset = off;
            c->dest.foreign.domid = (uint16_t)g->domid;
            c->flags = GNTCOPY_dest_gref;
        } else {
            c->source.foreign.ref = segs[i].gref;
            c->source.foreign.offset = off;
            c->source.foreign.domid = (uint16_t)g->domid;
            c->dest.virt = p;
            c->flags = GNTCOPY_source_gref;
        }
        c->len = len;
        p += len;
    }
    cp->map[cp->nmap++] = m;
    m->copy_pending = true;
    m->copy_err = false;
}

static int cp_get(struct dpg *g, struct dpg_map *m, const struct blkif_request_segment *segs,
                  unsigned n, bool to_guest, struct iovec *iov, unsigned *niov)
{
    size_t bytes = 0;
    for (unsigned i = 0; i < n; i++)
        bytes += (size_t)(segs[i].last_sect - segs[i].first_sect + 1) << 9;
    uint8_t *buf = m->bounce;
    if (bytes > g->cp.per_slot) {
        void *p;
        if (bytes > g->cp.spare_len)
            return -EINVAL;             /* n <= max_segs: cannot happen */
        if (g->cp.nspare)
            p = g->cp.spare[--g->cp.nspare];
        else if (posix_memalign(&p, XEN_PAGE_SIZE, g->cp.spare_len) != 0)
            return -ENOMEM;
        g->cp.fallbacks++;
        m->own = p;
        buf = p;
    }
    m->base = buf;
    m->held = true;
    m->copy_pending = false;
    m->copy_err = false;
    iov[0].iov_base = buf;
    iov[0].iov_len = bytes;
    *niov = 1;
    if (!to_guest)
        add_segs(g, m, segs, n, false);
    return 0;
}

void dpg_copy_out(struct dpg *g, struct dpg_map *m, const struct blkif_request_segment *segs,
                  unsigned n)
{
    add_segs(g, m, segs, n, true);
}

void dpg_copy_flush(struct dpg *g)
{
    struct dpg_copy *cp = &g->cp;
    if (!cp->nmap)
        return;
    ST_ADD(g->st, gnt_copy, 1);
    int rc = g->ops->gnt_copy(g->gnt, cp->nseg, cp->seg);
    for (unsigned k = 0; k < cp->nmap; k++) {
        struct dpg_map *m = cp->map[k];
        bool err = rc < 0;
        for (uint32_t i = m->cstart; !err && i < m->cstart + m->ccount; i++)
            err = cp->seg[i].status != GNTST_okay;
        m->copy_err = err;
        m->copy_pending = false;
    }
    cp->nseg = cp->nmap = 0;
}

static void cp_put(struct dpg *g, struct dpg_map *m)
{
    if (m->own) {
        if (g->cp.spare && g->cp.nspare < DPG_COPY_SPARE_MAX)
            g->cp.spare[g->cp.nspare++] = m->own;
        else
            free(m->own);
    }
    m->own = NULL;
    m->copy_pending = false;
}

static int cp_read_indirect(struct dpg *g, const uint32_t *refs, unsigned npages,
                            struct blkif_request_segment *dst, unsigned nsegs)
{
    const unsigned per = BLKIF_SEGS_PER_INDIRECT_PAGE;
    xengnttab_grant_copy_segment_t c[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
    unsigned n = 0;
    memset(c, 0, sizeof(c));
    for (unsigned p = 0; p < npages && p * per < nsegs; p++, n++) {
        unsigned k = nsegs - p * per < per ? nsegs - p * per : per;
        c[p].source.foreign.ref = refs[p];
        c[p].source.foreign.offset = 0;
        c[p].source.foreign.domid = (uint16_t)g->domid;
        c[p].dest.virt = dst + (size_t)p * per;
        c[p].len = (uint16_t)(k * sizeof(*dst));
        c[p].flags = GNTCOPY_source_gref;
    }
    ST_ADD(g->st, gnt_copy, 1);
    int rc = g->ops->gnt_copy(g->gnt, n, c);
    if (rc < 0)
        return rc;
    for (unsigned p = 0; p < n; p++)
        if (c[p].status != GNTST_okay)
            return -EINVAL;
    return 0;
}

/* This slot's area of the bounce pool. */
static void cp_map_init(struct dpg *g, struct dpg_map *m, unsigned idx)
{
    m->bounce = g->cp.pool + (size_t)idx * g->cp.per_slot;
}

const struct dpg_ops dpg_ops_copy = {
    .features = DPG_F_COPY,
    .setup = cp_setup,
    .map_init = cp_map_init,
    .get = cp_get,
    .put = cp_put,
    .read_indirect = cp_read_indirect,
    .fini = cp_fini,
};
