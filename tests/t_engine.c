/* t_engine: the uring engine on real files (/tmp, /dev/shm, ramfs, a loop device) reads, writes, flushes and punches holes; null, error and delay engines and the params syntax behave as documented. */
#include "harness.h"
#include "engine.h"
#include "log.h"

#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MiB (1024ull * 1024)
#define IMG_SIZE (16 * MiB)

static struct engine_params P = { .path = NULL, .readonly = false, .direct = true, .name = "t_engine" };

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000;
}

struct waiter { unsigned done; };
static void on_done(struct engine_io *io, void *arg)
{
    (void)io;
    ((struct waiter *)arg)->done++;
}

/* Queue ios[0..n), one submit, wait for all; returns 0 or the queue_io error. */
static int run_ios(struct engine *e, struct engine_queue *q, struct engine_io **ios, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        ios[i]->result = INT64_MIN;
        int rc = e->ops->queue_io(q, ios[i]);
        if (rc < 0)
            return rc;
    }
    int rc = e->ops->submit(q);
    if (rc < 0)
        return rc;
    struct waiter w = { 0 };
    struct pollfd pfd = { .fd = e->ops->completion_fd(q), .events = POLLIN };
    uint64_t end = now_us() + 10 * 1000 * 1000;
    while (w.done < n && now_us() < end) {
        if (poll(&pfd, 1, 1000) > 0)
            T_ASSERT(e->ops->reap(q, on_done, &w) >= 0, "reap");
    }
    T_ASSERT(w.done == n, "%u of %u I/Os completed", w.done, n);
    return 0;
}

static int64_t run1(struct engine *e, struct engine_queue *q, enum engine_op op, uint64_t off,
                    uint64_t len, struct iovec *iov, unsigned iovcnt)
{
    struct engine_io io = { .op = op, .offset = off, .len = len, .iov = iov, .iovcnt = iovcnt };
    struct engine_io *p = &io;
    int rc = run_ios(e, q, &p, 1);
    return rc < 0 ? rc : io.result;
}

static void *abuf(size_t len, int fill)
{
    void *p = NULL;
    T_ASSERT(posix_memalign(&p, 4096, len) == 0, "posix_memalign");
    memset(p, fill, len);
    return p;
}

static void fill_pattern(uint8_t *b, size_t len, uint64_t seed)
{
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)((i * 131 + seed * 7) >> 3);
}

static char *make_image(const char *dir, const char *name, uint64_t size)
{
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(path, "%s/%s", dir, name);
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    T_ASSERT(fd >= 0, "create %s: %s", path, strerror(errno));
    /* fully allocated so SEEK_HOLE has something to find after a discard */
    uint8_t *b = abuf(MiB, 0x5A);
    for (uint64_t off = 0; off < size; off += MiB)
        T_ASSERT(pwrite(fd, b, MiB, (off_t)off) == (ssize_t)MiB, "fill image");
    free(b);
    fsync(fd);
    close(fd);
    return path;
}

/* Read/write/flush/discard round trip on one opened store; `check_path` is
 * the backing file to verify with pread and SEEK_HOLE (NULL: none). */
