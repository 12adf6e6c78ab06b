/*
 * opener.c - the privileged opener of backing stores (include/opener.h).
 * One request, one reply on a SOCK_SEQPACKET socketpair; the descriptor
 * travels as SCM_RIGHTS ancillary data (unix(7)).
 */
#include "opener.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

struct opener_req {
    int32_t flags;
    char path[PATH_MAX];
};

struct opener_rep {
    int32_t err;                /* 0: the descriptor is attached; else a negative errno */
};

#define OPENER_FLAGS (O_ACCMODE | O_DIRECT | O_EXCL | O_NONBLOCK | O_SYNC | O_DSYNC | O_CLOEXEC)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int sock = -1;           /* the daemon's end */
static pid_t pid;
static bool gone_logged;

static int recv_rep(int s, int *fd, bool want_fd);

/* ---- the opener process ------------------------------------------------- */

/* The kernel's pseudo file systems: regular files there are not disks
 * (/proc/kcore, sysfs attributes, ...).  Magic numbers: <linux/magic.h>. */
static bool pseudo_fs(int fd)
{
    static const unsigned long magic[] = {
        PROC_SUPER_MAGIC, SYSFS_MAGIC, DEBUGFS_MAGIC, TRACEFS_MAGIC, SECURITYFS_MAGIC,
        CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC, BPF_FS_MAGIC, EFIVARFS_MAGIC,
        SELINUX_MAGIC, PSTOREFS_MAGIC,
    };
    struct statfs sf;
    if (fstatfs(fd, &sf) < 0)
        return true;
    for (size_t i = 0; i < ARRAY_SIZE(magic); i++)
        if ((unsigned long)sf.f_type == magic[i])
            return true;
    return false;
}

/* One request: the descriptor (>= 0) or -errno. */
static int serve_one(const struct opener_req *rq)
{
    if ((rq->flags & ~OPENER_FLAGS) || rq->path[0] != '/')
        return -EINVAL;
    int fd = open(rq->path, rq->flags | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0)
        rc = -errno;
    else if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        rc = -EPERM;
    else if (S_ISREG(st.st_mode) && pseudo_fs(fd))
        rc = -EPERM;
    if (rc) {
        close(fd);
        return rc;
    }
    return fd;
}

static int send_rep(int s, int err, int fd)
{
    struct opener_rep rep = { .err = err };
    ssize_t n = xbd_send_fd(s, &rep, sizeof(rep), fd);
    return n == (ssize_t)sizeof(rep) ? 0 : n < 0 ? (int)n : -EIO;
}

/* Keep CAP_DAC_OVERRIDE (if we have it) and nothing else: uid 0 owns
 * root's files without a capability; other owners' files need it. */
static void drop_caps(void)
{
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) < 0)
        return;
    uint32_t keep = d[0].permitted & (1u << CAP_DAC_OVERRIDE);
    memset(d, 0, sizeof(d));
    d[0].permitted = d[0].effective = keep;
    if (syscall(SYS_capset, &h, d) < 0)
        log_msg(LOG_WARNING, "opener: capset: %s", strerror(errno));
}

static void __attribute__((noreturn)) serve(int s, enum confine_mode mode, bool sim)
{
    prctl(PR_SET_NAME, "xbd-opener", 0, 0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    drop_caps();
    int rc = confine_thread(CONFINE_ROLE_OPENER, mode, sim);
    if (rc < 0)
        log_err("opener: cannot load its seccomp allow-list: %s", strerror(-rc));
    /* ready (or not): opener_start waits for this */
    if (send_rep(s, rc < 0 ? rc : 0, -1) < 0 || rc < 0)
        _exit(1);
    for (;;) {
        struct opener_req rq;
        ssize_t n = recv(s, &rq, sizeof(rq), 0);
        if (n == 0)
            _exit(0);           /* the daemon closed its end or is gone */
        if (n < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        int fd = -EINVAL;
        if ((size_t)n > offsetof(struct opener_req, path) &&
            memchr(rq.path, 0, (size_t)n - offsetof(struct opener_req, path)))
            fd = serve_one(&rq);
        rc = send_rep(s, fd < 0 ? fd : 0, fd);
        if (fd >= 0)
            close(fd);
        if (rc < 0)
            _exit(1);
    }
}

int opener_start(enum confine_mode mode, bool sim)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    pid_t parent = getpid();
    pid_t p = fork();
    if (p < 0) {
        int rc = -errno;
        close(sv[0]);
        close(sv[1]);
        return rc;
    }
    if (p == 0) {
        close(sv[0]);
        if (getppid() != parent)
            _exit(0);           /* the daemon died before PR_SET_PDEATHSIG */
        serve(sv[1], mode, sim);
    }
    close(sv[1]);
    int fd = -1, rc = recv_rep(sv[0], &fd, false);     /* confined, or why not */
    if (fd >= 0)
        close(fd);
    if (rc < 0) {
        close(sv[0]);
        return rc;
    }
    sock = sv[0];
    pid = p;
    log_info("privileged opener started (pid %ld): backing stores are opened as root, "
             "served as the user", (long)p);
    return 0;
}

/* ---- the daemon's side -------------------------------------------------- */

/* A reply: its errno (0 or negative), *fd the descriptor it carried (-1:
 * none); -EIO for a short read, EOF, or want_fd and 0 without one. */
static int recv_rep(int s, int *fd, bool want_fd)
{
    struct opener_rep rep;
    ssize_t n;
    while ((n = xbd_recv_fd(s, &rep, sizeof(rep), fd)) == -EINTR)
        ;
    if (n != (ssize_t)sizeof(rep)) {
        if (*fd >= 0)
            close(*fd);
        *fd = -1;
        return -EIO;
    }
    if (rep.err == 0 && *fd < 0 && want_fd)
        return -EIO;
    if (rep.err < 0 && *fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    return rep.err > 0 ? -EIO : rep.err;
}

int opener_open(const char *path, int flags)
{
    if (!path || path[0] != '/' || (flags & ~OPENER_FLAGS))
        return -EINVAL;
    size_t len = strlen(path);
    if (len >= PATH_MAX)
        return -ENAMETOOLONG;
    pthread_mutex_lock(&lock);
    if (sock < 0) {
        pthread_mutex_unlock(&lock);
        int fd = open(path, flags | O_CLOEXEC | O_NOCTTY);
        return fd < 0 ? -errno : fd;
    }
    struct opener_req rq = { .flags = flags };
    memcpy(rq.path, path, len + 1);
    int fd = -1, rc;
    size_t n = offsetof(struct opener_req, path) + len + 1;
    if (send(sock, &rq, n, MSG_NOSIGNAL) != (ssize_t)n)
        rc = -EIO;
    else
        rc = recv_rep(sock, &fd, true);
    if (rc == -EIO && !gone_logged) {
        gone_logged = true;
        log_err("the privileged opener (pid %ld) does not answer: backing stores cannot be "
                "opened until the daemon is restarted", (long)pid);
    }
    pthread_mutex_unlock(&lock);
    return rc < 0 ? rc : fd;
}

pid_t opener_pid(void)
{
    return sock < 0 ? 0 : pid;
}

void opener_stop(void)
{
    pthread_mutex_lock(&lock);
    if (sock >= 0) {
        close(sock);
        sock = -1;
        pid = 0;
    }
    pthread_mutex_unlock(&lock);
}
