/* t_e2e_metrics: the daemon's Prometheus metrics, over HTTP (--metrics-listen) and `xen-blkbackctl metrics`, pass `promtool check metrics` and move with real I/O from xen-blkbench on two queues: requests and sectors at least what the guest did, histogram counts equal to the request counts, buckets monotone, engine share within the total; `top -b` and `stats --interval` show the device; bad HTTP requests get 404/405. */
#include "harness.h"
#include "lib/e2e.h"

#include <arpa/inet.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const ops[] = { "read", "write", "flush", "discard" };

/* A tiny HTTP/1.0 client: `method path` to ip:port; the status code, the
 * body into *body (malloc'd).  -1 on a socket error. */
static int http(const char *addr, const char *method, const char *path, char **body)
{
    char ip[64];
    unsigned port = 0;
    *body = NULL;
    if (sscanf(addr, "%63[0-9.]:%u", ip, &port) != 2)
        return -1;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
        return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    struct timeval tv = { 10, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char req[256];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\nHost: %s\r\n\r\n", method, path, addr);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (ssize_t r; buf && (r = read(fd, buf + len, cap - 1 - len)) > 0;) {
        len += (size_t)r;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    close(fd);
    if (!buf)
        return -1;
    buf[len] = 0;
    int status = -1;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    char *b = strstr(buf, "\r\n\r\n");
    *body = strdup(b ? b + 4 : "");
    free(buf);
    return status;
}

/* Value of the series `name{...}` whose labels contain every one of the
 * NULL-terminated `labels` (e.g. "op=\"read\""); -1 if none. */
static double mval(const char *text, const char *name, const char *const *labels)
{
    size_t nl = strlen(name);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, name, nl) || l[nl] != '{')
            continue;
        const char *end = strchr(l, '}'), *eol = strchr(l, '\n');
        if (!end || (eol && end > eol))
            continue;
        bool all = true;
        for (unsigned i = 0; labels && labels[i] && all; i++) {
            const char *p = strstr(l, labels[i]);
            all = p && p < end;
        }
        if (all)
            return strtod(end + 2, NULL);
    }
    return -1;
}

static double opval(const char *text, const char *name, const char *op)
{
    char lab[32];
    snprintf(lab, sizeof(lab), "op=\"%s\"", op);
    const char *labels[] = { "domid=\"1\"", lab, NULL };
    return mval(text, name, labels);
}

/* The buckets of histogram `name` for op: non-decreasing, the last one
 * le="+Inf", equal to _count; returns _count. */
static double check_hist(const char *text, const char *name, const char *op)
{
    char bname[128], lab[32];
    snprintf(bname, sizeof(bname), "%s_bucket{", name);
    snprintf(lab, sizeof(lab), "op=\"%s\"", op);
    double prev = 0, last = -1;
    unsigned n = 0;
    bool inf = false;
    for (const char *l = strstr(text, bname); l; l = strstr(l + 1, bname)) {
        const char *end = strchr(l, '}');
        const char *p = strstr(l, lab);
        if (!end || !p || p > end || !strstr(l, "domid=\"1\"") || strstr(l, "domid=\"1\"") > end)
            continue;
        double v = strtod(end + 2, NULL);
        T_CHECK(v >= prev, "%s op=%s bucket %u: %.0f after %.0f (not cumulative)", name, op, n, v, prev);
        prev = last = v;
        inf = !strncmp(strstr(l, "le=\""), "le=\"+Inf\"", 9);
        n++;
    }
    char cname[128];
    snprintf(cname, sizeof(cname), "%s_count", name);
    double count = opval(text, cname, op);
    T_CHECK(n > 10 && inf, "%s op=%s: %u buckets, last +Inf: %d", name, op, n, inf);
    T_CHECK(last == count, "%s op=%s: +Inf bucket %.0f, _count %.0f", name, op, last, count);
    return count;
}

static void promtool(const char *path)
{
    char *out = NULL;
    int rc = e2e_sh(&out, "promtool check metrics < '%s' 2>&1", path);
    T_CHECK(rc == 0, "promtool check metrics %s: exit %d: %s", path, rc, out ? out : "");
    free(out);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *b = malloc(cap);
    for (size_t r; b && (r = fread(b + len, 1, cap - 1 - len, f)) > 0;) {
        len += r;
        if (len + 1 == cap)
            b = realloc(b, cap *= 2);
    }
    fclose(f);
    if (b)
        b[len] = 0;
    return b;
}

