/*
 * The uring engine's rings are restricted (src/engine/uring.c ring_restrict;
 * xen-blkbackd(8) CONFINEMENT): on a queue opened as the data plane opens it,
 * an SQE with an opcode the engine does not use (OPENAT, SOCKET), one on an
 * fd that is not the registered store (no IOSQE_FIXED_FILE), one with a flag
 * the engine does not set (IOSQE_ASYNC) complete with -EACCES, and register
 * calls other than UNREGISTER_FILES (swap the registered file, an eventfd)
 * fail with EACCES; the engine's own read, write, flush, discard and the NOP
 * and cancel SQEs it submits still work.  Skips where the kernel has no ring
 * restrictions (before 5.10: IORING_SETUP_R_DISABLED refused).
 */
#include "harness.h"
#include "util.h"
#include "engine.h"
#include "../src/engine/engine_priv.h"
#include "lib/engine_check.h"

#include <fcntl.h>
#include <liburing.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static struct engine_params P = { .direct = true, .name = "t_uring_restrict" };

#define UD_FOREIGN 0x5a5a0000ul     /* user_data of this test's own SQEs */

/* Submit sqe (tagged UD_FOREIGN + n) on the engine's idle ring
 * and wait for its completion: its res.  Our CQE is consumed here, so the
 * engine's reap never sees a user_data that is not an engine_io. */
static int run_foreign(struct io_uring *ring, unsigned n, struct io_uring_sqe *sqe)
{
    io_uring_sqe_set_data(sqe, (void *)(UD_FOREIGN + n));
    T_ASSERT(io_uring_submit(ring) >= 0, "submit %u", n);
    struct io_uring_cqe *cqe;
    T_ASSERT(io_uring_wait_cqe(ring, &cqe) == 0, "wait %u", n);
    T_EQ((uintptr_t)io_uring_cqe_get_data(cqe), UD_FOREIGN + n);
    int res = cqe->res;
    io_uring_cqe_seen(ring, cqe);
    return res;
}

static int reg(struct io_uring *ring, unsigned op, void *arg, unsigned n)
{
    return syscall(__NR_io_uring_register, ring->ring_fd, op, arg, n) < 0 ? -errno : 0;
}

static bool kernel_has_restrictions(void)
{
    struct io_uring r;
    int rc = io_uring_queue_init(1, &r, IORING_SETUP_R_DISABLED);
    if (rc == 0)
        io_uring_queue_exit(&r);
    T_SKIP_IF(rc == -ENOSYS || rc == -EPERM, "io_uring unavailable (%s)", strerror(-rc));
    return rc == 0;
}

int main(void)
{
    T_SKIP_IF(!kernel_has_restrictions(), "kernel without IORING_SETUP_R_DISABLED");
    const char *dir = t_tmpdir(0);
    char *img = ec_make_image(dir, "r.raw", 8 * MiB);
    char spec[600];
    snprintf(spec, sizeof(spec), "uring:%s", img);
    struct engine *e;
    T_ASSERT(engine_open_params(spec, &P, false, &e) == 0, "open %s", spec);
    struct engine_queue *q;
    T_ASSERT(e->ops->queue_open(e, 8, &q) == 0, "queue_open");
    bool restricted = false;
    struct io_uring *ring = eng_uring_ring(q, &restricted);
    T_ASSERT(restricted, "the ring's restrictions did not take");

    /* the engine's own I/O: write, flush, read, EOF, discard, and the
     * NOP-reported SECURE_DISCARD (-EOPNOTSUPP on a file) */
    ec_check_rw(e, q, "restricted", img, false);
    ec_check_eof_discard(e, q, "restricted", img);

    int fd = open(img, O_RDWR | O_CLOEXEC);
    T_ASSERT(fd >= 0);
    /* the store is open O_DIRECT: the buffer aligned as the store wants
     * (a stack array was aligned only by chance, and under ASan's fake
     * stacks the fixed-file read failed -EINVAL now and then) */
    static char buf[4096] __attribute__((aligned(4096)));
    struct io_uring_sqe *sqe;
    int res;                    /* T_EQ evaluates its arguments twice */

    /* an opcode the engine does not use, even with the flag it requires */
    sqe = io_uring_get_sqe(ring);
    io_uring_prep_openat(sqe, AT_FDCWD, img, O_RDONLY, 0);
    sqe->flags |= IOSQE_FIXED_FILE;
    res = run_foreign(ring, 1, sqe);
    T_EQ(res, -EACCES);
    sqe = io_uring_get_sqe(ring);
    io_uring_prep_socket(sqe, AF_UNIX, SOCK_STREAM, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE;
    res = run_foreign(ring, 2, sqe);
    T_EQ(res, -EACCES);
    /* a used opcode on an fd that is not the registered store */
    sqe = io_uring_get_sqe(ring);
    io_uring_prep_read(sqe, fd, buf, sizeof(buf), 0);
    res = run_foreign(ring, 3, sqe);
    T_EQ(res, -EACCES);
    /* the registered store, with a flag the engine never sets */
    sqe = io_uring_get_sqe(ring);
    io_uring_prep_read(sqe, 0, buf, sizeof(buf), 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_ASYNC;
    res = run_foreign(ring, 4, sqe);
    T_EQ(res, -EACCES);
    /* what the engine submits itself: a read of fixed file 0, a NOP, and the
     * queue close's cancel (nothing to cancel: 0 with CANCEL_ANY) */
    sqe = io_uring_get_sqe(ring);
    io_uring_prep_read(sqe, 0, buf, sizeof(buf), 0);
    sqe->flags |= IOSQE_FIXED_FILE;
    res = run_foreign(ring, 5, sqe);
    T_EQ(res, (int)sizeof(buf));
    sqe = io_uring_get_sqe(ring);
    io_uring_prep_nop(sqe);
    sqe->flags |= IOSQE_FIXED_FILE;
    res = run_foreign(ring, 6, sqe);
    T_EQ(res, 0);
    sqe = io_uring_get_sqe(ring);
    io_uring_prep_cancel(sqe, NULL, IORING_ASYNC_CANCEL_ANY);
    sqe->flags |= IOSQE_FIXED_FILE;
    res = run_foreign(ring, 7, sqe);
    T_CHECK(res != -EACCES, "the queue close's cancel is refused");  /* 0 cancelled, or
                                                                        -EINVAL before 5.19 */

    /* register calls: swapping the registered file and an eventfd are
     * refused */
    struct io_uring_files_update up = { .offset = 0, .fds = (uintptr_t)&fd };
    T_EQ(reg(ring, IORING_REGISTER_FILES_UPDATE, &up, 1), -EACCES);
    int efd = eventfd(0, EFD_CLOEXEC);
    T_ASSERT(efd >= 0);
    T_EQ(reg(ring, IORING_REGISTER_EVENTFD, &efd, 1), -EACCES);
    close(efd);

    /* the engine still serves I/O after the refusals */
    ec_check_roundtrip(e, q, 64 * 1024, 0x5c, true, "after refusals");
    /* UNREGISTER_FILES (the queue close's) is allowed; queue_close's own
     * call then finds nothing registered, which it ignores */
    T_EQ(reg(ring, IORING_UNREGISTER_FILES, NULL, 0), 0);
    e->ops->queue_close(q);
    e->ops->close(e);
    close(fd);
    free(img);
    T_LOG("refused: OPENAT, SOCKET, unregistered fd, IOSQE_ASYNC, FILES_UPDATE, EVENTFD");
    return t_done();
}
