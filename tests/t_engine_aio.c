/* t_engine_aio: the libaio engine on real files (/var/tmp with O_DIRECT, /dev/shm, ramfs, a loop device) reads, writes, flushes and punches holes with many I/Os in flight; the default engine falls back to aio when io_uring_setup fails (seccomp: ENOSYS, EPERM) and only then; the daemon serves a verified guest workload with "aio:<file>" and, under the seccomp profile, with a plain path. */
#include "harness.h"
#include "util.h"
#include "engine.h"
#include "log.h"
#include "lib/e2e.h"
#include "lib/engine_check.h"

#include <fcntl.h>
#include <liburing.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define IMG_SIZE (16 * MiB)

static struct engine_params P = { .path = NULL, .readonly = false, .direct = true, .name = "t_engine_aio" };

static struct engine *open_aio(const char *path, const struct engine_params *p)
{
    char spec[600];
    snprintf(spec, sizeof(spec), "aio:%s", path);
    struct engine *e = NULL;
    int rc = engine_open_params(spec, p, false, &e);
    T_ASSERT(rc == 0, "open %s: %s", spec, strerror(-rc));
    T_ASSERT(e->ops == &engine_aio, "engine %s, not aio", e->ops->name);
    return e;
}

/* Basic round trip: multi-iovec write, flush, reads, depth, short read, discard. */
static void basic(struct engine *e, const char *what, const char *check_path)
{
    struct engine_queue *q;
    T_ASSERT(e->ops->queue_open(e, 8, &q) == 0, "%s: queue_open", what);
    ec_check_rw(e, q, what, check_path, true);
    /* depth: the 9th queued I/O is refused */
    struct engine_io ios[9];
    uint8_t *mb = ec_abuf(8 * 4096, 0);
    struct iovec miov[8];
    for (unsigned i = 0; i < 8; i++) {
        miov[i] = (struct iovec){ mb + i * 4096, 4096 };
        ios[i] = (struct engine_io){ .op = ENGINE_OP_READ, .offset = i * 8192ull, .len = 4096,
                                     .iov = &miov[i], .iovcnt = 1 };
        T_EQ(e->ops->queue_io(q, &ios[i]), 0);
    }
    ios[8] = ios[0];
    T_EQ(e->ops->queue_io(q, &ios[8]), -EBUSY);
    T_EQ(e->ops->submit(q), 8);
    T_EQ(ec_wait_n(e, q, 8), 8);
    for (unsigned i = 0; i < 8; i++)
        T_EQ(ios[i].result, 4096);
    ec_check_eof_discard(e, q, what, check_path);
    e->ops->queue_close(q);
    free(mb);
}

/*
 * Many I/Os in flight: NIO writes of 4..64 KiB (1..4 iovecs each) at
 * distinct 64 KiB slots started by ONE submit, then FLUSH + DISCARD of a slot
 * + NIO-2 reads in one batch; the data read back (and pread from the file)
 * is what was written.  The flush/discard worker thread exists only while
 * the queue does.
 */
