/*
 * seccomp.c - the seccomp allow-lists per thread role and the drop to an
 * unprivileged user (API and sources of the lists in include/confine.h;
 * what is measured and what is not: xen-blkbackd(8) CONFINEMENT).
 */
#include "confine.h"
#include "util.h"

#include <errno.h>
#include <grp.h>
#include <linux/netlink.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <pwd.h>
#include <seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <ucontext.h>
#include <sys/prctl.h>
#include <sys/socket.h>
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
    /* locks, time, the sim's grant-unmap delay, libxengnttab's EAGAIN retry;
     * the delay filter's timer (src/engine/delay.c: found when the whole
     * suite ran under --seccomp=trap, t_hostile_ring, t_restart, t_signals) */
    SCMP_SYS(futex), SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep), SCMP_SYS(gettimeofday), SCMP_SYS(sched_yield),
    SCMP_SYS(timerfd_settime),
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

/*
 * The control plane: the main thread (xenstore, watches, attach and detach
 * of devices, the control socket, the metrics listener, signals, sd_notify)
 * and libxenstore's watch reader thread, loaded after start-up onto both
 * (TSYNC).  Every thread made later inherits it: the queue threads (their
 * own list stacks on it, so everything in queue_syscalls is here too), the
 * aio engine's flush workers, libnbd's and librados's threads.
 *
 * Measured: every daemon of `make check` (the sanitizer build on the
 * simulated host, all 51 test programs: uring/aio/null/nbd/rbd engines,
 * every grant mode, attach/detach, restart state, resize, QoS, metrics over
 * HTTP, the control socket, signals, sd_notify, driver-domain xenstore)
 * run under strace -f with --seccomp=log, the syscalls made after this
 * list's load (the TSYNC seccomp(2) call) collected with their arguments;
 * then the suite passes with --seccomp=trap (tests/lib/daemon.c's default)
 * and `make demo` with --seccomp=kill.  Not measured but kept allowed, from
 * the sources of what the real host adds: the gntdev/evtchn ioctls below
 * (libxengnttab, libxenevtchn: confine.h), libxenstore over /dev/xen/xenbus
 * (read/write only), the journal's fallback for a big entry (memfd_create:
 * systemd/systemd:src/libsystemd/sd-journal/journal-send.c@v252), glibc's
 * resolver for an nbd:// host name (sendmmsg, recvmsg and a NETLINK_ROUTE
 * socket: bminor/glibc:resolv/res_send.c@glibc-2.36 and
 * sysdeps/unix/sysv/linux/check_pf.c there).
 * librados was measured against the test cluster only (one mon, memstore
 * osd): a real cluster's options may need more, which a trap reports.
 * Not here: execve, fork (clone without CLONE_THREAD), ptrace, setuid and
 * friends (--user dropped root before the load), mount, module, bpf,
 * perf_event_open, process_vm_*, kexec, reboot (--isolation=domain adds
 * fork and execve: control_worker_syscalls).
 */
