/*
 * control.c - the control socket: a unix stream socket; a client sends ONE
 * request line, gets ONE JSON object (one line, newline-terminated), and the
 * daemon closes the connection.  Every reply has "proto" (include/ctl_proto.h).
 * Requests (docs/control-protocol.md):
 *   version                    {"ok":true,"version":..,"xen":..,"domid":..[,"metrics_listen"]}
 *   list                       {"ok":true,"devices":[{...device...}]}
 *   stats [<domid> <devid>]    {"ok":true,"latency_bounds_ns":[..],"devices":[{"domid","devid",
 *                               "name","features":{..},"stats":{...},"latency":{..},
 *                               "queues":[..]}]} (features: connected devices only)
 *   resize <domid> <devid>     {"ok":true,"domid","devid","name","old_sectors","sectors","changed"}
 *                              (online resize to the backing store's size: vbd_resize)
 *   metrics                    {"ok":true,"metrics":"<Prometheus text exposition>"}
 *   debug [<cat>[,<cat>...]]   {"ok":true,"debug":"ring,grant","was":"none"} (the --debug
 *                              categories, log.h LOG_CAT_*; without an argument: just read)
 * Errors: {"ok":false,"error":"..."}.  Counters are struct vbd_stats (stats.h)
 * under blkback's names.  Served on the main thread; clients are non-blocking.
 */
#include "backend.h"
#include "ctl_proto.h"
#include "util.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CTL_MAX_CLIENTS 16
#define CTL_LINE_MAX 512
#define CTL_TRY "try: version, list, stats [domid devid], resize domid devid, " \
                "limit domid devid [name=value ...], metrics, debug [cats]"

struct ctl_client {
    int fd;
    size_t len;
    char buf[CTL_LINE_MAX];
};

struct control {
    struct backend *b;
    int lfd;
    char path[108];
    dev_t dev;                  /* the socket file we bound (control_close) */
    ino_t ino;
    struct ctl_client cl[CTL_MAX_CLIENTS];
};

/* mkdir -p of the socket's parent (0755). */
static int mkdir_parent(const char *path)
{
    char tmp[108];
    snprintf(tmp, sizeof(tmp), "%s", path);
    char *slash = strrchr(tmp, '/');
    if (!slash || slash == tmp)
        return 0;
    *slash = 0;
    return owner_mkdir_p(tmp, 0755);
}

/* May we bind `sa`?  Nothing there, or a socket nobody answers on (removed). */
static int claim_path(const struct sockaddr_un *sa)
{
    struct stat st;
    if (lstat(sa->sun_path, &st))
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode))
        return -EEXIST;
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return -errno;
    int rc = connect(probe, (const struct sockaddr *)sa, sizeof(*sa)) ? -errno : -EADDRINUSE;
    close(probe);
    if (rc != -ECONNREFUSED)
        return rc;                      /* answered, or we cannot tell: not ours to remove */
    return unlink(sa->sun_path) && errno != ENOENT ? -errno : 0;
}

const char *control_strerror(int rc)
{
    switch (rc) {
    case -EEXIST: return "exists and is not a socket; refusing to remove it";
    case -EADDRINUSE: return "another process answers on it (another xen-blkbackd?); refusing to replace it";
    default: return strerror(-rc);
    }
}

int control_open(struct backend *b, const char *path, struct control **out)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    int rc = mkdir_parent(path);
    if (rc)
        return rc;
    struct control *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->b = b;
    for (int i = 0; i < CTL_MAX_CLIENTS; i++)
        c->cl[i].fd = -1;
    snprintf(c->path, sizeof(c->path), "%s", path);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->lfd < 0) {
        rc = -errno;
        free(c);
        return rc;
    }
    /* A stale socket from a dead daemon is replaced; a live one or anything
     * that is not a socket is not. */
    rc = claim_path(&sa);
    if (!rc) {
        mode_t old = umask(0077);
        rc = bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) ? -errno : 0;
        umask(old);
    }
    struct stat st;
    if (!rc && lstat(path, &st) == 0) {
        c->dev = st.st_dev;
        c->ino = st.st_ino;
    }
    if (!rc && listen(c->lfd, 16))
        rc = -errno;
    if (rc) {
        close(c->lfd);
        free(c);
        return rc;
    }
    log_info("control socket %s", path);
    *out = c;
    return 0;
}

