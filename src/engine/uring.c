/*
 * uring.c - the default storage engine: a regular file or a block device
 * driven by one io_uring per engine queue (one per ring queue thread).
 *
 *   READ/WRITE   IORING_OP_READV/WRITEV (READ/WRITE for one iovec)
 *   FLUSH        IORING_OP_FSYNC with IORING_FSYNC_DATASYNC (fdatasync)
 *   DISCARD      files: IORING_OP_FALLOCATE PUNCH_HOLE|KEEP_SIZE;
 *                block devices: BLKDISCARD ioctl, run synchronously in
 *                queue_io (io_uring has no discard op before 6.12); the data
 *                plane splits discards into <= 1 GiB pieces so one call
 *                stalls the queue thread for at most one piece.
 *   SECURE_DISCARD  block devices only: BLKSECDISCARD (synchronous as above).
 *
 * O_DIRECT by default; where the filesystem refuses it (open -> EINVAL, e.g.
 * ramfs) the store is reopened buffered and one warning is logged.
 * Short transfers are reported as -EIO (the store never shrinks under us).
 *
 * Per-I/O cost: the store's fd is a registered (fixed) file, so no
 * fget/fput per SQE; the completion fd is the ring fd itself (readable while
 * the CQ holds entries), so no eventfd is signalled per completion nor read
 * per reap, and reap is two memory loads when nothing completed, which lets
 * the queue reap right after each submit.  I/Os finished inside queue_io
 * (the synchronous ioctls, an unknown op) complete through a NOP SQE whose
 * user_data is tagged (UD_PRESET), so every completion comes out of the CQ.
 *
 * Each ring is restricted to those opcodes, on the registered store only
 * (ring_restrict below): seccomp does not see what io_uring runs.
 *
 * Waiting (queue_open_watch + wait, engine.h version 4): the queue thread's
 * event channel and stop eventfd become registered files 1 and 2, each
 * watched by a one-shot SQE that wait (re)arms, so one io_uring_enter submits
 * the wake-up's I/O and sleeps until the next completion, event or timeout
 * (IORING_ENTER_EXT_ARG), where the queue thread would otherwise make two
 * calls, ppoll and a submit: in a PV dom0 each one is a round trip through
 * the hypervisor.  A watch without read_len is an IORING_OP_POLL_ADD,
 * level-triggered at arming (torvalds/linux:io_uring/poll.c@v6.1
 * __io_arm_poll_handler runs vfs_poll first), as ppoll is: an fd left readable
 * completes its next poll at once.  One with read_len is an IORING_OP_READ of
 * that many bytes: on a non-blocking fd io_uring tries it at once and, on
 * EAGAIN, polls the fd and retries it from task work (io_uring/rw.c@v6.1
 * io_read, "any ->read/write should understand O_NONBLOCK" in
 * io_uring/io_uring.c __io_file_supports_nowait), so the event channel's port
 * is read with no system call of ours; watch_write's bytes (its unmask) go
 * out as an IORING_OP_WRITE in the same submit.  A read that completes while
 * the caller is busy (seen by reap) is kept for the next wait, never lost:
 * unlike a poll, a read consumes what it reports.
 */
#include "engine.h"
#include "util.h"
#include "engine_priv.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

struct uring_queue {
    struct eng_store_engine *e;
    struct io_uring ring;
    unsigned depth, busy;       /* busy: queued + in flight */
    unsigned unsubmitted;
    bool fixed_file;            /* the store's fd is registered as file 0 */
    bool restricted;            /* IORING_REGISTER_RESTRICTIONS took (ring_restrict) */
    unsigned nwatch;            /* watched fds: registered files 1..nwatch */
    unsigned armed;             /* bit i: watch i's poll or read is in flight */
    unsigned fired;             /* bit i: it completed, not reported by a wait yet */
    unsigned reported;          /* bit i: reported by the last wait (watch_read) */
    unsigned wqueued, wbusy;    /* bit i: watch i's write queued / in flight */
    struct uring_watch {
        unsigned read_len;      /* 0: poll */
        int res;                /* of the last read: bytes or -errno */
        unsigned wlen;
        uint8_t buf[ENGINE_WATCH_BUF], wbuf[ENGINE_WATCH_BUF];
    } w[ENGINE_WATCH_MAX];
};

