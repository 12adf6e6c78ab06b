/*
 * io.c - the ring frontend of xen-blkbench: request slots (data pages and
 * indirect pages per slot, grant per request or persistent), request
 * building as Linux blkfront does it (blkif_queue_rw_req: direct up to 11
 * segments, INDIRECT beyond), notification with
 * RING_PUSH_REQUESTS_AND_CHECK_NOTIFY, completion with
 * RING_FINAL_CHECK_FOR_RESPONSES and strict response checks (blkif_interrupt:
 * id known, operation = the request's, indirect_op for INDIRECT).
 *
 * Phases (each a generator + the common loop run_phase): the sha256 pass, the
 * workload, the verify read-back pass, flush, discard.
 * Units: sectors are 512 bytes everywhere here; `align` is the backend
 * sector-size in sectors.
 */
#include "dev.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REPORTED 10

static inline uint64_t align_s(const struct bb_dev *d)
{
    return d->sector_size / BB_SECTOR;
}

static void *guest_page(struct bb_dev *d, uint32_t pfn)
{
    return sim_dom_page(d->dom, pfn);
}

/* Address of the k-th data sector of a slot's buffer. */
static uint8_t *slot_sector(struct bb_dev *d, const struct bb_slot *sl, uint64_t k)
{
    uint64_t pos = sl->page_off + k;
    return (uint8_t *)guest_page(d, sl->data_pfn + (uint32_t)(pos / BB_SECTORS_PER_PAGE)) +
           (pos % BB_SECTORS_PER_PAGE) * BB_SECTOR;
}

uint64_t io_region_sectors(struct bb_dev *d, uint64_t *first)
{
    const struct bb_opts *o = d->o;
    uint64_t f = o->offset / BB_SECTOR, n;
    if (o->length)
        n = o->length / BB_SECTOR;
    else if (f < d->sectors)
        n = d->sectors - f;
    else
        n = o->bs_max / BB_SECTOR;
    *first = f;
    return n;
}

/* ------------------------------------------------------------- slots */
int io_setup(struct bb_dev *d)
{
    const struct bb_opts *o = d->o;
    unsigned per_q_max = bbr_size(&d->q[0].ring);
    unsigned depth = o->iodepth;
    if (depth > per_q_max * d->nq) {
        bb_info(d, "iodepth %u capped to %u (%u queue(s) x %u ring entries)", depth, per_q_max * d->nq,
                d->nq, per_q_max);
        depth = per_q_max * d->nq;
    }
    /* the planned pages per slot, but never more segments than negotiated */
    if (d->slot_data_pages > d->max_segs)
        d->slot_data_pages = d->max_segs;
    d->slot_ind_pages = d->max_indirect ?
        (d->slot_data_pages + BLKIF_SEGS_PER_INDIRECT_PAGE - 1) / BLKIF_SEGS_PER_INDIRECT_PAGE : 0;
    uint64_t need = (uint64_t)depth * (d->slot_data_pages + d->slot_ind_pages);
    if (d->next_pfn + need > d->nr_pages) {
        bb_err(d, "guest memory too small: need %" PRIu64 " more pages, have %u", need,
               d->nr_pages - d->next_pfn);
        return -ENOMEM;
    }
    d->slots = calloc(depth, sizeof(*d->slots));
    if (!d->slots)
        return -ENOMEM;
    d->nslots = depth;
    for (unsigned i = 0; i < d->nq; i++) {
        d->q[i].slot = calloc(per_q_max, sizeof(struct bb_slot *));
        if (!d->q[i].slot)
            return -ENOMEM;
    }
    for (unsigned s = 0; s < depth; s++) {
        struct bb_slot *sl = &d->slots[s];
        sl->queue = s % d->nq;
        struct bb_queue *q = &d->q[sl->queue];
        sl->id = q->nslots++;
        q->slot[sl->id] = sl;
        sl->data_pfn = d->next_pfn;
        d->next_pfn += d->slot_data_pages;
        sl->ind_pfn = d->next_pfn;
        d->next_pfn += d->slot_ind_pages;
        sl->gnt = calloc(d->slot_data_pages + d->slot_ind_pages + 1, sizeof(uint32_t));
        if (!sl->gnt)
            return -ENOMEM;
        if (d->persistent) {
            sl->pgref = calloc(d->slot_data_pages, sizeof(uint32_t));
            sl->indref = calloc(d->slot_ind_pages + 1, sizeof(uint32_t));
            if (!sl->pgref || !sl->indref)
                return -ENOMEM;
        }
    }
    d->seed_state = o->seed;
    return 0;
}

