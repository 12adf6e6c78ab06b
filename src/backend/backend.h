/*
 * backend.h - the control plane (private to src/backend/ and src/main.c):
 * the event loop (backend.c), the per-device xenbus state machine (vbd.c),
 * xenstore helpers (xs_tx.c) and the control socket (control.c).
 *
 * Everything runs on the main thread except the data plane's queue threads,
 * which the control plane reaches only through dataplane.h.
 */
#ifndef XBD_BACKEND_H
#define XBD_BACKEND_H

#include <stdbool.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>
#include "config.h"
#include "dataplane.h"
#include "engine.h"
#include "stats.h"
#include "xen_ops.h"

struct control;
struct metrics_http;
struct worker;
struct vdp;
struct sockaddr_storage;

#define OWNER_MAX_KINDS 2           /* vbd, vbd3 */

/* systemd notification state (notify.c). */
struct xbd_notify {
    uint64_t wd_interval_us;        /* WATCHDOG=1 every this long; 0: no watchdog */
    uint64_t next_ping_us;          /* CLOCK_MONOTONIC */
    unsigned ndev, nconn;           /* last STATUS= sent */
};

struct backend {
    const struct xbd_config *cfg;
    const struct xen_ops *ops;
    struct xen_host *host;
    struct xen_xs *xs;
    xen_domid_t self;               /* our domid */
    char home[32];                  /* "/local/domain/<self>" */
    bool wait_hotplug;              /* resolved --wait-hotplug */
    unsigned max_queues;            /* resolved --max-queues (1..XBD_MAX_QUEUES) */
    struct vbd *vbds;               /* every device we track */
    unsigned next_serial;           /* watch tokens: "xbd:vbd:<serial>" */
    int sig_fd;                     /* signalfd: backend_sigset() */
    struct control *ctl;            /* NULL when --control=none */
    struct metrics_http *mhttp;     /* NULL unless --metrics-listen */
    bool stopping;
    int lock_fd[OWNER_MAX_KINDS];   /* owner locks, by index in backend.c kinds[]; -1 */
    int base_log_level;             /* SIGUSR2 toggles between this and LOG_DEBUG */
    struct xbd_notify notify;
    uint64_t next_size_check_ms;    /* CLOCK_MONOTONIC; 0: not scheduled (vbd_resize.c) */
    struct admit_refusal *refused;  /* directories we do not take on (admit.c) */
    struct worker *workers;         /* --isolation=domain: one per guest domain (worker.c) */
};

/* A mapped statistics file of a vbd3 device (td3_stats.c). */
#define TD3_PATH_MAX 256
struct td3_file {
    struct td3_stats *mem;          /* one page, MAP_SHARED; NULL: none */
    char path[TD3_PATH_MAX];
};

/* The negotiated connection of a vbd (valid while v->dp != NULL). */
/* What only the control plane knows of a connection; what the data plane
 * runs with (protocol, queues, ring order, features, the resolved grant
 * mode) is dp_get_info(v->dp). */
struct vbd_conn {
    uint64_t sectors;               /* advertised `sectors` (512-byte units); the data
                                       plane may already take more (vbd_resize) */
    uint32_t phys_sector_size;      /* bytes, advertised physical-sector-size */
    unsigned info;                  /* VDISK_* */
    enum grant_mode grant_mode;     /* asked: --grant-mode or the backend key */
};

struct vbd {
    struct vbd *next;
    struct backend *be;
    char kind[8];                   /* "vbd" or "vbd3" */
    xen_domid_t fe_domid;
    unsigned devid;
    unsigned serial;
    char name[48];                  /* "vbd <domid>/<devid>" */
    char vdev[16];                  /* the toolstack's `dev` ("xvdb"); "" unknown */
    struct log_dev log_id;          /* name, domid, devid, vdev: VLOG */
    char token[32];                 /* "xbd:vbd:<serial>" */
    char *be_path;                  /* /local/domain/<self>/backend/<kind>/<fe>/<devid> */
    char *fe_path;                  /* from `frontend`; NULL until known */
    bool watching_be, watching_fe;

    /* last observed values (-1: missing) */
    int be_state, fe_state, online;
    bool hotplug_connected;
    /* monotonic ms since the frontend is ready and the device waits for
     * hotplug-status (0 = not waiting); the warning about it was logged */
    uint64_t hotplug_wait_ms;
    bool hotplug_warned;

