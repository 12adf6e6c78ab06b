/*
 * config.c - defaults, config file (INI via libinih) and command line for
 * xen-blkbackd.  One table of keys serves both: a long option --foo=V is the
 * config key foo = V.
 */
#include "config.h"
#include "backend.h"                    /* metrics_listen_parse */
#include "util.h"
#include "xs_keys.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define CFG_SECTION "xen-blkbackd"

void xbd_config_free(struct xbd_config *c)
{
    free(c->config_path);
    free(c->pidfile);
    free(c->xen);
    free(c->log_path);
    free(c->control_path);
    free(c->state_dir);
    free(c->metrics_listen);
    free(c->user);
    memset(c, 0, sizeof(*c));
}

/* ---- value parsers ------------------------------------------------------- */

static int parse_bool(const char *v, bool *out)
{
    if (!v || !strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1") ||
        !strcasecmp(v, "on")) {
        *out = true;
        return 0;
    }
    if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcmp(v, "0") ||
        !strcasecmp(v, "off")) {
        *out = false;
        return 0;
    }
    return -EINVAL;
}

static int set_str(char **dst, const char *v)
{
    char *s = NULL;
    if (v && !(s = strdup(v)))
        return -ENOMEM;
    free(*dst);
    *dst = s;
    return 0;
}

/* Value of option `name` in the comma-separated options of a sim argument
 * ("DIR,name=N,..."): 0..limit-1 into *v.  0, -ENOENT (absent), -EINVAL. */
static int sim_opt(const char *arg, const char *name, unsigned long limit, unsigned long *v)
{
    size_t n = strlen(name);
    for (const char *o = strchr(arg, ','); o; o = strchr(o + 1, ',')) {
        if (strncmp(o + 1, name, n) || o[n + 1] != '=')
            continue;
        char *end;
        errno = 0;
        if (o[n + 2] < '0' || o[n + 2] > '9')
            return -EINVAL;
        *v = strtoul(o + n + 2, &end, 10);
        return errno || (*end && *end != ',') || *v >= limit ? -EINVAL : 0;
    }
    return -ENOENT;
}

/* "sim:DIR[,domid=N][,unmap_delay_us=N]": DIR non-empty; the options the
 * simulated host takes (xen_ops_sim.c), each checked here. */
static int check_xen(const char *v)
{
    if (!strcmp(v, "libxen"))
        return 0;
    if (strncmp(v, "sim:", 4) || !v[4] || v[4] == ',')
        return -EINVAL;
    unsigned long x;
    for (const char *o = strchr(v + 4, ','); o; o = strchr(o + 1, ',')) {
        if (!strncmp(o + 1, "domid=", 6)) {
            if (sim_opt(v, "domid", 0x7ff0, &x))
                return -EINVAL;
        } else if (!strncmp(o + 1, "unmap_delay_us=", 15)) {
            if (sim_opt(v, "unmap_delay_us", 1000000, &x))
                return -EINVAL;
        } else {
            return -EINVAL;
        }
    }
    return 0;
}

