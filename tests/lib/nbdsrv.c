/* nbdsrv.c - NBD servers for the tests (nbdsrv.h). */
#include "nbdsrv.h"
#include "../harness.h"

#include <libnbd.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static bool on_path(const char *prog)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

void nbdsrv_need(const char *prog)
{
    T_SKIP_IF(!on_path(prog), "%s not installed (scripts/deps.sh installs it)", prog);
}

static void stop_at_exit(void *arg)
{
    nbdsrv_kill(arg, SIGKILL);
}

/* A full NBD handshake and a clean disconnect (a bare connect+close makes
 * the servers log a broken pipe). */
static bool connectable(const struct nbdsrv *s)
{
    if (access(s->sock, F_OK) != 0)
        return false;
    struct nbd_handle *h = nbd_create();
    if (!h)
        return false;
    bool ok = nbd_connect_uri(h, s->uri) == 0;
    if (ok)
        nbd_shutdown(h, 0);
    nbd_close(h);
    return ok;
}

static void start(struct nbdsrv *s)
{
    unlink(s->sock);
    fflush(NULL);
    pid_t pid = fork();
    T_ASSERT(pid >= 0, "fork");
    if (pid == 0) {
        setpgid(0, 0);          /* a signal to the test's group does not reach it */
        execvp(s->argv[0], s->argv);
        fprintf(stderr, "exec %s: %s\n", s->argv[0], strerror(errno));
        _exit(127);
    }
    s->pid = pid;
    struct timespec ts = { 0, 5 * 1000 * 1000 };
    for (int i = 0; i < 2000; i++) {
        if (connectable(s))
            return;
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            s->pid = 0;
            T_ASSERT(0, "%s exited (status 0x%x) before its socket was ready", s->argv[0], st);
        }
        nanosleep(&ts, NULL);
    }
    T_ASSERT(0, "%s: socket %s not ready after 10 s", s->argv[0], s->sock);
}

static void setup(struct nbdsrv *s, const char *name, const char *export)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->sock, sizeof(s->sock), "%s/%s.sock", t_tmpdir(0), name);
    snprintf(s->uri, sizeof(s->uri), "nbd+unix:///%s?socket=%s", export, s->sock);
    t_atexit(stop_at_exit, s);
}

static char *dupf(const char *fmt, const char *a, const char *b)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), fmt, a, b);
    return strdup(buf);
}

void nbdsrv_nbdkit(struct nbdsrv *s, const char *name, const char *export, const char *const *args)
{
    setup(s, name, export ? export : "");
    unsigned n = 0;
    s->argv[n++] = strdup("nbdkit");
    s->argv[n++] = strdup("-f");
    s->argv[n++] = strdup("--exit-with-parent");
    s->argv[n++] = strdup("-U");
    s->argv[n++] = strdup(s->sock);
    for (unsigned i = 0; args && args[i] && n < 39; i++)
        s->argv[n++] = strdup(args[i]);
    s->argv[n] = NULL;
    start(s);
}

void nbdsrv_qsd(struct nbdsrv *s, const char *name, const char *image, const char *fmt,
                const char *export, bool readonly)
{
    setup(s, name, export);
    const char *ro = readonly ? "on" : "off";
    unsigned n = 0;
    s->argv[n++] = strdup("qemu-storage-daemon");
    s->argv[n++] = strdup("--blockdev");
    s->argv[n++] = dupf("driver=file,node-name=file0,filename=%s,discard=unmap,read-only=%s",
                        image, ro);
    s->argv[n++] = strdup("--blockdev");
    s->argv[n++] = dupf("driver=%s,node-name=fmt0,file=file0,discard=unmap,read-only=%s", fmt, ro);
    s->argv[n++] = strdup("--nbd-server");
    s->argv[n++] = dupf("addr.type=unix,addr.path=%s%s", s->sock, "");
    s->argv[n++] = strdup("--export");
    s->argv[n++] = dupf("type=nbd,id=exp0,node-name=fmt0,name=%s,writable=%s", export,
                        readonly ? "off" : "on");
    s->argv[n] = NULL;
    start(s);
}

void nbdsrv_restart(struct nbdsrv *s)
{
    T_ASSERT(!s->pid, "server still running");
    start(s);
}

void nbdsrv_kill(struct nbdsrv *s, int sig)
{
    if (!s->pid)
        return;
    kill(s->pid, sig);
    if (sig == SIGSTOP) {       /* kill(2) returns before the process is stopped */
        char path[64], st[512];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)s->pid);
        for (int i = 0; i < 1000; i++) {
            FILE *f = fopen(path, "r");
            size_t n = f ? fread(st, 1, sizeof(st) - 1, f) : 0;
            if (f)
                fclose(f);
            st[n] = 0;
            char *p = strrchr(st, ')');
            if (p && p[1] == ' ' && p[2] == 'T')
                return;
            usleep(1000);
        }
        T_ASSERT(0, "%s (pid %d) not stopped after 1 s", s->argv[0], (int)s->pid);
    }
    if (sig == SIGKILL || sig == SIGTERM) {
        if (sig == SIGTERM) {
            for (int i = 0; i < 500; i++) {
                if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
                    s->pid = 0;
                    return;
                }
                usleep(10000);
            }
            kill(s->pid, SIGKILL);
        }
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

int nbdsrv_log_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}
