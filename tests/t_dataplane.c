/* t_dataplane: the data plane serves a guest played by this test on the simulated host (both ABIs, 1/2/4-page rings, 2 queues): data lands in the image, faults get blkback's answers, a bogus req_prod halts only its ring, dp_stop answers or abandons in-flight I/O in time and returns every grant and port. */
#include "harness.h"
#include "dataplane.h"
#include "engine.h"
#include "log.h"
#include "sim.h"

#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DOMID 7
#define MiB (1024ull * 1024)
#define IMG_BYTES (64 * MiB)
#define IMG_SECTORS (IMG_BYTES / 512)
#define GUEST_PAGES 4096
#define PG 4096

static const struct xen_ops *ops = &xen_ops_sim;
static const char *hostdir;
static struct xen_host *xh;         /* the backend's view of the simulated host */
static char imgpath[512];

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the guest ---------------------------------------------------------- */

struct gq {
    xen_port_t port;                /* guest's port */
    unsigned npages;
    uint32_t ring_ref[XBD_MAX_RING_PAGES];
    void *sring;
    blkif_x86_64_front_ring_t fr;   /* index view; entries addressed by esz */
    unsigned notifies;              /* notifications received */
};

struct guest {
    struct sim_host *sh;
    struct sim_dom *dom;
    struct sim_evtchn *ev;
    enum blkif_abi abi;
    size_t esz;
    unsigned nq;
    struct gq q[2];
    uint32_t next_pfn;
};

struct treq {
    uint8_t op, indirect_op, flag;
    unsigned nr_segs;               /* raw value written (direct: low 8 bits) */
    uint64_t id, sector, nr_sectors;
    struct blkif_request_segment seg[BLKIF_MAX_SEGMENTS_PER_REQUEST];
    uint32_t indirect_grefs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
    /* guest-side bookkeeping: refs to end after the response, data pages */
    uint32_t refs[1100];
    unsigned nrefs;
    uint32_t pfn[1100];
    unsigned npfn;
};

struct trsp { uint64_t id; uint8_t op; int16_t status; };

static void guest_init(struct guest *g, enum blkif_abi abi, unsigned nq, unsigned npages)
{
    memset(g, 0, sizeof(*g));
    T_ASSERT(sim_host_open(hostdir, &g->sh) == 0, "sim_host_open");
    int rc = sim_dom_create(g->sh, DOMID, GUEST_PAGES, 16384, &g->dom);
    T_ASSERT(rc == 0, "sim_dom_create: %d", rc);
    T_ASSERT(sim_evtchn_open(g->sh, DOMID, &g->ev) == 0, "guest evtchn");
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
        FRONT_RING_INIT(&q->fr, s, npages * PG);
        if (abi == BLKIF_ABI_X86_32)    /* 108-byte entries: same count, other stride */
            q->fr.nr_ents = __RING_SIZE((struct blkif_x86_32_sring *)s, npages * PG);
        T_ASSERT(sim_evtchn_alloc_unbound(g->ev, 0, &q->port) == 0, "alloc unbound");
    }
}

static void guest_fini(struct guest *g)
{
    sim_evtchn_close(g->ev);
    sim_dom_destroy(g->dom);
    sim_host_close(g->sh);
}

static uint32_t guest_page(struct guest *g)
{
    if (g->next_pfn >= GUEST_PAGES)
        g->next_pfn = 64;          /* recycle (ring pages live below 64) */
    return g->next_pfn++;
}

static void *entry(struct guest *g, unsigned qi, RING_IDX i)
{
    struct gq *q = &g->q[qi];
    return (char *)q->fr.sring->ring + (size_t)(i & (RING_SIZE(&q->fr) - 1)) * g->esz;
}

/* Encode r in the frontend's layout at req_prod_pvt (not yet pushed). */
static void put_req(struct guest *g, unsigned qi, const struct treq *r)
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
}

static void push(struct guest *g, unsigned qi)
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

