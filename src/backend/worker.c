/*
 * worker.c - per-domain isolation (--isolation=domain; xen-blkbackd(8)
 * ISOLATION) and the one handle the control plane holds for a data plane
 * (struct vdp: the dataplane.h calls, made here or in a worker).
 *
 * Design.  The daemon's process keeps the whole control plane: xenstore
 * watches, admission, the xenbus state machine, the control socket, the
 * owner locks and the backing stores' opening (engine_open_params with its
 * claims and sharing rules, src/backend/vbd_connect.c).  With
 * --isolation=domain every data plane of guest domain D runs in a worker
 * process of D's own: forked and exec'd (/proc/self/exe, so it starts with
 * a fresh address space and only the fds it is given: stdin/out/err and one
 * end of a SOCK_SEQPACKET socketpair as fd 3) when D's first vbd connects,
 * and ended when D's last vbd disconnects.  The worker opens no xenstore
 * connection and no image: for each vbd the daemon sends one request with
 * the dp_config and the store's fd (SCM_RIGHTS: the same open file
 * description, so the claim stays the daemon's; engine_params.store_fd),
 * and the worker opens its engine on it, then runs dp_create/dp_start
 * there, with the queue threads' seccomp list as in the daemon (under
 * --seccomp=trap main.c installs the SIGSYS report again, which the exec
 * reset: confine_inherited, so a worker's trap is reported as the
 * daemon's).  Every
 * other dataplane.h call (stop, destroy, keep the restart state, stats,
 * resize, QoS, halted) is one request and one reply on the socketpair,
 * synchronous on the control plane's thread (struct wk_req, wk_rep).  So a
 * compromised data plane holds the rings, grants, event channels and images
 * of its own domain only, and cannot reach xenstore.
 *
 * A worker that dies (SIGKILL, a crash, a seccomp kill) is reaped on
 * SIGCHLD (worker_reap); its vbds are disconnected on the daemon's side
 * (their stores closed, the restart state files kept) and connected again
 * at once through the restart path of a killed daemon: the backend is still
 * Connected, so vbd_connect reattaches (waiting for the dead worker's I/O
 * to drain from the store's claim, re-issuing what it had not answered from
 * the restart state) in a new worker.  Other domains' workers go on.  A
 * worker that does not answer within WK_TIMEOUT_MS (stop: its drain
 * deadline plus that) is killed, and the same path follows.  A worker dies
 * with the daemon (PR_SET_PDEATHSIG), so a restarted daemon never finds an
 * old worker serving a ring.
 *
 * Cost: one process per domain, one round trip per control request (stats
 * reads included); the I/O path is the same code in another process.
 */
#include "backend.h"
#include "util.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WK_FD 3                 /* the worker's end of the socketpair */
#define WK_TIMEOUT_MS 10000     /* a reply later than this: the worker is killed */
#define WK_DEATHS_MAX 5         /* a vbd whose workers die this often ... */
#define WK_DEATHS_MS 60000      /* ... within this long fails (vbd_fatal) */

enum wk_op {
    WK_CREATE = 1, WK_START, WK_STOP, WK_DESTROY, WK_KEEP_STATE, WK_STATS, WK_QSTATS,
    WK_SET_SECTORS, WK_SET_QOS, WK_HALTED, WK_LOG,
    WK_TEST,                    /* the test hook (confine_test_worker), test build only */
};

/* A vbd's data plane for the worker: the dp_config with its pointers
 * replaced by what they point to (the engine by the store's spec and fd). */
struct wk_create {
    struct dp_config dc;        /* name, vdev, state_path, engine, td3: NULL */
    char name[48], vdev[16], state_path[320];
    char spec[512];             /* engine_open_params params */
    char td3_path[TD3_PATH_MAX];    /* "": none */
    bool readonly, direct, shared, allow_filters, have_fd;
};

