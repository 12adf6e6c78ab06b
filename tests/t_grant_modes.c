/* t_grant_modes: for every ABI {x86_32, x86_64} x ring order {0, 4} x queues {1, 4} x indirect {off, 256} x grant mode {map, copy, persistent} (and the polling loop), a mixed-size read/write workload (partial segments, up to the largest request) served through dp_* on the simulated host returns and stores exactly the model's data, the grant counters fit the mode, and dp_stop leaves nothing mapped. */
#include "harness.h"
#include "util.h"
#include "dataplane.h"
#include "engine.h"
#include "log.h"
#include "sim.h"
#include "lib/guest.h"

#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#define DOMID 9
#define MiB (1024ull * 1024)
#define IMG_BYTES (16 * MiB)
#define IMG_SECTORS (IMG_BYTES / 512)
#define GUEST_PAGES 8192
#define MAX_K 96                        /* requests per queue per round */
#define ROUND_BYTES (2 * MiB)           /* data per queue per round (at most) */

static const struct xen_ops *ops = &xen_ops_sim;
static char *hostdir;
static struct xen_host *xh;
static char imgpath[512];
static uint8_t *model;                  /* what the image must hold */

struct combo {
    enum blkif_abi abi;
    unsigned order, nq, indirect;
    enum grant_mode mode;
    unsigned poll_us;
};

struct wseg { uint32_t pfn; uint8_t first, last; };

struct wreq {
    struct treq r;                      /* wire fields + refs to end (non-persistent) */
    bool write;
    uint64_t sector;
    unsigned nseg;
    struct wseg seg[256];
};

/* Per queue: a range of guest frames (and, persistent, their grants kept
 * for the whole run like blkfront's persistent pool). */
struct pool {
    uint32_t pfn0, n, next;
    uint32_t ref[2048];                 /* persistent grant of frame pfn0 + i, 0 = none yet */
    unsigned used;                      /* distinct persistent grants made */
};

static struct wreq reqs[XBD_MAX_QUEUES][MAX_K];
static struct pool pools[XBD_MAX_QUEUES];
static uint64_t rng;

static uint32_t rnd(uint32_t n)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return n ? (uint32_t)((rng >> 33) % n) : 0;
}

/* A frame for one page of a request and its grant reference. */
static uint32_t take_page(struct guest *g, unsigned qi, bool persistent, bool readonly,
                          struct treq *r, uint32_t *pfn)
{
    struct pool *p = &pools[qi];
    T_ASSERT(p->next < p->n, "queue %u: guest page pool exhausted", qi);
    uint32_t i = p->next++;
    *pfn = p->pfn0 + i;
    if (persistent) {
        if (!p->ref[i]) {
            T_ASSERT(sim_gnt_grant(g->dom, 0, *pfn, false, &p->ref[i]) == 0, "grant persistent");
            p->used++;
        }
        return p->ref[i];
    }
    uint32_t ref;
    T_ASSERT(sim_gnt_grant(g->dom, 0, *pfn, readonly, &ref) == 0, "grant");
    r->refs[r->nrefs++] = ref;
    return ref;
}

/* Build request w (nseg segments, some partial) at `sector`. */
static void build(struct guest *g, unsigned qi, struct wreq *w, uint64_t id, bool write,
                  uint64_t sector, unsigned nseg, bool indirect, bool persistent)
{
    struct treq *r = &w->r;
    w->write = write;
    w->sector = sector;
    w->nseg = nseg;
    uint8_t op = write ? BLKIF_OP_WRITE : BLKIF_OP_READ;
    if (indirect)
        guest_req_init(r, BLKIF_OP_INDIRECT, op, id, sector, nseg);
    else
        guest_req_init(r, op, 0, id, sector, nseg);
    struct blkif_request_segment *desc[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST] = { 0 };
    if (indirect) {
        for (unsigned p = 0; p < (nseg + 511) / 512; p++) {
            uint32_t pfn;
            r->indirect_grefs[p] = take_page(g, qi, persistent, true, r, &pfn);
            desc[p] = sim_dom_page(g->dom, pfn);
        }
    }
    for (unsigned i = 0; i < nseg; i++) {
        struct wseg *s = &w->seg[i];
        struct blkif_request_segment bs;
        bs.gref = take_page(g, qi, persistent, write, r, &s->pfn);
        s->first = 0;
        s->last = 7;
        if (rnd(4) == 0) {              /* a partial page */
            s->first = (uint8_t)rnd(8);
            s->last = (uint8_t)(s->first + rnd(8 - s->first));
        }
        bs.first_sect = s->first;
        bs.last_sect = s->last;
        if (indirect)
            desc[i / 512][i % 512] = bs;
        else
            r->seg[i] = bs;
        uint8_t *page = sim_dom_page(g->dom, s->pfn);
        if (write)
            guest_fill(page, GUEST_PG, id * 1000 + i);
        else
            memset(page, 0xEE, GUEST_PG);
    }
}

