/*
 * queue.h - one ring queue of the data plane (private to src/ring/).
 *
 * A queue owns: its ring mapping, its event channel handle and port, its
 * grant context (struct dpg), its engine queue, its request slots and its
 * counters.  Exactly one thread (dpq_thread) touches all of that while the
 * queue runs; dataplane.c sets it up before and tears it down after.
 *
 * Request slot life: free -> (copied from the ring, validated) -> engine I/O
 * stages -> response written -> free.  A slot has at most one engine_io in
 * flight; multi-stage requests (FLUSH/BARRIER with data: write then flush;
 * DISCARD: <= DPQ_DISCARD_CHUNK pieces) reissue it from the completion.
 */
#ifndef XBD_RING_QUEUE_H
#define XBD_RING_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "dataplane.h"
#include "grant.h"
#include "log.h"
#include "qos.h"
#include "rstate.h"
#include "validate.h"

#define DPQ_DISCARD_CHUNK (1ull << 30)      /* bytes per engine DISCARD */
#define DPQ_MAX_SEGS 1024                   /* iovecs per engine I/O (UIO_MAXIOV) */
#define DPQ_TD3_COUNTERS 10                 /* struct td3_stats oo_reqs .. io_errors */

enum dpq_stage {
    DPQ_FREE = 0,
    DPQ_PARKED,         /* BARRIER waiting for the queue to drain */
    DPQ_DATA,           /* READ/WRITE (or the data part of FLUSH/BARRIER) */
    DPQ_FLUSH,          /* fdatasync of FLUSH/BARRIER */
    DPQ_DISCARD,        /* one piece of a DISCARD */
    DPQ_COPYIN,         /* COPY mode: WRITE data waiting for the sweep's gnt_copy */
    DPQ_COPYOUT,        /* COPY mode: READ data waiting for the completion batch's gnt_copy */
};

enum dpq_fault {        /* one rate limiter per fault site */
    DPQ_RL_REQ,         /* refused by validation */
    DPQ_RL_MAP,         /* grant map failed */
    DPQ_RL_IO,          /* storage error */
    DPQ_RL_INTERNAL,    /* engine queue full, submit failed, ... */
    DPQ_RL_N
};

struct dp_slot {
    struct engine_io io;            /* the slot's one engine I/O */
    struct blkif_req *req;          /* = &rec->req: the private copy of the request */
    struct rs_rec *rec;             /* its record in the restart state (rstate.h) */
    struct blkif_checked chk;
    struct dpg_map map;
    uint8_t stage;
    uint16_t niov;
    uint64_t disc_off, disc_left;   /* DISCARD: bytes still to issue */
    /* latency (stats.h struct vbd_lat), CLOCK_MONOTONIC ns */
    uint64_t t_cons;                /* consumed off the ring (the wake-up's clock) */
    uint64_t eng_t0;                /* its engine I/O submitted; 0: none out */
    uint64_t eng_ns;                /* time spent in the engine so far */
    uint8_t lat_op;                 /* enum vbd_op, VBD_OP_NONE: not in the histograms */
    struct blkif_request_segment *iseg; /* INDIRECT: private segment copy [max_segs] */
    uint32_t *ent;                  /* [max_segs] persistent grants held (struct dpg_map) */
    struct iovec *iov;              /* [max_segs] */
};

struct dp;

struct dpq {
    struct dp *dp;
    unsigned idx;
    const char *name;               /* the vbd's "vbd <domid>/<devid>" */
    const struct log_dev *id;       /* the vbd's identity for log_dev (the dp's) */
    const struct xen_ops *ops;
    enum blkif_abi abi;
    size_t esz;                     /* ring entry bytes (112 / 108) */

    /* ring */
    void *ring_addr;
    uint32_t nr_ring_pages;
    union {
        blkif_x86_32_back_ring_t r32;
        blkif_x86_64_back_ring_t r64;   /* used for the index macros: same layout */
    } br;

    /* event channel */
    struct xen_evtchn *evt;
    xen_port_t port;                /* ours */
    bool bound;

    struct dpg g;
    struct blkif_limits lim;        /* the thread's copy; lim.sectors reloaded per request */
    uint64_t sectors;               /* device size now, 512-byte sectors: written by
                                       dp_set_sectors (atomic store), read once per
                                       request by the thread (atomic load) */
    struct engine *eng;
    struct engine_queue *eq;

