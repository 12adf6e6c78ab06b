/*
 * queue.c - the queue thread: consume requests from a shared ring, validate
 * the private copies, map their grants, drive the engine, answer.
 * Loop shape follows __do_block_io_op of
 * torvalds/linux:drivers/block/xen-blkback/blkback.c@v6.1 (docs/protocol.md
 * §4.4 (ring-loop)); one poll() over the event channel, the engine queue's
 * completion fd and a stop eventfd.  No locks: everything here belongs to this thread.
 *
 * One round (service): drain the ring in one sweep, one gnt_copy for the
 * sweep's WRITE data and the completed READs (COPY mode), ONE engine submit,
 * responses pushed with at most one notification.  poll_us > 0: spin on the
 * ring (unarmed, so the frontend sends no event) and the engine's completions
 * (memory only) and serve what shows up without a ppoll, before re-arming
 * with RING_FINAL_CHECK_FOR_REQUESTS and sleeping.  The persistent-grant cache's
 * housekeeping (dpg_tick) bounds the poll() timeout.
 */
#include "queue.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RING(q) (&(q)->br.r64)

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* ---- slots ------------------------------------------------------------- */

int dpq_alloc_slots(struct dpq *q, unsigned nr_slots, unsigned max_segs, struct rs_rec *recs)
{
    size_t per = (size_t)max_segs * (sizeof(struct blkif_request_segment) + sizeof(uint32_t) +
                                     sizeof(struct iovec));
    per = (per + 15) & ~(size_t)15;     /* each slot's iovecs 16-byte aligned (max_segs may be odd) */
    q->slots = calloc(nr_slots, sizeof(*q->slots));
    q->free_stack = calloc(nr_slots, sizeof(*q->free_stack));
    q->copy_list = calloc(nr_slots, sizeof(*q->copy_list));
    q->copy_work = calloc(nr_slots, sizeof(*q->copy_work));
    q->answered = calloc(nr_slots, sizeof(*q->answered));
    q->redo = calloc(nr_slots, sizeof(*q->redo));
    q->submitq = calloc(nr_slots, sizeof(*q->submitq));
    /* One arena for every per-segment array; big arenas come from mmap and
     * only the pages of segments actually used get touched. */
    q->arena_len = per * nr_slots;
    q->arena = calloc(1, q->arena_len);
    if (!q->slots || !q->free_stack || !q->arena || !q->copy_list || !q->copy_work ||
        !q->answered || !q->redo || !q->submitq) {
        dpq_free_slots(q);
        return -ENOMEM;
    }
    char *p = q->arena;
    for (unsigned i = 0; i < nr_slots; i++) {
        struct dp_slot *s = &q->slots[i];
        char *p0 = p + i * per;
        s->iov = (struct iovec *)p0;                p0 += max_segs * sizeof(struct iovec);
        s->iseg = (struct blkif_request_segment *)p0; p0 += max_segs * sizeof(*s->iseg);
        s->ent = (uint32_t *)p0;
        s->io.cookie = s;
        s->rec = &recs[i];
        s->req = &recs[i].req;
        dpg_map_init(&q->g, &s->map, i, s->ent);
        q->free_stack[i] = (uint16_t)(nr_slots - 1 - i);
    }
    q->nr_slots = nr_slots;
    q->nfree = nr_slots;
    q->max_segs = max_segs;
    q->ncopy = 0;
    q->nanswered = 0;
    q->nredo = 0;
    q->queued = 0;
    return 0;
}

void dpq_set_redo(struct dpq *q, const uint16_t *redo, unsigned n)
{
    /* The free stack without them (same order as dpq_alloc_slots): after
     * rs_recover exactly the records to re-issue are in flight. */
    unsigned nf = 0;
    for (unsigned i = q->nr_slots; i-- > 0;)
        if (q->slots[i].rec->state != RS_INFLIGHT)
            q->free_stack[nf++] = (uint16_t)i;
    memcpy(q->redo, redo, n * sizeof(*redo));
    q->nfree = nf;
    q->nredo = n;
    q->inflight = n;
    ST_ADD(&q->st, inflight, n);
}

void dpq_free_slots(struct dpq *q)
{
    free(q->slots);
    free(q->free_stack);
    free(q->arena);
    free(q->copy_list);
    free(q->copy_work);
    free(q->answered);
    free(q->redo);
    free(q->submitq);
    q->answered = q->redo = q->submitq = NULL;
    q->slots = NULL;
    q->free_stack = NULL;
    q->arena = NULL;
    q->copy_list = q->copy_work = NULL;
    q->nr_slots = q->nfree = 0;
}

static void publish(struct dpq *q);

/* The wake-up's clock, read the first time it is needed: a wake-up that only
 * answers completed I/O needs none before its responses (publish reads one),
 * so a request costs two clock reads, one where it is consumed and one where
 * it is answered. */
static uint64_t dpq_now(struct dpq *q)
{
    if (q->now_stale) {
        q->now_ns = xbd_now_ns();
        q->now_stale = false;
    }
    return q->now_ns;
}

/* A request starts: consumed at `now` (its latency clock). */
static void slot_start(struct dp_slot *s, uint64_t now)
{
    s->t_cons = now;
    s->eng_t0 = 0;
    s->eng_ns = 0;
    s->lat_op = VBD_OP_NONE;
}

static struct dp_slot *slot_get(struct dpq *q)
{
    if (!q->nfree)
        return NULL;
    struct dp_slot *s = &q->slots[q->free_stack[--q->nfree]];
    /* Its last response must be visible before its record is reused, or a
     * crash right after would lose that request (rstate.h). */
    if (s->rec->state == RS_ANSWERED)
        publish(q);
    slot_start(s, dpq_now(q));
    q->inflight++;
    ST_ADD(&q->st, inflight, 1);
    return s;
}

