/* A guest played in-process on the simulated Xen host (see guest.h). */
#include "guest.h"
#include "util.h"
#include "../harness.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void guest_test_host(const struct xen_ops *ops, char **hostdir, char *imgpath, size_t len,
                     struct xen_host **xh)
{
    char *dir = malloc(600);
    T_ASSERT(dir, "malloc");
    snprintf(dir, 600, "%s/host", t_tmpdir(1));
    snprintf(imgpath, len, "%s/img.raw", t_tmpdir(0));
    int rc = ops->host_open(dir, xh);
    T_ASSERT(rc == 0, "host_open %s: %d", dir, rc);
    *hostdir = dir;
}

void guest_init(struct guest *g, const char *hostdir, xen_domid_t domid, enum blkif_abi abi,
                unsigned nq, unsigned npages, uint32_t nr_pages)
{
    memset(g, 0, sizeof(*g));
    T_ASSERT(nq >= 1 && nq <= XBD_MAX_QUEUES, "guest_init: %u queues", nq);
    g->nr_pages = nr_pages ? nr_pages : 4096;
    g->domid = domid;
    T_ASSERT(sim_host_open(hostdir, &g->sh) == 0, "sim_host_open");
    int rc = sim_dom_create(g->sh, domid, g->nr_pages, 16384, &g->dom);
    T_ASSERT(rc == 0, "sim_dom_create: %d", rc);
    T_ASSERT(sim_evtchn_open(g->sh, domid, &g->ev) == 0, "guest evtchn");
    g->abi = abi;
    g->esz = blkif_abi_entry_size(abi);
    g->nq = nq;
    for (unsigned qi = 0; qi < nq; qi++) {
        struct gq *q = &g->q[qi];
        q->npages = npages;
        uint32_t pfn0 = g->next_pfn;
        for (unsigned i = 0; i < npages; i++)
            T_ASSERT(sim_gnt_grant(g->dom, 0, g->next_pfn++, false, &q->ring_ref[i]) == 0, "grant ring");
        q->sring = sim_dom_page(g->dom, pfn0);
        /* both ABIs share the sring header; SHARED_RING_INIT + FRONT_RING_INIT */
        struct blkif_x86_64_sring *s = q->sring;
        SHARED_RING_INIT(s);
        FRONT_RING_INIT(&q->fr, s, npages * GUEST_PG);
        if (abi == BLKIF_ABI_X86_32)    /* 108-byte entries: same count, other stride */
            q->fr.nr_ents = __RING_SIZE((struct blkif_x86_32_sring *)s, npages * GUEST_PG);
        T_ASSERT(sim_evtchn_alloc_unbound(g->ev, 0, &q->port) == 0, "alloc unbound");
    }
    if (g->next_pfn < 64)
        g->next_pfn = 64;
    g->data_pfn0 = g->next_pfn;
}

void guest_fini(struct guest *g)
{
    sim_evtchn_close(g->ev);
    sim_dom_destroy(g->dom);
    sim_host_close(g->sh);
}

uint32_t guest_page(struct guest *g)
{
    if (g->next_pfn >= g->nr_pages)
        g->next_pfn = g->data_pfn0;     /* recycle (rings live below) */
    return g->next_pfn++;
}

static void *entry(struct guest *g, unsigned qi, RING_IDX i)
{
    struct gq *q = &g->q[qi];
    return (char *)q->fr.sring->ring + (size_t)(i & (RING_SIZE(&q->fr) - 1)) * g->esz;
}

void guest_put_req(struct guest *g, unsigned qi, const struct treq *r)
{
    struct gq *q = &g->q[qi];
    void *e = entry(g, qi, q->fr.req_prod_pvt++);
    memset(e, 0, g->esz);
#define ENC(T) do {                                                                   \
        if (r->op == BLKIF_OP_DISCARD) {                                              \
            struct T##_request_discard *d = e;                                        \
            d->operation = r->op; d->flag = r->flag; d->id = r->id;                   \
            d->sector_number = r->sector; d->nr_sectors = r->nr_sectors;              \
        } else if (r->op == BLKIF_OP_INDIRECT) {                                      \
            struct T##_request_indirect *d = e;                                       \
            d->operation = r->op; d->indirect_op = r->indirect_op;                    \
            d->nr_segments = (uint16_t)r->nr_segs; d->id = r->id;                     \
            d->sector_number = r->sector;                                             \
            memcpy(d->indirect_grefs, r->indirect_grefs, sizeof(d->indirect_grefs));  \
        } else {                                                                      \
            struct T##_request *d = e;                                                \
            d->operation = r->op; d->nr_segments = (uint8_t)r->nr_segs; d->id = r->id; \
            d->sector_number = r->sector;                                             \
            memcpy(d->seg, r->seg, sizeof(d->seg));                                   \
        }                                                                             \
    } while (0)
    if (g->abi == BLKIF_ABI_X86_32)
        ENC(blkif_x86_32);
    else
        ENC(blkif_x86_64);
