/*
 * seccomp.c - the seccomp allow-lists per thread role and the drop to an
 * unprivileged user (API and sources of the lists in include/confine.h;
 * what is measured and what is not: xen-blkbackd(8) CONFINEMENT).
 */
#include "confine.h"
#include "util.h"

#include <errno.h>
#include <grp.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <pwd.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xen/xen.h>                    /* domid_t, for xen/sys/evtchn.h */
#include <xen/sys/evtchn.h>
#include <xen/sys/gntdev.h>

static const char *const mode_names[] = {
    [CONFINE_OFF] = "off", [CONFINE_LOG] = "log", [CONFINE_TRAP] = "trap",
    [CONFINE_KILL] = "kill",
};

int confine_mode_parse(const char *s, enum confine_mode *out)
{
    for (size_t i = 0; s && i < ARRAY_SIZE(mode_names); i++)
        if (!strcmp(s, mode_names[i])) {
            *out = (enum confine_mode)i;
            return 0;
        }
    return -EINVAL;
}

const char *confine_mode_name(enum confine_mode m)
{
    return (unsigned)m < ARRAY_SIZE(mode_names) ? mode_names[m] : "?";
}

/*
 * A queue thread, measured on the simulated host with --seccomp=trap under
 * ASan+UBSan (uring and aio engines, every grant mode: tests/t_confine.c),
 * plus what the libxen* calls of the data plane make on a real host (see
 * confine.h).  Opening, binding and closing happen in the control plane
 * (dp_create, dp_start, dp_stop), so open/socket/bind are not here.
 */
static const int queue_syscalls[] = {
    /* ring and event channel waits, eventfds, the sim's shared files */
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
    SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(poll), SCMP_SYS(ppoll),
    SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl),
    /* engines: io_uring and libaio submission and reaping */
    SCMP_SYS(io_uring_enter), SCMP_SYS(io_submit), SCMP_SYS(io_getevents),
    SCMP_SYS(io_pgetevents), SCMP_SYS(io_cancel), SCMP_SYS(io_destroy),
    /* grant maps (gntdev mmap), slots, the allocator */
    SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mprotect), SCMP_SYS(madvise),
    SCMP_SYS(mremap), SCMP_SYS(brk),
    /* locks, time, the sim's grant-unmap delay, libxengnttab's EAGAIN retry */
    SCMP_SYS(futex), SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep), SCMP_SYS(gettimeofday), SCMP_SYS(sched_yield),
    /* log lines: the journal's socket (sd_journal_sendv), stderr */
    SCMP_SYS(sendmsg), SCMP_SYS(sendto), SCMP_SYS(getpid), SCMP_SYS(gettid),
    /* thread exit, signals (the SIGSYS report below; abort), restarts */
    SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigaction), SCMP_SYS(tgkill), SCMP_SYS(restart_syscall),
    SCMP_SYS(sigaltstack), SCMP_SYS(close),
};

/* Under the simulated host only: its grant table opens a guest domain's
 * memory file the first time a queue maps from it (src/sim/sim_gntmap.c),
 * where libxengnttab makes an ioctl on the open gntdev. */
static const int queue_sim_syscalls[] = {
    SCMP_SYS(openat), SCMP_SYS(open), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(lseek),
    SCMP_SYS(fcntl), SCMP_SYS(flock),
};

/* ioctl commands of a queue thread (the argument compared on 32 bits: the
 * kernel's cmd is an unsigned int).  Checked against
 * xen-project/xen@c447b7308b: every ioctl that tools/libs/gnttab/linux.c
 * makes in map_grant_refs, unmap and grant_copy, and tools/libs/evtchn/linux.c
 * in notify, is here (SET_MAX_GRANTS, the evtchn binds, UNBIND and
 * RESTRICT_DOMID are the control plane's); the numbers of the system headers
 * (<xen/sys/gntdev.h>, evtchn.h: libxen-dev 4.17) equal those of
 * tools/include/xen-sys/Linux/gntdev.h and evtchn.h there (MAP_GRANT_REF
 * 0x184700, UNMAP_GRANT_REF 0x104701, GET_OFFSET_FOR_VADDR 0x184702,
 * SET_UNMAP_NOTIFY 0x104707, GRANT_COPY 0x104708, EVTCHN_NOTIFY 0x44504 on
 * x86-64). */
static const unsigned long queue_ioctls[] = {
    IOCTL_GNTDEV_MAP_GRANT_REF, IOCTL_GNTDEV_UNMAP_GRANT_REF,
    IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR, IOCTL_GNTDEV_SET_UNMAP_NOTIFY,
    IOCTL_GNTDEV_GRANT_COPY,
    IOCTL_EVTCHN_NOTIFY,
    BLKDISCARD, BLKSECDISCARD,          /* uring engine on a block device, synchronous */
};

/* ---- SIGSYS report (--seccomp=trap) ----------------------------------------- */

static __thread char thread_name[16];

static size_t put_str(char *buf, size_t at, size_t len, const char *s)
{
    while (*s && at + 1 < len)
        buf[at++] = *s++;
    return at;
}

static size_t put_num(char *buf, size_t at, size_t len, unsigned long v)
{
    char d[24];
    int n = 0;
    do
        d[n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < (int)sizeof(d));
    while (n && at + 1 < len)
        buf[at++] = d[--n];
    return at;
}