static int parse_types(const char *v, bool *vbd, bool *vbd3)
{
    bool a = false, b = false;
    char *dup = strdup(v), *save = NULL;
    if (!dup)
        return -ENOMEM;
    int rc = 0;
    for (char *t = strtok_r(dup, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        if (!strcmp(t, "vbd"))
            a = true;
        else if (!strcmp(t, "vbd3"))
            b = true;
        else
            rc = -EINVAL;
    }
    free(dup);
    if (rc || (!a && !b))
        return -EINVAL;
    *vbd = a;
    *vbd3 = b;
    return 0;
}

/* ---- the key table --------------------------------------------------------- */

/* Setters of the XBD_CFG_TEXT keys: 0, -EINVAL (the key's `expect` text is the
 * message, or *why when set), -ENOMEM. */

static int set_foreground(struct xbd_config *c, const char *v, const char **why)
{
    bool b;
    (void)c;
    if (parse_bool(v, &b))
        return -EINVAL;
    if (!b)
        *why = "xen-blkbackd always runs in the foreground "
               "(use systemd Type=notify or --pidfile)";
    return b ? 0 : -EINVAL;
}

static int set_pidfile(struct xbd_config *c, const char *v, const char **why)
{
    (void)why;
    return set_str(&c->pidfile, strcmp(v, "none") ? v : NULL);
}

static int set_xen(struct xbd_config *c, const char *v, const char **why)
{
    (void)why;
    return check_xen(v) ? -EINVAL : set_str(&c->xen, v);
}

static int set_log(struct xbd_config *c, const char *v, const char **why)
{
    static const struct { const char *name; enum log_target t; } t[] = {
        { "journal", LOG_TARGET_JOURNAL }, { "stderr", LOG_TARGET_STDERR },
        { "syslog", LOG_TARGET_SYSLOG },
    };
    (void)why;
    for (size_t i = 0; i < ARRAY_SIZE(t); i++)
        if (!strcmp(v, t[i].name)) {
            c->log_given = true;
            c->log_target = t[i].t;
            return set_str(&c->log_path, NULL);
        }
    if (strncmp(v, "file:", 5) || v[5] != '/')
        return -EINVAL;
    c->log_given = true;
    c->log_target = LOG_TARGET_FILE;
    return set_str(&c->log_path, v + 5);
}

static int set_log_level(struct xbd_config *c, const char *v, const char **why)
{
    (void)why;
    return log_level_parse(v, LOG_ERR, LOG_DEBUG, &c->log_level);
}

static int set_debug(struct xbd_config *c, const char *v, const char **why)
{
    (void)why;
    return log_debug_parse(v, &c->debug_cats, NULL);
}

static int set_control(struct xbd_config *c, const char *v, const char **why)
{
    if (strcmp(v, "none") && v[0] != '/')
        return -EINVAL;
    if (strlen(v) >= 108) {
        *why = "socket path too long (max 107 bytes)";
        return -EINVAL;
    }
    return set_str(&c->control_path, strcmp(v, "none") ? v : "");
}

static int set_backend_types(struct xbd_config *c, const char *v, const char **why)
{
    (void)why;
    return parse_types(v, &c->type_vbd, &c->type_vbd3);
}

static int set_domid(struct xbd_config *c, const char *v, const char **why)
{
    uint64_t n;
    (void)why;
    if (!strcmp(v, "auto")) {
        c->domid = -1;
        return 0;
    }
    if (xbd_parse_u64(v, 10, 0, 32767, &n))
        return -EINVAL;
    c->domid = (int)n;
    return 0;
}

static int set_wait_hotplug(struct xbd_config *c, const char *v, const char **why)
{
    bool b;
    (void)why;
    if (v && !strcmp(v, "auto")) {
        c->wait_hotplug = -1;
        return 0;
    }
    if (parse_bool(v, &b))
        return -EINVAL;
    c->wait_hotplug = b;
    return 0;
}

static int set_grant_mode(struct xbd_config *c, const char *v, const char **why)
{
    (void)why;
    return grant_mode_parse(v, &c->grant_mode);
}

static int set_state_dir(struct xbd_config *c, const char *v, const char **why)
{
    if (v[0] != '/')
        return -EINVAL;
    if (strlen(v) >= 200) {
        *why = "path too long (max 199 bytes)";
        return -EINVAL;
    }
    return set_str(&c->state_dir, v);
}

/* v's index in names[n] into *out; -EINVAL when v is none of them. */
static int enum_by_name(const char *v, const char *const *names, size_t n, int *out)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v, names[i])) {
            *out = (int)i;
            return 0;
        }
    return -EINVAL;
}

static int set_on_exit(struct xbd_config *c, const char *v, const char **why)
{
    static const char *const names[] = { [XBD_ON_EXIT_LEAVE] = "leave", [XBD_ON_EXIT_CLOSE] = "close" };
    int i, rc = enum_by_name(v, names, ARRAY_SIZE(names), &i);
    (void)why;
    if (rc == 0)
        c->on_exit = (enum xbd_on_exit)i;
    return rc;
}

static int set_metrics_listen(struct xbd_config *c, const char *v, const char **why)
{
    static __thread char msg[300];
    if (!strcmp(v, "none"))
        return set_str(&c->metrics_listen, NULL);
    struct sockaddr_storage ss;
    unsigned sl;
    if (metrics_listen_parse(v, &ss, &sl, msg, sizeof(msg))) {
        *why = msg;
        return -EINVAL;
    }
    return set_str(&c->metrics_listen, v);
}

