/*
 * top.c - the live views of xen-blkbackctl: `top` (per device: IOPS, MB/s,
 * latency p50/p99 from the daemon's histograms, ring occupancy; like xentop
 * and iostat -x) and `stats --interval` (the counters' increments).  Both
 * take two `stats` replies (docs/control-protocol.md) and show the
 * difference over the time between them.
 */
#include "ctl.h"
#include "util.h"

#include <getopt.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    return (double)xbd_now_ns() / 1e9;
}

static uint64_t getu(json_object *o, const char *k)
{
    json_object *v = ctl_get(o, k);
    return v ? (uint64_t)json_object_get_uint64(v) : 0;
}

/* The device of `prev` with the same kind, domid and devid as d. */
static json_object *same_device(json_object *prev, json_object *d)
{
    json_object *devs = ctl_get(prev, "devices");
    for (size_t i = 0; devs && i < json_object_array_length(devs); i++) {
        json_object *p = json_object_array_get_idx(devs, i);
        if (ctl_geti(p, "domid") == ctl_geti(d, "domid") &&
            ctl_geti(p, "devid") == ctl_geti(d, "devid") &&
            !strcmp(ctl_gets(p, "kind"), ctl_gets(d, "kind")))
            return p;
    }
    return NULL;
}

/* Counter `k` of stats object s minus the same in p (0 if it went back:
 * a device that reconnected under another daemon). */
static uint64_t delta(json_object *s, json_object *p, const char *k)
{
    uint64_t a = getu(s, k), b = p ? getu(p, k) : 0;
    return a >= b ? a - b : a;
}

struct row {
    char kind[8], vdev[16];
    long long domid, devid;
    double rps, wps, ops, rmb, wmb, p50, p99, occ;
    long long inflight;
};

/*
 * Quantile q (0..1) in microseconds of the requests answered between two
 * replies: the difference of the `total` histograms of every op, linear
 * within a bucket (as Prometheus histogram_quantile).  NAN without requests.
 */
static double quantile_us(json_object *lat, json_object *plat, json_object *bounds, double q)
{
    static const char *const ops[] = { "read", "write", "flush", "discard" };
    size_t nb = json_object_array_length(bounds) + 1;
    uint64_t *cnt = calloc(nb, sizeof(*cnt)), n = 0;
    if (!cnt)
        return NAN;
    for (size_t o = 0; o < ARRAY_SIZE(ops); o++) {
        json_object *b = ctl_get(ctl_get(ctl_get(lat, ops[o]), "total"), "buckets");
        json_object *pb = ctl_get(ctl_get(ctl_get(plat, ops[o]), "total"), "buckets");
        for (size_t i = 0; b && i < nb && i < json_object_array_length(b); i++) {
            uint64_t a = (uint64_t)json_object_get_uint64(json_object_array_get_idx(b, i));
            uint64_t c = pb && i < json_object_array_length(pb)
                             ? (uint64_t)json_object_get_uint64(json_object_array_get_idx(pb, i)) : 0;
            cnt[i] += a >= c ? a - c : a;
            n += a >= c ? a - c : a;
        }
    }
    double r = NAN, target = q * (double)n, cum = 0;
    for (size_t i = 0; n && i < nb; i++) {
        if (cum + (double)cnt[i] >= target && cnt[i]) {
            double lo = i ? (double)json_object_get_uint64(json_object_array_get_idx(bounds, i - 1)) : 0;
            if (i == nb - 1) {
                r = lo;         /* overflow bucket: its lower bound */
            } else {
                double hi = (double)json_object_get_uint64(json_object_array_get_idx(bounds, i));
                r = lo + (hi - lo) * (target - cum) / (double)cnt[i];
            }
            break;
        }
        cum += (double)cnt[i];
    }
    free(cnt);
    return r / 1000.0;
}

static void make_row(struct row *r, json_object *d, json_object *p, json_object *bounds, double dt)
{
    json_object *s = ctl_get(d, "stats"), *ps = p ? ctl_get(p, "stats") : NULL;
    memset(r, 0, sizeof(*r));
    snprintf(r->kind, sizeof(r->kind), "%s", ctl_gets(d, "kind"));
    snprintf(r->vdev, sizeof(r->vdev), "%s", ctl_gets(d, "vdev"));
    r->domid = ctl_geti(d, "domid");
    r->devid = ctl_geti(d, "devid");
    r->rps = (double)delta(s, ps, "rd_req") / dt;
    r->wps = (double)delta(s, ps, "wr_req") / dt;
    r->ops = (double)(delta(s, ps, "f_req") + delta(s, ps, "ds_req")) / dt;
    r->rmb = (double)delta(s, ps, "rd_sect") * 512 / 1e6 / dt;
    r->wmb = (double)delta(s, ps, "wr_sect") * 512 / 1e6 / dt;
    json_object *lat = ctl_get(d, "latency"), *plat = p ? ctl_get(p, "latency") : NULL;
    r->p50 = bounds ? quantile_us(lat, plat, bounds, 0.50) : NAN;
    r->p99 = bounds ? quantile_us(lat, plat, bounds, 0.99) : NAN;
    uint64_t occ = 0, slots = 0;
    json_object *qs = ctl_get(d, "queues");
    for (size_t i = 0; qs && i < json_object_array_length(qs); i++) {
        json_object *q = json_object_array_get_idx(qs, i);
        occ += getu(q, "ring_occupancy");
        slots += getu(q, "ring_slots");
    }
    r->inflight = (long long)getu(s, "inflight");
    r->occ = slots ? 100.0 * (double)occ / (double)slots : NAN;
}