static void slot_put(struct dpq *q, struct dp_slot *s)
{
    s->stage = DPQ_FREE;
    q->free_stack[q->nfree++] = (uint16_t)(s - q->slots);
    q->inflight--;
    ST_SUB(&q->st, inflight, 1);
    q->oo = false;
}

/* ---- responses ----------------------------------------------------------- */

static void *ring_entry(struct dpq *q, RING_IDX i)
{
    return (char *)RING(q)->sring->ring + (size_t)(i & (RING_SIZE(RING(q)) - 1)) * q->esz;
}

static void start_barrier(struct dpq *q, struct dp_slot *s);

static const char *op_name(uint8_t op);

/* Write the response of slot s, release its grants and the slot. */
static void finish(struct dpq *q, struct dp_slot *s, int16_t status)
{
    RING_IDX r = RING(q)->rsp_prod_pvt;
    LOG_DBG(LOG_CAT_RING, q->id, (int)q->idx, "%s id %" PRIu64 ": status %d at rsp %u",
            op_name(s->chk.rsp_op), s->req->id, status, r);
    LOG_DBG(LOG_CAT_GRANT, q->id, (int)q->idx, "id %" PRIu64 ": %u grant(s) released",
            s->req->id, s->map.held ? s->map.count : 0);
    dpg_put(&q->g, &s->map);
    blkif_abi_put_rsp(q->abi, ring_entry(q, r), s->req->id, s->chk.rsp_op, status);
    s->rec->rsp_idx = r;
    __atomic_store_n(&s->rec->state, RS_ANSWERED, __ATOMIC_RELEASE);   /* after the response */
    q->answered[q->nanswered++] = (uint16_t)(s - q->slots);
    RING(q)->rsp_prod_pvt = r + 1;
    q->need_push = true;
    if (status == BLKIF_RSP_ERROR)
        ST_ADD(&q->st, errors, 1);
    else if (status == BLKIF_RSP_EOPNOTSUPP)
        ST_ADD(&q->st, eopnotsupp, 1);
    if (q->barrier == s)
        q->barrier = NULL;
    slot_put(q, s);
    /* A parked BARRIER starts once it is the only request left. */
    if (q->barrier && q->barrier->stage == DPQ_PARKED && q->inflight == 1)
        start_barrier(q, q->barrier);
}

static void hist_add(struct vbd_hist *h, uint64_t ns)
{
    unsigned b = vbd_lat_bucket(ns);
    __atomic_store_n(&h->bucket[b], h->bucket[b] + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&h->sum_ns, h->sum_ns + ns, __ATOMIC_RELAXED);
}

/* Ring occupancy gauge: requests pushed by the frontend (as of the last
 * sweep) and not answered yet. */
static void set_occupancy(struct dpq *q)
{
    ST_SET(&q->st, ring_occupancy, (RING_IDX)(q->seen_prod - RING(q)->rsp_prod_pvt));
}

/* libxenstat's vbd3 record (stats.h struct td3_stats, dp_config.td3): add
 * what this queue counted since its last call.  The queues of a vbd share
 * the record, hence atomic adds (relaxed: each field is read whole, the
 * record may be torn across fields, as tapdisk3's plain stores are). */
static void td3_publish(struct dpq *q)
{
    struct td3_stats *t = q->td3;
    if (!t)
        return;
    const struct vbd_stats *s = &q->st;
    const uint64_t now[ARRAY_SIZE(q->td3_added)] = {
        s->oo_req, s->rd_req, q->td3_done[VBD_OP_READ], s->rd_sect,
        s->lat[VBD_OP_READ].total.sum_ns / 1000, s->wr_req, q->td3_done[VBD_OP_WRITE],
        s->wr_sect, s->lat[VBD_OP_WRITE].total.sum_ns / 1000, s->io_errors,
    };
    uint64_t *const field[ARRAY_SIZE(q->td3_added)] = {
        &t->oo_reqs, &t->read_reqs_submitted, &t->read_reqs_completed, &t->read_sectors,
        &t->read_total_ticks, &t->write_reqs_submitted, &t->write_reqs_completed,
        &t->write_sectors, &t->write_total_ticks, &t->io_errors,
    };
    for (unsigned i = 0; i < ARRAY_SIZE(now); i++)
        if (now[i] != q->td3_added[i]) {
            __atomic_fetch_add(field[i], now[i] - q->td3_added[i], __ATOMIC_RELAXED);
            q->td3_added[i] = now[i];
        }
}

/* Make the written responses visible (rsp_prod), then free their records:
 * RING_PUSH_RESPONSES of xen/io/ring.h, without the notify decision.  Each
 * response's request goes into the latency histograms (stats.h) and the
 * vbd3 record first, so a guest that sees an answer finds it counted. */
static void publish(struct dpq *q)
{
    if (!q->nanswered)
        return;
    uint64_t now = q->now_ns = xbd_now_ns();
    q->now_stale = false;
    for (unsigned i = 0; i < q->nanswered; i++) {
        struct dp_slot *s = &q->slots[q->answered[i]];
        if (s->eng_t0 && now > s->eng_t0)       /* its engine share ended unclocked (io_done) */
            s->eng_ns += now - s->eng_t0;
        s->eng_t0 = 0;
        if (s->lat_op < VBD_OP_N) {
            struct vbd_lat *l = &q->st.lat[s->lat_op];
            hist_add(&l->total, now > s->t_cons ? now - s->t_cons : 0);
            hist_add(&l->engine, s->eng_ns);
            if (s->lat_op == VBD_OP_READ || s->lat_op == VBD_OP_WRITE)
                q->td3_done[s->lat_op]++;
        }
    }
    td3_publish(q);
    xen_wmb();                  /* responses before rsp_prod */
    RING(q)->sring->rsp_prod = RING(q)->rsp_prod_pvt;
    __asm__ __volatile__("" ::: "memory");      /* rsp_prod before the records are freed */
    for (unsigned i = 0; i < q->nanswered; i++)
        __atomic_store_n(&q->slots[q->answered[i]].rec->state, RS_FREE, __ATOMIC_RELAXED);
    q->nanswered = 0;
    set_occupancy(q);
}