#define NIO 256
static void many(struct engine *e, const char *what, const char *check_path)
{
    const int pid = getpid();
    int threads0 = t_count_threads_pid(pid);
    struct engine_queue *q;
    T_ASSERT(e->ops->queue_open(e, NIO, &q) == 0, "%s: queue_open %u", what, NIO);
    static struct engine_io ios[NIO];
    static struct engine_io *pios[NIO];
    static struct iovec iov[NIO][4];
    static uint32_t len[NIO];
    uint8_t *wb = ec_abuf((size_t)NIO * 65536, 0), *rb = ec_abuf((size_t)NIO * 65536, 0xEE);
    uint64_t x = 12345;
    for (unsigned i = 0; i < NIO; i++) {
        unsigned n;
        ec_rand_shape(&x, &len[i], &n);
        uint8_t *b = wb + (size_t)i * 65536;
        ec_fill_pattern(b, len[i], 1000 + i);
        uint32_t per = len[i] / 4096 / n * 4096, left = len[i];
        for (unsigned k = 0; k < n; k++) {
            uint32_t l = k + 1 == n ? left : per;
            iov[i][k] = (struct iovec){ b + (len[i] - left), l };
            left -= l;
        }
        ios[i] = (struct engine_io){ .op = ENGINE_OP_WRITE, .offset = (uint64_t)i * 65536,
                                     .len = len[i], .iov = iov[i], .iovcnt = n };
        pios[i] = &ios[i];
        T_EQ(e->ops->queue_io(q, &ios[i]), 0);
    }
    uint64_t t0 = (xbd_now_ns() / 1000);
    T_EQ(e->ops->submit(q), NIO);           /* all NIO in flight at once */
    T_EQ(ec_wait_n(e, q, NIO), NIO);
    uint64_t dt = (xbd_now_ns() / 1000) - t0;
    unsigned bad = 0;
    for (unsigned i = 0; i < NIO; i++)
        bad += ios[i].result != (int64_t)len[i];
    T_EQ(bad, 0);
    T_LOG("%s: %u writes in flight at once, done in %llu us", what, NIO, (unsigned long long)dt);

    /* one batch: flush, discard of slot 0's 64 KiB, reads of slots 2..NIO-1 */
    struct engine_io fl = { .op = ENGINE_OP_FLUSH }, ds = { .op = ENGINE_OP_DISCARD, .offset = 0,
                                                             .len = 65536 };
    unsigned nb = 0;
    pios[nb++] = &fl;
    if (e->caps.discard)
        pios[nb++] = &ds;
    static struct iovec riov[NIO];
    for (unsigned i = 2; i < NIO && nb < NIO; i++) {
        riov[i] = (struct iovec){ rb + (size_t)i * 65536, len[i] };
        ios[i] = (struct engine_io){ .op = ENGINE_OP_READ, .offset = (uint64_t)i * 65536,
                                     .len = len[i], .iov = &riov[i], .iovcnt = 1 };
        pios[nb++] = &ios[i];
    }
    T_EQ(ec_run_ios(e, q, pios, nb), 0);
    T_EQ(fl.result, 0);
    if (e->caps.discard)
        T_EQ(ds.result, 0);
    bad = 0;
    for (unsigned i = 2; i < NIO; i++)
        bad += ios[i].result != (int64_t)len[i] ||
               memcmp(rb + (size_t)i * 65536, wb + (size_t)i * 65536, len[i]) != 0;
    T_EQ(bad, 0);
    T_CHECK(t_count_threads_pid(pid) == threads0 + 1, "%s: threads %d, expected %d (one worker)",
            what, t_count_threads_pid(pid), threads0 + 1);
    if (check_path) {
        int fd = open(check_path, O_RDONLY);
        T_ASSERT(fd >= 0);
        uint8_t *cb = ec_abuf(65536, 0);
        bad = 0;
        for (unsigned i = 1; i < NIO; i++)
            bad += pread(fd, cb, len[i], (off_t)i * 65536) != (ssize_t)len[i] ||
                   memcmp(cb, wb + (size_t)i * 65536, len[i]) != 0;
        T_EQ(bad, 0);
        if (e->caps.discard)
            T_CHECK(e2e_is_hole(check_path, 0, 65536), "%s: slot 0 not a hole after discard", what);
        free(cb);
        close(fd);
    }

    /* close with I/O in flight: waits, loses nothing, leaks nothing */
    for (unsigned i = 0; i < NIO - 2; i++) {
        ios[i] = (struct engine_io){ .op = ENGINE_OP_WRITE, .offset = (uint64_t)i * 65536,
                                     .len = len[i], .iov = iov[i], .iovcnt = 1 };
        iov[i][0] = (struct iovec){ wb + (size_t)i * 65536, len[i] };
        T_EQ(e->ops->queue_io(q, &ios[i]), 0);
    }
    T_EQ(e->ops->queue_io(q, &fl), 0);
    if (e->caps.discard)
        T_EQ(e->ops->queue_io(q, &ds), 0);
    T_CHECK(e->ops->submit(q) > 0, "submit");
    e->ops->queue_close(q);
    T_EQ(t_count_threads_pid(pid), threads0);
    free(wb);
    free(rb);
}