/* Collect n responses of queue qi (in order of arrival); false on timeout. */
static bool wait_rsps(struct guest *g, unsigned qi, struct trsp *out, unsigned n, unsigned timeout_ms)
{
    struct gq *q = &g->q[qi];
    uint64_t end = now_ms() + timeout_ms;
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
        uint64_t now = now_ms();
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

/* Grant fresh data pages for n segments (to_guest: writable grant). */
static void add_pages(struct guest *g, struct treq *r, unsigned n, bool readonly,
                      struct blkif_request_segment *segs, uint8_t first, uint8_t last)
{
    for (unsigned i = 0; i < n; i++) {
        uint32_t pfn = guest_page(g), ref;
        T_ASSERT(sim_gnt_grant(g->dom, 0, pfn, readonly, &ref) == 0, "grant data");
        r->refs[r->nrefs++] = ref;
        r->pfn[r->npfn++] = pfn;
        segs[i].gref = ref;
        segs[i].first_sect = first;
        segs[i].last_sect = last;
    }
}

static void fill(void *p, size_t len, uint64_t seed)
{
    uint8_t *b = p;
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(((i + seed * 977) * 2654435761u) >> 13);
}

/* Direct READ/WRITE of n full pages at sector. */
static void rw_req(struct guest *g, struct treq *r, uint8_t op, uint64_t id, uint64_t sector,
                   unsigned n, uint64_t seed)
{
    memset(r, 0, sizeof(*r));
    r->op = op;
    r->id = id;
    r->sector = sector;
    r->nr_segs = n;
    add_pages(g, r, n, op == BLKIF_OP_WRITE, r->seg, 0, 7);
    if (op == BLKIF_OP_WRITE)
        for (unsigned i = 0; i < n; i++)
            fill(sim_dom_page(g->dom, r->pfn[i]), PG, seed + i);
}

/* INDIRECT of n full pages: descriptors in ceil(n/512) read-only pages. */
static void ind_req(struct guest *g, struct treq *r, uint8_t iop, uint64_t id, uint64_t sector,
                    unsigned n, uint64_t seed)
{
    memset(r, 0, sizeof(*r));
    r->op = BLKIF_OP_INDIRECT;
    r->indirect_op = iop;
    r->id = id;
    r->sector = sector;
    r->nr_segs = n;
    unsigned npages = (n + 511) / 512;
    struct blkif_request_segment *desc[8];
    for (unsigned p = 0; p < npages; p++) {
        uint32_t pfn = guest_page(g), ref;
        T_ASSERT(sim_gnt_grant(g->dom, 0, pfn, true, &ref) == 0, "grant indirect");
        r->refs[r->nrefs++] = ref;
        r->indirect_grefs[p] = ref;
        desc[p] = sim_dom_page(g->dom, pfn);
    }
    struct blkif_request_segment tmp[1024];
    unsigned first_data = r->npfn;
    add_pages(g, r, n, iop == BLKIF_OP_WRITE, tmp, 0, 7);
    for (unsigned i = 0; i < n; i++)
        desc[i / 512][i % 512] = tmp[i];
    if (iop == BLKIF_OP_WRITE)
        for (unsigned i = 0; i < n; i++)
            fill(sim_dom_page(g->dom, r->pfn[first_data + i]), PG, seed + i);
}

/* After the answer every grant must be unmapped: end access must succeed. */
static void end_grants(struct guest *g, struct treq *r)
{
    for (unsigned i = 0; i < r->nrefs; i++) {
        int rc = sim_gnt_end(g->dom, r->refs[i]);
        T_CHECK(rc == 0, "end access of ref %u after the response: %d (still mapped?)", r->refs[i], rc);
    }
    r->nrefs = 0;
}

/* Send one request, wait for its answer, check id/op/status, end grants. */
static int16_t do_req(struct guest *g, unsigned qi, struct treq *r, int16_t want, const char *what)
{
    put_req(g, qi, r);
    push(g, qi);
    struct trsp rsp = { 0, 0, 99 };
    bool ok = wait_rsps(g, qi, &rsp, 1, 5000);
    T_CHECK(ok, "%s: no response", what);
    if (!ok)
        return 99;
    uint8_t want_op = r->op == BLKIF_OP_INDIRECT ? r->indirect_op : r->op;
    T_CHECK(rsp.id == r->id, "%s: response id %llu, expected %llu", what,
            (unsigned long long)rsp.id, (unsigned long long)r->id);
    T_CHECK(rsp.op == want_op, "%s: response op %u, expected %u", what, rsp.op, want_op);
    T_CHECK(rsp.status == want, "%s: status %d, expected %d", what, rsp.status, want);
    end_grants(g, r);
    return rsp.status;
}

/* ---- the backend -------------------------------------------------------- */

static void make_image(void)
{
    int fd = open(imgpath, O_CREAT | O_RDWR | O_TRUNC, 0600);
    T_ASSERT(fd >= 0, "image");
    uint8_t *b = calloc(1, MiB);
    memset(b, 0x33, MiB);
    for (uint64_t off = 0; off < IMG_BYTES; off += MiB)
        T_ASSERT(pwrite(fd, b, MiB, (off_t)off) == (ssize_t)MiB, "fill");
    free(b);
    close(fd);
}

static void base_cfg(struct dp_config *c, struct guest *g, struct engine *e)
{
    memset(c, 0, sizeof(*c));
    c->name = "vbd 7/51712";
    c->fe_domid = DOMID;
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

static struct engine *open_engine(const char *params)
{
    struct engine_params p = { .path = NULL, .readonly = false, .direct = true, .name = "vbd 7/51712" };
    struct engine *e;
    int rc = engine_open_params(params, &p, true, &e);
    T_ASSERT(rc == 0, "engine %s: %d", params, rc);
    return e;
}

static bool file_equals(uint64_t off, const void *buf, size_t len)
{
    int fd = open(imgpath, O_RDONLY);
    uint8_t *b = malloc(len);
    bool eq = fd >= 0 && pread(fd, b, len, (off_t)off) == (ssize_t)len && !memcmp(b, buf, len);
    free(b);
    if (fd >= 0)
        close(fd);
    return eq;
}

static void check_released(struct guest *g, const char *what)
{
    T_CHECK(sim_gnt_mapped_count(g->dom) == 0, "%s: %llu grant mapping(s) left after dp_stop", what,
            (unsigned long long)sim_gnt_mapped_count(g->dom));
    for (unsigned i = 0; i < g->nq; i++) {
        int st = sim_evtchn_port_state(g->sh, DOMID, g->q[i].port);
        T_CHECK(st == 1, "%s: guest port %u state %d after dp_stop, expected 1 (unbound)", what,
                g->q[i].port, st);
    }
}

/* ---- scenarios ------------------------------------------------------------ */

static void scenario_io(enum blkif_abi abi, unsigned npages)
{
    char what[64];
    snprintf(what, sizeof(what), "%s ring %u page(s)", blkif_abi_name(abi), npages);
    T_LOG("scenario io: %s", what);
    make_image();
    struct guest g;
    guest_init(&g, abi, 1, npages);
    struct engine *e = open_engine(imgpath);
    struct dp_config cfg;
    base_cfg(&cfg, &g, e);
    struct dp *dp;
    int rc = dp_create(ops, xh, &cfg, &dp);
    T_ASSERT(rc == 0, "dp_create: %d", rc);
    T_EQ(sim_gnt_mapped_count(g.dom), npages);
    T_ASSERT(dp_start(dp) == 0, "dp_start");

    struct treq r, r2;
    uint64_t id = 1000;

    /* WRITE 4 pages at 1 MiB, READ them back, compare with the image */
    rw_req(&g, &r, BLKIF_OP_WRITE, id++, 2048, 4, 1);
    uint8_t *src = malloc(4 * PG);
    for (unsigned i = 0; i < 4; i++)
        memcpy(src + i * PG, sim_dom_page(g.dom, r.pfn[i]), PG);
    do_req(&g, 0, &r, BLKIF_RSP_OKAY, "write 4 pages");
    T_CHECK(file_equals(MiB, src, 4 * PG), "%s: image differs after WRITE", what);
    rw_req(&g, &r2, BLKIF_OP_READ, id++, 2048, 4, 0);
    for (unsigned i = 0; i < 4; i++)
        memset(sim_dom_page(g.dom, r2.pfn[i]), 0xEE, PG);
    do_req(&g, 0, &r2, BLKIF_RSP_OKAY, "read 4 pages");
    for (unsigned i = 0; i < 4; i++)
        T_CHECK(!memcmp(sim_dom_page(g.dom, r2.pfn[i]), src + i * PG, PG), "%s: READ page %u differs", what, i);

    /* partial segments: sectors 2..5 of page A then 0..1 of page B -> 6 sectors at 9 */
    memset(&r, 0, sizeof(r));
    r.op = BLKIF_OP_WRITE; r.id = id++; r.sector = 9; r.nr_segs = 2;
    add_pages(&g, &r, 1, true, &r.seg[0], 2, 5);
    add_pages(&g, &r, 1, true, &r.seg[1], 0, 1);
    fill(sim_dom_page(g.dom, r.pfn[0]), PG, 77);
    fill(sim_dom_page(g.dom, r.pfn[1]), PG, 78);
    uint8_t part[6 * 512];
    memcpy(part, (uint8_t *)sim_dom_page(g.dom, r.pfn[0]) + 2 * 512, 4 * 512);
    memcpy(part + 4 * 512, sim_dom_page(g.dom, r.pfn[1]), 2 * 512);
    do_req(&g, 0, &r, BLKIF_RSP_OKAY, "partial write");
    T_CHECK(file_equals(9 * 512, part, sizeof(part)), "%s: partial segments landed wrong", what);
    uint8_t around[512];
    memset(around, 0x33, sizeof(around));
    T_CHECK(file_equals(8 * 512, around, 512) && file_equals(15 * 512, around, 512),
            "%s: partial write touched neighbours", what);

    /* FLUSH without and with data */
    memset(&r, 0, sizeof(r));
    r.op = BLKIF_OP_FLUSH_DISKCACHE; r.id = id++;
    do_req(&g, 0, &r, BLKIF_RSP_OKAY, "flush");
    rw_req(&g, &r, BLKIF_OP_WRITE, id++, 4096, 2, 55);
    r.op = BLKIF_OP_FLUSH_DISKCACHE;
    memcpy(src, sim_dom_page(g.dom, r.pfn[0]), PG);
    memcpy(src + PG, sim_dom_page(g.dom, r.pfn[1]), PG);
    do_req(&g, 0, &r, BLKIF_RSP_OKAY, "flush with data");
    T_CHECK(file_equals(4096 * 512, src, 2 * PG), "%s: flush data not in image", what);

    /* BARRIER not advertised -> EOPNOTSUPP */
    memset(&r, 0, sizeof(r));
    r.op = BLKIF_OP_WRITE_BARRIER; r.id = id++;
    do_req(&g, 0, &r, BLKIF_RSP_EOPNOTSUPP, "barrier not advertised");

    /* INDIRECT WRITE of 300 pages (2 indirect pages), INDIRECT READ back */
    static struct treq ri, ri2;
    ind_req(&g, &ri, BLKIF_OP_WRITE, id++, 20480, 300, 9);
    uint8_t *big = malloc(300 * PG);
    for (unsigned i = 0; i < 300; i++)
        memcpy(big + (size_t)i * PG, sim_dom_page(g.dom, ri.pfn[i]), PG);
    do_req(&g, 0, &ri, BLKIF_RSP_ERROR, "indirect 300 > 256");
    ind_req(&g, &ri, BLKIF_OP_WRITE, id++, 20480, 256, 9);
    for (unsigned i = 0; i < 256; i++)
        memcpy(big + (size_t)i * PG, sim_dom_page(g.dom, ri.pfn[i]), PG);
    do_req(&g, 0, &ri, BLKIF_RSP_OKAY, "indirect write 256");
    T_CHECK(file_equals(20480 * 512, big, 256 * PG), "%s: indirect write not in image", what);
    ind_req(&g, &ri2, BLKIF_OP_READ, id++, 20480, 256, 0);
    do_req(&g, 0, &ri2, BLKIF_RSP_OKAY, "indirect read 256");
    bool same = true;
    for (unsigned i = 0; i < 256; i++)
        same &= !memcmp(sim_dom_page(g.dom, ri2.pfn[i]), big + (size_t)i * PG, PG);
    T_CHECK(same, "%s: indirect read differs", what);

    /* DISCARD 1 MiB at 8 MiB: a hole in the image */
    if (cfg.discard) {
        memset(&r, 0, sizeof(r));
        r.op = BLKIF_OP_DISCARD; r.id = id++; r.sector = 16384; r.nr_sectors = 2048;
        do_req(&g, 0, &r, BLKIF_RSP_OKAY, "discard");
        int fd = open(imgpath, O_RDONLY);
        off_t h = lseek(fd, 8 * MiB, SEEK_HOLE);
        T_CHECK(h == (off_t)(8 * MiB), "%s: SEEK_HOLE after discard: %lld", what, (long long)h);
        close(fd);
        r.id = id++; r.flag = BLKIF_DISCARD_SECURE;
        do_req(&g, 0, &r, BLKIF_RSP_EOPNOTSUPP, "secure discard");
    }

    /* hostile requests */
    memset(&r, 0, sizeof(r));
    r.op = 9; r.id = id++;
    do_req(&g, 0, &r, BLKIF_RSP_EOPNOTSUPP, "unknown op");
    rw_req(&g, &r, BLKIF_OP_READ, id++, 0, 1, 0);
    uint32_t good = r.seg[0].gref;
    r.seg[0].gref = 16000;                      /* never granted */
    do_req(&g, 0, &r, BLKIF_RSP_ERROR, "unknown gref");
    (void)good;
    rw_req(&g, &r, BLKIF_OP_READ, id++, 0, 2, 0);
    sim_gnt_end(g.dom, r.refs[1]);
    T_ASSERT(sim_gnt_grant(g.dom, 0, r.pfn[1], true, &r.refs[1]) == 0, "regrant ro");
    r.seg[1].gref = r.refs[1];                  /* READ into a read-only grant */
    do_req(&g, 0, &r, BLKIF_RSP_ERROR, "read into read-only grant");
    rw_req(&g, &r, BLKIF_OP_WRITE, id++, IMG_SECTORS - 8, 2, 0);
    do_req(&g, 0, &r, BLKIF_RSP_ERROR, "write past the end");
    rw_req(&g, &r, BLKIF_OP_WRITE, id++, 0, 11, 0);
    r.nr_segs = 12;
    do_req(&g, 0, &r, BLKIF_RSP_ERROR, "12 direct segments");
    rw_req(&g, &r, BLKIF_OP_READ, id++, 0, 1, 0);
    r.seg[0].last_sect = 8;
    do_req(&g, 0, &r, BLKIF_RSP_ERROR, "last_sect 8");

    /* a full ring in one push: every request answered, ids all seen */
    unsigned n = 32 * npages;
    static struct treq batch[128];
    for (unsigned i = 0; i < n; i++) {
        rw_req(&g, &batch[i], i % 2 ? BLKIF_OP_READ : BLKIF_OP_WRITE, 5000 + i, 40960 + 8ull * i, 1, i);
        put_req(&g, 0, &batch[i]);
    }
    unsigned notif0 = g.q[0].notifies;
    push(&g, 0);
    static struct trsp rs[128];
    T_CHECK(wait_rsps(&g, 0, rs, n, 10000), "%s: batch of %u not answered", what, n);
    uint64_t seen = 0;
    bool all_ok = true;
    for (unsigned i = 0; i < n; i++) {
        all_ok &= rs[i].status == BLKIF_RSP_OKAY && rs[i].id >= 5000 && rs[i].id < 5000 + n &&
                  rs[i].op == (rs[i].id % 2 ? BLKIF_OP_READ : BLKIF_OP_WRITE);
        if (rs[i].id >= 5000 && rs[i].id < 5000 + 64)
            seen |= 1ull << (rs[i].id - 5000);
    }
    T_CHECK(all_ok, "%s: batch responses wrong", what);
    T_CHECK(n > 64 || seen == (n == 64 ? ~0ull : (1ull << n) - 1), "%s: not every id answered", what);
    T_LOG("%s: batch of %u answered with %u notification(s)", what, n, g.q[0].notifies - notif0);
    for (unsigned i = 0; i < n; i++)
        end_grants(&g, &batch[i]);

    struct vbd_stats st;
    dp_get_stats(dp, &st);
    T_LOG("%s: rd_req %llu wr_req %llu f_req %llu ds_req %llu rd_sect %llu wr_sect %llu errors %llu "
          "eopnotsupp %llu bad_req %llu gnt_map %llu notify %llu kicks %llu submits %llu",
          what, (unsigned long long)st.rd_req, (unsigned long long)st.wr_req,
          (unsigned long long)st.f_req, (unsigned long long)st.ds_req,
          (unsigned long long)st.rd_sect, (unsigned long long)st.wr_sect,
          (unsigned long long)st.errors, (unsigned long long)st.eopnotsupp,
          (unsigned long long)st.bad_req, (unsigned long long)st.gnt_map,
          (unsigned long long)st.notify, (unsigned long long)st.kicks, (unsigned long long)st.submits);
    T_EQ(st.grants_mapped, npages);
    T_EQ(st.inflight, 0);
    T_EQ(st.halted, 0);
    T_EQ(st.f_req, 2);                          /* flush, flush with data (barrier refused) */
    T_EQ(st.rd_req, 5 + n / 2);                 /* read, indirect read, 3 hostile reads, batch */
    T_EQ(st.errors, 6);
    T_EQ(st.bad_req, cfg.discard ? 7 : 6);
    T_EQ(st.eopnotsupp, cfg.discard ? 3 : 2);
    /* sectors are counted once validated, before grants are mapped (as Linux) */
    T_EQ(st.rd_sect, 32 + 256 * 8 + 8 + 16 + 8 * (n / 2));
    T_EQ(st.wr_sect, 32 + 6 + 16 + 256 * 8 + 8 * (n / 2));
    T_EQ(st.io_errors, 0);
    T_CHECK(st.submits <= st.rd_req + st.wr_req + st.f_req + st.ds_req, "one submit per sweep");
    T_CHECK(!dp_halted(dp), "halted");

    dp_stop(dp, 2000);
    check_released(&g, what);
    dp_stop(dp, 2000);                          /* idempotent */
    dp_destroy(dp);
    e->ops->close(e);
    guest_fini(&g);
    free(src);
    free(big);
}

/* Two queues on 4-page rings; a bogus req_prod on queue 1 halts only it. */
static void scenario_halt(void)
{
    T_LOG("scenario halt: native, 2 queues, 4-page rings");
    make_image();
    struct guest g;
    guest_init(&g, BLKIF_ABI_NATIVE, 2, 4);
    struct engine *e = open_engine(imgpath);
    struct dp_config cfg;
    base_cfg(&cfg, &g, e);
    struct dp *dp;
    T_ASSERT(dp_create(ops, xh, &cfg, &dp) == 0, "dp_create");
    T_EQ(sim_gnt_mapped_count(g.dom), 8);
    T_ASSERT(dp_start(dp) == 0, "dp_start");
    struct treq r;
    for (unsigned qi = 0; qi < 2; qi++) {
        rw_req(&g, &r, BLKIF_OP_WRITE, 10 + qi, 100 * qi, 2, qi);
        do_req(&g, qi, &r, BLKIF_RSP_OKAY, "write before halt");
    }
    /* queue 1: req_prod far ahead of anything possible */
    struct gq *q1 = &g.q[1];
    q1->fr.sring->req_prod = q1->fr.sring->rsp_prod + RING_SIZE(&q1->fr) + 5;
    sim_evtchn_notify(g.ev, q1->port);
    uint64_t end = now_ms() + 3000;
    while (!dp_halted(dp) && now_ms() < end)
        usleep(1000);
    T_CHECK(dp_halted(dp), "bogus req_prod did not halt the ring");
    struct vbd_stats st;
    dp_get_stats(dp, &st);
    T_EQ(st.halted, 1);
    RING_IDX rsp1 = q1->fr.sring->rsp_prod;
    /* queue 0 still serves */
    rw_req(&g, &r, BLKIF_OP_READ, 20, 0, 2, 0);
    do_req(&g, 0, &r, BLKIF_RSP_OKAY, "queue 0 after queue 1 halted");
    usleep(100 * 1000);
    T_EQ(q1->fr.sring->rsp_prod, rsp1);        /* halted ring answers nothing */
    dp_stop(dp, 2000);
    check_released(&g, "halt");
    dp_destroy(dp);
    e->ops->close(e);
    guest_fini(&g);
}

/* Storage errors, dp_stop with I/O in flight (answered), dp_stop past its
 * timeout (abandoned, never hangs). */
static void scenario_faults(void)
{
    T_LOG("scenario faults: error and delay engines");
    make_image();
    char spec[600];
    struct treq r;

    /* -EIO from the engine -> ERROR, io_errors */
    struct guest g;
    guest_init(&g, BLKIF_ABI_X86_32, 1, 1);
    snprintf(spec, sizeof(spec), "error:1M-2M:uring:%s", imgpath);
    struct engine *e = open_engine(spec);
    struct dp_config cfg;
    base_cfg(&cfg, &g, e);
    struct dp *dp;
    T_ASSERT(dp_create(ops, xh, &cfg, &dp) == 0, "dp_create");
    T_ASSERT(dp_start(dp) == 0, "dp_start");
    rw_req(&g, &r, BLKIF_OP_READ, 1, 2048 + 8, 1, 0);
    do_req(&g, 0, &r, BLKIF_RSP_ERROR, "read of failing range");
    rw_req(&g, &r, BLKIF_OP_READ, 2, 0, 1, 0);
    do_req(&g, 0, &r, BLKIF_RSP_OKAY, "read outside failing range");
    struct vbd_stats st;
    dp_get_stats(dp, &st);
    T_EQ(st.io_errors, 1);
    T_EQ(st.errors, 1);
    dp_destroy(dp);
    check_released(&g, "error engine");
    e->ops->close(e);
    guest_fini(&g);

    /* stop while a 300 ms I/O is in flight: answered before dp_stop returns */
    guest_init(&g, BLKIF_ABI_X86_64, 1, 1);
    snprintf(spec, sizeof(spec), "delay:300000:uring:%s", imgpath);
    e = open_engine(spec);
    base_cfg(&cfg, &g, e);
    T_ASSERT(dp_create(ops, xh, &cfg, &dp) == 0, "dp_create");
    T_ASSERT(dp_start(dp) == 0, "dp_start");
    rw_req(&g, &r, BLKIF_OP_READ, 3, 0, 4, 0);
    put_req(&g, 0, &r);
    push(&g, 0);
    usleep(50 * 1000);
    dp_get_stats(dp, &st);
    T_EQ(st.inflight, 1);
    uint64_t t0 = now_ms();
    dp_stop(dp, 3000);
    uint64_t dt = now_ms() - t0;
    T_CHECK(g.q[0].fr.sring->rsp_prod == 1, "in-flight request not answered by dp_stop");
    struct trsp rsp;
    if (wait_rsps(&g, 0, &rsp, 1, 10))
        T_CHECK(rsp.id == 3 && rsp.status == BLKIF_RSP_OKAY, "in-flight answer %llu/%d",
                (unsigned long long)rsp.id, rsp.status);
    T_CHECK(dt < 2000, "dp_stop took %llu ms", (unsigned long long)dt);
    check_released(&g, "stop in flight");
    end_grants(&g, &r);
    dp_destroy(dp);
    e->ops->close(e);
    guest_fini(&g);

    /* stop with a 5 s I/O and a 200 ms timeout: returns in time, holds nothing */
    guest_init(&g, BLKIF_ABI_X86_64, 1, 1);
    e = open_engine("delay:5000000:null:64M");
    base_cfg(&cfg, &g, e);
    T_ASSERT(dp_create(ops, xh, &cfg, &dp) == 0, "dp_create");
    T_ASSERT(dp_start(dp) == 0, "dp_start");
    rw_req(&g, &r, BLKIF_OP_WRITE, 4, 0, 2, 0);
    put_req(&g, 0, &r);
    push(&g, 0);
    usleep(50 * 1000);
    t0 = now_ms();
    dp_stop(dp, 200);
    dt = now_ms() - t0;
    T_CHECK(dt < 1500, "dp_stop(200 ms) took %llu ms", (unsigned long long)dt);
    check_released(&g, "stop timeout");
    dp_destroy(dp);
    e->ops->close(e);
    guest_fini(&g);
}

/* Daemon restart: reattach at the shared rsp_prod; refuse an impossible ring. */
static void scenario_reattach(void)
{
    T_LOG("scenario reattach");
    make_image();
    struct guest g;
    guest_init(&g, BLKIF_ABI_X86_64, 1, 1);
    struct engine *e = open_engine(imgpath);
    struct dp_config cfg;
    base_cfg(&cfg, &g, e);
    cfg.reattach = true;
    struct gq *q = &g.q[0];
    /* a ring that served 7 requests before */
    q->fr.sring->req_prod = q->fr.sring->rsp_prod = 7;
    q->fr.req_prod_pvt = q->fr.rsp_cons = 7;
    /* impossible: req_prod - rsp_prod > size */
    q->fr.sring->req_prod = 7 + 33;
    struct dp *dp = NULL;
    T_EQ(dp_create(ops, xh, &cfg, &dp), -EIO);
    T_CHECK(sim_gnt_mapped_count(g.dom) == 0, "failed dp_create left a mapping");
    T_CHECK(sim_evtchn_port_state(g.sh, DOMID, q->port) == 1, "failed dp_create left the port bound");
    q->fr.sring->req_prod = 7;
    T_ASSERT(dp_create(ops, xh, &cfg, &dp) == 0, "reattach");
    T_ASSERT(dp_start(dp) == 0, "dp_start");
    struct treq r;
    rw_req(&g, &r, BLKIF_OP_WRITE, 77, 0, 1, 3);
    do_req(&g, 0, &r, BLKIF_RSP_OKAY, "request after reattach");
    T_EQ(q->fr.sring->rsp_prod, 8);
    dp_destroy(dp);
    check_released(&g, "reattach");
    e->ops->close(e);
    guest_fini(&g);
}

static void scenario_config(void)
{
    struct guest g;
    guest_init(&g, BLKIF_ABI_X86_64, 1, 1);
    struct engine *e = open_engine("null:1M");
    struct dp_config cfg;
    struct dp *dp = (struct dp *)0x1;
    base_cfg(&cfg, &g, e);
    cfg.nr_queues = 0;
    T_EQ(dp_create(ops, xh, &cfg, &dp), -EINVAL);
    base_cfg(&cfg, &g, e);
    cfg.queue[0].nr_ring_pages = 3;
    T_EQ(dp_create(ops, xh, &cfg, &dp), -EINVAL);
    base_cfg(&cfg, &g, e);
    cfg.queue[0].nr_ring_pages = 64;
    T_EQ(dp_create(ops, xh, &cfg, &dp), -EINVAL);
    base_cfg(&cfg, &g, e);
    cfg.queue[0].ring_ref[0] = 15999;           /* not granted */
    T_CHECK(dp_create(ops, xh, &cfg, &dp) < 0, "bad ring ref accepted");
    base_cfg(&cfg, &g, e);
    cfg.queue[0].evtchn = 999;                  /* not an unbound port for us */
    T_CHECK(dp_create(ops, xh, &cfg, &dp) < 0, "bad port accepted");
    T_CHECK(dp == (struct dp *)0x1, "out-param touched on failure");
    T_CHECK(sim_gnt_mapped_count(g.dom) == 0, "failed dp_create left a mapping");
    /* never started: stop/destroy still release everything */
    base_cfg(&cfg, &g, e);
    T_ASSERT(dp_create(ops, xh, &cfg, &dp) == 0, "dp_create");
    dp_destroy(dp);
    check_released(&g, "never started");
    e->ops->close(e);
    guest_fini(&g);
}

/* BARRIER drains: nothing behind it starts and it starts only when alone;
 * a whole-disk DISCARD of a 4 GiB store goes down in <= 1 GiB pieces. */
static void scenario_barrier(void)
{
    T_LOG("scenario barrier");
    make_image();
    struct guest g;
    guest_init(&g, BLKIF_ABI_X86_64, 1, 1);
    char spec[600];
    snprintf(spec, sizeof(spec), "delay:100000:uring:%s", imgpath);
    struct engine *e = open_engine(spec);
    struct dp_config cfg;
    base_cfg(&cfg, &g, e);
    cfg.barrier = true;
    struct dp *dp;
    T_ASSERT(dp_create(ops, xh, &cfg, &dp) == 0, "dp_create");
    T_ASSERT(dp_start(dp) == 0, "dp_start");
    static struct treq w1, w2, b, rd;
    rw_req(&g, &w1, BLKIF_OP_WRITE, 1, 0, 1, 1);
    rw_req(&g, &w2, BLKIF_OP_WRITE, 2, 8, 1, 2);
    rw_req(&g, &b, BLKIF_OP_WRITE, 3, 16, 1, 3);
    b.op = BLKIF_OP_WRITE_BARRIER;
    rw_req(&g, &rd, BLKIF_OP_READ, 4, 0, 1, 0);
    put_req(&g, 0, &w1);
    put_req(&g, 0, &w2);
    put_req(&g, 0, &b);
    put_req(&g, 0, &rd);
    uint64_t t0 = now_ms();
    push(&g, 0);
    struct trsp rs[4];
    T_ASSERT(wait_rsps(&g, 0, rs, 4, 5000), "barrier batch not answered");
    uint64_t dt = now_ms() - t0;
    /* writes (100 ms) -> barrier write (100 ms) + flush (100 ms) -> read (100 ms) */
    T_CHECK(rs[0].id <= 2 && rs[1].id <= 2, "writes before the barrier answered after it: %llu %llu",
            (unsigned long long)rs[0].id, (unsigned long long)rs[1].id);
    T_CHECK(rs[2].id == 3 && rs[2].op == BLKIF_OP_WRITE_BARRIER && rs[2].status == BLKIF_RSP_OKAY,
            "barrier answer %llu op %u status %d", (unsigned long long)rs[2].id, rs[2].op, rs[2].status);
    T_CHECK(rs[3].id == 4 && rs[3].status == BLKIF_RSP_OKAY, "read after barrier");
    T_CHECK(dt >= 380, "barrier did not serialize: %llu ms", (unsigned long long)dt);
    T_CHECK(!memcmp(sim_dom_page(g.dom, rd.pfn[0]), sim_dom_page(g.dom, w1.pfn[0]), PG),
            "read after barrier sees the first write");
    end_grants(&g, &w1);
    end_grants(&g, &w2);
    end_grants(&g, &b);
    end_grants(&g, &rd);
    dp_destroy(dp);
    check_released(&g, "barrier");
    e->ops->close(e);
    guest_fini(&g);

    guest_init(&g, BLKIF_ABI_X86_64, 1, 1);     /* a fresh ring */
    e = open_engine("null:4G");
    base_cfg(&cfg, &g, e);
    T_ASSERT(dp_create(ops, xh, &cfg, &dp) == 0, "dp_create null");
    T_ASSERT(dp_start(dp) == 0, "dp_start");
    struct treq r;
    memset(&r, 0, sizeof(r));
    r.op = BLKIF_OP_DISCARD; r.id = 9; r.sector = 0; r.nr_sectors = (4ull << 30) / 512;
    do_req(&g, 0, &r, BLKIF_RSP_OKAY, "whole-disk discard");
    struct vbd_stats st;
    dp_get_stats(dp, &st);
    T_EQ(st.ds_req, 1);
    dp_destroy(dp);
    e->ops->close(e);
    guest_fini(&g);
}

int main(void)
{
    log_init("t_dataplane", LOG_TARGET_STDERR, NULL, LOG_INFO);
    char *dir = malloc(600);
    snprintf(dir, 600, "%s/host", t_tmpdir(1));
    hostdir = dir;
    snprintf(imgpath, sizeof(imgpath), "%s/img.raw", t_tmpdir(0));
    int rc = ops->host_open(hostdir, &xh);
    T_ASSERT(rc == 0, "host_open %s: %d", hostdir, rc);
    scenario_config();
    scenario_io(BLKIF_ABI_X86_64, 2);
    scenario_io(BLKIF_ABI_X86_32, 1);
    scenario_io(BLKIF_ABI_NATIVE, 4);
    scenario_halt();
    scenario_faults();
    scenario_reattach();
    scenario_barrier();
    ops->host_close(xh);
    free(dir);
    return t_done();
}