/*
 * Publish written responses; notify the frontend once per batch: the check of
 * RING_PUSH_RESPONSES_AND_CHECK_NOTIFY (xen/io/ring.h), over everything
 * published since the last decision (publish() may have run in between).
 */
static void push_responses(struct dpq *q)
{
    if (!q->need_push)
        return;
    q->need_push = false;
    publish(q);
    xen_mb();                   /* rsp_prod before reading rsp_event */
    RING_IDX new = RING(q)->rsp_prod_pvt, old = q->notified_upto;
    q->notified_upto = new;
    if ((RING_IDX)(new - RING(q)->sring->rsp_event) < (RING_IDX)(new - old)) {
        ST_ADD(&q->st, notify, 1);
        q->ops->evtchn_notify(q->evt, q->port);
    }
}

static const char *op_name(uint8_t op)
{
    switch (op) {
    case BLKIF_OP_READ: return "READ";
    case BLKIF_OP_WRITE: return "WRITE";
    case BLKIF_OP_WRITE_BARRIER: return "BARRIER";
    case BLKIF_OP_FLUSH_DISKCACHE: return "FLUSH";
    case BLKIF_OP_DISCARD: return "DISCARD";
    case BLKIF_OP_INDIRECT: return "INDIRECT";
    default: return "unknown op";
    }
}

/* A request refused by validation: one rate-limited line, then the answer. */
static void refuse(struct dpq *q, struct dp_slot *s, int16_t status)
{
    ST_ADD(&q->st, bad_req, 1);
    log_rl_dev(&q->rl[DPQ_RL_REQ], LOG_WARNING, q->id, (int)q->idx,
               "%s request id %" PRIu64 " (op %u, nr_segments %u, sector %" PRIu64
               ") refused: %s", op_name(s->req->operation), s->req->id, s->req->operation,
               s->req->nr_segments, s->req->sector_number, s->chk.why ? s->chk.why : "invalid");
    finish(q, s, status);
}

/* ---- engine I/O ---------------------------------------------------------- */

static void queue_io(struct dpq *q, struct dp_slot *s)
{
    int rc = q->eng->ops->queue_io(q->eq, &s->io);
    if (rc < 0) {
        log_rl_dev(&q->rl[DPQ_RL_INTERNAL], LOG_ERR, q->id, (int)q->idx,
                   "engine refused I/O: %s", strerror(-rc));
        finish(q, s, BLKIF_RSP_ERROR);
        return;
    }
    q->submitq[q->queued++] = (uint16_t)(s - q->slots);
}

static const struct blkif_request_segment *segs_of(const struct dp_slot *s)
{
    return s->chk.indirect ? s->iseg : s->req->seg;
}

static void copy_flush(struct dpq *q);

/* Queue slot s for the next gnt_copy batch (stage COPYIN or COPYOUT). */
static void copy_enlist(struct dpq *q, struct dp_slot *s, enum dpq_stage stage)
{
    s->stage = (uint8_t)stage;
    q->copy_list[q->ncopy++] = (uint16_t)(s - q->slots);
}

static void grant_fault(struct dpq *q, struct dp_slot *s, unsigned n, int rc)
{
    if (rc == -EBUSY)
        log_rl_dev(&q->rl[DPQ_RL_MAP], LOG_WARNING, q->id, (int)q->idx,
                   "%s request id %" PRIu64 ": persistent grant %u already in use "
                   "by another request", op_name(s->req->operation), s->req->id,
                   q->g.busy_gref);
    else
        log_rl_dev(&q->rl[DPQ_RL_MAP], LOG_WARNING, q->id, (int)q->idx,
                   "%s request id %" PRIu64 ": cannot %s %u grant(s): %s",
                   op_name(s->req->operation), s->req->id,
                   dpg_copies(&q->g) ? "copy" : "map", n, strerror(-rc));
}

/* Reach the data pages (map, persistent cache or bounce buffer), build the
 * iovecs, queue the engine READ or WRITE (COPY WRITE: after the batch copy). */
static void start_data(struct dpq *q, struct dp_slot *s)
{
    const struct blkif_request_segment *seg = segs_of(s);
    unsigned n = s->chk.nr_segs, niov = 0;

    if (dpg_copies(&q->g) && !s->chk.to_guest && !dpg_copy_room(&q->g, n))
        copy_flush(q);
    int rc = dpg_get(&q->g, &s->map, seg, n, s->chk.to_guest, s->iov, &niov);
    if (rc < 0) {
        grant_fault(q, s, n, rc);
        finish(q, s, BLKIF_RSP_ERROR);
        return;
    }
    LOG_DBG(LOG_CAT_GRANT, q->id, (int)q->idx, "id %" PRIu64 ": %u grant(s) %s (first gref %u), "
            "%u iovec(s)", s->req->id, n, dpg_copies(&q->g) ? "to copy" : "reached", seg[0].gref,
            niov);
    s->niov = (uint16_t)niov;
    s->io.op = s->chk.to_guest ? ENGINE_OP_READ : ENGINE_OP_WRITE;
    s->io.offset = s->req->sector_number << 9;
    s->io.len = s->chk.nr_sectors << 9;
    s->io.iov = s->iov;
    s->io.iovcnt = niov;
    if (s->map.copy_pending) {
        copy_enlist(q, s, DPQ_COPYIN);
        return;
    }
    s->stage = DPQ_DATA;
    queue_io(q, s);
}

/*
 * COPY mode: one gnt_copy for every request of the batch, then move each on:
 * a WRITE to the engine, a READ to its response; a request with a failed
 * segment is answered ERROR.  Called once per sweep and per completion batch
 * (and early when the batch is full).
 */
