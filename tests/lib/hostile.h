/*
 * hostile.h - the xenstore side of a hostile (or merely buggy) guest for the
 * t_hostile_* tests: libxl-style toolstack nodes for a vbd, the frontend's
 * ring keys for a tests/lib/guest.h guest, and waiting on backend states.
 * Everything goes through the real libxenstore to the test xenstored named
 * by XENSTORED_PATH (tests/lib/xsd.h).  Helpers fail the test (T_ASSERT) on
 * xenstore errors they do not expect.
 */
#ifndef XBD_TEST_HOSTILE_H
#define XBD_TEST_HOSTILE_H

#include <stdbool.h>
#include <stdint.h>
#include "daemon.h"
#include "e2e.h"
#include "guest.h"

struct hvbd {
    unsigned domid, devid;
    char be[128];               /* /local/domain/0/backend/vbd/<domid>/<devid> */
    char fe[128];               /* /local/domain/<domid>/device/vbd/<devid> */
};

/* Open the xenstore connection (once; XENSTORED_PATH must be set). */
void hx_open(void);
struct xs_handle *hx_xs(void);

/* Write / read / remove a node by printf-style path. */
void hx_write(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Write <dir>/<key> (a frontend's or backend's key). */
void hx_write_in(const char *dir, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
char *hx_read(const char *fmt, ...) __attribute__((format(printf, 1, 2)));   /* NULL: missing */
/* Integer value; -1 missing, -2 not a number. */
long long hx_read_int(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void hx_rm(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Poll <path> until it reads `want` (or timeout); returns the last value read. */
long long hx_wait_int(const char *path, long long want, unsigned timeout_ms);
/* The backend state of v (-1 missing). */
long long hx_be_state(const struct hvbd *v);
/* Wait for the backend state `want`; logs the daemon's tail on timeout. */
bool hx_wait_be(const struct t_daemon *d, const struct hvbd *v, long long want, unsigned timeout_ms);

/*
 * Toolstack: both directories in one transaction, as libxl 4.17 writes them
 * (docs/protocol.md §1.1): backend state 1, online 1, mode w, params `params`,
 * frontend state 1.  extra: more backend keys, "key", "value" pairs, NULL
 * terminated (may be NULL); a value of NULL removes the key instead.
 */
void hx_add(struct hvbd *v, unsigned domid, unsigned devid, const char *params,
            const char *const *extra);

/*
 * Frontend: publish g's ring refs and event channels (ring-page-order and
 * ring-ref<i> for more than one page, queue-<i>/ for more than one queue),
 * protocol (NULL: no key = native) and feature-persistent.  The caller
 * then writes state 3 (hx_fe_state), possibly after spoiling some keys.
 */
void hx_publish(const struct hvbd *v, const struct guest *g, const char *protocol, bool persistent);

/* Frontend state. */
void hx_fe_state(const struct hvbd *v, int state);

/* Remove the frontend, then the backend directory (xl destroy order). */
void hx_remove(const struct hvbd *v);

/* The daemon no longer lists domid/devid (within timeout_ms). */
bool hx_wait_forgotten(const struct t_daemon *d, unsigned domid, unsigned devid, unsigned timeout_ms);

/* Lines of the daemon's log containing `needle` (and `needle2` if not NULL). */
long hx_log_count(const struct t_daemon *d, const char *needle, const char *needle2);

/*
 * A vbd the daemon d connects, with a 1-queue, 1-page x86_64 guest on the
 * host dir: hx_add (no extra keys), InitWait, publish, Initialised,
 * Connected, frontend Connected.  Fails the test on a timeout (10 s each).
 */
void hx_connect(const struct t_daemon *d, struct hvbd *v, struct guest *g, const char *hostdir,
                unsigned domid, unsigned devid, const char *params);
/* As hx_connect, with more toolstack keys (hx_add's extra, e.g. mode r). */
void hx_connect_extra(const struct t_daemon *d, struct hvbd *v, struct guest *g,
                      const char *hostdir, unsigned domid, unsigned devid, const char *params,
                      const char *const *extra);
/* The common start of an end-to-end test: e2e_start(e, daemon_args),
 * hx_open, an 8 MiB image (returned), hx_connect of vbd domid/devid with
 * guest g, one hx_rw_check. */
const char *hx_e2e_connected(struct e2e *e, const char *const *daemon_args, struct hvbd *v,
                             struct guest *g, unsigned domid, unsigned devid);
/* Frontend Closing then Closed, waiting for the backend to follow. */
void hx_close(const struct t_daemon *d, const struct hvbd *v);
/* WRITE one page at sector 8*round, READ it back on queue 0, compare in the
 * guest (one wr_req and one rd_req of 8 sectors). */
void hx_rw_check(struct guest *g, unsigned round);

#endif