static const int control_syscalls[] = {
    /* files: images, restart state, the log, /sys, the td3 statistics */
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
    SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(openat), SCMP_SYS(open),
    SCMP_SYS(close), SCMP_SYS(newfstatat), SCMP_SYS(fstat), SCMP_SYS(statx),
    SCMP_SYS(lseek), SCMP_SYS(fcntl), SCMP_SYS(flock), SCMP_SYS(ftruncate),
    SCMP_SYS(fallocate), SCMP_SYS(fdatasync), SCMP_SYS(fsync), SCMP_SYS(getdents64),
    SCMP_SYS(unlink), SCMP_SYS(unlinkat), SCMP_SYS(mkdir), SCMP_SYS(rmdir),
    SCMP_SYS(access), SCMP_SYS(faccessat), SCMP_SYS(faccessat2), SCMP_SYS(pipe2),
    SCMP_SYS(memfd_create),
    /* waits, eventfds, timers (libmicrohttpd, librados) */
    SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(epoll_create), SCMP_SYS(epoll_create1),
    SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(eventfd2),
    SCMP_SYS(timerfd_create), SCMP_SYS(timerfd_settime), SCMP_SYS(timerfd_gettime),
    /* engines: io_uring (register: below), libaio */
    SCMP_SYS(io_uring_setup), SCMP_SYS(io_uring_enter), SCMP_SYS(io_setup),
    SCMP_SYS(io_destroy), SCMP_SYS(io_submit), SCMP_SYS(io_getevents),
    SCMP_SYS(io_pgetevents), SCMP_SYS(io_cancel),
    /* sockets (socket: below): xenstored, control socket, metrics HTTP,
     * sd_notify and the journal, NBD, Ceph */
    SCMP_SYS(connect), SCMP_SYS(bind), SCMP_SYS(listen), SCMP_SYS(accept),
    SCMP_SYS(accept4), SCMP_SYS(getsockname), SCMP_SYS(getpeername), SCMP_SYS(getsockopt),
    SCMP_SYS(setsockopt), SCMP_SYS(shutdown), SCMP_SYS(sendto), SCMP_SYS(sendmsg),
    SCMP_SYS(sendmmsg), SCMP_SYS(recvfrom), SCMP_SYS(recvmsg),
    /* memory: grant maps, the allocators */
    SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mprotect), SCMP_SYS(madvise),
    SCMP_SYS(mremap), SCMP_SYS(brk),
    /* threads (clone: below) and their locks; the queue threads' own lists */
    SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(exit),
    SCMP_SYS(exit_group), SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity),
    SCMP_SYS(gettid), SCMP_SYS(getpid), SCMP_SYS(tgkill), SCMP_SYS(seccomp),
    /* signals: the signalfd's reads, the SIGSYS report, abort */
    SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn),
    SCMP_SYS(sigaltstack), SCMP_SYS(restart_syscall),
    /* time and identity (librados, nss) */
    SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep), SCMP_SYS(gettimeofday), SCMP_SYS(uname), SCMP_SYS(getrandom),
    SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
};

/* The simulated host's files: FIFOs as event channel queues, the host's and
 * the grant owners' files written to a temporary name and linked or renamed
 * into place (src/sim/). */
static const int control_sim_syscalls[] = {
    SCMP_SYS(mknodat), SCMP_SYS(linkat), SCMP_SYS(renameat),
};

/* The sanitizer build only: LeakSanitizer's check at exit stops the
 * threads from a tracer it clones without CLONE_THREAD and which ptraces
 * them, after PR_SET_PDEATHSIG, listing /proc/self/task with getdents
 * (gcc-mirror/gcc:libsanitizer/sanitizer_common/
 * sanitizer_stoptheworld_linux_libcdep.cpp@releases/gcc-12.2.0; measured
 * with --seccomp=kill and the kernel's audit records, since strace cannot
 * follow that CLONE_UNTRACED tracer); an ASan report reads /proc/self/exe. */
#if defined(__SANITIZE_ADDRESS__)
static const int control_san_syscalls[] = {
    SCMP_SYS(clone), SCMP_SYS(ptrace), SCMP_SYS(wait4), SCMP_SYS(getppid), SCMP_SYS(getdents),
    SCMP_SYS(readlink), SCMP_SYS(readlinkat),
};
static const int control_san_prctls[] = {
    PR_GET_DUMPABLE, PR_SET_DUMPABLE, PR_SET_PTRACER, PR_SET_PDEATHSIG,
};
#endif

/*
 * --isolation=domain only (CONFINE_ROLE_CONTROL_WORKERS): spawning the
 * per-domain workers and talking to them (src/backend/worker.c
 * worker_spawn, worker_reap, worker_kill), and what a worker needs
 * because it inherits this whole list across fork and exec (a filter
 * cannot be dropped) and stacks only its queue threads' list on it.
 * Measured: tests/t_isolation.c under strace -f with --seccomp=log
 * (XBD_TEST_DAEMON_ARG), the syscalls of the daemon after its TSYNC
 * seccomp(2) call, of its forked child until the exec, and of the workers
 * from their execve, compared with the control list: the daemon adds
 * clone (fork's flags), socketpair AF_UNIX, wait4, kill SIGKILL; the child
 * dup2, close_range, prctl PR_SET_PDEATHSIG, getppid, execve; a worker's
 * start (ld.so, libc, the shared libraries' constructors: libselinux's
 * statfs of /sys/fs/selinux, libcap's PR_CAPBSET_READ probe) arch_prctl,
 * set_tid_address, prlimit64, statfs, prctl PR_CAPBSET_READ; under the
 * simulated host the worker's host open mkdirat.
 *
 * execve is allowed without a path check: a filter sees only the pointer
 * to the path, not the string, so "/proc/self/exe only" cannot be said
 * here.  What an execve under this list can do is bounded: no_new_privs
 * (no setuid or file capabilities gained), this same list inherited by
 * the new image, and after --user the same unprivileged user.  clone is
 * the one of glibc's fork() only (no namespaces, no CLONE_VM, no vfork).
 */
