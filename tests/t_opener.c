/*
 * The privileged opener (include/opener.h), without a daemon: a child
 * process starts it, becomes uid 65534 as the daemon's --user does, and
 * asks it for stores.  A root-owned 0600 file that the user itself cannot
 * open comes back read-write; a character device, a directory, a file on
 * proc or sysfs, a relative path, a creating flag and a missing file are
 * refused with the documented errno; a dead opener gives -EIO.  The opener
 * shows uid 0, CapEff CAP_DAC_OVERRIDE only and Seccomp 2, dies with the
 * process that started it, and under --seccomp=trap a forbidden syscall in
 * it (the test hook XBD_TEST_FORBIDDEN_SYSCALL=opener) is reported as the
 * opener list's and kills it with SIGSYS.
 */
#include "harness.h"
#include "confine.h"
#include "opener.h"
#include "util.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64], file[96];

/* "Key:\tvalue" of /proc/<pid>/status, or "" */
static void status_field(pid_t pid, const char *key, char *v, size_t len)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    v[0] = 0;
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, key, kl) && line[kl] == ':') {
            snprintf(v, len, "%s", line + kl + 1 + strspn(line + kl + 1, " \t"));
            v[strcspn(v, "\n")] = 0;
            break;
        }
    fclose(f);
}

/* Is pid gone (or a zombie nobody reaps yet)? */
static bool gone(pid_t pid)
{
    char st[32];
    status_field(pid, "State", st, sizeof(st));
    return !st[0] || st[0] == 'Z' || st[0] == 'X';
}

static int as_user(void)
{
    T_EQ(opener_start(CONFINE_KILL, false), 0);
    pid_t op = opener_pid();
    T_CHECK(op > 1, "opener pid %d", (int)op);
    T_CHECK(setresgid(65534, 65534, 65534) == 0 && setresuid(65534, 65534, 65534) == 0,
            "setresuid: %s", strerror(errno));
    char v[64];
    status_field(op, "Uid", v, sizeof(v));
    T_CHECK(!strcmp(v, "0\t0\t0\t0"), "opener Uid %s", v);
    status_field(op, "CapEff", v, sizeof(v));
    T_CHECK(!strcmp(v, "0000000000000002"), "opener CapEff %s", v);
    status_field(op, "Seccomp", v, sizeof(v));
    T_CHECK(!strcmp(v, "2"), "opener Seccomp %s", v);

    T_CHECK(open(file, O_RDWR) < 0 && errno == EACCES, "the user opened a root 0600 file");
    int fd = opener_open(file, O_RDWR);
    T_CHECK(fd >= 0, "opener_open(%s, O_RDWR): %s", file, strerror(fd < 0 ? -fd : 0));
    if (fd >= 0) {
        char buf[8] = "written", back[8] = "";
        T_CHECK(pwrite(fd, buf, sizeof(buf), 4096) == (ssize_t)sizeof(buf), "pwrite");
        T_CHECK(pread(fd, back, sizeof(back), 4096) == (ssize_t)sizeof(back) &&
                !memcmp(buf, back, sizeof(buf)), "pread back");
        int fl = fcntl(fd, F_GETFD);
        T_CHECK(fl >= 0 && (fl & FD_CLOEXEC), "the descriptor is not close-on-exec");
        close(fd);
    }
    /* O_DIRECT: an fd, or EINVAL where the file system refuses it (tmpfs) */
    fd = opener_open(file, O_RDONLY | O_DIRECT);
    T_CHECK(fd >= 0 || fd == -EINVAL, "O_DIRECT: %d", fd);
    if (fd >= 0)
        close(fd);

    T_EQ(opener_open("/dev/null", O_RDWR), -EPERM);
    T_EQ(opener_open(dir, O_RDONLY), -EPERM);
    T_EQ(opener_open("/proc/self/status", O_RDONLY), -EPERM);
    if (access("/sys/kernel/uevent_seqnum", F_OK) == 0)
        T_EQ(opener_open("/sys/kernel/uevent_seqnum", O_RDONLY), -EPERM);
    T_EQ(opener_open("relative.img", O_RDONLY), -EINVAL);
    T_EQ(opener_open(file, O_RDWR | O_CREAT), -EINVAL);
    T_EQ(opener_open(file, O_RDWR | O_TRUNC), -EINVAL);
    char missing[128];
    snprintf(missing, sizeof(missing), "%s/missing.img", dir);
    T_EQ(opener_open(missing, O_RDONLY), -ENOENT);
    static char longp[PATH_MAX + 8];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    T_EQ(opener_open(longp, O_RDONLY), -ENAMETOOLONG);

    opener_stop();
    return t_failures ? 1 : 0;
}