void io_free(struct bb_dev *d)
{
    for (unsigned s = 0; s < d->nslots; s++) {
        free(d->slots[s].gnt);
        free(d->slots[s].pgref);
        free(d->slots[s].indref);
    }
    free(d->slots);
    d->slots = NULL;
    d->nslots = 0;
    for (unsigned i = 0; i < d->nq; i++) {
        free(d->q[i].slot);
        d->q[i].slot = NULL;
    }
    if (d->have_vmap)
        bb_vmap_free(&d->vmap);
    d->have_vmap = false;
    free(d->stale_gnt);
    d->stale_gnt = NULL;
}

static struct bb_slot *get_slot(struct bb_dev *d)
{
    for (unsigned n = 0; n < d->nq; n++) {
        unsigned qi = (d->rr + n) % d->nq;
        struct bb_queue *q = &d->q[qi];
        if (q->inflight >= q->nslots || bbr_free(&q->ring) == 0)
            continue;
        for (unsigned i = 0; i < q->nslots; i++) {
            if (!q->slot[i]->busy) {
                d->rr = qi + 1;
                return q->slot[i];
            }
        }
    }
    return NULL;
}

static bool have_slot(struct bb_dev *d)
{
    for (unsigned n = 0; n < d->nq; n++) {
        struct bb_queue *q = &d->q[n];
        if (q->inflight < q->nslots && bbr_free(&q->ring) > 0)
            for (unsigned i = 0; i < q->nslots; i++)
                if (!q->slot[i]->busy)
                    return true;
    }
    return false;
}

/* A grant for one page of a request: persistent (granted once, read-write,
 * kept until detach) or for this request only (read-only when the backend
 * only reads it: WRITE data and indirect pages). */
static int grant_page(struct bb_dev *d, struct bb_slot *sl, uint32_t pfn, uint32_t *pref,
                      bool readonly, grant_ref_t *out)
{
    int rc;
    if (pref) {
        if (!*pref) {
            rc = sim_gnt_grant(d->dom, d->o->be_domid, pfn, false, pref);
            if (rc)
                return rc;
        }
        *out = *pref;
        return 0;
    }
    uint32_t ref;
    rc = sim_gnt_grant(d->dom, d->o->be_domid, pfn, readonly, &ref);
    if (rc)
        return rc;
    sl->gnt[sl->ngnt++] = ref;
    *out = ref;
    return 0;
}

static void end_request_grants(struct bb_dev *d, struct bb_slot *sl, bool report)
{
    for (unsigned i = 0; i < sl->ngnt; i++) {
        int rc = sim_gnt_end(d->dom, sl->gnt[i]);
        if (!rc)
            continue;
        if (report) {
            d->res.gnt_end_failures++;
            if (d->res.gnt_end_failures <= MAX_REPORTED)
                bb_err(d, "grant %u of request id %u (queue %u, op %u, sector %" PRIu64
                       ") still mapped by the backend after its response: %s", sl->gnt[i], sl->id,
                       sl->queue, sl->indirect ? sl->ind_op : sl->op, sl->sector, strerror(-rc));
        }
        if (d->nstale == d->stale_cap) {
            size_t cap = d->stale_cap ? d->stale_cap * 2 : 64;
            uint32_t *n = realloc(d->stale_gnt, cap * sizeof(uint32_t));
            if (!n)
                continue;
            d->stale_gnt = n;
            d->stale_cap = cap;
        }
        d->stale_gnt[d->nstale++] = sl->gnt[i];
    }
    sl->ngnt = 0;
}

static void slot_start(struct bb_dev *d, struct bb_slot *sl)
{
    struct bb_queue *q = &d->q[sl->queue];
    sl->busy = true;
    sl->done = false;
    sl->t_start = xbd_now_ns();
    q->inflight++;
    d->inflight++;
    d->res.requests++;
}

/* A request's slot, before its segments: no data pages, no grants yet, not
 * indirect (submit_rw sets page_off, nseg, gen and indirect after this). */
static void slot_init(struct bb_slot *sl, enum bb_kind kind, uint8_t op, uint64_t sector,
                      uint64_t nsect, bool forced)
{
    sl->kind = kind;
    sl->op = op;
    sl->indirect = false;
    sl->forced = forced;
    sl->sector = sector;
    sl->nsect = nsect;
    sl->page_off = 0;
    sl->nseg = 0;
    sl->gen = 0;
    sl->ngnt = 0;
    sl->status = 0;
}

/*
 * READ or WRITE of nsect sectors at `sector`, data starting page_off sectors
 * into the slot's first page.  Writes carry the verify pattern when gen != 0.
 * Returns 0, -EAGAIN (no slot), or a grant error.
 */
