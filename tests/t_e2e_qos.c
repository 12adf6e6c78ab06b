/* t_e2e_qos: per-disk QoS limits on the real daemon with xen-blkbench guests: a config-file default (write-iops) holds a write run to its rate (the run takes at least the time the limit implies, achieved rate <= limit x 1.3 + burst) and counts throttled requests; a backend key lifts it for one device and another (read-bps, two queues sharing the vbd's bucket) limits bytes; during a running guest, xen-blkbackctl limit and a backend key written by the toolstack change the limit live (watch), bad values (0, negative, absurd, bad burst, unknown name) are refused with the accepted range and change nothing; a limited guest never sees an error. */
#include "harness.h"
#include "lib/e2e.h"
#include "lib/hostile.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEVID 51712
#define MiB (1024.0 * 1024)

static struct e2e E;

/* xen-blkbackctl limit DOMID DEVID ARGS: exit status, output in *out. */
static int ctl_limit(unsigned domid, const char *args, char **out)
{
    int rc = e2e_sh(out, "%s -s %s limit %u %u %s 2>&1", t_prog("xen-blkbackctl"), E.d.sock,
                    domid, DEVID, args);
    T_LOG("limit %u %s: exit %d: %s", domid, args, rc, *out ? *out : "");
    return rc;
}

/* ctl_limit exits want_exit and its output holds `needle`. */
static void expect_limit(unsigned domid, const char *args, int want_exit, const char *needle)
{
    char *out = NULL;
    int rc = ctl_limit(domid, args, &out);
    T_EQ(rc, want_exit);
    T_CHECK(out && strstr(out, needle), "limit %u %s: no '%s' in the output", domid, args, needle);
    free(out);
}

/* The value of counter `name` in `xen-blkbackctl stats D DEVID` output
 * (printed by --before-detach into the bench output); -1 if absent. */
static long long stat_of(const char *out, const char *name)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "  %s ", name);
    const char *p = out ? strstr(out, pat) : NULL;
    return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

/* A run of a limited guest: exit 0, every request OKAY. */
static void check_no_error(const char *out, int rc, const char *what)
{
    T_EQ(rc, 0);
    T_CHECK(e2e_field(out, "status", "error") == 0 && e2e_field(out, "status", "eopnotsupp") == 0,
            "%s: a limited guest saw an error status", what);
    T_CHECK(e2e_field(out, "status", "requests") > 0, "%s: no request", what);
}

/* A guest on `img` running `work` (NULL-terminated xen-blkbench options),
 * with backend key `key` (KEY=VALUE, NULL: none); before detaching it prints
 * the device's limits and counters (xen-blkbackctl limit, stats) into *out.
 * It must succeed without an error status. */
static void run_guest(unsigned domid, const char *img, const char *const *work, const char *key,
                      char **out, const char *what)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "%s -s %s limit %u %u; %s -s %s stats %u %u",
             t_prog("xen-blkbackctl"), E.d.sock, domid, DEVID, t_prog("xen-blkbackctl"),
             E.d.sock, domid, DEVID);
    const char *args[32];
    unsigned n = 0;
    while (*work && n < 26)
        args[n++] = *work++;
    if (key) {
        args[n++] = "--backend-key";
        args[n++] = key;
    }
    args[n++] = "--before-detach";
    args[n++] = cmd;
    args[n] = NULL;
    int rc = e2e_bench(&E, domid, img, args, out);
    check_no_error(*out, rc, what);
}

