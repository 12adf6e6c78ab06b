/* engine_check.c - checks shared by the storage engine tests (engine_check.h). */
#include "engine_check.h"
#include "util.h"
#include "../harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct waiter { unsigned done; };
static void on_done(struct engine_io *io, void *arg)
{
    (void)io;
    ((struct waiter *)arg)->done++;
}

unsigned ec_wait_n(struct engine *e, struct engine_queue *q, unsigned n)
{
    struct waiter w = { 0 };
    struct pollfd pfd = { .fd = e->ops->completion_fd(q), .events = POLLIN };
    uint64_t end = (xbd_now_ns() / 1000) + 10 * 1000 * 1000;
    while (w.done < n && (xbd_now_ns() / 1000) < end) {
        if (poll(&pfd, 1, 1000) > 0)
            T_ASSERT(e->ops->reap(q, on_done, &w) >= 0, "reap");
    }
    return w.done;
}

int ec_run_ios(struct engine *e, struct engine_queue *q, struct engine_io **ios, unsigned n)
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
    unsigned got = ec_wait_n(e, q, n);
    T_ASSERT(got == n, "%u of %u I/Os completed", got, n);
    return 0;
}

int64_t ec_run1(struct engine *e, struct engine_queue *q, enum engine_op op, uint64_t off,
                uint64_t len, struct iovec *iov, unsigned iovcnt)
{
    struct engine_io io = { .op = op, .offset = off, .len = len, .iov = iov, .iovcnt = iovcnt };
    struct engine_io *p = &io;
    int rc = ec_run_ios(e, q, &p, 1);
    return rc < 0 ? rc : io.result;
}

void ec_rand_shape(uint64_t *x, uint32_t *len, unsigned *nseg)
{
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    *len = (uint32_t)(1 + (*x >> 33) % 16) * 4096;
    unsigned n = 1 + (unsigned)(*x >> 20) % 4;
    *nseg = n > *len / 4096 ? *len / 4096 : n;
}

void *ec_abuf(size_t len, int fill)
{
    void *p = NULL;
    T_ASSERT(posix_memalign(&p, 4096, len) == 0, "posix_memalign");
    memset(p, fill, len);
    return p;
}

void ec_fill_pattern(uint8_t *b, size_t len, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b[i] = (uint8_t)x;
    }
}

char *ec_make_image(const char *dir, const char *name, uint64_t size)
{
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(path, "%s/%s", dir, name);
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
    T_ASSERT(fd >= 0, "create %s: %s", path, strerror(errno));
    uint8_t *b = ec_abuf(MiB, 0x5A);        /* fully allocated: SEEK_HOLE finds discards */
    for (uint64_t off = 0; off < size; off += MiB)
        T_ASSERT(pwrite(fd, b, MiB, (off_t)off) == (ssize_t)MiB, "fill image");
    free(b);
    fsync(fd);
    close(fd);
    return path;
}

void ec_check_file_props(const struct engine *e, const char *path, const char *what,
                         uint64_t size, bool expect_discard)
{
    T_EQ(e->size, size);
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
    T_CHECK(e->direct == fs_direct, "%s: direct %d but filesystem O_DIRECT %d", what, e->direct,
            fs_direct);
    T_LOG("%s: size %llu lbs %u pbs %u direct %d discard %d (gran %u)", what,
          (unsigned long long)e->size, e->logical_block_size, e->physical_block_size, e->direct,
          e->caps.discard, e->caps.discard_granularity);
}

