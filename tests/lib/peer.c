/* Two test processes talking over pipes (see peer.h). */
#include "peer.h"
#include "util.h"
#include "../harness.h"

#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void peer_put(struct peer *p, const void *buf, size_t n)
{
    const char *b = buf;
    while (n) {
        ssize_t k = write(p->wr, b, n);
        T_ASSERT(k > 0, "pipe write: %s", strerror(errno));
        b += k;
        n -= (size_t)k;
    }
}

void peer_get(struct peer *p, void *buf, size_t n)
{
    char *b = buf;
    while (n) {
        ssize_t k = read(p->rd, b, n);
        T_ASSERT(k > 0, "peer went away (read %zd)", k);
        b += k;
        n -= (size_t)k;
    }
}

void peer_put_u32(struct peer *p, uint32_t v) { peer_put(p, &v, sizeof(v)); }
uint32_t peer_get_u32(struct peer *p) { uint32_t v; peer_get(p, &v, sizeof(v)); return v; }

void peer_fork(struct peer *p, void (*fn)(struct peer *, void *), void *arg)
{
    int a[2], b[2];
    T_ASSERT(pipe(a) == 0 && pipe(b) == 0, "pipe");
    fflush(NULL);
    p->pid = fork();
    T_ASSERT(p->pid >= 0, "fork");
    if (p->pid == 0) {
        struct peer me = { getppid(), a[0], b[1] };
        close(a[1]);
        close(b[0]);
        fn(&me, arg);
        close(me.rd);
        close(me.wr);
        fflush(NULL);
        exit(t_failures ? 1 : 0);
    }
    close(a[0]);
    close(b[1]);
    p->rd = b[0];
    p->wr = a[1];
}

int peer_wait(struct peer *p)
{
    int st;
    pid_t w;
    close(p->wr);
    close(p->rd);
    while ((w = waitpid(p->pid, &st, 0)) < 0 && errno == EINTR)
        ;
    if (w != p->pid) {
        T_LOG("waitpid: %s", strerror(errno));
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

