/*
 * dataplane.c - dp_create/start/stop/destroy: set up the queues of a vbd
 * (ring mapping, event channel, grant handle, slots), run one thread per
 * queue (queue.c), tear everything down idempotently.  API in dataplane.h.
 */
#include "dataplane.h"
#include "util.h"
#include "queue.h"
#include "qos.h"
#include "rstate.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct dp {
    const struct xen_ops *ops;
    struct xen_host *host;
    struct dp_config cfg;
    struct dp_info info;        /* dp_get_info; set up by dp_create, lim.sectors by
                                   dp_set_sectors */
    char name[64];
    char vdev[16];
    struct log_dev id;          /* name, domid, devid, vdev: every log line */
    unsigned nq;
    struct dpq *q[XBD_MAX_QUEUES];
    struct rstate rs;           /* restart state (rstate.h) */
    RING_IDX attach_req[XBD_MAX_QUEUES], attach_rsp[XBD_MAX_QUEUES];   /* shared, at attach */
    pthread_mutex_t lock;       /* dp_stop vs dp_stop */
    bool started, stopped;
    struct dpqos qos;           /* the vbd's QoS buckets, shared by its queues (qos.c) */
};

static bool is_pow2(uint32_t v)
{
    return v && !(v & (v - 1));
}

static int check_config(const struct xen_ops *ops, const struct dp_config *cfg)
{
    if (!ops || !cfg || !cfg->engine)
        return -EINVAL;
    if (cfg->nr_queues < 1 || cfg->nr_queues > XBD_MAX_QUEUES)
        return -EINVAL;
    if (cfg->abi != BLKIF_ABI_NATIVE && cfg->abi != BLKIF_ABI_X86_32 && cfg->abi != BLKIF_ABI_X86_64)
        return -EINVAL;
    if (cfg->sector_size && (cfg->sector_size < 512 || !is_pow2(cfg->sector_size)))
        return -EINVAL;
    if (cfg->max_indirect_segs > DPQ_MAX_SEGS)
        return -EINVAL;
    if (cfg->persistent_cap > 65536)            /* gntdev's limit of one handle's maps */
        return -EINVAL;
    if (cfg->grant_mode > GRANT_MODE_PERSISTENT)
        return -EINVAL;
    for (unsigned i = 0; i < cfg->nr_queues; i++) {
        uint32_t n = cfg->queue[i].nr_ring_pages;
        if (!is_pow2(n) || n > XBD_MAX_RING_PAGES)
            return -EINVAL;
    }
    return 0;
}

/* Undo dpq_setup; the queue thread is not running. */
static void queue_teardown(struct dp *dp, struct dpq *q)
{
    const struct xen_ops *ops = dp->ops;
    if (q->eq) {
        q->eng->ops->queue_close(q->eq);
        q->eq = NULL;
    }
    if (q->bound) {
        ops->evtchn_unbind(q->evt, q->port);
        q->bound = false;
    }
    if (q->evt) {
        ops->evtchn_close(q->evt);
        q->evt = NULL;
    }
    if (q->ring_addr) {
        ops->gnt_unmap(q->g.gnt, q->ring_addr, q->nr_ring_pages);
        ST_ADD(&q->st, gnt_unmap, 1);
        ST_SUB(&q->st, grants_mapped, q->nr_ring_pages);
        q->ring_addr = NULL;
    }
    dpg_fini(&q->g);
    if (q->stop_efd >= 0) {
        close(q->stop_efd);
        q->stop_efd = -1;
    }
}

