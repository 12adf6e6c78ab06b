/* SIGUSR1 logs the device table (one line per vbd with its states, params, mode, queues, grant mode the data plane resolved: copy for auto on io_uring, and counters), SIGUSR2 toggles debug logging, SIGPIPE is ignored; none of them stops the daemon or its device. */
#include "harness.h"
#include "lib/e2e.h"
#include "lib/hostile.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <xen/io/xenbus.h>

#define DEVID 51712

/* Wait until the daemon's log has a line with needle (and needle2). */
static bool wait_log(const struct t_daemon *d, long before, const char *needle, const char *needle2)
{
    for (int i = 0; i < 250; i++) {
        if (hx_log_count(d, needle, needle2) > before)
            return true;
        usleep(20000);
    }
    return false;
}

/* Bit of signal sig in a /proc/<pid>/status mask line ("SigIgn:", "SigBlk:"). */
static int proc_sig_bit(pid_t pid, const char *field, int sig)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int bit = -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, field, strlen(field)))
            bit = (int)((strtoull(line + strlen(field), NULL, 16) >> (sig - 1)) & 1);
    fclose(f);
    return bit;
}

int main(void)
{
    struct e2e e;
    const char *dargs[] = { "--log-level=info", NULL };   /* after the harness's debug */
    struct hvbd v;
    struct guest g;
    const char *img = hx_e2e_connected(&e, dargs, &v, &g, 3, DEVID);

    /* SIGUSR1: the table. */
    char want[700];
    snprintf(want, sizeof(want), "vbd 3/%u: state=4 frontend=4 online=true connected=true "
             "halted=false connects=1 params=%s mode=w protocol=x86_64-abi queues=1 ring-order=0 "
             "grant-mode=copy persistent=false rd_req=1 wr_req=1", DEVID, img);
    T_EQ(hx_log_count(&e.d, want, NULL), 0);
    T_ASSERT(kill(e.d.pid, SIGUSR1) == 0);
    T_CHECK(wait_log(&e.d, 0, want, NULL), "no line '%s' after SIGUSR1", want);
    if (t_failures)
        e2e_sh(NULL, "grep -A3 SIGUSR1 '%s' >&2", e.d.log);
    T_EQ(hx_log_count(&e.d, "SIGUSR1: 1 device(s)", NULL), 1);
    T_CHECK(t_daemon_alive(&e.d), "SIGUSR1 killed the daemon");

    /* SIGUSR2: debug on (watch events are logged at debug), then off again. */
    long dbg0 = hx_log_count(&e.d, "[debug]", NULL);
    T_EQ(dbg0, 0);
    T_ASSERT(kill(e.d.pid, SIGUSR2) == 0);
    T_CHECK(wait_log(&e.d, 0, "SIGUSR2: log level debug", NULL), "no SIGUSR2 line");
    char hp[200];
    snprintf(hp, sizeof(hp), "%s/hotplug-status", v.be);
    hx_write(hp, "connected");                               /* a watch event */
    T_CHECK(wait_log(&e.d, 0, "[debug]", "hotplug-status"), "no debug line after SIGUSR2");
    T_ASSERT(kill(e.d.pid, SIGUSR2) == 0);
    T_CHECK(wait_log(&e.d, 0, "SIGUSR2: log level back to the quiet one", NULL), "no second SIGUSR2 line");
    long dbg1 = hx_log_count(&e.d, "[debug]", NULL);
    hx_write(hp, "connected");
    hx_rw_check(&g, 1);                                      /* the loop turned */
    usleep(100000);
    T_EQ(hx_log_count(&e.d, "[debug]", NULL), dbg1);

    /* SIGPIPE: ignored (not merely blocked), survives a real one. */
    T_EQ(proc_sig_bit(e.d.pid, "SigIgn:", SIGPIPE), 1);
    T_EQ(proc_sig_bit(e.d.pid, "SigBlk:", SIGUSR1), 1);     /* read through the signalfd */
    T_EQ(proc_sig_bit(e.d.pid, "SigBlk:", SIGUSR2), 1);
    T_ASSERT(kill(e.d.pid, SIGPIPE) == 0);
    usleep(100000);
    T_CHECK(t_daemon_alive(&e.d), "SIGPIPE killed the daemon");
    T_EQ(t_daemon_dev_int(&e.d, 3, DEVID, "connected"), 1);
    hx_rw_check(&g, 2);

    hx_close(&e.d, &v);
    T_EQ(e2e_stop(&e), 0);
    guest_check_released(&g, "after close");
    guest_fini(&g);
    if (t_failures)
        t_daemon_dump_log(&e.d, 40);
    return t_done();
}