    /* slots */
    struct dp_slot *slots;
    unsigned nr_slots, max_segs;
    uint16_t *free_stack;
    unsigned nfree;
    unsigned inflight;              /* slots not free */
    unsigned queued;                /* engine I/Os queued since the last submit */
    uint16_t *submitq;              /* their slots [nr_slots]: stamped at submit */
    /* CLOCK_MONOTONIC ns of this wake-up (queue.c dpq_now): read at most once
     * before its responses and once at them (a system call in a PV dom0, where
     * the vDSO falls back: tests/xen/README.md), and used as the consume,
     * submit and reap time of everything it does; now_stale: not read yet */
    uint64_t now_ns;
    bool now_stale;
    RING_IDX seen_prod;             /* req_prod at the last sweep (ring occupancy) */
    struct dp_slot *barrier;        /* BARRIER parked or running: consume nothing */
    struct dpqos *qos;              /* the vbd's QoS buckets (qos.h), shared by its queues */
    struct dp_slot *held;           /* READ/WRITE waiting for the QoS buckets: consume nothing */
    uint64_t held_since, held_until;    /* CLOCK_MONOTONIC ns: held at / ask again at */
    uint16_t *answered;             /* slots answered since the last publish [nr_slots] */
    unsigned nanswered;
    RING_IDX notified_upto;         /* rsp_prod at the last notify decision */
    uint16_t *redo;                 /* restart: slots to re-issue first, ring order [nr_slots] */
    unsigned nredo;
    uint32_t *rs_req_cons;          /* the restart state's req_cons of this queue */
    uint16_t *copy_list, *copy_work;    /* COPY: slots in the copy batch [nr_slots] */
    unsigned ncopy;
    bool in_copy_flush;
    void *arena;
    size_t arena_len;

    bool halted, stopping, oo, need_push;
    bool reattached;                /* taken over from a previous daemon: notify once at start */
    unsigned poll_us;
    engine_ready_fn eng_ready;      /* engine_ready_op of the engine, or NULL */
    bool eng_wait;                  /* eq opened with queue_open_watch (evtchn fd, stop_efd):
                                     * the thread sleeps in the engine's wait */
    bool evtchn_rw;                 /* and the engine reads the evtchn fd, and writes its
                                     * unmask (xen_ops evtchn_pending_read/_unmask_write) */
    uint64_t nreaped;               /* engine completions seen (polling: progress) */
    enum confine_mode seccomp;      /* dp_config.seccomp */

    /* thread */
    pthread_t thread;
    bool running, leaked;
    /* Set (atomically) by the thread once no I/O can be in flight any more
     * (engine queue closed): what is left is unmapping and unbinding, bounded
     * local work that stop_threads always waits for. */
    bool quiesced;
    int stop_efd;
    bool stop_req;                  /* set (atomically) by dp_stop before the stop_efd
                                     * write: stops the thread as the eventfd does, and
                                     * a polling one sees it without a system call */
    uint64_t deadline_ns;           /* CLOCK_MONOTONIC, set by dp_stop */

    struct vbd_stats st;
    /* libxenstat's vbd3 record (dp_config.td3), NULL: none; what this queue
     * added to each of its counters so far (queue.c td3_publish, in the
     * record's order from oo_reqs); READ/WRITE requests answered (by enum
     * vbd_op) */
    struct td3_stats *td3;
    uint64_t td3_added[DPQ_TD3_COUNTERS];
    uint64_t td3_done[2];
    struct log_ratelimit rl[DPQ_RL_N];
};

/* Allocate the slots of a queue: nr_slots = ring size, max_segs segment
 * arrays each, slot i's request kept in recs[i] (the restart state); q->g
 * must be set up (dpg_setup) first.  0 or -ENOMEM. */
int  dpq_alloc_slots(struct dpq *q, unsigned nr_slots, unsigned max_segs, struct rs_rec *recs);

/* Restart: take slots redo[0..n) (ring order) out of the free list; the
 * queue thread re-issues them before it consumes anything (and counts them
 * in `replayed`). */
void dpq_set_redo(struct dpq *q, const uint16_t *redo, unsigned n);
void dpq_free_slots(struct dpq *q);

/* The queue thread (arg: struct dpq *).  Returns when q->stop_req is set or
 * q->stop_efd fires, after answering in-flight requests or at
 * q->deadline_ns; on return the engine queue is closed and no data grant is
 * mapped. */
void *dpq_thread(void *arg);

#endif