static int submit_rw(struct bb_dev *d, enum bb_kind kind, uint8_t op, uint64_t sector, uint64_t nsect,
                     unsigned page_off, uint32_t gen)
{
    struct bb_slot *sl = get_slot(d);
    if (!sl)
        return -EAGAIN;
    struct bb_queue *q = &d->q[sl->queue];
    unsigned nseg = (unsigned)((page_off + nsect + BB_SECTORS_PER_PAGE - 1) / BB_SECTORS_PER_PAGE);
    if (nseg > d->slot_data_pages || nseg == 0)
        return -E2BIG;
    slot_init(sl, kind, op, sector, nsect, false);
    sl->page_off = page_off;
    sl->nseg = nseg;
    sl->gen = gen;
    if (op == BLKIF_OP_WRITE && gen)
        for (uint64_t k = 0; k < nsect; k++)
            bb_pattern_fill(slot_sector(d, sl, k), sector + k, gen, d->o->seed);

    struct blkif_request_segment segs[BLKIF_MAX_SEGMENTS_PER_REQUEST];
    struct blkif_request_segment *ind = NULL;
    sl->indirect = nseg > BLKIF_MAX_SEGMENTS_PER_REQUEST;
    uint64_t end = page_off + nsect;            /* in sectors from the first page's start */
    int rc = 0;
    for (unsigned i = 0; i < nseg; i++) {
        grant_ref_t ref;
        rc = grant_page(d, sl, sl->data_pfn + i, sl->pgref ? &sl->pgref[i] : NULL,
                        op == BLKIF_OP_WRITE, &ref);
        if (rc)
            goto fail;
        struct blkif_request_segment seg = {
            .gref = ref,
            .first_sect = (uint8_t)(i == 0 ? page_off : 0),
            .last_sect = (uint8_t)((end - (uint64_t)i * BB_SECTORS_PER_PAGE) >= BB_SECTORS_PER_PAGE ?
                                   BB_SECTORS_PER_PAGE - 1 : end - (uint64_t)i * BB_SECTORS_PER_PAGE - 1),
        };
        if (!sl->indirect) {
            segs[i] = seg;
        } else {
            unsigned pg = i / BLKIF_SEGS_PER_INDIRECT_PAGE;
            ind = guest_page(d, sl->ind_pfn + pg);
            ind[i % BLKIF_SEGS_PER_INDIRECT_PAGE] = seg;
        }
    }
    if (!sl->indirect) {
        sl->op = op;
        bbr_put_rw(&q->ring, op, (uint8_t)nseg, (uint16_t)d->o->devid, sl->id, sector, segs);
    } else {
        grant_ref_t irefs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
        unsigned nind = (nseg + BLKIF_SEGS_PER_INDIRECT_PAGE - 1) / BLKIF_SEGS_PER_INDIRECT_PAGE;
        for (unsigned j = 0; j < nind; j++) {
            rc = grant_page(d, sl, sl->ind_pfn + j, sl->indref ? &sl->indref[j] : NULL, true, &irefs[j]);
            if (rc)
                goto fail;
        }
        sl->op = BLKIF_OP_INDIRECT;
        sl->ind_op = op;
        bbr_put_indirect(&q->ring, op, (uint16_t)nseg, (uint16_t)d->o->devid, sl->id, sector, irefs, nind);
    }
    slot_start(d, sl);
    return 0;
fail:
    bb_err(d, "granting a page to domain %u: %s", d->o->be_domid, strerror(-rc));
    end_request_grants(d, sl, false);
    return rc;
}

static int submit_flush(struct bb_dev *d, uint8_t op, bool forced)
{
    struct bb_slot *sl = get_slot(d);
    if (!sl)
        return -EAGAIN;
    slot_init(sl, BB_K_FLUSH, op, 0, 0, forced);
    bbr_put_rw(&d->q[sl->queue].ring, op, 0, (uint16_t)d->o->devid, sl->id, 0, NULL);
    slot_start(d, sl);
    return 0;
}

static int submit_discard(struct bb_dev *d, uint64_t sector, uint64_t nsect, bool secure, bool forced)
{
    struct bb_slot *sl = get_slot(d);
    if (!sl)
        return -EAGAIN;
    slot_init(sl, BB_K_DISCARD, BLKIF_OP_DISCARD, sector, nsect, forced);
    bbr_put_discard(&d->q[sl->queue].ring, secure ? BLKIF_DISCARD_SECURE : 0, (uint16_t)d->o->devid,
                    sl->id, sector, nsect);
    slot_start(d, sl);
    return 0;
}

