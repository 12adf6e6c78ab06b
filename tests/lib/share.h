/*
 * share.h - vbds whose sharing of a backing store the t_e2e_lock* tests
 * check: an in-process guest (guest.h) plus its toolstack and frontend nodes
 * (hostile.h), attached with a given `mode`, expected to connect or to be
 * refused as busy, verified I/O, and a toolstack-style detach.  One device
 * per guest domain, devid 51712.  Helpers fail the test on setup errors.
 */
#ifndef XBD_TEST_SHARE_H
#define XBD_TEST_SHARE_H

#include <stdbool.h>
#include <stdint.h>
#include "daemon.h"
#include "guest.h"
#include "hostile.h"

#define SHARE_DEVID 51712

struct sdev {
    struct guest g;
    struct hvbd v;
    const char *params;
};

/* Toolstack: the vbd of domain `domid` on `params` with `mode`; frontend:
 * rings published, state Initialised.  `host`: the simulated host dir. */
void share_attach(const struct t_daemon *d, const char *host, struct sdev *s, unsigned domid,
                  const char *params, const char *mode);
/* share_attach, then Connected (fails the test otherwise), frontend Connected. */
void share_attach_ok(const struct t_daemon *d, const char *host, struct sdev *s, unsigned domid,
                     const char *params, const char *mode);
/* share_attach, then refused: backend Closing with error "16 ..." (EBUSY),
 * nothing of the guest mapped, and exactly one daemon log line naming the
 * image ("'<params>' in use by") and containing `holder`. */
void share_attach_refused(const struct t_daemon *d, const char *host, struct sdev *s,
                          unsigned domid, const char *params, const char *mode,
                          const char *holder);
/* WRITE one page (pattern `seed`) at `sector` (512-byte units), READ it
 * back and compare. */
void share_write_read(struct sdev *s, uint64_t sector, uint64_t seed, const char *what);
/* READ one page at `sector`: its data equals the 4 KiB of the file at
 * `path` there (true), or the guest page `want` if not NULL. */
bool share_read_matches(struct sdev *s, uint64_t sector, const char *path, const void *want);
/* Frontend Closed, online=0, both directories removed; the daemon forgets
 * the device and holds no grant of the guest. */
void share_detach(const struct t_daemon *d, struct sdev *s);

#endif