static void test_file(const char *dir, const char *what, bool expect_discard)
{
    char *path = ec_make_image(dir, "img.raw", IMG_SIZE);
    int fds0 = t_count_fds_pid(getpid());
    struct engine *e = open_aio(path, &P);
    ec_check_file_props(e, path, what, IMG_SIZE, expect_discard);
    basic(e, what, path);
    many(e, what, path);
    e->ops->close(e);
    T_EQ(t_count_fds_pid(getpid()), fds0);

    /* read-only: writes fail, reads work, no discard */
    ec_check_readonly(open_aio, path, &P, what);
    unlink(path);
    free(path);
}

/* ramfs refuses O_DIRECT: reopened buffered (io_submit then does the I/O). */
static void test_ramfs(void)
{
    char *dir, *path = ec_ramfs_image("buffered part", &dir);
    if (!path)
        return;
    ec_check_ramfs_engine(open_aio(path, &P), 4, true);
    ec_ramfs_done(dir, path);
}

static void test_loop(void)
{
    char dev[64];
    char *img = ec_loop_image(32 * MiB, dev, sizeof(dev), "loop device part");
    if (!img)
        return;
    struct engine *e = open_aio(dev, &P);
    ec_check_blockdev_props(e, dev, 32 * MiB);
    basic(e, dev, NULL);
    /* the data went through the loop device into the image */
    ec_check_loop_image(img);
    many(e, dev, NULL);
    e->ops->close(e);
    free(img);
}

/* ---- fallback ------------------------------------------------------------------------ */

/* Make io_uring_setup fail with `err` in this process and its children (a
 * seccomp profile, as container runtimes install).  0 or -errno. */
static int deny_io_uring(int err)
{
#if defined(__x86_64__)
    const uint32_t arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
    const uint32_t arch = AUDIT_ARCH_AARCH64;
#else
    return -ENOTSUP;
#endif
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((uint32_t)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = ARRAY_SIZE(f), .filter = f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
        return -errno;
    return 0;
}

static int uring_probe(void)
{
    struct io_uring r;
    int rc = io_uring_queue_init(1, &r, 0);
    if (rc == 0)
        io_uring_queue_exit(&r);
    return rc;
}

static int count_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "re");
    char line[1024];
    int n = 0;
    while (f && fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return n;
}

/* In a child: deny io_uring with err, open `path` unprefixed twice and with
 * explicit prefixes; exit status = failures. */
static void fallback_child(const char *path, int err, const char *logpath)
{
    t_failures = 0;                         /* the parent's are not ours */
    T_ASSERT(log_init("t_engine_aio", LOG_TARGET_FILE, logpath, LOG_INFO) == 0, "log file");
    T_ASSERT(deny_io_uring(err) == 0, "seccomp: %s", strerror(errno));
    T_EQ(uring_probe(), -err);
    bool expect_aio = err == ENOSYS || err == EPERM;
    for (int i = 0; i < 2; i++) {
        struct engine *e = NULL;
        T_ASSERT(engine_open_params(path, &P, false, &e) == 0, "default open");
        T_CHECK(e->ops == (expect_aio ? &engine_aio : &engine_uring), "err %d: default engine %s",
                err, e->ops->name);
        struct engine_queue *q = NULL;
        int rc = e->ops->queue_open(e, 4, &q);
        if (expect_aio) {
            T_ASSERT(rc == 0, "aio queue_open %d", rc);
            ec_check_roundtrip(e, q, 4096, 0x3C, true, "fallback");
            e->ops->queue_close(q);
        } else {
            T_EQ(rc, -err);                 /* uring kept: the real error at queue_open */
        }
        e->ops->close(e);
    }
    /* an explicit prefix is obeyed: uring: opens, its queue cannot */
    char spec[600];
    snprintf(spec, sizeof(spec), "uring:%s", path);
    struct engine *e = NULL;
    T_ASSERT(engine_open_params(spec, &P, false, &e) == 0, "uring: open");
    T_CHECK(e->ops == &engine_uring, "uring: gave %s", e->ops->name);
    struct engine_queue *q = NULL;
    T_EQ(e->ops->queue_open(e, 4, &q), -err);
    e->ops->close(e);
    e = open_aio(path, &P);
    e->ops->close(e);
    _exit(t_failures ? 1 : 0);
}

