/*
 * Confinement (xen-blkbackd(8) CONFINEMENT) on the simulated host: with
 * --seccomp=kill the uring and aio engines serve verified I/O (grant modes
 * copy, persistent, map) while every queue thread shows "Seccomp: 2" with
 * two filters in its /proc status and every other thread (the control
 * plane: main, libxenstore's reader) "Seccomp: 2"; the daemon is SIGKILLed under the
 * load and restarted, and the guest finishes clean.  A syscall outside the
 * list (the XBD_TEST_FORBIDDEN_SYSCALL hooks: a queue thread's ptrace, the
 * control plane's execve) kills the process of SIGSYS with the report in
 * trap mode and at once in kill mode, and the restarted daemon serves the
 * guest to the end; in log mode the queue threads' call is allowed, the
 * kernel's audit record names the syscall and the thread, and the guest
 * is served.  --user=65534 leaves no capability and that uid, and serves a
 * guest (attach, verified I/O, SIGKILL and restart) with no capability in
 * any thread.
 */
#include "harness.h"
#include "util.h"
#include "lib/e2e.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEVID 51712

static const char *kill_args[] = { "--seccomp=kill", NULL };
static const char *trap_args[] = { "--seccomp=trap", NULL };
/* T_CONFINE_TRAP=1: trap instead of kill, to see which syscall a list lacks. */
static const char *const *run_args = kill_args;

/* Value of "Key:" in /proc/<pid>/task/<tid>/<file> into v (trimmed). */
static bool proc_field(pid_t pid, const char *tid, const char *file, const char *key,
                       char *v, size_t len)
{
    char path[128], line[256];
    snprintf(path, sizeof(path), "/proc/%d/task/%s/%s", (int)pid, tid, file);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool found = false;
    size_t kl = strlen(key);
    while (!found && fgets(line, sizeof(line), f)) {
        if (key[0] && (strncmp(line, key, kl) || line[kl] != ':'))
            continue;
        const char *s = key[0] ? line + kl + 1 : line;
        s += strspn(s, " \t");
        snprintf(v, len, "%s", s);
        v[strcspn(v, "\n")] = 0;
        found = true;
    }
    fclose(f);
    return found;
}

/* Queue threads (comm xbd-q*) with Seccomp 2 and both lists (the control
 * plane's and their own: Seccomp_filters 2) into *conf, others into *bare;
 * every other thread (main, libxenstore's reader, aio workers) with
 * Seccomp 2 into *ctl_conf, without into *ctl_bare. */
static void count_confined(pid_t pid, unsigned *conf, unsigned *bare, unsigned *ctl_conf,
                           unsigned *ctl_bare)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    *conf = *bare = *ctl_conf = *ctl_bare = 0;
    DIR *d = opendir(dir);
    T_ASSERT(d);
    for (struct dirent *de; (de = readdir(d));) {
        char comm[32], sc[16], nf[16];
        if (de->d_name[0] == '.' || !proc_field(pid, de->d_name, "comm", "", comm, sizeof(comm)))
            continue;
        bool on = proc_field(pid, de->d_name, "status", "Seccomp", sc, sizeof(sc)) &&
                  !strcmp(sc, "2");
        if (strncmp(comm, "xbd-q", 5)) {
            (*(on ? ctl_conf : ctl_bare))++;
            if (!on)
                T_LOG("thread %s (%s): Seccomp %s", de->d_name, comm, sc);
            continue;
        }
        /* Seccomp_filters: Linux >= 5.9; without it, Seccomp 2 is all we see */
        bool two = !proc_field(pid, de->d_name, "status", "Seccomp_filters", nf, sizeof(nf)) ||
                   !strcmp(nf, "2");
        (*(on && two ? conf : bare))++;
    }
    closedir(d);
}

/* The guest's end: exit 0 and no verify mismatch. */
static void guest_done(struct e2e *e, pid_t child, const char *out_path, const char *what)
{
    int wst;
    T_ASSERT(waitpid(child, &wst, 0) == child);
    char *out = NULL;
    e2e_sh(&out, "cat '%s'", out_path);
    bool ok = WIFEXITED(wst) && WEXITSTATUS(wst) == 0;
    T_CHECK(ok, "%s: the guest saw an error", what);
    if (!ok) {
        fprintf(stderr, "%s", out ? out : "");
        t_daemon_dump_log(&e->d, 40);
    }
    T_EQ(out ? e2e_field(out, "verify", "mismatches") : -1, 0);
    free(out);
}