void ec_check_rw(struct engine *e, struct engine_queue *q, const char *what,
                 const char *check_path, bool idle_poll)
{
    struct pollfd pfd = { .fd = e->ops->completion_fd(q), .events = POLLIN };
    if (idle_poll)
        T_EQ(poll(&pfd, 1, 0), 0);          /* nothing completed: not readable */

    /* a 3-iovec write at 1 MiB + 4 KiB, as the data plane builds them */
    uint8_t *wb = ec_abuf(3 * 4096, 0);
    ec_fill_pattern(wb, 3 * 4096, 42);
    struct iovec wiov[3] = { { wb, 4096 }, { wb + 4096, 4096 }, { wb + 8192, 4096 } };
    uint64_t off = MiB + 4096;
    T_EQ(ec_run1(e, q, ENGINE_OP_WRITE, off, 3 * 4096, wiov, 3), 3 * 4096);
    T_EQ(ec_run1(e, q, ENGINE_OP_FLUSH, 0, 0, NULL, 0), 0);
    if (idle_poll)
        T_EQ(poll(&pfd, 1, 0), 0);          /* reaped: not readable any more */

    uint8_t *rb = ec_abuf(3 * 4096, 0xEE);
    struct iovec riov[2] = { { rb, 4096 }, { rb + 4096, 8192 } };
    T_EQ(ec_run1(e, q, ENGINE_OP_READ, off, 3 * 4096, riov, 2), 3 * 4096);
    T_CHECK(memcmp(rb, wb, 3 * 4096) == 0, "%s: read back differs", what);
    /* single-iovec read of one 512-byte sector in the middle */
    memset(rb, 0xEE, 4096);
    struct iovec one = { rb, 512 };
    T_EQ(ec_run1(e, q, ENGINE_OP_READ, off + 512, 512, &one, 1), 512);
    T_CHECK(memcmp(rb, wb + 512, 512) == 0, "%s: sector read differs", what);

    if (check_path) {
        int fd = open(check_path, O_RDONLY);
        T_ASSERT(fd >= 0, "open %s", check_path);
        uint8_t *cb = ec_abuf(3 * 4096, 0);
        T_EQ(pread(fd, cb, 3 * 4096, (off_t)off), 3 * 4096);
        T_CHECK(memcmp(cb, wb, 3 * 4096) == 0, "%s: file content differs", what);
        free(cb);
        close(fd);
    }
    free(wb);
    free(rb);
}

void ec_check_eof_discard(struct engine *e, struct engine_queue *q, const char *what,
                          const char *check_path)
{
    /* reads past the end of a file are short: reported as -EIO */
    if (!e->is_blockdev) {
        uint8_t *b = ec_abuf(8192, 0);
        struct iovec big = { b, 8192 };
        T_EQ(ec_run1(e, q, ENGINE_OP_READ, e->size - 4096, 8192, &big, 1), -EIO);
        free(b);
    }
    if (!e->caps.discard) {
        T_LOG("%s: no discard capability", what);
        return;
    }
    uint64_t d0 = 2 * MiB, dlen = MiB;
    T_EQ(ec_run1(e, q, ENGINE_OP_DISCARD, d0, dlen, NULL, 0), 0);
    uint8_t *zb = ec_abuf(dlen, 0xEE);
    struct iovec ziov = { zb, dlen };
    T_EQ(ec_run1(e, q, ENGINE_OP_READ, d0, dlen, &ziov, 1), (int64_t)dlen);
    bool zero = true;
    for (uint64_t i = 0; i < dlen; i++)
        zero &= zb[i] == 0;
    T_CHECK(zero, "%s: discarded range does not read as zeroes", what);
    free(zb);
    if (check_path) {
        int fd = open(check_path, O_RDONLY);
        off_t h = lseek(fd, (off_t)d0, SEEK_HOLE), d = lseek(fd, (off_t)d0, SEEK_DATA);
        T_CHECK(h == (off_t)d0, "%s: SEEK_HOLE at %llu gives %lld", what,
                (unsigned long long)d0, (long long)h);
        T_CHECK(d >= (off_t)(d0 + dlen), "%s: SEEK_DATA from the hole gives %lld", what,
                (long long)d);
        close(fd);
    }
    /* secure discard only where supported */
    if (!e->caps.secure_discard)
        T_EQ(ec_run1(e, q, ENGINE_OP_SECURE_DISCARD, d0, 4096, NULL, 0), -EOPNOTSUPP);
}

void ec_check_readonly(ec_open_fn *open, const char *path, const struct engine_params *p,
                       const char *what)
{
    struct engine_params ro = *p;
    ro.readonly = true;
    struct engine *e = open(path, &ro);
    T_CHECK(e->readonly && !e->caps.discard, "%s: ro caps", what);
    struct engine_queue *q;
    T_ASSERT(e->ops->queue_open(e, 2, &q) == 0, "ro queue");
    uint8_t *b = ec_abuf(4096, 1);
    struct iovec iov4 = { b, 4096 };
    T_CHECK(ec_run1(e, q, ENGINE_OP_WRITE, 0, 4096, &iov4, 1) < 0, "%s: write on a ro store succeeded",
            what);
    T_EQ(ec_run1(e, q, ENGINE_OP_READ, 0, 4096, &iov4, 1), 4096);
    e->ops->queue_close(q);
    e->ops->close(e);
    free(b);
}

