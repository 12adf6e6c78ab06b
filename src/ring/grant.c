/*
 * grant.c - guest memory access of the data plane: mode selection, the
 * per-request entry points, and GRANT_MODE_MAP (one contiguous gnt_map per
 * request, xengnttab_map_domain_grant_refs; one gnt_unmap at completion).
 * Persistent grants: grant_persist.c; grant copy: grant_copy.c.  API and
 * modes in grant.h.
 */
#include "grant.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

enum grant_mode dpg_resolve_mode(enum grant_mode asked, bool persistent)
{
    switch (asked) {
    case GRANT_MODE_MAP:
    case GRANT_MODE_COPY:
        return asked;
    case GRANT_MODE_AUTO:
        /* Grant copy beats map/unmap per request (bench: ~2x IOPS on the
         * simulated host, QEMU qdisk's choice on Xen) and never leaves a
         * guest page mapped. */
        return persistent ? GRANT_MODE_PERSISTENT : GRANT_MODE_COPY;
    case GRANT_MODE_PERSISTENT:
    default:
        return persistent ? GRANT_MODE_PERSISTENT : GRANT_MODE_MAP;
    }
}

static const char *const grant_mode_names[] = {
    [GRANT_MODE_AUTO] = "auto", [GRANT_MODE_MAP] = "map",
    [GRANT_MODE_COPY] = "copy", [GRANT_MODE_PERSISTENT] = "persistent",
};

const char *grant_mode_name(enum grant_mode m)
{
    return (unsigned)m < ARRAY_SIZE(grant_mode_names) ? grant_mode_names[m] : "?";
}

int grant_mode_parse(const char *s, enum grant_mode *out)
{
    for (unsigned i = 0; s && i < ARRAY_SIZE(grant_mode_names); i++)
        if (!strcmp(s, grant_mode_names[i])) {
            *out = (enum grant_mode)i;
            return 0;
        }
    return -EINVAL;
}

int dpg_init(struct dpg *g, const struct xen_ops *ops, struct xen_host *host,
             xen_domid_t domid, struct vbd_stats *st)
{
    struct xen_gnt *gnt;
    int rc = ops->gnt_open(host, &gnt);
    if (rc < 0)
        return rc;
    memset(g, 0, sizeof(*g));
    g->ops = ops;
    g->gnt = gnt;
    g->domid = domid;
    g->st = st;
    g->mode = GRANT_MODE_MAP;
    return 0;
}

int dpg_setup(struct dpg *g, const struct dp_config *cfg, enum grant_mode mode,
              unsigned nr_slots, unsigned max_segs)
{
    g->mode = mode;
    g->max_segs = max_segs;
    g->sref = calloc(max_segs, sizeof(*g->sref));
    g->spage = calloc(max_segs, sizeof(*g->spage));
    if (!g->sref || !g->spage)
        return -ENOMEM;
    if (mode == GRANT_MODE_PERSISTENT)
        return dpg_pc_setup(g, cfg->persistent_cap ? cfg->persistent_cap
                                                   : dpg_persistent_cap_auto(nr_slots, max_segs),
                            cfg->persistent_idle_ms ? cfg->persistent_idle_ms
                                                    : DPG_PERSISTENT_IDLE_MS_DEFAULT);
    if (mode == GRANT_MODE_COPY)
        return dpg_cp_setup(g, nr_slots, max_segs);
    return 0;
}

unsigned dpg_persistent_cap_auto(unsigned nr_slots, unsigned max_segs)
{
    uint64_t ind = (max_segs + BLKIF_SEGS_PER_INDIRECT_PAGE - 1) / BLKIF_SEGS_PER_INDIRECT_PAGE;
    uint64_t want = (uint64_t)nr_slots * (max_segs + (max_segs > BLKIF_MAX_SEGMENTS_PER_REQUEST
                                                      ? ind : 0));
    if (want < DPG_PERSISTENT_CAP_DEFAULT)
        want = DPG_PERSISTENT_CAP_DEFAULT;
    if (want > DPG_PERSISTENT_CAP_AUTO_MAX)
        want = DPG_PERSISTENT_CAP_AUTO_MAX;
    return (unsigned)want;
}

void dpg_map_init(struct dpg *g, struct dpg_map *m, unsigned idx, uint32_t *ent)
{
    memset(m, 0, sizeof(*m));
    m->ent = ent;
    if (g->mode == GRANT_MODE_COPY)
        m->bounce = g->cp.pool + (size_t)idx * g->cp.per_slot;
}

void dpg_release_all(struct dpg *g)
{
    if (g->mode == GRANT_MODE_PERSISTENT)
        dpg_pc_fini(g);
}

void dpg_fini(struct dpg *g)
{
    if (g->gnt) {
        dpg_pc_fini(g);
        dpg_cp_fini(g);
        g->ops->gnt_close(g->gnt);
    }
    g->gnt = NULL;
    free(g->sref);
    free(g->spage);
    g->sref = NULL;
    g->spage = NULL;
}

/* iovecs of n segments whose pages are at pages[i]: first_sect..last_sect of
 * each, adjacent pieces merged. */