/* The store is opened and probed by eng_store_open (src/engine/store.c):
 * O_DIRECT with a buffered fallback, size, block sizes, flush/discard caps. */
static int uring_open(const struct engine_params *p, struct engine **out)
{
    return eng_store_engine_open(p, &engine_uring, out);
}

/*
 * Ring setup: SUBMIT_ALL (keep submitting past a failed SQE), CQSIZE =
 * 2 * depth, COOP_TASKRUN|TASKRUN_FLAG; each flag dropped in turn on kernels
 * that do not know it (-EINVAL: COOP_TASKRUN and TASKRUN_FLAG are 5.19,
 * SUBMIT_ALL 5.18).
 *
 * COOP_TASKRUN: a completion's task work (every io-wq completion frees its
 * request through one; a block device's IRQ completion posts its CQE through
 * one) is added with TWA_SIGNAL_NO_IPI instead of TWA_SIGNAL, so the worker
 * or IRQ does not kick_process() the queue thread with a rescheduling IPI
 * while it runs (torvalds/linux:io_uring/io_uring.c@v6.1 io_req_task_work_add,
 * ctx->notify_method).  A queue thread asleep in ppoll() is still woken:
 * __set_notify_signal() sets TIF_NOTIFY_SIGNAL and wakes an interruptible
 * sleeper either way (torvalds/linux:include/linux/sched/signal.h@v6.1), its
 * ppoll returns through the task work and restarts; a running one runs the
 * work at its next system call.  TASKRUN_FLAG marks such pending work in the
 * SQ flags, where liburing's peek (our reap) sees it and enters the kernel
 * once to run it (cq_ring_needs_flush).  On tmpfs, where every read goes to an
 * io-wq worker, the IPIs were 10 % of all the CPU samples of a 4 KiB randread
 * (x2apic_send_IPI in the workers, the IPI handler in the queue threads).
 * Not used: SINGLE_ISSUER|DEFER_TASKRUN.  Its task work wakes only a thread
 * waiting in io_uring_enter, not one in poll() (the queue thread also waits
 * for the event channel); behind an eventfd a request was seen never answered
 * on 6.18.
 */
static int ring_init(struct uring_queue *q, unsigned depth, unsigned extra)
{
    static const unsigned variants[] = {
        IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_SUBMIT_ALL,
        0,
    };
    int rc = -EINVAL;
    for (unsigned i = 0; i < ARRAY_SIZE(variants); i++) {
        struct io_uring_params prm;
        memset(&prm, 0, sizeof(prm));
        prm.flags = variants[i] | IORING_SETUP_CQSIZE | extra;
        prm.cq_entries = (depth + 2 * q->nwatch) * 2;
        rc = io_uring_queue_init_params(depth + 2 * q->nwatch, &q->ring, &prm);
        if (rc != -EINVAL)
            return rc;
    }
    return rc;
}

/*
 * Ring restrictions (xen-blkbackd(8) CONFINEMENT): seccomp does not see the
 * operations io_uring runs, so each ring is created disabled
 * (IORING_SETUP_R_DISABLED) and, before it is enabled, limited to the
 * opcodes uring_queue_io and uring_queue_close submit, to IOSQE_FIXED_FILE
 * on every SQE (required, no other flag allowed: only the store, the one
 * registered file, is reachable) and to the one register call made after
 * enabling (UNREGISTER_FILES at queue close).  Registering the store's file
 * needs no entry: restrictions apply from enable on, and only a disabled
 * ring takes them (torvalds/linux:io_uring/register.c@001b76b7e7
 * io_register_restrictions, io_register_enable_rings, __io_uring_register:
 * a refused register call is -EACCES; io_uring/io_uring.c
 * io_check_restriction: a refused SQE completes with -EACCES).  Costs
 * nothing per I/O (a bit test at SQE init).  Kernels before 5.10 have none
 * of it (setup -EINVAL with R_DISABLED): one notice, rings unrestricted.
 */