void control_close(struct control *c)
{
    for (int i = 0; i < CTL_MAX_CLIENTS; i++)
        if (c->cl[i].fd >= 0)
            close(c->cl[i].fd);
    close(c->lfd);
    struct stat st;
    if (lstat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
        unlink(c->path);        /* still ours */
    free(c);
}

unsigned control_fds(struct control *c, int *fds, unsigned max)
{
    unsigned n = 0;
    if (n < max)
        fds[n++] = c->lfd;
    for (int i = 0; i < CTL_MAX_CLIENTS && n < max; i++)
        if (c->cl[i].fd >= 0)
            fds[n++] = c->cl[i].fd;
    return n;
}

/* ---- JSON ------------------------------------------------------------------- */

static json_object *stats_json(const struct vbd_stats *s)
{
    json_object *o = json_object_new_object();
#define F(name) json_object_object_add(o, #name, json_object_new_uint64(s->name))
    F(oo_req); F(rd_req); F(wr_req); F(f_req); F(ds_req); F(rd_sect); F(wr_sect);
    F(errors); F(eopnotsupp); F(bad_req); F(io_errors); F(replayed); F(throttled); F(throttle_ns);
    F(gnt_map); F(gnt_unmap); F(gnt_copy); F(notify); F(kicks); F(submits);
    F(sleeps); F(engine_waits);
    F(grants_mapped); F(inflight); F(halted);
#undef F
    return o;
}

static json_object *hist_json(const struct vbd_hist *h)
{
    json_object *o = json_object_new_object(), *a = json_object_new_array();
    uint64_t n = 0;
    for (unsigned i = 0; i < VBD_LAT_BUCKETS; i++) {
        n += h->bucket[i];
        json_object_array_add(a, json_object_new_uint64(h->bucket[i]));
    }
    json_object_object_add(o, "count", json_object_new_uint64(n));
    json_object_object_add(o, "sum_ns", json_object_new_uint64(h->sum_ns));
    json_object_object_add(o, "buckets", a);
    return o;
}

/* {"read":{"total":HIST,"engine":HIST},"write":..,"flush":..,"discard":..} */
static json_object *latency_json(const struct vbd_stats *s)
{
    static const char *const names[VBD_OP_N] = { "read", "write", "flush", "discard" };
    json_object *o = json_object_new_object();
    for (unsigned op = 0; op < VBD_OP_N; op++) {
        json_object *x = json_object_new_object();
        json_object_object_add(x, "total", hist_json(&s->lat[op].total));
        json_object_object_add(x, "engine", hist_json(&s->lat[op].engine));
        json_object_object_add(o, names[op], x);
    }
    return o;
}

/* The gauges of each live queue. */
static json_object *queues_json(struct vbd *v)
{
    json_object *a = json_object_new_array();
    for (unsigned i = 0; i < vdp_nr_queues(v->dp); i++) {
        struct vbd_stats s;
        if (vdp_get_queue_stats(v->dp, i, &s))
            continue;
        json_object *q = json_object_new_object();
#define F(name) json_object_object_add(q, #name, json_object_new_uint64(s.name))
        F(inflight); F(ring_slots); F(ring_occupancy); F(grants_mapped); F(halted);
#undef F
        json_object_array_add(a, q);
    }
    return a;
}

static json_object *lat_bounds_json(void)
{
    json_object *a = json_object_new_array();
    for (unsigned i = 0; i + 1 < VBD_LAT_BUCKETS; i++)
        json_object_array_add(a, json_object_new_uint64(vbd_lat_bound_ns(i)));
    return a;
}

static void add_str(json_object *o, const char *k, const char *v)
{
    json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

/* {"iops":"1000/2000","read-iops":"none",...} */
static json_object *qos_json(const struct dp_qos *q)
{
    json_object *o = json_object_new_object();
    for (unsigned k = 0; k < DP_QOS_N; k++) {
        char val[48];
        dp_qos_format(&q->l[k], val, sizeof(val));
        add_str(o, dp_qos_name((enum dp_qos_kind)k), val);
    }
    return o;
}

/* What the data plane of a connected vbd runs with (dp_get_info): the
 * resolved grant mode and features, not the configured ones. */
static json_object *features_json(struct vbd *v)
{
    struct dp_info d;
    vdp_get_info(v->dp, &d);
    json_object *f = json_object_new_object();
    add_str(f, "protocol", blkif_abi_name(d.abi));
    json_object_object_add(f, "queues", json_object_new_int(d.nr_queues));
    json_object_object_add(f, "ring_page_order", json_object_new_int(d.ring_order));
    json_object_object_add(f, "sectors", json_object_new_uint64(v->conn.sectors));
    json_object_object_add(f, "sector_size", json_object_new_int64(d.lim.sector_size));
    json_object_object_add(f, "physical_sector_size",
                           json_object_new_int64(v->conn.phys_sector_size));
    json_object_object_add(f, "readonly", json_object_new_boolean(d.lim.readonly));
    json_object_object_add(f, "flush", json_object_new_boolean(d.lim.flush));
    json_object_object_add(f, "barrier", json_object_new_boolean(d.lim.barrier));
    json_object_object_add(f, "discard", json_object_new_boolean(d.lim.discard));
    json_object_object_add(f, "persistent", json_object_new_boolean(d.persistent));
    json_object_object_add(f, "indirect_segments", json_object_new_int(d.lim.max_indirect_segs));
    add_str(f, "grant_mode", grant_mode_name(d.grant_mode));
    add_str(f, "grant_mode_asked", grant_mode_name(v->conn.grant_mode));
    if (d.persistent_cap)
        json_object_object_add(f, "persistent_cap", json_object_new_int64(d.persistent_cap));
    struct dp_qos q;
    vdp_get_qos(v->dp, &q);
    json_object_object_add(f, "qos", qos_json(&q));
    return f;
}

/* A new object naming v: kind, domid, devid, name (the first members of a
 * `list` device and of a `stats` entry). */
static json_object *device_id_json(const struct vbd *v)
{
    json_object *o = json_object_new_object();
    add_str(o, "kind", v->kind);
    json_object_object_add(o, "domid", json_object_new_int(v->fe_domid));
    json_object_object_add(o, "devid", json_object_new_int64(v->devid));
    add_str(o, "name", v->name);
    return o;
}

static json_object *device_json(struct vbd *v)
{
    json_object *o = device_id_json(v);
    add_str(o, "backend", v->be_path);
    add_str(o, "frontend", v->fe_path);
    json_object_object_add(o, "state", json_object_new_int(v->be_state));
    add_str(o, "state_name", xenbus_state_name(v->be_state));
    json_object_object_add(o, "frontend_state", json_object_new_int(v->fe_state));
    json_object_object_add(o, "online", json_object_new_boolean(v->online == 1));
    json_object_object_add(o, "connected", json_object_new_boolean(v->dp != NULL));
    json_object_object_add(o, "halted", json_object_new_boolean(v->dp && vdp_halted(v->dp)));
    json_object_object_add(o, "connects", json_object_new_int64(v->connects));
    if (vdp_worker_pid(v->dp) > 0)      /* --isolation=domain */
        json_object_object_add(o, "worker_pid", json_object_new_int64(vdp_worker_pid(v->dp)));
    add_str(o, "params", v->params);
    add_str(o, "mode", v->mode[0] ? v->mode : NULL);
    add_str(o, "error", v->fatal ? v->last_error : NULL);
    if (v->dp)
        json_object_object_add(o, "features", features_json(v));
    return o;
}

static json_object *error_json(const char *msg)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(false));
    add_str(o, "error", msg);
    return o;
}