/* The counters of one scrape against what xen-blkbench did (out). */
static void check_scrape(const char *m, const char *out, const char *what)
{
    T_LOG("checking the %s scrape", what);
    long long reads = e2e_field(out, "workload", "reads");
    long long writes = e2e_field(out, "workload", "writes");
    long long rbytes = e2e_field(out, "workload", "read-bytes");
    long long wbytes = e2e_field(out, "workload", "write-bytes");
    T_ASSERT(reads > 0 && writes > 0, "workload reads %lld writes %lld", reads, writes);
    double rq = opval(m, "xen_blkback_requests_total", "read");
    double wq = opval(m, "xen_blkback_requests_total", "write");
    T_CHECK(rq >= (double)reads, "%s: requests_total{op=read} %.0f < %lld reads issued", what, rq, reads);
    T_CHECK(wq >= (double)writes, "%s: requests_total{op=write} %.0f < %lld writes issued", what, wq, writes);
    T_CHECK(opval(m, "xen_blkback_requests_total", "flush") >= 1, "%s: no flush counted", what);
    T_CHECK(opval(m, "xen_blkback_requests_total", "discard") >= 1, "%s: no discard counted", what);
    T_CHECK(opval(m, "xen_blkback_sectors_total", "read") * 512 >= (double)rbytes,
            "%s: read sectors below the bytes read", what);
    T_CHECK(opval(m, "xen_blkback_sectors_total", "write") * 512 >= (double)wbytes,
            "%s: write sectors below the bytes written", what);
    const char *err_lab[] = { "domid=\"1\"", "status=\"error\"", NULL };
    T_EQ(mval(m, "xen_blkback_errors_total", err_lab), 0);
    for (unsigned i = 0; i < 4; i++) {
        double req = opval(m, "xen_blkback_requests_total", ops[i]);
        double total = check_hist(m, "xen_blkback_request_duration_seconds", ops[i]);
        double eng = check_hist(m, "xen_blkback_engine_duration_seconds", ops[i]);
        /* the guest had every answer before detaching: nothing in flight */
        T_CHECK(total == req, "%s: request_duration _count{op=%s} %.0f != requests_total %.0f",
                what, ops[i], total, req);
        T_CHECK(eng == req, "%s: engine_duration _count{op=%s} %.0f != requests_total %.0f",
                what, ops[i], eng, req);
        double ts = opval(m, "xen_blkback_request_duration_seconds_sum", ops[i]);
        double es = opval(m, "xen_blkback_engine_duration_seconds_sum", ops[i]);
        T_CHECK(req == 0 || ts > 0, "%s: op=%s: latency sum %.9f with %.0f requests", what, ops[i], ts, req);
        T_CHECK(es <= ts, "%s: op=%s: engine share %.9f s above the total %.9f s", what, ops[i], es, ts);
    }
    for (unsigned q = 0; q < 2; q++) {
        char ql[16];
        snprintf(ql, sizeof(ql), "queue=\"%u\"", q);
        const char *labels[] = { "domid=\"1\"", ql, NULL };
        T_CHECK(mval(m, "xen_blkback_ring_slots", labels) >= 32, "%s: ring_slots of queue %u", what, q);
        T_EQ(mval(m, "xen_blkback_inflight_requests", labels), 0);
        T_EQ(mval(m, "xen_blkback_ring_occupancy_requests", labels), 0);
    }
    const char *dev[] = { "domid=\"1\"", "vdev=\"xvdb\"", NULL };
    T_EQ(mval(m, "xen_blkback_connected", dev), 1);
}