static void push_all(struct bb_dev *d)
{
    for (unsigned i = 0; i < d->nq; i++) {
        struct bb_queue *q = &d->q[i];
        RING_IDX rp, re, sp, se;
        bbr_indices(&q->ring, &rp, &re, &sp, &se);
        if (rp == bbr_req_prod_pvt(&q->ring))
            continue;
        if (bbr_push(&q->ring)) {
            int rc = sim_evtchn_notify(d->evt, q->port);
            if (rc) {
                bb_err(d, "notify on port %u: %s", q->port, strerror(-rc));
                d->fatal = true;
            }
        }
    }
}

/* ------------------------------------------------------------ completion */
enum expect_st { EXP_OK, EXP_ERROR, EXP_EOPNOTSUPP, EXP_FAIL };

static enum expect_st expected(const struct bb_dev *d, const struct bb_slot *sl)
{
    const struct bb_opts *o = d->o;
    switch (o->expect) {
    case BB_EXPECT_ERROR: return EXP_ERROR;
    case BB_EXPECT_EOPNOTSUPP: return EXP_EOPNOTSUPP;
    case BB_EXPECT_ANY_FAIL: return EXP_FAIL;
    default: break;
    }
    if (sl->forced)
        return EXP_FAIL;
    uint8_t op = sl->indirect ? sl->ind_op : sl->op;
    if (o->expect_readonly && op != BLKIF_OP_READ)
        return EXP_ERROR;
    return EXP_OK;
}

static bool status_ok(enum expect_st e, int16_t st)
{
    switch (e) {
    case EXP_OK: return st == BLKIF_RSP_OKAY;
    case EXP_ERROR: return st == BLKIF_RSP_ERROR;
    case EXP_EOPNOTSUPP: return st == BLKIF_RSP_EOPNOTSUPP;
    case EXP_FAIL: return st == BLKIF_RSP_ERROR || st == BLKIF_RSP_EOPNOTSUPP;
    }
    return false;
}

static const char *exp_name(enum expect_st e)
{
    static const char *const n[] = { "OKAY", "ERROR", "EOPNOTSUPP", "ERROR or EOPNOTSUPP" };
    return n[e];
}

static void check_read_data(struct bb_dev *d, struct bb_slot *sl)
{
    if (!d->have_vmap)
        return;
    for (uint64_t k = 0; k < sl->nsect; k++) {
        uint64_t s = sl->sector + k;
        uint32_t g = bb_vmap_get(&d->vmap, s);
        if (!g)
            continue;
        d->res.verified_sectors++;
        uint64_t fs;
        uint32_t fg;
        if (bb_pattern_check(slot_sector(d, sl, k), s, g, d->o->seed, &fs, &fg)) {
            d->res.mismatches++;
            if (d->res.mismatches <= MAX_REPORTED) {
                if (fs == ~0ull)
                    bb_err(d, "data mismatch at sector %" PRIu64 " (request at %" PRIu64 "+%" PRIu64
                           "): expected generation %u, found no pattern", s, sl->sector, sl->nsect, g);
                else
                    bb_err(d, "data mismatch at sector %" PRIu64 " (request at %" PRIu64 "+%" PRIu64
                           "): expected generation %u, found sector %" PRIu64 " generation %u%s", s,
                           sl->sector, sl->nsect, g, fs, fg,
                           fs == s && fg == g ? " (payload corrupt)" : "");
            }
        }
    }
}

static void sha_drain(struct bb_dev *d)
{
    for (;;) {
        struct bb_slot *hit = NULL;
        for (unsigned s = 0; s < d->nslots; s++) {
            struct bb_slot *sl = &d->slots[s];
            if (sl->busy && sl->done && sl->kind == BB_K_SHA && sl->sector == d->sha_next) {
                hit = sl;
                break;
            }
        }
        if (!hit)
            return;
        if (hit->status != BLKIF_RSP_OKAY)
            d->res.sha_ok = false;
        for (uint64_t k = 0; k < hit->nsect; k++)
            if (!EVP_DigestUpdate(d->sha, slot_sector(d, hit, k), BB_SECTOR))
                d->res.sha_ok = false;
        d->res.sha_bytes += hit->nsect * BB_SECTOR;
        d->sha_next += hit->nsect;
        hit->busy = false;
        hit->done = false;
    }
}