static const int control_worker_syscalls[] = {
    SCMP_SYS(execve), SCMP_SYS(wait4), SCMP_SYS(dup2), SCMP_SYS(close_range),
    SCMP_SYS(getppid), SCMP_SYS(arch_prctl), SCMP_SYS(set_tid_address),
    SCMP_SYS(prlimit64), SCMP_SYS(statfs),
};
static const int control_worker_prctls[] = { PR_SET_PDEATHSIG, PR_CAPBSET_READ };
/* glibc's fork: bminor/glibc:sysdeps/unix/sysv/linux/arch-fork.h@glibc-2.36 */
#define FORK_CLONE_FLAGS (CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD)

/* The privileged opener (src/common/opener.c): its loop (recv, open,
 * fstat, fstatfs, sendmsg with SCM_RIGHTS, close), its log lines (a file,
 * stderr or the journal's socket) and the SIGSYS report. */
static const int opener_syscalls[] = {
    SCMP_SYS(recvfrom), SCMP_SYS(sendmsg), SCMP_SYS(open), SCMP_SYS(openat),
    SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(fstatfs), SCMP_SYS(close),
    SCMP_SYS(write), SCMP_SYS(writev), SCMP_SYS(sendto), SCMP_SYS(clock_gettime),
    SCMP_SYS(futex), SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(exit),
    SCMP_SYS(exit_group), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigaction), SCMP_SYS(tgkill), SCMP_SYS(restart_syscall),
};

/* ioctl commands: the store's size and discard (src/engine/store.c, uring.c,
 * aio.c: measured), and what libxengnttab and libxenevtchn issue for ring
 * maps, binds and unbinds on a real host (SET_MAX_GRANTS, the map/unmap
 * family and GRANT_COPY; BIND_INTERDOMAIN, UNBIND, NOTIFY; sources and
 * numbers as for queue_ioctls). */
static const unsigned long control_ioctls[] = {
    BLKGETSIZE64, BLKSSZGET, BLKPBSZGET, BLKDISCARD, BLKSECDISCARD,
    IOCTL_GNTDEV_SET_MAX_GRANTS, IOCTL_GNTDEV_MAP_GRANT_REF, IOCTL_GNTDEV_UNMAP_GRANT_REF,
    IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR, IOCTL_GNTDEV_SET_UNMAP_NOTIFY, IOCTL_GNTDEV_GRANT_COPY,
    IOCTL_EVTCHN_BIND_INTERDOMAIN, IOCTL_EVTCHN_UNBIND, IOCTL_EVTCHN_NOTIFY,
};

/* io_uring_register opcodes of the uring engine (src/engine/uring.c: the
 * store as file 0, the restrictions, enabling the ring, the close). */
static const unsigned control_uring_ops[] = {
    IORING_REGISTER_FILES, IORING_UNREGISTER_FILES, IORING_REGISTER_RESTRICTIONS,
    IORING_REGISTER_ENABLE_RINGS,
};

/* prctl options: thread names, no_new_privs (a queue thread's list). */
static const int control_prctls[] = { PR_SET_NAME, PR_GET_NAME, PR_SET_NO_NEW_PRIVS };

/* socket families: AF_UNIX (xenstored, control socket, sd_notify, journal,
 * nbd+unix), AF_INET/AF_INET6 (metrics HTTP, NBD, Ceph, DNS); and AF_NETLINK
 * with NETLINK_ROUTE only (getaddrinfo's AI_ADDRCONFIG: control_rules). */