/* qos-*: dp_qos_parse, whose message names the accepted range. */
static int set_qos(struct xbd_config *c, enum dp_qos_kind k, const char *v, const char **why)
{
    static __thread char msg[300];
    if (dp_qos_parse(k, v, &c->qos.l[k], msg, sizeof(msg))) {
        *why = msg;
        return -EINVAL;
    }
    return 0;
}
#define SET_QOS(fn, kind) \
    static int fn(struct xbd_config *c, const char *v, const char **why) \
    { return set_qos(c, kind, v, why); }
SET_QOS(set_qos_iops, DP_QOS_IOPS)
SET_QOS(set_qos_read_iops, DP_QOS_READ_IOPS)
SET_QOS(set_qos_write_iops, DP_QOS_WRITE_IOPS)
SET_QOS(set_qos_bps, DP_QOS_BPS)
SET_QOS(set_qos_read_bps, DP_QOS_READ_BPS)
SET_QOS(set_qos_write_bps, DP_QOS_WRITE_BPS)
#undef SET_QOS
static int set_seccomp(struct xbd_config *c, const char *v, const char **why)
{
    (void)why;
    return confine_mode_parse(v, &c->seccomp);
}

static int set_isolation(struct xbd_config *c, const char *v, const char **why)
{
    static const char *const names[] = { [XBD_ISOLATION_NONE] = "none", [XBD_ISOLATION_DOMAIN] = "domain" };
    int i, rc = enum_by_name(v, names, ARRAY_SIZE(names), &i);
    (void)why;
    if (rc == 0)
        c->isolation = (enum xbd_isolation)i;
    return rc;
}

static int set_user(struct xbd_config *c, const char *v, const char **why)
{
    uid_t uid;
    gid_t gid;
    if (!strcmp(v, "none"))
        return set_str(&c->user, NULL);
    if (!strcmp(v, "auto"))
        return set_str(&c->user, v);
    int rc = confine_user_lookup(v, &uid, &gid);
    if (rc == -ENOENT)
        *why = "no such user";
    else if (rc)
        *why = "a user name or a uid other than 0";
    return rc ? -EINVAL : set_str(&c->user, v);
}

#define F(field) offsetof(struct xbd_config, field)
#define S_DAEMON    "Daemon"
#define S_XENSTORE  "Xenstore"
#define S_STORAGE   "Storage"
#define S_PROTOCOL  "Protocol features advertised to frontends"
#define S_LIFECYCLE "Lifecycle"
#define S_QOS       "Per-disk QoS"
#define S_CONFINE   "Confinement (xen-blkbackd(8) CONFINEMENT)"

/*
 * Every option and config key, in the order of the usage text.  `def` is the
 * default as conf/xen-blkbackd.conf writes it and xbd_config_init applies it
 * (unless no_init: the zero state means it); t_config checks this table
 * against conf/xen-blkbackd.conf and man/xen-blkbackd.8.
 */
