/*
 * Daemon restart under running guests (xen-blkbackd(8) RESTART): a simulated
 * guest (xen-blkbench, a Linux-like blkfront that fails on a response to a
 * request that is not pending and on a request left unanswered) runs
 * verified random I/O while the daemon is stopped with SIGTERM or killed with
 * SIGKILL and started again.  Every case: the guest finishes with no error,
 * no mismatch, nothing answered twice or never; the pause it saw is logged.
 * Cases cover queue depth 1/32/128, every grant mode, 1 and 4 queues, ring
 * order 0 and 4, both ABIs, completions out of ring order (delay:w), and a
 * SIGTERM whose drain deadline abandons requests (re-issued by the next
 * daemon), and a reattach that finds the guest's event channel still bound
 * by a dying process (it retries, the device never fails).  `t_restart TERM` or `t_restart KILL` runs one signal only,
 * `t_restart N` case N only.
 */
#include "harness.h"
#include "util.h"
#include "lib/e2e.h"
#include "lib/guest.h"
#include "sim.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEVID 51712             /* xvda, xen-blkbench's default */

struct rcase {
    int sig;
    const char *mode;           /* backend grant-mode */
    unsigned qd, queues, order;
    const char *abi;
    unsigned wdelay_us;         /* delay:w filter: writes complete this late (0: none) */
    unsigned gap_ms;            /* between the old daemon's end and the new start */
    bool abandon;               /* SIGTERM with a drain deadline shorter than the I/O */
    unsigned hold_ms;           /* the guest's event channel still bound elsewhere this long */
};

static const struct rcase cases[] = {
    { SIGKILL, "persistent", 1,   1, 0, "x86_64", 0,     100, false, 0 },
    { SIGKILL, "persistent", 32,  4, 4, "x86_32", 0,     300, false, 0 },
    { SIGKILL, "persistent", 128, 4, 4, "x86_64", 20000, 0,   false, 0 },
    { SIGKILL, "map",        1,   4, 4, "x86_32", 0,     0,   false, 0 },
    { SIGKILL, "map",        32,  1, 0, "x86_64", 20000, 200, false, 0 },
    { SIGKILL, "map",        128, 1, 4, "x86_64", 0,     100, false, 0 },
    { SIGKILL, "copy",       1,   1, 4, "x86_64", 20000, 0,   false, 0 },
    { SIGKILL, "copy",       32,  4, 0, "x86_64", 0,     100, false, 0 },
    { SIGKILL, "copy",       128, 4, 4, "x86_32", 20000, 300, false, 0 },
    { SIGTERM, "persistent", 1,   4, 0, "x86_64", 0,     100, false, 0 },
    { SIGTERM, "persistent", 32,  1, 4, "x86_64", 20000, 0,   false, 0 },
    { SIGTERM, "persistent", 128, 4, 4, "x86_32", 0,     200, false, 0 },
    { SIGTERM, "map",        1,   1, 4, "x86_32", 20000, 100, false, 0 },
    { SIGTERM, "map",        32,  4, 4, "x86_64", 0,     0,   false, 0 },
    { SIGTERM, "map",        128, 4, 0, "x86_64", 500000, 100, true, 0 },
    { SIGTERM, "copy",       1,   4, 4, "x86_64", 0,     300, false, 0 },
    { SIGTERM, "copy",       32,  4, 4, "x86_32", 500000, 0,  true, 0 },
    { SIGTERM, "copy",       128, 1, 0, "x86_64", 20000, 100, false, 0 },
    /* the new daemon finds the guest's event channel still bound by a dying
     * process (as a killed daemon's binding outlives it while its threads
     * exit): its reattach retries, never fails the device */
    { SIGKILL, "copy",       32,  1, 0, "x86_64", 0,     0,   false, 800 },
};

static const char *daemon_args[] = {
    "--allow-test-engines", "--max-queues=4", "--max-ring-page-order=4", "--stop-timeout=3000",
    NULL,
};
static const char *abandon_args[] = {
    "--allow-test-engines", "--max-queues=4", "--max-ring-page-order=4", "--stop-timeout=100",
    NULL,
};

/* A process of the backend domain that binds the guest's event channel of
 * queue 0 (as the killed daemon's handle did) and keeps it hold_ms, then
 * dies (the simulated host reclaims its binding, as the kernel's
 * evtchn_release does).  Returns once the port is bound. */
