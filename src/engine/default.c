/*
 * default.c - which engine an unprefixed params value ("/path") gets: uring,
 * or aio where io_uring cannot be used at all.
 *
 * io_uring rings are created per engine queue (queue_open), long after the
 * store was opened and the device advertised, so the choice is made at open:
 * a probe ring (1 entry) is set up and torn down again.  ENOSYS (kernel
 * without io_uring, or a seccomp profile) and EPERM (sysctl
 * kernel.io_uring_disabled=2, or =1 for a process outside
 * kernel.io_uring_group; seccomp profiles that answer EPERM) select aio; the
 * first such fallback in the process is logged as a warning, later ones at
 * info level.  Any other probe failure (e.g. ENOMEM) keeps uring, whose
 * queue_open then reports the real error.  The probe runs at every open (a
 * vbd connect), so a changed sysctl is seen without a restart.
 */
#include "engine_priv.h"
#include "log.h"

#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <string.h>

const struct engine_ops *eng_default_ops(const struct engine_params *p)
{
    struct log_dev d;
    static bool warned;                 /* atomic */
    struct io_uring ring;
    int rc = io_uring_queue_init(1, &ring, 0);
    if (rc == 0) {
        io_uring_queue_exit(&ring);
        return &engine_uring;
    }
    if (rc != -ENOSYS && rc != -EPERM)
        return &engine_uring;
    eng_log_dev(&d, p);
    if (!__atomic_exchange_n(&warned, true, __ATOMIC_RELAXED))
        log_dev(LOG_WARNING, &d, LOG_NO_QUEUE, "io_uring unavailable (io_uring_setup: %s): using "
                "the aio engine (libaio) instead; further fallbacks are logged at info level",
                strerror(-rc));
    else
        log_dev(LOG_INFO, &d, LOG_NO_QUEUE, "io_uring unavailable (%s): engine aio", strerror(-rc));
    return &engine_aio;
}
