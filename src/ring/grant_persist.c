/*
 * grant_persist.c - GRANT_MODE_PERSISTENT: the per-queue cache of persistent
 * grants (blkif.h feature-persistent; torvalds/linux:drivers/block/xen-blkback/blkback.c@v6.1
 * get/add/put/purge_persistent_gnt): struct dpg_ops dpg_ops_persistent,
 * reached through dpg_get / dpg_read_indirect / dpg_tick (grant.c).
 *
 * - A gref seen for the first time is mapped read-write (a persistent gref
 *   may carry data both ways) and kept, keyed by gref in a hash table of
 *   preallocated entries: no allocation per request.
 * - At most `cap` pages are kept.  Past the cap, the extra pages of a request
 *   are mapped for that request only (one gnt_map) and the cache is marked
 *   overflowed: the next purge (every 100 ms, Linux LRU_INTERVAL) unmaps the
 *   5% least recently used grants that no in-flight request holds, making
 *   room for the new working set (Linux LRU_PERCENT_CLEAN).
 * - Grants unused for the idle time (60 s, Linux persistent_grant_unused_
 *   seconds) are unmapped by the idle scan, run from the queue loop at most
 *   once a second (cheap: it starts at the LRU tail and stops at the first
 *   recent grant).
 * - A gref held by another in-flight request is refused (-EBUSY): a correct
 *   frontend never has one page in two requests at once (Linux: "requesting
 *   a grant already in use").  The same gref twice in one request is fine.
 * - Every grant is unmapped at dp_stop (dpg_release_all).
 */
#include "grant.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MS_NS 1000000ull

static uint32_t hash_ref(const struct dpg_pcache *pc, uint32_t gref)
{
    return (uint32_t)((gref * 0x9E3779B1u) >> 7) & (pc->nbucket - 1);
}

static int pc_setup(struct dpg *g, unsigned cap, unsigned idle_ms)
{
    struct dpg_pcache *pc = &g->pc;
    uint32_t nb = 16;
    while (nb < 2 * cap)
        nb <<= 1;
    pc->ent = calloc(cap, sizeof(*pc->ent));
    pc->bucket = malloc(nb * sizeof(*pc->bucket));
    pc->oref = calloc(g->max_segs, sizeof(*pc->oref));
    pc->oidx = calloc(g->max_segs, sizeof(*pc->oidx));
    if (!pc->ent || !pc->bucket || !pc->oref || !pc->oidx)
        return -ENOMEM;
    memset(pc->bucket, 0xff, nb * sizeof(*pc->bucket));      /* DPG_NIL */
    pc->nbucket = nb;
    pc->cap = cap;
    pc->count = 0;
    for (uint32_t i = 0; i < cap; i++)
        pc->ent[i].hnext = i + 1 < cap ? i + 1 : DPG_NIL;
    pc->free_head = 0;
    pc->lru_head = pc->lru_tail = DPG_NIL;
    pc->idle_ns = (uint64_t)idle_ms * MS_NS;
    pc->idle_scan_ns = idle_ms / 2 < 1000 ? (uint64_t)(idle_ms / 2 ? idle_ms / 2 : 1) * MS_NS
                                          : 1000 * MS_NS;
    return 0;
}

/* ---- LRU list ------------------------------------------------------------ */

static void lru_unlink(struct dpg_pcache *pc, uint32_t i)
{
    struct dpg_pgnt *e = &pc->ent[i];
    if (e->prev != DPG_NIL)
        pc->ent[e->prev].next = e->next;
    else
        pc->lru_head = e->next;
    if (e->next != DPG_NIL)
        pc->ent[e->next].prev = e->prev;
    else
        pc->lru_tail = e->prev;
}

static void lru_push_head(struct dpg_pcache *pc, uint32_t i)
{
    struct dpg_pgnt *e = &pc->ent[i];
    e->prev = DPG_NIL;
    e->next = pc->lru_head;
    if (pc->lru_head != DPG_NIL)
        pc->ent[pc->lru_head].prev = i;
    pc->lru_head = i;
    if (pc->lru_tail == DPG_NIL)
        pc->lru_tail = i;
}

static void touch(struct dpg_pcache *pc, uint32_t i, uint64_t now)
{
    pc->ent[i].last_ns = now;
    if (pc->lru_head != i) {
        lru_unlink(pc, i);
        lru_push_head(pc, i);
    }
}

/* ---- hash table ---------------------------------------------------------- */

static uint32_t lookup(const struct dpg_pcache *pc, uint32_t gref)
{
    for (uint32_t i = pc->bucket[hash_ref(pc, gref)]; i != DPG_NIL; i = pc->ent[i].hnext)
        if (pc->ent[i].gref == gref)
            return i;
    return DPG_NIL;
}