static uint64_t req_sectors(const struct wreq *w)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < w->nseg; i++)
        n += (uint64_t)(w->seg[i].last - w->seg[i].first + 1);
    return n;
}

/* Segment count of one request: small, direct-sized or up to the largest. */
static unsigned pick_nseg(unsigned max_segs, bool small)
{
    if (small)
        return 1 + rnd(3);
    switch (rnd(3)) {
    case 0: return 1 + rnd(4);
    case 1: return 1 + rnd(BLKIF_MAX_SEGMENTS_PER_REQUEST);
    default: return 1 + rnd(max_segs);
    }
}

struct totals { unsigned data, indirect; };

/*
 * One round on every queue: K requests per queue pushed at once, then every
 * answer checked.  WRITE rounds use disjoint ranges of the queue's region;
 * READ rounds any range of it.  first_max: the first request of queue 0 is
 * the largest possible.
 */
static void round_run(struct guest *g, const struct combo *c, unsigned rnd_no, bool write,
                      bool small, bool first_max, struct totals *tot)
{
    bool persistent = c->mode == GRANT_MODE_PERSISTENT;
    unsigned max_segs = c->indirect ? c->indirect : BLKIF_MAX_SEGMENTS_PER_REQUEST;
    uint64_t region = IMG_SECTORS / c->nq;
    unsigned k_of[XBD_MAX_QUEUES];
    unsigned ring = RING_SIZE(&g->q[0].fr);

    for (unsigned qi = 0; qi < c->nq; qi++) {
        pools[qi].next = 0;
        uint64_t start = region * qi, cursor = start + rnd(64), budget = ROUND_BYTES / 512;
        unsigned kmax = small ? (ring < MAX_K ? ring : MAX_K) : (ring < 12 ? ring : 12);
        unsigned k = 0;
        for (; k < kmax; k++) {
            unsigned nseg = (first_max && qi == 0 && k == 0) ? max_segs : pick_nseg(max_segs, small);
            bool ind = c->indirect && (nseg > BLKIF_MAX_SEGMENTS_PER_REQUEST || rnd(4) == 0);
            /* pages needed: data + indirect; stop before the pool runs dry */
            if (pools[qi].next + nseg + 2 > pools[qi].n)
                break;
            struct wreq *w = &reqs[qi][k];
            uint64_t id = ((uint64_t)rnd_no << 32) | ((uint64_t)qi << 16) | k;
            build(g, qi, w, id, write, 0, nseg, ind, persistent);
            uint64_t n = req_sectors(w);
            uint64_t sector;
            if (write) {
                if (cursor + n > start + region || n > budget) {
                    /* does not fit: drop it (its pages/grants are released below) */
                    if (!persistent)
                        guest_end_grants(g, &w->r);
                    break;
                }
                sector = cursor;
                cursor += n + rnd(16);
                budget -= n;
            } else {
                sector = start + rnd((uint32_t)(region - n + 1));
            }
            w->sector = w->r.sector = sector;
            guest_put_req(g, qi, &w->r);
            tot->data++;
            tot->indirect += ind;
        }
        k_of[qi] = k;
        guest_push(g, qi);
    }
    static struct trsp rs[MAX_K];
    for (unsigned qi = 0; qi < c->nq; qi++) {
        unsigned k = k_of[qi];
        bool got = guest_wait_rsps(g, qi, rs, k, 20000);
        T_CHECK(got, "round %u queue %u: %u responses not all received", rnd_no, qi, k);
        if (!got)
            continue;
        bool seen[MAX_K] = { false };
        for (unsigned i = 0; i < k; i++) {
            unsigned idx = (unsigned)(rs[i].id & 0xffff);
            bool ok = (rs[i].id >> 32) == rnd_no && ((rs[i].id >> 16) & 0xffff) == qi && idx < k &&
                      !seen[idx];
            T_CHECK(ok, "round %u queue %u: unexpected response id %#llx", rnd_no, qi,
                    (unsigned long long)rs[i].id);
            if (!ok)
                continue;
            seen[idx] = true;
            struct wreq *w = &reqs[qi][idx];
            uint8_t want_op = w->write ? BLKIF_OP_WRITE : BLKIF_OP_READ;
            T_CHECK(rs[i].op == want_op && rs[i].status == BLKIF_RSP_OKAY,
                    "round %u queue %u id %u (%u segs, sector %llu): op %u status %d", rnd_no, qi,
                    idx, w->nseg, (unsigned long long)w->sector, rs[i].op, rs[i].status);
            uint64_t off = w->sector * 512;
            bool same = true;
            for (unsigned s = 0; s < w->nseg; s++) {
                const struct wseg *sg = &w->seg[s];
                uint8_t *p = (uint8_t *)sim_dom_page(g->dom, sg->pfn) + sg->first * 512;
                size_t len = (size_t)(sg->last - sg->first + 1) * 512;
                if (w->write)
                    memcpy(model + off, p, len);
                else
                    same &= !memcmp(model + off, p, len);
                off += len;
            }
            T_CHECK(same, "round %u queue %u: READ id %u (%u segs, sector %llu) returned wrong data",
                    rnd_no, qi, idx, w->nseg, (unsigned long long)w->sector);
            if (!persistent)
                guest_end_grants(g, &w->r);
        }
    }
}

