/*
 * config.c - defaults, config file (INI via libinih) and command line for
 * xen-blkbackd.  One table of keys serves both: a long option --foo=V is the
 * config key foo = V.
 */
#include "config.h"
#include "backend.h"                    /* metrics_listen_parse */

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <sys/socket.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

int xbd_parse_grant_mode(const char *s, enum grant_mode *out)
{
    static const struct { const char *name; enum grant_mode mode; } m[] = {
        { "auto", GRANT_MODE_AUTO }, { "map", GRANT_MODE_MAP },
        { "copy", GRANT_MODE_COPY }, { "persistent", GRANT_MODE_PERSISTENT },
    };
    for (unsigned i = 0; s && i < sizeof(m) / sizeof(m[0]); i++)
        if (!strcmp(s, m[i].name)) {
            *out = m[i].mode;
            return 0;
        }
    return -EINVAL;
}

#define CFG_SECTION "xen-blkbackd"

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void xbd_config_init(struct xbd_config *c)
{
    memset(c, 0, sizeof(*c));
    c->log_target = LOG_TARGET_STDERR;
    c->log_level = LOG_INFO;
    c->type_vbd = true;
    c->domid = -1;
    c->wait_hotplug = -1;
    c->grant_mode = GRANT_MODE_AUTO;
    c->max_ring_page_order = 4;         /* XENBUS_MAX_RING_GRANT_ORDER of
                                           torvalds/linux:include/xen/xenbus.h@v6.1 */
    c->max_queues = 0;                  /* online CPUs, as Linux (docs/protocol.md §1.2) */
    c->max_indirect_segs = 256;         /* Linux MAX_INDIRECT_SEGMENTS
                                           (docs/protocol.md §1.2) */
    c->persistent = true;               /* Linux default feature_persistent=1 */
    c->persistent_cap = 0;                      /* auto: sized from the ring */
    c->poll_us = 0;
    c->feature_barrier = false;         /* docs/protocol.md §0.3 (decision-flush) */
    c->direct_io = true;
    c->stop_timeout_ms = 3000;          /* libxl waits 10 s for Closed */
    c->resize_check_ms = 1000;          /* one fstat/ioctl per device per second */
    c->on_exit = XBD_ON_EXIT_LEAVE;
}