static uint32_t insert(struct dpg_pcache *pc, uint32_t gref, void *addr, const void *owner,
                       uint64_t now)
{
    uint32_t i = pc->free_head;            /* caller checked count < cap */
    struct dpg_pgnt *e = &pc->ent[i];
    pc->free_head = e->hnext;
    uint32_t b = hash_ref(pc, gref);
    e->gref = gref;
    e->addr = addr;
    e->owner = owner;
    e->last_ns = now;
    e->hnext = pc->bucket[b];
    pc->bucket[b] = i;
    lru_push_head(pc, i);
    pc->count++;
    return i;
}

/* Unmap and forget entry i (not held by any request). */
static void evict(struct dpg *g, uint32_t i)
{
    struct dpg_pcache *pc = &g->pc;
    struct dpg_pgnt *e = &pc->ent[i];
    for (uint32_t *pp = &pc->bucket[hash_ref(pc, e->gref)]; *pp != DPG_NIL; pp = &pc->ent[*pp].hnext) {
        if (*pp == i) {
            *pp = e->hnext;
            break;
        }
    }
    lru_unlink(pc, i);
    ST_ADD(g->st, gnt_unmap, 1);
    g->ops->gnt_unmap(g->gnt, e->addr, 1);
    ST_SUB(g->st, grants_mapped, 1);
    e->addr = NULL;
    e->owner = NULL;
    e->hnext = pc->free_head;
    pc->free_head = i;
    pc->count--;
}

/* ---- requests ------------------------------------------------------------ */

static void release_held(struct dpg_pcache *pc, struct dpg_map *m, uint64_t now)
{
    for (uint32_t k = 0; k < m->nent; k++) {
        uint32_t i = m->ent[k];
        pc->ent[i].owner = NULL;
        touch(pc, i, now);
    }
    m->nent = 0;
}

static int pc_get(struct dpg *g, struct dpg_map *m, const uint32_t *refs, unsigned n, void **pages)
{
    struct dpg_pcache *pc = &g->pc;
    uint64_t now = g->now_ns;
    unsigned novf = 0;
    int rc;

    m->nent = 0;
    m->count = 0;
    for (unsigned k = 0; k < n; k++) {
        uint32_t gref = refs[k], i = lookup(pc, gref);
        if (i != DPG_NIL) {
            struct dpg_pgnt *e = &pc->ent[i];
            if (e->owner && e->owner != m) {
                g->busy_gref = gref;
                pc->busy_refusals++;
                rc = -EBUSY;
                goto fail;
            }
            if (!e->owner) {
                e->owner = m;
                m->ent[m->nent++] = i;
            }
            touch(pc, i, now);
            pages[k] = e->addr;
            continue;
        }
        if (pc->count < pc->cap) {
            void *addr;
            ST_ADD(g->st, gnt_map, 1);
            rc = g->ops->gnt_map(g->gnt, g->domid, 1, &gref, PROT_READ | PROT_WRITE, &addr);
            if (rc < 0)
                goto fail;
            ST_ADD(g->st, grants_mapped, 1);
            i = insert(pc, gref, addr, m, now);
            m->ent[m->nent++] = i;
            pages[k] = addr;
            continue;
        }
        pc->oref[novf] = gref;         /* past the cap: this request only */
        pc->oidx[novf++] = k;
    }
    if (novf) {
        if (!pc->overflow) {
            pc->overflow = true;
            pc->next_purge_ns = now + DPG_PURGE_INTERVAL_MS * MS_NS;
        }
        void *base;
        ST_ADD(g->st, gnt_map, 1);
        rc = g->ops->gnt_map(g->gnt, g->domid, novf, pc->oref, PROT_READ | PROT_WRITE, &base);
        if (rc < 0)
            goto fail;
        ST_ADD(g->st, grants_mapped, novf);
        m->base = base;
        m->count = novf;
        for (unsigned j = 0; j < novf; j++)
            pages[pc->oidx[j]] = (char *)base + (size_t)j * XEN_PAGE_SIZE;
    }
    m->held = true;
    return 0;

fail:
    release_held(pc, m, now);
    return rc;
}

static void pc_put(struct dpg *g, struct dpg_map *m)
{
    release_held(&g->pc, m, g->now_ns);
    if (m->count) {
        ST_ADD(g->st, gnt_unmap, 1);
        g->ops->gnt_unmap(g->gnt, m->base, m->count);
        ST_SUB(g->st, grants_mapped, m->count);
        m->count = 0;
        m->base = NULL;
    }
}

/* ---- housekeeping --------------------------------------------------------- */

