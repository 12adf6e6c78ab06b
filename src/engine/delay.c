/*
 * delay.c - filter engine "delay:[w]<usec>:<inner>": every I/O completion of
 * the inner engine (with `w`: of every WRITE only, so reads overtake older
 * writes, as with a dm-delay target that delays writes) is held back `usec`
 * microseconds before it is reported (cf. nbdkit filters/delay).  Used to
 * test timeouts, dp_stop with I/O in flight, queue depth and out-of-order
 * completions.  Test builds and --allow-test-engines only.
 */
#include "engine.h"
#include "engine_priv.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

struct delay_engine {
    struct eng_filter_engine fe;
    uint64_t usec;
    bool writes_only;
};

struct delay_queue {
    struct eng_filter_queue fq;
    unsigned cap, head, n;          /* FIFO of completed I/Os, ordered by due time */
    struct engine_io **io;
    uint64_t *due_ns;               /* CLOCK_MONOTONIC */
    int tfd;
    engine_done_fn done;            /* of the reap in progress: undelayed completions */
    void *done_arg;
    int passed;                     /* completions reported at once in that reap */
};

static const struct delay_engine *delay_of(const struct delay_queue *q)
{
    return (const struct delay_engine *)q->fq.e;
}

static void delay_queue_fini(struct eng_filter_queue *fq)
{
    struct delay_queue *q = (struct delay_queue *)fq;
    if (q->tfd >= 0)
        close(q->tfd);
    free(q->io);
    free(q->due_ns);
}

static int delay_queue_init(struct eng_filter_queue *fq, unsigned depth)
{
    struct delay_queue *q = (struct delay_queue *)fq;
    q->tfd = -1;
    q->cap = depth ? depth : 1;
    q->io = calloc(q->cap, sizeof(*q->io));
    q->due_ns = calloc(q->cap, sizeof(*q->due_ns));
    if (!q->io || !q->due_ns)
        return -ENOMEM;
    q->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (q->tfd < 0)
        return -errno;
    return eng_filter_watch(fq, q->tfd);
}

/* Inner completion: hold it until now + usec. */
static void delay_hold(struct engine_io *io, void *arg)
{
    struct delay_queue *q = arg;
    if (delay_of(q)->writes_only && io->op != ENGINE_OP_WRITE) {
        q->passed++;
        q->done(io, q->done_arg);
        return;
    }
    unsigned i = (q->head + q->n) % q->cap;
    if (q->n == q->cap)
        return;                     /* cannot happen: inner depth == cap */
    q->io[i] = io;
    q->due_ns[i] = xbd_now_ns() + delay_of(q)->usec * 1000ull;
    q->n++;
}

static int delay_reap(struct eng_filter_queue *fq, engine_done_fn done, void *arg)
{
    struct delay_queue *q = (struct delay_queue *)fq;
    uint64_t v;
    if (read(q->tfd, &v, sizeof(v)) < 0) {
        /* EAGAIN: timer did not fire */
    }
    q->done = done;
    q->done_arg = arg;
    q->passed = 0;
    int rc = fq->e->inner->ops->reap(fq->inner, delay_hold, q);
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

/* queue_io, submit and get_size: the inner engine's. */
static const struct eng_filter delay_filter = {
    ENG_FILTER_STATE("delay", delay),
    .reap = delay_reap,
};

int engine_delay_open(struct engine *inner, uint64_t usec, bool writes_only, struct engine **out)
{
    struct eng_filter_engine *fe;
    int rc = eng_filter_open(&delay_filter, inner, &fe);
    if (rc < 0)
        return rc;
    struct delay_engine *f = (struct delay_engine *)fe;
    f->usec = usec;
    f->writes_only = writes_only;
    *out = &fe->base;
    return 0;
}