void ec_check_roundtrip(struct engine *e, struct engine_queue *q, uint64_t off, int fill,
                        bool flush, const char *what)
{
    uint8_t *b = ec_abuf(4096, fill), *r = ec_abuf(4096, 0);
    struct iovec wi = { b, 4096 }, ri = { r, 4096 };
    T_EQ(ec_run1(e, q, ENGINE_OP_WRITE, off, 4096, &wi, 1), 4096);
    if (flush)
        T_EQ(ec_run1(e, q, ENGINE_OP_FLUSH, 0, 0, NULL, 0), 0);
    T_EQ(ec_run1(e, q, ENGINE_OP_READ, off, 4096, &ri, 1), 4096);
    T_CHECK(!memcmp(b, r, 4096), "%s read back", what);
    free(b);
    free(r);
}

void ec_check_ramfs_engine(struct engine *e, unsigned depth, bool flush)
{
    T_CHECK(!e->direct, "ramfs: O_DIRECT reported in effect");
    struct engine_queue *q;
    T_ASSERT(e->ops->queue_open(e, depth, &q) == 0, "queue");
    ec_check_roundtrip(e, q, 8192, 0x77, flush, "ramfs");
    e->ops->queue_close(q);
    e->ops->close(e);
}

static void umount_dir(void *arg)
{
    umount2(arg, MNT_DETACH);
}

char *ec_ramfs_image(const char *part, char **dir)
{
    char d[256];
    snprintf(d, sizeof(d), "%s/ramfs", t_tmpdir(0));
    mkdir(d, 0700);
    if (mount("none", d, "ramfs", 0, NULL) != 0) {
        T_LOG("note: cannot mount ramfs (%s): %s skipped", strerror(errno), part);
        return NULL;
    }
    t_atexit(umount_dir, strdup(d));
    *dir = strdup(d);
    return ec_make_image(d, "img.raw", 4 * MiB);
}

void ec_ramfs_done(char *dir, char *path)
{
    unlink(path);
    free(path);
    umount2(dir, MNT_DETACH);
    free(dir);
}

static void losetup_detach(void *arg)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "losetup -d %s 2>/dev/null", (char *)arg);
    if (system(cmd) != 0)
        fprintf(stderr, "# losetup -d %s failed\n", (char *)arg);
    free(arg);
}

char *ec_loop_image(uint64_t size, char *dev, size_t devlen, const char *part)
{
    char *img = ec_make_image(t_tmpdir(0), "loop.raw", size);
    char cmd[512];
    dev[0] = 0;
    snprintf(cmd, sizeof(cmd), "losetup -f --show '%s' 2>&1", img);
    FILE *f = popen(cmd, "r");
    if (!f || !fgets(dev, (int)devlen, f) || strncmp(dev, "/dev/loop", 9) != 0) {
        T_LOG("note: losetup does not work here (%s): %s skipped", dev[0] ? dev : "no output", part);
        if (f)
            pclose(f);
        free(img);
        return NULL;
    }
    pclose(f);
    dev[strcspn(dev, "\n")] = 0;
    t_atexit(losetup_detach, strdup(dev));
    return img;
}

void ec_check_blockdev_props(const struct engine *e, const char *dev, uint64_t size)
{
    T_CHECK(e->is_blockdev, "loop is a block device");
    T_EQ(e->size, size);
    T_LOG("%s: size %llu lbs %u pbs %u direct %d discard %d gran %u secure %d", dev,
          (unsigned long long)e->size, e->logical_block_size, e->physical_block_size, e->direct,
          e->caps.discard, e->caps.discard_granularity, e->caps.secure_discard);
}

void ec_check_loop_image(const char *img)
{
    int fd = open(img, O_RDONLY);
    uint8_t *b = ec_abuf(4096, 0), *w = ec_abuf(3 * 4096, 0);
    ec_fill_pattern(w, 3 * 4096, 42);
    T_EQ(pread(fd, b, 4096, (off_t)(MiB + 4096)), 4096);
    T_CHECK(!memcmp(b, w, 4096), "loop: image content");
    close(fd);
    free(b);
    free(w);
}