/* Verified guest I/O on `target` under --seccomp=kill, a SIGKILL and
 * restart in the middle; queue threads checked before the kill. */
static void run_case(struct e2e *e, unsigned domid, const char *engine, const char *mode)
{
    char img[32], target[600], out_path[600];
    snprintf(img, sizeof(img), "c%u.img", domid);
    snprintf(target, sizeof(target), "%s:%s", engine, e2e_make_image(e, img, 32));
    snprintf(out_path, sizeof(out_path), "%s/bench-%u.out", e->work, domid);
    T_LOG("dom %u: %s, grant mode %s, --seccomp=kill", domid, engine, mode);
    const char *args[] = { "--rw", "randrw", "--bs-range", "512-64k", "--iodepth", "32",
        "--queues", "2", "--grant-mode", mode, "--persistent", "--indirect-segs", "32",
        "--runtime", "3", "--size", "16m", "--verify", "--flush", "--timeout", "30", NULL };
    pid_t child = e2e_bench_bg(e, domid, target, args, out_path);
    uint64_t end = xbd_now_ms() + 15000;
    while (xbd_now_ms() < end && t_daemon_stat(&e->d, domid, DEVID, "wr_req") < 20)
        usleep(2000);
    T_CHECK(xbd_now_ms() < end, "dom %u: no I/O", domid);
    unsigned conf, bare, cconf, cbare;
    count_confined(e->d.pid, &conf, &bare, &cconf, &cbare);
    T_LOG("dom %u: %u queue thread(s) with Seccomp 2 and 2 filters, %u without; "
          "%u other thread(s) with Seccomp 2, %u without", domid, conf, bare, cconf, cbare);
    T_CHECK(conf >= 2 && bare == 0, "dom %u: queue threads confined %u, not %u", domid, conf, bare);
    /* main and libxenstore's watch reader at least */
    T_CHECK(cconf >= 2 && cbare == 0, "dom %u: control plane threads confined %u, not %u",
            domid, cconf, cbare);
    T_EQ(t_daemon_signal(&e->d, SIGKILL, 15000), 128 + SIGKILL);
    e2e_daemon_start(e, run_args);
    char what[32];
    snprintf(what, sizeof(what), "dom %u", domid);
    guest_done(e, child, out_path, what);
    T_CHECK(t_daemon_alive(&e->d), "dom %u: the daemon died under --seccomp=kill", domid);
}

/* The daemon restarted with --seccomp=mode and the test hook for `role`
 * (XBD_TEST_FORBIDDEN_SYSCALL, confine.h) in its environment. */
static void start_hooked(struct e2e *e, const char *mode, const char *role)
{
    static char arg[32];
    snprintf(arg, sizeof(arg), "--seccomp=%s", mode);
    const char *extra[] = { arg, NULL };
    if (e->d.pid > 0)
        T_EQ(t_daemon_stop(&e->d, 15000), 0);
    setenv("XBD_TEST_FORBIDDEN_SYSCALL", role, 1);
    e2e_daemon_start(e, extra);
    unsetenv("XBD_TEST_FORBIDDEN_SYSCALL");
}

/* The daemon's exit status (128 + signal) once it is gone, within 10 s;
 * SIGKILLed (and -1) if it lives on. */
static int wait_death(struct e2e *e)
{
    uint64_t end = xbd_now_ms() + 10000;
    int wst = 0;
    pid_t r = 0;
    while (xbd_now_ms() < end && (r = waitpid(e->d.pid, &wst, WNOHANG)) == 0)
        usleep(10000);
    if (r != e->d.pid) {
        t_daemon_signal(&e->d, SIGKILL, 5000);
        return -1;
    }
    e->d.pid = 0;
    return WIFSIGNALED(wst) ? 128 + WTERMSIG(wst) : WEXITSTATUS(wst);
}