static const struct xbd_config_key keys[] = {
    { .name = "config", .type = XBD_CFG_CLI, .shortopt = 'c', .arg = "FILE",
      .help = "config file (default " XBD_DEFAULT_CONFIG ", if present)" },
    { .name = "foreground", .type = XBD_CFG_TEXT, .shortopt = 'F', .optional = true, .def = "yes",
      .section = S_DAEMON, .set = set_foreground, .expect = "yes or no",
      .help = "accepted for compatibility: always in the foreground" },
    { .name = "pidfile", .type = XBD_CFG_TEXT, .arg = "PATH", .def = "none",
      .section = S_DAEMON, .set = set_pidfile, .help = "write the pid to PATH" },
    { .name = "xen", .type = XBD_CFG_TEXT, .arg = "libxen|sim:DIR[,domid=N][,unmap_delay_us=N]",
      .def = "libxen", .no_init = true, .section = S_DAEMON, .set = set_xen,
      .expect = "libxen or sim:DIR[,domid=N][,unmap_delay_us=N]",
      .help = "Xen services: real or simulated host" },
    { .name = "log", .type = XBD_CFG_TEXT, .arg = "journal|stderr|syslog|file:PATH",
      .def = "stderr", .no_init = true, .section = S_DAEMON, .set = set_log,
      .expect = "journal, stderr, syslog or file:/ABSOLUTE/PATH",
      .help = "log target; journal under systemd (JOURNAL_STREAM)" },
    { .name = "log-level", .type = XBD_CFG_TEXT, .arg = "LEVEL", .def = "info",
      .section = S_DAEMON, .set = set_log_level,
      .expect = "err, warning, notice, info or debug", .help = "err, warning, notice, info, debug" },
    { .name = "debug", .type = XBD_CFG_TEXT, .arg = "CAT[,CAT...]", .def = "none",
      .section = S_DAEMON, .set = set_debug,
      .expect = "none, all or a list of ring, grant, xenstore, engine, restart",
      .help = "debug lines of these categories at any log level:\n"
              "ring, grant, xenstore, engine, restart, all or none" },
    { .name = "control", .type = XBD_CFG_TEXT, .arg = "PATH|none", .def = XBD_DEFAULT_CONTROL,
      .no_init = true, .section = S_DAEMON, .set = set_control,
      .expect = "an absolute socket path or none", .help = "control socket" },
    { .name = "backend-types", .type = XBD_CFG_TEXT, .arg = "vbd[,vbd3]", .def = "vbd",
      .section = S_XENSTORE, .set = set_backend_types, .expect = "a list of vbd, vbd3",
      .help = "xenstore backend kinds to serve" },
    { .name = "domid", .type = XBD_CFG_TEXT, .arg = "N|auto", .def = "auto",
      .section = S_XENSTORE, .set = set_domid, .expect = "auto or 0..32767",
      .help = "our domid (auto: xenstore `domid`)" },
    { .name = "wait-hotplug", .type = XBD_CFG_TEXT, .optional = true, .arg = "yes|no|auto",
      .def = "auto", .section = S_XENSTORE, .set = set_wait_hotplug, .expect = "yes, no or auto",
      .help = "connect only after hotplug-status=connected\n"
              "(auto: yes under libxen, no under sim)" },
    { .name = "hotplug-warn", .type = XBD_CFG_UINT, .arg = "MS", .def = "30000",
      .section = S_XENSTORE, .off = F(hotplug_warn_ms), .zero = "off", .lo = 100,
      .hi = 3600000, .unit = " ms", .help = "log once when a device has waited this long\n"
                                            "for hotplug-status; 0 = never" },
    { .name = "allow-test-engines", .type = XBD_CFG_BOOL, .def = "no", .section = S_STORAGE,
      .off = F(allow_test_engines), .help = "allow filter engines (error:, delay:) in params" },
    { .name = "direct-io", .type = XBD_CFG_BOOL, .def = "yes", .section = S_STORAGE,
      .off = F(direct_io), .help = "O_DIRECT on the backing store" },
    { .name = "max-ring-page-order", .type = XBD_CFG_UINT, .arg = "N", .def = "4",
      .section = S_PROTOCOL, .off = F(max_ring_page_order), .lo = 0, .hi = XBD_MAX_RING_ORDER,
      .help = "log2 of the most ring pages" },
    { .name = "max-queues", .type = XBD_CFG_UINT, .arg = "N", .def = "0", .section = S_PROTOCOL,
      .off = F(max_queues), .zero = "online CPUs", .lo = 1, .hi = XBD_MAX_QUEUES,
      .help = "most queues (rings) per device" },
    { .name = "max-indirect-segments", .type = XBD_CFG_UINT, .arg = "N", .def = "256",
      .section = S_PROTOCOL, .off = F(max_indirect_segs), .zero = "no INDIRECT",
      .lo = BLKIF_MAX_SEGMENTS_PER_REQUEST + 1, .hi = XBD_CFG_MAX_INDIRECT_SEGS,
      .help = "segments per INDIRECT request" },
    { .name = "persistent", .type = XBD_CFG_BOOL, .def = "yes", .section = S_PROTOCOL,
      .off = F(persistent), .help = "advertise feature-persistent" },
    { .name = "persistent-cap", .type = XBD_CFG_UINT, .arg = "PAGES", .def = "0",
      .section = S_PROTOCOL, .off = F(persistent_cap), .zero = "auto", .lo = 1, .hi = 65536,
      .unit = " pages", .help = "persistent grants kept per queue; auto:\n"
                                "ring slots x segments, 1056..8192" },
    { .name = "feature-barrier", .type = XBD_CFG_BOOL, .def = "no", .section = S_PROTOCOL,
      .off = F(feature_barrier), .help = "advertise feature-barrier" },
    { .name = "grant-mode", .type = XBD_CFG_TEXT, .arg = "auto|map|copy|persistent",
      .def = "auto", .section = S_PROTOCOL, .xs_key = XSK_GRANT_MODE, .set = set_grant_mode,
      .expect = "auto, map, copy or persistent", .help = "data grant handling" },
    { .name = "poll-us", .type = XBD_CFG_UINT, .arg = "USEC", .def = "0", .section = S_PROTOCOL,
      .off = F(poll_us), .lo = 0, .hi = 1000000,
      .help = "spin on the ring and completions before sleeping (0 = off)" },
    { .name = "stop-timeout", .type = XBD_CFG_UINT, .arg = "MS", .def = "3000",
      .section = S_LIFECYCLE, .off = F(stop_timeout_ms), .lo = 100, .hi = 9000, .unit = " ms",
      .help = "drain budget when a device closes" },
    { .name = "resize-check", .type = XBD_CFG_UINT, .arg = "MS", .def = "1000",
      .section = S_LIFECYCLE, .off = F(resize_check_ms), .zero = "off", .lo = 100,
      .hi = 3600000, .unit = " ms", .help = "check the backing stores' sizes this often for\n"
                                            "online resize; 0 = only on request" },
    { .name = "on-exit", .type = XBD_CFG_TEXT, .arg = "leave|close", .def = "leave",
      .section = S_LIFECYCLE, .set = set_on_exit, .expect = "leave or close",
      .help = "device state left on SIGTERM" },
    { .name = "state-dir", .type = XBD_CFG_TEXT, .arg = "DIR", .def = XBD_DEFAULT_STATE_DIR,
      .no_init = true, .section = S_LIFECYCLE, .set = set_state_dir,
      .expect = "an absolute directory path", .help = "owner locks and restart state" },
    { .name = "metrics-listen", .type = XBD_CFG_TEXT, .arg = "[ADDR:]PORT|none", .def = "none",
      .no_init = true, .section = S_LIFECYCLE, .set = set_metrics_listen,
      .expect = "[ADDR:]PORT, [IPV6]:PORT or none",
      .help = "serve Prometheus metrics over HTTP at /metrics\n"
              "(ADDR default 127.0.0.1)" },
#define QOS_KEY(n, fn, xk, unit, what) \
    { .name = n, .type = XBD_CFG_TEXT, .arg = "none|RATE[/BURST]", .def = "none", \
      .section = S_QOS, .xs_key = xk, .set = fn, .expect = "none or RATE[/BURST]", \
      .help = what " per second (" unit "), bucket BURST" }
    QOS_KEY("qos-iops", set_qos_iops, XSK_QOS_IOPS, "1..10000000", "requests"),
    QOS_KEY("qos-read-iops", set_qos_read_iops, XSK_QOS_READ_IOPS, "1..10000000", "reads"),
    QOS_KEY("qos-write-iops", set_qos_write_iops, XSK_QOS_WRITE_IOPS, "1..10000000", "writes"),
    QOS_KEY("qos-bps", set_qos_bps, XSK_QOS_BPS, "4096..2^40", "bytes"),
    QOS_KEY("qos-read-bps", set_qos_read_bps, XSK_QOS_READ_BPS, "4096..2^40", "bytes read"),
    QOS_KEY("qos-write-bps", set_qos_write_bps, XSK_QOS_WRITE_BPS, "4096..2^40", "bytes written"),
#undef QOS_KEY
    { .name = "seccomp", .type = XBD_CFG_TEXT, .arg = "off|log|trap|kill", .def = "trap",
      .section = S_CONFINE, .set = set_seccomp, .expect = "off, log, trap or kill",
      .help = "seccomp allow-lists of the control plane and\n"
              "the queue threads; a syscall outside one: log\n"
              "(allowed, kernel log), trap (reported, then\n"
              "killed), kill" },
    { .name = "user", .type = XBD_CFG_TEXT, .arg = "NAME|UID|auto|none", .def = "auto",
      .section = S_CONFINE, .set = set_user,
      .expect = "a user name, a uid, auto or none",
      .help = "run as this user after start-up (xenstore,\n"
              "control socket, locks); every capability dropped;\n"
              "auto: " XBD_USER " if it exists (real Xen, root)" },
    { .name = "isolation", .type = XBD_CFG_TEXT, .arg = "none|domain", .def = "none",
      .section = S_CONFINE, .set = set_isolation, .expect = "none or domain",
      .help = "domain: serve each guest domain's disks from\n"
              "its own worker process (its data planes only)" },
    { .name = "help", .type = XBD_CFG_CLI, .shortopt = 'h', .help = "this text" },
    { .name = "version", .type = XBD_CFG_CLI, .shortopt = 'V', .help = "print the version" },
};
#undef F