static const uint8_t ring_sqe_ops[] = {
    IORING_OP_READ, IORING_OP_READV, IORING_OP_WRITE, IORING_OP_WRITEV,
    IORING_OP_FSYNC, IORING_OP_FALLOCATE,
    IORING_OP_NOP,                      /* completions of I/O done in queue_io */
    IORING_OP_ASYNC_CANCEL,             /* queue close with I/O in flight */
    IORING_OP_POLL_ADD,                 /* wait: the watched fds (last: only when used) */
};

/* One notice per process where a ring is less restricted than designed. */
static void restrict_notice(struct uring_queue *q, const char *what, int rc)
{
    static bool said;                   /* atomic */
    if (!__atomic_exchange_n(&said, true, __ATOMIC_RELAXED))
        log_dev(LOG_NOTICE, &q->e->dev, LOG_NO_QUEUE, "io_uring rings %s (%s); further rings "
                "are not reported", what, strerror(-rc));
}

/* io_uring_register(2) itself: liburing 2.3 (Debian 12) declares
 * io_uring_register_restrictions and io_uring_enable_rings but does not
 * export them from liburing.so.2 (nm -D). */
static int ring_register(struct uring_queue *q, unsigned op, void *arg, unsigned n)
{
    return syscall(__NR_io_uring_register, q->ring.ring_fd, op, arg, n) < 0 ? -errno : 0;
}

/* Restrict q's ring (created with R_DISABLED when `disabled`) and enable
 * it.  0, or the -errno of IORING_REGISTER_ENABLE_RINGS (the ring is unusable). */