/* debug [cats]: read or set the --debug categories (log_debug_set); a
 * wrong list changes nothing. */
static json_object *debug_json(const char *cats)
{
    char was[96], now[96];
    unsigned old = log_debug_get(), m = old;
    const char *bad = NULL;
    if (cats && log_debug_parse(cats, &m, &bad)) {
        char msg[200];
        snprintf(msg, sizeof(msg), "debug: unknown category '%.*s'; expected ring, grant, "
                 "xenstore, engine, restart, all or none, comma-separated",
                 bad ? (int)strcspn(bad, ",") : 0, bad ? bad : "");
        return error_json(msg);
    }
    log_debug_format(old, was, sizeof(was));
    log_debug_format(m, now, sizeof(now));
    if (cats) {
        log_debug_set(m);
        log_notice("control: debug categories %s (were %s)", now, was);
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(true));
    add_str(o, "debug", now);
    add_str(o, "was", was);
    return o;
}

/* resize <domid> <devid>: vbd_resize with the reason of a refusal as the error. */
static json_object *resize_json(struct backend *b, const char *sfe, const char *sdev)
{
    uint64_t fe = 0, devid = 0;
    if (xbd_parse_u64(sfe, 10, 0, 65535, &fe) || xbd_parse_u64(sdev, 10, 0, UINT32_MAX, &devid))
        return error_json("usage: resize domid devid");
    struct vbd *v = b->vbds;
    while (v && (v->fe_domid != fe || v->devid != devid))
        v = v->next;
    if (!v) {
        log_notice("control: resize %lu %lu refused: no such device", fe, devid);
        return error_json("no such device");
    }
    char why[256], msg[340];
    uint64_t old = 0, now = 0;
    int rc = vbd_resize(v, "control request", why, sizeof(why), &old, &now);
    if (rc) {
        snprintf(msg, sizeof(msg), "%s: resize refused: %s", v->name, why);
        return error_json(msg);
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(true));
    json_object_object_add(o, "domid", json_object_new_int(v->fe_domid));
    json_object_object_add(o, "devid", json_object_new_int64(v->devid));
    add_str(o, "name", v->name);
    json_object_object_add(o, "old_sectors", json_object_new_uint64(old));
    json_object_object_add(o, "sectors", json_object_new_uint64(now));
    json_object_object_add(o, "changed", json_object_new_boolean(now != old));
    return o;
}