    bool fe_seen;                   /* the frontend's state node existed once */
    bool error_written;             /* the Linux-style error node is ours to remove */
    bool finished;                  /* to be freed by the loop */
    bool fatal;                     /* vbd_fatal() ran; waits for the frontend to close */
    char last_error[320];
    char *params;                   /* last params connected with */
    char mode[4];

    struct engine *engine;
    struct engine_store_id store_id;    /* of engine's store, if store_id_ok */
    bool store_id_ok;
    /* A reattach waiting for its store to be released (vbd_connect.c):
     * monotonic ms, 0 = not waiting. */
    uint64_t busy_since_ms, busy_retry_ms, busy_logged_ms;
    /* A reattach whose ring set-up failed, retried (vbd_connect.c
     * reattach_retry): monotonic ms of the first failure, 0 = none; tries. */
    uint64_t retry_since_ms;
    unsigned retries;
    uint64_t reread_logged_ms;      /* last "cannot read the frontend state" line */
    struct vdp *dp;                 /* the data plane (worker.c), NULL: not connected */
    struct {                        /* what open_engine opened v->engine with */
        char *spec;                 /* engine_open_params params (vbd3 prefix off) */
        bool readonly, shared;
    } open;
    struct vbd_conn conn;
    struct vbd_stats stats_base;    /* counters of earlier connections */
    unsigned connects;              /* successful connects */
    /* vbd3: libxenstat's statistics file (td3_stats.c) */
    struct td3_file td3;
    struct td3_stats td3_carry;     /* counters of the previous daemon's file */
    bool td3_taken;                 /* that file was looked for (first connect) */
    bool td3_keep;                  /* daemon exit, device left connected: keep it */
    bool td3_leaked;                /* a queue thread left behind may write it: stays mapped */
    bool td3_warned;                /* creating it failed once (logged) */
    uint64_t resize_refused_bytes;  /* store size last refused by a resize (logged once) */
    uint64_t wk_death_ms;           /* --isolation=domain: first worker death in the window */
    unsigned wk_deaths;             /* deaths since then (worker.c worker_reap) */
};

/* A log line about device v: "<v->name>: <message>"; in the journal with
 * DOMID=, DEVID=, VDEV= (log.h log_dev). */
#define VLOG(v, lvl, fmt, ...) log_dev(lvl, &(v)->log_id, LOG_NO_QUEUE, fmt, ##__VA_ARGS__)

/* ---- backend.c ------------------------------------------------------------ */
/* The signals the event loop reads through its signalfd: SIGTERM SIGINT
 * SIGHUP SIGUSR1 SIGUSR2 (xen-blkbackd(8) SIGNALS), and SIGCHLD (an isolation
 * worker died: worker.c).  main() blocks them
 * before any thread starts. */
void backend_sigset(sigset_t *set);
/* Take the owner locks (owner.c) first, then open the Xen services, resolve
 * our domid, set up signalfd, the control socket and the watches.  The
 * signals of backend_sigset() must already be blocked in every thread.
 * 0, -EBUSY (another daemon or the kernel's xen-blkback serves one of our
 * kinds: nothing was touched), or -errno (message logged). */
int  backend_create(const struct xbd_config *cfg, struct backend **out);
/* Run the event loop until SIGTERM/SIGINT; then shut devices down per
 * cfg->on_exit.  0, or -errno on a fatal xenstore error. */
int  backend_run(struct backend *b);
void backend_destroy(struct backend *b);
struct vbd *backend_find_vbd(struct backend *b, const char *kind, xen_domid_t fe, unsigned devid);

/* admit.c: may the daemon take on the backend directory dir of device
 * fe/devid of kind (owned by us; an online one with a frontend we can
 * read)?  true, or false after at most one log line per reason, with
 * nothing written (xen-blkbackd(8) DRIVER DOMAIN).  A refusal is forgotten
 * when dir is gone. */
bool backend_admit(struct backend *b, const char *kind, xen_domid_t fe, unsigned devid,
                   const char *dir);
void backend_admit_forget(struct backend *b, const char *kind, xen_domid_t fe, unsigned devid);
/* Forget the refusals of kind (of frontend domain fe; fe < 0: any) whose
 * directory has gone, e.g. with its parent. */
