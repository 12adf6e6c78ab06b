/*
 * nbdsrv.h - NBD servers started by the tests: nbdkit (foreground child,
 * --exit-with-parent, on a unix socket) and qemu-storage-daemon exporting an
 * image file through a format driver.  Helpers fail the test on setup
 * errors; the server is stopped at test exit if still running.
 */
#ifndef XBD_TEST_NBDSRV_H
#define XBD_TEST_NBDSRV_H

#include <stdbool.h>
#include <sys/types.h>

struct nbdsrv {
    pid_t pid;                  /* 0: not running */
    char sock[108];             /* unix socket path */
    char uri[200];              /* nbd+unix:///<export>?socket=<sock> */
    char *argv[40];             /* what was started (for nbdsrv_restart) */
};

/* Skip the test (77) unless `prog` (e.g. "nbdkit") is on PATH. */
void nbdsrv_need(const char *prog);

/* nbdkit -f --exit-with-parent -U <dir>/<name>.sock <args...> (NULL-
 * terminated: filters, plugin, plugin args); returns once an NBD handshake
 * with `export` (NULL: "") works (10 s at most); uri names that export. */
void nbdsrv_nbdkit(struct nbdsrv *s, const char *name, const char *export, const char *const *args);

/* qemu-storage-daemon exporting `image` (driver `fmt`, e.g. "qcow2") with
 * discard=unmap as export `export` on <dir>/<name>.sock, writable unless
 * readonly; returns once the socket accepts connections. */
void nbdsrv_qsd(struct nbdsrv *s, const char *name, const char *image, const char *fmt,
                const char *export, bool readonly);

/* Start the same server again (after nbdsrv_kill). */
void nbdsrv_restart(struct nbdsrv *s);

/* Send sig to the server; SIGKILL/SIGTERM also reap it (pid 0 after),
 * SIGSTOP returns once /proc says it is stopped. */
void nbdsrv_kill(struct nbdsrv *s, int sig);

/* Lines of the text file `path` (e.g. an nbdkit log filter's logfile)
 * containing `needle`; -1 if it cannot be read. */
int nbdsrv_log_lines(const char *path, const char *needle);

#endif