static void run_combo(const struct combo *c)
{
    char what[96];
    snprintf(what, sizeof(what), "%s order %u queues %u indirect %u %s%s", blkif_abi_name(c->abi),
             c->order, c->nq, c->indirect,
             c->mode == GRANT_MODE_MAP ? "map" : c->mode == GRANT_MODE_COPY ? "copy" : "persistent",
             c->poll_us ? " poll" : "");
    rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)c->abi << 40 | (uint64_t)c->order << 32 |
                                  c->nq << 16 | c->indirect << 4 | c->mode);
    bool persistent = c->mode == GRANT_MODE_PERSISTENT;

    int fd = open(imgpath, O_CREAT | O_RDWR | O_TRUNC, 0600);
    T_ASSERT(fd >= 0 && ftruncate(fd, (off_t)IMG_BYTES) == 0, "image");
    close(fd);
    memset(model, 0, IMG_BYTES);

    struct guest g;
    guest_init(&g, hostdir, DOMID, c->abi, c->nq, 1u << c->order, GUEST_PAGES);
    uint32_t per = (GUEST_PAGES - g.data_pfn0) / c->nq;
    if (per > 2048)
        per = 2048;
    for (unsigned qi = 0; qi < c->nq; qi++) {
        memset(&pools[qi], 0, sizeof(pools[qi]));
        pools[qi].pfn0 = g.data_pfn0 + qi * per;
        pools[qi].n = per;
    }
    struct engine_params ep = { .path = NULL, .readonly = false, .direct = true, .name = what };
    struct engine *e;
    T_ASSERT(engine_open_params(imgpath, &ep, false, &e) == 0, "engine");
    struct dp_config cfg;
    guest_dp_config(&cfg, &g, e);
    cfg.max_indirect_segs = c->indirect;
    cfg.grant_mode = c->mode;
    cfg.persistent = persistent;                /* negotiated by both sides */
    cfg.poll_us = c->poll_us;
    struct dp *dp;
    int rc = dp_create(ops, xh, &cfg, &dp);
    T_ASSERT(rc == 0, "%s: dp_create: %d", what, rc);
    T_ASSERT(dp_start(dp) == 0, "%s: dp_start", what);
    struct dp_info info;
    dp_get_info(dp, &info);
    T_CHECK(info.grant_mode == c->mode && info.abi == c->abi && info.ring_order == c->order &&
            info.nr_queues == c->nq && info.lim.max_indirect_segs == c->indirect,
            "%s: dp_get_info: %s %s order %u queues %u indirect %u", what,
            grant_mode_name(info.grant_mode), blkif_abi_name(info.abi), info.ring_order,
            info.nr_queues, info.lim.max_indirect_segs);

    struct totals tot = { 0, 0 };
    round_run(&g, c, 1, true, false, true, &tot);      /* mixed writes, the largest first */
    round_run(&g, c, 2, false, false, true, &tot);     /* mixed reads */
    round_run(&g, c, 3, true, true, false, &tot);      /* many small writes (fills big rings) */
    round_run(&g, c, 4, false, false, false, &tot);    /* mixed reads */

    struct vbd_stats st;
    dp_get_stats(dp, &st);
    unsigned ring_pages = c->nq << c->order, used = 0;
    for (unsigned qi = 0; qi < c->nq; qi++)
        used += pools[qi].used;
    T_EQ(st.errors, 0);
    T_EQ(st.inflight, 0);
    switch (c->mode) {
    case GRANT_MODE_MAP:        /* ring + one map per data request + one per indirect read */
        T_CHECK(st.gnt_map == c->nq + tot.data + tot.indirect,
                "%s: gnt_map %llu, expected %u", what, (unsigned long long)st.gnt_map,
                c->nq + tot.data + tot.indirect);
        T_EQ(st.gnt_copy, 0);
        T_EQ(st.grants_mapped, ring_pages);
        break;
    case GRANT_MODE_COPY:       /* only the rings are mapped; copies batched */
        T_EQ(st.gnt_map, c->nq);
        T_CHECK(st.gnt_copy >= 1 && st.gnt_copy <= tot.data + tot.indirect,
                "%s: gnt_copy %llu for %u requests", what, (unsigned long long)st.gnt_copy, tot.data);
        T_EQ(st.grants_mapped, ring_pages);
        break;
    default: {                  /* each gref the backend saw mapped once and kept */
        unsigned mapped = 0, twice = 0;
        for (unsigned qi = 0; qi < c->nq; qi++)
            for (unsigned i = 0; i < pools[qi].n; i++) {
                uint32_t m = pools[qi].ref[i] ? sim_gnt_ref_mapped(g.dom, pools[qi].ref[i]) : 0;
                mapped += m != 0;
                twice += m > 1;
            }
        T_CHECK(twice == 0, "%s: %u persistent grefs mapped more than once", what, twice);
        T_CHECK(mapped > 0 && mapped <= used, "%s: %u of %u persistent grefs mapped", what, mapped, used);
        T_CHECK(st.gnt_map == c->nq + mapped, "%s: gnt_map %llu, expected rings %u + %u grefs", what,
                (unsigned long long)st.gnt_map, c->nq, mapped);
        T_EQ(st.gnt_copy, 0);
        T_EQ(st.grants_mapped, ring_pages + mapped);
        break;
    }
    }
    T_LOG("%s: %u requests (%u indirect), gnt_map %llu gnt_copy %llu submits %llu notify %llu "
          "kicks %llu", what, tot.data, tot.indirect, (unsigned long long)st.gnt_map,
          (unsigned long long)st.gnt_copy, (unsigned long long)st.submits,
          (unsigned long long)st.notify, (unsigned long long)st.kicks);
    /* one engine submit per sweep at most: never more than one per request */
    T_CHECK(st.submits <= tot.data, "%s: %llu submits for %u requests", what,
            (unsigned long long)st.submits, tot.data);

    dp_stop(dp, 2000);
    dp_get_stats(dp, &st);
    T_CHECK(st.grants_mapped == 0 && st.gnt_map == st.gnt_unmap,
            "%s: after dp_stop grants_mapped %llu, gnt_map %llu, gnt_unmap %llu", what,
            (unsigned long long)st.grants_mapped, (unsigned long long)st.gnt_map,
            (unsigned long long)st.gnt_unmap);
    guest_check_released(&g, what);
    if (persistent)
        for (unsigned qi = 0; qi < c->nq; qi++)
            for (unsigned i = 0; i < pools[qi].n; i++)
                if (pools[qi].ref[i])
                    T_CHECK(sim_gnt_end(g.dom, pools[qi].ref[i]) == 0, "%s: persistent ref %u still mapped",
                            what, pools[qi].ref[i]);
    dp_destroy(dp);
    e->ops->close(e);
    guest_fini(&g);

    uint8_t *img = malloc(IMG_BYTES);
    fd = open(imgpath, O_RDONLY);
    T_ASSERT(fd >= 0 && pread(fd, img, IMG_BYTES, 0) == (ssize_t)IMG_BYTES, "read image");
    close(fd);
    size_t bad = IMG_BYTES;
    for (size_t off = 0; off < IMG_BYTES && bad == IMG_BYTES; off += 4096)
        if (memcmp(img + off, model + off, 4096))
            bad = off;
    T_CHECK(bad == IMG_BYTES, "%s: image differs from the model at byte %zu", what, bad);
    free(img);
}

