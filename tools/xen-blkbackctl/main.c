/*
 * xen-blkbackctl - query a running xen-blkbackd through its control socket:
 *   xen-blkbackctl [-s SOCK] [--json] list|stats [DOMID DEVID]|resize DOMID DEVID|version|metrics|
 *                  debug [CAT[,CAT...]]
 *   xen-blkbackctl [-s SOCK] [--json] limit DOMID DEVID [NAME=none|RATE[/BURST] ...]
 *   xen-blkbackctl [-s SOCK] stats --interval SECS [--count N] [DOMID DEVID]
 *   xen-blkbackctl [-s SOCK] top [-b] [-n N] [-d SECS] [-o COLUMN]
 * Sends one request line, reads one JSON reply, prints a table (or the raw
 * JSON with --json; `metrics` prints the Prometheus text).  Exit 0 ok, 1
 * error (daemon unreachable or error reply), 2 usage.  Protocol:
 * docs/control-protocol.md.  See xen-blkbackctl(8).
 */
#include "ctl.h"
#include "ctl_proto.h"

#include "util.h"
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_SOCK "/run/xen-blkbackd/control.sock"

static void usage(FILE *f)
{
    fprintf(f,
"Usage: xen-blkbackctl [-s SOCK] [--json] COMMAND\n"
"Commands:\n"
"  list                   devices: state, backing store, negotiated features\n"
"  stats [DOMID DEVID]    counters (blkback names: oo_req rd_req wr_req ...)\n"
"  resize DOMID DEVID     advertise the backing store's current size to the guest\n"
"                         (online resize; growing only)\n"
"  limit DOMID DEVID [NAME=VALUE ...]\n"
"                         QoS limits of a device: NAME iops, read-iops, write-iops,\n"
"                         bps, read-bps, write-bps; VALUE none or RATE[/BURST]\n"
"                         (per second); no NAME: show the limits in force\n"
"  version                daemon version\n"
"  metrics                the counters in the Prometheus text format\n"
"  debug [CAT[,CAT...]]   show or set the debug categories (ring, grant, xenstore,\n"
"                         engine, restart, all, none) of the running daemon\n"
"  stats --interval SECS [--count N] [DOMID DEVID]\n"
"                         the counters' increments every SECS seconds\n"
"  top [-b] [-n N] [-d SECS] [-o iops|mbps|p99|occ|dev]\n"
"                         live per-device view: IOPS, MB/s, latency p50/p99,\n"
"                         queue occupancy (-b: batch, N reports, SECS apart)\n"
"Options:\n"
"  -s, --socket=SOCK      control socket (default " DEFAULT_SOCK ")\n"
"  -j, --json             print the daemon's JSON reply as is\n"
"  -h, --help\n");
}

/* Send `req`, return the malloc'd reply (NUL-terminated) or NULL. */
static char *request_text(const char *sock, const char *req)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(sock) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "xen-blkbackctl: socket path too long\n");
        return NULL;
    }
    strcpy(sa.sun_path, sock);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        fprintf(stderr, "xen-blkbackctl: %s: %s (is xen-blkbackd running?)\n", sock, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    size_t len = strlen(req);
    if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len) {
        fprintf(stderr, "xen-blkbackctl: send: %s\n", strerror(errno));
        close(fd);
        return NULL;
    }
    char *buf = NULL;
    int rc = xbd_recv_all(fd, &buf, NULL);
    if (rc < 0 && rc != -ENOMEM)
        fprintf(stderr, "xen-blkbackctl: recv: %s\n", strerror(-rc));
    close(fd);
    return buf;
}

json_object *ctl_call(const char *sock, const char *req)
{
    char *reply = request_text(sock, req);
    if (!reply)
        return NULL;
    json_object *o = json_tokener_parse(reply);
    if (!o)
        fprintf(stderr, "xen-blkbackctl: bad reply: %.200s\n", reply);
    else if (ctl_geti(o, "proto") > XBD_CTL_PROTO_VERSION)
        fprintf(stderr, "xen-blkbackctl: note: the daemon speaks control protocol %lld, "
                "this tool %d (newer fields are ignored)\n", ctl_geti(o, "proto"),
                XBD_CTL_PROTO_VERSION);
    free(reply);
    return o;
}

/* "-" where the daemon reported no state. */
static const char *state_name(int s)
{
    return s < 0 ? "-" : xenbus_state_name(s);
}

