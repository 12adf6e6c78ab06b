/*
 * queue.c - the queue thread: consume requests from a shared ring, validate
 * the private copies, map their grants, drive the engine, answer.
 * Loop shape follows Linux bb/blkback.c __do_block_io_op (protocol.md §4
 * "Loop"); one poll() over the event channel, the engine queue's completion
 * fd and a stop eventfd.  No locks: everything here belongs to this thread.
 */
#include "queue.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
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

uint64_t dpq_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- slots ------------------------------------------------------------- */

int dpq_alloc_slots(struct dpq *q, unsigned nr_slots, unsigned max_segs)
{
    size_t per = (size_t)max_segs * (sizeof(struct blkif_request_segment) + sizeof(uint32_t) +
                                     sizeof(void *) + sizeof(struct iovec));
    q->slots = calloc(nr_slots, sizeof(*q->slots));
    q->free_stack = calloc(nr_slots, sizeof(*q->free_stack));
    /* One arena for every per-segment array; big arenas come from mmap and
     * only the pages of segments actually used get touched. */
    q->arena_len = per * nr_slots;
    q->arena = calloc(1, q->arena_len);
    if (!q->slots || !q->free_stack || !q->arena) {
        dpq_free_slots(q);
        return -ENOMEM;
    }
    char *p = q->arena;
    for (unsigned i = 0; i < nr_slots; i++) {
        struct dp_slot *s = &q->slots[i];
        s->iov = (struct iovec *)p;                 p += max_segs * sizeof(struct iovec);
        s->pages = (void **)p;                      p += max_segs * sizeof(void *);
        s->iseg = (struct blkif_request_segment *)p; p += max_segs * sizeof(*s->iseg);
        s->refs = (uint32_t *)p;                    p += max_segs * sizeof(uint32_t);
        s->io.cookie = s;
        q->free_stack[i] = (uint16_t)(nr_slots - 1 - i);
    }
    q->nr_slots = nr_slots;
    q->nfree = nr_slots;
    q->max_segs = max_segs;
    return 0;
}

void dpq_free_slots(struct dpq *q)
{
    free(q->slots);
    free(q->free_stack);
    free(q->arena);
    q->slots = NULL;
    q->free_stack = NULL;
    q->arena = NULL;
    q->nr_slots = q->nfree = 0;
}