static void copy_flush(struct dpq *q)
{
    if (!q->ncopy || q->in_copy_flush)
        return;
    q->in_copy_flush = true;
    /* Again while answering enlisted more: a parked BARRIER started by
     * finish() below waits for its COPYIN, and nothing else wakes us. */
    while (q->ncopy) {
        dpg_copy_flush(&q->g);
        uint16_t *work = q->copy_list;      /* new entries go to the other list */
        unsigned n = q->ncopy;
        q->copy_list = q->copy_work;
        q->copy_work = work;
        q->ncopy = 0;
        for (unsigned i = 0; i < n; i++) {
            struct dp_slot *s = &q->slots[work[i]];
            if (s->map.copy_err)
                grant_fault(q, s, s->chk.nr_segs, -EFAULT);
            if (s->stage == DPQ_COPYIN && !s->map.copy_err) {
                s->stage = DPQ_DATA;
                queue_io(q, s);
            } else {
                finish(q, s, s->map.copy_err ? BLKIF_RSP_ERROR : BLKIF_RSP_OKAY);
            }
        }
    }
    q->in_copy_flush = false;
}

static void start_flush(struct dpq *q, struct dp_slot *s)
{
    s->stage = DPQ_FLUSH;
    s->io.op = ENGINE_OP_FLUSH;
    s->io.offset = 0;
    s->io.len = 0;
    s->io.iov = NULL;
    s->io.iovcnt = 0;
    queue_io(q, s);
}

static void next_discard(struct dpq *q, struct dp_slot *s)
{
    uint64_t len = s->disc_left < DPQ_DISCARD_CHUNK ? s->disc_left : DPQ_DISCARD_CHUNK;
    s->stage = DPQ_DISCARD;
    s->io.op = s->chk.secure ? ENGINE_OP_SECURE_DISCARD : ENGINE_OP_DISCARD;
    s->io.offset = s->disc_off;
    s->io.len = len;
    s->io.iov = NULL;
    s->io.iovcnt = 0;
    s->disc_off += len;
    s->disc_left -= len;
    queue_io(q, s);
}

/* FLUSH/BARRIER: data first (a write), then fdatasync: OKAY means durable. */
static void start_flush_req(struct dpq *q, struct dp_slot *s)
{
    if (s->chk.nr_segs)
        start_data(q, s);
    else
        start_flush(q, s);
}

static void start_barrier(struct dpq *q, struct dp_slot *s)
{
    start_flush_req(q, s);
}

/* Engine completion of one slot's I/O. */
static void io_done(struct engine_io *io, void *arg)
{
    struct dpq *q = arg;
    struct dp_slot *s = io->cookie;

    q->nreaped++;
    /* The engine's share ends here, at the wake-up's clock if it was read;
     * else the stage stays open (eng_t0 kept) and ends at the next clock read
     * this request meets: its next stage's submit or its response (publish):
     * no clock read for a wake-up that only answers. */
    if (s->eng_t0 && !q->now_stale) {
        if (q->now_ns > s->eng_t0)
            s->eng_ns += q->now_ns - s->eng_t0;
        s->eng_t0 = 0;
    }
    if (io->result < 0) {
        ST_ADD(&q->st, io_errors, 1);
        log_rl_dev(&q->rl[DPQ_RL_IO], LOG_ERR, q->id, (int)q->idx,
                   "%s request id %" PRIu64 " (bytes %" PRIu64 "+%" PRIu64 "): I/O error: %s",
                   op_name(s->req->operation), s->req->id, io->offset, io->len,
                   strerror((int)-io->result));
        finish(q, s, BLKIF_RSP_ERROR);
        return;
    }
    switch (s->stage) {
    case DPQ_DATA:
        if (s->chk.kind == BLKIF_KIND_FLUSH || s->chk.kind == BLKIF_KIND_BARRIER) {
            /* grants are not needed by the flush: give them back now */
            dpg_put(&q->g, &s->map);
            start_flush(q, s);
            return;
        }
        if (dpg_copies(&q->g) && s->chk.to_guest) {
            /* READ data goes back to the guest with the completion batch */
            if (!dpg_copy_room(&q->g, s->chk.nr_segs))
                copy_flush(q);
            dpg_copy_out(&q->g, &s->map, segs_of(s), s->chk.nr_segs);
            copy_enlist(q, s, DPQ_COPYOUT);
            return;
        }
        break;
    case DPQ_DISCARD:
        if (s->disc_left) {
            next_discard(q, s);
            return;
        }
        break;
    default:
        break;
    }
    finish(q, s, BLKIF_RSP_OKAY);
}

/* ---- dispatch ------------------------------------------------------------ */

/* A validated READ/WRITE goes to the engine. */
static void start_rw(struct dpq *q, struct dp_slot *s)
{
    if (s->chk.kind == BLKIF_KIND_READ)
        ST_ADD(&q->st, rd_sect, s->chk.nr_sectors);
    else
        ST_ADD(&q->st, wr_sect, s->chk.nr_sectors);
    start_data(q, s);
}

/* Pay the QoS buckets for READ/WRITE s, or hold it (q->held: the queue
 * consumes nothing until qos_release starts it).  True when held. */
static bool qos_hold(struct dpq *q, struct dp_slot *s)
{
    uint64_t now = dpq_now(q);
    uint64_t wait = dpqos_take(q->qos, s->chk.kind == BLKIF_KIND_WRITE,
                               s->chk.nr_sectors << 9, now);
    if (!wait)
        return false;
    ST_ADD(&q->st, throttled, 1);
    q->held = s;
    q->held_since = now;
    q->held_until = now + wait;
    return true;
}

/* Start the held request once the buckets can pay for it (or at once:
 * force, when the queue stops, or the limits were lifted). */