static void test_fallback(void)
{
    char *path = ec_make_image(t_tmpdir(0), "fb.raw", 4 * MiB);
    /* without a seccomp profile: uring wherever io_uring works */
    int probe = uring_probe();
    struct engine *e = NULL;
    T_ASSERT(engine_open_params(path, &P, false, &e) == 0, "default open");
    T_CHECK(e->ops == (probe == 0 ? &engine_uring : &engine_aio), "default engine %s (probe %d)",
            e->ops->name, probe);
    e->ops->close(e);

    static const int errs[] = { ENOSYS, EPERM, ENOMEM };
    for (unsigned i = 0; i < ARRAY_SIZE(errs); i++) {
        char logpath[512];
        snprintf(logpath, sizeof(logpath), "%s/fallback-%d.log", t_tmpdir(0), errs[i]);
        fflush(NULL);
        pid_t pid = fork();
        T_ASSERT(pid >= 0);
        if (pid == 0)
            fallback_child(path, errs[i], logpath);
        int st;
        T_ASSERT(waitpid(pid, &st, 0) == pid);
        T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "fallback child (%s): status 0x%x",
                strerror(errs[i]), st);
        int warn = count_in_file(logpath, "using the aio engine");
        int info = count_in_file(logpath, "engine aio");
        T_LOG("io_uring_setup -> %s: %d warning, %d info lines", strerror(errs[i]), warn, info);
        if (errs[i] == ENOMEM) {
            T_EQ(warn, 0);
            T_EQ(info, 0);
        } else {
            T_EQ(warn, 1);                  /* one warning per process */
            T_EQ(info, 1);                  /* the second open: info level */
        }
    }
    unlink(path);
    free(path);
}

/* ---- the daemon end to end ----------------------------------------------------------- */

/* A verified guest workload plus flush and discard on `target`; the daemon's
 * AIO contexts, io_uring fds and aio worker threads counted while connected. */