static const int control_families[] = { AF_UNIX, AF_INET, AF_INET6 };

/* ---- SIGSYS report (--seccomp=trap) ----------------------------------------- */

static __thread char thread_name[16];
static __thread const char *thread_role;   /* "queue" where that list is loaded */
static bool control_loaded;                 /* the control plane's list is on */
static bool inherited;                      /* ... from the process we were exec'd by */

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

/* buf[at..]: v in hex (no prefix); returns the new end (as put_num). */
static size_t put_hex(char *buf, size_t at, size_t len, unsigned long v)
{
    static const char hex[] = "0123456789abcdef";
    int s = 60;
    while (s > 0 && !((v >> s) & 15))
        s -= 4;
    for (; s >= 0 && at + 1 < len; s -= 4)
        buf[at++] = hex[(v >> s) & 15];
    return at;
}

/* Async-signal-safe: formats by hand, one write(2) to stderr (the first
 * trapping thread only), then the
 * default action of SIGSYS kills the process once the handler returns (the
 * kernel unblocked SIGSYS to deliver this one).  On x86_64 the first two
 * arguments follow (rdi, rsi of the trapped call: an ioctl's fd and request). */
static void sigsys_report(int sig, siginfo_t *si, void *uc)
{
    /* one report per process: threads that trap while the first one is
     * reporting (two queue threads starting at once) die without a line */
    static int reported, written;
    if (__atomic_exchange_n(&reported, 1, __ATOMIC_SEQ_CST)) {
        /* wait (spinning: no syscall that a list might forbid) for the
         * first one's line, which its kill follows */
        for (unsigned long i = 0; i < (1UL << 30) && !__atomic_load_n(&written, __ATOMIC_SEQ_CST);
             i++)
            __asm__ __volatile__("" ::: "memory");
        signal(sig, SIG_DFL);
        syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sig);
        return;
    }
    char buf[320];
    size_t n = put_str(buf, 0, sizeof(buf), "xen-blkbackd: seccomp: forbidden syscall ");
    n = put_num(buf, n, sizeof(buf), (unsigned long)si->si_syscall);
    n = put_str(buf, n, sizeof(buf), " (arch 0x");
    static const char hex[] = "0123456789abcdef";
    for (int s = 28; s >= 0 && n + 1 < sizeof(buf); s -= 4)
        buf[n++] = hex[((unsigned)si->si_arch >> s) & 15];
    /* a thread that did not load a list itself runs under the control
     * plane's only (prctl PR_GET_NAME is in that list) */
    if (!thread_name[0])
        prctl(PR_GET_NAME, thread_name, 0, 0, 0);
    n = put_str(buf, n, sizeof(buf), ") in thread ");
    n = put_str(buf, n, sizeof(buf), thread_name[0] ? thread_name : "?");
    n = put_str(buf, n, sizeof(buf), " (tid ");
    n = put_num(buf, n, sizeof(buf), (unsigned long)syscall(SYS_gettid));
    n = put_str(buf, n, sizeof(buf), ", ");
    n = put_str(buf, n, sizeof(buf), thread_role ? thread_role : "control");
    n = put_str(buf, n, sizeof(buf), " list): killing the process");
#if defined(__x86_64__)
    const ucontext_t *u = uc;
    if (u) {
        n = put_str(buf, n, sizeof(buf), "; arguments 0x");
        n = put_hex(buf, n, sizeof(buf), (unsigned long)u->uc_mcontext.gregs[REG_RDI]);
        n = put_str(buf, n, sizeof(buf), " 0x");
        n = put_hex(buf, n, sizeof(buf), (unsigned long)u->uc_mcontext.gregs[REG_RSI]);
    }
#else
    (void)uc;
#endif
    n = put_str(buf, n, sizeof(buf), "\n");
    ssize_t w = write(STDERR_FILENO, buf, n);
    (void)w;
    __atomic_store_n(&written, 1, __ATOMIC_SEQ_CST);
    signal(sig, SIG_DFL);
    syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), sig);
}

static void install_sigsys(void)
{
    struct sigaction sa = { .sa_sigaction = sigsys_report, .sa_flags = SA_SIGINFO };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSYS, &sa, NULL);
}

