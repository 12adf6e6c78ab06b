/*
 * dataplane.h - the tiny API between the control plane (xenstore, xenbus state
 * machine, vbd lifecycle: src/backend/) and the data plane (rings, grants,
 * requests: src/ring/).  The data plane never reads xenstore; everything it
 * needs arrives in struct dp_config.  (cf. QEMU hw/block/dataplane/xen-block.h,
 * Linux xenbus.c vs blkback.c.)
 *
 * Lifecycle: dp_create (map rings, bind event channels) -> dp_start (one
 * thread + one engine queue per ring queue) -> dp_stop (idempotent; also the
 * error path) -> dp_destroy.
 */
#ifndef XBD_DATAPLANE_H
#define XBD_DATAPLANE_H

#include <stdbool.h>
#include <stdint.h>
#include "xen_ops.h"
#include "blkif_abi.h"
#include "engine.h"
#include "stats.h"
#include "confine.h"

#define XBD_MAX_RING_ORDER 5                    /* blkif.h: max-ring-page-order, we accept up to 5 */
#define XBD_MAX_RING_PAGES (1u << XBD_MAX_RING_ORDER)
#define XBD_MAX_QUEUES 16                       /* blkif.h: multi-queue-max-queues upper bound we accept */

enum grant_mode {
    GRANT_MODE_AUTO = 0,        /* persistent if negotiated, else GRANT_MODE_MAP */
    GRANT_MODE_MAP,             /* map/unmap the segments of each request */
    GRANT_MODE_COPY,            /* grant copy through bounce buffers */
    GRANT_MODE_PERSISTENT,      /* keep mappings in a per-queue cache (feature-persistent) */
};

/* The one table of grant-mode names ("auto", "map", "copy", "persistent"):
 * the `grant-mode` config key, the per-device backend key of the same name
 * and the control socket all use it.  name: "?" for no mode; parse: 0 or
 * -EINVAL (s NULL or unknown). */
const char *grant_mode_name(enum grant_mode m);
int grant_mode_parse(const char *s, enum grant_mode *out);

/* What requests are checked against (src/ring/validate.h). */
struct blkif_limits {
    uint64_t sectors;           /* device size, 512-byte sectors */
    uint32_t sector_size;       /* bytes, power of two >= 512; alignment of requests */
    bool readonly;
    bool flush;                 /* feature-flush-cache */
    bool barrier;               /* feature-barrier */
    bool discard;               /* feature-discard */
    bool secure_discard;        /* discard-secure */
    unsigned max_indirect_segs; /* feature-max-indirect-segments; 0 = no INDIRECT */
};

/*
 * Per-disk QoS (xen-blkbackd(8) QOS): token buckets per vbd, shared by all
 * its queues.  Six limits, each a rate per second and a burst (the bucket
 * size): requests (iops, read-iops, write-iops) and bytes (bps, read-bps,
 * write-bps); a READ is charged to iops, read-iops, bps and read-bps, a
 * WRITE to the total and write ones.  FLUSH, BARRIER and DISCARD are not
 * limited.  A request the buckets cannot pay for now waits in the backend
 * (the queue consumes nothing behind it, the guest sees latency, never an
 * error) until they have refilled; a request costing more than a bucket's
 * burst waits for a full bucket and leaves it in debt, so the long-run rate
 * is the limit exactly (cf. qemu/qemu:util/throttle.c@v7.2.0 leaky buckets,
 * xapi-project/blktap:drivers/block-valve.c@2ff39723e534).
 */
enum dp_qos_kind {
    DP_QOS_IOPS = 0, DP_QOS_READ_IOPS, DP_QOS_WRITE_IOPS,   /* requests per second */
    DP_QOS_BPS, DP_QOS_READ_BPS, DP_QOS_WRITE_BPS,          /* bytes per second */
    DP_QOS_N
};
#define DP_QOS_IOPS_MIN UINT64_C(1)                   /* accepted ranges (dp_qos_parse) */
#define DP_QOS_IOPS_MAX UINT64_C(10000000)            /* 10 M requests/s */
#define DP_QOS_BPS_MIN UINT64_C(4096)                 /* one page per second */
#define DP_QOS_BPS_MAX (UINT64_C(1) << 40)            /* 1 TiB/s */
#define DP_QOS_BURST_MULT UINT64_C(3600)              /* burst at most an hour of the rate */

struct dp_qos_limit {
    uint64_t rate;              /* per second (requests or bytes); 0 = no limit */
    uint64_t burst;             /* bucket size, same unit; 0 = rate/10, at least one
                                   request (iops) or 4096 bytes (bps) */
};
struct dp_qos {
    struct dp_qos_limit l[DP_QOS_N];   /* by enum dp_qos_kind */
};