static pid_t hold_evtchn(struct e2e *e, unsigned domid, unsigned hold_ms)
{
    char *port = NULL;
    e2e_sh(&port, "XENSTORED_PATH='%s' xenstore-read /local/domain/%u/device/vbd/%u/event-channel",
           e->xs_sock, domid, DEVID);
    T_ASSERT(port && atoi(port) > 0, "dom %u: no event-channel key", domid);
    int pfd[2];
    T_ASSERT(pipe(pfd) == 0);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        struct sim_host *h = NULL;
        struct sim_evtchn *ev = NULL;
        xen_port_t local;
        char ok = 0;
        if (sim_host_open(e->sim, &h) == 0 && sim_evtchn_open(h, 0, &ev) == 0 &&
            sim_evtchn_bind_interdomain(ev, (xen_domid_t)domid, (xen_port_t)atoi(port),
                                        &local) == 0)
            ok = 1;
        if (write(pfd[1], &ok, 1) != 1)
            _exit(2);
        usleep(hold_ms * 1000);
        _exit(0);               /* dies holding it */
    }
    close(pfd[1]);
    char ok = 0;
    T_CHECK(read(pfd[0], &ok, 1) == 1 && ok == 1, "dom %u: cannot bind port %s", domid, port);
    close(pfd[0]);
    free(port);
    return pid;
}

static long long stat_of(struct e2e *e, unsigned domid, const char *name)
{
    return t_daemon_stat(&e->d, domid, DEVID, name);
}

/* Requests the daemons re-issued for the device, from their log lines (the
 * counter `replayed` goes with the device when the guest detaches). */
static long long replayed_of(struct e2e *e, unsigned domid)
{
    char *out = NULL;
    e2e_sh(&out, "grep -a 'vbd %u/%u queue [0-9]*: re-issuing' '%s' | "
           "sed 's/.*re-issuing \\([0-9]*\\) .*/\\1/' | awk '{ n += $1 } END { print n + 0 }'",
           domid, DEVID, e->d.log);
    long long n = out ? atoll(out) : -1;
    free(out);
    return n;
}

static const char *signame(int sig)
{
    return sig == SIGKILL ? "KILL" : "TERM";
}