void confine_test_violation(enum confine_role role)
{
#ifdef XBD_TEST_HOOKS
    const char *v = getenv("XBD_TEST_FORBIDDEN_SYSCALL");
    if (!v)
        return;
    if (role == CONFINE_ROLE_QUEUE && !strcmp(v, "queue"))
        syscall(SYS_ptrace, -1L, 0L, 0L, 0L);               /* EIO where allowed */
    else if (role == CONFINE_ROLE_OPENER && !strcmp(v, "opener"))
        syscall(SYS_ptrace, -1L, 0L, 0L, 0L);
    else if (role == CONFINE_ROLE_CONTROL && control_loaded && !inherited &&
             !strcmp(v, "control"))
        syscall(SYS_execve, NULL, NULL, NULL);              /* EFAULT where allowed */
    else if (role == CONFINE_ROLE_CONTROL && inherited && !strncmp(v, "worker:", 7))
        syscall(SYS_mount, NULL, NULL, NULL, 0L, NULL);     /* EFAULT where allowed */
#else
    (void)role;
#endif
}

long confine_test_worker(void)
{
#ifdef XBD_TEST_HOOKS
    const char *v = getenv("XBD_TEST_FORBIDDEN_SYSCALL");
    uint64_t d;
    if (v && !strncmp(v, "worker:", 7) && xbd_parse_u64(v + 7, 10, 0, 0x7fef, &d) == 0)
        return (long)d;
#endif
    return -1;
}

/* One role's lists: plain syscalls, the simulated host's extras, ioctl
 * commands (compared on 32 bits). */
struct role_lists {
    const int *sys;
    size_t nsys;
    const int *sim;
    size_t nsim;
    const unsigned long *ioctls;
    size_t nioctls;
};

static int add_lists(scmp_filter_ctx ctx, const struct role_lists *l, bool sim)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < l->nsys; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, l->sys[i], 0);
    for (size_t i = 0; rc == 0 && sim && i < l->nsim; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, l->sim[i], 0);
    for (size_t i = 0; rc == 0 && i < l->nioctls; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                              SCMP_A1_32(SCMP_CMP_EQ, (uint32_t)l->ioctls[i]));
    return rc;
}

static int queue_rules(scmp_filter_ctx ctx, bool sim)
{
    static const struct role_lists l = {
        queue_syscalls, ARRAY_SIZE(queue_syscalls), queue_sim_syscalls,
        ARRAY_SIZE(queue_sim_syscalls), queue_ioctls, ARRAY_SIZE(queue_ioctls),
    };
    int rc = add_lists(ctx, &l, sim);
    /* the engine queue's close, at the thread's end (src/engine/uring.c:
     * the store's registered file dropped before the ring goes) */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(io_uring_register), 1,
                              SCMP_A1_32(SCMP_CMP_EQ, IORING_UNREGISTER_FILES));
    return rc;
}

static int add_arg0(scmp_filter_ctx ctx, int sys, const int *vals, size_t n)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, sys, 1,
                              SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)vals[i]));
    return rc;
}

static int control_rules(scmp_filter_ctx ctx, bool sim)
{
    static const struct role_lists l = {
        control_syscalls, ARRAY_SIZE(control_syscalls), control_sim_syscalls,
        ARRAY_SIZE(control_sim_syscalls), control_ioctls, ARRAY_SIZE(control_ioctls),
    };
    int rc = add_lists(ctx, &l, sim);
    if (rc == 0)
        rc = add_arg0(ctx, SCMP_SYS(prctl), control_prctls, ARRAY_SIZE(control_prctls));
    if (rc == 0)
        rc = add_arg0(ctx, SCMP_SYS(socket), control_families, ARRAY_SIZE(control_families));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 2,
                              SCMP_A0_32(SCMP_CMP_EQ, AF_NETLINK),
                              SCMP_A2_32(SCMP_CMP_EQ, NETLINK_ROUTE));
    for (size_t i = 0; rc == 0 && i < ARRAY_SIZE(control_uring_ops); i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(io_uring_register), 1,
                              SCMP_A1_32(SCMP_CMP_EQ, control_uring_ops[i]));
    /* Threads only (pthread_create); clone3 answers ENOSYS, so glibc falls
     * back to clone, whose flags a filter can see
     * (bminor/glibc:sysdeps/unix/sysv/linux/clone-internal.c@glibc-2.36). */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
