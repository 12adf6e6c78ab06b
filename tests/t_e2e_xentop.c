/* t_e2e_xentop: the statistics file of a vbd3 device that libxenstat (xentop) reads, read back as libxenstat does (kthread-pid from xenstore, /dev/shm/td3-<pid>/vbd-<domid>-<devid>, one 96-byte version-1 record): it holds the guest's own request and sector counts (xen-blkbench, 4 queues, mixed sizes) and the daemon's oo_req, is gone with its directory once the guest detaches, goes on from the previous daemon's figures after a SIGTERM (on-exit=leave keeps it) or a SIGKILL restart with nothing left of the old one, and when it cannot be created the guest is served and one warning is logged; the file helpers refuse a pid that is not a number and a record of another version. */
#include "harness.h"
#include "lib/e2e.h"
#include "../src/backend/backend.h"

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xenstore.h>

#define DEVID 51712             /* xvda, xen-blkbench's default */

/*
 * libxenstat's side, written from its reading code and not from the
 * daemon's headers, so that a layout mistake in the daemon fails here:
 * struct vbd3_stats of xen-project/xen:tools/libs/stat/xenstat_priv.h@RELEASE-4.20.0
 * and read_attributes_vbd3 / xenstat_collect_vbds of
 * tools/libs/stat/xenstat_linux.c@RELEASE-4.20.0.
 */
struct xenstat_vbd3_stats {
    uint32_t version;
    uint32_t __pad;
    uint64_t oo_reqs;
    uint64_t read_reqs_submitted;
    uint64_t read_reqs_completed;
    uint64_t read_sectors;
    uint64_t read_total_ticks;
    uint64_t write_reqs_submitted;
    uint64_t write_reqs_completed;
    uint64_t write_sectors;
    uint64_t write_total_ticks;
    uint64_t io_errors;
    uint64_t flags;
};
_Static_assert(sizeof(struct xenstat_vbd3_stats) == 96, "libxenstat reads 96 bytes");

struct xrec {
    char pid[32];
    char path[256];
    struct xenstat_vbd3_stats s;
};

/* As libxenstat: 0; -ENOENT without kthread-pid (it leaves the vbd out);
 * -EIO when the file cannot be opened, is short or not version 1 (it shows
 * the vbd as "-"). */
static int xenstat_read(unsigned domid, unsigned devid, struct xrec *r)
{
    memset(r, 0, sizeof(*r));
    struct xs_handle *xs = xs_open(0);
    if (!xs)
        return -errno;
    char p[128];
    snprintf(p, sizeof(p), "/local/domain/0/backend/vbd3/%u/%u/kthread-pid", domid, devid);
    char *pid = xs_read(xs, XBT_NULL, p, NULL);
    xs_close(xs);
    if (!pid)
        return -ENOENT;
    snprintf(r->pid, sizeof(r->pid), "%s", pid);
    snprintf(r->path, sizeof(r->path), "/dev/shm/td3-%s/vbd-%u-%u", pid, domid, devid);
    free(pid);
    FILE *fp = fopen(r->path, "rb");
    if (!fp)
        return -EIO;
    int rc = fread(&r->s, sizeof(r->s), 1, fp) == 1 && r->s.version == 1 ? 0 : -EIO;
    fclose(fp);
    return rc;
}

/* `t_e2e_xentop read DOMID DEVID` (run by xen-blkbench --before-detach):
 * one line "xenstat rc=0 pid=... rd=... ..." for e2e_field. */
static int read_main(unsigned domid, unsigned devid)
{
    struct xrec r;
    int rc = xenstat_read(domid, devid, &r);
    const struct xenstat_vbd3_stats *s = &r.s;
    printf("xenstat rc=%d pid=%s oo=%llu rd=%llu rd_done=%llu rsect=%llu rticks=%llu wr=%llu "
           "wr_done=%llu wsect=%llu wticks=%llu errors=%llu flags=%llu\n", rc,
           r.pid[0] ? r.pid : "-1", (unsigned long long)s->oo_reqs,
           (unsigned long long)s->read_reqs_submitted, (unsigned long long)s->read_reqs_completed,
           (unsigned long long)s->read_sectors, (unsigned long long)s->read_total_ticks,
           (unsigned long long)s->write_reqs_submitted,
           (unsigned long long)s->write_reqs_completed, (unsigned long long)s->write_sectors,
           (unsigned long long)s->write_total_ticks, (unsigned long long)s->io_errors,
           (unsigned long long)s->flags);
    return 0;
}

