/*
 * error.c - filter engine "error:<start>-<end>[,r|w|rw]:<inner>": every I/O
 * whose byte range touches [start, end) fails with -EIO (reads, writes or
 * both; discards count as writes; flushes never fail), the rest goes to the
 * inner engine (cf. nbdkit filters/error).  Test builds and
 * --allow-test-engines only (engine_open_params).
 */
#include "engine.h"
#include "engine_priv.h"

#include <errno.h>

struct error_engine {
    struct eng_filter_engine fe;
    uint64_t start, end;            /* bytes, [start, end) */
    bool on_read, on_write;
};

struct error_queue {
    struct eng_filter_queue fq;
    struct eng_done failed;         /* I/Os failed at queue_io, with an eventfd */
};

static int error_queue_init(struct eng_filter_queue *fq, unsigned depth)
{
    struct error_queue *q = (struct error_queue *)fq;
    q->failed.efd = -1;
    int rc = eng_done_init(&q->failed, depth, true);
    return rc < 0 ? rc : eng_filter_watch(fq, q->failed.efd);
}

static void error_queue_fini(struct eng_filter_queue *fq)
{
    eng_done_fini(&((struct error_queue *)fq)->failed);
}

static int error_queue_io(struct eng_filter_queue *fq, struct engine_io *io)
{
    struct error_queue *q = (struct error_queue *)fq;
    const struct error_engine *f = (const struct error_engine *)fq->e;
    bool hit = false;

    switch (io->op) {
    case ENGINE_OP_READ:
        hit = f->on_read && eng_io_overlaps(io, f->start, f->end);
        break;
    case ENGINE_OP_WRITE:
    case ENGINE_OP_DISCARD:
    case ENGINE_OP_SECURE_DISCARD:
        hit = f->on_write && eng_io_overlaps(io, f->start, f->end);
        break;
    default:
        break;
    }
    if (!hit)
        return fq->e->inner->ops->queue_io(fq->inner, io);
    io->result = -EIO;
    return eng_done_push(&q->failed, io);
}

static int error_reap(struct eng_filter_queue *fq, engine_done_fn done, void *arg)
{
    struct error_queue *q = (struct error_queue *)fq;
    int n = fq->e->inner->ops->reap(fq->inner, done, arg);
    if (n < 0)
        return n;
    return n + eng_done_reap(&q->failed, done, arg);
}

/* submit and get_size: the inner engine's. */
static const struct eng_filter error_filter = {
    ENG_FILTER_STATE("error", error),
    .queue_io = error_queue_io,
    .reap = error_reap,
};

int engine_error_open(struct engine *inner, uint64_t start, uint64_t end,
                      bool on_read, bool on_write, struct engine **out)
{
    struct eng_filter_engine *fe;
    int rc = eng_filter_open(&error_filter, inner, &fe);
    if (rc < 0)
        return rc;
    struct error_engine *f = (struct error_engine *)fe;
    f->start = start;
    f->end = end;
    f->on_read = on_read;
    f->on_write = on_write;
    *out = &fe->base;
    return 0;
}
