/*
 * daemon.h - run xen-blkbackd as a child process from a test: start it with
 * arguments, wait until its control socket answers, query it (one request
 * line -> one JSON reply, see xen-blkbackd(8) CONTROL SOCKET), stop it with
 * SIGTERM and check it exits 0.  The child inherits the environment, so set
 * XENSTORED_PATH (the test xenstored) before starting it.
 */
#ifndef XBD_TEST_DAEMON_H
#define XBD_TEST_DAEMON_H

#include <stdbool.h>
#include <sys/types.h>

struct t_daemon {
    pid_t pid;                  /* 0 when not running */
    char sock[108];             /* control socket (sun_path size) */
    char log[256];              /* the daemon's stderr */
};

/*
 * Start t_prog("xen-blkbackd") with --control=<dir>/blkbackd.sock,
 * --log=stderr (into <dir>/blkbackd.log) and --log-level=debug, then `args`
 * (NULL-terminated; may be NULL).  Waits up to timeout_ms for `version` to be
 * answered.  A cleanup kills the daemon if the test exits early.
 * 0, -ETIMEDOUT (the log's tail is printed), -ECHILD (it exited), -errno.
 */
int  t_daemon_start(struct t_daemon *d, const char *dir, const char *const *args,
                    unsigned timeout_ms);
/* As t_daemon_start; setup(arg) (may be NULL) runs in the child between fork
 * and exec, e.g. to set WATCHDOG_PID to the daemon's own pid as systemd does. */
int  t_daemon_start_fn(struct t_daemon *d, const char *dir, const char *const *args,
                       unsigned timeout_ms, void (*setup)(void *), void *arg);

/* One request line (without newline); malloc'd reply or NULL. */
char *t_daemon_request(const struct t_daemon *d, const char *req);

/* Still running (not exited)? */
bool t_daemon_alive(struct t_daemon *d);

/*
 * SIGTERM, then wait up to timeout_ms (SIGKILL after).  Returns the exit
 * status (0..255), 128+signal if killed by a signal, -ETIMEDOUT.
 */
int  t_daemon_stop(struct t_daemon *d, unsigned timeout_ms);

/* As t_daemon_stop with signal `sig` (SIGKILL: a crash). */
int  t_daemon_signal(struct t_daemon *d, int sig, unsigned timeout_ms);

/* Counter `name` of device domid/devid from `stats domid devid`; -1 on error. */
long long t_daemon_stat(const struct t_daemon *d, unsigned domid, unsigned devid,
                        const char *name);

/* Integer or boolean field `key` of the device in `list` (e.g. "state",
 * "frontend_state", "connected", "halted", "connects"); -1 if absent. */
long long t_daemon_dev_int(const struct t_daemon *d, unsigned domid, unsigned devid,
                           const char *key);

/* Number of devices in `list`, -1 on error. */
int  t_daemon_ndevices(const struct t_daemon *d);

/* Print the last `lines` lines of the daemon's log to stderr. */
void t_daemon_dump_log(const struct t_daemon *d, int lines);

#endif