/* "iops", "read-iops", "write-iops", "bps", "read-bps", "write-bps"; NULL
 * for no kind.  The config keys and backend keys are "qos-" + name, the
 * xen-blkbackctl limit keys the name itself. */
const char *dp_qos_name(enum dp_qos_kind k);
/* The kind of a name (as dp_qos_name; a "qos-" prefix is allowed).  0 or -ENOENT. */
int dp_qos_kind_parse(const char *name, enum dp_qos_kind *out);
/*
 * Parse a limit: "none" (no limit), "RATE" or "RATE/BURST", decimal, with an
 * optional suffix k, m, g (x1000, x1000000, x1000000000) for iops and K, M,
 * G, T (x1024 ...) for bps.  RATE in DP_QOS_IOPS_MIN..DP_QOS_IOPS_MAX
 * requests/s or DP_QOS_BPS_MIN..DP_QOS_BPS_MAX bytes/s, BURST in 1..RATE x
 * DP_QOS_BURST_MULT (bps: 4096..).  0, or -EINVAL with a message naming the
 * accepted range in err, without the limit's name (*out unchanged).
 */
int dp_qos_parse(enum dp_qos_kind k, const char *v, struct dp_qos_limit *out,
                 char *err, size_t errlen);
/* "none", "RATE" or "RATE/BURST" (plain numbers) into buf. */
void dp_qos_format(const struct dp_qos_limit *l, char *buf, size_t len);
/* True when some limit of q is set. */
bool dp_qos_any(const struct dp_qos *q);

struct dp_queue_cfg {
    uint32_t nr_ring_pages;                     /* 1 << ring-page-order */
    uint32_t ring_ref[XBD_MAX_RING_PAGES];      /* frontend grant refs of the ring pages */
    xen_port_t evtchn;                          /* frontend's unbound port */
};

struct dp_config {
    const char *name;               /* "vbd <domid>/<devid>" for log lines (copied) */
    xen_domid_t fe_domid;
    long long devid;                /* for the log fields (log.h log_dev); < 0: unknown */
    const char *vdev;               /* "xvdb" for the log fields (copied); NULL: unknown */
    enum blkif_abi abi;
    unsigned nr_queues;             /* 1..XBD_MAX_QUEUES */
    struct dp_queue_cfg queue[XBD_MAX_QUEUES];
    struct engine *engine;          /* opened backing store, owned by the caller */
    uint64_t sectors;               /* device size, 512-byte sectors (advertised `sectors`) */
    uint32_t sector_size;           /* bytes, advertised `sector-size`; requests must be aligned to it */
    bool readonly;                  /* refuse WRITE/BARRIER/FLUSH-with-data/DISCARD (blkback: -EACCES) */
    bool discard;                   /* feature-discard advertised */
    bool barrier;                   /* feature-barrier advertised (else BARRIER -> EOPNOTSUPP) */
    bool flush;                     /* feature-flush-cache advertised (else FLUSH -> EOPNOTSUPP) */
    unsigned max_indirect_segs;     /* advertised feature-max-indirect-segments; 0 = INDIRECT refused */
    enum grant_mode grant_mode;     /* AUTO resolved by the caller is allowed too */
    bool persistent;                /* feature-persistent negotiated by both sides */
    unsigned persistent_cap;        /* per queue, pages; 0 = auto: ring slots x (segments +
                                       indirect pages), 1056..8192 (src/ring/grant.h) */
    unsigned poll_us;               /* spin on the ring and the engine's completions (memory
                                     * only) this long before sleeping; 0 = off */
    bool reattach;                  /* daemon restart: take over the rings as they are
                                       (restart state, else at the published rsp_prod) */
    const char *state_path;         /* restart state file (src/ring/rstate.h; a tmpfs);
                                       NULL: kept in anonymous memory only */
    unsigned persistent_idle_ms;    /* release persistent grants unused this long;
                                       0 = 60000 (Linux persistent_grant_unused_seconds) */
    struct dp_qos qos;              /* limits to start with (dp_set_qos); zero: none */
    struct td3_stats *td3;          /* libxenstat's vbd3 record (stats.h) to keep current,
                                       e.g. mapped from its shared-memory file; NULL:
                                       none.  Each queue thread adds what it counted
                                       since its last time (relaxed atomic adds), once
                                       per batch of responses, before the guest can
                                       see them, and once per wake-up; no syscall.
                                       The caller fills the rest (version, the
                                       counters to start from) before dp_start and
                                       keeps it valid until dp_destroy, for good
                                       if dp_leaked. */
    enum confine_mode seccomp;      /* each queue thread loads the queue allow-list
                                       first (confine.h) if the engine's caps.seccomp_ok;
                                       CONFINE_OFF: none */
};

struct dp;