static void exercise(struct engine *e, const char *what, const char *check_path)
{
    struct engine_queue *q;
    T_ASSERT(e->ops->queue_open(e, 8, &q) == 0, "%s: queue_open", what);

    /* a 3-iovec write at 1 MiB + 4 KiB, as the data plane builds them */
    uint8_t *wb = abuf(3 * 4096, 0);
    fill_pattern(wb, 3 * 4096, 42);
    struct iovec wiov[3] = { { wb, 4096 }, { wb + 4096, 8192 - 4096 }, { wb + 8192, 4096 } };
    uint64_t off = MiB + 4096;
    T_EQ(run1(e, q, ENGINE_OP_WRITE, off, 3 * 4096, wiov, 3), 3 * 4096);
    T_EQ(run1(e, q, ENGINE_OP_FLUSH, 0, 0, NULL, 0), 0);

    uint8_t *rb = abuf(3 * 4096, 0xEE);
    struct iovec riov[2] = { { rb, 4096 }, { rb + 4096, 8192 } };
    T_EQ(run1(e, q, ENGINE_OP_READ, off, 3 * 4096, riov, 2), 3 * 4096);
    T_CHECK(memcmp(rb, wb, 3 * 4096) == 0, "%s: read back differs", what);
    /* single-iovec read of one 512-byte sector in the middle */
    memset(rb, 0xEE, 4096);
    struct iovec one = { rb, 512 };
    T_EQ(run1(e, q, ENGINE_OP_READ, off + 512, 512, &one, 1), 512);
    T_CHECK(memcmp(rb, wb + 512, 512) == 0, "%s: sector read differs", what);

    if (check_path) {
        int fd = open(check_path, O_RDONLY);
        T_ASSERT(fd >= 0, "open %s", check_path);
        uint8_t *cb = abuf(3 * 4096, 0);
        T_EQ(pread(fd, cb, 3 * 4096, (off_t)off), 3 * 4096);
        T_CHECK(memcmp(cb, wb, 3 * 4096) == 0, "%s: file content differs", what);
        free(cb);
        close(fd);
    }

    /* several I/Os in one submit; then depth exhaustion */
    struct engine_io ios[9];
    struct engine_io *pios[9];
    uint8_t *mb = abuf(8 * 4096, 0);
    struct iovec miov[8];
    for (unsigned i = 0; i < 8; i++) {
        fill_pattern(mb + i * 4096, 4096, 100 + i);
        miov[i] = (struct iovec){ mb + i * 4096, 4096 };
        ios[i] = (struct engine_io){ .op = ENGINE_OP_WRITE, .offset = 4 * MiB + i * 8192ull,
                                     .len = 4096, .iov = &miov[i], .iovcnt = 1 };
        pios[i] = &ios[i];
    }
    T_EQ(run_ios(e, q, pios, 8), 0);
    for (unsigned i = 0; i < 8; i++)
        T_EQ(ios[i].result, 4096);
    for (unsigned i = 0; i < 8; i++)
        T_EQ(e->ops->queue_io(q, &ios[i]), 0);
    ios[8] = ios[0];
    T_EQ(e->ops->queue_io(q, &ios[8]), -EBUSY);
    struct waiter w = { 0 };
    T_CHECK(e->ops->submit(q) >= 0, "submit");
    struct pollfd pfd = { .fd = e->ops->completion_fd(q), .events = POLLIN };
    while (w.done < 8 && poll(&pfd, 1, 5000) > 0)
        e->ops->reap(q, on_done, &w);
    T_EQ(w.done, 8);

    /* reads past the end of a file are short: reported as -EIO */
    if (!e->is_blockdev) {
        struct iovec big = { mb, 8192 };
        T_EQ(run1(e, q, ENGINE_OP_READ, e->size - 4096, 8192, &big, 1), -EIO);
    }

    if (e->caps.discard) {
        uint64_t d0 = 2 * MiB, dlen = MiB;
        T_EQ(run1(e, q, ENGINE_OP_DISCARD, d0, dlen, NULL, 0), 0);
        uint8_t *zb = abuf(dlen, 0xEE);
        struct iovec ziov = { zb, dlen };
        T_EQ(run1(e, q, ENGINE_OP_READ, d0, dlen, &ziov, 1), (int64_t)dlen);
        bool zero = true;
        for (uint64_t i = 0; i < dlen; i++)
            zero &= zb[i] == 0;
        T_CHECK(zero, "%s: discarded range does not read as zeroes", what);
        free(zb);
        if (check_path) {
            int fd = open(check_path, O_RDONLY);
            off_t h = lseek(fd, (off_t)d0, SEEK_HOLE);
            off_t d = lseek(fd, (off_t)d0, SEEK_DATA);
            T_CHECK(h == (off_t)d0, "%s: SEEK_HOLE at %llu gives %lld", what,
                    (unsigned long long)d0, (long long)h);
            T_CHECK(d >= (off_t)(d0 + dlen), "%s: SEEK_DATA from hole gives %lld", what, (long long)d);
            close(fd);
        }
        /* secure discard only where supported */
        if (!e->caps.secure_discard)
            T_EQ(run1(e, q, ENGINE_OP_SECURE_DISCARD, d0, 4096, NULL, 0), -EOPNOTSUPP);
    } else {
        T_LOG("%s: no discard capability", what);
    }
    e->ops->queue_close(q);
    free(wb);
    free(rb);
    free(mb);
}