void xbd_config_free(struct xbd_config *c)
{
    free(c->config_path);
    free(c->pidfile);
    free(c->xen);
    free(c->log_path);
    free(c->control_path);
    free(c->state_dir);
    free(c->metrics_listen);
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

/* Strict unsigned decimal in [lo, hi]. */
static int parse_uint(const char *v, unsigned long lo, unsigned long hi, unsigned long *out)
{
    if (!v || !*v || *v == '-' || *v == '+')
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (errno || *end || x < lo || x > hi)
        return -EINVAL;
    *out = x;
    return 0;
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

static int parse_level(const char *v, int *out)
{
    static const struct { const char *n; int l; } t[] = {
        { "err", LOG_ERR }, { "error", LOG_ERR }, { "warning", LOG_WARNING },
        { "warn", LOG_WARNING }, { "notice", LOG_NOTICE }, { "info", LOG_INFO },
        { "debug", LOG_DEBUG },
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (!strcasecmp(v, t[i].n)) {
            *out = t[i].l;
            return 0;
        }
    unsigned long n;
    if (parse_uint(v, LOG_ERR, LOG_DEBUG, &n) == 0) {
        *out = (int)n;
        return 0;
    }
    return -EINVAL;
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

int xbd_config_set(struct xbd_config *c, const char *key, const char *v,
                   char *err, size_t errlen)
{
    unsigned long n;
    bool b;
    int rc;

#define BAD(...) do { seterr(err, errlen, __VA_ARGS__); return -EINVAL; } while (0)
#define NEEDV() do { if (!v || !*v) BAD("%s: a value is required", key); } while (0)

    if (!strcmp(key, "foreground")) {
        if (parse_bool(v, &b))
            BAD("foreground: expected yes or no, got '%s'", v);
        if (!b)
            BAD("foreground: xen-blkbackd always runs in the foreground "
                "(use systemd Type=notify or --pidfile)");
        return 0;
    }
    if (!strcmp(key, "pidfile")) {
        NEEDV();
        return set_str(&c->pidfile, strcmp(v, "none") ? v : NULL);
    }
    if (!strcmp(key, "xen")) {
        NEEDV();
        if (check_xen(v))
            BAD("xen: expected libxen or sim:DIR[,domid=N][,unmap_delay_us=N], got '%s'", v);
        return set_str(&c->xen, v);
    }
    if (!strcmp(key, "log")) {
        NEEDV();
        c->log_given = true;
        if (!strcmp(v, "journal")) {
            c->log_target = LOG_TARGET_JOURNAL;
            return set_str(&c->log_path, NULL);
        }
        if (!strcmp(v, "stderr")) {
            c->log_target = LOG_TARGET_STDERR;
            return set_str(&c->log_path, NULL);
        }
        if (!strcmp(v, "syslog")) {
            c->log_target = LOG_TARGET_SYSLOG;
            return set_str(&c->log_path, NULL);
        }
        if (!strncmp(v, "file:", 5) && v[5] == '/') {
            c->log_target = LOG_TARGET_FILE;
            return set_str(&c->log_path, v + 5);
        }
        BAD("log: expected journal, stderr, syslog or file:/ABSOLUTE/PATH, got '%s'", v);
    }
    if (!strcmp(key, "log-level")) {
        NEEDV();
        if (parse_level(v, &c->log_level))
            BAD("log-level: expected err, warning, notice, info or debug, got '%s'", v);
        return 0;
    }
    if (!strcmp(key, "control")) {
        NEEDV();
        if (strcmp(v, "none") && v[0] != '/')
            BAD("control: expected an absolute socket path or none, got '%s'", v);
        if (strlen(v) >= 108)
            BAD("control: socket path too long (max 107 bytes)");
        return set_str(&c->control_path, strcmp(v, "none") ? v : "");
    }
    if (!strcmp(key, "backend-types")) {
        NEEDV();
        rc = parse_types(v, &c->type_vbd, &c->type_vbd3);
        if (rc == -EINVAL)
            BAD("backend-types: expected a list of vbd, vbd3, got '%s'", v);
        return rc;
    }
    if (!strcmp(key, "domid")) {
        NEEDV();
        if (!strcmp(v, "auto")) {
            c->domid = -1;
            return 0;
        }
        if (parse_uint(v, 0, 32767, &n))
            BAD("domid: expected auto or 0..32767, got '%s'", v);
        c->domid = (int)n;
        return 0;
    }
    if (!strcmp(key, "wait-hotplug")) {
        if (v && !strcmp(v, "auto")) {
            c->wait_hotplug = -1;
            return 0;
        }
        if (parse_bool(v, &b))
            BAD("wait-hotplug: expected yes, no or auto, got '%s'", v);
        c->wait_hotplug = b;
        return 0;
    }
    if (!strcmp(key, "allow-test-engines")) {
        if (parse_bool(v, &c->allow_test_engines))
            BAD("allow-test-engines: expected yes or no, got '%s'", v);
        return 0;
    }
    if (!strcmp(key, "grant-mode")) {
        NEEDV();
        if (xbd_parse_grant_mode(v, &c->grant_mode))
            BAD("grant-mode: expected auto, map, copy or persistent, got '%s'", v);
        return 0;
    }
    if (!strcmp(key, "max-ring-page-order")) {
        if (parse_uint(v, 0, XBD_MAX_RING_ORDER, &n))
            BAD("max-ring-page-order: expected 0..%d, got '%s'", XBD_MAX_RING_ORDER, v ? v : "");
        c->max_ring_page_order = (unsigned)n;
        return 0;
    }
    if (!strcmp(key, "max-queues")) {
        if (parse_uint(v, 0, XBD_MAX_QUEUES, &n))
            BAD("max-queues: expected 0 (online CPUs) or 1..%d, got '%s'", XBD_MAX_QUEUES, v ? v : "");
        c->max_queues = (unsigned)n;
        return 0;
    }
    if (!strcmp(key, "max-indirect-segments")) {
        if (parse_uint(v, 0, XBD_CFG_MAX_INDIRECT_SEGS, &n) ||
            (n > 0 && n <= BLKIF_MAX_SEGMENTS_PER_REQUEST))
            BAD("max-indirect-segments: expected 0 (no INDIRECT) or %d..%d, got '%s'",
                BLKIF_MAX_SEGMENTS_PER_REQUEST + 1, XBD_CFG_MAX_INDIRECT_SEGS, v ? v : "");
        c->max_indirect_segs = (unsigned)n;
        return 0;
    }
    if (!strcmp(key, "persistent")) {
        if (parse_bool(v, &c->persistent))
            BAD("persistent: expected yes or no, got '%s'", v);
        return 0;
    }
    if (!strcmp(key, "persistent-cap")) {
        if (parse_uint(v, 0, 65536, &n))
            BAD("persistent-cap: expected 0 (auto) or 1..65536 pages, got '%s'", v ? v : "");
        c->persistent_cap = (unsigned)n;
        return 0;
    }
    if (!strcmp(key, "poll-us")) {
        if (parse_uint(v, 0, 1000000, &n))
            BAD("poll-us: expected 0..1000000, got '%s'", v ? v : "");
        c->poll_us = (unsigned)n;
        return 0;
    }
    if (!strcmp(key, "feature-barrier")) {
        if (parse_bool(v, &c->feature_barrier))
            BAD("feature-barrier: expected yes or no, got '%s'", v);
        return 0;
    }
    if (!strcmp(key, "direct-io")) {
        if (parse_bool(v, &c->direct_io))
            BAD("direct-io: expected yes or no, got '%s'", v);
        return 0;
    }
    if (!strcmp(key, "stop-timeout")) {
        if (parse_uint(v, 100, 9000, &n))
            BAD("stop-timeout: expected 100..9000 ms, got '%s'", v ? v : "");
        c->stop_timeout_ms = (unsigned)n;
        return 0;
    }
    if (!strcmp(key, "resize-check")) {
        if (parse_uint(v, 0, 3600000, &n) || (n > 0 && n < 100))
            BAD("resize-check: expected 0 (off) or 100..3600000 ms, got '%s'", v ? v : "");
        c->resize_check_ms = (unsigned)n;
        return 0;
    }
    if (!strcmp(key, "state-dir")) {
        NEEDV();
        if (v[0] != '/')
            BAD("state-dir: expected an absolute directory path, got '%s'", v);
        if (strlen(v) >= 200)
            BAD("state-dir: path too long (max 199 bytes)");
        return set_str(&c->state_dir, v);
    }
    if (!strcmp(key, "on-exit")) {
        NEEDV();
        if (!strcmp(v, "leave")) c->on_exit = XBD_ON_EXIT_LEAVE;
        else if (!strcmp(v, "close")) c->on_exit = XBD_ON_EXIT_CLOSE;
        else BAD("on-exit: expected leave or close, got '%s'", v);
        return 0;
    }
    if (!strcmp(key, "metrics-listen")) {
        NEEDV();
        if (!strcmp(v, "none"))
            return set_str(&c->metrics_listen, NULL);
        struct sockaddr_storage ss;
        unsigned sl;
        char why[300];
        if (metrics_listen_parse(v, &ss, &sl, why, sizeof(why)))
            BAD("metrics-listen: %s", why);
        return set_str(&c->metrics_listen, v);
    }
#undef NEEDV
#undef BAD
    seterr(err, errlen, "unknown option '%s'", key);
    return -ENOENT;
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
        seterr(x->err, x->errlen, "unknown section [%s]", section);
        x->rc = -EINVAL;
        return 0;
    }
    if (!strcmp(name, "config") || !strcmp(name, "help") || !strcmp(name, "version")) {
        seterr(x->err, x->errlen, "'%s' is not a config file key", name);
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
        seterr(err, errlen, "%s: %s", path, strerror(e));
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
            seterr(err, errlen, "%s: cannot parse", path);
            return -EINVAL;
        }
        seterr(err, errlen, "%s:%d: %s", path, line, msg[0] ? msg : "syntax error");
        return -EINVAL;
    }
    int rc = set_str(&c->config_path, path);
    return rc;
}

/* ---- command line ------------------------------------------------------------ */

enum { OPT_BASE = 256 };

/* long name, has_arg; the index into this table (+ OPT_BASE) is getopt's val. */
static const struct option long_opts[] = {
    { "config",                 required_argument, NULL, 'c' },
    { "foreground",             no_argument,       NULL, 'F' },
    { "help",                   no_argument,       NULL, 'h' },
    { "version",                no_argument,       NULL, 'V' },
    { "pidfile",                required_argument, NULL, OPT_BASE + 4 },
    { "xen",                    required_argument, NULL, OPT_BASE + 5 },
    { "log",                    required_argument, NULL, OPT_BASE + 6 },
    { "log-level",              required_argument, NULL, OPT_BASE + 7 },
    { "control",                required_argument, NULL, OPT_BASE + 8 },
    { "backend-types",          required_argument, NULL, OPT_BASE + 9 },
    { "domid",                  required_argument, NULL, OPT_BASE + 10 },
    { "wait-hotplug",           optional_argument, NULL, OPT_BASE + 11 },
    { "allow-test-engines",     optional_argument, NULL, OPT_BASE + 12 },
    { "grant-mode",             required_argument, NULL, OPT_BASE + 13 },
    { "max-ring-page-order",    required_argument, NULL, OPT_BASE + 14 },
    { "max-queues",             required_argument, NULL, OPT_BASE + 15 },
    { "max-indirect-segments",  required_argument, NULL, OPT_BASE + 16 },
    { "persistent",             optional_argument, NULL, OPT_BASE + 17 },
    { "persistent-cap",         required_argument, NULL, OPT_BASE + 18 },
    { "poll-us",                required_argument, NULL, OPT_BASE + 19 },
    { "feature-barrier",        optional_argument, NULL, OPT_BASE + 20 },
    { "direct-io",              optional_argument, NULL, OPT_BASE + 21 },
    { "stop-timeout",           required_argument, NULL, OPT_BASE + 22 },
    { "on-exit",                required_argument, NULL, OPT_BASE + 23 },
    { "state-dir",              required_argument, NULL, OPT_BASE + 24 },
    { "resize-check",           required_argument, NULL, OPT_BASE + 25 },
    { "metrics-listen",         required_argument, NULL, OPT_BASE + 26 },
    { NULL, 0, NULL, 0 },
};

void xbd_config_usage(FILE *out, const char *prog)
{
    fprintf(out,
"Usage: %s [OPTION]...\n"
"Userspace Xen block backend (blkback in userland).  See xen-blkbackd(8).\n"
"\n"
"  -c, --config=FILE            config file (default " XBD_DEFAULT_CONFIG ", if present)\n"
"  -F, --foreground             accepted for compatibility: always in the foreground\n"
"      --pidfile=PATH           write the pid to PATH\n"
"      --xen=libxen|sim:DIR[,domid=N][,unmap_delay_us=N]  Xen services: real or simulated host\n"
"      --log=journal|stderr|syslog|file:PATH  log target (default journal when\n"
"                               stderr is the journal's stream, else stderr)\n"
"      --log-level=LEVEL        err, warning, notice, info (default), debug\n"
"      --control=PATH|none      control socket (default " XBD_DEFAULT_CONTROL ")\n"
"      --backend-types=vbd[,vbd3]  xenstore backend kinds to serve (default vbd)\n"
"      --domid=N|auto           our domid (default: xenstore `domid`)\n"
"      --wait-hotplug=yes|no|auto  connect only after hotplug-status=connected\n"
"                               (auto: yes under libxen, no under sim)\n"
"      --allow-test-engines[=yes|no]  allow filter engines (error:, delay:) in params\n"
"      --grant-mode=auto|map|copy|persistent  data grant handling (default auto)\n"
"      --max-ring-page-order=N  0..%d (default 4)\n"
"      --max-queues=N           1..%d, 0 = online CPUs (default 0)\n"
"      --max-indirect-segments=N  0 = no INDIRECT, else 12..%d (default 256)\n"
"      --persistent[=yes|no]    advertise feature-persistent (default yes)\n"
"      --persistent-cap=PAGES   persistent grants kept per queue; 0 = auto (default):\n"
"                               ring slots x segments, 1056..8192\n"
"      --poll-us=USEC           poll the ring before sleeping (default 0)\n"
"      --feature-barrier[=yes|no]  advertise feature-barrier (default no)\n"
"      --direct-io[=yes|no]     O_DIRECT on the backing store (default yes)\n"
"      --stop-timeout=MS        drain budget when a device closes (default 3000)\n"
"      --on-exit=leave|close    device state left on SIGTERM (default leave)\n"
"      --state-dir=DIR          owner locks and restart state (default " XBD_DEFAULT_STATE_DIR ")\n"
"      --resize-check=MS        check the backing stores' sizes this often for online\n"
"                               resize; 0 = only on request (default 1000)\n"
"      --metrics-listen=[ADDR:]PORT|none  serve Prometheus metrics over HTTP at\n"
"                               /metrics (ADDR default 127.0.0.1; default none)\n"
"  -h, --help                   this text\n"
"  -V, --version                print the version\n",
            prog, XBD_MAX_RING_ORDER, XBD_MAX_QUEUES, XBD_CFG_MAX_INDIRECT_SEGS);
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

    optind = 0;                 /* glibc: full re-initialisation */
    opterr = 0;
    int ch, idx;
    while ((ch = getopt_long(argc, argv, ":c:FhV", long_opts, &idx)) != -1) {
        switch (ch) {
        case 'c':
            break;              /* already loaded */
        case 'F':
            break;
        case 'h':
            xbd_config_usage(out, prog);
            return 1;
        case 'V':
            fprintf(out, "xen-blkbackd " XBD_VERSION "\n");
            return 1;
        case ':':
            seterr(err, errlen, "option '%s' needs a value", argv[optind - 1]);
            return -EINVAL;
        case '?':
            if (optopt)
                seterr(err, errlen, "unknown option '-%c'", optopt);
            else
                seterr(err, errlen, "unknown option '%s'", argv[optind - 1]);
            return -EINVAL;
        default:
            if (ch >= OPT_BASE && ch - OPT_BASE < (int)(sizeof(long_opts) / sizeof(long_opts[0]))) {
                rc = xbd_config_set(c, long_opts[ch - OPT_BASE].name, optarg, err, errlen);
                if (rc)
                    return rc == -ENOMEM ? rc : -EINVAL;
                break;
            }
            seterr(err, errlen, "internal: option %d", ch);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        seterr(err, errlen, "unexpected argument '%s'", argv[optind]);
        return -EINVAL;
    }
    return 0;
}

/* ---- resolved values ----------------------------------------------------------- */

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