static void complete_one(struct bb_dev *d, struct bb_queue *q, unsigned qi, const struct bbr_rsp *r)
{
    struct bb_result *res = &d->res;
    if (r->id >= q->nslots || !q->slot[r->id]->busy || q->slot[r->id]->done) {
        res->protocol_errors++;
        bb_err(d, "queue %u: response with id %" PRIu64 " that is not pending (op %u, status %d)", qi,
               r->id, r->op, r->status);
        d->fatal = true;        /* blkfront: "response has incorrect id", device disabled */
        return;
    }
    struct bb_slot *sl = q->slot[r->id];
    uint64_t lat = xbd_now_ns() - sl->t_start;
    uint8_t want_op = sl->indirect ? sl->ind_op : sl->op;
    if (r->op != want_op) {
        res->protocol_errors++;
        if (res->protocol_errors <= MAX_REPORTED)
            bb_err(d, "queue %u: response id %" PRIu64 " has operation %u, request had %u%s", qi, r->id,
                   r->op, want_op, sl->indirect ? " (indirect_op of an INDIRECT request)" : "");
    }
    sl->status = r->status;
    switch (r->status) {
    case BLKIF_RSP_OKAY: res->st_okay++; break;
    case BLKIF_RSP_ERROR: res->st_error++; break;
    case BLKIF_RSP_EOPNOTSUPP: res->st_eopnotsupp++; break;
    default: res->st_other++; break;
    }
    enum expect_st e = expected(d, sl);
    if (!status_ok(e, r->status)) {
        res->unexpected++;
        if (res->unexpected <= MAX_REPORTED)
            bb_err(d, "queue %u: request id %" PRIu64 " (op %u, sector %" PRIu64 ", %" PRIu64
                   " sectors, %u segments%s) answered status %d, expected %s", qi, r->id, want_op,
                   sl->sector, sl->nsect, sl->nseg, sl->indirect ? ", indirect" : "", r->status,
                   exp_name(e));
    }
    end_request_grants(d, sl, true);
    q->inflight--;
    d->inflight--;

    bool ok = r->status == BLKIF_RSP_OKAY;
    switch (sl->kind) {
    case BB_K_WORK:
        res->ops++;
        bb_hist_add(&res->lat, lat);
        if (want_op == BLKIF_OP_READ) {
            res->rd_ops++;
            res->rd_bytes += sl->nsect * BB_SECTOR;
            if (ok)
                check_read_data(d, sl);
        } else {
            res->wr_ops++;
            res->wr_bytes += sl->nsect * BB_SECTOR;
            if (d->have_vmap)
                bb_vmap_set(&d->vmap, sl->sector, sl->nsect, ok ? sl->gen : 0);
        }
        if (d->have_vmap)
            bb_vmap_set_busy(&d->vmap, sl->sector, sl->nsect, false);
        break;
    case BB_K_VERIFY:
        if (ok)
            check_read_data(d, sl);
        break;
    case BB_K_SHA:
        sl->done = true;
        sha_drain(d);
        return;                 /* the slot is released in order by sha_drain */
    case BB_K_FLUSH:
        res->flush_done = true;
        res->flush_status = r->status;
        break;
    case BB_K_DISCARD:
        res->discard_reqs++;
        res->discard_sectors += sl->nsect;
        if (!ok)
            res->discard_fail++;
        if (d->have_vmap)
            bb_vmap_set(&d->vmap, sl->sector, sl->nsect, 0);
        break;
    }
    sl->busy = false;
}

/* blkif_interrupt: consume up to rsp_prod, then the final check. */
static void process_queue(struct bb_dev *d, unsigned qi)
{
    struct bb_queue *q = &d->q[qi];
    for (;;) {
        RING_IDX rp = bbr_rsp_prod(&q->ring);
        RING_IDX cons = bbr_rsp_cons(&q->ring);
        if ((RING_IDX)(rp - cons) > (RING_IDX)(bbr_req_prod_pvt(&q->ring) - cons)) {
            d->res.protocol_errors++;
            bb_err(d, "queue %u: backend rsp_prod %u is beyond our requests (rsp_cons %u, req_prod %u)", qi,
                   rp, cons, bbr_req_prod_pvt(&q->ring));
            d->fatal = true;
            return;
        }
        for (RING_IDX i = cons; i != rp && !d->fatal; i++) {
            struct bbr_rsp r;
            bbr_get_rsp(&q->ring, i, &r);
            complete_one(d, q, qi, &r);
        }
        bbr_set_rsp_cons(&q->ring, rp);
        if (d->fatal || !bbr_final_check(&q->ring))
            return;
    }
}

/* Sleep until an event (or timeout_ms), then consume every queue's responses.
 * Returns the number of events seen, or a negative errno. */
static int wait_events(struct bb_dev *d, int timeout_ms)
{
    struct pollfd p = { .fd = sim_evtchn_fd(d->evt), .events = POLLIN };
    int n = poll(&p, 1, timeout_ms);
    if (n < 0 && errno != EINTR)
        return -errno;
    int events = 0;
    xen_port_t port;
    while (sim_evtchn_pending(d->evt, &port) == 0) {
        sim_evtchn_unmask(d->evt, port);
        events++;
    }
    for (unsigned i = 0; i < d->nq && !d->fatal; i++)
        process_queue(d, i);
    return events;
}