/* An opener killed under the daemon (which stays root here to kill it):
 * -EIO from then on. */
static int dead_opener(void)
{
    T_EQ(opener_start(CONFINE_KILL, false), 0);
    pid_t op = opener_pid();
    int fd = opener_open(file, O_RDONLY);
    T_CHECK(fd >= 0, "before the kill: %d", fd);
    if (fd >= 0)
        close(fd);
    kill(op, SIGKILL);
    waitpid(op, NULL, 0);
    T_EQ(opener_open(file, O_RDONLY), -EIO);
    T_EQ(opener_open(file, O_RDONLY), -EIO);
    opener_stop();
    return t_failures ? 1 : 0;
}

/* The opener of a process that dies goes with it (PR_SET_PDEATHSIG). */
static void dies_with_parent(void)
{
    int p[2];
    T_ASSERT(pipe(p) == 0);
    pid_t c = fork();
    T_ASSERT(c >= 0);
    if (c == 0) {
        pid_t op = opener_start(CONFINE_KILL, false) == 0 ? opener_pid() : 0;
        ssize_t w = write(p[1], &op, sizeof(op));
        (void)w;
        _exit(0);
    }
    pid_t op = 0;
    T_CHECK(read(p[0], &op, sizeof(op)) == (ssize_t)sizeof(op) && op > 1, "no opener");
    close(p[0]);
    close(p[1]);
    waitpid(c, NULL, 0);
    for (int i = 0; op > 1 && i < 500 && !gone(op); i++)
        usleep(10000);
    T_CHECK(op > 1 && gone(op), "the opener %d outlived the process that started it", (int)op);
}

/* --seccomp=trap: the test hook's ptrace in the opener: one report line
 * naming the opener list, then SIGSYS, before it says it is ready (so
 * opener_start fails with -EIO and the daemon does not start). */
static void trap_report(void)
{
    char log[128];
    snprintf(log, sizeof(log), "%s/trap.log", dir);
    pid_t c = fork();
    T_ASSERT(c >= 0);
    if (c == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || dup2(fd, 2) < 0)
            _exit(3);
        setenv("XBD_TEST_FORBIDDEN_SYSCALL", "opener", 1);
        /* it dies before it reports ready: opener_start fails */
        if (opener_start(CONFINE_TRAP, false) != -EIO)
            _exit(4);
        int st = 0;
        if (waitpid(-1, &st, 0) <= 0)
            _exit(5);
        _exit(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS ? 0 : 6);
    }
    int st = 0;
    T_ASSERT(waitpid(c, &st, 0) == c);
    T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "trap: child status %d (6: the opener did "
            "not die of SIGSYS)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "grep -c 'seccomp: forbidden syscall 101 (arch 0x[0-9a-f]*) in "
             "thread xbd-opener (tid [0-9]*, opener list): killing the process' %s", log);
    FILE *f = popen(cmd, "r");
    int n = -1;
    if (f) {
        if (fscanf(f, "%d", &n) != 1)
            n = -1;
        pclose(f);
    }
    T_CHECK(n == 1, "trap: %d report line(s), want 1", n);
    T_LOG("trap: the opener died of SIGSYS with %d report line", n);
}

int main(void)
{
    if (geteuid() != 0) {
        T_LOG("SKIP: needs root (the opener's point is root's files)");
        return 77;
    }
    snprintf(dir, sizeof(dir), "/var/tmp/xbd-opener-XXXXXX");
    T_ASSERT(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    T_ASSERT(chmod(dir, 0755) == 0);
    snprintf(file, sizeof(file), "%s/root.img", dir);
    int fd = open(file, O_RDWR | O_CREAT | O_EXCL, 0600);
    T_ASSERT(fd >= 0 && ftruncate(fd, 1 << 20) == 0);
    close(fd);

    /* no opener: opener_open is open(2) */
    T_EQ(opener_pid(), 0);
    fd = opener_open(file, O_RDONLY);
    T_CHECK(fd >= 0, "open without an opener: %d", fd);
    if (fd >= 0)
        close(fd);

    pid_t c = fork();
    T_ASSERT(c >= 0);
    if (c == 0)
        _exit(as_user());
    int st = 0;
    T_ASSERT(waitpid(c, &st, 0) == c);
    T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "as the user: status %#x", st);
    c = fork();
    T_ASSERT(c >= 0);
    if (c == 0)
        _exit(dead_opener());
    T_ASSERT(waitpid(c, &st, 0) == c);
    T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "dead opener: status %#x", st);
    dies_with_parent();
    trap_report();

    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    T_CHECK(system(cmd) == 0, "%s", cmd);
    return t_done();
}