static void test_file(const char *dir, const char *what, bool expect_discard)
{
    char *path = make_image(dir, "img.raw", IMG_SIZE);
    struct engine *e;
    int rc = engine_open_params(path, &P, false, &e);
    T_ASSERT(rc == 0, "%s: open %s: %d", what, path, rc);
    T_EQ(e->size, IMG_SIZE);
    T_CHECK(!e->is_blockdev, "%s: not a block device", what);
    T_CHECK(e->logical_block_size >= 512 && e->physical_block_size >= e->logical_block_size,
            "%s: block sizes %u/%u", what, e->logical_block_size, e->physical_block_size);
    T_CHECK(e->caps.flush, "%s: flush cap", what);
    T_CHECK(e->caps.discard == expect_discard, "%s: discard cap %d", what, e->caps.discard);
    /* O_DIRECT: in effect exactly when the filesystem accepts it */
    int fd = open(path, O_RDWR | O_DIRECT);
    bool fs_direct = fd >= 0;
    if (fd >= 0)
        close(fd);
    T_CHECK(e->direct == fs_direct, "%s: direct %d but filesystem O_DIRECT %d", what, e->direct, fs_direct);
    T_LOG("%s: size %llu lbs %u pbs %u direct %d discard %d (gran %u)", what,
          (unsigned long long)e->size, e->logical_block_size, e->physical_block_size, e->direct,
          e->caps.discard, e->caps.discard_granularity);
    exercise(e, what, path);
    e->ops->close(e);

    /* read-only: opens O_RDONLY, writes fail, no discard */
    struct engine_params ro = P;
    ro.readonly = true;
    T_ASSERT(engine_open_params(path, &ro, false, &e) == 0, "ro open");
    T_CHECK(e->readonly && !e->caps.discard, "%s: ro caps", what);
    struct engine_queue *q;
    T_ASSERT(e->ops->queue_open(e, 2, &q) == 0, "ro queue");
    uint8_t *b = abuf(4096, 1);
    struct iovec iov4 = { b, 4096 };
    T_CHECK(run1(e, q, ENGINE_OP_WRITE, 0, 4096, &iov4, 1) < 0, "%s: write on ro store succeeded", what);
    T_EQ(run1(e, q, ENGINE_OP_READ, 0, 4096, &iov4, 1), 4096);
    e->ops->queue_close(q);
    e->ops->close(e);
    free(b);
    unlink(path);
    free(path);
}

static void umount_dir(void *arg)
{
    umount2(arg, MNT_DETACH);
}

/* ramfs refuses O_DIRECT (EINVAL): the engine must fall back to buffered. */
static void test_odirect_fallback(void)
{
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/ramfs", t_tmpdir(0));
    mkdir(dir, 0700);
    if (mount("none", dir, "ramfs", 0, NULL) != 0) {
        T_LOG("note: cannot mount ramfs (%s): O_DIRECT fallback part skipped", strerror(errno));
        return;
    }
    t_atexit(umount_dir, strdup(dir));
    char *path = make_image(dir, "img.raw", 4 * MiB);
    int fd = open(path, O_RDWR | O_DIRECT);
    T_CHECK(fd < 0 && errno == EINVAL, "ramfs unexpectedly accepts O_DIRECT");
    if (fd >= 0)
        close(fd);
    struct engine *e;
    T_ASSERT(engine_open_params(path, &P, false, &e) == 0, "ramfs open");
    T_CHECK(!e->direct, "ramfs: O_DIRECT reported in effect");
    struct engine_queue *q;
    T_ASSERT(e->ops->queue_open(e, 2, &q) == 0, "queue");
    uint8_t *b = abuf(4096, 0x77), *r = abuf(4096, 0);
    struct iovec wi = { b, 4096 }, ri = { r, 4096 };
    T_EQ(run1(e, q, ENGINE_OP_WRITE, 8192, 4096, &wi, 1), 4096);
    T_EQ(run1(e, q, ENGINE_OP_READ, 8192, 4096, &ri, 1), 4096);
    T_CHECK(!memcmp(b, r, 4096), "ramfs read back");
    e->ops->queue_close(q);
    e->ops->close(e);
    free(b);
    free(r);
    unlink(path);
    free(path);
    umount2(dir, MNT_DETACH);
}

static void losetup_detach(void *arg)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "losetup -d %s 2>/dev/null", (char *)arg);
    if (system(cmd) != 0)
        fprintf(stderr, "# losetup -d %s failed\n", (char *)arg);
    free(arg);
}