#undef ENC
}

void guest_push(struct guest *g, unsigned qi)
{
    struct gq *q = &g->q[qi];
    int notify;
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&q->fr, notify);
    if (notify)
        T_CHECK(sim_evtchn_notify(g->ev, q->port) == 0, "notify");
}

static void get_rsp(struct guest *g, unsigned qi, RING_IDX i, struct trsp *out)
{
    void *e = entry(g, qi, i);
    if (g->abi == BLKIF_ABI_X86_32) {
        struct blkif_x86_32_response *r = e;
        *out = (struct trsp){ r->id, r->operation, r->status };
    } else {
        struct blkif_x86_64_response *r = e;
        *out = (struct trsp){ r->id, r->operation, r->status };
    }
}

bool guest_wait_rsps(struct guest *g, unsigned qi, struct trsp *out, unsigned n, unsigned timeout_ms)
{
    struct gq *q = &g->q[qi];
    uint64_t end = xbd_now_ms() + timeout_ms;
    unsigned got = 0;
    while (got < n) {
        int more;
        RING_FINAL_CHECK_FOR_RESPONSES(&q->fr, more);
        if (more) {
            RING_IDX rp = q->fr.sring->rsp_prod;
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            while (q->fr.rsp_cons != rp && got < n)
                get_rsp(g, qi, q->fr.rsp_cons++, &out[got++]);
            continue;
        }
        uint64_t now = xbd_now_ms();
        if (now >= end)
            return false;
        struct pollfd pfd = { .fd = sim_evtchn_fd(g->ev), .events = POLLIN };
        poll(&pfd, 1, (int)(end - now < 50 ? end - now : 50));
        xen_port_t p;
        while (sim_evtchn_pending(g->ev, &p) == 0) {
            for (unsigned k = 0; k < g->nq; k++)
                if (g->q[k].port == p)
                    g->q[k].notifies++;
            sim_evtchn_unmask(g->ev, p);
        }
    }
    return true;
}

void guest_add_pages(struct guest *g, struct treq *r, unsigned n, bool readonly,
                     struct blkif_request_segment *segs, uint8_t first, uint8_t last)
{
    for (unsigned i = 0; i < n; i++) {
        uint32_t pfn = guest_page(g), ref;
        T_ASSERT(r->nrefs < GUEST_MAX_PAGES_PER_REQ, "too many pages in one request");
        T_ASSERT(sim_gnt_grant(g->dom, 0, pfn, readonly, &ref) == 0, "grant data");
        r->refs[r->nrefs++] = ref;
        r->pfn[r->npfn++] = pfn;
        segs[i].gref = ref;
        segs[i].first_sect = first;
        segs[i].last_sect = last;
    }
}

void guest_fill(void *p, size_t len, uint64_t seed)
{
    uint8_t *b = p;
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(((i + seed * 977) * 2654435761u) >> 13);
}

void guest_req_init(struct treq *r, uint8_t op, uint8_t indirect_op, uint64_t id, uint64_t sector,
                    unsigned nr_segs)
{
    *r = (struct treq){ .op = op, .indirect_op = indirect_op, .id = id, .sector = sector,
                        .nr_segs = nr_segs };
}

void guest_rw_req(struct guest *g, struct treq *r, uint8_t op, uint64_t id, uint64_t sector,
                  unsigned n, uint64_t seed)
{
    guest_req_init(r, op, 0, id, sector, n);
    guest_add_pages(g, r, n, op == BLKIF_OP_WRITE, r->seg, 0, 7);
    if (op == BLKIF_OP_WRITE)
        for (unsigned i = 0; i < n; i++)
            guest_fill(sim_dom_page(g->dom, r->pfn[i]), GUEST_PG, seed + i);
}

