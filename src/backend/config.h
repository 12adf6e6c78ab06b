/*
 * config.h - the daemon's settings: defaults, the INI config file (libinih)
 * and the command line (getopt_long).  Every command-line option except
 * --config, --help and --version has a config key of the same name; the
 * command line overrides the file.  See xen-blkbackd(8), xen-blkbackd.conf(5).
 */
#ifndef XBD_BACKEND_CONFIG_H
#define XBD_BACKEND_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "dataplane.h"
#include "log.h"
#include "confine.h"

#define XBD_VERSION             "0.1.0"
#define XBD_DEFAULT_CONFIG      "/etc/xen/xen-blkbackd.conf"
#define XBD_DEFAULT_CONTROL     "/run/xen-blkbackd/control.sock"
#define XBD_DEFAULT_STATE_DIR   "/run/xen-blkbackd"     /* tmpfs: locks, restart state */
#define XBD_USER                "xen-blkbackd"  /* --user=auto: conf/xen-blkbackd.sysusers */
/* Most INDIRECT segments the data plane takes (one engine I/O holds at most
 * UIO_MAXIOV = 1024 iovecs: src/ring/queue.h DPQ_MAX_SEGS; dp_create refuses
 * more).  The protocol allows 8 x 512 = 4096 (blkif.h). */
#define XBD_CFG_MAX_INDIRECT_SEGS 1024

enum xbd_on_exit {
    XBD_ON_EXIT_LEAVE = 0,      /* keep xenstore state; a restarted daemon reattaches */
    XBD_ON_EXIT_CLOSE,          /* write Closed for every device */
};

enum xbd_isolation {
    XBD_ISOLATION_NONE = 0,     /* every data plane in the daemon's process */
    XBD_ISOLATION_DOMAIN,       /* one worker process per guest domain (worker.c) */
};

struct xbd_config {
    char *config_path;          /* file read (NULL: none) */
    char *pidfile;              /* NULL: none */
    char *xen;                  /* "libxen" or "sim:DIR[,domid=N]" */
    enum log_target log_target;
    bool log_given;             /* `log` set by the file or the command line; else
                                   main() picks journal under systemd */
    char *log_path;             /* LOG_TARGET_FILE only */
    int log_level;              /* LOG_ERR..LOG_DEBUG */
    unsigned debug_cats;        /* --debug: LOG_CAT_* (log.h) */
    char *control_path;         /* NULL: XBD_DEFAULT_CONTROL; "": none */
    bool type_vbd, type_vbd3;   /* backend kinds served */
    int domid;                  /* -1: sim domid=, else xenstore `domid`, else 0 */
    int wait_hotplug;           /* -1 auto (yes under libxen, no under sim), 0, 1 */
    bool allow_test_engines;    /* filter engines in params (engine.h) */
    enum grant_mode grant_mode;
    unsigned max_ring_page_order;   /* 0..XBD_MAX_RING_ORDER; advertised if > 0 */
    unsigned max_queues;            /* 0 = online CPUs (capped); advertised if > 1 */
    unsigned max_indirect_segs;     /* 0 = no INDIRECT; else 11..BLKIF_MAX_INDIRECT_SEGS_PROTO */
    bool persistent;                /* advertise feature-persistent */
    unsigned persistent_cap;        /* pages per queue; 0 = auto (dataplane.h) */
    unsigned poll_us;               /* data plane ring polling before sleeping */
    bool feature_barrier;           /* docs/protocol.md §0.3: default off */
    bool direct_io;                 /* O_DIRECT on the backing store */
    unsigned stop_timeout_ms;       /* dp_stop drain budget */
    unsigned resize_check_ms;       /* poll the stores' sizes this often; 0 = off */
    unsigned hotplug_warn_ms;       /* say so once after this long without hotplug-status; 0 = off */
    enum xbd_on_exit on_exit;
    char *state_dir;            /* NULL: XBD_DEFAULT_STATE_DIR, or <sim dir>/run under sim */
    char *metrics_listen;       /* HTTP /metrics at [ADDR:]PORT; NULL: off */
    struct dp_qos qos;          /* QoS limits of every vbd (backend keys qos-* override) */
    enum confine_mode seccomp;  /* control plane and queue allow-lists (confine.h); default off */
    char *user;                 /* run as this user after start-up; NULL: stay root;
                                   "auto": xbd_config_user() decides */
    enum xbd_isolation isolation;   /* --isolation; default none */
};