/*
 * Map every queue's ring pages (read-write, one contiguous range per queue)
 * and bind every event channel.  Does not start threads.
 * Errors: -EINVAL (bad config: queues, order, ABI), -ENOMEM, the ops' errors
 * for a bad ring ref or port, -EIO when reattaching a ring with
 * req_prod - rsp_prod > ring size (docs/protocol.md §2, "Daemon restart";
 * torvalds/linux:drivers/block/xen-blkback/xenbus.c@v6.1 xen_blkif_map).
 */
int  dp_create(const struct xen_ops *ops, struct xen_host *host,
               const struct dp_config *cfg, struct dp **out);

/* Start one thread and one engine queue per ring queue.  0 or -errno. */
int  dp_start(struct dp *dp);

/*
 * Stop taking requests, wait for in-flight I/O and answer it (at most
 * `timeout_ms`, then abandon the ring without answering), unmap every grant,
 * unbind every port, join the threads.  Idempotent; safe on a dp that was
 * never started.  After it returns the data plane holds no guest resource.
 */
void dp_stop(struct dp *dp, unsigned timeout_ms);

/* Free the dp (calls dp_stop if needed).  The restart state file is removed
 * unless dp_keep_state was called. */
void dp_destroy(struct dp *dp);

/*
 * Keep the restart state file when the dp is destroyed: the daemon is
 * exiting with the devices left Connected (on-exit=leave), and the next one
 * re-issues what dp_stop abandoned unanswered.  Call before dp_destroy.
 */
void dp_keep_state(struct dp *dp);

/*
 * What a data plane runs with, derived once by dp_create from the dp_config
 * and the engine: every queue validates requests against `lim`, and the
 * control plane reports it (xen-blkbackctl list/stats, the SIGUSR1 dump)
 * instead of its own copy of what it configured.
 */
struct dp_info {
    enum blkif_abi abi;
    unsigned nr_queues;
    unsigned ring_order;            /* log2 of the pages of each ring */
    struct blkif_limits lim;        /* lim.sectors: the size now (dp_set_sectors) */
    enum grant_mode grant_mode;     /* resolved: map, copy or persistent, never auto */
    bool persistent;                /* feature-persistent negotiated by both sides */
    unsigned persistent_cap;        /* pages per queue; 0 unless grant_mode is persistent */
};

/* What the data plane chose (see struct dp_info).  dp non-NULL; any thread. */
void dp_get_info(const struct dp *dp, struct dp_info *out);

/* Counters summed over queues; safe from any thread while running. */
void dp_get_stats(struct dp *dp, struct vbd_stats *out);
/* Queues of the dp (0 for NULL). */
unsigned dp_nr_queues(const struct dp *dp);
/* Counters of queue i alone (each field read atomically: stats.h); safe from
 * any thread while running.  0, -ENOENT (no such queue). */
int  dp_get_queue_stats(struct dp *dp, unsigned i, struct vbd_stats *out);

/*
 * Online resize: from now on requests may reach `sectors` (512-byte sectors,
 * the new advertised `sectors`).  Only growth: the range of requests already
 * accepted must stay valid.  Call it BEFORE the new size is written to
 * xenstore, so a frontend that saw it is never refused (xen_vbd_resize of
 * torvalds/linux:drivers/block/xen-blkback/blkback.c@v6.1 sets vbd->size
 * first; docs/protocol.md §7).  Single writer (the
 * control plane thread); each queue thread reads the size once per request
 * (atomic store/load, no lock), so requests in flight keep the size they
 * were validated against.  0, -EINVAL (dp NULL), -ERANGE (smaller than the
 * current size: nothing changed).
 */
int  dp_set_sectors(struct dp *dp, uint64_t sectors);
/* The size requests are validated against now (512-byte sectors). */
uint64_t dp_get_sectors(const struct dp *dp);

/*
 * Change the QoS limits of a running (or created) data plane: from the next
 * request on, every queue pays into the new buckets.  A bucket that stays
 * limited keeps its level (capped at the new burst), a new one starts full.
 * Any thread.  0, -EINVAL (dp or q NULL, a rate or burst outside the ranges
 * of dp_qos_parse: nothing changed).
 */
int  dp_set_qos(struct dp *dp, const struct dp_qos *q);
/* The limits in force (zero: none). */
void dp_get_qos(struct dp *dp, struct dp_qos *out);

/* True when dp_stop left a queue behind (its I/O still in the kernel at the
 * deadline): that queue's thread may still write what it was given
 * (dp_config.td3), which must then stay mapped.  dp non-NULL. */
bool dp_leaked(const struct dp *dp);

/* True once a queue halted on a protocol violation (bogus req_prod). */
bool dp_halted(struct dp *dp);

#endif