struct wk_req {
    uint32_t op, id;
    union {
        struct wk_create create;
        unsigned timeout_ms, queue;
        uint64_t sectors;
        struct dp_qos qos;
        struct { unsigned cats; int level; } log;  /* the daemon's, now */
    } u;
};

struct wk_rep {
    int32_t rc;
    union {
        struct dp_info info;            /* CREATE */
        struct vbd_stats st;            /* STATS, QSTATS */
        bool flag;                      /* STOP: leaked; HALTED */
    } u;
};

struct worker {
    struct worker *next;
    xen_domid_t domid;
    pid_t pid;                  /* 0 once reaped */
    int fd;                     /* -1 once closed */
    unsigned users;             /* vdps on it */
    uint32_t next_id;
    bool dead;                  /* no more requests; reattach when reaped */
    bool log_sent;              /* sent_cats and sent_level are the worker's */
    unsigned sent_cats;
    int sent_level;
};

struct vdp {
    struct dp *local;           /* --isolation=none */
    struct worker *w;           /* else */
    uint32_t id;
    struct dp_info info;
    struct dp_qos qos;
    struct vbd_stats last;      /* the last counters read (a dead worker's stay) */
    bool leaked;
};

/* ---- the daemon's side --------------------------------------------------------- */

static int self_argc;
static char **self_argv;

void worker_set_args(int argc, char **argv)
{
    self_argc = argc;
    self_argv = argv;
}

/* No more requests to w; kill it so that SIGCHLD brings the reattach. */
static void worker_lost(struct worker *w, const char *why, int err)
{
    if (w->dead)
        return;
    w->dead = true;
    log_err("isolation worker pid %ld of domain %u %s: %s; killing it, its devices reattach",
            (long)w->pid, w->domid, why, strerror(-err));
    if (w->pid > 0)
        kill(w->pid, SIGKILL);
}

/* One request and its reply; fd >= 0 goes along (SCM_RIGHTS).  0 or the
 * worker's -errno; -EPIPE when the worker is gone or was given up. */
static int rpc(struct worker *w, struct wk_req *rq, int fd, struct wk_rep *rp, unsigned timeout_ms)
{
    if (w->dead)
        return -EPIPE;
    ssize_t sent = xbd_send_fd(w->fd, rq, sizeof(*rq), fd);
    if (sent != (ssize_t)sizeof(*rq)) {
        worker_lost(w, "cannot be sent a request", sent < 0 ? (int)sent : -EIO);
        return -EPIPE;
    }
    uint64_t end = xbd_now_ms() + timeout_ms;
    for (;;) {
        uint64_t now = xbd_now_ms();
        struct pollfd p = { .fd = w->fd, .events = POLLIN };
        int n = now >= end ? 0 : poll(&p, 1, (int)(end - now));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            worker_lost(w, "did not answer", n ? -errno : -ETIMEDOUT);
            return -EPIPE;
        }
        ssize_t r = recv(w->fd, rp, sizeof(*rp), 0);
        if (r == (ssize_t)sizeof(*rp))
            return rp->rc;
        worker_lost(w, "closed its socket", r < 0 ? -errno : -ECONNRESET);
        return -EPIPE;
    }
}

static int simple(struct vdp *d, uint32_t op, struct wk_req *rq, struct wk_rep *rp)
{
    rq->op = op;
    rq->id = d->id;
    return rpc(d->w, rq, -1, rp, WK_TIMEOUT_MS);
}