static struct e2e E;
static const char *daemon_args[] = { "--backend-types=vbd3", "--max-queues=4", NULL };

static const char *self_exe(void)
{
    static char p[512];
    ssize_t n = readlink("/proc/self/exe", p, sizeof(p) - 1);
    T_ASSERT(n > 0);
    p[n] = '\0';
    return p;
}

/* The value of counter `name` in `xen-blkbackctl stats` output; -1 if absent. */
static long long stat_of(const char *out, const char *name)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "  %s ", name);
    const char *p = out ? strstr(out, pat) : NULL;
    return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Wait (up to 10 s) for path to be gone. */
static bool wait_gone(const char *path)
{
    for (int i = 0; i < 1000 && exists(path); i++)
        usleep(10000);
    return !exists(path);
}

/* The directory of a file path. */
static void dir_of(const char *path, char *dir, size_t len)
{
    snprintf(dir, len, "%s", path);
    char *s = strrchr(dir, '/');
    if (s)
        *s = '\0';
}

/* Count the lines of the daemon's log holding `needle`. */
static int log_count(const char *needle)
{
    char *out = NULL;
    e2e_sh(&out, "grep -c -a '%s' '%s'", needle, E.d.log);
    int n = out ? atoi(out) : -1;
    free(out);
    return n;
}

/* ---- the file helpers alone ------------------------------------------------------ */

static void test_helpers(void)
{
    T_LOG("file helpers");
    const char *root = t_tmpdir(1);
    struct td3_stats init = { .version = 7, .read_reqs_submitted = 5, .write_sectors = 40,
                              .flags = 9 };
    struct td3_file f = { 0 };
    T_EQ(td3_file_create(root, 4242, 3, 51728, &init, &f), 0);
    char path[400], dir[300];
    snprintf(dir, sizeof(dir), "%s/td3-4242", root);
    snprintf(path, sizeof(path), "%s/vbd-3-51728", dir);
    T_CHECK(!strcmp(f.path, path), "path %s", f.path);
    struct stat st;
    T_ASSERT(stat(path, &st) == 0);
    T_EQ(st.st_size, 4096);
    T_EQ(st.st_mode & 07777, 0600);
    T_ASSERT(stat(dir, &st) == 0);
    T_EQ(st.st_mode & 07777, 0700);
    T_EQ(f.mem->version, TD3_STATS_VERSION);      /* whatever init said */
    T_EQ(f.mem->flags, 0);
    T_EQ(f.mem->read_reqs_submitted, 5);
    f.mem->write_reqs_submitted = 11;              /* a store through the mapping ... */
    td3_file_close(&f, false);                     /* ... is in the file kept */
    T_CHECK(f.mem == NULL && exists(path), "kept");

    struct td3_stats got = { 0 };
    T_EQ(td3_file_take(root, "4242", 3, 51728, &got), 0);
    T_EQ(got.read_reqs_submitted, 5);
    T_EQ(got.write_reqs_submitted, 11);
    T_EQ(got.write_sectors, 40);
    T_CHECK(!exists(path) && !exists(dir), "taken: file and directory removed");
    T_EQ(td3_file_take(root, "4242", 3, 51728, &got), -ENOENT);

    /* a pid that is no number names no file */
    T_EQ(td3_file_take(root, "../td3-4242", 3, 51728, &got), -EINVAL);
    T_EQ(td3_file_take(root, "12ab", 3, 51728, &got), -EINVAL);
    T_EQ(td3_file_take(root, "", 3, 51728, &got), -EINVAL);
    T_EQ(td3_file_take(root, NULL, 3, 51728, &got), -EINVAL);

    /* a record of another version: refused (as libxenstat), removed all the same */
    T_EQ(td3_file_create(root, 4243, 1, 1, &init, &f), 0);
    f.mem->version = 2;
    td3_file_close(&f, false);
    memset(&got, 0xab, sizeof(got));
    T_EQ(td3_file_take(root, "4243", 1, 1, &got), -EINVAL);
    T_EQ(got.version, 0xabababab);                 /* untouched */
    snprintf(dir, sizeof(dir), "%s/td3-4243", root);
    T_CHECK(!exists(dir), "refused record left behind");

    /* two devices share the directory; it goes with the last one */
    struct td3_file a = { 0 }, b = { 0 };
    T_EQ(td3_file_create(root, 4244, 1, 1, &init, &a), 0);
    T_EQ(td3_file_create(root, 4244, 1, 2, &init, &b), 0);
    snprintf(dir, sizeof(dir), "%s/td3-4244", root);
    td3_file_close(&a, true);
    T_CHECK(exists(dir) && exists(b.path), "the other device's file stays");
    td3_file_close(&b, true);
    td3_file_close(&b, true);                      /* idempotent */
    T_CHECK(!exists(dir), "directory left behind");

    /* no directory to create it in: an error, nothing made */
    snprintf(dir, sizeof(dir), "%s/absent", root);
    T_EQ(td3_file_create(dir, 4245, 1, 1, &init, &f), -ENOENT);
    T_CHECK(f.mem == NULL, "mapped on error");
    T_EQ(t_count_dir(root), 0);
}