int main(void)
{
    log_init("t_grant_modes", LOG_TARGET_STDERR, NULL, LOG_WARNING);
    guest_test_host(ops, &hostdir, imgpath, sizeof(imgpath), &xh);
    model = malloc(IMG_BYTES);
    T_ASSERT(model, "model");

    const enum blkif_abi abis[] = { BLKIF_ABI_X86_32, BLKIF_ABI_X86_64 };
    const unsigned orders[] = { 0, 4 }, queues[] = { 1, 4 }, indirect[] = { 0, 256 };
    const enum grant_mode modes[] = { GRANT_MODE_MAP, GRANT_MODE_COPY, GRANT_MODE_PERSISTENT };
    unsigned n = 0;
    uint64_t t0 = xbd_now_ms();
    for (unsigned a = 0; a < 2; a++)
        for (unsigned o = 0; o < 2; o++)
            for (unsigned q = 0; q < 2; q++)
                for (unsigned i = 0; i < 2; i++)
                    for (unsigned m = 0; m < 3; m++, n++) {
                        struct combo c = { abis[a], orders[o], queues[q], indirect[i], modes[m], 0 };
                        run_combo(&c);
                    }
    /* the polling loop (poll_us): same results */
    for (unsigned m = 0; m < 3; m++, n++) {
        struct combo c = { BLKIF_ABI_X86_64, 4, 4, 256, modes[m], 200 };
        run_combo(&c);
    }
    T_LOG("%u combinations in %llu ms", n, (unsigned long long)(xbd_now_ms() - t0));
    ops->host_close(xh);
    free(model);
    free(hostdir);
    return t_done();
}