/* Trap report lines in the test's daemon log (one file for every daemon of
 * the test) naming a thread that matches `thread` (a grep pattern) and the
 * list `list`. */
static long long reports(struct e2e *e, const char *thread, const char *list)
{
    char *l = NULL;
    e2e_sh(&l, "grep -ac 'seccomp: forbidden syscall [0-9]* (arch 0x[0-9a-f]*) in thread "
           "%s (tid [0-9]*, %s list): killing the process' '%s'", thread, list, e->d.log);
    long long n = l ? atoll(l) : -1;
    free(l);
    return n;
}

/* The kernel's audit records (SECCOMP, type 1326: dmesg) of process `pid`
 * for syscall `nr` in a thread named `comm` with action code `code` (0x7ffc0000
 * log, 0x80000000 kill process); -1 if the kernel log cannot be read. */
static long long audit_records(pid_t pid, const char *comm, int nr, const char *code)
{
    char *l = NULL;
    if (e2e_sh(NULL, "dmesg >/dev/null 2>&1") != 0)
        return -1;
    e2e_sh(&l, "dmesg | grep -c 'type=1326 .* pid=%d comm=\"%s\" .* syscall=%d .*code=%s'",
           (int)pid, comm, nr, code);
    long long n = l ? atoll(l) : 0;
    free(l);
    return n;
}

/* A verified guest workload on a new image in the background (runtime s). */
static pid_t guest_bg(struct e2e *e, unsigned domid, const char *runtime, char *out_path,
                      size_t len)
{
    char img[32];
    snprintf(img, sizeof(img), "g%u.img", domid);
    snprintf(out_path, len, "%s/guest-%u.out", e->work, domid);
    const char *args[] = { "--rw", "randrw", "--bs-range", "512-64k", "--iodepth", "16",
        "--queues", "2", "--runtime", runtime, "--verify", "--flush",
        "--timeout", "30", NULL };
    return e2e_bench_bg(e, domid, e2e_make_image(e, img, 16), args, out_path);
}

/* The test hook makes each confined queue thread step outside its list as
 * it starts: trap reports and dies, kill dies at once; either way the guest
 * that was connecting is served once the daemon is started again (the
 * restart path: the device is picked up where the dead daemon left it). */
static void violation(struct e2e *e, unsigned domid, const char *mode)
{
    start_hooked(e, mode, "queue");
    long long before = reports(e, "xbd-q[0-9]*", "queue");
    char out_path[600];
    pid_t child = guest_bg(e, domid, "2", out_path, sizeof(out_path));
    int st = wait_death(e);
    T_CHECK(st == 128 + SIGSYS, "%s: daemon status %d, want death by SIGSYS (%d)", mode, st,
            128 + SIGSYS);
    long long n = reports(e, "xbd-q[0-9]*", "queue");
    long long want = before + !strcmp(mode, "trap");
    T_CHECK(n == want, "%s: %lld report line(s) in the log, want %lld", mode, n, want);
    if (n != want)
        t_daemon_dump_log(&e->d, 8);
    T_LOG("%s: a queue thread's ptrace: daemon died of SIGSYS, report lines %lld", mode, n);
    e2e_daemon_start(e, run_args);
    guest_done(e, child, out_path, mode);
}

/* --seccomp=log: the queue threads' forbidden call is allowed and the
 * kernel logs it (SECCOMP_RET_LOG: an audit record with the syscall number
 * and the thread's name, xbd-q<N> for the queue role); the guest's verified
 * I/O is served by those very threads.  The kernel log's audit lines are
 * rate-limited (printk_ratelimit, shared with the whole host), so a record
 * missing is retried on a new device after 5 s, three times at most. */