enum sort_key { SORT_IOPS, SORT_MBPS, SORT_P99, SORT_OCC, SORT_DEV };
static enum sort_key sort_by = SORT_IOPS;

static double key_of(const struct row *r)
{
    switch (sort_by) {
    case SORT_MBPS: return r->rmb + r->wmb;
    case SORT_P99: return isnan(r->p99) ? -1 : r->p99;
    case SORT_OCC: return isnan(r->occ) ? -1 : r->occ;
    default: return r->rps + r->wps + r->ops;
    }
}

static int cmp_rows(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    if (sort_by == SORT_DEV)
        return x->domid != y->domid ? (x->domid < y->domid ? -1 : 1)
                                    : (x->devid < y->devid ? -1 : x->devid > y->devid);
    double kx = key_of(x), ky = key_of(y);
    return kx > ky ? -1 : kx < ky;      /* largest first */
}

static const char *const sort_names[] = { "iops", "mbps", "p99", "occ", "dev" };

static void fmt_num(char *buf, size_t len, double v, const char *f)
{
    if (isnan(v))
        snprintf(buf, len, "-");
    else
        snprintf(buf, len, f, v);
}

static int print_top(json_object *cur, json_object *prev, double dt, bool clear)
{
    json_object *devs = ctl_get(cur, "devices"), *bounds = ctl_get(cur, "latency_bounds_ns");
    size_t n = devs ? json_object_array_length(devs) : 0;
    struct row *rows = calloc(n ? n : 1, sizeof(*rows));
    if (!rows)
        return 1;
    for (size_t i = 0; i < n; i++) {
        json_object *d = json_object_array_get_idx(devs, i);
        make_row(&rows[i], d, same_device(prev, d), bounds, dt);
    }
    qsort(rows, n, sizeof(*rows), cmp_rows);
    char ts[32];
    time_t t = time(NULL);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    if (clear)
        fputs("\033[H\033[2J", stdout);
    printf("xen-blkbackctl top  %s  interval %.1f s  %zu device(s)  sort %s%s\n", ts, dt, n,
           sort_names[sort_by], clear ? "  (keys: i m l o d sort, q quit)" : "");
    printf("%-5s %5s %9s %-8s %9s %9s %7s %8s %8s %9s %9s %5s %5s\n", "KIND", "DOMID", "DEVID",
           "VDEV", "r/s", "w/s", "f+d/s", "rMB/s", "wMB/s", "p50(us)", "p99(us)", "INFL", "OCC%");
    for (size_t i = 0; i < n; i++) {
        const struct row *r = &rows[i];
        char p50[16], p99[16], occ[16];
        fmt_num(p50, sizeof(p50), r->p50, "%.1f");
        fmt_num(p99, sizeof(p99), r->p99, "%.1f");
        fmt_num(occ, sizeof(occ), r->occ, "%.0f");
        printf("%-5s %5lld %9lld %-8s %9.0f %9.0f %7.0f %8.2f %8.2f %9s %9s %5lld %5s\n", r->kind,
               r->domid, r->devid, r->vdev[0] ? r->vdev : "-", r->rps, r->wps, r->ops, r->rmb,
               r->wmb, p50, p99, r->inflight, occ);
    }
    if (!n)
        printf("(no devices)\n");
    fflush(stdout);
    free(rows);
    return 0;
}

static struct termios saved_tio;
static bool tio_saved;

static void restore_tty(void)
{
    if (tio_saved)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
}