void guest_ind_req(struct guest *g, struct treq *r, uint8_t iop, uint64_t id, uint64_t sector,
                   unsigned n, uint64_t seed)
{
    guest_req_init(r, BLKIF_OP_INDIRECT, iop, id, sector, n);
    unsigned npages = (n + 511) / 512;
    T_ASSERT(npages <= BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST, "indirect %u segments", n);
    struct blkif_request_segment *desc[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
    for (unsigned p = 0; p < npages; p++) {
        uint32_t pfn = guest_page(g), ref;
        T_ASSERT(sim_gnt_grant(g->dom, 0, pfn, true, &ref) == 0, "grant indirect");
        r->refs[r->nrefs++] = ref;
        r->indirect_grefs[p] = ref;
        desc[p] = sim_dom_page(g->dom, pfn);
    }
    static struct blkif_request_segment tmp[BLKIF_MAX_INDIRECT_SEGS_PROTO];
    unsigned first_data = r->npfn;
    guest_add_pages(g, r, n, iop == BLKIF_OP_WRITE, tmp, 0, 7);
    for (unsigned i = 0; i < n; i++)
        desc[i / 512][i % 512] = tmp[i];
    if (iop == BLKIF_OP_WRITE)
        for (unsigned i = 0; i < n; i++)
            guest_fill(sim_dom_page(g->dom, r->pfn[first_data + i]), GUEST_PG, seed + i);
}

void guest_end_grants(struct guest *g, struct treq *r)
{
    for (unsigned i = 0; i < r->nrefs; i++) {
        int rc = sim_gnt_end(g->dom, r->refs[i]);
        T_CHECK(rc == 0, "end access of ref %u after the response: %d (still mapped?)", r->refs[i], rc);
    }
    r->nrefs = 0;
}

int16_t guest_do_req(struct guest *g, unsigned qi, struct treq *r, int16_t want, const char *what)
{
    guest_put_req(g, qi, r);
    guest_push(g, qi);
    struct trsp rsp = { 0, 0, 99 };
    bool ok = guest_wait_rsps(g, qi, &rsp, 1, 5000);
    T_CHECK(ok, "%s: no response", what);
    if (!ok)
        return 99;
    uint8_t want_op = r->op == BLKIF_OP_INDIRECT ? r->indirect_op : r->op;
    T_CHECK(rsp.id == r->id, "%s: response id %llu, expected %llu", what,
            (unsigned long long)rsp.id, (unsigned long long)r->id);
    T_CHECK(rsp.op == want_op, "%s: response op %u, expected %u", what, rsp.op, want_op);
    T_CHECK(rsp.status == want, "%s: status %d, expected %d", what, rsp.status, want);
    guest_end_grants(g, r);
    return rsp.status;
}

void guest_dp_config(struct dp_config *c, const struct guest *g, struct engine *e)
{
    memset(c, 0, sizeof(*c));
    c->name = "vbd test";
    c->fe_domid = g->domid;
    c->abi = g->abi;
    c->nr_queues = g->nq;
    for (unsigned i = 0; i < g->nq; i++) {
        c->queue[i].nr_ring_pages = g->q[i].npages;
        memcpy(c->queue[i].ring_ref, g->q[i].ring_ref, sizeof(c->queue[i].ring_ref));
        c->queue[i].evtchn = g->q[i].port;
    }
    c->engine = e;
    c->sectors = e->size / 512;
    c->sector_size = 512;
    c->flush = true;
    c->discard = e->caps.discard;
    c->max_indirect_segs = 256;
    c->grant_mode = GRANT_MODE_MAP;
}

void guest_check_released(struct guest *g, const char *what)
{
    T_CHECK(sim_gnt_mapped_count(g->dom) == 0, "%s: %llu grant mapping(s) left after dp_stop", what,
            (unsigned long long)sim_gnt_mapped_count(g->dom));
    for (unsigned i = 0; i < g->nq; i++) {
        int st = sim_evtchn_port_state(g->sh, g->domid, g->q[i].port);
        T_CHECK(st == 1, "%s: guest port %u state %d after dp_stop, expected 1 (unbound)", what,
                g->q[i].port, st);
    }
}