static int ring_restrict(struct uring_queue *q, bool disabled)
{
    if (!disabled) {
        restrict_notice(q, "not restricted: the kernel refuses IORING_SETUP_R_DISABLED "
                        "(before 5.10)", -EINVAL);
        return 0;
    }
    struct io_uring_restriction res[ARRAY_SIZE(ring_sqe_ops) + 3];
    unsigned n = 0;
    memset(res, 0, sizeof(res));
    for (unsigned i = 0; i < ARRAY_SIZE(ring_sqe_ops) - (q->nwatch ? 0 : 1); i++) {
        res[n].opcode = IORING_RESTRICTION_SQE_OP;
        res[n++].sqe_op = ring_sqe_ops[i];
    }
    res[n].opcode = IORING_RESTRICTION_REGISTER_OP;
    res[n++].register_op = IORING_UNREGISTER_FILES;
    res[n].opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
    res[n++].sqe_flags = 0;
    if (q->fixed_file) {
        res[n].opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED;
        res[n++].sqe_flags = IOSQE_FIXED_FILE;
    }
    int rc = ring_register(q, IORING_REGISTER_RESTRICTIONS, res, n);
    if (rc < 0)
        restrict_notice(q, "not restricted: IORING_REGISTER_RESTRICTIONS failed", rc);
    else if (!q->fixed_file)
        restrict_notice(q, "restricted to the engine's opcodes only: the store could not be "
                        "registered, so SQEs may name any fd", -EBADF);
    q->restricted = rc == 0;
    return ring_register(q, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
}

/* queue_open with nwatch watched fds (0: plain queue_open).  Watching needs
 * the registered files (the ring requires fixed files) and EXT_ARG waits
 * (liburing would otherwise add a TIMEOUT SQE, which the ring refuses):
 * -EOPNOTSUPP without them. */
static int queue_open_fds(struct engine *e, unsigned depth, const struct engine_watch *w,
                          unsigned nwatch, struct engine_queue **out)
{
    if (nwatch > ENGINE_WATCH_MAX)
        return -EINVAL;
    for (unsigned i = 0; i < nwatch; i++)
        if (w[i].read_len > ENGINE_WATCH_BUF)
            return -EINVAL;
    struct uring_queue *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    if (depth == 0)
        depth = 1;
    q->e = (struct eng_store_engine *)e;
    q->depth = depth;
    q->nwatch = nwatch;
    for (unsigned i = 0; i < nwatch; i++)
        q->w[i].read_len = w[i].read_len;
    int rc = ring_init(q, depth, IORING_SETUP_R_DISABLED);
    bool disabled = rc != -EINVAL;
    if (!disabled)
        rc = ring_init(q, depth, 0);    /* before 5.10 */
    if (rc < 0)
        goto fail;
    if (nwatch && !(q->ring.features & IORING_FEAT_EXT_ARG)) {
        rc = -EOPNOTSUPP;
        goto fail_ring;
    }
    /* The store's fd as fixed file 0: no fget/fput per I/O.  Optional
     * without watched fds. */
    int files[1 + ENGINE_WATCH_MAX] = { q->e->fd };
    for (unsigned i = 0; i < nwatch; i++)
        files[1 + i] = w[i].fd;
    if (io_uring_register_files(&q->ring, files, 1 + nwatch) == 0)
        q->fixed_file = true;
    else if (nwatch) {
        rc = -EOPNOTSUPP;
        goto fail_ring;
    }
    rc = ring_restrict(q, disabled);
    if (rc < 0) {
        io_uring_queue_exit(&q->ring);
        goto fail;
    }
    *out = (struct engine_queue *)q;
    return 0;
fail_ring:
    io_uring_queue_exit(&q->ring);
fail:
    free(q);
    return rc;
}

static int uring_queue_open(struct engine *e, unsigned depth, struct engine_queue **out)
{
    return queue_open_fds(e, depth, NULL, 0, out);
}

static int uring_queue_open_watch(struct engine *e, unsigned depth, const struct engine_watch *w,
                                  unsigned nw, struct engine_queue **out)
{
    return queue_open_fds(e, depth, w, nw, out);
}

/* Tagged user_data: bit 0 set = result already in io->result (a synchronous
 * ioctl or an unknown op completed through a NOP).  Values below UD_IO_MIN
 * are no engine_io: 0 a cancel request (or a watch CQE wait has taken),
 * UD_WATCH(i) the poll or read of watch i, UD_WWRITE(i) its write. */
#define UD_PRESET 1ul
#define UD_WATCH(i) (((uintptr_t)(i) + 1) << 4)
#define UD_WWRITE(i) (UD_WATCH(i) | 8u)
#define UD_IO_MIN 4096u

/* A CQE that is no I/O: a watch's poll or read completed (one-shot: disarmed
 * now; fired unless cancelled: the read's bytes stay in w[i].buf until a
 * wait has reported them), its write completed, or a cancel request. */
static void watch_cqe(struct uring_queue *q, uintptr_t ud, int res)
{
    if (!ud)
        return;
    unsigned i = (unsigned)(ud >> 4) - 1;
    if (i >= q->nwatch)
        return;
    if (ud & 8u) {
        q->wbusy &= ~(1u << i);
        if (res < 0) {
            static bool said;           /* atomic */
            if (!__atomic_exchange_n(&said, true, __ATOMIC_RELAXED))
                log_dev(LOG_ERR, &q->e->dev, LOG_NO_QUEUE, "io_uring: write to watched fd %u: "
                        "%s (further failures are not reported)", i, strerror(-res));
        }
        return;
    }
    q->armed &= ~(1u << i);
    if (res == -ECANCELED)
        return;
    q->w[i].res = res;
    q->fired |= 1u << i;
}

static void uring_queue_close(struct engine_queue *eq)
{
    struct uring_queue *q = (struct uring_queue *)eq;
    if (!q)
        return;
    if (q->busy || q->armed || q->wbusy) {
        /* In-flight I/O or polls: cancel what can be cancelled, wait
         * (bounded) for the rest; the caller has stopped caring about the
         * results.  An armed poll must go before the files are unregistered
         * (on 6.1 unregistering waits for every request using them). */
        struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
        if (sqe) {
            io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
            io_uring_sqe_set_data(sqe, NULL);
            if (q->fixed_file)
                sqe->flags |= IOSQE_FIXED_FILE; /* the ring requires it (ring_restrict) */
        }
        io_uring_submit(&q->ring);
        for (int tries = 0; tries < 10 && (q->busy || q->armed || q->wbusy); tries++) {
            struct __kernel_timespec ts = { 0, 50 * 1000 * 1000 };   /* <= 0.5 s in all */
            struct io_uring_cqe *cqe;
            if (io_uring_wait_cqe_timeout(&q->ring, &cqe, &ts) < 0)
                continue;
            unsigned head, n = 0;
            io_uring_for_each_cqe(&q->ring, head, cqe) {
                uintptr_t ud = (uintptr_t)io_uring_cqe_get_data(cqe);
                if (ud >= UD_IO_MIN)
                    q->busy--;
                else
                    watch_cqe(q, ud, cqe->res);
                n++;
            }
            io_uring_cq_advance(&q->ring, n);
        }
        if (q->busy)
            log_dev(LOG_WARNING, &q->e->dev, LOG_NO_QUEUE, "%u I/O still in flight at queue close",
                    q->busy);
    }
    /* The registered file is a reference to the store's open file
     * description, and so keeps its lock (src/engine/lock.c).  The ring is
     * torn down asynchronously (a kernel work item) after the ring fd is
     * closed, which would keep the store locked for a while after the
     * device is gone; unregistering drops that reference now (once no
     * request uses it: I/O still in flight keeps it, as it must). */
    if (q->fixed_file)
        io_uring_unregister_files(&q->ring);
    io_uring_queue_exit(&q->ring);
    free(q);
}

/* An I/O completed inside queue_io (result set): reported through a NOP so
 * that every completion comes out of the CQ in order. */
static void prep_preset(struct io_uring_sqe *sqe, struct engine_io *io)
{
    io_uring_prep_nop(sqe);
    io_uring_sqe_set_data(sqe, (void *)((uintptr_t)io | UD_PRESET));
}

static void sync_ioctl(struct uring_queue *q, struct engine_io *io, unsigned long req)
{
    uint64_t range[2] = { io->offset, io->len };
    io->result = ioctl(q->e->fd, req, range) < 0 ? -errno : 0;
}

static int uring_queue_io(struct engine_queue *eq, struct engine_io *io)
{
    struct uring_queue *q = (struct uring_queue *)eq;
    struct eng_store_engine *u = q->e;

    if (q->busy >= q->depth)
        return -EBUSY;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
    if (!sqe)
        return -EBUSY;
    int fd = q->fixed_file ? 0 : u->fd;
    switch (io->op) {
    case ENGINE_OP_READ:
        if (io->iovcnt == 1)
            io_uring_prep_read(sqe, fd, io->iov[0].iov_base, (unsigned)io->iov[0].iov_len, io->offset);
        else
            io_uring_prep_readv(sqe, fd, io->iov, io->iovcnt, io->offset);
        break;
    case ENGINE_OP_WRITE:
        if (io->iovcnt == 1)
            io_uring_prep_write(sqe, fd, io->iov[0].iov_base, (unsigned)io->iov[0].iov_len, io->offset);
        else
            io_uring_prep_writev(sqe, fd, io->iov, io->iovcnt, io->offset);
        break;
    case ENGINE_OP_FLUSH:
        io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
        break;
    case ENGINE_OP_DISCARD:
        if (u->base.is_blockdev) {
            sync_ioctl(q, io, BLKDISCARD);
            prep_preset(sqe, io);
            goto queued;
        }
        io_uring_prep_fallocate(sqe, fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                io->offset, io->len);
        break;
    case ENGINE_OP_SECURE_DISCARD:
        if (u->base.is_blockdev)
            sync_ioctl(q, io, BLKSECDISCARD);
        else
            io->result = -EOPNOTSUPP;
        prep_preset(sqe, io);
        goto queued;
    default:
        io->result = -EINVAL;           /* keep the SQ consistent; fail at reap */
        prep_preset(sqe, io);
        goto queued;
    }
    io_uring_sqe_set_data(sqe, io);
queued:
    if (q->fixed_file)
        sqe->flags |= IOSQE_FIXED_FILE; /* every SQE, NOPs too: the ring requires it */
    q->busy++;
    q->unsubmitted++;
    return 0;
}

static int uring_submit(struct engine_queue *eq)
{
    struct uring_queue *q = (struct uring_queue *)eq;
    if (!q->unsubmitted)
        return 0;
    int rc = io_uring_submit(&q->ring);
    if (rc < 0)
        return rc;
    q->unsubmitted = (unsigned)rc >= q->unsubmitted ? 0 : q->unsubmitted - (unsigned)rc;
    return rc;
}

/* The ring's own fd: poll() reports POLLIN while the CQ holds entries, so
 * there is no eventfd to signal per completion nor to drain per reap, and
 * reaping when nothing completed costs two memory loads. */
static int uring_completion_fd(struct engine_queue *eq)
{
    return ((struct uring_queue *)eq)->ring.ring_fd;
}

/* Memory loads only: CQ entries posted, or completion task work waiting
 * (COOP_TASKRUN|TASKRUN_FLAG, see ring_init) that reap's peek runs by
 * entering once; a CQ overflow likewise. */
static bool uring_completions_ready(struct engine_queue *eq)
{
    struct uring_queue *q = (struct uring_queue *)eq;
    return io_uring_cq_ready(&q->ring) ||
           (__atomic_load_n(q->ring.sq.kflags, __ATOMIC_RELAXED) &
            (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW));
}

#define REAP_BATCH 64

static int uring_reap(struct engine_queue *eq, engine_done_fn done, void *arg)
{
    struct uring_queue *q = (struct uring_queue *)eq;
    struct io_uring_cqe *cqes[REAP_BATCH];
    int total = 0;

    for (;;) {
        unsigned n = io_uring_peek_batch_cqe(&q->ring, cqes, REAP_BATCH);
        if (!n)
            break;
        struct engine_io *ios[REAP_BATCH];
        unsigned k = 0;
        for (unsigned i = 0; i < n; i++) {
            uintptr_t ud = (uintptr_t)io_uring_cqe_get_data(cqes[i]);
            struct engine_io *io = (struct engine_io *)(ud & ~UD_PRESET);
            if (ud < UD_IO_MIN) {
                watch_cqe(q, ud, cqes[i]->res);     /* kept for the next wait */
                continue;
            }
            if (!(ud & UD_PRESET)) {
                int res = cqes[i]->res;
                if (res >= 0 && (io->op == ENGINE_OP_READ || io->op == ENGINE_OP_WRITE) &&
                    (uint64_t)res != io->len)
                    res = -EIO;         /* short transfer */
                io->result = res;
            }
            ios[k++] = io;
        }
        io_uring_cq_advance(&q->ring, n);
        q->busy -= k;
        for (unsigned i = 0; i < k; i++)
            done(ios[i], arg);
        total += (int)k;
        if (n < REAP_BATCH)
            break;
    }
    return total;
}

/* Advance the CQ past the entries at its head that are no I/O (watches,
 * cancels; recorded by watch_cqe): left there, they would make the next wait
 * return at once.  Those behind an I/O CQE are recorded and skipped by reap. */
static void skip_taken(struct uring_queue *q)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&q->ring, head, cqe) {
        uintptr_t ud = (uintptr_t)io_uring_cqe_get_data(cqe);
        if (ud >= UD_IO_MIN)
            break;
        watch_cqe(q, ud, cqe->res);
        n++;
    }
    if (n)
        io_uring_cq_advance(&q->ring, n);
}