const struct xbd_config_key *xbd_config_keys(size_t *n)
{
    *n = ARRAY_SIZE(keys);
    return keys;
}

void xbd_config_init(struct xbd_config *c)
{
    memset(c, 0, sizeof(*c));           /* the no_init keys' defaults */
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        if (keys[i].def && !keys[i].no_init) {
            int rc = xbd_config_set(c, keys[i].name, keys[i].def, NULL, 0);
            (void)rc;                   /* t_config: every default parses */
        }
}

static const struct xbd_config_key *find_key(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
        if (!strcmp(keys[i].name, name))
            return &keys[i];
    return NULL;
}

/* "0 (online CPUs) or 1..16 pages" from the key's range. */
static void uint_expect(const struct xbd_config_key *k, char *buf, size_t len)
{
    if (k->zero)
        snprintf(buf, len, "0 (%s) or %lu..%lu%s", k->zero, k->lo, k->hi, k->unit ? k->unit : "");
    else
        snprintf(buf, len, "%lu..%lu%s", k->lo, k->hi, k->unit ? k->unit : "");
}

int xbd_config_set(struct xbd_config *c, const char *key, const char *v,
                   char *err, size_t errlen)
{
    const struct xbd_config_key *k = find_key(key);
    const char *why = NULL;
    char expect[96];
    uint64_t n;
    int rc;

    if (!k || k->type == XBD_CFG_CLI) {
        xbd_seterr(err, errlen, "unknown option '%s'", key);
        return -ENOENT;
    }
    switch (k->type) {
    case XBD_CFG_BOOL:
        if (parse_bool(v, (bool *)((char *)c + k->off)) == 0)
            return 0;
        snprintf(expect, sizeof(expect), "yes or no");
        break;
    case XBD_CFG_UINT:
        if (xbd_parse_u64(v, 10, k->zero ? 0 : k->lo, k->hi, &n) == 0 &&
            (n == 0 || n >= k->lo)) {
            *(unsigned *)((char *)c + k->off) = (unsigned)n;
            return 0;
        }
        uint_expect(k, expect, sizeof(expect));
        break;
    default:
        if (!k->optional && (!v || !*v)) {
            xbd_seterr(err, errlen, "%s: a value is required", key);
            return -EINVAL;
        }
        rc = k->set(c, v, &why);
        if (rc != -EINVAL)
            return rc;
        snprintf(expect, sizeof(expect), "%s", k->expect);
        break;
    }
    if (why)
        xbd_seterr(err, errlen, "%s: %s", key, why);
    else
        xbd_seterr(err, errlen, "%s: expected %s, got '%s'", key, expect, v ? v : "");
    return -EINVAL;
}