static void on_signal(int sig)
{
    restore_tty();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Interactive: wait up to `secs` for a key; false on 'q'. */
static bool wait_keys(double secs)
{
    double end = now_s() + secs;
    for (;;) {
        double left = end - now_s();
        if (left <= 0)
            return true;
        struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
        if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
            continue;
        char c;
        if (read(STDIN_FILENO, &c, 1) != 1)
            return true;
        const char *keys = "imlod";
        const char *k = strchr(keys, c);
        if (c == 'q')
            return false;
        if (k && c) {
            sort_by = (enum sort_key)(k - keys);
            return true;
        }
    }
}

static int top_usage(void)
{
    fprintf(stderr, "usage: xen-blkbackctl top [-b] [-n N] [-d SECS] [-o iops|mbps|p99|occ|dev]\n");
    return 2;
}

int ctl_top(const char *sock, int argc, char **argv)
{
    static const struct option opts[] = {
        { "batch", no_argument, NULL, 'b' },
        { "iterations", required_argument, NULL, 'n' },
        { "delay", required_argument, NULL, 'd' },
        { "sort", required_argument, NULL, 'o' },
        { NULL, 0, NULL, 0 },
    };
    bool batch = false;
    long iters = 0;
    double delay = 1.0;
    char *end;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "bn:d:o:", opts, NULL)) != -1) {
        switch (ch) {
        case 'b': batch = true; break;
        case 'n':
            iters = strtol(optarg, &end, 10);
            if (*end || iters < 1)
                return top_usage();
            break;
        case 'd':
            delay = strtod(optarg, &end);
            if (*end || !(delay >= 0.1 && delay <= 86400))
                return top_usage();
            break;
        case 'o': {
            unsigned i = 0;
            while (i < 5 && strcmp(optarg, sort_names[i]))
                i++;
            if (i == 5)
                return top_usage();
            sort_by = (enum sort_key)i;
            break;
        }
        default:
            return top_usage();
        }
    }
    if (optind != argc)
        return top_usage();
    bool live = !batch && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    if (live && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
        struct termios raw = saved_tio;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        tio_saved = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
        atexit(restore_tty);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
    }
    json_object *prev = ctl_call(sock, "stats\n");
    if (!prev)
        return 1;
    double tprev = now_s();
    int rc = 0;
    for (long i = 0; !iters || i < iters; i++) {
        if (live ? !wait_keys(delay) : usleep((useconds_t)(delay * 1e6)) != 0)
            break;
        json_object *cur = ctl_call(sock, "stats\n");
        if (!cur) {
            rc = 1;
            break;
        }
        if (!json_object_get_boolean(ctl_get(cur, "ok"))) {
            fprintf(stderr, "xen-blkbackctl: %s\n", ctl_gets(cur, "error"));
            json_object_put(cur);
            rc = 1;
            break;
        }
        double t = now_s();
        if (i && !live)
            printf("\n");
        print_top(cur, prev, t - tprev, live);
        json_object_put(prev);
        prev = cur;
        tprev = t;
    }
    json_object_put(prev);
    restore_tty();
    return rc;
}

int ctl_stats_interval(const char *sock, double interval, long count, const char *domid,
                       const char *devid)
{
    char req[96];
    if (domid)
        snprintf(req, sizeof(req), "stats %.32s %.32s\n", domid, devid);
    else
        snprintf(req, sizeof(req), "stats\n");
    json_object *prev = NULL;
    int rc = 0;
    for (long i = 0; !count || i <= count; i++) {
        if (i)
            usleep((useconds_t)(interval * 1e6));
        json_object *cur = ctl_call(sock, req);
        if (!cur || !json_object_get_boolean(ctl_get(cur, "ok"))) {
            if (cur)
                fprintf(stderr, "xen-blkbackctl: %s\n", ctl_gets(cur, "error"));
            json_object_put(cur);
            rc = 1;
            break;
        }
        if (prev) {
            json_object *devs = ctl_get(cur, "devices");
            if (i == 1) {
                printf("%-8s %-5s %5s %9s", "TIME", "KIND", "DOMID", "DEVID");
                for (unsigned c = 0; c < CTL_N_MAIN_COUNTERS; c++)
                    printf(" %10s", ctl_main_counters[c]);
                printf("  (increments over each interval of %.1f s)\n", interval);
            }
            char ts[16];
            time_t now = time(NULL);
            strftime(ts, sizeof(ts), "%H:%M:%S", localtime(&now));
            for (size_t k = 0; devs && k < json_object_array_length(devs); k++) {
                json_object *d = json_object_array_get_idx(devs, k), *p = same_device(prev, d);
                printf("%-8s %-5s %5lld %9lld", ts, ctl_gets(d, "kind"), ctl_geti(d, "domid"),
                       ctl_geti(d, "devid"));
                for (unsigned c = 0; c < CTL_N_MAIN_COUNTERS; c++)
                    printf(" %10llu", (unsigned long long)delta(ctl_get(d, "stats"),
                                                                p ? ctl_get(p, "stats") : NULL,
                                                                ctl_main_counters[c]));
                printf("\n");
            }
            fflush(stdout);
        }
        json_object_put(prev);
        prev = cur;
    }
    json_object_put(prev);
    return rc;
}
