/*
 * opener.h - the privileged opener of backing stores (xen-blkbackd(8)
 * CONFINEMENT).  With --user the daemon gives up root after start-up, but
 * the images and block devices the toolstack names are usually root's
 * (0600 or 0644 files, root:disk block devices).  Before the drop the
 * daemon forks one small process that stays root, with CAP_DAC_OVERRIDE
 * as its only capability and a seccomp list of its own, and that opens a
 * path on request and hands the descriptor back (SCM_RIGHTS over a
 * SOCK_SEQPACKET socketpair: unix(7)); everything else about the store
 * (the claim, the probe, the I/O) happens in the daemon as before.  The
 * opener opens regular files and block devices only, never creates or
 * truncates, and refuses the kernel's pseudo file systems.
 */
#ifndef XBD_OPENER_H
#define XBD_OPENER_H

#include "confine.h"

#include <stdbool.h>
#include <sys/types.h>

/*
 * Fork the opener (call before any thread exists: the child goes on with
 * the whole C library, malloc included).  It drops every capability but
 * CAP_DAC_OVERRIDE, loads CONFINE_ROLE_OPENER's list in `mode` (sim: the
 * simulated host's build, as confine_thread), and serves until the
 * daemon's end of the socket closes or the daemon dies
 * (PR_SET_PDEATHSIG).  0, or -errno of socketpair/fork.
 */
int opener_start(enum confine_mode mode, bool sim);

/*
 * Open `path` (absolute) with `flags`: through the opener when it runs,
 * else open(2) here.  Allowed flags: O_RDONLY/O_RDWR, O_DIRECT, O_EXCL
 * (a block device's exclusive claim), O_NONBLOCK, O_SYNC, O_DSYNC,
 * O_CLOEXEC (always set).  The descriptor, or -errno: the open's errno
 * (EACCES, ENOENT, EINVAL for O_DIRECT refused ...), -EINVAL for another
 * flag or a relative path, -ENAMETOOLONG, -EPERM from the opener for
 * anything but a regular file or a block device or for a file on proc,
 * sysfs and the like, -EIO when the opener is gone (logged once).
 * Thread-safe (one request at a time).
 */
int opener_open(const char *path, int flags);

/* The opener's pid, 0 when none runs. */
pid_t opener_pid(void);

/* Close the daemon's end: the opener exits (not reaped: called as the
 * daemon exits, whose control list has no wait4 without isolation). */
void opener_stop(void);

#endif
