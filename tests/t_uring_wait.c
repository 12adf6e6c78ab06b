/*
 * The uring engine's wait (engine.h version 4: queue_open_watch + wait;
 * src/engine/uring.c), the call a queue thread sleeps in: on a queue watching
 * a pipe and an eventfd (as the data plane watches the event channel and its
 * stop eventfd):
 *  - nothing readable: wait sleeps for its timeout and reports nothing;
 *  - a watched fd written: wait returns at once with its bit, again at the
 *    next wait while it stays readable (level-triggered, as ppoll), not
 *    after it was drained; the other fd's bit is independent;
 *  - an I/O queued and not submitted: wait submits it and returns when it
 *    completes, reap then finds it (and only it: the watch CQEs are not
 *    handed to reap's callback);
 *  - a timeout of 0 submits and does not sleep;
 *  - a read watch (read_len, as the event channel's when the Xen ops allow):
 *    the bytes written to the pipe come out of watch_read after the wait
 *    that reported it, nothing is read twice, and bytes that arrive while
 *    the caller is busy (the read completes and reap sees its CQE) are
 *    reported by the next wait, not lost; watch_write's bytes reach the fd
 *    (the eventfd's counter) with the next wait, a second one before that is
 *    -EBUSY;
 *  - POLL_ADD is allowed on the watched (registered) files only: on any
 *    other fd, and on a queue opened without watches, it completes -EACCES;
 *  - queue_close with both polls armed returns promptly (they are cancelled
 *    before the files are unregistered).
 * Skips where io_uring or IORING_FEAT_EXT_ARG (5.11) is missing, where
 * queue_open_watch answers -EOPNOTSUPP (checked too).
 */
#include "harness.h"
#include "util.h"
#include "engine.h"
#include "../src/engine/engine_priv.h"
#include "lib/engine_check.h"

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static struct engine_params P = { .direct = true, .name = "t_uring_wait" };

static bool kernel_has_ext_arg(void)
{
    struct io_uring r;
    int rc = io_uring_queue_init(1, &r, 0);
    T_SKIP_IF(rc == -ENOSYS || rc == -EPERM, "io_uring unavailable (%s)", strerror(-rc));
    T_ASSERT(rc == 0, "io_uring_queue_init: %s", strerror(-rc));
    bool ok = r.features & IORING_FEAT_EXT_ARG;
    io_uring_queue_exit(&r);
    return ok;
}

/* wait(timeout_ns): its ready bits; *ms the time it took. */
static unsigned do_wait(struct engine *e, struct engine_queue *q, uint64_t timeout_ns, uint64_t *ms)
{
    unsigned ready = 0xdead;
    uint64_t t0 = xbd_now_ms();
    int rc = e->ops->wait(q, timeout_ns, &ready);
    *ms = xbd_now_ms() - t0;
    T_EQ(rc, 0);
    return ready;
}

struct done_log { unsigned n; struct engine_io *last; };

static void on_done(struct engine_io *io, void *arg)
{
    struct done_log *d = arg;
    d->n++;
    d->last = io;
}

/* A POLL_ADD of our own on the engine's ring: its result. */
static int foreign_poll(struct io_uring *ring, int fd, bool fixed)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    T_ASSERT(sqe, "sqe");
    io_uring_prep_poll_add(sqe, fd, POLLIN);
    if (fixed)
        sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data(sqe, (void *)0x5a5a0000ul);
    T_ASSERT(io_uring_submit(ring) >= 0, "submit");
    struct io_uring_cqe *cqe;
    T_ASSERT(io_uring_wait_cqe(ring, &cqe) == 0, "wait");
    T_EQ((uintptr_t)io_uring_cqe_get_data(cqe), 0x5a5a0000ul);
    int res = cqe->res;
    io_uring_cqe_seen(ring, cqe);
    return res;
}