static void qos_release(struct dpq *q, bool force)
{
    struct dp_slot *s = q->held;
    if (!s)
        return;
    uint64_t now = dpq_now(q);
    if (!force && now < q->held_until)
        return;
    if (!force && __atomic_load_n(&q->qos->on, __ATOMIC_ACQUIRE)) {
        uint64_t wait = dpqos_take(q->qos, s->chk.kind == BLKIF_KIND_WRITE,
                                   s->chk.nr_sectors << 9, now);
        if (wait) {
            q->held_until = now + wait;
            return;
        }
    }
    ST_ADD(&q->st, throttle_ns, now - q->held_since);
    q->held = NULL;
    start_rw(q, s);
}

static void dispatch(struct dpq *q, struct dp_slot *s)
{
    struct blkif_checked *c = &s->chk;
    /* Online resize (dp_set_sectors): one load per request, so both
     * validation steps see the same size. */
    q->lim.sectors = __atomic_load_n(&q->sectors, __ATOMIC_ACQUIRE);
    int st = blkif_check_req(&q->lim, s->req, c);
    LOG_DBG(LOG_CAT_RING, q->id, (int)q->idx, "%s id %" PRIu64 " sector %" PRIu64 ", %u %s"
            "segment(s) at req %u", op_name(blkif_rsp_op(s->req)), s->req->id,
            s->req->sector_number, s->req->nr_segments,
            s->req->operation == BLKIF_OP_INDIRECT ? "indirect " : "", s->rec->ring_idx);

    s->map.count = 0;
    if (st != BLKIF_RSP_OKAY) {
        refuse(q, s, (int16_t)st);
        return;
    }
    switch (c->kind) {
    case BLKIF_KIND_READ:
    case BLKIF_KIND_WRITE:
        if (c->kind == BLKIF_KIND_READ)
            ST_ADD(&q->st, rd_req, 1);
        else
            ST_ADD(&q->st, wr_req, 1);
        s->lat_op = c->kind == BLKIF_KIND_READ ? VBD_OP_READ : VBD_OP_WRITE;
        if (c->indirect) {
            int rc = dpg_read_indirect(&q->g, s->req->indirect_grefs, c->nr_indirect_pages,
                                       s->iseg, c->nr_segs);
            if (rc < 0) {
                grant_fault(q, s, c->nr_indirect_pages, rc);
                finish(q, s, BLKIF_RSP_ERROR);
                return;
            }
        }
        st = blkif_check_segs(&q->lim, s->req, c->indirect ? s->iseg : s->req->seg, c);
        if (st != BLKIF_RSP_OKAY) {
            refuse(q, s, (int16_t)st);
            return;
        }
        /* QoS (dataplane.h): one predictable branch when no limit is set;
         * re-issued requests of a restart (replay) are not held. */
        if (__atomic_load_n(&q->qos->on, __ATOMIC_ACQUIRE) && !q->nredo &&
            qos_hold(q, s))
            return;
        start_rw(q, s);
        return;
    case BLKIF_KIND_FLUSH:
    case BLKIF_KIND_BARRIER:
        ST_ADD(&q->st, f_req, 1);
        s->lat_op = VBD_OP_FLUSH;
        st = blkif_check_segs(&q->lim, s->req, s->req->seg, c);
        if (st != BLKIF_RSP_OKAY) {
            refuse(q, s, (int16_t)st);
            return;
        }
        ST_ADD(&q->st, wr_sect, c->nr_sectors);
        if (c->kind == BLKIF_KIND_BARRIER) {
            /* Drain first (docs/protocol.md §3.5); nothing is consumed until
             * the barrier is answered. */
            q->barrier = s;
            if (q->inflight > 1) {
                s->stage = DPQ_PARKED;
                return;
            }
        }
        start_flush_req(q, s);
        return;
    case BLKIF_KIND_DISCARD:
        ST_ADD(&q->st, ds_req, 1);
        s->lat_op = VBD_OP_DISCARD;
        if (!c->nr_sectors) {
            finish(q, s, BLKIF_RSP_OKAY);
            return;
        }
        s->disc_off = s->req->sector_number << 9;
        s->disc_left = c->nr_sectors << 9;
        next_discard(q, s);
        return;
    }
}

/* ---- the ring ------------------------------------------------------------ */

/* Restart: re-issue the requests the previous daemon consumed and did not
 * answer (rstate.h), in ring order, before anything new is consumed. */
static void replay(struct dpq *q)
{
    if (!q->nredo)
        return;
    log_dev(LOG_NOTICE, q->id, (int)q->idx,
            "re-issuing %u request(s) left in flight by the previous daemon", q->nredo);
    ST_ADD(&q->st, replayed, q->nredo);
    uint64_t now = dpq_now(q);
    for (unsigned i = 0; i < q->nredo; i++) {
        LOG_DBG(LOG_CAT_RESTART, q->id, (int)q->idx, "re-issue slot %u: %s id %" PRIu64
                " consumed at req %u", q->redo[i], op_name(blkif_rsp_op(q->slots[q->redo[i]].req)),
                q->slots[q->redo[i]].req->id, q->slots[q->redo[i]].rec->ring_idx);
        slot_start(&q->slots[q->redo[i]], now);
        dispatch(q, &q->slots[q->redo[i]]);
    }
    q->nredo = 0;
}

/* Start the queued I/O.  With the engine's wait (dpq.eng_wait) and no
 * polling, the I/O is left in the engine for the wait that ends the wake-up,
 * which submits it and sleeps in one system call. */