void backend_admit_prune(struct backend *b, const char *kind, int fe);
void backend_admit_free(struct backend *b);
/* A device directory dir under a kind not in --backend-types (backend.c
 * watches vbd3 for this): one notice line per device saying why it is not
 * served, nothing written; forgotten when it goes (a device made again with
 * the same ids gets a new line). */
void backend_admit_unserved(struct backend *b, const char *kind, xen_domid_t fe, unsigned devid,
                            const char *dir);

/* ---- vbd.c ---------------------------------------------------------------- */
/* Track a device seen under backend/<kind>/<fe>/<devid>: register its watches
 * (each fires once at once, which runs the state machine).  0 or -errno. */
int  vbd_new(struct backend *b, const char *kind, xen_domid_t fe, unsigned devid, struct vbd **out);
/* Run the state machine from the current xenstore values (level triggered,
 * idempotent; docs/protocol.md §2).  May set v->finished. */
void vbd_changed(struct vbd *v);
/* Daemon exit: stop the data plane; close=true also writes Closed. */
void vbd_shutdown(struct vbd *v, bool close);
/* Stop watches and the data plane, free. */
void vbd_free(struct vbd *v);
/* Counters: earlier connections + the live data plane. */
void vbd_get_stats(struct vbd *v, struct vbd_stats *out);
/* Timeout for the main loop's poll(2): ms until the earliest vbd retry
 * (v->busy_retry_ms) or, while a device is connected, the next resize check
 * (cfg->resize_check_ms) is due, 0 if one is overdue, -1 if none. */
int  vbd_poll_timeout(struct backend *b);
/* Run the state machine of every vbd whose retry is due (a reattach waiting
 * for its store, vbd_connect.c; may set v->finished), and the resize check
 * (vbd_check_sizes) when due. */
void vbd_run_timers(struct backend *b);

/* ---- vbd_connect.c ---------------------------------------------------------- */
/* Frontend 3/4: read the frontend's and our keys, open the engine, create and
 * start the data plane, advertise the device in one transaction and switch
 * to Connected (docs/protocol.md §1.2, §2; connect_ring() and connect() of
 * torvalds/linux:drivers/block/xen-blkback/xenbus.c@v6.1).
 * On failure calls vbd_fatal().  0 or -errno.  A store held by someone else
 * (-EBUSY, src/engine/lock.c) is fatal on a fresh connect; on a reattach
 * (backend already Connected: a restarted daemon) it returns -EBUSY without
 * vbd_fatal and sets v->busy_retry_ms, until the store is free or 60 s
 * have passed. */
int  vbd_connect(struct vbd *v);
/* Stop and free the data plane and the engine (idempotent). */
void vbd_disconnect(struct vbd *v);
/* Write <backend>/error and the Linux-style <home>/error/<be-rel>/error,
 * disconnect, switch to Closing (Linux xenbus_dev_fatal).  err: negative errno,
 * like every other function here; the error node holds "<positive errno> <message>"
 * as Linux writes it (torvalds/linux:drivers/xen/xenbus/xenbus_client.c@v6.1
 * xenbus_va_dev_error). */
