/* t_engine: the uring engine on real files (/tmp, /dev/shm, ramfs, a loop device) reads, writes, flushes and punches holes; null, error and delay engines and the params syntax behave as documented. */
#include "harness.h"
#include "util.h"
#include "engine.h"
#include "../src/engine/engine_priv.h"
#include "log.h"
#include "lib/engine_check.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define IMG_SIZE (16 * MiB)

static struct engine_params P = { .path = NULL, .readonly = false, .direct = true, .name = "t_engine" };

/* Read/write/flush/discard round trip on one opened store; `check_path` is
 * the backing file to verify with pread and SEEK_HOLE (NULL: none). */
static void exercise(struct engine *e, const char *what, const char *check_path)
{
    struct engine_queue *q;
    T_ASSERT(e->ops->queue_open(e, 8, &q) == 0, "%s: queue_open", what);
    ec_check_rw(e, q, what, check_path, false);

    /* several I/Os in one submit; then depth exhaustion */
    struct engine_io ios[9];
    struct engine_io *pios[9];
    uint8_t *mb = ec_abuf(8 * 4096, 0);
    struct iovec miov[8];
    for (unsigned i = 0; i < 8; i++) {
        ec_fill_pattern(mb + i * 4096, 4096, 100 + i);
        miov[i] = (struct iovec){ mb + i * 4096, 4096 };
        ios[i] = (struct engine_io){ .op = ENGINE_OP_WRITE, .offset = 4 * MiB + i * 8192ull,
                                     .len = 4096, .iov = &miov[i], .iovcnt = 1 };
        pios[i] = &ios[i];
    }
    T_EQ(ec_run_ios(e, q, pios, 8), 0);
    for (unsigned i = 0; i < 8; i++)
        T_EQ(ios[i].result, 4096);
    for (unsigned i = 0; i < 8; i++)
        T_EQ(e->ops->queue_io(q, &ios[i]), 0);
    ios[8] = ios[0];
    T_EQ(e->ops->queue_io(q, &ios[8]), -EBUSY);
    T_CHECK(e->ops->submit(q) >= 0, "submit");
    T_EQ(ec_wait_n(e, q, 8), 8);

    ec_check_eof_discard(e, q, what, check_path);
    e->ops->queue_close(q);
    free(mb);
}

static struct engine *open_ro(const char *path, const struct engine_params *p)
{
    struct engine *e;
    T_ASSERT(engine_open_params(path, p, false, &e) == 0, "ro open");
    return e;
}

static void test_file(const char *dir, const char *what, bool expect_discard)
{
    char *path = ec_make_image(dir, "img.raw", IMG_SIZE);
    struct engine *e;
    int rc = engine_open_params(path, &P, false, &e);
    T_ASSERT(rc == 0, "%s: open %s: %d", what, path, rc);
    ec_check_file_props(e, path, what, IMG_SIZE, expect_discard);
    exercise(e, what, path);
    e->ops->close(e);

    /* read-only: opens O_RDONLY, writes fail, no discard */
    ec_check_readonly(open_ro, path, &P, what);
    unlink(path);
    free(path);
}

/* ramfs refuses O_DIRECT (EINVAL): the engine must fall back to buffered. */
static void test_odirect_fallback(void)
{
    char *dir, *path = ec_ramfs_image("O_DIRECT fallback part", &dir);
    if (!path)
        return;
    int fd = open(path, O_RDWR | O_DIRECT);
    T_CHECK(fd < 0 && errno == EINVAL, "ramfs unexpectedly accepts O_DIRECT");
    if (fd >= 0)
        close(fd);
    struct engine *e;
    T_ASSERT(engine_open_params(path, &P, false, &e) == 0, "ramfs open");
    ec_check_ramfs_engine(e, 2, false);
    ec_ramfs_done(dir, path);
}

static void test_loop(void)
{
    char dev[64];
    char *img = ec_loop_image(32 * MiB, dev, sizeof(dev), "loop device part");
    if (!img)
        return;
    struct engine *e;
    int rc = engine_open_params(dev, &P, false, &e);
    T_ASSERT(rc == 0, "open %s: %d", dev, rc);
    T_EQ(e->logical_block_size, 512);
    ec_check_blockdev_props(e, dev, 32 * MiB);
    exercise(e, dev, NULL);
    /* grow the image and tell the loop driver (losetup -c): BLKGETSIZE64 */
    uint64_t sz = 0;
    T_ASSERT(truncate(img, (off_t)(48 * MiB)) == 0, "truncate %s", img);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "losetup -c %s", dev);
    T_ASSERT(system(cmd) == 0, "%s", cmd);
    T_EQ(engine_get_size(e, &sz), 0);
    T_EQ(sz, 48 * MiB);
    e->ops->close(e);
    /* the data went through the loop device into the image */
    ec_check_loop_image(img);
    free(img);
}