static void submit(struct dpq *q)
{
    if (!q->queued)
        return;
    ST_ADD(&q->st, submits, 1);
    uint64_t now = dpq_now(q);
    for (unsigned i = 0; i < q->queued; i++) {   /* the engine's share starts here */
        struct dp_slot *s = &q->slots[q->submitq[i]];
        if (s->eng_t0 && now > s->eng_t0)        /* a previous stage ended unclocked */
            s->eng_ns += now - s->eng_t0;
        s->eng_t0 = now;
    }
    if (q->eng_wait && !q->poll_us && !q->stopping) {
        q->queued = 0;
        return;
    }
    int rc = q->eng->ops->submit(q->eq);
    if (rc < 0)                 /* the I/Os stay queued; retried next round */
        log_rl_dev(&q->rl[DPQ_RL_INTERNAL], LOG_ERR, q->id, (int)q->idx,
                   "engine submit failed: %s", strerror(-rc));
    else
        q->queued = 0;
}

static void halt(struct dpq *q, RING_IDX rp)
{
    q->halted = true;
    ST_ADD(&q->st, halted, 1);
    log_dev(LOG_ERR, q->id, (int)q->idx,
            "bogus ring requests (req_prod %u, rsp_prod %u, ring size %u): "
            "ring halted until disconnect", rp, RING(q)->rsp_prod_pvt,
            RING_SIZE(RING(q)));
}

/* Can the queue take requests off the ring now? */
static bool can_consume(const struct dpq *q)
{
    return !q->halted && !q->stopping && !q->oo && !q->barrier && !q->held;
}

/*
 * Consume every request the ring holds (and we have room for).  arm: end
 * with RING_FINAL_CHECK_FOR_REQUESTS (req_event = req_cons + 1: the frontend
 * notifies its next request); polling mode sweeps without arming, so a
 * frontend pushing while we spin sends no event, and arms before sleeping.
 */
static void sweep(struct dpq *q, bool arm)
{
    blkif_x86_64_back_ring_t *r = RING(q);

    while (!q->halted && !q->stopping) {
        RING_IDX rc = r->req_cons;
        RING_IDX rp = __atomic_load_n(&r->sring->req_prod, __ATOMIC_RELAXED);
        xen_rmb();              /* see the requests up to rp */
        /* Bogus: more than a ring ahead of the responses, or behind what
         * we already consumed (else we would walk ~2^32 stale slots). */
        if (RING_REQUEST_PROD_OVERFLOW(r, rp) || rp - rc > RING_SIZE(r)) {
            halt(q, rp);
            break;
        }
        q->seen_prod = rp;
        set_occupancy(q);
        while (rc != rp && !RING_REQUEST_CONS_OVERFLOW(r, rc) && !q->barrier && !q->held) {
            struct dp_slot *s = slot_get(q);
            if (!s) {
                if (!q->oo)
                    ST_ADD(&q->st, oo_req, 1);
                q->oo = true;
                break;
            }
            blkif_abi_get_req(q->abi, s->req, ring_entry(q, rc));
            /* restart state (rstate.h): the copy, then the record, then req_cons */
            s->rec->ring_idx = rc;
            __atomic_store_n(&s->rec->state, RS_INFLIGHT, __ATOMIC_RELEASE);
            r->req_cons = ++rc;
            __atomic_store_n(q->rs_req_cons, rc, __ATOMIC_RELEASE);
            __asm__ __volatile__("" ::: "memory");   /* copy before use (docs/protocol.md §4.4) */
            dispatch(q, s);
        }
        if (q->oo || q->barrier || RING_REQUEST_CONS_OVERFLOW(r, rc))
            break;              /* woken again by a completion */
        if (q->held)
            break;              /* woken again by the QoS timeout */
        if (!arm) {
            if (__atomic_load_n(&r->sring->req_prod, __ATOMIC_RELAXED) == rp)
                break;
            continue;
        }
        int more;
        RING_FINAL_CHECK_FOR_REQUESTS(r, more);
        if (!more)
            break;
    }
}

static int reap(struct dpq *q)
{
    int rc = q->eng->ops->reap(q->eq, io_done, q);
    if (rc < 0)
        log_rl_dev(&q->rl[DPQ_RL_INTERNAL], LOG_ERR, q->id, (int)q->idx,
                   "engine reap failed: %s", strerror(-rc));
    copy_flush(q);              /* the completion batch's READ data, one gnt_copy */
    return rc;
}

#define DPQ_SERVICE_ROUNDS 4    /* sweep+submit+reap rounds per wake-up, at most */

/*
 * One round of work: drain the ring, one gnt_copy for the sweep's WRITEs and
 * the completed READs (COPY), again while that freed slots the ring is
 * waiting for, then ONE engine submit.  Then reap what already completed
 * (engines make that cheap when nothing did: the uring CQ is two memory
 * loads, no eventfd to drain): its follow-up stages and the requests its
 * freed slots let in go out with the next submit of the same wake-up.  The
 * responses of the whole wake-up are pushed with at most one notification.
 */
static void service(struct dpq *q, bool arm)
{
    qos_release(q, false);
    for (unsigned round = 1;; round++) {
        for (;;) {
            sweep(q, arm);
            unsigned nfree = q->nfree;
            copy_flush(q);
            if (q->nfree == nfree || !can_consume(q) || !RING_HAS_UNCONSUMED_REQUESTS(RING(q)))
                break;
        }
        submit(q);
        /* Completions free slots: always sweep again after them, it is the
         * sweep that re-arms req_event once the ring is empty (a sweep that
         * stopped on a full queue did not).  Completions left in the engine
         * after the last round keep its fd readable. */
        if (round == DPQ_SERVICE_ROUNDS || !q->inflight || reap(q) <= 0)
            break;
    }
    push_responses(q);
    td3_publish(q);             /* requests taken but not answered yet */
}

/* The event channel fired: take the event and unmask.  One pending read per
 * wake-up (as QEMU's xen-block does): the handle has this one port bound, and
 * looping until -EAGAIN would cost one more syscall per wake-up; a stale
 * event left behind only makes the next poll() return at once. */