static int queue_setup(struct dp *dp, struct dpq *q, unsigned idx)
{
    const struct dp_config *cfg = &dp->cfg;
    const struct dp_queue_cfg *qc = &cfg->queue[idx];
    const struct xen_ops *ops = dp->ops;
    int rc;

    q->dp = dp;
    q->idx = idx;
    q->name = dp->name;
    q->id = &dp->id;
    q->ops = ops;
    q->abi = cfg->abi;
    q->esz = blkif_abi_entry_size(cfg->abi);
    q->eng = cfg->engine;
    q->poll_us = cfg->poll_us;
    q->td3 = cfg->td3;
    q->eng_ready = engine_ready_op(cfg->engine->ops);
    q->qos = &dp->qos;
    q->seccomp = cfg->seccomp;
    q->stop_efd = -1;
    for (unsigned i = 0; i < DPQ_RL_N; i++)
        q->rl[i] = (struct log_ratelimit)LOG_RATELIMIT_INIT;
    q->lim = dp->info.lim;
    q->sectors = cfg->sectors;

    rc = dpg_init(&q->g, ops, dp->host, cfg->fe_domid, &q->st);
    if (rc < 0) {
        log_dev(LOG_ERR, &dp->id, (int)idx, "cannot open grant table: %s", strerror(-rc));
        return rc;
    }
    enum grant_mode mode = dp->info.grant_mode;
    if (idx == 0) {
        if (cfg->grant_mode == GRANT_MODE_PERSISTENT && mode != GRANT_MODE_PERSISTENT)
            log_dev(LOG_NOTICE, &dp->id, LOG_NO_QUEUE,
                    "grant mode persistent: the frontend did not negotiate "
                    "feature-persistent, mapping grants per request");
        log_dev(LOG_INFO, &dp->id, LOG_NO_QUEUE, "grant mode %s (asked %s, feature-persistent %s)",
                grant_mode_name(mode), grant_mode_name(cfg->grant_mode),
                cfg->persistent ? "negotiated" : "off");
    }

    /* The ring: nr_ring_pages refs, one contiguous read-write mapping. */
    void *addr;
    ST_ADD(&q->st, gnt_map, 1);
    rc = ops->gnt_map(q->g.gnt, cfg->fe_domid, qc->nr_ring_pages, qc->ring_ref,
                      PROT_READ | PROT_WRITE, &addr);
    if (rc < 0) {
        log_dev(LOG_ERR, &dp->id, (int)idx, "cannot map %u ring page(s): %s",
                qc->nr_ring_pages, strerror(-rc));
        return rc;
    }
    q->ring_addr = addr;
    q->nr_ring_pages = qc->nr_ring_pages;
    ST_ADD(&q->st, grants_mapped, qc->nr_ring_pages);

    size_t bytes = (size_t)qc->nr_ring_pages * XEN_PAGE_SIZE;
    RING_IDX start = 0;
    if (cfg->reattach) {
        /* Daemon restart: resume at the shared rsp_prod; consumed but
         * unanswered requests are redone (docs/protocol.md §2, "Daemon restart";
         * torvalds/linux:drivers/block/xen-blkback/xenbus.c@v6.1 xen_blkif_map). */
        volatile struct blkif_x86_64_sring *s = addr;
        RING_IDX rsp = s->rsp_prod, req = s->req_prod;
        unsigned size = cfg->abi == BLKIF_ABI_X86_32
            ? __RING_SIZE((struct blkif_x86_32_sring *)addr, bytes)
            : __RING_SIZE((struct blkif_x86_64_sring *)addr, bytes);
        if (req - rsp > size) {
            log_dev(LOG_ERR, &dp->id, (int)idx,
                    "cannot reattach: req_prod %u - rsp_prod %u > ring size %u", req, rsp, size);
            return -EIO;
        }
        start = rsp;
        q->reattached = true;
        dp->attach_req[idx] = req;
        dp->attach_rsp[idx] = rsp;
    }
    if (cfg->abi == BLKIF_ABI_X86_32)
        BACK_RING_ATTACH(&q->br.r32, (struct blkif_x86_32_sring *)addr, start, bytes);
    else
        BACK_RING_ATTACH(&q->br.r64, (struct blkif_x86_64_sring *)addr, start, bytes);

    rc = ops->evtchn_open(dp->host, &q->evt);
    if (rc < 0) {
        q->evt = NULL;
        log_dev(LOG_ERR, &dp->id, (int)idx, "cannot open event channels: %s", strerror(-rc));
        return rc;
    }
    rc = ops->evtchn_bind(q->evt, cfg->fe_domid, qc->evtchn, &q->port);
    if (rc < 0) {
        log_dev(LOG_ERR, &dp->id, (int)idx, "cannot bind event channel %u of domain %u: %s",
                qc->evtchn, cfg->fe_domid, strerror(-rc));
        return rc;
    }
    q->bound = true;

    unsigned max_segs = cfg->max_indirect_segs > BLKIF_MAX_SEGMENTS_PER_REQUEST
        ? cfg->max_indirect_segs : BLKIF_MAX_SEGMENTS_PER_REQUEST;
    unsigned nr_slots = RING_SIZE(&q->br.r64);
    rc = dpg_setup(&q->g, cfg, mode, nr_slots, max_segs);
    if (rc < 0) {
        log_dev(LOG_ERR, &dp->id, (int)idx, "cannot set up grant mode %s: %s",
                grant_mode_name(mode), strerror(-rc));
        return rc;
    }
    q->max_segs = max_segs;
    q->nr_slots = nr_slots;
    return 0;
}

