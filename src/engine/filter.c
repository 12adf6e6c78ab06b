/*
 * filter.c - what every filter engine shares (src/engine/error.c, delay.c):
 * the engine_ops a filter presents, each of which calls the filter's own
 * callback where it has one and otherwise forwards to the inner engine, as
 * nbdkit filters do (include/nbdkit-filter.h: what a filter does not
 * implement goes to next_ops).  API in engine_priv.h.
 */
#include "engine_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

static struct eng_filter_engine *fe_of(struct engine *e)
{
    return (struct eng_filter_engine *)e;
}

static struct eng_filter_queue *fq_of(struct engine_queue *eq)
{
    return (struct eng_filter_queue *)eq;
}

static int filter_open(const struct engine_params *p, struct engine **out)
{
    (void)p; (void)out;
    return -EINVAL;                 /* only through engine_open_params */
}

static void filter_close(struct engine *e)
{
    struct eng_filter_engine *fe = fe_of(e);
    if (!fe)
        return;
    fe->inner->ops->close(fe->inner);
    free(fe);
}

static void filter_queue_close(struct engine_queue *eq)
{
    struct eng_filter_queue *q = fq_of(eq);
    if (!q)
        return;
    q->e->inner->ops->queue_close(q->inner);
    if (q->e->f->queue_fini)
        q->e->f->queue_fini(q);
    if (q->epfd >= 0)
        close(q->epfd);
    free(q);
}

static int filter_queue_open(struct engine *e, unsigned depth, struct engine_queue **out)
{
    struct eng_filter_engine *fe = fe_of(e);
    const struct eng_filter *f = fe->f;
    struct eng_filter_queue *q = calloc(1, f->queue_size > sizeof(*q) ? f->queue_size : sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->e = fe;
    q->epfd = -1;
    int rc = fe->inner->ops->queue_open(fe->inner, depth, &q->inner);
    if (rc < 0) {
        free(q);
        return rc;
    }
    if (f->queue_init && (rc = f->queue_init(q, depth)) < 0) {
        filter_queue_close((struct engine_queue *)q);
        return rc;
    }
    *out = (struct engine_queue *)q;
    return 0;
}

static int filter_queue_io(struct engine_queue *eq, struct engine_io *io)
{
    struct eng_filter_queue *q = fq_of(eq);
    if (q->e->f->queue_io)
        return q->e->f->queue_io(q, io);
    return q->e->inner->ops->queue_io(q->inner, io);
}

static int filter_submit(struct engine_queue *eq)
{
    struct eng_filter_queue *q = fq_of(eq);
    if (q->e->f->submit)
        return q->e->f->submit(q);
    return q->e->inner->ops->submit(q->inner);
}

static int filter_completion_fd(struct engine_queue *eq)
{
    struct eng_filter_queue *q = fq_of(eq);
    return q->epfd >= 0 ? q->epfd : q->e->inner->ops->completion_fd(q->inner);
}

static int filter_reap(struct engine_queue *eq, engine_done_fn done, void *arg)
{
    struct eng_filter_queue *q = fq_of(eq);
    if (q->e->f->reap)
        return q->e->f->reap(q, done, arg);
    return q->e->inner->ops->reap(q->inner, done, arg);
}

/* The size is the inner store's unless the filter says otherwise. */
static int filter_get_size(struct engine *e, uint64_t *bytes)
{
    struct eng_filter_engine *fe = fe_of(e);
    if (fe->f->get_size)
        return fe->f->get_size(fe, bytes);
    return engine_get_size(fe->inner, bytes);
}

/* name NULL: the filter's, per engine (eng_filter_open) */
static const struct engine_ops filter_ops = {
    ENGINE_OPS_REQUIRED(NULL, filter, filter_open, filter_close),
    .get_size = filter_get_size,
};

int eng_filter_open(const struct eng_filter *f, struct engine *inner, struct eng_filter_engine **out)
{
    struct eng_filter_engine *fe = calloc(1, f->engine_size > sizeof(*fe) ? f->engine_size
                                                                          : sizeof(*fe));
    if (!fe) {
        inner->ops->close(inner);
        return -ENOMEM;
    }
    fe->base = *inner;              /* size, block sizes, caps: the inner store's */
    fe->ops = filter_ops;
    fe->ops.name = f->name;
    fe->base.ops = &fe->ops;
    fe->f = f;
    fe->inner = inner;
    *out = fe;
    return 0;
}

int eng_filter_watch(struct eng_filter_queue *q, int fd)
{
    struct epoll_event ev = { .events = EPOLLIN };
    if (q->epfd < 0) {
        q->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (q->epfd < 0)
            return -errno;
        if (epoll_ctl(q->epfd, EPOLL_CTL_ADD, q->e->inner->ops->completion_fd(q->inner), &ev) < 0)
            return -errno;
    }
    if (fd < 0)
        return -EINVAL;
    return epoll_ctl(q->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}