/* ---- config file ------------------------------------------------------------ */

struct ini_ctx {
    struct xbd_config *c;
    char *err;
    size_t errlen;
    int rc;
};

static int cfg_ini_handler(void *user, const char *section, const char *name, const char *value)
{
    struct ini_ctx *x = user;
    if (x->rc)
        return 0;
    if (section[0] && strcmp(section, CFG_SECTION)) {
        xbd_seterr(x->err, x->errlen, "unknown section [%s]", section);
        x->rc = -EINVAL;
        return 0;
    }
    const struct xbd_config_key *k = find_key(name);
    if (k && k->type == XBD_CFG_CLI) {
        xbd_seterr(x->err, x->errlen, "'%s' is not a config file key", name);
        x->rc = -EINVAL;
        return 0;
    }
    int rc = xbd_config_set(x->c, name, value, x->err, x->errlen);
    if (rc) {
        x->rc = rc == -ENOMEM ? rc : -EINVAL;
        return 0;
    }
    return 1;
}

int xbd_config_load_file(struct xbd_config *c, const char *path, bool must_exist,
                         char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        int e = errno;
        if (e == ENOENT && !must_exist)
            return 0;
        xbd_seterr(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    char msg[256] = "";
    struct ini_ctx x = { c, msg, sizeof(msg), 0 };
    int line = ini_parse_file(f, cfg_ini_handler, &x);
    fclose(f);
    if (line != 0) {
        if (x.rc == -ENOMEM)
            return -ENOMEM;
        if (line < 0) {
            xbd_seterr(err, errlen, "%s: cannot parse", path);
            return -EINVAL;
        }
        xbd_seterr(err, errlen, "%s:%d: %s", path, line, msg[0] ? msg : "syntax error");
        return -EINVAL;
    }
    int rc = set_str(&c->config_path, path);
    return rc;
}

/* ---- command line ------------------------------------------------------------ */

enum { OPT_BASE = 256, USAGE_COL = 31 };

void xbd_config_usage(FILE *out, const char *prog)
{
    fprintf(out, "Usage: %s [OPTION]...\n"
                 "Userspace Xen block backend (blkback in userland).  See xen-blkbackd(8).\n\n",
            prog);
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        const struct xbd_config_key *k = &keys[i];
        char range[96] = "";
        bool opt = k->type == XBD_CFG_BOOL || k->optional;
        int n = k->shortopt ? fprintf(out, "  -%c, --%s", k->shortopt, k->name)
                            : fprintf(out, "      --%s", k->name);
        if (k->type == XBD_CFG_BOOL)
            n += fprintf(out, "[=yes|no]");
        else if (k->arg)
            n += fprintf(out, "%s=%s%s", opt ? "[" : "", k->arg, opt ? "]" : "");
        n += fprintf(out, "%*s", n < USAGE_COL - 2 ? USAGE_COL - n : 2, "");
        for (const char *h = k->help; *h; h++, n++)
            if (*h == '\n')
                n = fprintf(out, "\n%*s", USAGE_COL, "") - 2;
            else
                fputc(*h, out);
        if (k->type == XBD_CFG_UINT)
            uint_expect(k, range, sizeof(range));
        if (range[0] || k->def) {
            char tail[160];
            int l = snprintf(tail, sizeof(tail), "(%s%s%s%s)", range, range[0] && k->def ? "; " : "",
                             k->def ? "default " : "", k->def ? k->def : "");
            if (n + 1 + l > 79)
                fprintf(out, "\n%*s%s", USAGE_COL, "", tail);
            else
                fprintf(out, " %s", tail);
        }
        if (k->xs_key)
            fprintf(out, "\n%*sper device: backend key %s", USAGE_COL, "", k->xs_key);
        fputc('\n', out);
    }
}