/* Queue each watch's write, then its poll or read, where due. */
static void arm_watches(struct uring_queue *q)
{
    for (unsigned i = 0; i < q->nwatch; i++) {
        unsigned bit = 1u << i;
        struct uring_watch *w = &q->w[i];
        struct io_uring_sqe *sqe;
        if ((q->wqueued & bit) && !(q->wbusy & bit) && (sqe = io_uring_get_sqe(&q->ring))) {
            io_uring_prep_write(sqe, (int)(1 + i), w->wbuf, w->wlen, (uint64_t)-1);
            sqe->flags |= IOSQE_FIXED_FILE;
            io_uring_sqe_set_data(sqe, (void *)UD_WWRITE(i));
            q->wqueued &= ~bit;
            q->wbusy |= bit;
        }
        /* not while a read's bytes wait to be reported */
        if ((q->armed | q->fired) & bit || !(sqe = io_uring_get_sqe(&q->ring)))
            continue;                   /* (no SQE cannot happen: 2 * nwatch are spare) */
        if (w->read_len)
            io_uring_prep_read(sqe, (int)(1 + i), w->buf, w->read_len, (uint64_t)-1);
        else
            io_uring_prep_poll_add(sqe, (int)(1 + i), POLLIN);
        sqe->flags |= IOSQE_FIXED_FILE;
        io_uring_sqe_set_data(sqe, (void *)UD_WATCH(i));
        q->armed |= bit;
    }
}

