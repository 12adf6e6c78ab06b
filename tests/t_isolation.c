/*
 * --isolation=domain (xen-blkbackd(8) ISOLATION): two simulated guests run
 * verified random I/O on their own image files; each domain is served by a
 * worker process of its own (pids from the control socket and
 * xen-blkbackctl list, children of the daemon in /proc), whose queue
 * threads run under the seccomp filter and whose fds hold its own image,
 * not the other domain's.  One worker is killed with SIGKILL mid-run: the
 * other guest's run goes on and finishes without an error, and the killed
 * one's disk comes back through the restart path in a new worker (its
 * guest finishes with no error and no verify mismatch).  Then the daemon
 * exits cleanly and every worker with it.  Last, a guest whose every worker
 * dies (the seccomp test hook): after 5 deaths its disk fails, the daemon
 * lives.  And under --seccomp=trap, a worker whose main thread makes a
 * forbidden syscall before it serves (the worker:D test hook): the worker
 * reports it as the daemon would (syscall number, thread, list), dies of
 * SIGSYS and is replaced by a new worker that serves its guest verified,
 * while the other domain's guest runs on in its first worker.
 */
#include "harness.h"
#include "util.h"
#include "lib/e2e.h"

#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEVID 51712             /* xvda, xen-blkbench's default */

static const char *daemon_args[] = {
    "--isolation=domain", "--seccomp=kill", "--max-queues=2", "--stop-timeout=3000", NULL,
};

static const char *trap_args[] = {
    "--isolation=domain", "--seccomp=trap", "--max-queues=2", "--stop-timeout=3000", NULL,
};

static long worker_of(struct e2e *e, unsigned domid)
{
    return (long)t_daemon_dev_int(&e->d, domid, DEVID, "worker_pid");
}

/* Does a thread of pid show "Seccomp:\t2" (a filter) in its status? */
static bool has_filter(long pid)
{
    char *out = NULL;
    e2e_sh(&out, "grep -h '^Seccomp:' /proc/%ld/task/*/status | grep -c '2$'", pid);
    bool yes = out && atoi(out) > 0;
    free(out);
    return yes;
}

/* Does pid hold an fd on path? */
static bool holds(long pid, const char *path)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        return false;
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%ld/fd", pid);
    DIR *d = opendir(dir);
    bool found = false;
    struct dirent *de;
    while (d && !found && (de = readdir(d))) {
        char p[400], l[PATH_MAX];
        snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
        ssize_t n = readlink(p, l, sizeof(l) - 1);
        if (n > 0) {
            l[n] = 0;
            found = !strcmp(l, real);
        }
    }
    if (d)
        closedir(d);
    return found;
}

static long ppid_of(long pid)
{
    char *out = NULL;
    e2e_sh(&out, "awk '/^PPid:/ { print $2 }' /proc/%ld/status", pid);
    long p = out ? atol(out) : -1;
    free(out);
    return p;
}

/* Wait until domid's device has done some writes in a worker; its pid. */
static long wait_served(struct e2e *e, unsigned domid, long not_pid)
{
    uint64_t end = xbd_now_ms() + 20000;
    while (xbd_now_ms() < end) {
        long w = worker_of(e, domid);
        if (w > 0 && w != not_pid && t_daemon_stat(&e->d, domid, DEVID, "wr_req") > 20)
            return w;
        usleep(10000);
    }
    T_CHECK(false, "dom %u: not served by a worker (other than %ld) within 20 s", domid, not_pid);
    return -1;
}

static void check_guest(struct e2e *e, pid_t child, const char *out_path, unsigned domid)
{
    char what[32], *out;
    snprintf(what, sizeof(what), "dom %u", domid);
    e2e_bench_join(e, child, out_path, what, &out);
    T_EQ(out ? e2e_field(out, "status", "error") : -1, 0);
    T_EQ(out ? e2e_field(out, "status", "unexpected") : -1, 0);
    T_EQ(out ? e2e_field(out, "verify", "mismatches") : -1, 0);
    T_CHECK(out && e2e_field(out, "verify", "sectors") > 0, "dom %u: nothing verified", domid);
    T_LOG("dom %u: guest ok, max request latency %lld ms", domid,
          out ? e2e_field(out, "latency-us", "max") / 1000 : -1);
    free(out);
}

/* Lines of the test's daemon log (every daemon of the test) that match the
 * extended regular expression `re`. */
static long long log_count(struct e2e *e, const char *re)
{
    char *l = NULL;
    e2e_sh(&l, "grep -acE '%s' '%s'", re, e->d.log);
    long long n = l ? atoll(l) : -1;
    free(l);
    return n;
}

/* --seccomp=trap, the worker:14 hook: domain 14's first worker makes an
 * mount(NULL, ...) on its main thread before it serves anything, where no queue
 * thread of that process has loaded a list (and installed the report) yet.
 * It reports and dies of SIGSYS; the daemon starts another worker for the
 * connect, which serves the guest; domain 13's guest and worker go on. */