static void dump_rings(struct bb_dev *d)
{
    for (unsigned i = 0; i < d->nq; i++) {
        RING_IDX rp, re, sp, se;
        bbr_indices(&d->q[i].ring, &rp, &re, &sp, &se);
        bb_err(d, "  queue %u (port %u): req_prod %u req_event %u rsp_prod %u rsp_event %u, rsp_cons %u, "
               "%u in flight", i, d->q[i].port, rp, re, sp, se, bbr_rsp_cons(&d->q[i].ring), d->q[i].inflight);
    }
}

/*
 * The common loop: submit with gen() while slots are free, push, sleep on the
 * event channel, consume.  gen returns 1 (submitted), 0 (nothing now), 2
 * (finished), or a negative errno.  drain=false (xl destroy): leave requests
 * in flight when gen is finished.
 */
typedef int (*gen_fn)(struct bb_dev *d, void *ctx);

/* A generator's answer for a submit_* result rc of a request covering
 * sectors [*next, *next + n): 1 and *next advanced, 0 (no slot: later), or
 * the error. */
static int gen_submitted(int rc, uint64_t *next, uint64_t n)
{
    if (rc == -EAGAIN)
        return 0;
    if (rc)
        return rc;
    *next += n;
    return 1;
}

static int run_phase(struct bb_dev *d, gen_fn gen, void *ctx, bool drain, const char *what)
{
    bool finished = false;
    uint64_t last_progress = xbd_now_ns();
    uint64_t timeout_ns = (uint64_t)(d->o->timeout_s * 1e9);
    while (!d->fatal) {
        if (d->stopf && *d->stopf)
            finished = true;
        while (!finished && have_slot(d)) {
            int r = gen(d, ctx);
            if (r < 0) {
                d->fatal = true;
                break;
            }
            if (r == 2)
                finished = true;
            if (r != 1)
                break;
        }
        push_all(d);
        if (d->fatal)
            break;
        if (finished && (d->inflight == 0 || !drain))
            break;
        if (d->inflight == 0 && !finished) {
            /* blocked with nothing in flight: only sha ordering can do that */
            sha_drain(d);
            if (!have_slot(d)) {
                bb_err(d, "%s: no free request slot and nothing in flight", what);
                d->fatal = true;
                break;
            }
            continue;
        }
        uint64_t before = d->res.st_okay + d->res.st_error + d->res.st_eopnotsupp + d->res.st_other;
        int rc = wait_events(d, 100);
        if (rc < 0) {
            bb_err(d, "%s: waiting for events: %s", what, strerror(-rc));
            d->fatal = true;
            break;
        }
        uint64_t after = d->res.st_okay + d->res.st_error + d->res.st_eopnotsupp + d->res.st_other;
        uint64_t now = xbd_now_ns();
        if (after != before) {
            last_progress = now;
        } else if (d->inflight && now - last_progress > timeout_ns) {
            bb_err(d, "%s: no response for %.1f s with %" PRIu64 " request(s) in flight", what,
                   d->o->timeout_s, d->inflight);
            dump_rings(d);
            d->fatal = true;
            break;
        }
    }
    return d->fatal ? -EIO : 0;
}

/* -------------------------------------------------------------- sha256 */
struct seq_ctx { uint64_t next, end, chunk; enum bb_kind kind; };

static int gen_seq_read(struct bb_dev *d, void *vctx)
{
    struct seq_ctx *c = vctx;
    if (c->next >= c->end)
        return 2;
    uint64_t n = c->end - c->next < c->chunk ? c->end - c->next : c->chunk;
    return gen_submitted(submit_rw(d, c->kind, BLKIF_OP_READ, c->next, n, 0, 0), &c->next, n);
}

static uint64_t pass_chunk(struct bb_dev *d)
{
    uint64_t chunk = (uint64_t)d->slot_data_pages * BB_SECTORS_PER_PAGE;
    if (chunk > 2048)
        chunk = 2048;           /* 1 MiB requests at most */
    chunk -= chunk % align_s(d);
    return chunk ? chunk : align_s(d);
}

/* The whole disk through the ring, in order, into libcrypto's SHA-256
 * (EVP_DigestInit_ex(3)); "sha256 <hex>" as sha256sum(1) prints it. */
