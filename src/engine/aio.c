/*
 * aio.c - the "aio" storage engine: a regular file or a block device driven
 * by Linux native AIO (libaio), one AIO context per engine queue.  The
 * fallback of the default engine where io_uring is unavailable
 * (src/engine/default.c); selected explicitly with params "aio:<path>".
 *
 *   READ/WRITE   IOCB_CMD_PREADV/PWRITEV, every iocb signalling the queue's
 *                eventfd (io_set_eventfd), which is the completion fd.
 *   FLUSH        fdatasync(2) in the queue's worker thread: IOCB_CMD_FDSYNC
 *                is refused (EINVAL) by most filesystems and block devices.
 *   DISCARD      files: fallocate PUNCH_HOLE|KEEP_SIZE; block devices:
 *                BLKDISCARD; in the worker thread as well.
 *   SECURE_DISCARD  block devices only: BLKSECDISCARD (worker thread).
 *
 * The worker is one thread per queue, started at the first FLUSH or DISCARD
 * and joined at queue_close; it runs its jobs one at a time in the order they
 * were submitted and reports them through the same eventfd.  So the queue
 * thread never blocks on a flush or a discard.
 *
 * Native AIO is asynchronous only with O_DIRECT; on a store opened buffered
 * (filesystem refused O_DIRECT, or direct I/O not wanted) io_submit does the
 * reads and writes before it returns.  Open rules, size and caps: store.c
 * (the same as the uring engine).  Short transfers are reported as -EIO.
 */
#include "engine.h"
#include "engine_priv.h"
#include "util.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <libaio.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

struct aio_queue {
    struct eng_store_engine *e;
    io_context_t ctx;
    int efd;                    /* eventfd: AIO completions and worker results */
    unsigned depth, busy;       /* busy: queued + in flight (AIO, worker, done) */
    struct iocb *cbs;           /* depth iocbs */
    struct iocb **free_cb;      /* stack of unused iocbs */
    unsigned nfree;
    struct iocb **pend;         /* queued, not yet io_submit'ed */
    unsigned npend;
    unsigned in_kernel;         /* io_submit'ed, not reaped */
    struct io_event *ev;        /* depth events */
    struct engine_io **stage;   /* queued for the worker, not yet submitted */
    unsigned nstage;
    struct engine_io **scratch; /* reap: completions collected before done() */

    /* shared with the worker, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct engine_io **jobs;    /* FIFO of depth */
    unsigned jhead, jn;
    struct engine_io **fin;     /* completed outside the kernel, result set */
    unsigned nfin;
    bool stop;
    bool worker;                /* thread started */
    pthread_t thr;
};

static int aio_open(const struct engine_params *p, struct engine **out)
{
    struct engine *e;
    int rc = eng_store_engine_open(p, &engine_aio, &e);
    if (rc < 0)
        return rc;
    e->caps.exit_drains_io = true;          /* fs/aio.c exit_aio (engine.h) */
    *out = e;
    return 0;
}

/* Completed outside the kernel (worker, or at once): report through fin. */
static void finish(struct aio_queue *q, struct engine_io *io)
{
    pthread_mutex_lock(&q->mu);
    q->fin[q->nfin++] = io;             /* nfin <= busy <= depth */
    pthread_mutex_unlock(&q->mu);
    eng_efd_signal(q->efd);
}

static void run_job(struct aio_queue *q, struct engine_io *io)
{
    struct eng_store_engine *a = q->e;
    uint64_t range[2] = { io->offset, io->len };
    switch (io->op) {
    case ENGINE_OP_FLUSH:
        io->result = fdatasync(a->fd) < 0 ? -errno : 0;
        break;
    case ENGINE_OP_DISCARD:
        if (a->base.is_blockdev)
            io->result = ioctl(a->fd, BLKDISCARD, range) < 0 ? -errno : 0;
        else
            io->result = fallocate(a->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                   (off_t)io->offset, (off_t)io->len) < 0 ? -errno : 0;
        break;
    case ENGINE_OP_SECURE_DISCARD:
        io->result = ioctl(a->fd, BLKSECDISCARD, range) < 0 ? -errno : 0;
        break;
    default:
        io->result = -EINVAL;
        break;
    }
}

