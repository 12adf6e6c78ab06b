/*
 * xsd.h - run the test xenstore server (xen-sim-xenstored, see
 * xen-sim-xenstored(8)) as a child of a test, so the real libxenstore, the
 * daemon and the xenstore-* tools can talk to it through XENSTORED_PATH.
 *
 *     char sock[108]; pid_t pid;
 *     T_ASSERT(t_xsd_start(t_tmpdir(0), sock, sizeof(sock), &pid) == 0);
 *     struct xs_handle *xs = xs_open(0);      // now reaches the test server
 *
 * The server's stderr goes to the test's stderr (the test log).
 */
#ifndef XBD_TEST_XSD_H
#define XBD_TEST_XSD_H

#include <stddef.h>
#include <sys/types.h>

/*
 * Start t_prog("xen-sim-xenstored") with --socket <dir>/xs.sock and
 * --pidfile <dir>/xs.pid, wait (up to 20 s) for the pidfile, which the
 * server writes once the socket listens, copy the socket path to
 * sock_path_out (len bytes) and set XENSTORED_PATH to it.  A t_atexit
 * cleanup SIGTERMs and reaps the server if the test ends first.
 * Returns 0, -ENOENT (not built), -ENAMETOOLONG, -ECHILD (it exited),
 * -ETIMEDOUT, or -errno; out-params are left alone on failure.
 */
int  t_xsd_start(const char *dir, char *sock_path_out, size_t len, pid_t *pid);

/* As t_xsd_start, with extra server arguments (NULL-terminated list, may be
 * NULL), e.g. { "--max-outq", "65536", "--verbose", NULL }. */
int  t_xsd_start_args(const char *dir, const char *const *args, char *sock_path_out,
                      size_t len, pid_t *pid);

/* SIGTERM the server and reap it (SIGKILL after 10 s). */
void t_xsd_stop(pid_t pid);

/* As t_xsd_stop; returns the exit status (0..255), 128+signal if killed by
 * a signal, or -ECHILD if pid is not a server this library started. */
int  t_xsd_stop_status(pid_t pid);

#endif