/* ---- the daemon ---------------------------------------------------------------- */

/* A vbd3 guest domid with `work` (NULL-terminated options), printing
 * libxenstat's view and the daemon's counters before it detaches; output
 * into *out, must exit 0. */
static void run_guest(unsigned domid, const char *img, const char *const *work, char **out)
{
    char before[1400];
    snprintf(before, sizeof(before), "'%s' read %u %u; '%s' -s '%s' stats %u %u", self_exe(),
             domid, DEVID, t_prog("xen-blkbackctl"), E.d.sock, domid, DEVID);
    const char *args[32] = { "--backend-type", "vbd3", "--before-detach", before };
    unsigned n = 4;
    for (unsigned i = 0; work[i] && n < 31; i++)
        args[n++] = work[i];
    args[n] = NULL;
    int rc = e2e_bench(&E, domid, img, args, out);
    T_CHECK(rc == 0, "dom %u: xen-blkbench exit %d", domid, rc);
    T_CHECK(e2e_field(*out, "status", "error") == 0, "dom %u: error responses", domid);
}

/* The figures libxenstat shows are the guest's own counts. */
static void check_counts(const char *out, const char *what)
{
    long long reads = e2e_field(out, "workload", "reads");
    long long writes = e2e_field(out, "workload", "writes");
    long long rbytes = e2e_field(out, "workload", "read-bytes");
    long long wbytes = e2e_field(out, "workload", "write-bytes");
    T_LOG("%s: guest reads %lld (%lld B), writes %lld (%lld B); xenstat rd %lld rsect %lld "
          "wr %lld wsect %lld oo %lld", what, reads, rbytes, writes, wbytes,
          e2e_field(out, "xenstat", "rd"), e2e_field(out, "xenstat", "rsect"),
          e2e_field(out, "xenstat", "wr"), e2e_field(out, "xenstat", "wsect"),
          e2e_field(out, "xenstat", "oo"));
    T_CHECK(reads > 0 && writes > 0, "%s: no mixed workload", what);
    T_EQ(e2e_field(out, "xenstat", "rc"), 0);
    T_EQ(e2e_field(out, "xenstat", "pid"), E.d.pid);
    T_EQ(e2e_field(out, "xenstat", "rd"), reads);
    T_EQ(e2e_field(out, "xenstat", "wr"), writes);
    T_EQ(e2e_field(out, "xenstat", "rsect"), rbytes / 512);
    T_EQ(e2e_field(out, "xenstat", "wsect"), wbytes / 512);
    T_EQ(e2e_field(out, "xenstat", "rd_done"), reads);
    T_EQ(e2e_field(out, "xenstat", "wr_done"), writes);
    T_EQ(e2e_field(out, "xenstat", "errors"), 0);
    T_EQ(e2e_field(out, "xenstat", "flags"), 0);
    /* OO and the rest as the daemon counts them */
    T_EQ(e2e_field(out, "xenstat", "oo"), stat_of(out, "oo_req"));
    T_EQ(e2e_field(out, "xenstat", "rd"), stat_of(out, "rd_req"));
    T_EQ(e2e_field(out, "xenstat", "wsect"), stat_of(out, "wr_sect"));
}