/*
 * The request slots of every queue, their records in the restart state, and
 * after a restart what the previous daemon left in flight (rstate.h).  A
 * queue whose state cannot be used resumes at the published rsp_prod.
 */
static int slots_setup(struct dp *dp)
{
    unsigned nr_slots[XBD_MAX_QUEUES];
    uint16_t *redo = NULL;
    for (unsigned i = 0; i < dp->nq; i++)
        nr_slots[i] = dp->q[i]->nr_slots;
    int rc = rs_open(&dp->rs, dp->cfg.state_path, &dp->cfg, nr_slots, &dp->id);
    if (rc < 0)
        return rc;
    for (unsigned i = 0; i < dp->nq && rc == 0; i++) {
        struct dpq *q = dp->q[i];
        blkif_x86_64_back_ring_t *r = &q->br.r64;
        struct rs_rec *recs = rs_recs(&dp->rs, i);
        unsigned n = 0;
        uint32_t req_cons = r->req_cons;
        if (dp->rs.recovered) {
            if (!redo && !(redo = malloc(65536 * sizeof(*redo)))) {
                rc = -ENOMEM;
                break;
            }
            if (rs_recover(&dp->rs, i, dp->attach_req[i], dp->attach_rsp[i], q->nr_slots,
                           redo, &n, &req_cons) < 0) {
                memset(recs, 0, q->nr_slots * sizeof(*recs));
                n = 0;
                req_cons = r->req_cons;
            }
        }
        dp->rs.hdr->q[i].req_cons = req_cons;
        q->rs_req_cons = &dp->rs.hdr->q[i].req_cons;
        r->req_cons = req_cons;
        q->notified_upto = r->rsp_prod_pvt;
        rc = dpq_alloc_slots(q, q->nr_slots, q->max_segs, recs);
        if (rc == 0 && n) {
            dpq_set_redo(q, redo, n);
            log_dev(LOG_NOTICE, &dp->id, (int)i,
                    "restart state: %u request(s) to re-issue, resuming at "
                    "req_cons %u (rsp_prod %u, req_prod %u)", n, req_cons,
                    dp->attach_rsp[i], dp->attach_req[i]);
        }
    }
    free(redo);
    return rc;
}

static void dp_free(struct dp *dp)
{
    for (unsigned i = 0; i < dp->nq; i++) {
        struct dpq *q = dp->q[i];
        if (!q || q->leaked)
            continue;           /* a stuck thread still uses it */
        dpq_free_slots(q);
        free(q);
    }
    pthread_mutex_destroy(&dp->lock);
    dpqos_fini(&dp->qos);
    free(dp);
}

int dp_create(const struct xen_ops *ops, struct xen_host *host,
              const struct dp_config *cfg, struct dp **out)
{
    int rc = check_config(ops, cfg);
    if (rc < 0)
        return rc;
    struct dp *dp = calloc(1, sizeof(*dp));
    if (!dp)
        return -ENOMEM;
    dp->ops = ops;
    dp->host = host;
    dp->cfg = *cfg;
    snprintf(dp->name, sizeof(dp->name), "%s", cfg->name ? cfg->name : "vbd");
    dp->cfg.name = dp->name;
    snprintf(dp->vdev, sizeof(dp->vdev), "%s", cfg->vdev ? cfg->vdev : "");
    dp->cfg.vdev = dp->vdev;
    log_dev_init(&dp->id, dp->name, cfg->fe_domid, cfg->devid, dp->vdev);
    dp->info = (struct dp_info){
        .abi = cfg->abi,
        .nr_queues = cfg->nr_queues,
        .ring_order = (unsigned)__builtin_ctz(cfg->queue[0].nr_ring_pages),
        .lim = {
            .sectors = cfg->sectors,
            .sector_size = cfg->sector_size ? cfg->sector_size : 512,
            .readonly = cfg->readonly,
            .flush = cfg->flush,
            .barrier = cfg->barrier,
            .discard = cfg->discard,
            .secure_discard = cfg->discard && cfg->engine->caps.secure_discard,
            .max_indirect_segs = cfg->max_indirect_segs,
        },
        .grant_mode = dpg_resolve_mode(cfg->grant_mode, cfg->persistent),
        .persistent = cfg->persistent,
    };
    pthread_mutex_init(&dp->lock, NULL);
    dpqos_init(&dp->qos);
    rc = dpqos_set(&dp->qos, &cfg->qos, xbd_now_ns());
    for (unsigned i = 0; rc == 0 && i < cfg->nr_queues; i++) {
        struct dpq *q = calloc(1, sizeof(*q));
        if (!q) {
            rc = -ENOMEM;
            break;
        }
        dp->q[dp->nq++] = q;
        rc = queue_setup(dp, q, i);
        if (rc < 0)
            break;
    }
    if (rc == 0)
        rc = slots_setup(dp);
    if (rc == 0 && dp->info.grant_mode == GRANT_MODE_PERSISTENT)
        dp->info.persistent_cap = dp->q[0]->g.pc.cap;
    if (rc < 0) {
        for (unsigned i = 0; i < dp->nq; i++)
            queue_teardown(dp, dp->q[i]);
        dp->rs.keep = dp->rs.recovered;     /* not ours to drop: the next try reads it */
        rs_close(&dp->rs);
        dp_free(dp);
        return rc;
    }
    *out = dp;
    return 0;
}

