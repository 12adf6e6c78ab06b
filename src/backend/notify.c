/*
 * notify.c - the systemd service protocol (sd_notify(3), libsystemd):
 * READY=1 once the first scan has reattached the existing devices, STATUS=
 * whenever the device counts change, STOPPING=1 on SIGTERM/SIGINT, and
 * WATCHDOG=1 from the main loop at half the interval systemd asks for
 * (sd_watchdog_enabled(3): WATCHDOG_USEC, checked against WATCHDOG_PID).
 * Without NOTIFY_SOCKET every call is a no-op.
 */
#include "backend.h"
#include "util.h"
#include "log.h"

#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

void notify_init(struct backend *b)
{
    uint64_t usec = 0;
    int rc = sd_watchdog_enabled(0, &usec);
    b->notify.wd_interval_us = rc > 0 ? usec / 2 : 0;
    b->notify.next_ping_us = 0;
    b->notify.ndev = b->notify.nconn = ~0u;
    if (rc < 0)
        log_warn("systemd watchdog: bad WATCHDOG_USEC/WATCHDOG_PID: %s", strerror(-rc));
    else if (rc > 0)
        log_info("systemd watchdog: %llu ms, pinging every %llu ms",
                 (unsigned long long)(usec / 1000), (unsigned long long)(usec / 2000));
}

/* "STATUS=serving N device(s), M connected" when the counts changed. */
static void send_status(struct backend *b, const char *prefix)
{
    unsigned n = 0, c = 0;
    for (struct vbd *v = b->vbds; v; v = v->next) {
        n++;
        c += v->dp != NULL;
    }
    if (!prefix[0] && n == b->notify.ndev && c == b->notify.nconn)
        return;
    b->notify.ndev = n;
    b->notify.nconn = c;
    sd_notifyf(0, "%sSTATUS=serving %u device(s), %u connected", prefix, n, c);
}

void notify_ready(struct backend *b)
{
    send_status(b, "READY=1\n");
}

void notify_stopping(struct backend *b)
{
    (void)b;
    sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

int notify_tick(struct backend *b)
{
    send_status(b, "");
    uint64_t iv = b->notify.wd_interval_us;
    if (!iv)
        return -1;
    uint64_t now = (xbd_now_ns() / 1000);
    if (now >= b->notify.next_ping_us) {
        sd_notify(0, "WATCHDOG=1");
        b->notify.next_ping_us = now + iv;
    }
    uint64_t left = b->notify.next_ping_us - now;
    return (int)((left + 999) / 1000);
}
