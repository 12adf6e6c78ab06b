/* systemd notification (sd_notify) for real, through a NOTIFY_SOCKET this test owns: READY=1 comes after the existing devices were reattached (its STATUS= counts them connected), WATCHDOG=1 repeats at half of WATCHDOG_USEC when WATCHDOG_PID is the daemon's pid and never when it is another's, STOPPING=1 on SIGTERM. */
#include "harness.h"
#include "util.h"
#include "lib/e2e.h"
#include "lib/hostile.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <xen/io/xenbus.h>

#define DEVID 51712
#define WD_USEC 400000          /* pings every 200 ms */

static int nfd = -1;

/* Read datagrams for up to ms; count those containing `needle`; the first
 * one into first[] (if not NULL). */
static int collect(unsigned ms, const char *needle, char *first, size_t flen)
{
    int n = 0;
    long long end = (long long)xbd_now_ms() + ms;
    for (long long now; (now = (long long)xbd_now_ms()) < end; ) {
        struct pollfd p = { .fd = nfd, .events = POLLIN };
        if (poll(&p, 1, (int)(end - now)) <= 0)
            continue;
        char buf[512];
        ssize_t r = recv(nfd, buf, sizeof(buf) - 1, 0);
        if (r <= 0)
            continue;
        buf[r] = 0;
        if (first && !first[0])
            snprintf(first, flen, "%s", buf);
        n += strstr(buf, needle) != NULL;
    }
    return n;
}

/* In the daemon's child before exec: WATCHDOG_PID as systemd sets it. */
static void set_wd_pid(void *arg)
{
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", arg ? *(int *)arg : (int)getpid());
    setenv("WATCHDOG_PID", pid, 1);
}

int main(void)
{
    struct e2e e;
    struct hvbd v;
    struct guest g;
    hx_e2e_connected(&e, NULL, &v, &g, 3, DEVID);
    T_EQ(e2e_stop(&e), 0);                  /* on-exit=leave: stays Connected */

    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/notify.sock", e.sim);
    nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    T_ASSERT(nfd >= 0 && bind(nfd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "notify socket");
    setenv("NOTIFY_SOCKET", sa.sun_path, 1);
    char wd[16];
    snprintf(wd, sizeof(wd), "%d", WD_USEC);
    setenv("WATCHDOG_USEC", wd, 1);
    char xa[600];
    snprintf(xa, sizeof(xa), "--xen=sim:%s", e.sim);
    const char *args[] = { xa, NULL };

    /* 1. READY=1 after the reattach; watchdog pings; STOPPING=1. */
    T_LOG("1. watchdog for us");
    T_ASSERT(t_daemon_start_fn(&e.d, e.sim, args, 20000, set_wd_pid, NULL) == 0, "daemon");
    char first[512] = "";
    int pings = collect(1500, "WATCHDOG=1", first, sizeof(first));
    T_LOG("first datagram: '%s'; %d pings in 1.5 s", first, pings);
    T_CHECK(strstr(first, "READY=1") != NULL, "first datagram is not READY=1: '%s'", first);
    T_CHECK(strstr(first, "STATUS=serving 1 device(s), 1 connected") != NULL,
            "READY=1 before the device was reattached: '%s'", first);
    T_CHECK(pings >= 4 && pings <= 10, "%d WATCHDOG=1 in 1.5 s at a %d us watchdog", pings, WD_USEC);
    T_EQ(t_daemon_dev_int(&e.d, 3, DEVID, "connected"), 1);
    hx_rw_check(&g, 1);
    T_CHECK(t_daemon_alive(&e.d), "daemon died");
    kill(e.d.pid, SIGTERM);
    T_CHECK(collect(3000, "STOPPING=1", NULL, 0) == 1, "no STOPPING=1 on SIGTERM");
    T_EQ(t_daemon_stop(&e.d, 15000), 0);

    /* 2. WATCHDOG_PID names another process: no pings, READY=1 all the same. */
    T_LOG("2. watchdog for someone else");
    int other = (int)getpid();
    T_ASSERT(t_daemon_start_fn(&e.d, e.sim, args, 20000, set_wd_pid, &other) == 0, "daemon");
    first[0] = 0;
    pings = collect(1000, "WATCHDOG=1", first, sizeof(first));
    T_CHECK(strstr(first, "READY=1") != NULL, "no READY=1: '%s'", first);
    T_EQ(pings, 0);
    hx_close(&e.d, &v);
    T_EQ(t_daemon_stop(&e.d, 15000), 0);
    guest_check_released(&g, "after close");
    guest_fini(&g);
    close(nfd);
    if (t_failures)
        t_daemon_dump_log(&e.d, 40);
    return t_done();
}