#if defined(__SANITIZE_ADDRESS__)
    for (size_t i = 0; rc == 0 && i < ARRAY_SIZE(control_san_syscalls); i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, control_san_syscalls[i], 0);
    if (rc == 0)
        rc = add_arg0(ctx, SCMP_SYS(prctl), control_san_prctls, ARRAY_SIZE(control_san_prctls));
#else
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                              SCMP_A0_64(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
#endif
    return rc;
}

static int opener_rules(scmp_filter_ctx ctx)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ARRAY_SIZE(opener_syscalls); i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, opener_syscalls[i], 0);
    if (rc == 0)                        /* the SIGSYS report's thread name */
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                              SCMP_A0_32(SCMP_CMP_EQ, PR_GET_NAME));
    return rc;
}

/* The control list plus the workers' extras (control_worker_syscalls). */
static int control_worker_rules(scmp_filter_ctx ctx, bool sim)
{
    int rc = sim ? seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mkdirat), 0) : 0;
    for (size_t i = 0; rc == 0 && i < ARRAY_SIZE(control_worker_syscalls); i++)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, control_worker_syscalls[i], 0);
    if (rc == 0)
        rc = add_arg0(ctx, SCMP_SYS(prctl), control_worker_prctls,
                      ARRAY_SIZE(control_worker_prctls));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1,
                              SCMP_A0_32(SCMP_CMP_EQ, AF_UNIX));
    if (rc == 0)                        /* a worker that does not answer */
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1,
                              SCMP_A1_32(SCMP_CMP_EQ, SIGKILL));
    /* stdio's isatty() when the worker reads a --config that is a
     * character device (the suite's /dev/null): "not a terminal" */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOTTY), SCMP_SYS(ioctl), 1,
                              SCMP_A1_32(SCMP_CMP_EQ, TCGETS));
#if !defined(__SANITIZE_ADDRESS__)      /* there clone is allowed anyway */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                              SCMP_A0_64(SCMP_CMP_EQ, FORK_CLONE_FLAGS));
#endif
    return rc;
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
    if (role != CONFINE_ROLE_QUEUE && role != CONFINE_ROLE_CONTROL &&
        role != CONFINE_ROLE_CONTROL_WORKERS && role != CONFINE_ROLE_OPENER)
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
    int rc = role == CONFINE_ROLE_QUEUE    ? queue_rules(ctx, sim)
             : role == CONFINE_ROLE_OPENER ? opener_rules(ctx)
                                           : control_rules(ctx, sim);
    if (rc == 0 && role == CONFINE_ROLE_CONTROL_WORKERS)
        rc = control_worker_rules(ctx, sim);
    /* The control plane's list goes onto every thread that exists
     * (libxenstore's watch reader among them): SECCOMP_FILTER_FLAG_TSYNC. */
    if (rc == 0 && role != CONFINE_ROLE_QUEUE && role != CONFINE_ROLE_OPENER)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (rc == 0)
        rc = seccomp_load(ctx);         /* sets no_new_privs (SCMP_FLTATR_CTL_NNP) */
    seccomp_release(ctx);
    if (rc == 0 && role == CONFINE_ROLE_QUEUE) {
        thread_role = "queue";
        confine_test_violation(role);
    } else if (rc == 0 && role == CONFINE_ROLE_OPENER) {
        thread_role = "opener";
        confine_test_violation(role);
    } else if (rc == 0) {
        control_loaded = true;
    }
    return rc;
}

int confine_inherited(enum confine_mode mode)
{
    if ((unsigned)mode > CONFINE_KILL)
        return -EINVAL;
    if (mode == CONFINE_TRAP) {
        sigset_t sys;                   /* as in confine_thread */
        sigemptyset(&sys);
        sigaddset(&sys, SIGSYS);
        pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
        install_sigsys();
    }
    if (mode != CONFINE_OFF)
        control_loaded = inherited = true;
    return 0;
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
