/* Start/stop the test xenstore server (xen-sim-xenstored) from a test. */
#include "xsd.h"
#include "../harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define XSD_MAX 8
static pid_t running[XSD_MAX];          /* servers started and not yet reaped */

static void forget(pid_t pid)
{
    for (int i = 0; i < XSD_MAX; i++)
        if (running[i] == pid)
            running[i] = 0;
}

static void cleanup(void *arg)
{
    pid_t pid = (pid_t)(long)arg;
    for (int i = 0; i < XSD_MAX; i++)
        if (running[i] == pid)
            t_xsd_stop(pid);
}

int t_xsd_stop_status(pid_t pid)
{
    int found = 0;
    for (int i = 0; i < XSD_MAX; i++)
        found |= pid > 0 && running[i] == pid;
    if (!found)
        return -ECHILD;
    kill(pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 1000; i++) {       /* 10 s */
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            goto reaped;
        usleep(10000);
    }
    fprintf(stderr, "# xen-sim-xenstored %d ignored SIGTERM: killing it\n", (int)pid);
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
reaped:
    forget(pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void t_xsd_stop(pid_t pid)
{
    (void)t_xsd_stop_status(pid);
}

int t_xsd_start_args(const char *dir, const char *const *args, char *sock_path_out,
                     size_t len, pid_t *pid_out)
{
    char sock[sizeof(((struct sockaddr_un *)0)->sun_path)], pidf[4096];
    const char *prog = t_prog("xen-sim-xenstored");
    if (access(prog, X_OK) != 0)
        return -ENOENT;
    if ((size_t)snprintf(sock, sizeof(sock), "%s/xs.sock", dir) >= sizeof(sock) ||
        strlen(sock) >= len)
        return -ENAMETOOLONG;
    snprintf(pidf, sizeof(pidf), "%s/xs.pid", dir);
    unlink(pidf);

    const char *argv[32] = { prog, "--socket", sock, "--pidfile", pidf };
    int argc = 5;
    for (int i = 0; args && args[i] && argc < 31; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;

    int slot = -1;
    for (int i = 0; i < XSD_MAX && slot < 0; i++)
        if (!running[i])
            slot = i;
    if (slot < 0)
        return -EMFILE;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        execv(prog, (char *const *)argv);
        _exit(127);
    }
    running[slot] = pid;
    t_atexit(cleanup, (void *)(long)pid);

    for (int i = 0; i < 2000; i++) {       /* 20 s: sanitizer builds start slowly */
        struct stat st;
        if (stat(pidf, &st) == 0 && st.st_size > 0) {
            snprintf(sock_path_out, len, "%s", sock);
            setenv("XENSTORED_PATH", sock, 1);
            *pid_out = pid;
            return 0;
        }
        int wst;
        if (waitpid(pid, &wst, WNOHANG) == pid) {
            forget(pid);
            return -ECHILD;
        }
        usleep(10000);
    }
    t_xsd_stop(pid);
    return -ETIMEDOUT;
}

int t_xsd_start(const char *dir, char *sock_path_out, size_t len, pid_t *pid)
{
    return t_xsd_start_args(dir, NULL, sock_path_out, len, pid);
}
