/* Debian's stock xenstore-* tools (xenstore-utils) work against xen-sim-xenstored via XENSTORED_PATH. */
#include "harness.h"
#include "util.h"
#include "lib/xsd.h"

#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *tooldir;

/* Find the tool directory on PATH (or /usr/bin); NULL if not installed. */
static const char *find_tools(void)
{
    static char dir[4096];
    const char *path = getenv("PATH");
    char buf[8192];
    snprintf(buf, sizeof(buf), "%s:/usr/bin:/usr/sbin", path ? path : "");
    for (char *save, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char p[4200];
        snprintf(p, sizeof(p), "%s/xenstore-watch", d);
        if (access(p, X_OK) == 0) {
            snprintf(dir, sizeof(dir), "%s", d);
            return dir;
        }
    }
    return NULL;
}

/*
 * Run "<tooldir>/xenstore-<tool> args..." (args NULL-terminated), capturing
 * stdout into out (NUL-terminated; stderr goes to the test log).  Returns
 * the exit status, or -1.
 */
static int run(char *out, size_t olen, const char *tool, ...)
{
    const char *argv[64];
    char prog[4200];
    snprintf(prog, sizeof(prog), "%s/xenstore-%s", tooldir, tool);
    int argc = 0;
    argv[argc++] = prog;
    va_list ap;
    va_start(ap, tool);
    const char *a;
    while ((a = va_arg(ap, const char *)) && argc < 63)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;

    int pfd[2];
    if (pipe(pfd) < 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execv(prog, (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t got = 0;
    ssize_t r;
    while ((r = read(pfd[0], out + got, olen - 1 - got)) > 0)
        got += (size_t)r;
    out[got] = '\0';
    close(pfd[0]);
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define RUN(out, ...) run(out, sizeof(out), __VA_ARGS__, (const char *)NULL)

static bool has_line(const char *text, const char *line)
{
    size_t l = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && (p[l] == '\n' || p[l] == '\0'))
            return true;
    return false;
}

static int count_lines(const char *text)
{
    int n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

static void test_write_read(void)
{
    char out[8192];
    T_EQ(RUN(out, "write", "/tools/a", "1", "/tools/b", "hello world"), 0);
    T_EQ(RUN(out, "read", "/tools/a", "/tools/b"), 0);
    T_CHECK(!strcmp(out, "1\nhello world\n"), "read: '%s'", out);
    T_EQ(RUN(out, "read", "-p", "/tools/b"), 0);
    T_CHECK(!strcmp(out, "/tools/b: hello world\n"), "read -p: '%s'", out);
    T_EQ(RUN(out, "read", "name"), 0);                 /* relative: /local/domain/0/name */
    T_CHECK(!strcmp(out, "Domain-0\n"), "relative read: '%s'", out);
    T_CHECK(RUN(out, "read", "/tools/missing") != 0, "reading a missing key fails");
    T_CHECK(RUN(out, "write", "/tools//bad", "x") != 0, "a bad path fails");
    T_EQ(RUN(out, "exists", "/tools/a"), 0);
    T_CHECK(RUN(out, "exists", "/tools/missing") != 0);
}

static void test_list_ls(void)
{
    char out[65536];
    T_EQ(RUN(out, "list", "/tools"), 0);
    T_CHECK(!strcmp(out, "a\nb\n"), "list: '%s'", out);
    T_EQ(RUN(out, "list", "-p", "/tools"), 0);
    T_CHECK(!strcmp(out, "/tools/a\n/tools/b\n"), "list -p: '%s'", out);
    T_EQ(RUN(out, "ls", "-f"), 0);
    T_CHECK(has_line(out, "/tools/a = \"1\""), "ls -f lists /tools/a:\n%s", out);
    T_CHECK(has_line(out, "/tools/b = \"hello world\""), "ls -f lists /tools/b");
    T_CHECK(has_line(out, "/local/domain/0/name = \"Domain-0\""), "ls -f lists dom0's name");
    T_CHECK(has_line(out, "/local/domain/0/domid = \"0\""));
    T_EQ(RUN(out, "ls", "/tools"), 0);
    T_CHECK(has_line(out, "a = \"1\"") && has_line(out, "b = \"hello world\"") && count_lines(out) == 2,
            "ls /tools: '%s'", out);
    T_CHECK(RUN(out, "ls", "/tools/missing") != 0, "ls of a missing path fails");
}

static void test_chmod(void)
{
    char out[8192];
    T_EQ(RUN(out, "chmod", "/tools/a", "n5", "r0", "b7"), 0);
    T_EQ(RUN(out, "ls", "-p", "/tools"), 0);
    T_CHECK(strstr(out, "(n5,r0,b7)") != NULL, "ls -p shows the new perms:\n%s", out);
    T_CHECK(strstr(out, "(n0)") != NULL, "b keeps n0");
    /* Recursive. */
    T_EQ(RUN(out, "write", "/tools/r/x/y", "1", "/tools/r/z", "2"), 0);
    T_EQ(RUN(out, "chmod", "-r", "/tools/r", "w3"), 0);
    T_EQ(RUN(out, "ls", "-fp", "/tools/r"), 0);
    T_CHECK(strstr(out, "/tools/r/x/y = \"1\"") && count_lines(out) == 3, "ls -fp:\n%s", out);
    int w3 = 0;
    for (const char *p = out; (p = strstr(p, "(w3)")); p++)
        w3++;
    T_EQ(w3, 3);
    /* New children inherit. */
    T_EQ(RUN(out, "write", "/tools/r/new", "n"), 0);
    T_EQ(RUN(out, "ls", "-p", "/tools/r"), 0);
    T_CHECK(strstr(out, "new = \"n\"") && strstr(strstr(out, "new = \"n\""), "(w3)"), "inherited:\n%s", out);
    T_CHECK(RUN(out, "chmod", "/tools/missing", "r0") != 0);
}

static void test_rm(void)
{
    char out[8192];
    T_EQ(RUN(out, "rm", "/tools/a"), 0);
    T_CHECK(RUN(out, "exists", "/tools/a") != 0, "removed");
    T_EQ(RUN(out, "rm", "/tools/r"), 0);                /* recursive */
    T_CHECK(RUN(out, "exists", "/tools/r/x/y") != 0);
    T_EQ(RUN(out, "rm", "/tools/never-existed"), 0);    /* parent exists: fine */
    T_CHECK(RUN(out, "rm", "/tools/no/such") != 0, "parent missing: fails");
    /* -t removes empty, value-less parents too. */
    T_EQ(RUN(out, "write", "/tidy/one/two/three", "x"), 0);
    T_EQ(RUN(out, "rm", "-t", "/tidy/one/two/three"), 0);
    T_CHECK(RUN(out, "exists", "/tidy") != 0, "rm -t tidied the parents");
}

/* Read from fd until buf holds n lines or the timeout passes. */
static int read_lines(int fd, char *buf, size_t len, size_t *got, int n, int timeout_ms)
{
    long long end = (long long)xbd_now_ms() + timeout_ms;
    while (count_lines(buf) < n) {
        long long left = end - (long long)xbd_now_ms();
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return -ETIMEDOUT;
        ssize_t r = read(fd, buf + *got, len - 1 - *got);
        if (r <= 0)
            return -EPIPE;
        *got += (size_t)r;
        buf[*got] = '\0';
    }
    return 0;
}

static void test_watch(void)
{
    char out[8192], prog[4200];
    T_EQ(RUN(out, "write", "/tools/w/start", "0"), 0);
    snprintf(prog, sizeof(prog), "%s/xenstore-watch", tooldir);
    int pfd[2];
    T_ASSERT(pipe(pfd) == 0);
    fflush(NULL);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execl(prog, prog, "-n", "2", "/tools/w", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    char buf[4096] = "";
    size_t got = 0;
    /* The initial event, printed as soon as the watch is set. */
    int rc = read_lines(pfd[0], buf, sizeof(buf), &got, 1, 10000);
    T_CHECK(rc == 0 && has_line(buf, "/tools/w"), "initial event: rc %d '%s'", rc, buf);
    T_EQ(RUN(out, "write", "/tools/w/changed", "1"), 0);
    rc = read_lines(pfd[0], buf, sizeof(buf), &got, 2, 10000);
    T_CHECK(rc == 0 && !strcmp(buf, "/tools/w\n/tools/w/changed\n"), "events: rc %d '%s'", rc, buf);
    /* -n 2: it exits by itself after two events. */
    int st = -1;
    for (int i = 0; i < 1000 && waitpid(pid, &st, WNOHANG) == 0; i++)
        usleep(10000);
    if (!WIFEXITED(st)) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        T_CHECK(0, "xenstore-watch -n 2 did not exit");
    } else {
        T_EQ(WEXITSTATUS(st), 0);
    }
    close(pfd[0]);
}

static void test_big_directory(void)
{
    /* Over 4096 bytes of names: the tools' xs_directory needs DIRECTORY_PART. */
    enum { N = 300 };
    const char *args[N + 1];
    static char names[N][64];
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "/bigdir/entry-with-a-long-name-%03d", i);
        args[i] = names[i];
    }
    args[N] = NULL;
    char prog[4200];
    snprintf(prog, sizeof(prog), "%s/xenstore-write", tooldir);
    for (int i = 0; i < N; i += 30) {           /* 30 keys per call, value "v" */
        const char *argv[64] = { prog };
        int c = 1;
        for (int j = i; j < i + 30 && j < N; j++) {
            argv[c++] = args[j];
            argv[c++] = "v";
        }
        argv[c] = NULL;
        fflush(NULL);
        pid_t pid = fork();
        T_ASSERT(pid >= 0);
        if (pid == 0) {
            execv(prog, (char *const *)argv);
            _exit(127);
        }
        int st;
        waitpid(pid, &st, 0);
        T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "write batch %d", i);
    }
    static char out[65536];
    T_EQ(RUN(out, "list", "/bigdir"), 0);
    T_EQ(count_lines(out), N);
    T_CHECK(has_line(out, "entry-with-a-long-name-000") && has_line(out, "entry-with-a-long-name-299"));
    T_EQ(RUN(out, "ls", "/bigdir"), 0);
    T_EQ(count_lines(out), N);
    T_EQ(RUN(out, "rm", "/bigdir"), 0);
}

int main(void)
{
    tooldir = find_tools();
    T_SKIP_IF(!tooldir, "xenstore-utils tools not installed");
    const char *dir = t_tmpdir(0);
    char sock[108];
    pid_t pid;
    int rc = t_xsd_start(dir, sock, sizeof(sock), &pid);
    T_SKIP_IF(rc == -ENOENT, "xen-sim-xenstored not built");
    T_ASSERT(rc == 0, "t_xsd_start: %s", strerror(-rc));
    T_LOG("tools in %s, server on %s", tooldir, sock);

    test_write_read();
    test_list_ls();
    test_chmod();
    test_rm();
    test_watch();
    test_big_directory();

    T_EQ(t_xsd_stop_status(pid), 0);
    return t_done();
}
