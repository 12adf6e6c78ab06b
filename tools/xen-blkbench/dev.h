/*
 * dev.h - xen-blkbench run context: the guest (simulated domain, event
 * channel handle, rings, request slots), the xenstore connection, the
 * negotiated device properties and the results.  One per run; no globals.
 */
#ifndef XBD_BLKBENCH_DEV_H
#define XBD_BLKBENCH_DEV_H

#include <stdbool.h>
#include <signal.h>
#include <stdint.h>
#include <openssl/evp.h>
#include <xenstore.h>
#include <xen/io/xenbus.h>
#include "bb.h"
#include "ring.h"
#include "sim.h"

/* ------------------------------------------------------------ xenstore */
struct bbx {
    struct xs_handle *h;
    double timeout_s;
    unsigned token_seq;
    char err[512];                  /* message of the last failed bbx_wait_state */
};

int  bbx_open(struct bbx *x, double timeout_s);
void bbx_close(struct bbx *x);
/* *val malloc'd, NUL-terminated.  -ENOENT if missing, -EACCES, -EIO. */
int  bbx_read(struct bbx *x, xs_transaction_t t, const char *path, char **val);
/* Decimal (or 0x) unsigned; -ENOENT missing, -EINVAL not a number. */
int  bbx_read_u64(struct bbx *x, const char *path, uint64_t *out);
/* As bbx_read_u64 but a missing node gives def. */
int  bbx_read_u64_def(struct bbx *x, const char *path, uint64_t def, uint64_t *out);
int  bbx_write(struct bbx *x, xs_transaction_t t, const char *path, const char *val);
int  bbx_writef(struct bbx *x, xs_transaction_t t, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int  bbx_rm(struct bbx *x, xs_transaction_t t, const char *path);
bool bbx_exists(struct bbx *x, const char *path);
/*
 * Wait until the xenbus state at `path` is in ok_mask (bit n = state n).
 * fail_mask: states that end the wait at once with -EPIPE; bit 31 = node
 * missing (deleted).  -ETIMEDOUT after x->timeout_s; the message names the
 * path and the last value.  *state (optional) gets the last state (-1 if the
 * node was missing).  `what` is the object of the message ("backend").
 */
#define BBX_MISSING (1u << 31)
int  bbx_wait_state(struct bbx *x, const char *path, uint32_t ok_mask, uint32_t fail_mask,
                    const char *what, int *state);

/* ---------------------------------------------------------------- device */
enum bb_kind { BB_K_WORK = 0, BB_K_SHA, BB_K_VERIFY, BB_K_FLUSH, BB_K_DISCARD };

struct bb_slot {
    bool busy, done;
    unsigned queue;
    unsigned id;                    /* request id: index in its queue, < ring size */
    uint32_t data_pfn;              /* first of dev->slot_data_pages pages */
    uint32_t ind_pfn;               /* first of dev->slot_ind_pages pages */
    uint32_t *pgref;                /* persistent: gref per data page (0 = none) */
    uint32_t *indref;               /* persistent: gref per indirect page */
    /* the request in flight */
    enum bb_kind kind;
    uint8_t op;                     /* ring operation */
    uint8_t ind_op;                 /* INDIRECT: the real op */
    uint64_t sector;                /* 512-byte sectors */
    uint64_t nsect;                 /* data sectors (discard: nr_sectors) */
    unsigned page_off;              /* sectors into the first page */
    unsigned nseg;
    uint32_t gen;                   /* verify: generation written */
    bool indirect;                  /* sent as BLKIF_OP_INDIRECT */
    bool forced;                    /* op the backend did not advertise (--force) */
    uint64_t t_start;               /* ns, CLOCK_MONOTONIC */
    int16_t status;
    unsigned ngnt;
    uint32_t *gnt;                  /* grants to end at completion (non-persistent) */
};

struct bb_queue {
    struct bbr ring;
    uint32_t ring_pfn;
    unsigned ring_pages;
    uint32_t ring_gref[1u << BB_MAX_RING_ORDER];
    bool ring_granted;
    xen_port_t port;
    bool port_alloc;
    unsigned nslots;
    struct bb_slot **slot;          /* nslots: slot[id] */
    unsigned inflight;
};

struct bb_result {
    /* workload */
    uint64_t ops, rd_ops, wr_ops, rd_bytes, wr_bytes;
    double elapsed_s;
    struct bb_hist lat;
    /* every response */
    uint64_t st_okay, st_error, st_eopnotsupp, st_other;
    uint64_t unexpected;            /* status not what this run expects */
    uint64_t protocol_errors;       /* bad id, op, ring overflow */
    uint64_t gnt_end_failures;      /* backend still mapped a grant after answering */
    uint64_t gnt_leaked;            /* grants that could not be ended at detach */
    uint64_t mismatches;            /* verify: data mismatches (sectors) */
    uint64_t verified_sectors;      /* verify: sectors compared */
    uint64_t abandoned;             /* --destroy: requests left in flight */
    uint64_t requests;              /* all requests sent */
    /* actions */
    bool sha_done, sha_ok;
    char sha_hex[65];
    uint64_t sha_bytes;
    bool flush_done;
    const char *flush_op;           /* "flush-cache" / "barrier" */
    int16_t flush_status;
    uint64_t discard_reqs, discard_sectors, discard_fail;
    bool detach_done, detach_ok;
    const char *detach_how;
    char failure[256];              /* first fatal error (setup, timeout, protocol) */
};

struct bb_dev {
    struct bb_opts *o;
    struct bbx xs;
    struct sim_host *host;
    struct sim_dom *dom;
    struct sim_evtchn *evt;
    uint32_t nr_pages, next_pfn;
    /* paths */
    char fe[128], be[128], lx[128], dompath[64];
    bool dom_created, nodes_written, connected, closed;
    /* negotiated */
    enum blkif_abi abi;             /* ring layout */
    const char *protocol;           /* key written, NULL for native */
    unsigned ring_order, nq;
    unsigned max_indirect;          /* 0 = no INDIRECT */
    unsigned max_segs;              /* per request: 11 or max_indirect */
    bool persistent;
    uint64_t be_max_ring_order, be_max_queues, be_max_indirect;
    uint64_t sectors, sector_size, phys_sector_size, info;
    bool flush, barrier, discard, discard_secure, be_persistent;
    uint64_t discard_gran, discard_align;
    /* request slots */
    unsigned slot_data_pages, slot_ind_pages, nslots;
    struct bb_slot *slots;
    struct bb_queue q[BB_MAX_QUEUES];
    unsigned rr;                    /* next queue (round robin) */
    uint64_t seed_state;
    struct bb_vmap vmap;
    bool have_vmap;
    volatile sig_atomic_t *stopf;   /* set by SIGINT/SIGTERM: stop the workload */
    uint32_t *stale_gnt;            /* grants whose end failed after a response */
    size_t nstale, stale_cap;
    bool fatal;                     /* stop everything: protocol error, timeout */
    uint64_t inflight;
    struct bb_result res;
    /* sha256 pass ordering */
    EVP_MD_CTX *sha;                /* libcrypto SHA-256 of the pass, NULL outside it */
    uint64_t sha_next;
};

/* bbx_wait_state, reporting a failure through bb_err. */
int  bb_wait_state(struct bb_dev *d, const char *path, uint32_t ok_mask, uint32_t fail_mask,
                   const char *what, int *state);
void bb_err(struct bb_dev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bb_info(struct bb_dev *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* toolstack.c */
int  ts_domain_create(struct bb_dev *d);
void ts_domain_destroy(struct bb_dev *d);
int  ts_vbd_add(struct bb_dev *d);
int  ts_hotplug(struct bb_dev *d);
int  ts_vbd_remove_begin(struct bb_dev *d, bool force);
int  ts_vbd_wait_closed(struct bb_dev *d);
void ts_vbd_remove_nodes(struct bb_dev *d);

/* front.c */
int  fe_connect(struct bb_dev *d);
int  fe_close(struct bb_dev *d);
void fe_release(struct bb_dev *d);      /* end ring/persistent grants, free ports */

/* io.c */
int  io_setup(struct bb_dev *d);
int  io_sha256(struct bb_dev *d);
int  io_workload(struct bb_dev *d);
int  io_verify_pass(struct bb_dev *d);
int  io_flush(struct bb_dev *d);
int  io_discard(struct bb_dev *d);
void io_free(struct bb_dev *d);
uint64_t io_region_sectors(struct bb_dev *d, uint64_t *first);

/* report.c */
void report_text(struct bb_dev *d, FILE *f);
void report_json(struct bb_dev *d, FILE *f);
int  report_exit_code(struct bb_dev *d);

#endif