/* Find the --config/-c argument without disturbing getopt. */
static const char *find_config_arg(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--"))
            break;
        if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            if (i + 1 < argc)
                path = argv[++i];
        } else if (!strncmp(a, "--config=", 9)) {
            path = a + 9;
        } else if (!strncmp(a, "-c", 2) && a[1] == 'c') {
            path = a + 2;
        }
    }
    return path;
}

int xbd_config_parse_args(struct xbd_config *c, int argc, char **argv,
                          FILE *out, char *err, size_t errlen)
{
    const char *prog = argc > 0 && argv[0] ? argv[0] : "xen-blkbackd";
    const char *slash = strrchr(prog, '/');
    if (slash)
        prog = slash + 1;

    const char *cfg = find_config_arg(argc, argv);
    int rc = xbd_config_load_file(c, cfg ? cfg : XBD_DEFAULT_CONFIG, cfg != NULL, err, errlen);
    if (rc)
        return rc == -ENOMEM ? rc : (rc == -ENOENT ? -ENOENT : -EINVAL);

    struct option opts[ARRAY_SIZE(keys) + 1];
    char shortopts[2 * ARRAY_SIZE(keys) + 2] = ":";
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        const struct xbd_config_key *k = &keys[i];
        int has = k->type == XBD_CFG_BOOL || k->optional ? optional_argument
                  : k->arg ? required_argument : no_argument;
        opts[i] = (struct option){ k->name, has, NULL, k->shortopt ? k->shortopt : OPT_BASE + (int)i };
        if (k->shortopt) {
            size_t l = strlen(shortopts);
            shortopts[l] = k->shortopt;
            shortopts[l + 1] = has == required_argument ? ':' : 0;
            shortopts[l + 1 + (has == required_argument)] = 0;
        }
    }
    opts[ARRAY_SIZE(keys)] = (struct option){ 0 };

    optind = 0;                 /* glibc: full re-initialisation */
    opterr = 0;
    int ch, idx;
    while ((ch = getopt_long(argc, argv, shortopts, opts, &idx)) != -1) {
        const char *name = NULL;
        if (ch == ':') {
            xbd_seterr(err, errlen, "option '%s' needs a value", argv[optind - 1]);
            return -EINVAL;
        }
        if (ch == '?') {
            if (optopt)
                xbd_seterr(err, errlen, "unknown option '-%c'", optopt);
            else
                xbd_seterr(err, errlen, "unknown option '%s'", argv[optind - 1]);
            return -EINVAL;
        }
        if (ch >= OPT_BASE)
            name = keys[ch - OPT_BASE].name;
        for (size_t i = 0; !name && i < ARRAY_SIZE(keys); i++)
            if (keys[i].shortopt == ch)
                name = keys[i].name;
        if (!strcmp(name, "help")) {
            xbd_config_usage(out, prog);
            return 1;
        }
        if (!strcmp(name, "version")) {
            fprintf(out, "xen-blkbackd " XBD_VERSION "\n");
            return 1;
        }
        if (strcmp(name, "config")) {       /* the file is loaded already */
            rc = xbd_config_set(c, name, optarg, err, errlen);
            if (rc)
                return rc == -ENOMEM ? rc : -EINVAL;
        }
    }
    if (optind < argc) {
        xbd_seterr(err, errlen, "unexpected argument '%s'", argv[optind]);
        return -EINVAL;
    }
    return 0;
}