static void pc_purge(struct dpg *g, uint64_t now)
{
    struct dpg_pcache *pc = &g->pc;
    uint32_t want = pc->cap / 100 * DPG_PURGE_PERCENT, done = 0;
    if (want == 0)
        want = 1;
    for (uint32_t i = pc->lru_tail; i != DPG_NIL && done < want;) {
        uint32_t prev = pc->ent[i].prev;
        if (!pc->ent[i].owner) {
            evict(g, i);
            done++;
        }
        i = prev;
    }
    pc->overflow = false;
    pc->next_purge_ns = now + DPG_PURGE_INTERVAL_MS * MS_NS;
}

static void pc_idle(struct dpg *g, uint64_t now)
{
    struct dpg_pcache *pc = &g->pc;
    for (uint32_t i = pc->lru_tail; i != DPG_NIL;) {
        uint32_t prev = pc->ent[i].prev;
        if (now - pc->ent[i].last_ns < pc->idle_ns)
            break;                      /* everything nearer the head is newer */
        if (!pc->ent[i].owner)
            evict(g, i);
        i = prev;
    }
}

static void pc_fini(struct dpg *g)
{
    struct dpg_pcache *pc = &g->pc;
    if (pc->ent) {
        while (pc->lru_tail != DPG_NIL)
            evict(g, pc->lru_tail);
    }
    free(pc->ent);
    free(pc->bucket);
    free(pc->oref);
    free(pc->oidx);
    pc->ent = NULL;
    pc->bucket = NULL;
    pc->oref = pc->oidx = NULL;
    pc->count = 0;
    pc->overflow = false;
}

/* ---- struct dpg_ops ------------------------------------------------------- */

/* The cache of cfg->persistent_cap pages (0 = dpg_persistent_cap_auto),
 * idle release after cfg->persistent_idle_ms (0 = 60 s). */
static int pc_setup_cfg(struct dpg *g, const struct dp_config *cfg, unsigned nr_slots,
                        unsigned max_segs)
{
    return pc_setup(g, cfg->persistent_cap ? cfg->persistent_cap
                                           : dpg_persistent_cap_auto(nr_slots, max_segs),
                    cfg->persistent_idle_ms ? cfg->persistent_idle_ms
                                            : DPG_PERSISTENT_IDLE_MS_DEFAULT);
}

static int pc_get_data(struct dpg *g, struct dpg_map *m, const struct blkif_request_segment *segs,
                       unsigned n, bool to_guest, struct iovec *iov, unsigned *niov)
{
    (void)to_guest;             /* every persistent grant is mapped read-write */
    for (unsigned i = 0; i < n; i++)
        g->sref[i] = segs[i].gref;
    int rc = pc_get(g, m, g->sref, n, g->spage);
    if (rc < 0)
        return rc;
    *niov = dpg_build_iov(segs, n, g->spage, iov);
    return 0;
}

/* Indirect pages go through the cache like data pages (Linux maps them with
 * xen_blkbk_map too); the pages are held only here. */
static int pc_read_indirect(struct dpg *g, const uint32_t *refs, unsigned npages,
                            struct blkif_request_segment *dst, unsigned nsegs)
{
    const unsigned per = BLKIF_SEGS_PER_INDIRECT_PAGE;
    struct dpg_map tmp = { .ent = g->pc.ind_ent };
    void *pages[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
    int rc = pc_get(g, &tmp, refs, npages, pages);
    if (rc < 0)
        return rc;
    for (unsigned p = 0; p < npages; p++) {
        unsigned k = nsegs - p * per < per ? nsegs - p * per : per;
        memcpy(dst + (size_t)p * per, pages[p], (size_t)k * sizeof(*dst));
    }
    pc_put(g, &tmp);
    return 0;
}

static void pc_tick(struct dpg *g, uint64_t now_ns)
{
    struct dpg_pcache *pc = &g->pc;
    if (pc->overflow && now_ns >= pc->next_purge_ns)
        pc_purge(g, now_ns);
    if (pc->count && now_ns >= pc->next_idle_ns) {
        pc_idle(g, now_ns);
        pc->next_idle_ns = now_ns + pc->idle_scan_ns;
    }
}

static uint64_t pc_next_tick(const struct dpg *g)
{
    const struct dpg_pcache *pc = &g->pc;
    uint64_t t = 0;
    if (pc->count)
        t = pc->next_idle_ns;
    if (pc->overflow && (!t || pc->next_purge_ns < t))
        t = pc->next_purge_ns;
    return t;
}

const struct dpg_ops dpg_ops_persistent = {
    .setup = pc_setup_cfg,
    .get = pc_get_data,
    .put = pc_put,
    .read_indirect = pc_read_indirect,
    .release_all = pc_fini,     /* every grant unmapped at dp_stop */
    .fini = pc_fini,
    .tick = pc_tick,
    .next_tick = pc_next_tick,
};
