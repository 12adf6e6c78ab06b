/*
 * grant.c - guest memory access of the data plane: mode selection, the
 * per-request entry points (argument checks, then the mode's struct dpg_ops,
 * chosen once by dpg_setup), and GRANT_MODE_MAP, dpg_ops_map (one
 * contiguous gnt_map per request, xengnttab_map_domain_grant_refs; one
 * gnt_unmap at completion).  Persistent grants: grant_persist.c; grant
 * copy: grant_copy.c.  API and modes in grant.h.
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
    g->mode_ops = &dpg_ops_map;
    return 0;
}

/* The ops of a resolved mode; anything else maps per request, as before
 * the mode is set up. */
static const struct dpg_ops *ops_of_mode(enum grant_mode mode)
{
    static const struct dpg_ops *const all[] = {
        [GRANT_MODE_MAP] = &dpg_ops_map,
        [GRANT_MODE_COPY] = &dpg_ops_copy,
        [GRANT_MODE_PERSISTENT] = &dpg_ops_persistent,
    };
    if ((unsigned)mode < sizeof(all) / sizeof(all[0]) && all[mode])
        return all[mode];
    return &dpg_ops_map;
}

int dpg_setup(struct dpg *g, const struct dp_config *cfg, enum grant_mode mode,
              unsigned nr_slots, unsigned max_segs)
{
    g->mode = mode;
    g->mode_ops = ops_of_mode(mode);
    g->max_segs = max_segs;
    g->sref = calloc(max_segs, sizeof(*g->sref));
    g->spage = calloc(max_segs, sizeof(*g->spage));
    if (!g->sref || !g->spage)
        return -ENOMEM;
    return g->mode_ops->setup ? g->mode_ops->setup(g, cfg, nr_slots, max_segs) : 0;
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
    if (g->mode_ops->map_init)
        g->mode_ops->map_init(g, m, idx);
}

void dpg_release_all(struct dpg *g)
{
    if (g->mode_ops->release_all)
        g->mode_ops->release_all(g);
}

void dpg_fini(struct dpg *g)
{
    if (g->gnt) {
        if (g->mode_ops->fini)
            g->mode_ops->fini(g);
        g->ops->gnt_close(g->gnt);
    }
    g->gnt = NULL;
    free(g->sref);
    free(g->spage);
    g->sref = NULL;
    g->spage = NULL;
}

unsigned dpg_build_iov(const struct blkif_request_segment *segs, unsigned n, void **pages,
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
    if (n == 0 || n > g->max_segs)
        return -EINVAL;
    return g->mode_ops->get(g, m, segs, n, to_guest, iov, niov);
}

void dpg_put(struct dpg *g, struct dpg_map *m)
{
    if (!m->held)
        return;
    g->mode_ops->put(g, m);
    m->base = NULL;
    m->count = 0;
    m->held = false;
}

int dpg_read_indirect(struct dpg *g, const uint32_t *refs, unsigned npages,
                      struct blkif_request_segment *dst, unsigned nsegs)
{
    if (npages == 0 || npages > BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST ||
        nsegs > npages * BLKIF_SEGS_PER_INDIRECT_PAGE)
        return -EINVAL;
    return g->mode_ops->read_indirect(g, refs, npages, dst, nsegs);
}

void dpg_tick(struct dpg *g, uint64_t now_ns)
{
    g->now_ns = now_ns;
    if (g->mode_ops->tick)
        g->mode_ops->tick(g, now_ns);
}

uint64_t dpg_next_tick(const struct dpg *g)
{
    return g->mode_ops->next_tick ? g->mode_ops->next_tick(g) : 0;
}

/* ---- GRANT_MODE_MAP -------------------------------------------------------- */

/* All n data pages in one mapping: read-only for a WRITE, read-write for a
 * READ (docs/protocol.md §4.7 (grant-access)). */
static int map_get(struct dpg *g, struct dpg_map *m, const struct blkif_request_segment *segs,
                   unsigned n, bool to_guest, struct iovec *iov, unsigned *niov)
{
    void *base;
    for (unsigned i = 0; i < n; i++)
        g->sref[i] = segs[i].gref;
    ST_ADD(g->st, gnt_map, 1);
    int rc = g->ops->gnt_map(g->gnt, g->domid, n, g->sref,
                             to_guest ? PROT_READ | PROT_WRITE : PROT_READ, &base);
    if (rc < 0)
        return rc;
    ST_ADD(g->st, grants_mapped, n);
    m->base = base;
    m->count = n;
    m->held = true;
    for (unsigned i = 0; i < n; i++)
        g->spage[i] = (char *)base + (size_t)i * XEN_PAGE_SIZE;
    *niov = dpg_build_iov(segs, n, g->spage, iov);
    return 0;
}

static void map_put(struct dpg *g, struct dpg_map *m)
{
    if (!m->count)
        return;
    ST_ADD(g->st, gnt_unmap, 1);
    g->ops->gnt_unmap(g->gnt, m->base, m->count);
    ST_SUB(g->st, grants_mapped, m->count);
}

static int map_read_indirect(struct dpg *g, const uint32_t *refs, unsigned npages,
                             struct blkif_request_segment *dst, unsigned nsegs)
{
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

const struct dpg_ops dpg_ops_map = {
    .get = map_get,
    .put = map_put,
    .read_indirect = map_read_indirect,
};