/* engine.h wait.  The watch CQEs are taken here (their user_data zeroed in
 * the CQ, which is ours to write until advanced), I/O CQEs are left for
 * reap. */
static int uring_wait(struct engine_queue *eq, uint64_t timeout_ns, unsigned *ready)
{
    struct uring_queue *q = (struct uring_queue *)eq;
    *ready = 0;
    q->reported = 0;
    skip_taken(q);
    if (q->fired)
        timeout_ns = 0;                 /* one fired since the last wait */
    arm_watches(q);
    int rc;
    struct io_uring_cqe *cqe;
    if (timeout_ns == 0) {
        rc = io_uring_submit(&q->ring);
    } else {
        struct __kernel_timespec ts = { .tv_sec = (long long)(timeout_ns / 1000000000u),
                                        .tv_nsec = (long long)(timeout_ns % 1000000000u) };
        rc = io_uring_submit_and_wait_timeout(&q->ring, &cqe, 1,
                                              timeout_ns == UINT64_MAX ? NULL : &ts, NULL);
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN)
        return rc;
    q->unsubmitted = 0;                 /* SUBMIT_ALL, or the rest failed */
    unsigned head;
    io_uring_for_each_cqe(&q->ring, head, cqe) {
        uintptr_t ud = (uintptr_t)io_uring_cqe_get_data(cqe);
        if (ud && ud < UD_IO_MIN) {
            watch_cqe(q, ud, cqe->res);
            cqe->user_data = 0;
        }
    }
    skip_taken(q);
    *ready = q->reported = q->fired;
    q->fired = 0;
    return 0;
}