/* Fork and exec a worker for domain domid.  0 or -errno. */
static int worker_spawn(struct backend *b, xen_domid_t domid, struct worker **out)
{
    struct worker *w = calloc(1, sizeof(*w));
    char arg[48];
    char **argv = calloc((size_t)self_argc + 2, sizeof(char *));
    int sv[2];
    if (!w || !argv || !self_argv) {
        free(w);
        free(argv);
        return -ENOMEM;
    }
    snprintf(arg, sizeof(arg), WORKER_ARG "%u", domid);
    argv[0] = self_argv[0];
    argv[1] = arg;
    for (int i = 1; i < self_argc; i++)
        argv[i + 1] = self_argv[i];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        int rc = -errno;
        free(w);
        free(argv);
        return rc;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* Async-signal-safe calls only until exec (other threads may hold
         * locks).  Everything but 0-2 and the socket is closed: the
         * worker must not inherit the xenstore connection or another
         * domain's image. */
        if (sv[1] == WK_FD ? fcntl(WK_FD, F_SETFD, 0) < 0 : dup2(sv[1], WK_FD) < 0)
            _exit(127);
        if (syscall(SYS_close_range, WK_FD + 1, ~0u, 0) < 0)
            for (int fd = WK_FD + 1; fd < 65536; fd++)
                close(fd);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    int rc = pid < 0 ? -errno : 0;
    close(sv[1]);
    free(argv);
    if (rc) {
        close(sv[0]);
        free(w);
        return rc;
    }
    w->domid = domid;
    w->pid = pid;
    w->fd = sv[0];
    w->next = b->workers;
    b->workers = w;
    log_notice("isolation worker for domain %u started: pid %ld", domid, (long)pid);
    *out = w;
    return 0;
}

/* The daemon's log level and debug categories (SIGUSR2, xen-blkbackctl
 * debug) to w, if it does not have them yet. */
static void worker_sync_one(struct worker *w)
{
    unsigned cats = log_debug_get();
    int level = log_get_level();
    if (w->dead || (w->log_sent && w->sent_cats == cats && w->sent_level == level))
        return;
    struct wk_req rq = { .op = WK_LOG, .u.log = { cats, level } };
    struct wk_rep rp;
    if (rpc(w, &rq, -1, &rp, WK_TIMEOUT_MS) == 0) {
        w->log_sent = true;
        w->sent_cats = cats;
        w->sent_level = level;
    }
}

void worker_sync_log(struct backend *b)
{
    for (struct worker *w = b->workers; w; w = w->next)
        worker_sync_one(w);
}

/* The live worker of domid, started if there is none. */
static int worker_get(struct backend *b, xen_domid_t domid, struct worker **out)
{
    for (struct worker *w = b->workers; w; w = w->next)
        if (w->domid == domid && !w->dead) {
            *out = w;
            return 0;
        }
    int rc = worker_spawn(b, domid, out);
#ifdef XBD_TEST_HOOKS
    /* The first worker of the hook's domain makes a forbidden syscall on
     * its main thread before it serves anything (confine.h). */
    static bool test_sent;
    if (rc == 0 && !test_sent && confine_test_worker() == (long)domid) {
        struct wk_req rq = { .op = WK_TEST };
        struct wk_rep rp;
        test_sent = true;
        rpc(*out, &rq, -1, &rp, WK_TIMEOUT_MS);
    }
#endif
    if (rc == 0)
        worker_sync_one(*out);
    return rc;
}