static void trapped_worker(struct e2e *e)
{
    long long before = log_count(e, "seccomp: forbidden syscall");
    setenv("XBD_TEST_FORBIDDEN_SYSCALL", "worker:14", 1);
    e2e_daemon_start(e, trap_args);
    unsetenv("XBD_TEST_FORBIDDEN_SYSCALL");
    const unsigned dom[2] = { 13, 14 };
    const char *args[] = { "--rw", "randrw", "--bs-range", "512-64k", "--iodepth", "16",
        "--queues", "2", "--runtime", "6", "--length", "8m", "--verify", "--flush",
        "--timeout", "30", NULL };
    char out_path[2][600];
    pid_t child[2];
    long w[2];
    for (int i = 0; i < 2; i++) {
        char img[32];
        snprintf(img, sizeof(img), "iso-%u.img", dom[i]);
        snprintf(out_path[i], sizeof(out_path[i]), "%s/iso-%u.out", e->work, dom[i]);
        child[i] = e2e_bench_bg(e, dom[i], e2e_make_image(e, img, 16), args, out_path[i]);
        w[i] = wait_served(e, dom[i], 0);       /* 13 first: 14's trap finds it serving */
    }
    T_LOG("trap: dom 13 worker %ld, dom 14 worker %ld (daemon %ld)", w[0], w[1], (long)e->d.pid);
    char re[300];
    snprintf(re, sizeof(re), "xen-blkbackd: seccomp: forbidden syscall %d \\(arch 0x[0-9a-f]+\\) "
             "in thread xbd-dom14 \\(tid [0-9]+, control list\\): killing the process",
             (int)SYS_mount);
    long long n = log_count(e, re);
    T_CHECK(n == 1, "dom 14: %lld report line(s) of the worker's mount (%d), want 1", n,
            (int)SYS_mount);
    T_EQ(log_count(e, "seccomp: forbidden syscall") - before, 1);
    snprintf(re, sizeof(re), "isolation worker pid [0-9]+ of domain 14 killed by signal %d ",
             SIGSYS);
    T_EQ(log_count(e, re), 1);
    T_EQ(log_count(e, "isolation worker for domain 14 started"), 2);
    T_EQ(log_count(e, "isolation worker for domain 13 started"), 1);
    T_CHECK(w[1] > 0 && w[1] != w[0], "dom 14: no second worker");
    T_EQ(worker_of(e, 13), w[0]);               /* untouched */
    for (int i = 0; i < 2; i++)
        check_guest(e, child[i], out_path[i], dom[i]);
    T_CHECK(t_daemon_alive(&e->d), "the daemon died with its worker");
    char *l = NULL;
    e2e_sh(&l, "grep -aE 'seccomp: forbidden|isolation worker.*domain 14|vbd 14/%u: backend' "
           "'%s' | cut -c 1-200", DEVID, e->d.log);
    T_LOG("dom 14:\n%s", l ? l : "");
    free(l);
}