static void log_mode(struct e2e *e, unsigned domid)
{
    start_hooked(e, "log", "queue");
    long long recs = 0;
    for (int round = 0; round < 3 && recs == 0; round++) {
        if (round)
            sleep(5);
        char out_path[600];
        pid_t child = guest_bg(e, domid + (unsigned)round, "1", out_path, sizeof(out_path));
        guest_done(e, child, out_path, "log");
        T_CHECK(t_daemon_alive(&e->d), "log: the daemon died of an allowed syscall");
        recs = audit_records(e->d.pid, "xbd-q[0-9]*", SYS_ptrace, "0x7ffc0000");
    }
    if (recs < 0)
        T_LOG("log: the kernel log cannot be read here (dmesg): the record is not checked");
    else
        T_CHECK(recs >= 1, "log: no audit record of syscall %d (ptrace) in a thread xbd-q<N> of "
                "pid %d", SYS_ptrace, (int)e->d.pid);
    T_LOG("log: guest served; kernel audit records of ptrace (%d) in the xbd-q threads: %lld",
          SYS_ptrace, recs);
    T_EQ(t_daemon_stop(&e->d, 15000), 0);
    e2e_daemon_start(e, run_args);
}

/* The control plane's test hook (an execve, on SIGUSR1) while a guest runs:
 * trap reports it and dies, kill dies at once (its audit record names
 * the main thread); the daemon started again serves the guest to the end. */
static void control_violation(struct e2e *e, unsigned domid, const char *mode)
{
    start_hooked(e, mode, "control");
    long long before = reports(e, "xen-blkbackd", "control");
    char out_path[600];
    pid_t child = guest_bg(e, domid, "4", out_path, sizeof(out_path));
    uint64_t end = xbd_now_ms() + 15000;
    while (xbd_now_ms() < end && t_daemon_stat(&e->d, domid, DEVID, "wr_req") < 20)
        usleep(2000);
    T_CHECK(xbd_now_ms() < end, "dom %u: no I/O", domid);
    pid_t pid = e->d.pid;
    kill(pid, SIGUSR1);
    int st = wait_death(e);
    T_CHECK(st == 128 + SIGSYS, "control %s: daemon status %d, want death by SIGSYS (%d)", mode,
            st, 128 + SIGSYS);
    long long n = reports(e, "xen-blkbackd", "control");
    long long want = before + !strcmp(mode, "trap");
    T_CHECK(n == want, "control %s: %lld report line(s) in the log, want %lld", mode, n, want);
    if (n != want)
        t_daemon_dump_log(&e->d, 8);
    if (!strcmp(mode, "kill")) {
        /* the kill's record is not checked: the kernel may drop it (rate limit) */
        long long a = audit_records(pid, "xen-blkbackd", SYS_execve, "0x80000000");
        T_LOG("control kill: audit records of execve (%d) in the main thread: %lld", SYS_execve,
              a);
    }
    T_LOG("control %s: execve on SIGUSR1: daemon died of SIGSYS, report lines %lld", mode, n);
    e2e_daemon_start(e, run_args);
    guest_done(e, child, out_path, "control");
}

/* The capability sets of every thread of pid: false if one has any
 * effective, permitted, inheritable or ambient capability (the first such
 * thread into what); the bounding set of the main thread into bnd. */
static bool no_caps(pid_t pid, char *what, size_t len, char *bnd, size_t blen)
{
    static const char *const sets[] = { "CapEff", "CapPrm", "CapInh", "CapAmb" };
    char dir[64], tid[16];
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    snprintf(tid, sizeof(tid), "%d", (int)pid);
    if (!proc_field(pid, tid, "status", "CapBnd", bnd, blen))
        snprintf(bnd, blen, "?");
    DIR *d = opendir(dir);
    T_ASSERT(d);
    bool none = true;
    unsigned n = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.')
            continue;
        for (size_t i = 0; i < ARRAY_SIZE(sets); i++) {
            char v[32];
            if (!proc_field(pid, de->d_name, "status", sets[i], v, sizeof(v)))
                continue;               /* the thread is gone */
            if (strcmp(v, "0000000000000000") && none) {
                snprintf(what, len, "thread %s: %s %s", de->d_name, sets[i], v);
                none = false;
            }
        }
        n++;
    }
    closedir(d);
    if (none)
        snprintf(what, len, "%u threads: CapEff, CapPrm, CapInh, CapAmb all 0", n);
    return none;
}

/* The daemon's privileged opener (include/opener.h): its child process
 * named xbd-opener, 0 when there is none. */