static void run_case(struct e2e *e, unsigned domid, const struct rcase *c, unsigned *replayed)
{
    char img[64], target[600], qd[16], queues[16], order[16], out_path[600];
    snprintf(img, sizeof(img), "r%u.img", domid);
    const char *path = e2e_make_image(e, img, 32);
    if (c->wdelay_us)
        snprintf(target, sizeof(target), "delay:w%u:%s", c->wdelay_us, path);
    else
        snprintf(target, sizeof(target), "%s", path);
    snprintf(qd, sizeof(qd), "%u", c->qd);
    snprintf(queues, sizeof(queues), "%u", c->queues);
    snprintf(order, sizeof(order), "%u", c->order);
    snprintf(out_path, sizeof(out_path), "%s/bench-%u.out", e->work, domid);
    T_LOG("case dom %u: SIG%s grant-mode %s qd %u queues %u order %u %s%s%s", domid,
          signame(c->sig), c->mode, c->qd, c->queues, c->order, c->abi,
          c->wdelay_us ? ", writes delayed" : "", c->abandon ? ", drain deadline 100 ms" : "");

    if (c->abandon) {           /* a daemon whose SIGTERM drain gives up early */
        T_EQ(t_daemon_stop(&e->d, 15000), 0);
        e2e_daemon_start(e, abandon_args);
    }
    const char *args[] = { "--rw", "randrw", "--bs-range", "512-64k", "--iodepth", qd,
        "--queues", queues, "--ring-order", order, "--abi", c->abi, "--grant-mode", c->mode,
        "--persistent", "--indirect-segs", "32", "--runtime", "3", "--size", "16m",
        "--verify", "--flush", "--timeout", "30", NULL };
    pid_t child = e2e_bench_bg(e, domid, target, args, out_path);
    /* Wait for I/O in flight (at depth > 1: several requests), then stop. */
    uint64_t end = xbd_now_ms() + 15000;
    unsigned want = c->qd > 1 ? 2 : 1;
    while (xbd_now_ms() < end) {
        long long inflight = stat_of(e, domid, "inflight");
        long long done = stat_of(e, domid, "wr_req");
        if (done > 20 && inflight >= want)
            break;
        usleep(2000);
    }
    T_CHECK(xbd_now_ms() < end, "dom %u: no I/O in flight to interrupt", domid);
    int st = t_daemon_signal(&e->d, c->sig, 15000);
    if (c->sig == SIGTERM)
        T_EQ(st, 0);
    else
        T_EQ(st, 128 + SIGKILL);
    usleep(c->gap_ms * 1000);
    pid_t holder = c->hold_ms ? hold_evtchn(e, domid, c->hold_ms) : -1;
    e2e_daemon_start(e, daemon_args);
    if (holder > 0) {
        int hst;
        T_ASSERT(waitpid(holder, &hst, 0) == holder);
        T_EQ(WIFEXITED(hst) ? WEXITSTATUS(hst) : -1, 0);
    }

    int wst;
    T_ASSERT(waitpid(child, &wst, 0) == child);
    char *out = NULL;
    e2e_sh(&out, "cat '%s'", out_path);
    bool ok = WIFEXITED(wst) && WEXITSTATUS(wst) == 0;
    T_CHECK(ok, "dom %u (SIG%s %s qd %u): the guest saw an error", domid, signame(c->sig),
            c->mode, c->qd);
    if (!ok && out)
        fprintf(stderr, "%s", out);
    if (!ok) {
        char *log = NULL;
        e2e_sh(&log, "grep -aE 'vbd %u/|exit|up:' '%s' | tail -n 60", domid, e->d.log);
        fprintf(stderr, "---- daemon log, vbd %u ----\n%s", domid, log ? log : "");
        free(log);
    }
    T_CHECK(out && !strstr(out, "not pending"), "dom %u: a response was answered twice", domid);
    T_EQ(out ? e2e_field(out, "status", "error") : -1, 0);
    T_EQ(out ? e2e_field(out, "verify", "mismatches") : -1, 0);
    long long pause = out ? e2e_field(out, "latency-us", "max") : -1;
    long long re = replayed_of(e, domid);
    T_LOG("dom %u: guest ok=%d, pause (max request latency) %lld ms, %lld request(s) re-issued",
          domid, ok, pause / 1000, re);
    if (re > 0)
        *replayed += (unsigned)re;
    if (c->abandon)
        T_CHECK(re > 0, "dom %u: SIGTERM with a 100 ms deadline abandoned nothing to re-issue",
                domid);
    if (c->hold_ms) {
        char *l = NULL;
        e2e_sh(&l, "grep -ac 'vbd %u/%u: reattach: mapping the ring / binding the event "
               "channel failed' '%s'; grep -ac 'vbd %u/%u: reattach: ring set up after' '%s'",
               domid, DEVID, e->d.log, domid, DEVID, e->d.log);
        T_CHECK(l && !strcmp(l, "1\n1\n"), "dom %u: the reattach did not retry the bind, then "
                "succeed (log counts: %s)", domid, l ? l : "none");
        free(l);
    }
    free(out);
    if (c->abandon) {
        T_EQ(t_daemon_stop(&e->d, 15000), 0);
        e2e_daemon_start(e, daemon_args);
    }
}

int main(int argc, char **argv)
{
    int only = 0, one = -1;
    if (argc > 1 && !strcmp(argv[1], "KILL"))
        only = SIGKILL;
    else if (argc > 1 && !strcmp(argv[1], "TERM"))
        only = SIGTERM;
    else if (argc > 1)
        one = atoi(argv[1]);
    struct e2e e;
    e2e_start(&e, daemon_args);
    unsigned replayed[2] = { 0, 0 };
    for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
        if ((only && cases[i].sig != only) || (one >= 0 && (unsigned)one != i))
            continue;
        run_case(&e, 10 + i, &cases[i], &replayed[cases[i].sig == SIGKILL]);
    }
    /* SIGKILL at depth >= 32 always leaves requests behind: the replay path ran. */
    if ((!only || only == SIGKILL) && one < 0)
        T_CHECK(replayed[1] > 0, "no request was re-issued after any SIGKILL");
    T_LOG("re-issued after SIGTERM %u, after SIGKILL %u", replayed[0], replayed[1]);
    T_EQ(e2e_stop(&e), 0);
    return t_done();
}