int main(void)
{
    const char *dargs[] = { "--qos-write-iops=150/15", "--max-queues=4", NULL };
    e2e_start(&E, dargs);
    hx_open();
    const char *img = e2e_make_image(&E, "qos.img", 16);
    char *out = NULL;

    /* 1: the config default limits writes: 256 x 4 KiB at 150/s, burst 15 */
    static const char *const writes[] = { "--rw", "randwrite", "--bs", "4k", "--iodepth", "8",
                                          "--size", "1M", "--length", "8M", NULL };
    run_guest(5, img, writes, NULL, &out, "config default");
    double el = e2e_field_double(out, "workload", "runtime");
    long long ops = e2e_field(out, "workload", "ops");
    T_LOG("config default write-iops=150/15: %lld ops in %.3f s = %.1f/s", ops, el, ops / el);
    T_EQ(ops, 256);
    T_CHECK(el >= (256 - 15) / 150.0 * 0.9, "256 writes at 150/s took only %.3f s", el);
    T_CHECK(ops / el <= 150 * 1.3 + 15, "achieved %.1f writes/s over the limit 150", ops / el);
    T_CHECK(out && strstr(out, "write-iops=150/15"), "limit shows no write-iops=150/15");
    T_CHECK(stat_of(out, "throttled") > 0, "no request counted as throttled");
    T_CHECK(stat_of(out, "throttle_ns") > 0, "no throttled time counted");
    free(out);

    /* 2: the backend key lifts it for one device: not held at all */
    run_guest(6, img, writes, "qos-write-iops=none", &out, "lifted by the backend key");
    T_CHECK(out && strstr(out, "write-iops=none"), "limit shows no write-iops=none");
    T_EQ(stat_of(out, "throttled"), 0);
    free(out);

    /* 3: read-bps from a backend key, over two queues sharing the vbd's
     * bucket: 4 MiB at 2 MiB/s, burst 256 KiB */
    static const char *const reads[] = { "--rw", "randread", "--bs", "64k", "--iodepth", "8",
                                         "--queues", "2", "--size", "4M", NULL };
    run_guest(7, img, reads, "qos-read-bps=2M/256K", &out, "read-bps");
    el = e2e_field_double(out, "workload", "runtime");
    long long bytes = e2e_field(out, "workload", "read-bytes");
    T_LOG("read-bps=2M/256K on 2 queues: %lld bytes in %.3f s = %.2f MiB/s", bytes, el,
          bytes / el / MiB);
    T_EQ(bytes, 4 * 1024 * 1024);
    T_CHECK(el >= (4.0 - 0.25) / 2 * 0.9, "4 MiB at 2 MiB/s took only %.3f s", el);
    T_CHECK(bytes / el <= 2 * MiB * 1.3 + 256 * 1024, "achieved %.2f MiB/s over 2 MiB/s",
            bytes / el / MiB);
    T_CHECK(out && strstr(out, "read-bps=2097152/262144"), "limit shows no read-bps");
    T_CHECK(out && strstr(out, "queues=2"), "the guest did not get two queues");
    free(out);

    /* 4: live changes while a guest runs (iops=100 from the toolstack) */
    char res[600];
    snprintf(res, sizeof(res), "%s/live.out", E.work);
    pid_t child = fork();
    T_ASSERT(child >= 0, "fork");
    if (child == 0) {
        const char *a4[] = { "--rw", "randread", "--bs", "4k", "--iodepth", "4", "--runtime", "8",
                             "--backend-key", "qos-iops=100", NULL };
        char *o = NULL;
        int r = e2e_bench(&E, 8, img, a4, &o);
        int fd = open(res, O_CREAT | O_TRUNC | O_WRONLY, 0600);
        if (fd >= 0 && o && write(fd, o, strlen(o)) < 0)
            r = 3;
        _exit(r);
    }
    uint64_t t0 = xbd_now_ms();
    while (t_daemon_dev_int(&E.d, 8, DEVID, "connected") != 1 && xbd_now_ms() - t0 < 10000)
        usleep(10000);
    T_ASSERT(t_daemon_dev_int(&E.d, 8, DEVID, "connected") == 1, "domid 8 never connected");
    uint64_t tc = xbd_now_ms();
    expect_limit(8, "", 0, "iops=100 ");
    /* bad input: refused with the accepted range, nothing changed */
    expect_limit(8, "iops=0", 1, "RATE 1..10000000");
    expect_limit(8, "iops=-1", 1, "RATE 1..10000000");
    expect_limit(8, "iops=99999999999", 1, "RATE 1..10000000");
    expect_limit(8, "iops=100/0", 1, "BURST 1..RATE x 3600");
    expect_limit(8, "bps=100", 1, "RATE 4096..1099511627776");
    expect_limit(8, "read-bps=1M/1", 1, "BURST 4096..");
    expect_limit(8, "write-iops=500 iops=0", 1, "iops: expected none or RATE");
    expect_limit(8, "bogus=5", 1, "expected iops, read-iops, write-iops, bps, read-bps or write-bps");
    expect_limit(8, "iops", 1, "expected iops, read-iops");
    expect_limit(8, "", 0, "iops=100 read-iops=none write-iops=150/15 bps=none");
    char be[128];
    snprintf(be, sizeof(be), "/local/domain/0/backend/vbd/8/%u", DEVID);
    char qkey[160];
    snprintf(qkey, sizeof(qkey), "%s/qos-iops", be);
    char *x = hx_read("%s/qos-iops", be);
    T_CHECK(x && !strcmp(x, "100"), "qos-iops changed to '%s' by refused requests", x ? x : "");
    free(x);
    x = hx_read("%s/qos-write-iops", be);
    T_CHECK(!x, "a refused request wrote qos-write-iops '%s'", x ? x : "");
    free(x);

    /* ~2.5 s at 100/s, then 1 s at 3000/s through the control socket, then
     * 50/s from the toolstack; the guest runs 8 s */
    while (xbd_now_ms() - tc < 2500)
        usleep(10000);
    expect_limit(8, "iops=3000 write-bps=8M", 0, "iops=3000 ");
    x = hx_read("%s/qos-iops", be);
    T_CHECK(x && !strcmp(x, "3000"), "ctl limit wrote qos-iops '%s'", x ? x : "");
    free(x);
    x = hx_read("%s/qos-write-bps", be);
    T_CHECK(x && !strcmp(x, "8388608"), "ctl limit wrote qos-write-bps '%s'", x ? x : "");
    free(x);
    usleep(1000 * 1000);
    /* the toolstack lowers it: the watch applies it */
    hx_write(qkey, "50");
    char *l = NULL;
    uint64_t tw = xbd_now_ms();
    for (;;) {
        free(l);
        l = NULL;
        ctl_limit(8, "", &l);
        if ((l && strstr(l, "iops=50 ")) || xbd_now_ms() - tw > 3000)
            break;
        usleep(20000);
    }
    T_CHECK(l && strstr(l, "iops=50 "), "the backend key qos-iops=50 was not applied");
    free(l);
    /* a bad key is ignored with the range in the log, the limit stays */
    hx_write(qkey, "0");
    tw = xbd_now_ms();
    while (hx_log_count(&E.d, "ignoring", "qos-iops = '0': expected none or RATE[/BURST] "
                        "requests/s, RATE 1..10000000") < 1 && xbd_now_ms() - tw < 3000)
        usleep(20000);
    T_CHECK(hx_log_count(&E.d, "ignoring", "qos-iops = '0'") >= 1, "bad key not logged");
    expect_limit(8, "", 0, "iops=50 ");

    int st = 0;
    T_ASSERT(waitpid(child, &st, 0) == child, "waitpid");
    FILE *f = fopen(res, "r");
    T_ASSERT(f, "%s", res);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = 0;
    fclose(f);
    check_no_error(buf, WIFEXITED(st) ? WEXITSTATUS(st) : -1, "live");
    ops = e2e_field(buf, "workload", "ops");
    el = e2e_field_double(buf, "workload", "runtime");
    T_LOG("live: %lld reads in %.3f s (100/s throughout would be %.0f)", ops, el, 100 * el + 10);
    /* raised to 3000/s for a second: far more than 100/s throughout allows */
    T_CHECK(ops > 100 * el * 1.3 + 10 + 100, "the raised limit did not take effect: %lld ops", ops);
    T_CHECK(hx_log_count(&E.d, "QoS limits (control request)", "iops=3000") >= 1,
            "no log line for the control request");
    T_CHECK(hx_log_count(&E.d, "QoS limits (backend keys)", "iops=50 ") >= 1,
            "no log line for the backend key");

    T_EQ(e2e_stop(&E), 0);
    return t_done();
}