static struct dp_slot *slot_get(struct dpq *q)
{
    if (!q->nfree)
        return NULL;
    struct dp_slot *s = &q->slots[q->free_stack[--q->nfree]];
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

/* Write the response of slot s, release its grants and the slot. */
static void finish(struct dpq *q, struct dp_slot *s, int16_t status)
{
    if (s->map.count && dpg_put(&q->g, &s->map, s->chk.to_guest,
                                status == BLKIF_RSP_OKAY) < 0)
        status = BLKIF_RSP_ERROR;
    blkif_abi_put_rsp(q->abi, ring_entry(q, RING(q)->rsp_prod_pvt), s->req.id,
                      s->chk.rsp_op, status);
    RING(q)->rsp_prod_pvt++;
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

/* Publish written responses; notify the frontend once per batch. */
static void push_responses(struct dpq *q)
{
    int notify;
    if (!q->need_push)
        return;
    q->need_push = false;
    RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(RING(q), notify);
    if (notify) {
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
    log_rl(&q->rl[DPQ_RL_REQ], LOG_WARNING,
           "%s queue %u: %s request id %" PRIu64 " (op %u, nr_segments %u, sector %" PRIu64
           ") refused: %s", q->name, q->idx, op_name(s->req.operation), s->req.id,
           s->req.operation, s->req.nr_segments, s->req.sector_number,
           s->chk.why ? s->chk.why : "invalid");
    finish(q, s, status);
}

/* ---- engine I/O ---------------------------------------------------------- */

static void queue_io(struct dpq *q, struct dp_slot *s)
{
    int rc = q->eng->ops->queue_io(q->eq, &s->io);
    if (rc < 0) {
        log_rl(&q->rl[DPQ_RL_INTERNAL], LOG_ERR, "%s queue %u: engine refused I/O: %s",
               q->name, q->idx, strerror(-rc));
        finish(q, s, BLKIF_RSP_ERROR);
        return;
    }
    q->queued++;
}

/* Map the data pages, build the iovecs, queue the engine READ or WRITE. */
static void start_data(struct dpq *q, struct dp_slot *s)
{
    const struct blkif_request_segment *seg = s->chk.indirect ? s->iseg : s->req.seg;
    unsigned n = s->chk.nr_segs;

    for (unsigned i = 0; i < n; i++)
        s->refs[i] = seg[i].gref;
    int rc = dpg_get(&q->g, &s->map, s->refs, seg, n, s->chk.to_guest, s->pages);
    if (rc < 0) {
        log_rl(&q->rl[DPQ_RL_MAP], LOG_WARNING,
               "%s queue %u: %s request id %" PRIu64 ": cannot map %u grant(s): %s",
               q->name, q->idx, op_name(s->req.operation), s->req.id, n, strerror(-rc));
        s->map.count = 0;
        finish(q, s, BLKIF_RSP_ERROR);
        return;
    }
    /* first_sect..last_sect of each page; adjacent pieces merged (pages of
     * one mapping are contiguous, so full-page segments give one iovec). */
    struct iovec *iov = s->iov;
    unsigned niov = 0;
    for (unsigned i = 0; i < n; i++) {
        char *a = (char *)s->pages[i] + ((size_t)seg[i].first_sect << 9);
        size_t len = (size_t)(seg[i].last_sect - seg[i].first_sect + 1) << 9;
        if (niov && (char *)iov[niov - 1].iov_base + iov[niov - 1].iov_len == a) {
            iov[niov - 1].iov_len += len;
        } else {
            iov[niov].iov_base = a;
            iov[niov].iov_len = len;
            niov++;
        }
    }
    s->niov = (uint16_t)niov;
    s->stage = DPQ_DATA;
    s->io.op = s->chk.to_guest ? ENGINE_OP_READ : ENGINE_OP_WRITE;
    s->io.offset = s->req.sector_number << 9;
    s->io.len = s->chk.nr_sectors << 9;
    s->io.iov = iov;
    s->io.iovcnt = niov;
    queue_io(q, s);
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

    if (io->result < 0) {
        ST_ADD(&q->st, io_errors, 1);
        log_rl(&q->rl[DPQ_RL_IO], LOG_ERR,
               "%s queue %u: %s request id %" PRIu64 " (bytes %" PRIu64 "+%" PRIu64 "): I/O error: %s",
               q->name, q->idx, op_name(s->req.operation), s->req.id, io->offset, io->len,
               strerror((int)-io->result));
        finish(q, s, BLKIF_RSP_ERROR);
        return;
    }
    switch (s->stage) {
    case DPQ_DATA:
        if (s->chk.kind == BLKIF_KIND_FLUSH || s->chk.kind == BLKIF_KIND_BARRIER) {
            /* grants are not needed by the flush: give them back now */
            dpg_put(&q->g, &s->map, s->chk.to_guest, true);
            start_flush(q, s);
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

static void dispatch(struct dpq *q, struct dp_slot *s)
{
    struct blkif_checked *c = &s->chk;
    int st = blkif_check_req(&q->lim, &s->req, c);

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
        if (c->indirect) {
            int rc = dpg_read_indirect(&q->g, s->req.indirect_grefs, c->nr_indirect_pages,
                                       s->iseg, c->nr_segs);
            if (rc < 0) {
                log_rl(&q->rl[DPQ_RL_MAP], LOG_WARNING,
                       "%s queue %u: INDIRECT request id %" PRIu64
                       ": cannot map %u indirect page(s): %s",
                       q->name, q->idx, s->req.id, c->nr_indirect_pages, strerror(-rc));
                finish(q, s, BLKIF_RSP_ERROR);
                return;
            }
        }
        st = blkif_check_segs(&q->lim, &s->req, c->indirect ? s->iseg : s->req.seg, c);
        if (st != BLKIF_RSP_OKAY) {
            refuse(q, s, (int16_t)st);
            return;
        }
        if (c->kind == BLKIF_KIND_READ)
            ST_ADD(&q->st, rd_sect, c->nr_sectors);
        else
            ST_ADD(&q->st, wr_sect, c->nr_sectors);
        start_data(q, s);
        return;
    case BLKIF_KIND_FLUSH:
    case BLKIF_KIND_BARRIER:
        ST_ADD(&q->st, f_req, 1);
        st = blkif_check_segs(&q->lim, &s->req, s->req.seg, c);
        if (st != BLKIF_RSP_OKAY) {
            refuse(q, s, (int16_t)st);
            return;
        }
        ST_ADD(&q->st, wr_sect, c->nr_sectors);
        if (c->kind == BLKIF_KIND_BARRIER) {
            /* Drain first (bb/blkback.c:1223); nothing is consumed until
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
        if (!c->nr_sectors) {
            finish(q, s, BLKIF_RSP_OKAY);
            return;
        }
        s->disc_off = s->req.sector_number << 9;
        s->disc_left = c->nr_sectors << 9;
        next_discard(q, s);
        return;
    }
}

/* ---- the ring ------------------------------------------------------------ */

static void submit(struct dpq *q)
{
    if (!q->queued)
        return;
    ST_ADD(&q->st, submits, 1);
    int rc = q->eng->ops->submit(q->eq);
    if (rc < 0)                 /* the I/Os stay queued; retried next round */
        log_rl(&q->rl[DPQ_RL_INTERNAL], LOG_ERR, "%s queue %u: engine submit failed: %s",
               q->name, q->idx, strerror(-rc));
    else
        q->queued = 0;
}

static void halt(struct dpq *q, RING_IDX rp)
{
    q->halted = true;
    ST_ADD(&q->st, halted, 1);
    log_err("%s queue %u: bogus ring requests (req_prod %u, rsp_prod %u, ring size %u): "
            "ring halted until disconnect", q->name, q->idx, rp, RING(q)->rsp_prod_pvt,
            RING_SIZE(RING(q)));
}

/* Consume every request the ring holds (and we have room for), then one
 * engine submit. */
static void sweep(struct dpq *q)
{
    blkif_x86_64_back_ring_t *r = RING(q);

    while (!q->halted && !q->stopping) {
        RING_IDX rc = r->req_cons;
        RING_IDX rp = __atomic_load_n(&r->sring->req_prod, __ATOMIC_RELAXED);
        xen_rmb();              /* see the requests up to rp */
        if (RING_REQUEST_PROD_OVERFLOW(r, rp)) {
            halt(q, rp);
            break;
        }
        while (rc != rp && !RING_REQUEST_CONS_OVERFLOW(r, rc) && !q->barrier) {
            struct dp_slot *s = slot_get(q);
            if (!s) {
                if (!q->oo)
                    ST_ADD(&q->st, oo_req, 1);
                q->oo = true;
                break;
            }
            blkif_abi_get_req(q->abi, &s->req, ring_entry(q, rc));
            r->req_cons = ++rc;
            __asm__ __volatile__("" ::: "memory");   /* copy before use (bb/blkback.c:1140) */
            dispatch(q, s);
        }
        if (q->oo || q->barrier || RING_REQUEST_CONS_OVERFLOW(r, rc))
            break;              /* woken again by a completion */
        int more;
        RING_FINAL_CHECK_FOR_REQUESTS(r, more);
        if (!more)
            break;
    }
    submit(q);
}

static void reap(struct dpq *q)
{
    int rc = q->eng->ops->reap(q->eq, io_done, q);
    if (rc < 0)
        log_rl(&q->rl[DPQ_RL_INTERNAL], LOG_ERR, "%s queue %u: engine reap failed: %s",
               q->name, q->idx, strerror(-rc));
    submit(q);                  /* follow-up stages queued by io_done */
}

static void kick(struct dpq *q)
{
    xen_port_t port;
    while (q->ops->evtchn_pending(q->evt, &port) == 0) {
        ST_ADD(&q->st, kicks, 1);
        q->ops->evtchn_unmask(q->evt, port);
    }
}

/* Stop: wait (until the deadline) for in-flight I/O and answer it; then
 * abandon what is left (no answer), close the engine queue, unmap. */
static void drain(struct dpq *q)
{
    struct pollfd pfd = { .fd = q->eng->ops->completion_fd(q->eq), .events = POLLIN };

    while (q->inflight) {
        uint64_t now = dpq_now_ns();
        if (now >= q->deadline_ns)
            break;
        int ms = (int)((q->deadline_ns - now + 999999) / 1000000);
        if (poll(&pfd, 1, ms) > 0)
            reap(q);
        push_responses(q);
    }
    push_responses(q);
    unsigned left = q->inflight;
    if (left)
        log_warn("%s queue %u: stop: %u request(s) still in flight at the deadline, "
                 "abandoned unanswered", q->name, q->idx, left);
    q->eng->ops->queue_close(q->eq);
    q->eq = NULL;
    for (unsigned i = 0; i < q->nr_slots && left; i++) {
        struct dp_slot *s = &q->slots[i];
        if (s->stage == DPQ_FREE)
            continue;
        dpg_put(&q->g, &s->map, s->chk.to_guest, false);
    }
}

void *dpq_thread(void *arg)
{
    struct dpq *q = arg;
    struct pollfd pfd[3] = {
        { .fd = q->ops->evtchn_fd(q->evt), .events = POLLIN },
        { .fd = q->eng->ops->completion_fd(q->eq), .events = POLLIN },
        { .fd = q->stop_efd, .events = POLLIN },
    };

    kick(q);
    sweep(q);                   /* requests queued before we bound, or reattach */
    push_responses(q);
    while (!q->stopping) {
        int timeout = -1;
        if (q->poll_us && !q->halted && !q->barrier && !q->oo) {
            /* busy-poll the ring a little before sleeping (poll_us) */
            uint64_t end = dpq_now_ns() + (uint64_t)q->poll_us * 1000;
            do {
                if (RING_HAS_UNCONSUMED_REQUESTS(RING(q))) {
                    timeout = 0;
                    break;
                }
                cpu_relax();
            } while (poll(pfd, 3, 0) == 0 && dpq_now_ns() < end);
        }
        int n = poll(pfd, 3, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log_err("%s queue %u: poll: %s", q->name, q->idx, strerror(errno));
            break;
        }
        if (pfd[2].revents) {
            q->stopping = true;
            break;
        }
        if (pfd[0].revents)
            kick(q);
        if (pfd[1].revents)
            reap(q);
        sweep(q);
        push_responses(q);
    }
    q->stopping = true;
    drain(q);
    return NULL;
}