static void test_null_and_filters(void)
{
    struct engine *e;
    T_ASSERT(engine_open_params("null:16M", &P, false, &e) == 0, "null");
    T_EQ(e->size, 16 * MiB);
    struct engine_queue *q;
    T_ASSERT(e->ops->queue_open(e, 4, &q) == 0, "null queue");
    uint8_t *b = ec_abuf(8192, 0xAA);
    struct iovec iov = { b, 8192 }, iov4 = { b, 4096 };
    T_EQ(ec_run1(e, q, ENGINE_OP_READ, 0, 8192, &iov, 1), 8192);
    T_CHECK(b[0] == 0 && b[8191] == 0, "null reads zeroes");
    T_EQ(ec_run1(e, q, ENGINE_OP_WRITE, 0, 8192, &iov, 1), 8192);
    T_EQ(ec_run1(e, q, ENGINE_OP_FLUSH, 0, 0, NULL, 0), 0);
    T_EQ(ec_run1(e, q, ENGINE_OP_DISCARD, 0, MiB, NULL, 0), 0);
    e->ops->queue_close(q);
    e->ops->close(e);

    /* error filter: reads of [1M, 1M+8K) fail, writes pass ("r") */
    T_ASSERT(engine_open_params("error:1M-1056768,r:null:4M", &P, true, &e) == 0, "error r");
    T_EQ(e->size, 4 * MiB);
    T_CHECK(!strcmp(e->ops->name, "error"), "error filter named %s", e->ops->name);
    T_CHECK(e->caps.discard && e->caps.flush && e->logical_block_size == 512,
            "error filter: the inner engine's caps and block size");
    T_ASSERT(e->ops->queue_open(e, 4, &q) == 0, "error queue");
    T_EQ(ec_run1(e, q, ENGINE_OP_READ, 0, 8192, &iov, 1), 8192);
    T_EQ(ec_run1(e, q, ENGINE_OP_READ, MiB - 4096, 8192, &iov, 1), -EIO);      /* overlaps start */
    T_EQ(ec_run1(e, q, ENGINE_OP_READ, MiB + 8192, 8192, &iov, 1), 8192);      /* just past end */
    T_EQ(ec_run1(e, q, ENGINE_OP_READ, MiB + 4096, 4096, &iov4, 1), -EIO);
    T_EQ(ec_run1(e, q, ENGINE_OP_WRITE, MiB, 8192, &iov, 1), 8192);
    T_EQ(ec_run1(e, q, ENGINE_OP_FLUSH, 0, 0, NULL, 0), 0);
    /* mixed batch: one failed, one passed, both reported */
    struct engine_io a = { .op = ENGINE_OP_READ, .offset = MiB, .len = 4096, .iov = &iov4, .iovcnt = 1 };
    struct engine_io c = { .op = ENGINE_OP_READ, .offset = 0, .len = 4096, .iov = &iov4, .iovcnt = 1 };
    struct engine_io *pp[2] = { &a, &c };
    T_EQ(ec_run_ios(e, q, pp, 2), 0);
    T_EQ(a.result, -EIO);
    T_EQ(c.result, 4096);
    e->ops->queue_close(q);
    e->ops->close(e);

    /* error filter, writes only, over a real file; discard counts as a write */
    char *path = ec_make_image(t_tmpdir(0), "err.raw", 4 * MiB);
    char spec[512];
    snprintf(spec, sizeof(spec), "error:0-4096,w:uring:%s", path);
    T_ASSERT(engine_open_params(spec, &P, true, &e) == 0, "error w uring");
    T_ASSERT(e->ops->queue_open(e, 4, &q) == 0, "queue");
    T_EQ(ec_run1(e, q, ENGINE_OP_WRITE, 0, 4096, &iov4, 1), -EIO);
    T_EQ(ec_run1(e, q, ENGINE_OP_READ, 0, 4096, &iov4, 1), 4096);
    T_EQ(ec_run1(e, q, ENGINE_OP_WRITE, 4096, 4096, &iov4, 1), 4096);
    if (e->caps.discard)
        T_EQ(ec_run1(e, q, ENGINE_OP_DISCARD, 0, 8192, NULL, 0), -EIO);
    e->ops->queue_close(q);
    e->ops->close(e);
    unlink(path);
    free(path);

    /* delay filter: completions held >= usec */
    T_ASSERT(engine_open_params("delay:30000:null:1M", &P, true, &e) == 0, "delay");
    T_ASSERT(e->ops->queue_open(e, 4, &q) == 0, "delay queue");
    uint64_t t0 = (xbd_now_ns() / 1000);
    T_EQ(ec_run1(e, q, ENGINE_OP_READ, 0, 4096, &iov4, 1), 4096);
    uint64_t dt = (xbd_now_ns() / 1000) - t0;
    T_CHECK(dt >= 30000, "delay: completed after %llu us", (unsigned long long)dt);
    e->ops->queue_close(q);
    e->ops->close(e);
    /* delay over error over null */
    T_ASSERT(engine_open_params("delay:1000:error:0-1K:null:1M", &P, true, &e) == 0, "stacked");
    T_CHECK(!strcmp(e->ops->name, "delay") && e->size == 1 * MiB, "stacked: %s, %llu bytes",
            e->ops->name, (unsigned long long)e->size);
    T_ASSERT(e->ops->queue_open(e, 4, &q) == 0, "stacked queue");
    T_EQ(ec_run1(e, q, ENGINE_OP_READ, 0, 4096, &iov4, 1), -EIO);
    T_EQ(ec_run1(e, q, ENGINE_OP_READ, 4096, 4096, &iov4, 1), 4096);
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

/* engine_get_size follows the store as it grows, through the filters;
 * null: keeps its size. */
static void test_get_size(void)
{
    char *path = ec_make_image(t_tmpdir(0), "grow.raw", 1 * MiB);
    static const char *const fmt[] = { "uring:%s", "aio:%s", "delay:10:error:0-1K:%s" };
    for (unsigned i = 0; i < ARRAY_SIZE(fmt); i++) {
        char params[600];
        snprintf(params, sizeof(params), fmt[i], path);
        struct engine *e;
        T_ASSERT(engine_open_params(params, &P, true, &e) == 0, "open %s", params);
        uint64_t sz = 0;
        T_EQ(engine_get_size(e, &sz), 0);
        T_EQ(sz, 1 * MiB);
        T_ASSERT(truncate(path, (off_t)(3 * MiB + i * 512)) == 0, "truncate");
        T_EQ(engine_get_size(e, &sz), 0);
        T_EQ(sz, 3 * MiB + i * 512);
        T_EQ(e->size, 1 * MiB);         /* the size at open */
        e->ops->close(e);
        T_ASSERT(truncate(path, (off_t)(1 * MiB)) == 0, "truncate back");
    }
    struct engine *e;
    uint64_t sz = 0;
    T_ASSERT(engine_open_params("null:2M", &P, false, &e) == 0, "null");
    T_EQ(engine_get_size(e, &sz), 0);
    T_EQ(sz, 2 * MiB);
    e->ops->close(e);
    unlink(path);
    free(path);
}

/* The one table of engine names (src/engine/params.c): each row is found
 * by its name, an engine row's ops carry that name, a filter row opens a
 * filter, and xen-blkbackd-engines(7) documents every prefix. */
static void test_kinds(void)
{
    char man[PATH_MAX];
    snprintf(man, sizeof(man), "%s/man/xen-blkbackd-engines.7",
             t_srcdir("man/xen-blkbackd-engines.7"));
    FILE *f = fopen(man, "re");
    T_ASSERT(f, "open %s", man);
    static char text[1 << 17];
    size_t len = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[len] = 0;
    T_ASSERT(len > 0 && len < sizeof(text) - 1, "%s: %zu bytes", man, len);

    unsigned n;
    const struct eng_kind *k = eng_kinds(&n);
    T_ASSERT(n >= 7, "%u rows", n);
    for (unsigned i = 0; i < n; i++) {
        T_CHECK(eng_kind_find(k[i].name) == &k[i], "%s: not found by name", k[i].name);
        if (k[i].ops)
            T_CHECK(!strcmp(k[i].ops->name, k[i].name) && !k[i].open_filter,
                    "%s: engine named %s", k[i].name, k[i].ops->name);
        else
            T_CHECK(k[i].open_filter, "%s: neither engine nor filter", k[i].name);
        char pat[3][64];
        snprintf(pat[0], sizeof(pat[0]), "\n.B %s:", k[i].name);
        snprintf(pat[1], sizeof(pat[1]), "\n.BI %s:", k[i].name);
        snprintf(pat[2], sizeof(pat[2]), "\n.RB [ %s: ]", k[i].name);
        T_CHECK(strstr(text, pat[0]) || strstr(text, pat[1]) || strstr(text, pat[2]),
                "%s: no %s: entry in %s", k[i].name, k[i].name, man);
    }
    T_CHECK(eng_kind_find("uring")->ops == &engine_uring, "uring row");
    T_CHECK(eng_kind_find("aio")->ops == &engine_aio, "aio row");
    T_CHECK(eng_kind_find("file") == NULL && eng_kind_find(NULL) == NULL, "unknown names");
}

int main(void)
{
    log_init("t_engine", LOG_TARGET_STDERR, NULL, LOG_DEBUG);
    test_file(t_tmpdir(0), "file on /tmp", true);
    test_file(t_tmpdir(1), "file on /dev/shm", true);
    test_odirect_fallback();
    test_null_and_filters();
    test_get_size();
    test_kinds();
    test_loop();
    return t_done();
}