static void *worker_main(void *arg)
{
    struct aio_queue *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->jn && !q->stop)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->stop)
            break;
        struct engine_io *io = q->jobs[q->jhead];
        q->jhead = (q->jhead + 1) % q->depth;
        q->jn--;
        pthread_mutex_unlock(&q->mu);
        run_job(q, io);
        finish(q, io);
        pthread_mutex_lock(&q->mu);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* Start the worker with every signal blocked (signals are the main loop's). */
static int worker_start(struct aio_queue *q)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&q->thr, NULL, worker_main, q);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc)
        return -rc;
    pthread_setname_np(q->thr, "xbd-aio-sync");
    q->worker = true;
    return 0;
}

static void queue_free(struct aio_queue *q)
{
    free(q->cbs);
    free(q->free_cb);
    free(q->pend);
    free(q->ev);
    free(q->stage);
    free(q->scratch);
    free(q->jobs);
    free(q->fin);
    free(q);
}

static int aio_queue_open(struct engine *e, unsigned depth, struct engine_queue **out)
{
    struct aio_queue *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    if (depth == 0)
        depth = 1;
    q->e = (struct eng_store_engine *)e;
    q->depth = depth;
    q->efd = -1;
    q->cbs = calloc(depth, sizeof(*q->cbs));
    q->free_cb = calloc(depth, sizeof(*q->free_cb));
    q->pend = calloc(depth, sizeof(*q->pend));
    q->ev = calloc(depth, sizeof(*q->ev));
    q->stage = calloc(depth, sizeof(*q->stage));
    q->scratch = calloc(depth, sizeof(*q->scratch));
    q->jobs = calloc(depth, sizeof(*q->jobs));
    q->fin = calloc(depth, sizeof(*q->fin));
    if (!q->cbs || !q->free_cb || !q->pend || !q->ev || !q->stage || !q->scratch || !q->jobs ||
        !q->fin) {
        queue_free(q);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < depth; i++)
        q->free_cb[i] = &q->cbs[depth - 1 - i];
    q->nfree = depth;
    int rc = io_setup((int)depth, &q->ctx);     /* libaio: 0 or -errno */
    if (rc < 0) {
        queue_free(q);
        return rc;
    }
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->efd < 0) {
        rc = -errno;
        io_destroy(q->ctx);
        queue_free(q);
        return rc;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    /* The worker of flushes and discards starts here, in the control plane,
     * not at the first flush: a confined queue thread may not create
     * threads (include/confine.h). */
    rc = worker_start(q);
    if (rc < 0) {
        close(q->efd);
        io_destroy(q->ctx);
        queue_free(q);
        return rc;
    }
    *out = (struct engine_queue *)q;
    return 0;
}

/* Collect completed AIO events into q->scratch[*k]; -errno of io_getevents. */
static int collect_events(struct aio_queue *q, unsigned *k, long min_nr, struct timespec *ts)
{
    if (!q->in_kernel)
        return 0;
    int n = io_getevents(q->ctx, min_nr, (long)q->in_kernel, q->ev, ts);
    if (n < 0)
        return n;
    for (int i = 0; i < n; i++) {
        struct engine_io *io = q->ev[i].data;
        long res = (long)q->ev[i].res;
        if (res >= 0 && (uint64_t)res != io->len)
            res = -EIO;                 /* short transfer */
        io->result = res;
        q->free_cb[q->nfree++] = q->ev[i].obj;
        q->scratch[(*k)++] = io;
    }
    q->in_kernel -= (unsigned)n;
    return n;
}

static void aio_queue_close(struct engine_queue *eq)
{
    struct aio_queue *q = (struct aio_queue *)eq;
    if (!q)
        return;
    if (q->worker) {
        /* The running job finishes; jobs not started are dropped (the caller
         * has stopped caring about the results). */
        pthread_mutex_lock(&q->mu);
        q->stop = true;
        pthread_cond_signal(&q->cv);
        pthread_mutex_unlock(&q->mu);
        pthread_join(q->thr, NULL);
    }
    /* In-flight AIO: wait for it (1 s); io_destroy then waits for the rest
     * (the kernel's kill_ioctx waits for every request of the context). */
    uint64_t end = xbd_now_ns() + 1000000000ull;
    while (q->in_kernel) {
        struct timespec ts;
        int64_t left = (int64_t)(end - xbd_now_ns());
        if (left <= 0)
            break;
        ts.tv_sec = (time_t)(left / 1000000000);
        ts.tv_nsec = (long)(left % 1000000000);
        unsigned k = 0;
        int rc = collect_events(q, &k, (long)q->in_kernel, &ts);
        if (rc < 0 && rc != -EINTR)
            break;
    }
    if (q->in_kernel)
        log_dev(LOG_WARNING, &q->e->dev, LOG_NO_QUEUE,
                "%u I/O still in flight after 1 s at queue close", q->in_kernel);
    io_destroy(q->ctx);
    close(q->efd);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    queue_free(q);
}