int main(void)
{
    T_SKIP_IF(!kernel_has_ext_arg(), "kernel without IORING_FEAT_EXT_ARG");
    const char *dir = t_tmpdir(0);
    char *img = ec_make_image(dir, "w.raw", 8 * MiB);
    char spec[600];
    snprintf(spec, sizeof(spec), "uring:%s", img);
    struct engine *e;
    T_ASSERT(engine_open_params(spec, &P, false, &e) == 0, "open %s", spec);
    T_ASSERT(engine_has_wait(e->ops), "the uring engine has no wait");

    int pfd[2];
    T_ASSERT(pipe2(pfd, O_NONBLOCK | O_CLOEXEC) == 0);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    T_ASSERT(efd >= 0);
    struct engine_watch watch[2] = { { .fd = pfd[0] }, { .fd = efd } };
    struct engine_queue *q;
    int rc = e->ops->queue_open_watch(e, 8, watch, 2, &q);
    T_SKIP_IF(rc == -EOPNOTSUPP, "queue_open_watch: not on this kernel");
    T_ASSERT(rc == 0, "queue_open_watch: %s", strerror(-rc));
    uint64_t ms, t0;
    unsigned ready;

    /* nothing readable: the timeout */
    ready = do_wait(e, q, 80 * 1000000ull, &ms);
    T_EQ(ready, 0);
    T_CHECK(ms >= 60, "wait(80 ms) returned after %llu ms", (unsigned long long)ms);

    /* the eventfd written: bit 1, at once; again while it stays readable */
    uint64_t one = 1;
    T_ASSERT(write(efd, &one, sizeof(one)) == sizeof(one));
    ready = do_wait(e, q, 5000 * 1000000ull, &ms);
    T_EQ(ready, 2u);
    T_CHECK(ms < 2000, "readable eventfd: wait took %llu ms", (unsigned long long)ms);
    ready = do_wait(e, q, 5000 * 1000000ull, &ms);
    T_EQ(ready, 2u);
    T_CHECK(ms < 2000, "still readable: wait took %llu ms", (unsigned long long)ms);
    uint64_t v;
    T_ASSERT(read(efd, &v, sizeof(v)) == sizeof(v));
    /* the pipe: bit 0 only */
    T_ASSERT(write(pfd[1], "x", 1) == 1);
    ready = do_wait(e, q, 5000 * 1000000ull, &ms);
    T_EQ(ready, 1u);
    char c;
    T_ASSERT(read(pfd[0], &c, 1) == 1);
    /* drained: the timeout again */
    ready = do_wait(e, q, 50 * 1000000ull, &ms);
    T_EQ(ready, 0);
    T_CHECK(ms >= 30, "drained: wait(50 ms) returned after %llu ms", (unsigned long long)ms);

    /* a queued, unsubmitted read: wait submits it and wakes on its completion */
    struct done_log d = { 0 };
    T_EQ(e->ops->reap(q, on_done, &d), 0);          /* the watch CQEs are no I/O */
    T_EQ(d.n, 0);
    uint8_t *buf = ec_abuf(4096, 0);
    struct iovec iov = { buf, 4096 };
    struct engine_io io = { .op = ENGINE_OP_READ, .offset = 1 * MiB, .len = 4096, .iov = &iov,
                            .iovcnt = 1, .result = INT64_MIN };
    T_EQ(e->ops->queue_io(q, &io), 0);
    for (int i = 0; i < 100 && !d.n; i++) {
        ready = do_wait(e, q, 5000 * 1000000ull, &ms);
        T_EQ(ready, 0);
        T_CHECK(ms < 2000, "read: wait took %llu ms", (unsigned long long)ms);
        T_ASSERT(e->ops->reap(q, on_done, &d) >= 0, "reap");
    }
    T_EQ(d.n, 1);
    T_CHECK(d.last == &io && io.result == 4096, "read result %lld", (long long)io.result);
    uint8_t want[4096];
    int ifd = open(img, O_RDONLY);
    T_ASSERT(ifd >= 0 && pread(ifd, want, sizeof(want), 1 * MiB) == (ssize_t)sizeof(want));
    close(ifd);
    T_CHECK(!memcmp(buf, want, sizeof(want)), "read data differs from the image");

    /* timeout 0: submits a queued write and returns without sleeping */
    io = (struct engine_io){ .op = ENGINE_OP_WRITE, .offset = 2 * MiB, .len = 4096, .iov = &iov,
                             .iovcnt = 1, .result = INT64_MIN };
    T_EQ(e->ops->queue_io(q, &io), 0);
    ready = do_wait(e, q, 0, &ms);
    T_EQ(ready, 0);
    T_CHECK(ms < 1000, "wait(0) took %llu ms", (unsigned long long)ms);
    d.n = 0;
    T_EQ(ec_wait_n(e, q, 1), 1);    /* polls the completion fd: the write was submitted */

    /* a read watch on a second pipe, a poll watch on the eventfd */
    int p2[2];
    T_ASSERT(pipe2(p2, O_NONBLOCK | O_CLOEXEC) == 0);
    struct engine_watch rw[2] = { { .fd = p2[0], .read_len = 4 }, { .fd = efd } };
    struct engine_queue *qr;
    T_ASSERT(e->ops->queue_open_watch(e, 4, rw, 2, &qr) == 0, "queue_open_watch (read)");
    char got[16];
    ready = do_wait(e, qr, 50 * 1000000ull, &ms);
    T_EQ(ready, 0);
    T_EQ(e->ops->watch_read(qr, 0, got, sizeof(got)), -EAGAIN);    /* not fired */
    T_ASSERT(write(p2[1], "port", 4) == 4);
    ready = do_wait(e, qr, 5000 * 1000000ull, &ms);
    T_EQ(ready, 1u);
    ssize_t nr = e->ops->watch_read(qr, 0, got, sizeof(got));
    T_CHECK(nr == 4 && !memcmp(got, "port", 4), "watch_read: %zd", nr);
    T_CHECK(read(p2[0], got, sizeof(got)) < 0 && errno == EAGAIN, "the engine did not read the pipe");
    ready = do_wait(e, qr, 50 * 1000000ull, &ms);       /* read once: nothing more */
    T_EQ(ready, 0);
    T_CHECK(ms >= 30, "read watch, nothing written: wait(50 ms) after %llu ms",
            (unsigned long long)ms);
    /* bytes while the caller is busy: reap takes the read's CQE, the next
     * wait reports it at once */
    T_ASSERT(write(p2[1], "abcd", 4) == 4);
    usleep(50 * 1000);
    d.n = 0;
    T_EQ(e->ops->reap(qr, on_done, &d), 0);
    T_EQ(d.n, 0);
    ready = do_wait(e, qr, 5000 * 1000000ull, &ms);
    T_EQ(ready, 1u);
    T_CHECK(ms < 2000, "kept read: wait took %llu ms", (unsigned long long)ms);
    nr = e->ops->watch_read(qr, 0, got, sizeof(got));
    T_CHECK(nr == 4 && !memcmp(got, "abcd", 4), "kept read: watch_read %zd", nr);
    /* watch_write to the eventfd (watch 1): sent with the next wait */
    uint64_t add = 5;
    T_EQ(e->ops->watch_write(qr, 1, &add, sizeof(add)), 0);
    T_EQ(e->ops->watch_write(qr, 1, &add, sizeof(add)), -EBUSY);
    T_EQ(e->ops->watch_write(qr, 1, &add, ENGINE_WATCH_BUF + 1), -EINVAL);
    T_CHECK(read(efd, &v, sizeof(v)) < 0 && errno == EAGAIN, "written before the wait");
    ready = do_wait(e, qr, 5000 * 1000000ull, &ms);      /* the eventfd is readable then */
    T_CHECK(ready & 2u, "the written eventfd was not seen readable (ready %#x)", ready);
    T_CHECK(read(efd, &v, sizeof(v)) == sizeof(v) && v == 5, "eventfd counter %llu",
            (unsigned long long)v);
    t0 = xbd_now_ms();
    e->ops->queue_close(qr);                              /* read armed again: cancelled */
    T_CHECK(xbd_now_ms() - t0 < 1000, "queue_close with an armed read was slow");
    close(p2[0]);
    close(p2[1]);

    /* POLL_ADD: the watched files yes, anything else -EACCES (on a second
     * watching queue whose wait never ran: no poll of the engine's armed) */
    bool restricted = false;
    struct engine_queue *q2;
    T_ASSERT(e->ops->queue_open_watch(e, 4, watch, 2, &q2) == 0, "second queue_open_watch");
    struct io_uring *ring = eng_uring_ring(q2, &restricted);
    if (restricted) {
        int res = foreign_poll(ring, efd, false);
        T_EQ(res, -EACCES);
        T_ASSERT(write(efd, &one, sizeof(one)) == sizeof(one));
        res = foreign_poll(ring, 2, true);           /* registered file 2: the eventfd */
        T_CHECK(res > 0 && (res & POLLIN), "poll of the watched eventfd: %d", res);
        T_ASSERT(read(efd, &v, sizeof(v)) == sizeof(v));
        struct engine_queue *plain;
        T_ASSERT(e->ops->queue_open(e, 4, &plain) == 0, "queue_open");
        struct io_uring *pring = eng_uring_ring(plain, &restricted);
        T_CHECK(restricted, "plain queue not restricted");
        res = foreign_poll(pring, 0, true);
        T_EQ(res, -EACCES);                           /* no watches: no POLL_ADD at all */
        e->ops->queue_close(plain);
    } else {
        T_LOG("rings not restricted on this kernel: POLL_ADD refusals not checked");
    }
    e->ops->queue_close(q2);

    /* close with both polls armed: prompt */
    (void)do_wait(e, q, 0, &ms);                      /* (re)arms both */
    t0 = xbd_now_ms();
    e->ops->queue_close(q);
    uint64_t dt = xbd_now_ms() - t0;
    T_CHECK(dt < 1000, "queue_close with armed polls took %llu ms", (unsigned long long)dt);
    /* the fds are the caller's: still open and usable */
    T_ASSERT(write(efd, &one, sizeof(one)) == sizeof(one), "eventfd after close");

    e->ops->close(e);
    close(efd);
    close(pfd[0]);
    close(pfd[1]);
    free(buf);
    free(img);
    return t_done();
}