static void kick(struct dpq *q)
{
    xen_port_t port;
    if (q->ops->evtchn_pending(q->evt, &port) == 0) {
        ST_ADD(&q->st, kicks, 1);
        q->ops->evtchn_unmask(q->evt, port);
    }
}

/* The event channel fired and the engine's wait read the fd: the port from
 * its bytes; the unmask written by the engine's next wait (after this
 * wake-up's work, as the port stays masked until then), or here.  A read
 * that failed (or named no port of ours): kick as without, which reads the
 * fd itself. */
static void kick_read(struct dpq *q)
{
    uint8_t b[ENGINE_WATCH_BUF];
    xen_port_t port;
    ssize_t n = q->eng->ops->watch_read(q->eq, 0, b, sizeof(b));
    int rc = n > 0 ? q->ops->evtchn_pending_read(q->evt, b, (size_t)n, &port) : (int)n;
    if (rc == -EAGAIN)
        return;                 /* stale: nothing to unmask */
    if (rc < 0) {
        kick(q);
        return;
    }
    ST_ADD(&q->st, kicks, 1);
    size_t len = sizeof(b);
    if (q->ops->evtchn_unmask_write(q->evt, port, b, &len) == 0 && len &&
        q->eng->ops->watch_write(q->eq, 0, b, len) < 0)
        q->ops->evtchn_unmask(q->evt, port);
}

/* Stop: wait (until the deadline) for in-flight I/O and answer it; then
 * abandon what is left (no answer), close the engine queue, unmap. */
static void drain(struct dpq *q)
{
    struct pollfd pfd = { .fd = q->eng->ops->completion_fd(q->eq), .events = POLLIN };

    qos_release(q, true);       /* the held request is I/O like any other now */
    copy_flush(q);
    submit(q);
    while (q->inflight) {
        uint64_t now = q->now_ns = xbd_now_ns();
        q->now_stale = false;
        if (now >= q->deadline_ns)
            break;
        int ms = (int)((q->deadline_ns - now + 999999) / 1000000);
        if (poll(&pfd, 1, ms) > 0)
            reap(q);
        submit(q);              /* follow-up stages queued by io_done */
        push_responses(q);
    }
    push_responses(q);
    unsigned left = q->inflight;
    if (left)
        log_dev(LOG_WARNING, q->id, (int)q->idx,
                "stop: %u request(s) still in flight at the deadline, abandoned unanswered",
                left);
    q->eng->ops->queue_close(q->eq);
    q->eq = NULL;
    __atomic_store_n(&q->quiesced, true, __ATOMIC_RELEASE);
    for (unsigned i = 0; i < q->nr_slots && left; i++) {
        struct dp_slot *s = &q->slots[i];
        if (s->stage != DPQ_FREE)
            dpg_put(&q->g, &s->map);
    }
    dpg_release_all(&q->g);     /* persistent grants */
}

static bool stop_requested(struct dpq *q)
{
    return __atomic_load_n(&q->stop_req, __ATOMIC_ACQUIRE);
}

enum spin_result {
    SPIN_IDLE,                  /* nothing for poll_us: re-arm and sleep */
    SPIN_WORK,                  /* seen in memory: serve without a system call */
    SPIN_FD,                    /* an fd may be readable: ppoll without sleeping */
};

/*
 * Polling mode: spin up to poll_us on memory: the ring, the engine's
 * completions (engine completions_ready, while I/O is in flight) and the stop
 * request, so a busy queue finds its work without a system call (each one
 * costs a hypervisor round trip in a PV dom0).  An engine without
 * completions_ready has its fds polled every few rounds instead (one poll()
 * each), as before.  The event channel is not looked at: while we spin
 * unarmed the frontend sends no event, and one sent before stays pending
 * (its port masked) until the next ppoll.
 */
static enum spin_result spin(struct dpq *q, struct pollfd *pfd)
{
    q->now_ns = xbd_now_ns();           /* SPIN_WORK: the wake-up's clock, 16 rounds old at most */
    q->now_stale = false;
    uint64_t end = q->now_ns + (uint64_t)q->poll_us * 1000;
    for (unsigned i = 0;; i++) {
        if (can_consume(q) && RING_HAS_UNCONSUMED_REQUESTS(RING(q)))
            return SPIN_WORK;
        if (q->eng_ready && q->inflight && q->eng_ready(q->eq))
            return SPIN_WORK;
        if ((i & 15) == 15) {
            if (stop_requested(q))
                return SPIN_FD;
            if (!q->eng_ready && poll(pfd, 3, 0) > 0)
                return SPIN_FD;
            if ((q->now_ns = xbd_now_ns()) >= end)
                return SPIN_IDLE;
        }
        cpu_relax();
    }
}

/* Polling mode found work in memory: serve it without a ppoll.  False when
 * that made no progress (nothing consumed, nothing reaped: the engine's
 * answer was stale), so the caller re-arms and sleeps instead of spinning on
 * it past poll_us. */
static bool serve_polled(struct dpq *q, bool tick, bool arm)
{
    RING_IDX cons = RING(q)->req_cons;
    uint64_t reaped = q->nreaped;
    if (tick)
        dpg_tick(&q->g, q->now_ns);     /* spin's clock */
    service(q, arm);
    return RING(q)->req_cons != cons || q->nreaped != reaped;
}

/* poll() timeout in ms: until the grant cache's next housekeeping, or -1. */
static int tick_timeout(struct dpq *q, uint64_t now)
{
    uint64_t t = dpg_next_tick(&q->g);
    if (!t)
        return -1;
    if (t <= now)
        return 0;
    return (int)((t - now + 999999) / 1000000);
}

#define DPQ_READY_EVTCHN 1u      /* bit i = watched fd i (dp_start: evtchn, stop) */
#define DPQ_READY_STOP 2u
#define DPQ_READY_IO 4u