static void test_loop(void)
{
    char *img = make_image(t_tmpdir(0), "loop.raw", 32 * MiB);
    char cmd[512], dev[64] = "";
    snprintf(cmd, sizeof(cmd), "losetup -f --show '%s' 2>&1", img);
    FILE *f = popen(cmd, "r");
    if (!f || !fgets(dev, sizeof(dev), f) || strncmp(dev, "/dev/loop", 9) != 0) {
        T_LOG("note: losetup does not work here (%s): loop device part skipped", dev[0] ? dev : "no output");
        if (f)
            pclose(f);
        free(img);
        return;
    }
    pclose(f);
    dev[strcspn(dev, "\n")] = 0;
    t_atexit(losetup_detach, strdup(dev));
    struct engine *e;
    int rc = engine_open_params(dev, &P, false, &e);
    T_ASSERT(rc == 0, "open %s: %d", dev, rc);
    T_CHECK(e->is_blockdev, "loop is a block device");
    T_EQ(e->size, 32 * MiB);
    T_EQ(e->logical_block_size, 512);
    T_LOG("%s: size %llu lbs %u pbs %u direct %d discard %d gran %u secure %d", dev,
          (unsigned long long)e->size, e->logical_block_size, e->physical_block_size, e->direct,
          e->caps.discard, e->caps.discard_granularity, e->caps.secure_discard);
    exercise(e, dev, NULL);
    e->ops->close(e);
    /* the data went through the loop device into the image */
    int fd = open(img, O_RDONLY);
    uint8_t *b = abuf(4096, 0), *w = abuf(3 * 4096, 0);
    fill_pattern(w, 3 * 4096, 42);
    T_EQ(pread(fd, b, 4096, (off_t)(MiB + 4096)), 4096);
    T_CHECK(!memcmp(b, w, 4096), "loop: image content");
    close(fd);
    free(b);
    free(w);
    free(img);
}

