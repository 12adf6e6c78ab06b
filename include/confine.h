/*
 * confine.h - least privilege for xen-blkbackd (xen-blkbackd(8) CONFINEMENT):
 * a seccomp allow-list per thread role (libseccomp) and the drop to an
 * unprivileged user after start-up (--seccomp=trap by default, measured on
 * the simulated host and run under real Xen by `make check-xen`, dom0 and
 * driver domain; --user opt-in, with the privileged opener of opener.h).
 * The test suite and `make demo` run every daemon confined
 * (tests/lib/daemon.c: --seccomp=trap; demo: kill).
 */
#ifndef XBD_CONFINE_H
#define XBD_CONFINE_H

#include <stdbool.h>
#include <sys/types.h>

enum confine_mode {
    CONFINE_OFF = 0,            /* no filter */
    CONFINE_LOG,                /* a syscall outside the list is allowed and the kernel
                                   logs it (SCMP_ACT_LOG: audit / dmesg); for measuring */
    CONFINE_TRAP,               /* SIGSYS: our handler writes the syscall and thread to
                                   stderr, then the process dies of SIGSYS */
    CONFINE_KILL,               /* SCMP_ACT_KILL_PROCESS (the kernel's audit record is
                                   the log) */
};

enum confine_role {
    CONFINE_ROLE_QUEUE,         /* a data-plane queue thread (src/ring/queue.c): ring,
                                   grants, event channel, io_uring/libaio submission */
    CONFINE_ROLE_CONTROL,       /* the control plane (src/backend/): loaded once after
                                   start-up onto every thread of the process (TSYNC),
                                   inherited by every thread made afterwards */
    CONFINE_ROLE_CONTROL_WORKERS,   /* the control plane with --isolation=domain: its
                                   list plus fork, execve, wait and the socketpair of
                                   the workers, which inherit it (src/common/seccomp.c
                                   control_worker_syscalls) */
    CONFINE_ROLE_OPENER,        /* the privileged opener process (include/opener.h):
                                   receive a path, open, fstat, send the descriptor */
};

/* The names "off", "log", "trap", "kill" (the `seccomp` key).  parse: 0 or
 * -EINVAL (s NULL or unknown); name: "?" for no mode. */
int confine_mode_parse(const char *s, enum confine_mode *out);
const char *confine_mode_name(enum confine_mode m);

/*
 * Load the allow-list of `role` onto the calling thread only (no TSYNC:
 * other threads keep theirs; threads it creates afterwards inherit it) and
 * set no_new_privs; CONFINE_ROLE_CONTROL onto every thread of the process
 * (TSYNC: call it before any thread has a list of its own, i.e. before the
 * first queue thread starts; main.c after start-up).  CONFINE_OFF does
 * nothing.  The list (src/common/
 * seccomp.c) is what the role's code and the libxen* calls it makes need:
 * xen-project/xen:tools/libs/gnttab/linux.c@c447b7308b (gntdev MAP_GRANT_REF, mmap,
 * SET_UNMAP_NOTIFY, GET_OFFSET_FOR_VADDR, munmap, UNMAP_GRANT_REF,
 * GRANT_COPY), tools/libs/evtchn/linux.c (NOTIFY ioctl, read of the pending
 * port, write to unmask).  sim: the Xen services are the simulated host's,
 * which also opens files (a guest's memory) from a queue thread.  The
 * control plane's list and how it was measured: src/common/seccomp.c.
 * 0, -EINVAL (bad role/mode), -ENOMEM, or the -errno of seccomp_load
 * (-ESRCH: a thread already had a list of its own).
 */
int confine_thread(enum confine_role role, enum confine_mode mode, bool sim);

/*
 * In a process exec'd under a filter it inherited rather than loaded (an
 * isolation worker: src/backend/worker.c, main.c): the filter survives the
 * execve but the SIGSYS handler of --seccomp=trap does not (execve resets
 * caught signals to SIG_DFL: torvalds/linux:fs/exec.c@v6.1 begin_new_exec
 * -> flush_signal_handlers; seccomp(2) on filters across execve), so this
 * installs the report again and unblocks SIGSYS, as confine_thread does,
 * and marks the control plane's list as on (the test hook below).  Until it
 * runs (ld.so, the libraries' constructors, the option parsing) a trap
 * kills with no report.  Loads nothing.  0, or -EINVAL (unknown mode).
 */
int confine_inherited(enum confine_mode mode);

/*
 * Test hook, in the test (sanitizer) build only (-DXBD_TEST_HOOKS: Makefile,
 * SAN=1; elsewhere it does nothing, so the installed daemon has no such
 * switch): with XBD_TEST_FORBIDDEN_SYSCALL=queue in the environment each
 * queue thread makes a ptrace call right after loading its list (with
 * =opener the privileged opener, likewise); with
 * =control the control plane makes an execve(NULL) when called for
 * CONFINE_ROLE_CONTROL (on SIGUSR1: src/backend/backend.c) once its list
 * is loaded; with =worker:D the main thread of domain D's first isolation
 * worker makes a mount(NULL, NULL, ...) when called for
 * CONFINE_ROLE_CONTROL after confine_inherited (src/backend/worker.c: a
 * WK_TEST request, before any of its queue threads exists; execve is in a
 * worker's inherited list).  All are harmless where allowed (EIO, EFAULT),
 * so tests/t_confine.c and t_isolation.c see what each mode does with them.
 */
void confine_test_violation(enum confine_role role);

/* The D of XBD_TEST_FORBIDDEN_SYSCALL=worker:D (test build only, as above);
 * -1 without it, for another value, and outside the test build. */
long confine_test_worker(void);

/*
 * Resolve --user: a user name (getpwnam) or a numeric uid ("65534", group
 * = the same number unless the user exists).  0, -ENOENT (no such user),
 * -EINVAL (root, or not a name/number).
 */
int confine_user_lookup(const char *user, uid_t *uid, gid_t *gid);

/*
 * Become uid/gid for good: supplementary groups dropped (setgroups 0),
 * setresgid, setresuid, so every capability is gone (the kernel clears the
 * permitted and effective sets on the change from uid 0; capabilities(7)),
 * and no_new_privs.  Call after start-up (xenstore connection, control
 * socket, owner locks, already attached devices).  0 or -errno.
 */
int confine_drop_user(uid_t uid, gid_t gid);

#endif