/* ---- resolved values ----------------------------------------------------------- */

const char *xbd_config_user(const struct xbd_config *c, const char **why)
{
    *why = NULL;
    if (!c->user || strcmp(c->user, "auto"))
        return c->user;
    if (xbd_config_is_sim(c) || geteuid() != 0)
        return NULL;
    uid_t uid;
    gid_t gid;
    if (confine_user_lookup(XBD_USER, &uid, &gid) == 0)
        return XBD_USER;
    *why = "user = auto: no user " XBD_USER ", staying root (the packages make it; after make "
           "install: systemd-sysusers xen-blkbackd.conf, then udevadm trigger; user = none says so)";
    return NULL;
}

bool xbd_config_is_sim(const struct xbd_config *c)
{
    return c->xen && !strncmp(c->xen, "sim:", 4);
}

const char *xbd_config_sim_arg(const struct xbd_config *c)
{
    return xbd_config_is_sim(c) ? c->xen + 4 : NULL;
}

int xbd_config_sim_domid(const struct xbd_config *c)
{
    const char *a = xbd_config_sim_arg(c);
    unsigned long d;
    if (!a || sim_opt(a, "domid", 0x7ff0, &d))
        return -1;
    return (int)d;
}

bool xbd_config_wait_hotplug(const struct xbd_config *c)
{
    if (c->wait_hotplug >= 0)
        return c->wait_hotplug;
    return !xbd_config_is_sim(c);
}

unsigned xbd_config_max_queues(const struct xbd_config *c)
{
    if (c->max_queues)
        return c->max_queues;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > XBD_MAX_QUEUES ? XBD_MAX_QUEUES : (unsigned)n;
}

const char *xbd_config_state_dir(const struct xbd_config *c, char *buf, size_t len)
{
    const char *a = xbd_config_sim_arg(c);
    if (c->state_dir)
        snprintf(buf, len, "%s", c->state_dir);
    else if (a)
        snprintf(buf, len, "%.*s/run", (int)strcspn(a, ","), a);
    else
        snprintf(buf, len, "%s", XBD_DEFAULT_STATE_DIR);
    return buf;
}