/* Ask the running threads to stop and join them.  The deadline (+ a little
 * for the engine queue close) bounds only the wait for in-flight I/O; a
 * thread past that point (quiesced) is unmapping grants and is always waited
 * for (found under Xen in QEMU: 1000+ persistent grants take seconds to unmap
 * there).  Only a thread whose I/O is still in the kernel is detached and its
 * queue leaked (never freed) so nothing that I/O touches goes away. */
static void stop_threads(struct dp *dp, uint64_t deadline_ns)
{
    for (unsigned i = 0; i < dp->nq; i++) {
        struct dpq *q = dp->q[i];
        if (!q->running)
            continue;
        q->deadline_ns = deadline_ns;
        __atomic_store_n(&q->stop_req, true, __ATOMIC_RELEASE);     /* for a spinning thread */
        uint64_t one = 1;
        if (write(q->stop_efd, &one, sizeof(one)) < 0)
            log_dev(LOG_ERR, &dp->id, (int)i, "cannot signal stop: %s", strerror(errno));
    }
    for (unsigned i = 0; i < dp->nq; i++) {
        struct dpq *q = dp->q[i];
        if (!q->running)
            continue;
        uint64_t now = xbd_now_ns(), grace = 1000ull * 1000 * 1000;   /* engine queue_close */
        uint64_t wait = (deadline_ns > now ? deadline_ns - now : 0) + grace;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t abs = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + wait;
        ts.tv_sec = (time_t)(abs / 1000000000ull);
        ts.tv_nsec = (long)(abs % 1000000000ull);
        int rc = pthread_timedjoin_np(q->thread, NULL, &ts);
        if (rc == ETIMEDOUT && __atomic_load_n(&q->quiesced, __ATOMIC_ACQUIRE)) {
            /* No I/O left: it is unmapping grants (one call per persistent
             * grant, slow under emulation).  Bounded: wait for it, never leak. */
            log_dev(LOG_INFO, &dp->id, (int)i,
                    "still releasing grants at the stop deadline; waiting");
            rc = pthread_join(q->thread, NULL);
        }
        if (rc != 0) {
            log_dev(LOG_ERR, &dp->id, (int)i,
                    "I/O still in the kernel after the stop deadline (%s): "
                    "queue left behind, resources leaked", strerror(rc));
            pthread_detach(q->thread);
            q->leaked = true;
        }
        q->running = false;
    }
}