int main(void)
{
    T_SKIP_IF(e2e_sh(NULL, "command -v promtool && command -v curl") != 0,
              "promtool (Debian package prometheus) or curl missing: scripts/deps.sh");
    struct e2e e;
    const char *dargs[] = { "--metrics-listen=127.0.0.1:0", NULL };
    e2e_start(&e, dargs);

    /* where it listens: port 0 was resolved at bind time */
    char *v = t_daemon_request(&e.d, "version");
    T_ASSERT(v, "no version reply");
    json_object *o = json_tokener_parse(v);
    json_object *x = NULL, *p = NULL;
    T_ASSERT(o && json_object_object_get_ex(o, "metrics_listen", &x), "version: %s", v);
    T_CHECK(json_object_object_get_ex(o, "proto", &p) && json_object_get_int(p) == 1,
            "version reply without proto 1: %s", v);
    char addr[64];
    snprintf(addr, sizeof(addr), "%s", json_object_get_string(x));
    json_object_put(o);
    free(v);
    T_LOG("metrics at http://%s/metrics", addr);
    T_CHECK(!strncmp(addr, "127.0.0.1:", 10) && strcmp(addr, "127.0.0.1:0"), "bound %s", addr);

    /* no device yet: the families are there, no device series */
    char *body = NULL;
    T_EQ(http(addr, "GET", "/metrics", &body), 200);
    T_CHECK(body && strstr(body, "# TYPE xen_blkback_requests_total counter") &&
            !strstr(body, "xen_blkback_requests_total{"), "empty scrape: %.300s", body ? body : "");
    free(body);
    T_EQ(http(addr, "GET", "/nothing", &body), 404);
    free(body);
    T_EQ(http(addr, "POST", "/metrics", &body), 405);
    free(body);

    /* real I/O on two queues; the scrapes while the device is attached */
    char dir[512], hook[4096];
    snprintf(dir, sizeof(dir), "%s", t_tmpdir(0));
    const char *ctl = t_prog("xen-blkbackctl");
    snprintf(hook, sizeof(hook),
             "'%s' -s '%s' metrics > '%s/ctl.txt' && curl -sf http://%s/metrics > '%s/http.txt' && "
             "'%s' -s '%s' top -b -n 1 -d 0.2 > '%s/top.txt' && "
             "'%s' -s '%s' stats --interval 0.2 --count 1 > '%s/interval.txt'",
             ctl, e.d.sock, dir, addr, dir, ctl, e.d.sock, dir, ctl, e.d.sock, dir);
    const char *img = e2e_make_image(&e, "disk.img", 16);
    const char *args[] = { "--vdev", "xvdb", "--mode", "w", "--queues", "2", "--rw", "randrw",
        "--bs-range", "4k-64k", "--iodepth", "16", "--size", "24m", "--offset", "0", "--length",
        "12m", "--flush", "--discard", "12m:4m", "--before-detach", hook, NULL };
    char *out = NULL;
    int rc = e2e_bench(&e, 1, img, args, &out);
    T_ASSERT(rc == 0 && out, "xen-blkbench exit %d", rc);
    T_EQ(e2e_field(out, "device", "queues"), 2);

    char path[600];
    const char *names[] = { "http.txt", "ctl.txt" };
    char *text[2];
    for (unsigned i = 0; i < 2; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        promtool(path);
        text[i] = slurp(path);
        T_ASSERT(text[i] && *text[i], "%s is empty", path);
        check_scrape(text[i], out, names[i]);
    }
    /* idle between the two scrapes: the same counts either way */
    for (unsigned i = 0; i < 4; i++)
        T_CHECK(opval(text[0], "xen_blkback_requests_total", ops[i]) ==
                opval(text[1], "xen_blkback_requests_total", ops[i]),
                "HTTP and ctl disagree on requests_total{op=%s}", ops[i]);
    free(text[0]);
    free(text[1]);

    snprintf(path, sizeof(path), "%s/top.txt", dir);
    char *top = slurp(path);
    T_CHECK(top && strstr(top, "p99(us)") && strstr(top, " xvdb "), "top -b: %s", top ? top : "(none)");
    free(top);
    snprintf(path, sizeof(path), "%s/interval.txt", dir);
    char *iv = slurp(path);
    T_CHECK(iv && strstr(iv, "rd_req") && strstr(iv, " vbd       1 "), "stats --interval: %s",
            iv ? iv : "(none)");
    free(iv);
    free(out);

    /* detached: the device's series are gone, the scrape still checks */
    T_EQ(http(addr, "GET", "/metrics", &body), 200);
    T_CHECK(body && !strstr(body, "domid=\"1\""), "device series left after detach");
    snprintf(path, sizeof(path), "%s/after.txt", dir);
    FILE *f = fopen(path, "w");
    T_ASSERT(f && body);
    fputs(body, f);
    fclose(f);
    promtool(path);
    free(body);

    /* the port taken by someone else: one error line, the disks are served */
    int busy = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t slen = sizeof(sin);
    T_ASSERT(busy >= 0 && bind(busy, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
             listen(busy, 1) == 0 && getsockname(busy, (struct sockaddr *)&sin, &slen) == 0);
    T_EQ(t_daemon_stop(&e.d, 15000), 0);
    static char xen_arg[512], ml[64];
    snprintf(xen_arg, sizeof(xen_arg), "--xen=sim:%s", e.sim);
    snprintf(ml, sizeof(ml), "--metrics-listen=127.0.0.1:%u", ntohs(sin.sin_port));
    const char *dargs2[] = { xen_arg, ml, NULL };
    T_ASSERT(t_daemon_start(&e.d, e.sim, dargs2, 20000) == 0, "daemon with a busy metrics port");
    const char *args2[] = { "--vdev", "xvdb", "--mode", "w", "--rw", "randrw", "--bs-range",
        "4k-64k", "--iodepth", "4", "--size", "24m", "--offset", "0", "--length", "4m", NULL };
    rc = e2e_bench(&e, 2, img, args2, &out);
    T_CHECK(rc == 0, "busy metrics port: the disk was not served (xen-blkbench exit %d)", rc);
    free(out);
    char *n = NULL;
    e2e_sh(&n, "grep -ac 'metrics listener 127.0.0.1:%u not started' '%s'", ntohs(sin.sin_port),
           e.d.log);
    T_CHECK(n && atoi(n) == 1, "no one error line for the busy metrics port (%s)", n ? n : "-");
    free(n);
    char *m = t_daemon_request(&e.d, "metrics");
    T_CHECK(m && strstr(m, "xen_blkback_requests_total"), "metrics over the control socket");
    free(m);
    close(busy);
    T_EQ(e2e_stop(&e), 0);
    return t_done();
}
