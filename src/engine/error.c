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
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

struct error_engine {
    struct engine base;
    struct engine *inner;
    uint64_t start, end;            /* bytes, [start, end) */
    bool on_read, on_write;
};

struct error_queue {
    struct error_engine *e;
    struct engine_queue *inner;
    struct eng_done failed;         /* I/Os failed at queue_io, with an eventfd */
    int epfd;                       /* inner completion fd + failed.efd */
};

static const struct engine_ops engine_error;

int engine_error_open(struct engine *inner, uint64_t start, uint64_t end,
                      bool on_read, bool on_write, struct engine **out)
{
    struct error_engine *f = calloc(1, sizeof(*f));
    if (!f) {
        inner->ops->close(inner);
        return -ENOMEM;
    }
    f->base = *inner;
    f->base.ops = &engine_error;
    f->inner = inner;
    f->start = start;
    f->end = end;
    f->on_read = on_read;
    f->on_write = on_write;
    *out = &f->base;
    return 0;
}

static int error_open(const struct engine_params *p, struct engine **out)
{
    (void)p; (void)out;
    return -EINVAL;                 /* only through engine_open_params */
}

/* The size is the inner store's. */
static int error_get_size(struct engine *e, uint64_t *bytes)
{
    return engine_get_size(((struct error_engine *)e)->inner, bytes);
}

static void error_close(struct engine *e)
{
    struct error_engine *f = (struct error_engine *)e;
    if (!f)
        return;
    f->inner->ops->close(f->inner);
    free(f);
}

static int error_queue_open(struct engine *e, unsigned depth, struct engine_queue **out)
{
    struct error_engine *f = (struct error_engine *)e;
    struct error_queue *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->e = f;
    q->epfd = -1;
    int rc = f->inner->ops->queue_open(f->inner, depth, &q->inner);
    if (rc < 0)
        goto fail;
    rc = eng_done_init(&q->failed, depth, true);
    if (rc < 0)
        goto fail_inner;
    q->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN };
    if (q->epfd < 0 ||
        epoll_ctl(q->epfd, EPOLL_CTL_ADD, f->inner->ops->completion_fd(q->inner), &ev) < 0 ||
        epoll_ctl(q->epfd, EPOLL_CTL_ADD, q->failed.efd, &ev) < 0) {
        rc = -errno;
        goto fail_done;
    }
    *out = (struct engine_queue *)q;
    return 0;
fail_done:
    if (q->epfd >= 0)
        close(q->epfd);
    eng_done_fini(&q->failed);
fail_inner:
    f->inner->ops->queue_close(q->inner);
fail:
    free(q);
    return rc;
}

static void error_queue_close(struct engine_queue *eq)
{
    struct error_queue *q = (struct error_queue *)eq;
    if (!q)
        return;
    q->e->inner->ops->queue_close(q->inner);
    close(q->epfd);
    eng_done_fini(&q->failed);
    free(q);
}

static int error_queue_io(struct engine_queue *eq, struct engine_io *io)
{
    struct error_queue *q = (struct error_queue *)eq;
    struct error_engine *f = q->e;
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
        return f->inner->ops->queue_io(q->inner, io);
    io->result = -EIO;
    return eng_done_push(&q->failed, io);
}

static int error_submit(struct engine_queue *eq)
{
    struct error_queue *q = (struct error_queue *)eq;
    return q->e->inner->ops->submit(q->inner);
}

static int error_completion_fd(struct engine_queue *eq)
{
    return ((struct error_queue *)eq)->epfd;
}

static int error_reap(struct engine_queue *eq, engine_done_fn done, void *arg)
{
    struct error_queue *q = (struct error_queue *)eq;
    int n = q->e->inner->ops->reap(q->inner, done, arg);
    if (n < 0)
        return n;
    return n + eng_done_reap(&q->failed, done, arg);
}

static const struct engine_ops engine_error = {
    .size = sizeof(struct engine_ops),
    .version = ENGINE_OPS_VERSION,
    .name = "error",
    .open = error_open,
    .close = error_close,
    .queue_open = error_queue_open,
    .queue_close = error_queue_close,
    .queue_io = error_queue_io,
    .submit = error_submit,
    .completion_fd = error_completion_fd,
    .reap = error_reap,
    .get_size = error_get_size,
};