static ssize_t uring_watch_read(struct engine_queue *eq, unsigned i, void *buf, size_t len)
{
    struct uring_queue *q = (struct uring_queue *)eq;
    if (i >= q->nwatch || !q->w[i].read_len || !(q->reported & (1u << i)))
        return -EAGAIN;
    int res = q->w[i].res;
    if (res < 0)
        return res;
    size_t n = (size_t)res < len ? (size_t)res : len;
    memcpy(buf, q->w[i].buf, n);
    return (ssize_t)n;
}

static int uring_watch_write(struct engine_queue *eq, unsigned i, const void *buf, size_t len)
{
    struct uring_queue *q = (struct uring_queue *)eq;
    if (i >= q->nwatch || len == 0 || len > ENGINE_WATCH_BUF)
        return -EINVAL;
    if ((q->wqueued | q->wbusy) & (1u << i))
        return -EBUSY;
    memcpy(q->w[i].wbuf, buf, len);
    q->w[i].wlen = (unsigned)len;
    q->wqueued |= 1u << i;
    return 0;
}

struct io_uring *eng_uring_ring(struct engine_queue *eq, bool *restricted)
{
    struct uring_queue *q = (struct uring_queue *)eq;
    *restricted = q->restricted;
    return &q->ring;
}

const struct engine_ops engine_uring = {
        ENGINE_OPS_REQUIRED("uring", uring, uring_open, eng_store_engine_close),
    .get_size = eng_store_engine_size,
    .completions_ready = uring_completions_ready,
    .queue_open_watch = uring_queue_open_watch,
    .wait = uring_wait,
    .watch_read = uring_watch_read,
    .watch_write = uring_watch_write,
};