/*
 * limit <domid> <devid> [name=value ...]: the QoS limits (dataplane.h names and
 * dp_qos_parse values).  All values are checked first: one bad value refuses
 * the request and changes nothing.  The new values are written to the
 * device's backend keys (xs_keys.h XSK_QOS_*: they stay for the next connect
 * and the toolstack sees them) and applied to the running data plane.  No
 * pairs: the limits in force.
 */
static json_object *limit_json(struct backend *b, int argc, char **argv)
{
    uint64_t fe = 0, devid = 0;
    if (argc < 3 || xbd_parse_u64(argv[1], 10, 0, 65535, &fe) ||
        xbd_parse_u64(argv[2], 10, 0, UINT32_MAX, &devid))
        return error_json("usage: limit domid devid [iops|read-iops|write-iops|bps|read-bps|"
                          "write-bps=none|RATE[/BURST] ...]");
    struct vbd *v = b->vbds;
    while (v && (v->fe_domid != fe || v->devid != devid))
        v = v->next;
    if (!v)
        return error_json("no such device");
    struct dp_qos cur, q;
    if (v->dp)
        vdp_get_qos(v->dp, &cur);
    else
        vbd_qos_read(v, &b->cfg->qos, &cur);
    q = cur;
    struct xs_kv kv[DP_QOS_N];
    char vals[DP_QOS_N][48];
    unsigned n = 0;
    for (int i = 3; i < argc; i++) {
        char msg[400], err[300];
        char *eq = strchr(argv[i], '=');
        enum dp_qos_kind k;
        if (eq)
            *eq = 0;
        if (!eq || dp_qos_kind_parse(argv[i], &k)) {
            snprintf(msg, sizeof(msg), "%s: limit refused: '%s': expected iops, read-iops, "
                     "write-iops, bps, read-bps or write-bps=VALUE", v->name, argv[i]);
            return error_json(msg);
        }
        if (dp_qos_parse(k, eq + 1, &q.l[k], err, sizeof(err))) {
            snprintf(msg, sizeof(msg), "%s: limit refused: %s: %s", v->name, dp_qos_name(k), err);
            log_notice("control: %s", msg);
            return error_json(msg);
        }
        unsigned j = 0;
        while (j < n && strcmp(kv[j].key, vbd_qos_keys[k]))
            j++;
        dp_qos_format(&q.l[k], vals[j], sizeof(vals[j]));
        xs_kv_str(&kv[j], vbd_qos_keys[k], vals[j]);
        n += j == n;
    }
    if (n) {
        int rc = xs_tx_write(b, v->be_path, kv, n, -1);
        if (rc) {
            char msg[400];
            snprintf(msg, sizeof(msg), "%s: limit refused: cannot write %s: %s", v->name,
                     v->be_path, strerror(-rc));
            return error_json(msg);
        }
        vbd_qos_apply(v, &q, "control request");
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(true));
    json_object_object_add(o, "domid", json_object_new_int(v->fe_domid));
    json_object_object_add(o, "devid", json_object_new_int64(v->devid));
    add_str(o, "name", v->name);
    json_object_object_add(o, "connected", json_object_new_boolean(v->dp != NULL));
    json_object_object_add(o, "limits", qos_json(&q));
    return o;
}

