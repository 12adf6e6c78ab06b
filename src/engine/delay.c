/*
 * delay.c - filter engine "delay:[w]<usec>:<inner>": every I/O completion of
 * the inner engine (with `w`: of every WRITE only, so reads overtake older
 * writes, as with a dm-delay target that delays writes) is held back `usec`
 * microseconds before it is reported (cf. nbdkit filters/delay).  Used to
 * test timeouts, dp_stop with I/O in flight, queue depth and out-of-order
 * completions.  Test builds and --allow-test-engines only.
 */
#include "engine.h"
#include "util.h"
#include "engine_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

struct delay_engine {
    struct engine base;
    struct engine *inner;
    uint64_t usec;
    bool writes_only;
};

struct delay_queue {
    struct delay_engine *e;
    struct engine_queue *inner;
    unsigned cap, head, n;          /* FIFO of completed I/Os, ordered by due time */
    struct engine_io **io;
    uint64_t *due_ns;               /* CLOCK_MONOTONIC */
    int tfd, epfd;
    engine_done_fn done;            /* of the reap in progress: undelayed completions */
    void *done_arg;
    int passed;                     /* completions reported at once in that reap */
};

static const struct engine_ops engine_delay;

int engine_delay_open(struct engine *inner, uint64_t usec, bool writes_only, struct engine **out)
{
    struct delay_engine *f = calloc(1, sizeof(*f));
    if (!f) {
        inner->ops->close(inner);
        return -ENOMEM;
    }
    f->base = *inner;
    f->base.ops = &engine_delay;
    f->inner = inner;
    f->usec = usec;
    f->writes_only = writes_only;
    *out = &f->base;
    return 0;
}

static int delay_open(const struct engine_params *p, struct engine **out)
{
    (void)p; (void)out;
    return -EINVAL;                 /* only through engine_open_params */
}

/* The size is the inner store's. */
static int delay_get_size(struct engine *e, uint64_t *bytes)
{
    return engine_get_size(((struct delay_engine *)e)->inner, bytes);
}

static void delay_close(struct engine *e)
{
    struct delay_engine *f = (struct delay_engine *)e;
    if (!f)
        return;
    f->inner->ops->close(f->inner);
    free(f);
}

static void delay_queue_free(struct delay_queue *q)
{
    if (q->inner)
        q->e->inner->ops->queue_close(q->inner);
    if (q->tfd >= 0)
        close(q->tfd);
    if (q->epfd >= 0)
        close(q->epfd);
    free(q->io);
    free(q->due_ns);
    free(q);
}

static int delay_queue_open(struct engine *e, unsigned depth, struct engine_queue **out)
{
    struct delay_engine *f = (struct delay_engine *)e;
    struct delay_queue *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->e = f;
    q->tfd = q->epfd = -1;
    q->cap = depth ? depth : 1;
    q->io = calloc(q->cap, sizeof(*q->io));
    q->due_ns = calloc(q->cap, sizeof(*q->due_ns));
    int rc = (q->io && q->due_ns) ? f->inner->ops->queue_open(f->inner, depth, &q->inner) : -ENOMEM;
    if (rc < 0) {
        q->inner = NULL;
        delay_queue_free(q);
        return rc;
    }
    q->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    q->epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = { .events = EPOLLIN };
    if (q->tfd < 0 || q->epfd < 0 ||
        epoll_ctl(q->epfd, EPOLL_CTL_ADD, f->inner->ops->completion_fd(q->inner), &ev) < 0 ||
        epoll_ctl(q->epfd, EPOLL_CTL_ADD, q->tfd, &ev) < 0) {
        rc = -errno;
        delay_queue_free(q);
        return rc;
    }
    *out = (struct engine_queue *)q;
    return 0;
}

static void delay_queue_close(struct engine_queue *eq)
{
    if (eq)
        delay_queue_free((struct delay_queue *)eq);
}

static int delay_queue_io(struct engine_queue *eq, struct engine_io *io)
{
    struct delay_queue *q = (struct delay_queue *)eq;
    return q->e->inner->ops->queue_io(q->inner, io);
}

static int delay_submit(struct engine_queue *eq)
{
    struct delay_queue *q = (struct delay_queue *)eq;
    return q->e->inner->ops->submit(q->inner);
}

static int delay_completion_fd(struct engine_queue *eq)
{
    return ((struct delay_queue *)eq)->epfd;
}

/* Inner completion: hold it until now + usec. */
static void delay_hold(struct engine_io *io, void *arg)
{
    struct delay_queue *q = arg;
    if (q->e->writes_only && io->op != ENGINE_OP_WRITE) {
        q->passed++;
        q->done(io, q->done_arg);
        return;
    }
    unsigned i = (q->head + q->n) % q->cap;
    if (q->n == q->cap)
        return;                     /* cannot happen: inner depth == cap */
    q->io[i] = io;
    q->due_ns[i] = xbd_now_ns() + q->e->usec * 1000ull;
    q->n++;
}

static int delay_reap(struct engine_queue *eq, engine_done_fn done, void *arg)
{
    struct delay_queue *q = (struct delay_queue *)eq;
    uint64_t v;
    if (read(q->tfd, &v, sizeof(v)) < 0) {
        /* EAGAIN: timer did not fire */
    }
    q->done = done;
    q->done_arg = arg;
    q->passed = 0;
    int rc = q->e->inner->ops->reap(q->inner, delay_hold, q);
    if (rc < 0)
        return rc;
    int total = q->passed;
    uint64_t now = xbd_now_ns();
    unsigned n = q->n;              /* ios held from done() wait for next time */
    while (n && q->due_ns[q->head] <= now) {
        struct engine_io *io = q->io[q->head];
        q->head = (q->head + 1) % q->cap;
        q->n--;
        n--;
        done(io, arg);
        total++;
    }
    struct itimerspec its = { { 0, 0 }, { 0, 0 } };
    if (q->n) {
        uint64_t due = q->due_ns[q->head];
        its.it_value.tv_sec = (time_t)(due / 1000000000ull);
        its.it_value.tv_nsec = (long)(due % 1000000000ull);
        if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
            its.it_value.tv_nsec = 1;
    }
    timerfd_settime(q->tfd, TFD_TIMER_ABSTIME, &its, NULL);
    return total;
}

static const struct engine_ops engine_delay = {
    .size = sizeof(struct engine_ops),
    .version = ENGINE_OPS_VERSION,
    .name = "delay",
    .open = delay_open,
    .close = delay_close,
    .queue_open = delay_queue_open,
    .queue_close = delay_queue_close,
    .queue_io = delay_queue_io,
    .submit = delay_submit,
    .completion_fd = delay_completion_fd,
    .reap = delay_reap,
    .get_size = delay_get_size,
};