static pid_t opener_of(pid_t daemon)
{
    char *l = NULL;
    e2e_sh(&l, "for p in $(cat /proc/%d/task/*/children 2>/dev/null); do "
           "[ \"$(cat /proc/$p/comm 2>/dev/null)\" = xbd-opener ] && echo $p; done | head -1",
           (int)daemon);
    pid_t p = l ? (pid_t)atol(l) : 0;
    free(l);
    return p > 1 ? p : 0;
}

/* The opener runs as root with CAP_DAC_OVERRIDE alone (0x2) and its own
 * seccomp list; it dies with the daemon (PR_SET_PDEATHSIG). */
static pid_t check_opener(struct e2e *e)
{
    pid_t op = opener_of(e->d.pid);
    T_CHECK(op > 0, "--user: no xbd-opener child of the daemon %d", (int)e->d.pid);
    if (op <= 0)
        return 0;
    char tid[16], uid[64], eff[32], sc[16];
    snprintf(tid, sizeof(tid), "%d", (int)op);
    T_ASSERT(proc_field(op, tid, "status", "Uid", uid, sizeof(uid)));
    T_ASSERT(proc_field(op, tid, "status", "CapEff", eff, sizeof(eff)));
    T_ASSERT(proc_field(op, tid, "status", "Seccomp", sc, sizeof(sc)));
    T_CHECK(!strcmp(uid, "0\t0\t0\t0"), "opener Uid %s", uid);
    T_CHECK(!strcmp(eff, "0000000000000002"), "opener CapEff %s, want CAP_DAC_OVERRIDE only", eff);
    T_CHECK(!strcmp(sc, "2"), "opener Seccomp %s", sc);
    T_LOG("opener pid %d: Uid %s, CapEff %s, Seccomp %s", (int)op, uid, eff, sc);
    return op;
}

/*
 * --user=65534 serving a guest with no capability: the simulated host's
 * directory, the test xenstored's socket and the work directory are handed
 * to that uid, as a deployment gives the daemon's user the Xen device
 * files; the image stays root's (0600), opened by the privileged opener;
 * the guest (xen-blkbench, whose
 * memory files are the sim's grant table) runs as that uid too.  The
 * daemon, root only until the drop, then attaches the device (opens the
 * image and the sim's gntdev/evtchn, io_uring, restart state, queue
 * threads) and serves verified I/O; every thread shows no capability while
 * it does, also after a SIGKILL and a restart (which reattaches as that
 * user).  So no capability remains needed after the drop: the documented
 * set is empty (xen-blkbackd(8) CONFINEMENT).
 */
