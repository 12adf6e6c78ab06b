/*
 * null.c - "null:<bytes>": a store of that size that reads zeroes and drops
 * writes; flush and discard succeed at once.  Measures the pure protocol
 * cost of the data plane (cf. nbdkit null plugin).  Also the smallest
 * example of the engine ops (engine.h).
 */
#include "engine.h"
#include "engine_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct null_queue {
    unsigned depth, busy, queued;
    struct engine_io **pending;     /* queued, completed at submit */
    struct eng_done done;
};

int engine_null_open_size(uint64_t size, const struct engine_params *p, struct engine **out)
{
    struct engine *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->ops = &engine_null;
    e->size = size;
    e->logical_block_size = 512;
    e->physical_block_size = 4096;
    e->readonly = p ? p->readonly : false;
    e->caps.flush = true;
    e->caps.exit_drains_io = true;     /* no I/O touches guest memory */
    e->caps.discard = true;
    e->caps.discard_granularity = 4096;
    e->caps.seccomp_ok = true;
    *out = e;
    return 0;
}

/* Required.  p->path is the size ("<bytes>[kKmMgGtT]"). */
static int null_open(const struct engine_params *p, struct engine **out)
{
    uint64_t size;
    if (!p || !p->path || eng_parse_size(p->path, NULL, &size) < 0)
        return -EINVAL;
    return engine_null_open_size(size, p, out);
}

static void null_close(struct engine *e)
{
    free(e);
}

static int null_queue_open(struct engine *e, unsigned depth, struct engine_queue **out)
{
    (void)e;
    struct null_queue *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->depth = depth ? depth : 1;
    q->pending = calloc(q->depth, sizeof(*q->pending));
    int rc = q->pending ? eng_done_init(&q->done, q->depth, true) : -ENOMEM;
    if (rc < 0) {
        free(q->pending);
        free(q);
        return rc;
    }
    *out = (struct engine_queue *)q;
    return 0;
}

static void null_queue_close(struct engine_queue *eq)
{
    struct null_queue *q = (struct null_queue *)eq;
    if (!q)
        return;
    eng_done_fini(&q->done);
    free(q->pending);
    free(q);
}

static int null_queue_io(struct engine_queue *eq, struct engine_io *io)
{
    struct null_queue *q = (struct null_queue *)eq;
    if (q->busy >= q->depth)
        return -EBUSY;
    q->pending[q->queued++] = io;
    q->busy++;
    return 0;
}

static int null_submit(struct engine_queue *eq)
{
    struct null_queue *q = (struct null_queue *)eq;
    unsigned n = q->queued;
    for (unsigned i = 0; i < n; i++) {
        struct engine_io *io = q->pending[i];
        if (io->op == ENGINE_OP_READ)
            for (unsigned k = 0; k < io->iovcnt; k++)
                memset(io->iov[k].iov_base, 0, io->iov[k].iov_len);
        io->result = (io->op == ENGINE_OP_READ || io->op == ENGINE_OP_WRITE) ? (int64_t)io->len : 0;
        eng_done_push(&q->done, io);
    }
    q->queued = 0;
    return (int)n;
}

static int null_completion_fd(struct engine_queue *eq)
{
    return ((struct null_queue *)eq)->done.efd;
}

static int null_reap(struct engine_queue *eq, engine_done_fn done, void *arg)
{
    struct null_queue *q = (struct null_queue *)eq;
    q->busy -= q->done.n;
    return eng_done_reap(&q->done, done, arg);
}

const struct engine_ops engine_null = {
    ENGINE_OPS_REQUIRED("null", null, null_open, null_close),
};