static unsigned build_iov(const struct blkif_request_segment *segs, unsigned n, void **pages,
                          struct iovec *iov)
{
    unsigned niov = 0;
    for (unsigned i = 0; i < n; i++) {
        char *a = (char *)pages[i] + ((size_t)segs[i].first_sect << 9);
        size_t len = (size_t)(segs[i].last_sect - segs[i].first_sect + 1) << 9;
        if (niov && (char *)iov[niov - 1].iov_base + iov[niov - 1].iov_len == a) {
            iov[niov - 1].iov_len += len;
        } else {
            iov[niov].iov_base = a;
            iov[niov].iov_len = len;
            niov++;
        }
    }
    return niov;
}

int dpg_get(struct dpg *g, struct dpg_map *m, const struct blkif_request_segment *segs,
            unsigned n, bool to_guest, struct iovec *iov, unsigned *niov)
{
    int rc;
    if (n == 0 || n > g->max_segs)
        return -EINVAL;
    if (g->mode == GRANT_MODE_COPY)
        return dpg_cp_get(g, m, segs, n, to_guest, iov, niov);
    for (unsigned i = 0; i < n; i++)
        g->sref[i] = segs[i].gref;
    if (g->mode == GRANT_MODE_PERSISTENT) {
        rc = dpg_pc_get(g, m, g->sref, n, g->spage);
        if (rc < 0)
            return rc;
    } else {
        void *base;
        ST_ADD(g->st, gnt_map, 1);
        rc = g->ops->gnt_map(g->gnt, g->domid, n, g->sref,
                             to_guest ? PROT_READ | PROT_WRITE : PROT_READ, &base);
        if (rc < 0)
            return rc;
        ST_ADD(g->st, grants_mapped, n);
        m->base = base;
        m->count = n;
        m->held = true;
        for (unsigned i = 0; i < n; i++)
            g->spage[i] = (char *)base + (size_t)i * XEN_PAGE_SIZE;
    }
    *niov = build_iov(segs, n, g->spage, iov);
    return 0;
}

void dpg_put(struct dpg *g, struct dpg_map *m)
{
    if (!m->held)
        return;
    if (g->mode == GRANT_MODE_COPY) {
        dpg_cp_put(g, m);
    } else if (g->mode == GRANT_MODE_PERSISTENT) {
        dpg_pc_put(g, m);
    } else if (m->count) {
        ST_ADD(g->st, gnt_unmap, 1);
        g->ops->gnt_unmap(g->gnt, m->base, m->count);
        ST_SUB(g->st, grants_mapped, m->count);
    }
    m->base = NULL;
    m->count = 0;
    m->held = false;
}

int dpg_read_indirect(struct dpg *g, const uint32_t *refs, unsigned npages,
                      struct blkif_request_segment *dst, unsigned nsegs)
{
    const unsigned per = BLKIF_SEGS_PER_INDIRECT_PAGE;
    if (npages == 0 || npages > BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST || nsegs > npages * per)
        return -EINVAL;
    if (g->mode == GRANT_MODE_COPY)
        return dpg_cp_read_indirect(g, refs, npages, dst, nsegs);
    if (g->mode == GRANT_MODE_PERSISTENT) {
        /* Indirect pages go through the cache like data pages (Linux maps
         * them with xen_blkbk_map too); the pages are held only here. */
        struct dpg_map tmp = { .ent = g->pc.ind_ent };
        void *pages[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
        int rc = dpg_pc_get(g, &tmp, refs, npages, pages);
        if (rc < 0)
            return rc;
        for (unsigned p = 0; p < npages; p++) {
            unsigned k = nsegs - p * per < per ? nsegs - p * per : per;
            memcpy(dst + (size_t)p * per, pages[p], (size_t)k * sizeof(*dst));
        }
        dpg_pc_put(g, &tmp);
        return 0;
    }
    void *base;
    ST_ADD(g->st, gnt_map, 1);
    int rc = g->ops->gnt_map(g->gnt, g->domid, npages, refs, PROT_READ, &base);
    if (rc < 0)
        return rc;
    /* The indirect pages are contiguous in our mapping and hold 512
     * descriptors each with no padding: one copy, each byte read once. */
    memcpy(dst, base, (size_t)nsegs * sizeof(*dst));
    ST_ADD(g->st, gnt_unmap, 1);
    g->ops->gnt_unmap(g->gnt, base, npages);
    return 0;
}

void dpg_tick(struct dpg *g, uint64_t now_ns)
{
    g->now_ns = now_ns;
    if (g->mode != GRANT_MODE_PERSISTENT)
        return;
    struct dpg_pcache *pc = &g->pc;
    if (pc->overflow && now_ns >= pc->next_purge_ns)
        dpg_pc_purge(g, now_ns);
    if (pc->count && now_ns >= pc->next_idle_ns) {
        dpg_pc_idle(g, now_ns);
        pc->next_idle_ns = now_ns + pc->idle_scan_ns;
    }
}

uint64_t dpg_next_tick(const struct dpg *g)
{
    if (g->mode != GRANT_MODE_PERSISTENT)
        return 0;
    const struct dpg_pcache *pc = &g->pc;
    uint64_t t = 0;
    if (pc->count)
        t = pc->next_idle_ns;
    if (pc->overflow && (!t || pc->next_purge_ns < t))
        t = pc->next_purge_ns;
    return t;
}