/*
 * One option / config key (config.c holds the table, in usage order).
 * XBD_CFG_BOOL: a bool field at `off`; the argument is optional (yes).
 * XBD_CFG_UINT: an unsigned field at `off` in lo..hi, or 0 if `zero` names
 *   what 0 means.
 * XBD_CFG_TEXT: set() parses the value (optional: the argument may be left
 *   out on the command line).
 * XBD_CFG_CLI: a command-line option only (--config, --help, --version).
 */
enum xbd_cfg_type { XBD_CFG_BOOL, XBD_CFG_UINT, XBD_CFG_TEXT, XBD_CFG_CLI };

struct xbd_config_key {
    const char *name;           /* long option = config key */
    enum xbd_cfg_type type;
    char shortopt;              /* 0: none */
    bool optional;              /* XBD_CFG_TEXT: the value may be left out */
    bool no_init;               /* the zero state stands for def (computed at use) */
    const char *arg;            /* usage: the value's syntax */
    const char *def;            /* default, as conf/xen-blkbackd.conf writes it; NULL: CLI */
    const char *section;        /* "# ---- <section>" heading of conf/xen-blkbackd.conf */
    const char *xs_key;         /* backend key that overrides it per device (xs_keys.h) */
    const char *help;           /* usage text; '\n' continues on the next line */
    size_t off;                 /* BOOL, UINT: offsetof(struct xbd_config, field) */
    unsigned long lo, hi;       /* UINT: range */
    const char *zero;           /* UINT: what 0 means, if allowed outside lo..hi */
    const char *unit;           /* UINT: " ms", " pages" in messages */
    const char *expect;         /* TEXT: "expected ..." in the error message */
    /* TEXT: 0, -EINVAL (*why: a message other than `expect`), -ENOMEM. */
    int (*set)(struct xbd_config *c, const char *v, const char **why);
};

/* The table: *n entries. */
const struct xbd_config_key *xbd_config_keys(size_t *n);

/* Fill in the built-in defaults (no allocation failure possible: strings are
 * duplicated lazily; call xbd_config_free at the end anyway). */
void xbd_config_init(struct xbd_config *c);
void xbd_config_free(struct xbd_config *c);

/*
 * Set one option by its config key / long option name ("max-queues", ...)
 * from a string value.  0, or -EINVAL (bad value: message in err), -ENOENT
 * (unknown key), -ENOMEM.  value NULL is allowed for boolean keys ("yes").
 */
int xbd_config_set(struct xbd_config *c, const char *key, const char *value,
                   char *err, size_t errlen);

/*
 * Read an INI file: keys at top level or in section [xen-blkbackd].
 * must_exist=false: a missing file is not an error (the default path).
 * 0, -ENOENT (missing and must_exist), -EINVAL (syntax or bad value; message
 * in err names the line), -errno from fopen.
 */
int xbd_config_load_file(struct xbd_config *c, const char *path, bool must_exist,
                         char *err, size_t errlen);

/*
 * Parse the command line: find --config/-c first and load that file (or the
 * default one if it exists), then apply the options (they override the file).
 * Returns 0 to run, 1 when --help or --version was printed to `out` (exit 0),
 * -EINVAL / -ENOENT on error (message in err; exit 2).  Resets getopt state,
 * so it may be called more than once in a process.
 */
int xbd_config_parse_args(struct xbd_config *c, int argc, char **argv,
                          FILE *out, char *err, size_t errlen);

/* Resolved values. */
bool xbd_config_is_sim(const struct xbd_config *c);

/*
 * The user to become after start-up (--user): NULL for none; for "auto"
 * XBD_USER when the daemon runs as root against real Xen (not --xen=sim)
 * and that user exists (getpwnam), else NULL with *why set (a static
 * string for one notice; NULL when there is nothing to say).
 */
const char *xbd_config_user(const struct xbd_config *c, const char **why);
/* "DIR[,domid=N]" part after "sim:" (NULL if not sim). */
const char *xbd_config_sim_arg(const struct xbd_config *c);
/* domid=N from the sim argument, or -1. */
int xbd_config_sim_domid(const struct xbd_config *c);
bool xbd_config_wait_hotplug(const struct xbd_config *c);
unsigned xbd_config_max_queues(const struct xbd_config *c);
/*
 * The directory of the owner locks and the per-vbd restart state (a tmpfs:
 * it must outlive the daemon, not the host): --state-dir, else
 * XBD_DEFAULT_STATE_DIR, else under the simulated host "<sim dir>/run" so
 * that tests on separate simulated hosts never share it.  Written into buf
 * (len bytes); returns buf.
 */
const char *xbd_config_state_dir(const struct xbd_config *c, char *buf, size_t len);

/* Print the usage text. */
void xbd_config_usage(FILE *out, const char *prog);

#endif