int dp_start(struct dp *dp)
{
    if (!dp)
        return -EINVAL;
    pthread_mutex_lock(&dp->lock);
    if (dp->started || dp->stopped) {
        pthread_mutex_unlock(&dp->lock);
        return -EALREADY;
    }
    int rc = 0;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);   /* signals go to the main thread */
    for (unsigned i = 0; i < dp->nq && rc == 0; i++) {
        struct dpq *q = dp->q[i];
        q->stop_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (q->stop_efd < 0) {
            rc = -errno;
            break;
        }
        rc = -EOPNOTSUPP;
        if (engine_has_wait(q->eng->ops)) {     /* in the order of queue.c DPQ_READY_* */
            /* the event channel's port read by the engine too, where the
             * Xen ops let the caller do its read and write */
            q->evtchn_rw = dp->ops->size >= offsetof(struct xen_ops, evtchn_unmask_write) +
                                            sizeof(dp->ops->evtchn_unmask_write) &&
                           dp->ops->evtchn_pending_read && dp->ops->evtchn_unmask_write;
            struct engine_watch w[2] = {
                { .fd = dp->ops->evtchn_fd(q->evt),
                  .read_len = q->evtchn_rw ? (unsigned)XEN_EVTCHN_READ_LEN : 0 },
                { .fd = q->stop_efd },
            };
            rc = q->eng->ops->queue_open_watch(q->eng, q->nr_slots, w, 2, &q->eq);
            q->eng_wait = rc == 0;
            q->evtchn_rw &= q->eng_wait;
        }
        if (rc == -EOPNOTSUPP)
            rc = q->eng->ops->queue_open(q->eng, q->nr_slots, &q->eq);
        if (rc < 0) {
            q->eq = NULL;
            log_dev(LOG_ERR, &dp->id, (int)i, "cannot open engine queue: %s", strerror(-rc));
            break;
        }
        rc = -pthread_create(&q->thread, NULL, dpq_thread, q);
        if (rc < 0) {
            log_dev(LOG_ERR, &dp->id, (int)i, "cannot start thread: %s", strerror(-rc));
            break;
        }
        char tname[16];
        snprintf(tname, sizeof(tname), "xbd-q%u", i);
        pthread_setname_np(q->thread, tname);
        q->running = true;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0)
        stop_threads(dp, xbd_now_ns() + 1000ull * 1000 * 1000);
    else
        dp->started = true;
    pthread_mutex_unlock(&dp->lock);
    return rc;
}

void dp_stop(struct dp *dp, unsigned timeout_ms)
{
    if (!dp)
        return;
    pthread_mutex_lock(&dp->lock);
    if (!dp->stopped) {
        stop_threads(dp, xbd_now_ns() + (uint64_t)timeout_ms * 1000000ull);
        for (unsigned i = 0; i < dp->nq; i++)
            if (!dp->q[i]->leaked)
                queue_teardown(dp, dp->q[i]);
        dp->stopped = true;
    }
    pthread_mutex_unlock(&dp->lock);
}

bool dp_leaked(const struct dp *dp)
{
    bool leaked = false;
    for (unsigned i = 0; i < dp->nq; i++)
        leaked |= dp->q[i]->leaked;
    return leaked;
}

void dp_destroy(struct dp *dp)
{
    if (!dp)
        return;
    dp_stop(dp, 5000);
    /* A leaked queue's thread may still write its records: leave the file
     * mapped (and in place) rather than have it fault. */
    if (!dp_leaked(dp))
        rs_close(&dp->rs);
    dp_free(dp);
}

void dp_keep_state(struct dp *dp)
{
    if (dp)
        dp->rs.keep = true;
}

void dp_get_stats(struct dp *dp, struct vbd_stats *out)
{
    struct vbd_stats sum;
    memset(&sum, 0, sizeof(sum));
    for (unsigned i = 0; dp && i < dp->nq; i++)
        vbd_stats_add(&sum, &dp->q[i]->st);
    *out = sum;
}

unsigned dp_nr_queues(const struct dp *dp)
{
    return dp ? dp->nq : 0;
}

int dp_get_queue_stats(struct dp *dp, unsigned i, struct vbd_stats *out)
{
    if (!dp || i >= dp->nq)
        return -ENOENT;
    memset(out, 0, sizeof(*out));
    vbd_stats_add(out, &dp->q[i]->st);
    return 0;
}

int dp_set_sectors(struct dp *dp, uint64_t sectors)
{
    if (!dp)
        return -EINVAL;
    if (sectors < dp->cfg.sectors)
        return -ERANGE;
    dp->cfg.sectors = sectors;
    for (unsigned i = 0; i < dp->nq; i++)
        __atomic_store_n(&dp->q[i]->sectors, sectors, __ATOMIC_RELEASE);
    return 0;
}

uint64_t dp_get_sectors(const struct dp *dp)
{
    return dp ? dp->cfg.sectors : 0;
}

void dp_get_info(const struct dp *dp, struct dp_info *out)
{
    *out = dp->info;
    out->lim.sectors = dp_get_sectors(dp);
}

int dp_set_qos(struct dp *dp, const struct dp_qos *q)
{
    if (!dp || !q)
        return -EINVAL;
    return dpqos_set(&dp->qos, q, xbd_now_ns());
}

void dp_get_qos(struct dp *dp, struct dp_qos *out)
{
    dpqos_get(&dp->qos, out);
}

bool dp_halted(struct dp *dp)
{
    for (unsigned i = 0; dp && i < dp->nq; i++)
        if (__atomic_load_n(&dp->q[i]->st.halted, __ATOMIC_RELAXED))
            return true;
    return false;
}