/* w exited with wait status st (reaped): a death is logged (one line). */
static void worker_reaped(struct worker *w, int st)
{
    char how[48];
    if (WIFSIGNALED(st))
        snprintf(how, sizeof(how), "killed by signal %d (%s)", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    else
        snprintf(how, sizeof(how), "exited with %d", WEXITSTATUS(st));
    if (w->dead || WIFSIGNALED(st) || WEXITSTATUS(st))
        log_err("isolation worker pid %ld of domain %u %s: its devices reattach from the "
                "restart state in a new worker", (long)w->pid, w->domid, how);
    w->pid = 0;
    w->dead = true;
}

/* Wait up to ms for w to exit (reaped here); false: still running. */
static bool worker_wait(struct worker *w, unsigned ms)
{
    uint64_t end = xbd_now_ms() + ms;
    while (w->pid > 0) {
        int st;
        pid_t r = waitpid(w->pid, &st, WNOHANG);
        if (r == w->pid)
            worker_reaped(w, st);
        else if (r < 0 && errno == ECHILD)
            w->pid = 0;
        else if (xbd_now_ms() >= end)
            return false;
        else
            nanosleep(&(struct timespec){ .tv_nsec = 5 * 1000 * 1000 }, NULL);
    }
    return true;
}

/* A worker without vdps: close its socket (it exits on EOF), reap, free. */
static void worker_put(struct backend *b, struct worker *w)
{
    if (--w->users)
        return;
    for (struct worker **pp = &b->workers; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    close(w->fd);
    if (!worker_wait(w, 3000)) {
        kill(w->pid, SIGKILL);
        worker_wait(w, 3000);
    }
    log_info("isolation worker for domain %u ended", w->domid);
    free(w);
}

void worker_reap(struct backend *b)
{
    for (struct worker *w = b->workers; w; w = w->next) {
        int st;
        if (w->pid > 0 && waitpid(w->pid, &st, WNOHANG) == w->pid)
            worker_reaped(w, st);
    }
    /* Each device of a dead, reaped worker: disconnected and connected
     * again (vdp_worker_died). */
    for (struct vbd *v = b->vbds; v; v = v->next)
        if (v->dp && v->dp->w && v->dp->w->dead && v->dp->w->pid == 0)
            vdp_worker_died(v);
}

bool vdp_worker_died(struct vbd *v)
{
    if (v->be->cfg->isolation == XBD_ISOLATION_NONE)
        return false;
    uint64_t now = xbd_now_ms();
    if (!v->wk_deaths || now - v->wk_death_ms >= WK_DEATHS_MS) {
        v->wk_death_ms = now;
        v->wk_deaths = 0;
    }
    if (++v->wk_deaths >= WK_DEATHS_MAX) {
        unsigned n = v->wk_deaths;
        v->wk_deaths = 0;
        vbd_fatal(v, -EPIPE, "its isolation worker died %u times in %u s", n,
                  WK_DEATHS_MS / 1000);
        return true;
    }
    vbd_disconnect(v);
    v->busy_retry_ms = now;
    return true;
}

int vdp_create(struct vbd *v, const struct dp_config *dc, struct vdp **out)
{
    struct backend *b = v->be;
    struct vdp *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    int rc;
    if (b->cfg->isolation == XBD_ISOLATION_NONE) {
        rc = dp_create(b->ops, b->host, dc, &d->local);
        if (rc == 0) {
            dp_get_info(d->local, &d->info);
            *out = d;
        } else {
            free(d);
        }
        return rc;
    }
    struct wk_req *rq = calloc(1, sizeof(*rq));
    struct wk_rep *rp = calloc(1, sizeof(*rp));
    rc = rq && rp ? worker_get(b, v->fe_domid, &d->w) : -ENOMEM;
    if (rc)
        goto out;
    struct wk_create *c = &rq->u.create;
    c->dc = *dc;
    c->dc.name = c->dc.vdev = c->dc.state_path = NULL;
    c->dc.engine = NULL;
    c->dc.td3 = NULL;
    snprintf(c->name, sizeof(c->name), "%s", dc->name ? dc->name : "");
    snprintf(c->vdev, sizeof(c->vdev), "%s", dc->vdev ? dc->vdev : "");
    snprintf(c->state_path, sizeof(c->state_path), "%s", dc->state_path ? dc->state_path : "");
    snprintf(c->spec, sizeof(c->spec), "%s", v->open.spec ? v->open.spec : "");
    if (dc->td3 && v->td3.mem == dc->td3)
        snprintf(c->td3_path, sizeof(c->td3_path), "%s", v->td3.path);
    c->readonly = v->open.readonly;
    c->shared = v->open.shared;
    c->direct = b->cfg->direct_io;
    c->allow_filters = b->cfg->allow_test_engines;
    c->have_fd = v->engine && v->engine->store_fd_ok;
    d->id = ++d->w->next_id;
    d->w->users++;
    rq->op = WK_CREATE;
    rq->id = d->id;
    rc = rpc(d->w, rq, c->have_fd ? v->engine->store_fd : -1, rp, WK_TIMEOUT_MS);
    if (rc) {
        worker_put(b, d->w);
        goto out;
    }
    d->info = rp->u.info;
    d->qos = dc->qos;
    *out = d;
    d = NULL;
out:
    free(rq);
    free(rp);
    free(d);
    return rc;
}

int vdp_start(struct vdp *d)
{
    if (d->local)
        return dp_start(d->local);
    struct wk_req rq = { 0 };
    struct wk_rep rp;
    return simple(d, WK_START, &rq, &rp);
}

void vdp_stop(struct vdp *d, unsigned timeout_ms)
{
    if (d->local) {
        dp_stop(d->local, timeout_ms);
        return;
    }
    struct wk_req rq = { .op = WK_STOP, .id = d->id, .u.timeout_ms = timeout_ms };
    struct wk_rep rp;
    if (rpc(d->w, &rq, -1, &rp, timeout_ms + WK_TIMEOUT_MS) == 0)
        d->leaked = rp.u.flag;
}

void vdp_destroy(struct vdp *d, struct backend *b)
{
    if (d->local) {
        dp_destroy(d->local);
    } else {
        struct wk_req rq = { 0 };
        struct wk_rep rp;
        simple(d, WK_DESTROY, &rq, &rp);
        worker_put(b, d->w);
    }
    free(d);
}

void vdp_keep_state(struct vdp *d)
{
    if (d->local) {
        dp_keep_state(d->local);
        return;
    }
    struct wk_req rq = { 0 };
    struct wk_rep rp;
    simple(d, WK_KEEP_STATE, &rq, &rp);
}

void vdp_get_info(const struct vdp *d, struct dp_info *out)
{
    if (d->local)
        dp_get_info(d->local, out);
    else
        *out = d->info;
}

void vdp_get_stats(struct vdp *d, struct vbd_stats *out)
{
    if (d->local) {
        dp_get_stats(d->local, out);
        return;
    }
    struct wk_req rq = { 0 };
    struct wk_rep *rp = malloc(sizeof(*rp));
    if (rp && simple(d, WK_STATS, &rq, rp) == 0)
        d->last = rp->u.st;
    free(rp);
    *out = d->last;
}

unsigned vdp_nr_queues(const struct vdp *d)
{
    return d ? d->info.nr_queues : 0;
}

int vdp_get_queue_stats(struct vdp *d, unsigned i, struct vbd_stats *out)
{
    if (d->local)
        return dp_get_queue_stats(d->local, i, out);
    struct wk_req rq = { .u.queue = i };
    struct wk_rep *rp = malloc(sizeof(*rp));
    int rc = rp ? simple(d, WK_QSTATS, &rq, rp) : -ENOMEM;
    if (rc == 0)
        *out = rp->u.st;
    free(rp);
    return rc;
}

int vdp_set_sectors(struct vdp *d, uint64_t sectors)
{
    int rc;
    if (d->local) {
        rc = dp_set_sectors(d->local, sectors);
    } else {
        struct wk_req rq = { .u.sectors = sectors };
        struct wk_rep rp;
        rc = simple(d, WK_SET_SECTORS, &rq, &rp);
    }
    if (rc == 0)
        d->info.lim.sectors = sectors;
    return rc;
}

int vdp_set_qos(struct vdp *d, const struct dp_qos *q)
{
    if (d->local)
        return dp_set_qos(d->local, q);
    struct wk_req rq = { .u.qos = *q };
    struct wk_rep rp;
    int rc = simple(d, WK_SET_QOS, &rq, &rp);
    if (rc == 0)
        d->qos = *q;
    return rc;
}

void vdp_get_qos(struct vdp *d, struct dp_qos *out)
{
    if (d->local)
        dp_get_qos(d->local, out);
    else
        *out = d->qos;
}

bool vdp_leaked(const struct vdp *d)
{
    return d->local ? dp_leaked(d->local) : d->leaked;
}

bool vdp_halted(struct vdp *d)
{
    if (d->local)
        return dp_halted(d->local);
    struct wk_req rq = { 0 };
    struct wk_rep rp;
    return simple(d, WK_HALTED, &rq, &rp) == 0 && rp.u.flag;
}

long vdp_worker_pid(const struct vdp *d)
{
    return d && d->w ? (long)d->w->pid : 0;
}

/* ---- the worker's side ------------------------------------------------------------ */

struct wdev {
    struct wdev *next;
    uint32_t id;
    struct dp *dp;
    struct engine *e;
    struct td3_stats *td3;      /* mapped from the daemon's file; NULL: none */
    char name[48], vdev[16], state_path[320];
};

static struct wdev *wdev_find(struct wdev *l, uint32_t id)
{
    while (l && l->id != id)
        l = l->next;
    return l;
}

/* The vbd3 statistics page the daemon created (td3_stats.c), shared. */
static struct td3_stats *map_td3(const char *path)
{
    int fd = path[0] ? open(path, O_RDWR | O_CLOEXEC) : -1;
    if (fd < 0)
        return NULL;
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return m == MAP_FAILED ? NULL : m;
}

static int wk_create(const struct xen_ops *ops, struct xen_host *host, struct wk_create *c,
                     int fd, struct wdev *w)
{
    c->name[sizeof(c->name) - 1] = c->vdev[sizeof(c->vdev) - 1] = 0;
    c->state_path[sizeof(c->state_path) - 1] = c->spec[sizeof(c->spec) - 1] = 0;
    c->td3_path[sizeof(c->td3_path) - 1] = 0;
    memcpy(w->name, c->name, sizeof(w->name));
    memcpy(w->vdev, c->vdev, sizeof(w->vdev));
    memcpy(w->state_path, c->state_path, sizeof(w->state_path));
    struct log_dev id;
    log_dev_init(&id, w->name, c->dc.fe_domid, c->dc.devid, w->vdev);
    struct engine_params ep = {
        .readonly = c->readonly, .direct = c->direct, .name = w->name, .dev = &id,
        .shared_write = c->shared, .have_store_fd = c->have_fd && fd >= 0, .store_fd = fd,
    };
    int rc = engine_open_params(c->spec, &ep, c->allow_filters, &w->e);
    if (rc)
        return rc;
    struct dp_config dc = c->dc;
    dc.name = w->name;
    dc.vdev = w->vdev[0] ? w->vdev : NULL;
    dc.state_path = w->state_path[0] ? w->state_path : NULL;
    dc.engine = w->e;
    dc.td3 = w->td3 = map_td3(c->td3_path);
    rc = dp_create(ops, host, &dc, &w->dp);
    if (rc) {
        w->dp = NULL;
        w->e->ops->close(w->e);
        if (w->td3)
            munmap(w->td3, 4096);
    }
    return rc;
}

static void wk_destroy(struct wdev **list, struct wdev *w)
{
    bool leaked = dp_leaked(w->dp);
    dp_destroy(w->dp);
    w->e->ops->close(w->e);
    if (w->td3 && !leaked)
        munmap(w->td3, 4096);
    for (struct wdev **pp = list; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    free(w);
}

/* Receive one request (and an fd) on WK_FD.  1, 0 at EOF, -errno. */
static int wk_recv(struct wk_req *rq, int *fd)
{
    ssize_t r = xbd_recv_fd(WK_FD, rq, sizeof(*rq), fd);
    if (r < 0)
        return r == -EINTR ? -EAGAIN : (int)r;
    if (r == 0)
        return 0;
    return r == (ssize_t)sizeof(*rq) ? 1 : -EPROTO;
}

int worker_run(const struct xbd_config *cfg, xen_domid_t domid)
{
    char tname[16];
    snprintf(tname, sizeof(tname), "xbd-dom%u", domid);
    prctl(PR_SET_NAME, tname, 0, 0, 0);
    const char *impl = xbd_config_is_sim(cfg) ? "sim" : "libxen";
    const struct xen_ops *ops = xen_ops_find(impl);
    struct xen_host *host = NULL;
    int rc = ops ? ops->host_open(xbd_config_sim_arg(cfg), &host) : -ENOENT;
    if (rc) {
        log_err("isolation worker for domain %u: cannot open the %s Xen host: %s", domid,
                impl, strerror(-rc));
        return 1;
    }
    log_info("isolation worker for domain %u: pid %ld", domid, (long)getpid());
    struct wk_req *rq = malloc(sizeof(*rq));
    struct wk_rep *rp = malloc(sizeof(*rp));
    struct wdev *devs = NULL;
    while (rq && rp) {
        int fd;
        rc = wk_recv(rq, &fd);
        if (rc == -EAGAIN)
            continue;
        if (rc <= 0)
            break;              /* EOF: the daemon is done with us */
        memset(rp, 0, sizeof(*rp));
        struct wdev *w = wdev_find(devs, rq->id);
        if (rq->op == WK_LOG) {
            log_debug_set(rq->u.log.cats);
            log_set_level(rq->u.log.level);
        } else if (rq->op == WK_TEST) {
            confine_test_violation(CONFINE_ROLE_CONTROL);   /* test build only */
        } else if (rq->op != WK_CREATE && !w) {
            rp->rc = -ENOENT;
        } else if (rq->op == WK_CREATE) {
            w = w ? NULL : calloc(1, sizeof(*w));
            rp->rc = w ? wk_create(ops, host, &rq->u.create, fd, w) : -EEXIST;
            if (rp->rc == 0) {
                w->id = rq->id;
                w->next = devs;
                devs = w;
                dp_get_info(w->dp, &rp->u.info);
            } else {
                free(w);
            }
        } else if (rq->op == WK_START) {
            rp->rc = dp_start(w->dp);
        } else if (rq->op == WK_STOP) {
            dp_stop(w->dp, rq->u.timeout_ms);
            rp->u.flag = dp_leaked(w->dp);
        } else if (rq->op == WK_DESTROY) {
            wk_destroy(&devs, w);
        } else if (rq->op == WK_KEEP_STATE) {
            dp_keep_state(w->dp);
        } else if (rq->op == WK_STATS) {
            dp_get_stats(w->dp, &rp->u.st);
        } else if (rq->op == WK_QSTATS) {
            rp->rc = dp_get_queue_stats(w->dp, rq->u.queue, &rp->u.st);
        } else if (rq->op == WK_SET_SECTORS) {
            rp->rc = dp_set_sectors(w->dp, rq->u.sectors);
        } else if (rq->op == WK_SET_QOS) {
            rp->rc = dp_set_qos(w->dp, &rq->u.qos);
        } else if (rq->op == WK_HALTED) {
            rp->u.flag = dp_halted(w->dp);
        } else {
            rp->rc = -EINVAL;
        }
        if (fd >= 0)
            close(fd);          /* the engine holds its own dup */
        if (send(WK_FD, rp, sizeof(*rp), MSG_NOSIGNAL) != (ssize_t)sizeof(*rp))
            break;
    }
    /* The daemon is gone or done: what is left keeps its restart state. */
    while (devs) {
        dp_keep_state(devs->dp);
        dp_stop(devs->dp, cfg->stop_timeout_ms);
        wk_destroy(&devs, devs);
    }
    free(rq);
    free(rp);
    ops->host_close(host);
    return rc < 0 ? 1 : 0;
}