json_object *ctl_get(json_object *o, const char *k)
{
    json_object *v = NULL;
    return o && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

long long ctl_geti(json_object *o, const char *k)
{
    json_object *v = ctl_get(o, k);
    return v ? json_object_get_int64(v) : -1;
}

const char *ctl_gets(json_object *o, const char *k)
{
    json_object *v = ctl_get(o, k);
    return v ? json_object_get_string(v) : "-";
}

#define get ctl_get
#define geti ctl_geti
#define gets ctl_gets

static bool getb(json_object *o, const char *k)
{
    json_object *v = get(o, k);
    return v && json_object_get_boolean(v);
}

static void print_list(json_object *devs)
{
    size_t n = json_object_array_length(devs);
    printf("%-5s %5s %9s  %-14s %-14s %-4s %-10s %6s %5s  %-12s %s\n", "KIND", "DOMID", "DEVID",
           "STATE", "FRONTEND", "CONN", "PROTOCOL", "QUEUES", "ORDER", "SECTORS", "FEATURES / PARAMS");
    for (size_t i = 0; i < n; i++) {
        json_object *d = json_object_array_get_idx(devs, i);
        json_object *f = get(d, "features");
        char st[24], fst[24], feat[160] = "";
        snprintf(st, sizeof(st), "%lld %s", geti(d, "state"), state_name((int)geti(d, "state")));
        snprintf(fst, sizeof(fst), "%lld %s", geti(d, "frontend_state"),
                 state_name((int)geti(d, "frontend_state")));
        if (f)
            snprintf(feat, sizeof(feat), "%s%s%s%s%s%s grant=%s indirect=%lld ",
                     getb(f, "readonly") ? "ro " : "rw ", getb(f, "discard") ? "discard " : "",
                     getb(f, "flush") ? "flush" : "noflush", getb(f, "barrier") ? " barrier" : "",
                     getb(f, "persistent") ? " persistent" : "", getb(d, "halted") ? " HALTED" : "",
                     gets(f, "grant_mode"), geti(f, "indirect_segments"));
        if (get(d, "worker_pid"))       /* --isolation=domain */
            snprintf(feat + strlen(feat), sizeof(feat) - strlen(feat), "worker=%lld ",
                     geti(d, "worker_pid"));
        char sectors[24] = "-";
        if (f)
            snprintf(sectors, sizeof(sectors), "%lld", geti(f, "sectors"));
        printf("%-5s %5lld %9lld  %-14s %-14s %-4s %-10s %6s %5s  %-12s %s%s%s%s\n",
               gets(d, "kind"), geti(d, "domid"), geti(d, "devid"), st, fst,
               getb(d, "connected") ? "yes" : "no", f ? gets(f, "protocol") : "-",
               f ? json_object_get_string(get(f, "queues")) : "-",
               f ? json_object_get_string(get(f, "ring_page_order")) : "-", sectors, feat,
               gets(d, "params"), get(d, "error") ? "  error: " : "",
               get(d, "error") ? gets(d, "error") : "");
    }
    if (!n)
        printf("(no devices)\n");
}

const char *const ctl_main_counters[CTL_N_MAIN_COUNTERS] = {
    "oo_req", "rd_req", "wr_req", "f_req", "ds_req", "rd_sect", "wr_sect", "errors",
};
#define main_counters ctl_main_counters

static void print_stats(json_object *devs, bool one)
{
    size_t n = json_object_array_length(devs);
    if (one && n == 1) {
        json_object *d = json_object_array_get_idx(devs, 0);
        printf("%s (%s)\n", gets(d, "name"), gets(d, "kind"));
        json_object_object_foreach(get(d, "stats"), k, v)
            printf("  %-14s %s\n", k, json_object_get_string(v));
        return;
    }
    printf("%-5s %5s %9s", "KIND", "DOMID", "DEVID");
    for (size_t c = 0; c < ARRAY_SIZE(main_counters); c++)
        printf(" %12s", main_counters[c]);
    printf("\n");
    for (size_t i = 0; i < n; i++) {
        json_object *d = json_object_array_get_idx(devs, i);
        json_object *s = get(d, "stats");
        printf("%-5s %5lld %9lld", gets(d, "kind"), geti(d, "domid"), geti(d, "devid"));
        for (size_t c = 0; c < ARRAY_SIZE(main_counters); c++)
            printf(" %12s", s ? gets(s, main_counters[c]) : "-");
        printf("\n");
    }
    if (!n)
        printf("(no devices)\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' },
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *sock = getenv("XEN_BLKBACKD_SOCKET") ? getenv("XEN_BLKBACKD_SOCKET") : DEFAULT_SOCK;
    bool json = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "+s:jh", opts, NULL)) != -1) {
        switch (ch) {
        case 's': sock = optarg; break;
        case 'j': json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc && !strcmp(argv[optind], "top"))
        return ctl_top(sock, argc - optind, argv + optind);
    /* --json may also follow the command; stats takes --interval, --count */
    char *args[16];
    int na = 0;
    const char *interval = NULL, *count = NULL;
    for (int i = optind; i < argc; i++) {
        if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "-j")) {
            json = true;
        } else if (na && !strcmp(args[0], "stats") && i + 1 < argc &&
                   (!strcmp(argv[i], "--interval") || !strcmp(argv[i], "-i"))) {
            interval = argv[++i];
        } else if (na && !strcmp(args[0], "stats") && i + 1 < argc &&
                   (!strcmp(argv[i], "--count") || !strcmp(argv[i], "-c"))) {
            count = argv[++i];
        } else if (na && !strcmp(args[0], "stats") && !strncmp(argv[i], "--interval=", 11)) {
            interval = argv[i] + 11;
        } else if (na && !strcmp(args[0], "stats") && !strncmp(argv[i], "--count=", 8)) {
            count = argv[i] + 8;
        } else if (na < 16) {
            args[na++] = argv[i];
        } else {
            na = 17;
        }
    }
    bool limit = na && !strcmp(args[0], "limit");
    if (na == 0 || (na > 3 && !(limit && na <= 15))) {
        usage(stderr);
        return 2;
    }
    const char *cmd = args[0];
    bool one = false;
    char req[1024];
    if ((interval || count) && (strcmp(cmd, "stats") || json || (na != 1 && na != 3))) {
        fprintf(stderr, "xen-blkbackctl: --interval and --count go with stats (not --json)\n");
        return 2;
    }
    if (interval || count) {
        char *end = NULL;
        double secs = interval ? strtod(interval, &end) : 1.0;
        long n = count ? strtol(count, &end, 10) : 0;
        if (!interval || !*interval || *end || secs < 0.1 || secs > 86400 || n < 0) {
            fprintf(stderr, "xen-blkbackctl: stats --interval SECS (0.1..86400) "
                    "[--count N (0: until interrupted)]\n");
            return 2;
        }
        if (count && strtol(count, &end, 10) < 0) {
            fprintf(stderr, "xen-blkbackctl: --count: expected N >= 0\n");
            return 2;
        }
        return ctl_stats_interval(sock, secs, n, na == 3 ? args[1] : NULL, na == 3 ? args[2] : NULL);
    }
    if (!strcmp(cmd, "list") || !strcmp(cmd, "version") || !strcmp(cmd, "metrics")) {
        if (na != 1) {
            usage(stderr);
            return 2;
        }
        snprintf(req, sizeof(req), "%s\n", cmd);
    } else if (!strcmp(cmd, "stats")) {
        if (na != 1 && na != 3) {
            usage(stderr);
            return 2;
        }
        one = na == 3;
        if (one)
            snprintf(req, sizeof(req), "stats %.32s %.32s\n", args[1], args[2]);
        else
            snprintf(req, sizeof(req), "stats\n");
    } else if (!strcmp(cmd, "debug")) {
        if (na > 2) {
            usage(stderr);
            return 2;
        }
        if (na == 2)
            snprintf(req, sizeof(req), "debug %.200s\n", args[1]);
        else
            snprintf(req, sizeof(req), "debug\n");
    } else if (limit) {
        if (na < 3) {
            usage(stderr);
            return 2;
        }
        int n = snprintf(req, sizeof(req), "limit %.32s %.32s", args[1], args[2]);
        for (int i = 3; i < na && n < (int)sizeof(req); i++)
            n += snprintf(req + n, sizeof(req) - (size_t)n, " %s", args[i]);
        if (n + 2 > (int)sizeof(req)) {
            fprintf(stderr, "xen-blkbackctl: limit: request too long\n");
            return 2;
        }
        snprintf(req + n, sizeof(req) - (size_t)n, "\n");
    } else if (!strcmp(cmd, "resize")) {
        if (na != 3) {
            usage(stderr);
            return 2;
        }
        snprintf(req, sizeof(req), "resize %.32s %.32s\n", args[1], args[2]);
    } else {
        fprintf(stderr, "xen-blkbackctl: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }

    json_object *o = ctl_call(sock, req);
    if (!o)
        return 1;
    int rc = getb(o, "ok") ? 0 : 1;
    if (json) {
        printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    } else if (rc) {
        fprintf(stderr, "xen-blkbackctl: %s\n", gets(o, "error"));
    } else if (!strcmp(cmd, "version")) {
        printf("xen-blkbackd %s (xen %s, domid %lld)\n", gets(o, "version"), gets(o, "xen"),
               geti(o, "domid"));
    } else if (!strcmp(cmd, "resize")) {
        if (getb(o, "changed"))
            printf("%s: resized from %lld to %lld sectors\n", gets(o, "name"),
                   geti(o, "old_sectors"), geti(o, "sectors"));
        else
            printf("%s: unchanged, %lld sectors\n", gets(o, "name"), geti(o, "sectors"));
    } else if (limit) {
        printf("%s:", gets(o, "name"));
        json_object_object_foreach(get(o, "limits"), k, v)
            printf(" %s=%s", k, json_object_get_string(v));
        printf("%s\n", getb(o, "connected") ? "" : " (not connected: applies at connect)");
    } else if (!strcmp(cmd, "metrics")) {
        fputs(gets(o, "metrics"), stdout);
    } else if (!strcmp(cmd, "debug")) {
        if (na == 2)
            printf("debug categories: %s (were %s)\n", gets(o, "debug"), gets(o, "was"));
        else
            printf("debug categories: %s\n", gets(o, "debug"));
    } else if (!strcmp(cmd, "list")) {
        print_list(get(o, "devices"));
    } else {
        print_stats(get(o, "devices"), one);
    }
    json_object_put(o);
    return rc;
}
