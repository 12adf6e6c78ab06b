/*
 * grant.c - guest memory access of the data plane, GRANT_MODE_MAP: one
 * contiguous gnt_map per request (xengnttab_map_domain_grant_refs), one
 * gnt_unmap at completion.  See grant.h for the persistent and copy modes.
 */
#include "grant.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

int dpg_init(struct dpg *g, const struct xen_ops *ops, struct xen_host *host,
             xen_domid_t domid, enum grant_mode mode, struct vbd_stats *st, bool *fell_back)
{
    struct xen_gnt *gnt;
    int rc = ops->gnt_open(host, &gnt);
    if (rc < 0)
        return rc;
    g->ops = ops;
    g->gnt = gnt;
    g->domid = domid;
    g->st = st;
    /* PERSISTENT and COPY: not implemented yet, MAP is always correct. */
    *fell_back = mode == GRANT_MODE_PERSISTENT || mode == GRANT_MODE_COPY;
    g->mode = GRANT_MODE_MAP;
    return 0;
}

void dpg_fini(struct dpg *g)
{
    if (g->gnt)
        g->ops->gnt_close(g->gnt);
    g->gnt = NULL;
}

int dpg_get(struct dpg *g, struct dpg_map *m, const uint32_t *refs,
            const struct blkif_request_segment *segs, unsigned n, bool to_guest, void **pages)
{
    (void)segs;
    void *base;
    ST_ADD(g->st, gnt_map, 1);
    int rc = g->ops->gnt_map(g->gnt, g->domid, n, refs,
                             to_guest ? PROT_READ | PROT_WRITE : PROT_READ, &base);
    if (rc < 0)
        return rc;
    ST_ADD(g->st, grants_mapped, n);
    m->base = base;
    m->count = n;
    for (unsigned i = 0; i < n; i++)
        pages[i] = (char *)base + (size_t)i * XEN_PAGE_SIZE;
    return 0;
}

int dpg_put(struct dpg *g, struct dpg_map *m, bool to_guest, bool io_ok)
{
    (void)to_guest; (void)io_ok;
    if (!m->count)
        return 0;
    ST_ADD(g->st, gnt_unmap, 1);
    g->ops->gnt_unmap(g->gnt, m->base, m->count);
    ST_SUB(g->st, grants_mapped, m->count);
    m->base = NULL;
    m->count = 0;
    return 0;
}

int dpg_read_indirect(struct dpg *g, const uint32_t *refs, unsigned npages,
                      struct blkif_request_segment *dst, unsigned nsegs)
{
    void *base;
    if (npages == 0 || nsegs > npages * BLKIF_SEGS_PER_INDIRECT_PAGE)
        return -EINVAL;
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