int main(void)
{
    struct e2e e;
    e2e_start(&e, daemon_args);
    const unsigned dom[2] = { 10, 11 };
    const char *img[2];
    char out_path[2][600];
    pid_t child[2];
    img[0] = e2e_make_image(&e, "iso-a.img", 32);
    img[1] = e2e_make_image(&e, "iso-b.img", 32);
    const char *args[] = { "--rw", "randrw", "--bs-range", "512-64k", "--iodepth", "32",
        "--queues", "2", "--runtime", "8", "--length", "16m", "--verify", "--flush",
        "--timeout", "30", NULL };
    for (int i = 0; i < 2; i++) {
        snprintf(out_path[i], sizeof(out_path[i]), "%s/iso-%u.out", e.work, dom[i]);
        child[i] = e2e_bench_bg(&e, dom[i], img[i], args, out_path[i]);
    }
    long w[2];
    for (int i = 0; i < 2; i++)
        w[i] = wait_served(&e, dom[i], 0);
    T_LOG("workers: dom %u pid %ld, dom %u pid %ld (daemon %ld)", dom[0], w[0], dom[1], w[1],
          (long)e.d.pid);
    T_CHECK(w[0] > 0 && w[1] > 0 && w[0] != w[1], "one worker per domain");
    for (int i = 0; i < 2; i++) {
        T_CHECK(w[i] != e.d.pid && ppid_of(w[i]) == e.d.pid, "dom %u: worker %ld is not a "
                "child of the daemon", dom[i], w[i]);
        T_CHECK(has_filter(w[i]), "dom %u: no thread of worker %ld has a seccomp filter",
                dom[i], w[i]);
        T_CHECK(holds(w[i], img[i]), "dom %u: worker %ld does not hold its image", dom[i], w[i]);
        T_CHECK(!holds(w[i], img[1 - i]), "dom %u: worker %ld holds the other domain's image",
                dom[i], w[i]);
    }
    /* xen-blkbackctl shows them too */
    char *list = NULL;
    e2e_sh(&list, "'%s' -s '%s' list", t_prog("xen-blkbackctl"), e.d.sock);
    for (int i = 0; i < 2; i++) {
        char want[32];
        snprintf(want, sizeof(want), "worker=%ld", w[i]);
        T_CHECK(list && strstr(list, want), "xen-blkbackctl list lacks %s:\n%s", want,
                list ? list : "");
    }
    free(list);

    /* Kill domain 10's worker mid-run.  Never kill(-1) or kill(0): as root
     * that signals every process of the machine or the test's own group. */
    T_ASSERT(w[0] > 1 && w[0] != e.d.pid, "no worker pid for dom %u (%ld): nothing to kill",
             dom[0], w[0]);
    T_EQ(kill((pid_t)w[0], SIGKILL), 0);
    long again = wait_served(&e, dom[0], w[0]);
    T_LOG("dom %u: new worker pid %ld", dom[0], again);
    T_CHECK(again > 0 && again != w[0] && again != w[1], "dom %u: no new worker", dom[0]);
    T_EQ(worker_of(&e, dom[1]), w[1]);          /* the other domain's is untouched */
    for (int i = 0; i < 2; i++)
        check_guest(&e, child[i], out_path[i], dom[i]);
    char *l = NULL;
    e2e_sh(&l, "grep -ac 'isolation worker pid %ld of domain %u killed' '%s'", w[0], dom[0],
           e.d.log);
    T_CHECK(l && atoi(l) == 1, "the worker's death was not logged once (%s)", l ? l : "none");
    free(l);
    e2e_sh(&l, "grep -aE 'isolation worker|vbd %u/%u(: reattach| queue [0-9]+: re-issuing)' "
           "'%s' | cut -c 1-200", dom[0], DEVID, e.d.log);
    T_LOG("the daemon's lines on the workers and the reattach:\n%s", l ? l : "");
    free(l);
    e2e_sh(&l, "grep -ac 'vbd %u/%u: reattached' '%s'", dom[1], DEVID, e.d.log);
    T_CHECK(l && atoi(l) == 0, "dom %u was reattached too (%s)", dom[1], l ? l : "none");
    free(l);

    e2e_sh(&l, "grep -ac 'vbd %u/%u: reattached' '%s'", dom[0], DEVID, e.d.log);
    T_CHECK(l && atoi(l) == 1, "dom %u was not reattached once (%s)", dom[0], l ? l : "none");
    free(l);

    T_EQ(t_daemon_stop(&e.d, 15000), 0);
    for (int i = 0; i < 2; i++)
        T_CHECK(kill((pid_t)(i ? w[1] : again), 0) < 0, "a worker outlived the daemon");

    /* A guest whose every worker dies (the test hook: each confined queue
     * thread makes a forbidden syscall, --seccomp=kill): the daemon lives,
     * and after 5 deaths the disk fails instead of a sixth worker. */
    setenv("XBD_TEST_FORBIDDEN_SYSCALL", "queue", 1);
    e2e_daemon_start(&e, daemon_args);
    unsetenv("XBD_TEST_FORBIDDEN_SYSCALL");
    const char *vargs[] = { "--rw", "write", "--size", "1m", "--timeout", "5", NULL };
    char *vout = NULL;
    T_CHECK(e2e_bench(&e, 12, e2e_make_image(&e, "iso-c.img", 8), vargs, &vout) != 0,
            "dom 12: served by workers that broke their list");
    free(vout);
    uint64_t end = xbd_now_ms() + 30000;
    while (xbd_now_ms() < end) {
        e2e_sh(&l, "grep -ac 'vbd 12/%u: its isolation worker died 5 times in 60 s' '%s'",
               DEVID, e.d.log);
        bool done = l && atoi(l) == 1;
        free(l);
        if (done)
            break;
        usleep(50000);
    }
    T_CHECK(xbd_now_ms() < end, "dom 12: the disk did not fail after 5 worker deaths");
    e2e_sh(&l, "grep -ac 'isolation worker pid [0-9]* of domain 12 killed by signal' '%s'",
           e.d.log);
    T_CHECK(l && atoi(l) == 5, "dom 12: %s worker deaths logged, want 5", l ? l : "no");
    free(l);
    T_CHECK(t_daemon_alive(&e.d), "the daemon died with its workers");
    e2e_sh(&l, "grep -aE 'of domain 12 killed|vbd 12/%u: (its isolation|backend .* Closing)' "
           "'%s' | cut -c 1-160", DEVID, e.d.log);
    T_LOG("dom 12:\n%s", l ? l : "");
    free(l);
    T_EQ(t_daemon_stop(&e.d, 15000), 0);
    trapped_worker(&e);

    T_EQ(e2e_stop(&e), 0);
    /* the workers' own exits: no sanitizer report (they log to the daemon's stderr) */
    T_ASSERT(access(e.d.log, R_OK) == 0);
    e2e_sh(&l, "grep -ac 'Sanitizer' '%s'", e.d.log);
    T_CHECK(l && atoi(l) == 0, "a sanitizer report in the daemon's log (%s)", l ? l : "none");
    free(l);
    return t_done();
}