int io_sha256(struct bb_dev *d)
{
    d->sha = EVP_MD_CTX_new();
    if (!d->sha || !EVP_DigestInit_ex(d->sha, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(d->sha);
        d->sha = NULL;
        return -ENOMEM;
    }
    d->sha_next = 0;
    d->res.sha_ok = true;
    d->res.sha_bytes = 0;
    struct seq_ctx c = { 0, d->sectors, pass_chunk(d), BB_K_SHA };
    int rc = run_phase(d, gen_seq_read, &c, true, "sha256");
    sha_drain(d);
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    bool ok = !rc && d->sha_next == d->sectors && EVP_DigestFinal_ex(d->sha, dig, &n) && n == 32;
    EVP_MD_CTX_free(d->sha);
    d->sha = NULL;
    if (!ok) {
        d->res.sha_ok = false;
        return rc ? rc : -EIO;
    }
    for (unsigned i = 0; i < n; i++)
        snprintf(d->res.sha_hex + 2 * i, 3, "%02x", dig[i]);
    d->res.sha_done = true;
    return 0;
}

/* ------------------------------------------------------------- workload */
struct wl_ctx {
    uint64_t first, nr, pos;
    uint64_t submitted, limit;      /* bytes */
    uint64_t t_end;                 /* ns, 0 = none */
    uint64_t bs_min_s, bs_max_s, align;
};

static bool rw_is_rand(enum bb_rw rw)
{
    return rw == BB_RW_RANDREAD || rw == BB_RW_RANDWRITE || rw == BB_RW_RANDRW;
}

static int gen_workload(struct bb_dev *d, void *vctx)
{
    struct wl_ctx *c = vctx;
    const struct bb_opts *o = d->o;
    if (c->limit && c->submitted >= c->limit)
        return 2;
    if (c->t_end && xbd_now_ns() >= c->t_end)
        return 2;
    uint64_t *rs = &d->seed_state;
    bool rd;
    switch (o->rw) {
    case BB_RW_READ: case BB_RW_RANDREAD: rd = true; break;
    case BB_RW_WRITE: case BB_RW_RANDWRITE: rd = false; break;
    default: rd = bb_rand_below(rs, 100) < o->rwmixread; break;
    }
    uint64_t nsect = c->bs_min_s;
    if (c->bs_max_s > c->bs_min_s)
        nsect = c->bs_min_s + bb_rand_below(rs, (c->bs_max_s - c->bs_min_s) / c->align + 1) * c->align;
    if (nsect > c->nr)
        nsect = c->nr;
    uint64_t sector;
    bool rand = rw_is_rand(o->rw);
    int tries = rand ? 8 : 1;
    for (;;) {
        if (rand) {
            uint64_t slots = (c->nr - nsect) / c->align + 1;
            sector = c->first + bb_rand_below(rs, slots) * c->align;
        } else {
            if (c->pos + nsect > c->first + c->nr) {
                uint64_t left = c->first + c->nr - c->pos;
                left -= left % c->align;
                if (left >= c->bs_min_s)
                    nsect = left;
                else
                    c->pos = c->first;
            }
            sector = c->pos;
        }
        if (!d->have_vmap || !bb_vmap_busy(&d->vmap, sector, nsect))
            break;
        if (--tries == 0)
            return 0;           /* overlaps a request in flight: wait */
    }
    unsigned po = o->page_offset >= 0 ? (unsigned)o->page_offset :
                  (unsigned)bb_rand_below(rs, BB_SECTORS_PER_PAGE);
    uint32_t gen = 0;
    if (!rd && d->have_vmap)
        gen = bb_vmap_new_gen(&d->vmap);
    int rc = submit_rw(d, BB_K_WORK, rd ? BLKIF_OP_READ : BLKIF_OP_WRITE, sector, nsect, po, gen);
    if (rc == -EAGAIN)
        return 0;
    if (rc)
        return rc;
    if (d->have_vmap)
        bb_vmap_set_busy(&d->vmap, sector, nsect, true);
    c->submitted += nsect * BB_SECTOR;
    if (!rand)
        c->pos = sector + nsect;
    return 1;
}

int io_workload(struct bb_dev *d)
{
    const struct bb_opts *o = d->o;
    struct wl_ctx c;
    memset(&c, 0, sizeof(c));
    c.nr = io_region_sectors(d, &c.first);
    c.pos = c.first;
    c.align = align_s(d);
    c.bs_min_s = o->bs_min / BB_SECTOR;
    c.bs_max_s = o->bs_max / BB_SECTOR;
    if (o->size)
        c.limit = o->size;
    if (o->runtime_s > 0)
        c.t_end = xbd_now_ns() + (uint64_t)(o->runtime_s * 1e9);
    if (!c.limit && !c.t_end)
        c.limit = c.nr * BB_SECTOR;     /* one pass over the region */
    if (o->verify && !d->have_vmap) {
        int rc = bb_vmap_init(&d->vmap, c.first, c.nr);
        if (rc) {
            bb_err(d, "verify map for %" PRIu64 " sectors: %s", c.nr, strerror(-rc));
            return rc;
        }
        d->have_vmap = true;
    }
    bb_hist_init(&d->res.lat);
    uint64_t t0 = xbd_now_ns();
    int rc = run_phase(d, gen_workload, &c, !o->destroy, "workload");
    d->res.elapsed_s = (double)(xbd_now_ns() - t0) / 1e9;
    if (o->destroy && !rc && !d->fatal) {
        /* xl destroy hits a busy guest: fill every free slot, push, and
         * leave it all in flight */
        c.limit = 0;
        c.t_end = 0;
        while (have_slot(d) && gen_workload(d, &c) == 1)
            ;
        push_all(d);
        d->res.abandoned = d->inflight;
    }
    return rc;
}

int io_verify_pass(struct bb_dev *d)
{
    struct seq_ctx c;
    uint64_t first, nr = io_region_sectors(d, &first);
    c.next = first;
    c.end = first + nr;
    c.chunk = pass_chunk(d);
    c.kind = BB_K_VERIFY;
    return run_phase(d, gen_seq_read, &c, true, "verify read-back");
}

/* ---------------------------------------------------------------- flush */
struct one_ctx { bool sent; uint8_t op; bool forced; };

static int gen_flush(struct bb_dev *d, void *vctx)
{
    struct one_ctx *c = vctx;
    if (c->sent)
        return 2;
    int rc = submit_flush(d, c->op, c->forced);
    if (rc == -EAGAIN)
        return 0;
    if (rc)
        return rc;
    c->sent = true;
    return 1;
}

int io_flush(struct bb_dev *d)
{
    struct one_ctx c = { false, BLKIF_OP_FLUSH_DISKCACHE, false };
    /* blkfront: feature-flush-cache wins over feature-barrier (docs/protocol.md §3.5) */
    if (d->flush) {
        d->res.flush_op = "flush-cache";
    } else if (d->barrier) {
        c.op = BLKIF_OP_WRITE_BARRIER;
        d->res.flush_op = "barrier";
    } else if (d->o->force) {
        c.forced = true;
        d->res.flush_op = "flush-cache (not advertised)";
    } else {
        bb_info(d, "flush skipped: the backend advertises neither feature-flush-cache nor feature-barrier");
        d->res.flush_op = "skipped";
        return 0;
    }
    return run_phase(d, gen_flush, &c, true, "flush");
}

/* -------------------------------------------------------------- discard */
struct disc_ctx { unsigned range; uint64_t next, end, max_s, gran_s; bool secure, forced; };

static int gen_discard(struct bb_dev *d, void *vctx)
{
    struct disc_ctx *c = vctx;
    while (c->next >= c->end) {
        if (c->range >= d->o->nr_discards)
            return 2;
        c->next = d->o->discard[c->range].offset / BB_SECTOR;
        c->end = c->next + d->o->discard[c->range].len / BB_SECTOR;
        c->range++;
    }
    /* blk-lib: the first piece ends on a granularity boundary, the rest are
     * whole multiples of it, none longer than the discard limit */
    uint64_t n = c->end - c->next;
    uint64_t mis = c->next % c->gran_s;
    if (mis && c->gran_s - mis < n)
        n = c->gran_s - mis;
    if (n > c->max_s)
        n = c->max_s;
    return gen_submitted(submit_discard(d, c->next, n, c->secure, c->forced), &c->next, n);
}

int io_discard(struct bb_dev *d)
{
    struct disc_ctx c;
    memset(&c, 0, sizeof(c));
    if (!d->discard) {
        if (!d->o->force) {
            bb_info(d, "discard skipped: the backend does not advertise feature-discard");
            return 0;
        }
        c.forced = true;
    }
    c.gran_s = d->discard_gran >= BB_SECTOR ? d->discard_gran / BB_SECTOR : 1;
    if (d->o->discard_max) {
        c.max_s = d->o->discard_max / BB_SECTOR;
    } else {
        /* blkfront: max_discard_sectors = capacity; the block layer caps a
         * bio at UINT_MAX bytes, rounded down to the granularity */
        uint64_t lim = (UINT32_MAX >> 9);
        lim -= lim % c.gran_s;
        c.max_s = d->sectors && d->sectors < lim ? d->sectors : lim;
    }
    if (!c.max_s)
        c.max_s = 1;
    c.secure = d->o->secure_discard && d->discard_secure;
    return run_phase(d, gen_discard, &c, true, "discard");
}