static void test_counts(void)
{
    T_LOG("counts: 4 queues, 512 B .. 64 KiB");
    const char *img = e2e_make_image(&E, "a.img", 32);
    const char *work[] = { "--queues", "4", "--rw", "randrw", "--bs-range", "512-64k",
                           "--iodepth", "16", "--size", "16M", NULL };
    char *out = NULL;
    run_guest(2, img, work, &out);
    check_counts(out, "dom 2");
    char path[300], dir[300];
    snprintf(path, sizeof(path), "/dev/shm/td3-%d/vbd-2-%u", (int)E.d.pid, DEVID);
    dir_of(path, dir, sizeof(dir));
    T_CHECK(wait_gone(path), "%s left after the detach", path);
    T_CHECK(wait_gone(dir), "%s left after the detach", dir);
    free(out);
}

/* Cannot create it (a file where the directory goes): served, one warning. */
static void test_cannot_create(void)
{
    T_LOG("cannot create");
    char block[64];
    snprintf(block, sizeof(block), "/dev/shm/td3-%d", (int)E.d.pid);
    int fd = open(block, O_CREAT | O_EXCL | O_WRONLY, 0600);
    T_ASSERT(fd >= 0, "%s: %s", block, strerror(errno));
    close(fd);
    const char *img = e2e_make_image(&E, "b.img", 8);
    const char *work[] = { "--rw", "randrw", "--size", "1M", NULL };
    char *out = NULL;
    run_guest(3, img, work, &out);
    T_CHECK(e2e_field(out, "workload", "ops") > 0, "no I/O");
    T_EQ(e2e_field(out, "xenstat", "rc"), -ENOENT);     /* no kthread-pid: left out */
    T_EQ(log_count("xentop statistics: cannot create"), 1);
    unlink(block);
    free(out);
}

/* Wait (up to 10 s) until libxenstat finds the file of daemon `pid`. */
static int wait_rec(unsigned domid, pid_t pid, struct xrec *r)
{
    int rc = -1;
    for (int i = 0; i < 1000; i++) {
        rc = xenstat_read(domid, DEVID, r);
        if (rc == 0 && atoi(r->pid) == (int)pid)
            return 0;
        usleep(10000);
    }
    return rc ? rc : -ESRCH;
}

static void same_counts(const struct xenstat_vbd3_stats *a, const struct xenstat_vbd3_stats *b,
                        const char *what)
{
    T_CHECK(a->oo_reqs == b->oo_reqs && a->read_reqs_submitted == b->read_reqs_submitted &&
            a->read_reqs_completed == b->read_reqs_completed &&
            a->read_sectors == b->read_sectors && a->read_total_ticks == b->read_total_ticks &&
            a->write_reqs_submitted == b->write_reqs_submitted &&
            a->write_reqs_completed == b->write_reqs_completed &&
            a->write_sectors == b->write_sectors && a->write_total_ticks == b->write_total_ticks &&
            a->io_errors == b->io_errors, "%s: rd %llu/%llu wr %llu/%llu rsect %llu/%llu "
            "wsect %llu/%llu", what, (unsigned long long)a->read_reqs_submitted,
            (unsigned long long)b->read_reqs_submitted,
            (unsigned long long)a->write_reqs_submitted,
            (unsigned long long)b->write_reqs_submitted, (unsigned long long)a->read_sectors,
            (unsigned long long)b->read_sectors, (unsigned long long)a->write_sectors,
            (unsigned long long)b->write_sectors);
}

/* Restart the daemon (sig: SIGTERM with on-exit=leave, or SIGKILL) under a
 * connected guest: the new daemon's file goes on from the old one's. */
static void restart(unsigned domid, int sig, const struct xrec *before)
{
    pid_t old = E.d.pid;
    char olddir[64];
    snprintf(olddir, sizeof(olddir), "/dev/shm/td3-%d", (int)old);
    if (sig == SIGTERM)
        T_EQ(e2e_stop(&E), 0);
    else
        T_EQ(t_daemon_signal(&E.d, SIGKILL, 15000), 128 + SIGKILL);
    /* what xentop shows meanwhile: the last figures */
    struct xrec mid;
    T_EQ(xenstat_read(domid, DEVID, &mid), 0);
    T_EQ(atoi(mid.pid), old);
    same_counts(&mid.s, &before->s, sig == SIGTERM ? "kept at exit" : "left by SIGKILL");
    e2e_daemon_start(&E, daemon_args);
    struct xrec now;
    T_EQ(wait_rec(domid, E.d.pid, &now), 0);
    same_counts(&now.s, &before->s, "after the restart");
    T_CHECK(!exists(before->path) && !exists(olddir), "the previous daemon's %s is left",
            before->path);
}