static void e2e_run(struct e2e *e, unsigned domid, const char *target, const char *img,
                    bool expect_aio, bool check_threads)
{
    char before[1024], disc[64], off[32], len[32];
    snprintf(before, sizeof(before),
             "echo \"engine-check aio-maps=$(grep -c '\\[aio\\]' /proc/%d/maps)"
             " uring-fds=$(ls -l /proc/%d/fd | grep -c io_uring)"
             " workers=$(cat /proc/%d/task/*/comm | grep -c xbd-aio-sync)\"",
             (int)e->d.pid, (int)e->d.pid, (int)e->d.pid);
    snprintf(disc, sizeof(disc), "%u:%u", 1u << 20, 2u << 20);
    snprintf(off, sizeof(off), "%u", 4u << 20);
    snprintf(len, sizeof(len), "%u", 12u << 20);
    const char *args[] = { "--rw", "randrw", "--bs-range", "512-256k", "--indirect-segs", "128",
        "--iodepth", "32", "--queues", "2", "--size", "32m", "--verify", "--page-offset", "rand",
        "--offset", off, "--length", len, "--flush", "--discard", disc,
        "--before-detach", before, NULL };
    int threads0 = t_count_threads_pid(e->d.pid);
    char *out = NULL;
    int rc = e2e_bench(e, domid, target, args, &out);
    T_CHECK(rc == 0, "%s: xen-blkbench exit %d", target, rc);
    T_ASSERT(out);
    T_EQ(e2e_field(out, "verify", "mismatches"), 0);
    T_CHECK(e2e_field(out, "verify", "sectors") > 0, "nothing verified");
    T_EQ(e2e_field(out, "status", "error"), 0);
    T_CHECK(strstr(out, "flush op=flush-cache status=okay") != NULL, "flush not OKAY");
    T_EQ(e2e_field(out, "discard", "failed"), 0);
    T_EQ(e2e_field(out, "detach", "grants-leaked"), 0);
    T_CHECK(e2e_is_hole(img, 1u << 20, 2u << 20), "discarded range is not a hole");
    long long maps = e2e_field(out, "engine-check", "aio-maps");
    long long ufds = e2e_field(out, "engine-check", "uring-fds");
    long long workers = e2e_field(out, "engine-check", "workers");
    T_LOG("%s while connected: %lld AIO contexts, %lld io_uring fds, %lld aio workers", target,
          maps, ufds, workers);
    if (expect_aio) {
        T_EQ(maps, 2);                      /* one AIO context per ring queue */
        T_EQ(ufds, 0);
        T_CHECK(workers >= 1, "no flush/discard worker ran");
    } else {
        T_EQ(maps, 0);
        T_EQ(ufds, 2);
    }
    free(out);
    T_EQ(t_daemon_ndevices(&e->d), 0);
    if (check_threads)                      /* the first run may start lasting threads */
        T_EQ(t_count_threads_pid(e->d.pid), threads0);
    T_EQ(t_count_maps_pid(e->d.pid, "[aio]"), 0);
}

static void test_e2e(void)
{
    struct e2e e;
    const char *dargs[] = { "--max-queues=2", NULL };
    e2e_start(&e, dargs);
    const char *img = e2e_make_image(&e, "aio.img", 32);
    char target[600];
    snprintf(target, sizeof(target), "aio:%s", img);
    e2e_run(&e, 1, target, img, true, false);
    e2e_run(&e, 2, target, img, true, true);    /* again: nothing left over from the first */
    if (uring_probe() == 0)                     /* the counts tell the engines apart */
        e2e_run(&e, 3, img, img, false, true);
    T_EQ(count_in_file(e.d.log, "using the aio engine"), 0);
    T_EQ(e2e_stop(&e), 0);                      /* LeakSanitizer at the daemon's exit */

    /* io_uring denied to the daemon (and this process) by seccomp: a plain
     * path falls back to aio, with one warning in the daemon's log */
    int rc = deny_io_uring(EPERM);
    if (rc < 0) {
        T_LOG("note: seccomp unavailable (%s): daemon fallback part skipped", strerror(-rc));
        return;
    }
    e2e_start(&e, dargs);
    img = e2e_make_image(&e, "fallback.img", 32);
    e2e_run(&e, 4, img, img, true, false);
    e2e_run(&e, 5, img, img, true, true);
    T_EQ(count_in_file(e.d.log, "using the aio engine"), 1);
    T_EQ(count_in_file(e.d.log, "engine aio"), 1);
    T_EQ(e2e_stop(&e), 0);
    if (t_failures)
        t_daemon_dump_log(&e.d, 40);
}

int main(void)
{
    setenv("TMPDIR", getenv("XBD_WORKDIR") ? getenv("XBD_WORKDIR") : "/var/tmp", 0);
    log_init("t_engine_aio", LOG_TARGET_STDERR, NULL, LOG_DEBUG);
    test_file(t_tmpdir(0), "file on /var/tmp", true);
    test_file(t_tmpdir(1), "file on /dev/shm", true);
    test_ramfs();
    test_loop();
    test_fallback();
    test_e2e();                             /* last: it installs a seccomp profile */
    return t_done();
}