/* Async-signal-safe: formats by hand, one write(2) to stderr, then the
 * default action of SIGSYS kills the process once the handler returns (the
 * kernel unblocked SIGSYS to deliver this one). */
static void sigsys_report(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    char buf[256];
    size_t n = put_str(buf, 0, sizeof(buf), "xen-blkbackd: seccomp: forbidden syscall ");
    n = put_num(buf, n, sizeof(buf), (unsigned long)si->si_syscall);
    n = put_str(buf, n, sizeof(buf), " (arch 0x");
    static const char hex[] = "0123456789abcdef";
    for (int s = 28; s >= 0 && n + 1 < sizeof(buf); s -= 4)
        buf[n++] = hex[((unsigned)si->si_arch >> s) & 15];
    n = put_str(buf, n, sizeof(buf), ") in thread ");
    n = put_str(buf, n, sizeof(buf), thread_name[0] ? thread_name : "?");
    n = put_str(buf, n, sizeof(buf), " (tid ");
    n = put_num(buf, n, sizeof(buf), (unsigned long)syscall(SYS_gettid));
    n = put_str(buf, n, sizeof(buf), "): killing the process\n");
    ssize_t w = write(STDERR_FILENO, buf, n);
    (void)w;
    signal(sig, SIG_DFL);
    syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sig);
}

static void install_sigsys(void)
{
    struct sigaction sa = { .sa_sigaction = sigsys_report, .sa_flags = SA_SIGINFO };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSYS, &sa, NULL);
}

/* XBD_TEST_FORBIDDEN_SYSCALL=1 in the environment: right after loading its
 * list a confined thread makes one syscall outside it (ptrace with a bad
 * request: harmless where it is allowed), so tests/t_confine.c can see the
 * process die and the report.  Compiled into the test (sanitizer) build
 * only (-DXBD_TEST_HOOKS: Makefile, SAN=1): the installed daemon has no such
 * switch.  Does nothing with no filter. */
static void test_violation(void)
{
#ifdef XBD_TEST_HOOKS
    const char *v = getenv("XBD_TEST_FORBIDDEN_SYSCALL");
    if (v && !strcmp(v, "1"))
        syscall(SYS_ptrace, -1L, 0L, 0L, 0L);
#endif
}

int confine_thread(enum confine_role role, enum confine_mode mode, bool sim)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    uint32_t deny;
    switch (mode) {
    case CONFINE_OFF:
        return 0;
    case CONFINE_LOG:
        deny = SCMP_ACT_LOG;
        break;
    case CONFINE_TRAP:
        deny = SCMP_ACT_TRAP;
        break;
    case CONFINE_KILL:
        deny = SCMP_ACT_KILL_PROCESS;
        break;
    default:
        return -EINVAL;
    }
    if (role != CONFINE_ROLE_QUEUE)
        return -EINVAL;
    if (mode == CONFINE_TRAP) {
        /* Unblocked here: a seccomp SIGSYS that finds the signal blocked is
         * delivered with the default action instead of the handler
         * (torvalds/linux:kernel/signal.c@v6.1 force_sig_info_to_task). */
        sigset_t sys;
        sigemptyset(&sys);
        sigaddset(&sys, SIGSYS);
        pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
        pthread_once(&once, install_sigsys);
    }
    prctl(PR_GET_NAME, thread_name, 0, 0, 0);

    scmp_filter_ctx ctx = seccomp_init(deny);
    if (!ctx)
        return -ENOMEM;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ARRAY_SIZE(queue_syscalls); i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, queue_syscalls[i], 0);
    for (size_t i = 0; rc == 0 && sim && i < ARRAY_SIZE(queue_sim_syscalls); i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, queue_sim_syscalls[i], 0);
    /* the engine queue's close, at the thread's end (src/engine/uring.c:
     * the store's registered file dropped before the ring goes) */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(io_uring_register), 1,
                              SCMP_A1_32(SCMP_CMP_EQ, IORING_UNREGISTER_FILES));
    for (size_t i = 0; rc == 0 && i < ARRAY_SIZE(queue_ioctls); i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                              SCMP_A1_32(SCMP_CMP_EQ, (uint32_t)queue_ioctls[i]));
    if (rc == 0)
        rc = seccomp_load(ctx);         /* sets no_new_privs (SCMP_FLTATR_CTL_NNP) */
    seccomp_release(ctx);
    if (rc == 0)
        test_violation();
    return rc;
}

/* ---- the user ------------------------------------------------------------------ */

int confine_user_lookup(const char *user, uid_t *uid, gid_t *gid)
{
    if (!user || !*user)
        return -EINVAL;
    struct passwd pw, *res = NULL;
    char buf[4096];
    uint64_t n;
    if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) == 0 && res) {
        *uid = res->pw_uid;
        *gid = res->pw_gid;
    } else if (xbd_parse_u64(user, 10, 1, UINT32_MAX - 1, &n) == 0) {
        if (getpwuid_r((uid_t)n, &pw, buf, sizeof(buf), &res) == 0 && res) {
            *uid = res->pw_uid;
            *gid = res->pw_gid;
        } else {
            *uid = (uid_t)n;
            *gid = (gid_t)n;
        }
    } else {
        return user[0] >= '0' && user[0] <= '9' ? -EINVAL : -ENOENT;
    }
    return *uid == 0 ? -EINVAL : 0;
}

int confine_drop_user(uid_t uid, gid_t gid)
{
    if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
        return -errno;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    return 0;
}