static int aio_queue_io(struct engine_queue *eq, struct engine_io *io)
{
    struct aio_queue *q = (struct aio_queue *)eq;
    struct eng_store_engine *a = q->e;

    if (q->busy >= q->depth)
        return -EBUSY;
    switch (io->op) {
    case ENGINE_OP_READ:
    case ENGINE_OP_WRITE: {
        struct iocb *cb = q->free_cb[--q->nfree];   /* nfree >= depth - busy > 0 */
        if (io->op == ENGINE_OP_READ)
            io_prep_preadv(cb, a->fd, io->iov, (int)io->iovcnt, (long long)io->offset);
        else
            io_prep_pwritev(cb, a->fd, io->iov, (int)io->iovcnt, (long long)io->offset);
        io_set_eventfd(cb, q->efd);
        cb->data = io;
        q->pend[q->npend++] = cb;
        break;
    }
    case ENGINE_OP_SECURE_DISCARD:
        if (!a->base.is_blockdev) {
            io->result = -EOPNOTSUPP;
            finish(q, io);
            break;
        }
        /* fall through */
    case ENGINE_OP_FLUSH:
    case ENGINE_OP_DISCARD:
        q->stage[q->nstage++] = io;
        break;
    default:
        io->result = -EINVAL;
        finish(q, io);
        break;
    }
    q->busy++;
    return 0;
}

static int aio_submit(struct engine_queue *eq)
{
    struct aio_queue *q = (struct aio_queue *)eq;
    int started = 0;

    if (q->nstage) {
        int rc = q->worker ? 0 : -EIO;
        if (rc < 0) {
            for (unsigned i = 0; i < q->nstage; i++) {
                q->stage[i]->result = rc;
                finish(q, q->stage[i]);
            }
        } else {
            pthread_mutex_lock(&q->mu);
            for (unsigned i = 0; i < q->nstage; i++)
                q->jobs[(q->jhead + q->jn++) % q->depth] = q->stage[i];
            pthread_cond_signal(&q->cv);
            pthread_mutex_unlock(&q->mu);
        }
        started += (int)q->nstage;
        q->nstage = 0;
    }
    while (q->npend) {
        int rc = io_submit(q->ctx, (long)q->npend, q->pend);  /* libaio: count or -errno */
        if (rc == -EAGAIN || rc == -EINTR || rc == 0)
            return started ? started : (rc ? rc : -EAGAIN);   /* the rest stays queued */
        unsigned n = 1;
        if (rc > 0) {
            n = (unsigned)rc;
            q->in_kernel += n;
        } else {
            /* The first iocb was refused (e.g. EINVAL): fail that one alone. */
            struct iocb *cb = q->pend[0];
            struct engine_io *io = cb->data;
            io->result = rc;
            q->free_cb[q->nfree++] = cb;
            finish(q, io);
        }
        memmove(q->pend, q->pend + n, (q->npend - n) * sizeof(*q->pend));
        q->npend -= n;
        started += (int)n;
    }
    return started;
}

static int aio_completion_fd(struct engine_queue *eq)
{
    return ((struct aio_queue *)eq)->efd;
}

static int aio_reap(struct engine_queue *eq, engine_done_fn done, void *arg)
{
    struct aio_queue *q = (struct aio_queue *)eq;
    struct timespec zero = { 0, 0 };
    unsigned k = 0;

    eng_efd_drain(q->efd);
    int rc = collect_events(q, &k, 0, &zero);
    pthread_mutex_lock(&q->mu);
    for (unsigned i = 0; i < q->nfin; i++)
        q->scratch[k++] = q->fin[i];
    q->nfin = 0;
    pthread_mutex_unlock(&q->mu);
    if (rc < 0 && !k)
        return rc;
    /* Account first: done() may queue new I/O. */
    q->busy -= k;
    for (unsigned i = 0; i < k; i++)
        done(q->scratch[i], arg);
    return (int)k;
}

const struct engine_ops engine_aio = {
    ENGINE_OPS_REQUIRED("aio", aio, aio_open, eng_store_engine_close),
    .get_size = eng_store_engine_size,
};