#define CTL_MAX_ARGS (3 + 2 * DP_QOS_N)     /* limit domid devid + room for repeats */

char *control_request(struct backend *b, const char *line)
{
    char buf[CTL_LINE_MAX], *save = NULL;
    snprintf(buf, sizeof(buf), "%s", line);
    char *argv[CTL_MAX_ARGS] = { 0 };
    int argc = 0;
    for (char *t = strtok_r(buf, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
        if (argc == CTL_MAX_ARGS) {
            argc++;
            break;
        }
        argv[argc++] = t;
    }
    json_object *o = NULL;
    if (argc == 0) {
        o = error_json("empty request; " CTL_TRY);
    } else if (!strcmp(argv[0], "version") && argc == 1) {
        o = json_object_new_object();
        json_object_object_add(o, "ok", json_object_new_boolean(true));
        add_str(o, "version", XBD_VERSION);
        add_str(o, "xen", b->ops->name);
        json_object_object_add(o, "domid", json_object_new_int(b->self));
        if (b->mhttp)
            add_str(o, "metrics_listen", metrics_http_addr(b->mhttp));
    } else if (!strcmp(argv[0], "list") && argc == 1) {
        o = json_object_new_object();
        json_object_object_add(o, "ok", json_object_new_boolean(true));
        json_object *a = json_object_new_array();
        for (struct vbd *v = b->vbds; v; v = v->next)
            json_object_array_add(a, device_json(v));
        json_object_object_add(o, "devices", a);
    } else if (!strcmp(argv[0], "stats") && (argc == 1 || argc == 3)) {
        uint64_t fe = 0, devid = 0;
        bool one = argc == 3;
        if (one && (xbd_parse_u64(argv[1], 10, 0, 65535, &fe) || xbd_parse_u64(argv[2], 10, 0, UINT32_MAX, &devid))) {
            o = error_json("usage: stats [domid devid]");
        } else {
            json_object *a = json_object_new_array();
            for (struct vbd *v = b->vbds; v; v = v->next) {
                if (one && (v->fe_domid != fe || v->devid != devid))
                    continue;
                struct vbd_stats s;
                vbd_get_stats(v, &s);
                json_object *d = device_id_json(v);
                add_str(d, "vdev", v->vdev);
                json_object_object_add(d, "state", json_object_new_int(v->be_state));
                if (v->dp)
                    json_object_object_add(d, "features", features_json(v));
                json_object_object_add(d, "stats", stats_json(&s));
                json_object_object_add(d, "latency", latency_json(&s));
                json_object_object_add(d, "queues", queues_json(v));
                json_object_array_add(a, d);
            }
            if (one && json_object_array_length(a) == 0) {
                json_object_put(a);
                o = error_json("no such device");
            } else {
                o = json_object_new_object();
                json_object_object_add(o, "ok", json_object_new_boolean(true));
                json_object_object_add(o, "latency_bounds_ns", lat_bounds_json());
                json_object_object_add(o, "devices", a);
            }
        }
    } else if (!strcmp(argv[0], "limit") && argc >= 3 && argc <= CTL_MAX_ARGS) {
        o = limit_json(b, argc, argv);
    } else if (!strcmp(argv[0], "resize") && argc == 3) {
        o = resize_json(b, argv[1], argv[2]);
    } else if (!strcmp(argv[0], "debug") && argc <= 2) {
        o = debug_json(argc == 2 ? argv[1] : NULL);
    } else if (!strcmp(argv[0], "metrics") && argc == 1) {
        char *text = metrics_text(b);
        if (text) {
            o = json_object_new_object();
            json_object_object_add(o, "ok", json_object_new_boolean(true));
            add_str(o, "metrics", text);
            free(text);
        } else {
            o = error_json("out of memory");
        }
    } else {
        o = error_json("unknown request; " CTL_TRY);
    }
    char *out = NULL;
    if (o) {
        json_object_object_add(o, "proto", json_object_new_int(XBD_CTL_PROTO_VERSION));
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
        if (asprintf(&out, "%s\n", s) < 0)
            out = NULL;
        json_object_put(o);
    }
    return out;
}

/* ---- SIGUSR1: the device table in the log ------------------------------------ */

/* What a dump line shows: label=value for each JSON field of `list` (device_json)
 * plus "stats" (stats_json); missing fields (features while not connected) are
 * left out. */
static const struct { const char *label, *obj, *key; } dump_fields[] = {
    { "state", NULL, "state" },               { "frontend", NULL, "frontend_state" },
    { "online", NULL, "online" },             { "connected", NULL, "connected" },
    { "halted", NULL, "halted" },             { "connects", NULL, "connects" },
    { "params", NULL, "params" },             { "mode", NULL, "mode" },
    { "protocol", "features", "protocol" },   { "queues", "features", "queues" },
    { "ring-order", "features", "ring_page_order" },
    { "grant-mode", "features", "grant_mode" },
    { "persistent", "features", "persistent" },
    { "rd_req", "stats", "rd_req" },          { "wr_req", "stats", "wr_req" },
    { "f_req", "stats", "f_req" },            { "ds_req", "stats", "ds_req" },
    { "oo_req", "stats", "oo_req" },          { "errors", "stats", "errors" },
    { "inflight", "stats", "inflight" },      { "grants_mapped", "stats", "grants_mapped" },
    { "error", NULL, "error" },
};

void control_log_devices(struct backend *b)
{
    unsigned n = 0;
    for (struct vbd *v = b->vbds; v; v = v->next)
        n++;
    log_notice("SIGUSR1: %u device(s)", n);
    for (struct vbd *v = b->vbds; v; v = v->next) {
        json_object *o = device_json(v);
        struct vbd_stats st;
        vbd_get_stats(v, &st);
        json_object_object_add(o, "stats", stats_json(&st));
        char line[1024];
        size_t len = 0;
        line[0] = 0;
        for (size_t i = 0; i < ARRAY_SIZE(dump_fields); i++) {
            json_object *from = o, *x = NULL;
            if (dump_fields[i].obj && !json_object_object_get_ex(o, dump_fields[i].obj, &from))
                continue;
            if (!json_object_object_get_ex(from, dump_fields[i].key, &x) || !x)
                continue;
            int w = snprintf(line + len, sizeof(line) - len, " %s=%s", dump_fields[i].label,
                             json_object_get_string(x));
            if (w < 0 || (size_t)w >= sizeof(line) - len)
                break;
            len += (size_t)w;
        }
        VLOG(v, LOG_NOTICE, "%s", line + (line[0] == ' '));
        json_object_put(o);
    }
}

/* ---- connections ----------------------------------------------------------- */

static void client_close(struct ctl_client *cl)
{
    close(cl->fd);
    cl->fd = -1;
    cl->len = 0;
}

/* Write all of s within ~1 s, then close. */
static void client_reply(struct ctl_client *cl, const char *s)
{
    size_t len = strlen(s), off = 0;
    for (int tries = 0; off < len && tries < 100; ) {
        ssize_t w = send(cl->fd, s + off, len - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd p = { .fd = cl->fd, .events = POLLOUT };
            poll(&p, 1, 10);
            tries++;
        } else {
            break;
        }
    }
    client_close(cl);
}

void control_handle(struct control *c, int fd)
{
    if (fd == c->lfd) {
        int nfd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (nfd < 0)
            return;
        for (int i = 0; i < CTL_MAX_CLIENTS; i++)
            if (c->cl[i].fd < 0) {
                c->cl[i].fd = nfd;
                c->cl[i].len = 0;
                return;
            }
        close(nfd);             /* too many clients */
        return;
    }
    for (int i = 0; i < CTL_MAX_CLIENTS; i++) {
        struct ctl_client *cl = &c->cl[i];
        if (cl->fd != fd)
            continue;
        ssize_t r = recv(fd, cl->buf + cl->len, sizeof(cl->buf) - 1 - cl->len, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (r <= 0 && cl->len == 0) {
            client_close(cl);
            return;
        }
        if (r > 0)
            cl->len += (size_t)r;
        cl->buf[cl->len] = 0;
        char *nl = strchr(cl->buf, '\n');
        if (!nl && r > 0 && cl->len < sizeof(cl->buf) - 1)
            return;             /* wait for the rest of the line */
        if (nl)
            *nl = 0;
        char *reply = (nl || r == 0) ? control_request(c->b, cl->buf) : NULL;
        client_reply(cl, reply ? reply : "{\"ok\":false,\"error\":\"request too long\",\"proto\":1}\n");
        free(reply);
        return;
    }
}