/*
 * Sleep until the event channel fires, I/O completes, the stop eventfd is
 * written or wait_ns (UINT64_MAX: none) passes.  With the engine's wait: one
 * system call that also submits the wake-up's I/O (engine.h); if that
 * fails, ppoll from then on, as without.  *ready: DPQ_READY_* bits.  0, -EINTR, or -errno of
 * ppoll.
 */
static int wait_events(struct dpq *q, struct pollfd *pfd, uint64_t wait_ns, unsigned *ready)
{
    ST_ADD(&q->st, sleeps, 1);
    if (q->eng_wait) {
        ST_ADD(&q->st, engine_waits, 1);
        int rc = q->eng->ops->wait(q->eq, wait_ns, ready);
        if (rc == 0) {
            *ready |= DPQ_READY_IO;     /* reap: memory loads when nothing completed */
            return 0;
        }
        log_dev(LOG_ERR, q->id, (int)q->idx, "engine wait failed: %s; waiting in ppoll "
                "from now on", strerror(-rc));
        q->eng_wait = false;            /* submit() calls the engine's submit again */
        q->eng->ops->submit(q->eq);
    }
    struct timespec ts, *tsp = NULL;
    if (wait_ns != UINT64_MAX) {
        ts = (struct timespec){ (time_t)(wait_ns / 1000000000), (long)(wait_ns % 1000000000) };
        tsp = &ts;
    }
    *ready = 0;
    if (ppoll(pfd, 3, tsp, NULL) < 0)
        return -errno;
    *ready = (pfd[0].revents ? DPQ_READY_EVTCHN : 0) | (pfd[2].revents ? DPQ_READY_STOP : 0) |
             (pfd[1].revents ? DPQ_READY_IO : 0);
    return 0;
}

void *dpq_thread(void *arg)
{
    struct dpq *q = arg;
    struct pollfd pfd[3] = {
        { .fd = q->ops->evtchn_fd(q->evt), .events = POLLIN },
        { .fd = q->eng->ops->completion_fd(q->eq), .events = POLLIN },
        { .fd = q->stop_efd, .events = POLLIN },
    };
    bool tick = dpg_has_tick(&q->g);     /* grant-cache housekeeping */
    bool arm = q->poll_us == 0;

    char tname[16];             /* here too: the thread may run before dp_start names it */
    snprintf(tname, sizeof(tname), "xbd-q%u", q->idx);
    prctl(PR_SET_NAME, tname, 0, 0, 0);
    if (q->seccomp != CONFINE_OFF && q->eng->caps.seccomp_ok) {
        int rc = confine_thread(CONFINE_ROLE_QUEUE, q->seccomp,
                                !strcmp(q->ops->name, "sim"));
        if (rc < 0) {           /* a thread we cannot confine does not serve */
            log_dev(LOG_ERR, q->id, (int)q->idx, "cannot load the seccomp allow-list: %s",
                    strerror(-rc));
            q->halted = true;
            ST_ADD(&q->st, halted, 1);
        }
    }

    ST_SET(&q->st, ring_slots, RING_SIZE(RING(q)));
    q->seen_prod = RING(q)->rsp_prod_pvt + q->inflight;
    kick(q);
    q->now_ns = xbd_now_ns();
    dpg_tick(&q->g, q->now_ns);
    replay(q);
    service(q, true);           /* requests queued before we bound, or reattach */
    if (q->reattached) {
        /* The previous daemon may have died between publishing responses
         * and notifying; an event the frontend did not need is harmless
         * (blkfront's handler just looks at the ring). */
        ST_ADD(&q->st, notify, 1);
        q->ops->evtchn_notify(q->evt, q->port);
        q->notified_upto = RING(q)->rsp_prod_pvt;
    }
    while (!q->stopping) {
        if (stop_requested(q))
            break;              /* dp_stop's flag (the eventfd may come later) */
        int timeout = -1;
        if (q->poll_us && !q->halted) {
            enum spin_result w = spin(q, pfd);
            if (w == SPIN_WORK && serve_polled(q, tick, arm))
                continue;
            if (w != SPIN_IDLE) {
                timeout = 0;
            } else {
                int more;       /* re-arm before sleeping (docs/protocol.md §4.2) */
                RING_FINAL_CHECK_FOR_REQUESTS(RING(q), more);
                if (more && can_consume(q))
                    timeout = 0;
            }
        }
        if (tick && timeout != 0) {
            int t = tick_timeout(q, dpq_now(q));    /* at most this wake-up's work late */
            if (t >= 0 && (timeout < 0 || t < timeout))
                timeout = t;
        }
        uint64_t wait_ns = timeout < 0 ? UINT64_MAX : (uint64_t)timeout * 1000000;
        /* A request held by QoS: sleep until the buckets have refilled
         * (ns precision), no spinning. */
        if (q->held && wait_ns != 0) {
            uint64_t now = xbd_now_ns(), w = q->held_until > now ? q->held_until - now : 0;
            if (w < wait_ns)
                wait_ns = w;
        }
        unsigned ready;
        int rc = wait_events(q, pfd, wait_ns, &ready);
        if (rc == -EINTR)
            continue;
        if (rc < 0) {
            log_dev(LOG_ERR, q->id, (int)q->idx, "ppoll: %s", strerror(-rc));
            break;
        }
        if (ready & DPQ_READY_STOP) {
            q->stopping = true;
            break;
        }
        q->now_stale = true;            /* read when needed (dpq_now), and by publish */
        if (tick)
            dpg_tick(&q->g, dpq_now(q));
        if (ready & DPQ_READY_EVTCHN) {
            if (q->evtchn_rw)
                kick_read(q);
            else
                kick(q);
        }
        if (ready & DPQ_READY_IO)
            reap(q);
        service(q, arm);
    }
    q->stopping = true;
    drain(q);
    return NULL;
}