static void test_null_and_filters(void)
{
    struct engine *e;
    T_ASSERT(engine_open_params("null:16M", &P, false, &e) == 0, "null");
    T_EQ(e->size, 16 * MiB);
    struct engine_queue *q;
    T_ASSERT(e->ops->queue_open(e, 4, &q) == 0, "null queue");
    uint8_t *b = abuf(8192, 0xAA);
    struct iovec iov = { b, 8192 }, iov4 = { b, 4096 };
    T_EQ(run1(e, q, ENGINE_OP_READ, 0, 8192, &iov, 1), 8192);
    T_CHECK(b[0] == 0 && b[8191] == 0, "null reads zeroes");
    T_EQ(run1(e, q, ENGINE_OP_WRITE, 0, 8192, &iov, 1), 8192);
    T_EQ(run1(e, q, ENGINE_OP_FLUSH, 0, 0, NULL, 0), 0);
    T_EQ(run1(e, q, ENGINE_OP_DISCARD, 0, MiB, NULL, 0), 0);
    e->ops->queue_close(q);
    e->ops->close(e);

    /* error filter: reads of [1M, 1M+8K) fail, writes pass ("r") */
    T_ASSERT(engine_open_params("error:1M-1056768,r:null:4M", &P, true, &e) == 0, "error r");
    T_EQ(e->size, 4 * MiB);
    T_ASSERT(e->ops->queue_open(e, 4, &q) == 0, "error queue");
    T_EQ(run1(e, q, ENGINE_OP_READ, 0, 8192, &iov, 1), 8192);
    T_EQ(run1(e, q, ENGINE_OP_READ, MiB - 4096, 8192, &iov, 1), -EIO);      /* overlaps start */
    T_EQ(run1(e, q, ENGINE_OP_READ, MiB + 8192, 8192, &iov, 1), 8192);      /* just past end */
    T_EQ(run1(e, q, ENGINE_OP_READ, MiB + 4096, 4096, &iov4, 1), -EIO);
    T_EQ(run1(e, q, ENGINE_OP_WRITE, MiB, 8192, &iov, 1), 8192);
    T_EQ(run1(e, q, ENGINE_OP_FLUSH, 0, 0, NULL, 0), 0);
    /* mixed batch: one failed, one passed, both reported */
    struct engine_io a = { .op = ENGINE_OP_READ, .offset = MiB, .len = 4096, .iov = &iov4, .iovcnt = 1 };
    struct engine_io c = { .op = ENGINE_OP_READ, .offset = 0, .len = 4096, .iov = &iov4, .iovcnt = 1 };
    struct engine_io *pp[2] = { &a, &c };
    T_EQ(run_ios(e, q, pp, 2), 0);
    T_EQ(a.result, -EIO);
    T_EQ(c.result, 4096);
    e->ops->queue_close(q);
    e->ops->close(e);

    /* error filter, writes only, over a real file; discard counts as a write */
    char *path = make_image(t_tmpdir(0), "err.raw", 4 * MiB);
    char spec[512];
    snprintf(spec, sizeof(spec), "error:0-4096,w:uring:%s", path);
    T_ASSERT(engine_open_params(spec, &P, true, &e) == 0, "error w uring");
    T_ASSERT(e->ops->queue_open(e, 4, &q) == 0, "queue");
    T_EQ(run1(e, q, ENGINE_OP_WRITE, 0, 4096, &iov4, 1), -EIO);
    T_EQ(run1(e, q, ENGINE_OP_READ, 0, 4096, &iov4, 1), 4096);
    T_EQ(run1(e, q, ENGINE_OP_WRITE, 4096, 4096, &iov4, 1), 4096);
    if (e->caps.discard)
        T_EQ(run1(e, q, ENGINE_OP_DISCARD, 0, 8192, NULL, 0), -EIO);
    e->ops->queue_close(q);
    e->ops->close(e);
    unlink(path);
    free(path);

    /* delay filter: completions held >= usec */
    T_ASSERT(engine_open_params("delay:30000:null:1M", &P, true, &e) == 0, "delay");
    T_ASSERT(e->ops->queue_open(e, 4, &q) == 0, "delay queue");
    uint64_t t0 = now_us();
    T_EQ(run1(e, q, ENGINE_OP_READ, 0, 4096, &iov4, 1), 4096);
    uint64_t dt = now_us() - t0;
    T_CHECK(dt >= 30000, "delay: completed after %llu us", (unsigned long long)dt);
    e->ops->queue_close(q);
    e->ops->close(e);
    /* delay over error over null */
    T_ASSERT(engine_open_params("delay:1000:error:0-1K:null:1M", &P, true, &e) == 0, "stacked");
    T_ASSERT(e->ops->queue_open(e, 4, &q) == 0, "stacked queue");
    T_EQ(run1(e, q, ENGINE_OP_READ, 0, 4096, &iov4, 1), -EIO);
    T_EQ(run1(e, q, ENGINE_OP_READ, 4096, 4096, &iov4, 1), 4096);
    e->ops->queue_close(q);
    e->ops->close(e);
    free(b);

    /* params syntax */
    struct engine *x = (struct engine *)0x1;
    T_EQ(engine_open_params("", &P, true, &x), -EINVAL);
    T_EQ(engine_open_params("null:", &P, true, &x), -EINVAL);
    T_EQ(engine_open_params("null:12Q", &P, true, &x), -EINVAL);
    T_EQ(engine_open_params("uring:", &P, true, &x), -EINVAL);
    T_EQ(engine_open_params("error:0-1M:null:1M", &P, false, &x), -EPERM);
    T_EQ(engine_open_params("delay:10:null:1M", &P, false, &x), -EPERM);
    T_EQ(engine_open_params("error:2M-1M:null:4M", &P, true, &x), -EINVAL);
    T_EQ(engine_open_params("error:0-1M,x:null:4M", &P, true, &x), -EINVAL);
    T_EQ(engine_open_params("error:0-1M", &P, true, &x), -EINVAL);
    T_EQ(engine_open_params("delay:abc:null:1M", &P, true, &x), -EINVAL);
    T_EQ(engine_open_params("/nonexistent/xbd/img", &P, true, &x), -ENOENT);
    T_EQ(engine_open_params("uring:/nonexistent/xbd/img", &P, true, &x), -ENOENT);
    T_CHECK(x == (struct engine *)0x1, "out-param touched on failure");
}

int main(void)
{
    log_init("t_engine", LOG_TARGET_STDERR, NULL, LOG_DEBUG);
    test_file(t_tmpdir(0), "file on /tmp", true);
    test_file(t_tmpdir(1), "file on /dev/shm", true);
    test_odirect_fallback();
    test_null_and_filters();
    test_loop();
    return t_done();
}