/* Wait (up to 60 s) for path to exist. */
static bool wait_exists(const char *path)
{
    for (int i = 0; i < 6000 && !exists(path); i++)
        usleep(10000);
    return exists(path);
}

/* A guest that stays connected and idle after its I/O (its --before-detach
 * waits for a go file) while the daemon is restarted twice under it; then
 * the toolstack detaches it. */
static void test_restart(void)
{
    T_LOG("restart");
    const char *img = e2e_make_image(&E, "c.img", 16);
    unsigned domid = 4;
    char ready[600], go[600], out_path[600], before[2400];
    snprintf(ready, sizeof(ready), "%s/ready", E.work);
    snprintf(go, sizeof(go), "%s/go", E.work);
    snprintf(out_path, sizeof(out_path), "%s/bench-%u.out", E.work, domid);
    snprintf(before, sizeof(before), "touch '%s'; for i in $(seq 1200); do [ -e '%s' ] && break; "
             "sleep 0.05; done; '%s' read %u %u", ready, go, self_exe(), domid, DEVID);
    const char *args[] = { "--backend-type", "vbd3", "--before-detach", before, "--queues", "2",
                           "--rw", "randrw", "--size", "4M", "--iodepth", "8", "--timeout", "60",
                           NULL };
    pid_t bench = e2e_bench_bg(&E, domid, img, args, out_path);
    T_ASSERT(wait_exists(ready), "the guest did not finish its I/O");
    struct xrec r0;
    T_EQ(xenstat_read(domid, DEVID, &r0), 0);
    T_EQ(atoi(r0.pid), E.d.pid);

    T_LOG("SIGTERM (on-exit=leave)");
    restart(domid, SIGTERM, &r0);
    struct xrec r1;
    T_EQ(xenstat_read(domid, DEVID, &r1), 0);
    T_LOG("SIGKILL");
    restart(domid, SIGKILL, &r1);
    T_EQ(log_count("xentop statistics: going on from the previous daemon"), 2);  /* one log */

    /* the guest detaches: its counts, read while still connected, are those
     * of the first daemon's file; then the file goes with the device */
    struct xrec r2;
    T_EQ(xenstat_read(domid, DEVID, &r2), 0);
    int fd = open(go, O_CREAT | O_WRONLY, 0600);
    T_ASSERT(fd >= 0);
    close(fd);
    int st = 0;
    T_ASSERT(waitpid(bench, &st, 0) == bench);
    T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "xen-blkbench failed");
    char *out = NULL;
    e2e_sh(&out, "cat '%s'", out_path);
    T_EQ(e2e_field(out, "xenstat", "rc"), 0);
    T_EQ(e2e_field(out, "xenstat", "pid"), E.d.pid);
    T_EQ(e2e_field(out, "xenstat", "rd"), e2e_field(out, "workload", "reads"));
    T_EQ(e2e_field(out, "xenstat", "wr"), e2e_field(out, "workload", "writes"));
    T_EQ(e2e_field(out, "xenstat", "rsect"), e2e_field(out, "workload", "read-bytes") / 512);
    T_EQ(e2e_field(out, "xenstat", "wsect"), e2e_field(out, "workload", "write-bytes") / 512);
    T_EQ(e2e_field(out, "xenstat", "rd"), r0.s.read_reqs_submitted);
    free(out);
    T_CHECK(wait_gone(r2.path), "%s left after the detach", r2.path);
    char dir[300];
    dir_of(r2.path, dir, sizeof(dir));
    T_CHECK(wait_gone(dir), "%s left after the detach", dir);
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "read"))
        return read_main((unsigned)atoi(argv[2]), (unsigned)atoi(argv[3]));
    test_helpers();
    e2e_start(&E, daemon_args);
    test_counts();
    test_cannot_create();
    test_restart();
    char dir[64];
    snprintf(dir, sizeof(dir), "/dev/shm/td3-%d", (int)E.d.pid);
    T_EQ(e2e_stop(&E), 0);
    T_CHECK(!exists(dir), "%s left at exit", dir);
    return t_done();
}
