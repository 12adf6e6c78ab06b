/* Daemon signals: SIGHUP reopens the log file (logrotate); SIGTERM with slow I/O in flight answers it, releases everything and exits 0 promptly. */
#include "harness.h"
#include "util.h"
#include "lib/e2e.h"
#include "lib/peer.h"

#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

int main(void)
{
    struct e2e e;
    char logarg[600], logp[512], rotated[520];
    const char *dir = t_tmpdir(0);
    snprintf(logp, sizeof(logp), "%s/daemon.log", dir);
    snprintf(rotated, sizeof(rotated), "%s/daemon.log.1", dir);
    snprintf(logarg, sizeof(logarg), "--log=file:%s", logp);
    const char *dargs[] = { logarg, "--log-level=info", "--allow-test-engines", NULL };
    e2e_start(&e, dargs);
    const char *img = e2e_make_image(&e, "sig.img", 16);

    /* 1. SIGHUP: after a rename (as logrotate does), the daemon writes a new file */
    const char *io[] = { "--rw", "randread", "--bs", "4k", "--iodepth", "4", "--size", "1m", NULL };
    T_ASSERT(e2e_bench(&e, 1, img, io, NULL) == 0);
    T_CHECK(file_size(logp) > 0, "nothing logged to %s", logp);
    T_ASSERT(rename(logp, rotated) == 0);
    T_ASSERT(kill(e.d.pid, SIGHUP) == 0);
    for (int i = 0; i < 100 && file_size(logp) < 0; i++)
        usleep(20000);
    T_CHECK(file_size(logp) >= 0, "SIGHUP did not reopen %s", logp);
    long old = file_size(rotated);
    T_ASSERT(e2e_bench(&e, 2, img, io, NULL) == 0);
    T_CHECK(file_size(logp) > 0, "new log file got no lines after SIGHUP");
    T_EQ(file_size(rotated), old);
    T_CHECK(t_daemon_alive(&e.d), "daemon died on SIGHUP");

    /* 2. SIGTERM while requests sit in a 300 ms storage delay */
    char params[600];
    snprintf(params, sizeof(params), "delay:300000:%s", img);
    pid_t child = fork();
    T_ASSERT(child >= 0);
    if (child == 0) {
        const char *slow[] = { "--rw", "randread", "--bs", "4k", "--iodepth", "8",
            "--runtime", "20", "--timeout", "3", NULL };
        char *out = NULL;
        e2e_bench(&e, 3, params, slow, &out);
        /* answered requests: all OKAY, none ERROR (the stop answers, it does not fail them) */
        long long ok = out ? e2e_field(out, "status", "okay") : -1;
        long long err = out ? e2e_field(out, "status", "error") : -1;
        fprintf(stderr, "# slow guest: okay=%lld error=%lld\n", ok, err);
        _exit(ok >= 8 && err == 0 ? 0 : 1);
    }
    /* wait until the device is connected and I/O flows */
    for (int i = 0; i < 200 && t_daemon_stat(&e.d, 3, 51712, "rd_req") < 8; i++)
        usleep(20000);
    T_CHECK(t_daemon_stat(&e.d, 3, 51712, "rd_req") >= 8, "slow device never got busy");
    long long inflight = t_daemon_stat(&e.d, 3, 51712, "inflight");
    T_LOG("requests in flight at SIGTERM: %lld", inflight);
    double t0 = (xbd_now_ns() / 1e9);
    int st = e2e_stop(&e);
    double dt = (xbd_now_ns() / 1e9) - t0;
    T_LOG("daemon exit %d after %.2f s", st, dt);
    T_EQ(st, 0);
    T_CHECK(dt < 5.0, "SIGTERM took %.2f s", dt);
    int cst;
    T_ASSERT(waitpid(child, &cst, 0) == child);
    T_CHECK(WIFEXITED(cst) && WEXITSTATUS(cst) == 0, "slow guest saw a failed or missing response");
    return t_done();
}