static void user_serves(struct e2e *e, unsigned domid)
{
    const char *extra[] = { "--seccomp=kill", "--user=65534", NULL };
    T_EQ(t_daemon_stop(&e->d, 15000), 0);
    char img[32], out_path[600];
    snprintf(img, sizeof(img), "u%u.img", domid);
    const char *path = e2e_make_image(e, img, 16);
    snprintf(out_path, sizeof(out_path), "%s/guest-%u.out", e->work, domid);
    /* the image stays root's, mode 0600: the opener opens it */
    T_EQ(e2e_sh(NULL, "chown -R 65534:65534 '%s' '%s' && chmod 0666 '%s' && "
                "chown 0:0 '%s' && chmod 0600 '%s'", e->sim, e->work, e->xs_sock, path, path), 0);
    e2e_daemon_start(e, extra);
    pid_t op = check_opener(e);
    pid_t child = fork();
    T_ASSERT(child >= 0);
    if (child == 0) {
        int rc = e2e_sh(NULL, "setpriv --reuid=65534 --regid=65534 --clear-groups '%s' --sim '%s' "
                        "--domid %u --target '%s' --rw randrw --bs-range 512-64k --iodepth 16 "
                        "--queues 2 --runtime 6 --verify --flush --timeout 30 "
                        ">'%s' 2>&1", t_prog("xen-blkbench"), e->sim, domid, path, out_path);
        _exit(rc == 0 ? 0 : 1);
    }
    for (int round = 0; round < 2; round++) {
        uint64_t end = xbd_now_ms() + 15000;
        long long w0 = round ? t_daemon_stat(&e->d, domid, DEVID, "wr_req") : 0;
        while (xbd_now_ms() < end && t_daemon_stat(&e->d, domid, DEVID, "wr_req") < w0 + 20)
            usleep(2000);
        T_CHECK(xbd_now_ms() < end, "dom %u: no I/O as the user (round %d)", domid, round);
        char what[400], bnd[32], uid[64], tid[16];
        snprintf(tid, sizeof(tid), "%d", (int)e->d.pid);
        T_ASSERT(proc_field(e->d.pid, tid, "status", "Uid", uid, sizeof(uid)));
        T_CHECK(!strcmp(uid, "65534\t65534\t65534\t65534"), "Uid %s", uid);
        bool none = no_caps(e->d.pid, what, sizeof(what), bnd, sizeof(bnd));
        T_CHECK(none, "a capability is left after --user: %s", what);
        T_LOG("--user=65534 serving dom %u%s: %s; CapBnd %s", domid,
              round ? " after a SIGKILL and restart" : "", what, bnd);
        if (round == 0) {
            T_EQ(t_daemon_signal(&e->d, SIGKILL, 15000), 128 + SIGKILL);
            uint64_t gone = xbd_now_ms() + 5000;
            while (op > 0 && kill(op, 0) == 0 && xbd_now_ms() < gone)
                usleep(10000);
            T_CHECK(op <= 0 || kill(op, 0) < 0, "the opener %d outlived its daemon", (int)op);
            e2e_daemon_start(e, extra);
            check_opener(e);
        }
    }
    guest_done(e, child, out_path, "--user=65534");
    /* not SIGTERM: LeakSanitizer's exit check cannot ptrace the threads of
     * a process that changed its uid (no longer dumpable) */
    T_EQ(t_daemon_signal(&e->d, SIGKILL, 5000), 128 + SIGKILL);
    e2e_daemon_start(e, run_args);
}

/* Uid and capabilities after --user, before any device. */
static void user_drop(struct e2e *e)
{
    const char *extra[] = { "--seccomp=kill", "--user=65534", NULL };
    T_EQ(t_daemon_stop(&e->d, 15000), 0);
    e2e_daemon_start(e, extra);
    char tid[16], uid[64], eff[32], prm[32];
    snprintf(tid, sizeof(tid), "%d", (int)e->d.pid);
    T_ASSERT(proc_field(e->d.pid, tid, "status", "Uid", uid, sizeof(uid)));
    T_ASSERT(proc_field(e->d.pid, tid, "status", "CapEff", eff, sizeof(eff)));
    T_ASSERT(proc_field(e->d.pid, tid, "status", "CapPrm", prm, sizeof(prm)));
    T_LOG("--user=65534: Uid %s, CapEff %s, CapPrm %s", uid, eff, prm);
    T_CHECK(!strcmp(uid, "65534\t65534\t65534\t65534"), "Uid %s", uid);
    T_CHECK(!strcmp(eff, "0000000000000000") && !strcmp(prm, "0000000000000000"),
            "capabilities left: CapEff %s CapPrm %s", eff, prm);
    char *v = t_daemon_request(&e->d, "version");
    T_CHECK(v && strstr(v, "\"ok\":true"), "control socket after the drop: %s", v ? v : "none");
    free(v);
    T_EQ(t_daemon_signal(&e->d, SIGKILL, 5000), 128 + SIGKILL);
    e2e_daemon_start(e, run_args);
}

int main(void)
{
    struct e2e e;
    if (getenv("T_CONFINE_TRAP"))
        run_args = trap_args;
    e2e_start(&e, run_args);
    run_case(&e, 10, "uring", "copy");
    run_case(&e, 11, "aio", "persistent");
    run_case(&e, 12, "uring", "map");
    violation(&e, 20, "trap");
    violation(&e, 21, "kill");
    log_mode(&e, 22);
    control_violation(&e, 25, "trap");
    control_violation(&e, 26, "kill");
    user_drop(&e);
    user_serves(&e, 30);
    T_EQ(e2e_stop(&e), 0);
    return t_done();
}