void vbd_fatal(struct vbd *v, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Write the transport keys advertised before InitWait, then state 2. */
int  vbd_init_wait(struct vbd *v);

/* ---- vbd_resize.c ------------------------------------------------------------ */
#define VBD_RESIZE_PERIODIC "store grew"        /* trigger of vbd_check_sizes */
/*
 * Online resize (xen-blkbackd(8) RESIZE; Linux xen_vbd_resize in
 * torvalds/linux:drivers/block/xen-blkback/blkback.c@v6.1): read the backing
 * store's size (engine_get_size); when it grew, let the data plane take the
 * new range (dp_set_sectors), then write `sectors` (512-byte units) and
 * `state` = Connected again in one transaction (retried on EAGAIN:
 * xs_tx_write), so blkfront re-reads the size.  trigger: for the log line
 * ("control request", VBD_RESIZE_PERIODIC: refusals then logged once per
 * store size instead of every time).  *old_out and *new_out: sectors before and
 * after (equal: nothing to do).  why: the reason of a refusal (len bytes).
 * 0, -ENOTCONN (not connected), -EROFS (read-only device), -EINVAL (size not
 * a whole number of sector-size sectors), -ERANGE (smaller than advertised:
 * shrinking is refused), -errno of engine_get_size or xs_tx_write.
 */
int  vbd_resize(struct vbd *v, const char *trigger, char *why, size_t len, uint64_t *old_out,
                uint64_t *new_out);
/* vbd_resize of every connected read-write vbd (the resize-check timer). */
void vbd_check_sizes(struct backend *b);

/* ---- vbd_qos.c -------------------------------------------------------------- */
/* The backend keys of the QoS limits by enum dp_qos_kind (qos-iops, ...). */
extern const char *const vbd_qos_keys[DP_QOS_N];
/* The limits device v is to run with into *out: per limit its backend key if
 * present, else the config key; a key that does not parse is logged (with
 * the accepted range) and that limit stays keep's. */
void vbd_qos_read(struct vbd *v, const struct dp_qos *keep, struct dp_qos *out);
/* Install q on v's running data plane if it differs (logged, `why` says
 * who asked); nothing when not connected or q is out of range. */
void vbd_qos_apply(struct vbd *v, const struct dp_qos *q, const char *why);
/* A watch event: re-read the keys and apply (connected devices only). */
void vbd_qos_changed(struct vbd *v);

/* ---- td3_stats.c ------------------------------------------------------------- */
/* The directory of tapdisk3's statistics files, fixed in libxenstat
 * (xen-project/xen:tools/libs/stat/xenstat_linux.c@RELEASE-4.20.0). */
#define TD3_SHM_ROOT "/dev/shm"
/*
 * Create <root>/td3-<pid>/vbd-<domid>-<devid> (directory 0700, file 0600,
 * one page, as tapdisk3 does), map it shared and fill it with init, version
 * TD3_STATS_VERSION (stats.h struct td3_stats; units there).  0 (f->mem,
 * f->path set), -ENAMETOOLONG, -errno of mkdir/open/ftruncate/mmap (nothing
 * left behind).
 */
int  td3_file_create(const char *root, long pid, unsigned domid, unsigned devid,
                     const struct td3_stats *init, struct td3_file *f);
/* Unmap; remove=true also unlinks the file and then its directory if empty.
 * Idempotent. */
void td3_file_close(struct td3_file *f, bool remove);
/* The previous daemon's file of the vbd, <root>/td3-<pid>/vbd-<domid>-<devid>
 * with pid as read from kthread-pid (a decimal number, else -EINVAL):
 * read its record into *out (if it is a version-1 record: else -EINVAL,
 * *out untouched) and remove it (and its directory if empty).  0, -EINVAL,
 * -ENOENT (no such file), -errno. */
int  td3_file_take(const char *root, const char *pid, unsigned domid, unsigned devid,
                   struct td3_stats *out);
/* Is v a device libxenstat reads a statistics file for (kind vbd3)? */
bool vbd_td3_wanted(const struct vbd *v);
/* At connect, before dp_create: v's file in TD3_SHM_ROOT for our pid, made
 * from v->stats_base plus the counters of a previous daemon's file (looked
 * for once per vbd through a kthread-pid of another pid, td3_file_take:
 * a restart, or a device left connected while no daemon ran).  The record
 * for dp_config.td3, or NULL (not vbd3, or creating it failed: one warning
 * per device, the device served without it).  The caller writes
 * kthread-pid = getpid() with the device properties. */
struct td3_stats *vbd_td3_open(struct vbd *v);
/* After the data plane is destroyed: unmap (not if v->td3_leaked); remove
 * the file and the kthread-pid key unless v->td3_keep (on-exit=leave: for
 * the next daemon). */
void vbd_td3_close(struct vbd *v);

/* ---- xs_tx.c ---------------------------------------------------------------- */
/* One key to write (sval if not NULL, else val) or remove (rm). */
struct xs_kv {
    const char *key;
    const char *sval;
    char val[24];
    bool rm;
};
/*
 * In ONE transaction (retried on -EAGAIN, up to 16 times): check `<dir>/state`
 * still exists (never resurrect a deleted directory: torvalds/linux:
 * drivers/xen/xenbus/xenbus_client.c@v6.1 __xenbus_switch_state), write or
 * remove each kv under dir, then write
 * `state` = new_state unless new_state < 0.
 * 0, -ENOENT (directory gone), other -errno of the ops.
 */
int xs_tx_write(struct backend *b, const char *dir, const struct xs_kv *kv, unsigned n,
                int new_state);
/* Read "<dir>/<key>" as an integer; -ENOENT, -EINVAL. */
int xs_read_int(struct backend *b, const char *dir, const char *key, long long *out);
/* Read "<dir>/<key>" as a malloc'd string; -ENOENT. */
int xs_read_str(struct backend *b, const char *dir, const char *key, char **out);
void xs_kv_set(struct xs_kv *kv, const char *key, unsigned long long val);
void xs_kv_rm(struct xs_kv *kv, const char *key);
void xs_kv_str(struct xs_kv *kv, const char *key, const char *val);

/* ---- control.c -------------------------------------------------------------- */
/* Listen on `path` (mode 0600, parent dir created 0755).  An existing path is
 * replaced only if it is a socket nobody listens on (lstat, then connect()
 * fails with ECONNREFUSED).  0, -EEXIST (exists and is not a socket),
 * -EADDRINUSE (someone answers on it), or -errno; control_strerror() says
 * which in words.  At close the socket is unlinked only if the path is still
 * the one we bound (same inode). */
int  control_open(struct backend *b, const char *path, struct control **out);
/* The reason for a control_open() error, for the log line. */
const char *control_strerror(int rc);
/* SIGUSR1: one log line per device with the fields of `list` and the key
 * counters of `stats` (the same JSON builders as the control socket). */
void control_log_devices(struct backend *b);
void control_close(struct control *c);
/* Fill `fds` (up to max) with the fds to poll for reading; returns how many. */
unsigned control_fds(struct control *c, int *fds, unsigned max);
/* Called when fd (one of control_fds) is readable. */
void control_handle(struct control *c, int fd);
/* Answer one request line (no newline); returns a malloc'd JSON text or NULL. */
char *control_request(struct backend *b, const char *line);

/* ---- metrics.c, metrics_http.c ------------------------------------------------ */
/* The counters of every vbd in the Prometheus text exposition format (0.0.4):
 * a malloc'd NUL-terminated text, NULL on -ENOMEM.  Names, labels and units:
 * xen-blkbackd(8) METRICS.  Main thread (walks b->vbds). */
char *metrics_text(struct backend *b);
/* Parse a --metrics-listen value: "PORT", ":PORT" (both on 127.0.0.1),
 * "ADDR:PORT", "[IPV6]:PORT"; ADDR numeric or a host name (getaddrinfo:
 * the first address).  PORT 0..65535 (0: any free port).  0 or -EINVAL
 * (message in err). */
int  metrics_listen_parse(const char *v, struct sockaddr_storage *ss, unsigned *sslen,
                          char *err, size_t errlen);
/* Start the HTTP listener (libmicrohttpd, no thread of its own: the main
 * loop polls metrics_http_fd and calls metrics_http_run).  0, -EINVAL (bad
 * address), -errno of bind/listen (message logged). */
int  metrics_http_open(struct backend *b, const char *listen, struct metrics_http **out);
void metrics_http_close(struct metrics_http *m);
int  metrics_http_fd(const struct metrics_http *m);
/* Where it listens, as bound ("127.0.0.1:9477", "[::1]:9477"). */
const char *metrics_http_addr(const struct metrics_http *m);
/* ms until libmicrohttpd wants to run for a connection timeout, -1: none. */
int  metrics_http_timeout(struct metrics_http *m);
/* Serve what is ready (never blocks). */
void metrics_http_run(struct metrics_http *m);

/* ---- worker.c -------------------------------------------------------------- */
/*
 * The control plane's handle of a data plane: the dataplane.h calls of the
 * same names (semantics, units and errors there), made in this process
 * (--isolation=none) or in the worker process of the vbd's frontend domain
 * (--isolation=domain; the design is at the top of worker.c, the man page
 * in xen-blkbackd(8) ISOLATION).  vdp_create: dc as for dp_create (its
 * engine is v->engine, opened with v->open); under isolation the store's fd
 * goes to the worker, which opens its own engine on it.  Extra errors of a
 * worker: -EPIPE (it died or stopped answering: it is killed and
 * worker_reap reattaches its devices), -ENOMEM.  After a worker died, stats
 * reads give the last counters read.
 */
int  vdp_create(struct vbd *v, const struct dp_config *dc, struct vdp **out);
int  vdp_start(struct vdp *d);
void vdp_stop(struct vdp *d, unsigned timeout_ms);
void vdp_destroy(struct vdp *d, struct backend *b);
void vdp_keep_state(struct vdp *d);
void vdp_get_info(const struct vdp *d, struct dp_info *out);
void vdp_get_stats(struct vdp *d, struct vbd_stats *out);
unsigned vdp_nr_queues(const struct vdp *d);
int  vdp_get_queue_stats(struct vdp *d, unsigned i, struct vbd_stats *out);
int  vdp_set_sectors(struct vdp *d, uint64_t sectors);
int  vdp_set_qos(struct vdp *d, const struct dp_qos *q);
void vdp_get_qos(struct vdp *d, struct dp_qos *out);
bool vdp_leaked(const struct vdp *d);
bool vdp_halted(struct vdp *d);
/* The pid of the worker serving d; 0: this process (or the worker is reaped). */
long vdp_worker_pid(const struct vdp *d);
/* SIGCHLD: reap dead workers (logged); each of their vbds is disconnected
 * (restart state kept) and its reattach scheduled at once (vbd_run_timers). */
void worker_reap(struct backend *b);
/* v's worker died (reaped, or a vdp call failed with -EPIPE): disconnect v
 * (restart state kept) and run its state machine again at once, so that it
 * connects (a reattach when the backend is Connected) in a new worker; the
 * 5th death within 60 s (WK_DEATHS_MAX, WK_DEATHS_MS: worker.c) is vbd_fatal
 * instead.  false (nothing done) under --isolation=none. */
bool vdp_worker_died(struct vbd *v);
/* Each loop turn: the log level and debug categories to every worker that
 * does not have them (a round trip only after a change). */
void worker_sync_log(struct backend *b);
/* main(): the daemon's own argv, which a worker is exec'd with after
 * WORKER_ARG<domid>. */
#define WORKER_ARG "--isolation-worker="
void worker_set_args(int argc, char **argv);
/* The worker process of domain domid (main() with WORKER_ARG): serve the
 * daemon's requests on fd 3 until it closes it.  The exit status. */
int  worker_run(const struct xbd_config *cfg, xen_domid_t domid);

/* ---- owner.c ---------------------------------------------------------------- */
/* sysfs as the kernel mounts it; owner_kernel_blkback() takes a root so the
 * tests can point it at a fake tree. */
#define OWNER_SYSFS_ROOT "/sys"
/* mkdir -p: missing parents 0755, the last component `mode` (as coreutils
 * mkdir -p -m); an existing directory is fine.  0, -ENOTDIR, -errno. */
int  owner_mkdir_p(const char *dir, mode_t mode);
/* flock(LOCK_EX|LOCK_NB) <state_dir>/<kind>.lock (created 0600) and write our
 * pid into it ("<pid>\n").  0 (*fd_out holds the lock until closed), -EBUSY
 * (held by another process: *owner_pid is the pid it wrote, or -1), -errno. */
int  owner_lock(const char *state_dir, const char *kind, int *fd_out, long *owner_pid);
/* Is the kernel's xen-blkback registered as the xenbus backend driver "vbd"
 * (Linux drivers/xen/xenbus/xenbus_probe.c names a driver after its first
 * device type; xen-blkback/xenbus.c: { "vbd" })?  Checks that
 * <sysfs_root>/bus/xen-backend/drivers/vbd exists; *bound = its vbd-<domid>-
 * <devid> entries (devices it serves).  1 (registered), 0 (not), -errno. */
int  owner_kernel_blkback(const char *sysfs_root, unsigned *bound);
/* Create the state directory (0700) and take the lock of every non-NULL
 * kinds[i] (index i of lock_fd); for "vbd" under libxen first refuse when
 * owner_kernel_blkback().  0, -EBUSY, -errno (one message logged). */
int  owner_acquire(struct backend *b, const char *const *kinds, unsigned nkinds);
/* Close the lock fds (the files stay; a stale pid in them is harmless). */
void owner_release(struct backend *b);

/* ---- notify.c --------------------------------------------------------------- */
/* Read sd_watchdog_enabled(3) (WATCHDOG_USEC, WATCHDOG_PID).  No-op without. */
void notify_init(struct backend *b);
/* READY=1 with STATUS=serving N device(s), M connected (after the first scan). */
void notify_ready(struct backend *b);
/* STOPPING=1 (SIGTERM/SIGINT). */
void notify_stopping(struct backend *b);
/* Each loop turn: STATUS= when the counts changed, WATCHDOG=1 when due.
 * Returns the poll timeout in ms until the next ping, -1 without watchdog. */
int  notify_tick(struct backend *b);

#endif
