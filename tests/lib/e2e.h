/*
 * e2e.h - end-to-end fixture: a simulated Xen host (dir in /dev/shm), the test
 * xenstored, the daemon (sanitizer build) on that host, and xen-blkbench runs
 * as simulated guests.  Everything is real but Xen: real libxenstore, real
 * io_uring, real files and block devices.
 */
#ifndef XBD_TEST_E2E_H
#define XBD_TEST_E2E_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "daemon.h"

struct e2e {
    const char *sim;            /* simulated host dir (tmpfs) */
    const char *work;           /* scratch dir on a real filesystem (O_DIRECT) */
    char xs_sock[108];
    pid_t xsd_pid;
    struct t_daemon d;
};

/* Start xenstored and the daemon (`daemon_args`: extra options, NULL-terminated,
 * may be NULL; --xen=sim:<dir> is added).  Fails the test on error. */
void e2e_start(struct e2e *e, const char *const *daemon_args);
/* As e2e_start, with simulated-host options appended to --xen=sim:<dir>
 * (e.g. "unmap_delay_us=10000"; see xen_ops_sim.c). */
void e2e_start_sim(struct e2e *e, const char *sim_opts, const char *const *daemon_args);

/* (Re)start the daemon alone on the running host e (after it stopped or
 * was killed) with --xen=sim:<dir> and `extra` (NULL-terminated, at most 14;
 * may be NULL).  Fails the test on error. */
void e2e_daemon_start(struct e2e *e, const char *const *extra);

/* Stop the daemon with SIGTERM; returns its exit status (0 expected; a leak
 * found by LeakSanitizer at exit makes it non-zero). */
int  e2e_stop(struct e2e *e);

/*
 * Run xen-blkbench --sim <dir> --domid <domid> --target <target> plus `args`
 * (NULL-terminated).  Its stdout+stderr go to *out (malloc'd, may be NULL).
 * Returns its exit status, or -1 if it could not run / was killed.
 */
int  e2e_bench(struct e2e *e, unsigned domid, const char *target, const char *const *args, char **out);

/* e2e_bench in a child process, its output written to out_path; the
 * child exits 0 if the bench did.  Returns the child's pid (waitpid it). */
pid_t e2e_bench_bg(struct e2e *e, unsigned domid, const char *target, const char *const *args,
                   const char *out_path);

/* Wait for an e2e_bench_bg child; its output into *out (malloc'd, may be
 * NULL).  A failed run is a test failure naming `what`, with the output and
 * the daemon log's tail printed.  true: it exited 0. */
bool e2e_bench_join(struct e2e *e, pid_t child, const char *out_path, const char *what,
                    char **out);

/* Value of `key=` on the stdout line starting with `section` (e.g.
 * "verify", "mismatches"), as an integer; -1 if absent. */
long long e2e_field(const char *out, const char *section, const char *key);
/* The same as a double ("runtime=2.345"); -1 if absent. */
double e2e_field_double(const char *out, const char *section, const char *key);

/* The checks of a successful verified xen-blkbench run (exit status rc,
 * output out): exit 0, no mismatch and something verified, no ERROR or
 * unexpected status, flush OKAY, no failed discard, no grant leaked at
 * detach.  `what` names the run in messages. */
void e2e_check_run(const char *out, int rc, const char *what);

/* The whole-disk sha256 of a xen-blkbench --sha256 run (its line "sha256
 * <hex>" in out, which may be NULL) equals sha (64 hex chars, as
 * e2e_sha256_file gives); `what` names the run in the message. */
void e2e_check_sha256(const char *out, const char *sha, const char *what);

/* Create a file of `mib` MiB filled with a pseudo-random pattern; returns path. */
const char *e2e_make_image(struct e2e *e, const char *name, unsigned mib);

/* sha256 of a file as 64 hex chars into hex[65]; 0 or -errno. */
int  e2e_sha256_file(const char *path, char hex[65]);

/* Is [off, off+len) of `path` entirely a hole (SEEK_HOLE/SEEK_DATA)? */
bool e2e_is_hole(const char *path, uint64_t off, uint64_t len);

/* Skip the test (exit 77) unless loop devices can be set up: root and a
 * free one (losetup -f). */
void e2e_need_loop(void);
/* losetup -f --show `img`: the loop device's path ("/dev/loopN"), valid
 * until it is detached (losetup -d) at test exit; skips the test if losetup
 * fails. */
const char *e2e_losetup(const char *img);

/* The daemon's resources, for leak checks: open fds, threads, its mappings
 * of files of the simulated host (guest memory, grant tables, rings,
 * event-channel tables; anonymous mappings are not counted: the ASan
 * allocator grows its regions) and, among those, the mappings of
 * dom<N>.evtchn files. */
struct e2e_counts { int fds, maps, threads, evt; };
struct e2e_counts e2e_counts(const struct e2e *e);
/* Log the daemon's mappings of the simulated host's files (its
 * /proc/<pid>/maps lines), to show what a leak check counted. */
void e2e_log_sim_maps(const struct e2e *e);

/* Run a shell command, output into *out (malloc'd, may be NULL); exit status. */
int  e2e_sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
