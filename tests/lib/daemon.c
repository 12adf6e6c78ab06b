/* Test helper: run xen-blkbackd as a child, talk to its control socket. */
#include "daemon.h"
#include "util.h"
#include "../harness.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void kill_daemon(void *arg)
{
    struct t_daemon *d = arg;
    if (d->pid > 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
        d->pid = 0;
    }
}

void t_daemon_dump_log(const struct t_daemon *d, int lines)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "tail -n %d '%s' >&2", lines, d->log);
    fprintf(stderr, "# ---- %s (last %d lines) ----\n", d->log, lines);
    if (system(cmd) != 0)
        fprintf(stderr, "# (no log)\n");
}

char *t_daemon_request(const struct t_daemon *d, const char *req)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    memcpy(sa.sun_path, d->sock, sizeof(d->sock));
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return NULL;
    }
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char line[512];
    int n = snprintf(line, sizeof(line), "%s\n", req);
    if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0;
    int rc = xbd_recv_all(fd, &buf, &len);
    close(fd);
    if (rc < 0 || len == 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

bool t_daemon_alive(struct t_daemon *d)
{
    if (d->pid <= 0)
        return false;
    int st;
    pid_t r = waitpid(d->pid, &st, WNOHANG);
    if (r == d->pid) {
        fprintf(stderr, "# xen-blkbackd %d exited (status 0x%x)\n", (int)d->pid, st);
        d->pid = 0;
        return false;
    }
    return true;
}

int t_daemon_start(struct t_daemon *d, const char *dir, const char *const *args,
                   unsigned timeout_ms)
{
    return t_daemon_start_fn(d, dir, args, timeout_ms, NULL, NULL);
}

int t_daemon_start_fn(struct t_daemon *d, const char *dir, const char *const *args,
                      unsigned timeout_ms, void (*setup)(void *), void *arg)
{
    memset(d, 0, sizeof(*d));
    if (strlen(dir) + sizeof("/blkbackd.sock") > sizeof(d->sock))
        return -ENAMETOOLONG;
    strcpy(d->sock, dir);
    strcat(d->sock, "/blkbackd.sock");
    snprintf(d->log, sizeof(d->log), "%s/blkbackd.log", dir);
    char ctl[300];
    snprintf(ctl, sizeof(ctl), "--control=%s", d->sock);
    const char *argv[64];
    int n = 0;
    argv[n++] = t_prog("xen-blkbackd");
    argv[n++] = ctl;
    argv[n++] = "--log=stderr";
    argv[n++] = "--log-level=debug";
    argv[n++] = "--config=/dev/null";
    /* Every daemon of the suite runs confined (the test's own args come
     * later and win): XBD_TEST_SECCOMP=off|log|trap|kill, default trap,
     * so a syscall outside a list fails the test with the report. */
    char sc[64];
    const char *mode = getenv("XBD_TEST_SECCOMP");
    snprintf(sc, sizeof(sc), "--seccomp=%s", mode && *mode ? mode : "trap");
    argv[n++] = sc;
    for (int i = 0; args && args[i] && n < 62; i++)
        argv[n++] = args[i];
    /* XBD_TEST_DAEMON_ARG: one more option for every test's daemon, e.g.
     * --isolation=domain to run the suite with per-domain workers. */
    const char *more = getenv("XBD_TEST_DAEMON_ARG");
    if (more && *more && n < 63)
        argv[n++] = more;
    argv[n] = NULL;

    int logfd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(logfd);
        return -e;
    }
    if (pid == 0) {
        dup2(logfd, 2);
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0)
            dup2(nul, 0);
        if (setup)
            setup(arg);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(logfd);
    d->pid = pid;
    t_atexit(kill_daemon, d);

    long long end = (long long)xbd_now_ms() + timeout_ms;
    while ((long long)xbd_now_ms() < end) {
        if (!t_daemon_alive(d)) {
            t_daemon_dump_log(d, 30);
            return -ECHILD;
        }
        char *r = t_daemon_request(d, "version");
        if (r) {
            bool ok = strstr(r, "\"ok\":true") != NULL;
            free(r);
            if (ok)
                return 0;
        }
        usleep(20000);
    }
    t_daemon_dump_log(d, 30);
    return -ETIMEDOUT;
}

int t_daemon_stop(struct t_daemon *d, unsigned timeout_ms)
{
    return t_daemon_signal(d, SIGTERM, timeout_ms);
}

int t_daemon_signal(struct t_daemon *d, int sig, unsigned timeout_ms)
{
    if (d->pid <= 0)
        return -ECHILD;
    kill(d->pid, sig);
    long long end = (long long)xbd_now_ms() + timeout_ms;
    int st;
    for (;;) {
        pid_t r = waitpid(d->pid, &st, WNOHANG);
        if (r == d->pid)
            break;
        if ((long long)xbd_now_ms() >= end) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, NULL, 0);
            d->pid = 0;
            t_daemon_dump_log(d, 30);
            return -ETIMEDOUT;
        }
        usleep(10000);
    }
    d->pid = 0;
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}

/* The device object of domid/devid in reply `o` ("devices" array). */
static json_object *find_dev(json_object *o, unsigned domid, unsigned devid)
{
    json_object *devs;
    if (!json_object_object_get_ex(o, "devices", &devs))
        return NULL;
    size_t n = json_object_array_length(devs);
    for (size_t i = 0; i < n; i++) {
        json_object *d = json_object_array_get_idx(devs, i), *a, *b;
        if (json_object_object_get_ex(d, "domid", &a) && json_object_object_get_ex(d, "devid", &b) &&
            json_object_get_int64(a) == domid && json_object_get_int64(b) == devid)
            return d;
    }
    return NULL;
}

long long t_daemon_stat(const struct t_daemon *d, unsigned domid, unsigned devid,
                        const char *name)
{
    char req[64];
    snprintf(req, sizeof(req), "stats %u %u", domid, devid);
    char *r = t_daemon_request(d, req);
    if (!r)
        return -1;
    long long v = -1;
    json_object *o = json_tokener_parse(r), *dev, *st, *x;
    if (o && (dev = find_dev(o, domid, devid)) && json_object_object_get_ex(dev, "stats", &st) &&
        json_object_object_get_ex(st, name, &x))
        v = json_object_get_int64(x);
    json_object_put(o);
    free(r);
    return v;
}

long long t_daemon_dev_int(const struct t_daemon *d, unsigned domid, unsigned devid,
                           const char *key)
{
    char *r = t_daemon_request(d, "list");
    if (!r)
        return -1;
    long long v = -1;
    json_object *o = json_tokener_parse(r), *dev, *x;
    if (o && (dev = find_dev(o, domid, devid)) && json_object_object_get_ex(dev, key, &x) && x)
        v = json_object_is_type(x, json_type_boolean) ? json_object_get_boolean(x)
                                                       : json_object_get_int64(x);
    json_object_put(o);
    free(r);
    return v;
}

int t_daemon_ndevices(const struct t_daemon *d)
{
    char *r = t_daemon_request(d, "list");
    if (!r)
        return -1;
    int n = -1;
    json_object *o = json_tokener_parse(r), *devs;
    if (o && json_object_object_get_ex(o, "devices", &devs))
        n = (int)json_object_array_length(devs);
    json_object_put(o);
    free(r);
    return n;
}
