/*
 * rstate.h - the restart state of a vbd (private to src/ring/): what a
 * daemon that was killed (or stopped with requests still in flight) leaves
 * behind so that the next daemon answers every request the guest sent
 * exactly once.  Design and limits: xen-blkbackd(8) RESTART.
 *
 * Why it is needed.  Responses go out in completion order, not ring order,
 * and a response overwrites a ring entry (blkif.h: requests and responses
 * share the ring; the backend writes response N into entry N).  So the
 * published rsp_prod says how MANY requests were answered, not WHICH; the
 * ring entries from rsp_prod on may already hold responses that were written
 * but never published; and the requests they overwrote live only in the
 * backend's private copies.  A new daemon that resumed at rsp_prod and read
 * the requests again from the ring (as Linux blkback does on a reconnect,
 * which never happens with requests in flight) would answer some twice
 * (Linux blkfront: "response references no pending request", fatal) and
 * others never (the guest hangs).
 *
 * What is kept.  One file per vbd, <state-dir>/<kind>-<domid>-<devid>.state
 * on a tmpfs (it must outlive the process, not the host), mapped MAP_SHARED.
 * Per queue: the ring it belongs to (refs, event channel: a frontend that
 * reconnected makes the file stale), the private consumer index req_cons,
 * and one record per request slot: the private copy of the request (the
 * only copy the data plane makes: validation and I/O read it there), the
 * ring index it was consumed from, and whether it is free, in flight, or
 * answered with a response written at ring index rsp_idx but not published.
 * A process that dies loses no store it executed (the page is the tmpfs
 * page), so the hot path only needs program order, which compiler barriers
 * give (x86 keeps stores in order; elsewhere a release store): no syscall.
 *
 * Order on the hot path (queue.c):
 *   consume:  copy the request into rec->req, rec->ring_idx = i,
 *             rec->state = INFLIGHT, then queue.req_cons = i + 1;
 *   answer:   write the response into ring entry r, rec->rsp_idx = r,
 *             rec->state = ANSWERED;
 *   publish:  sring->rsp_prod = rsp_prod_pvt, then every ANSWERED record
 *             becomes FREE (a slot whose record is still ANSWERED is
 *             published before it is reused).
 * Recovery (rs_recover): the published rsp_prod P is the truth.  A record
 * in flight, or answered at r >= P, is re-issued; answered at r < P is
 * done.  req_cons is the saved one, or one past a record consumed just
 * before the crash.  Every consumed request not answered-and-published has
 * a record, so their number must be req_cons - P: checked, and a file that
 * fails any check is not used (logged; the ring is then resumed at P as
 * without a file).
 */
#ifndef XBD_RING_RSTATE_H
#define XBD_RING_RSTATE_H

#include <stdbool.h>
#include <stdint.h>
#include "blkif_abi.h"
#include "dataplane.h"
#include "log.h"

#define RS_MAGIC    0x54534258u     /* "XBST" */
#define RS_VERSION  1u

enum rs_state { RS_FREE = 0, RS_INFLIGHT = 1, RS_ANSWERED = 2 };

/* One request slot's record (64-byte aligned: one or three cache lines). */
struct rs_rec {
    uint32_t state;                 /* enum rs_state; written last (compiler barrier before) */
    uint32_t ring_idx;              /* ring index the request was consumed from */
    uint32_t rsp_idx;               /* RS_ANSWERED: ring index of its response */
    uint32_t pad;
    struct blkif_req req;           /* the private copy */
} __attribute__((aligned(64)));

struct rs_queue {
    uint32_t nr_ring_pages;
    uint32_t evtchn;                /* the frontend's port */
    uint32_t nr_slots;              /* ring size */
    uint32_t pad0;
    uint64_t rec_off;               /* bytes from the start of the file */
    uint32_t ring_ref[XBD_MAX_RING_PAGES];
    uint32_t req_cons __attribute__((aligned(64)));     /* hot: own cache line */
    uint32_t pad1[15];
};

struct rs_hdr {
    uint32_t magic;                 /* RS_MAGIC once the file is complete (stored last) */
    uint32_t version;               /* RS_VERSION */
    uint32_t hdr_bytes, rec_bytes;  /* sizeof(struct rs_hdr), sizeof(struct rs_rec) */
    uint32_t fe_domid, abi, nr_queues, pad;
    uint64_t file_bytes;
    struct rs_queue q[XBD_MAX_QUEUES];
};

struct rstate {
    struct rs_hdr *hdr;             /* the mapping (file or anonymous) */
    size_t len;
    char *path;                     /* NULL: anonymous, nothing survives the process */
    bool recovered;                 /* an existing file of this ring was taken over */
    bool keep;                      /* leave the file for a restarted daemon */
    const struct log_dev *dev;      /* whose log lines (rs_open's; outlives rs) */
};

/*
 * Open the restart state of a vbd whose queues are described by cfg
 * (nr_queues, per queue nr_ring_pages, ring_ref, evtchn) with nr_slots[i]
 * slots (ring size) per queue.  path NULL: anonymous memory (data-plane
 * tests).  reattach: take over an existing file if it belongs to these rings
 * (rs->recovered = true); otherwise (or if it does not match) the file is
 * created anew, empty.  0, or -errno of open/ftruncate/mmap, -EINVAL (too
 * many slots).  Errors are logged about dev (log.h; kept in rs->dev, so it
 * must outlive rs).
 */
int  rs_open(struct rstate *rs, const char *path, const struct dp_config *cfg,
             const unsigned *nr_slots, const struct log_dev *dev);

/* Unmap; remove the file unless rs->keep.  Idempotent. */
void rs_close(struct rstate *rs);

static inline struct rs_rec *rs_recs(const struct rstate *rs, unsigned qi)
{
    return (struct rs_rec *)((char *)rs->hdr + rs->hdr->q[qi].rec_off);
}

/*
 * Recovery of queue qi after a restart (rs->recovered): with the shared
 * req_prod and the published rsp_prod of its ring (ring size `size`), fill
 * redo[] (capacity nr_slots) with the slots to re-issue in ring order and
 * *nredo, and *req_cons with where consuming resumes.  Every redo record is
 * left RS_INFLIGHT, every other one RS_FREE.  0, or -EPROTO when the state contradicts the ring
 * (message logged; nothing is changed then).
 */
int  rs_recover(struct rstate *rs, unsigned qi, uint32_t req_prod, uint32_t rsp_prod,
                unsigned size, uint16_t *redo, unsigned *nredo, uint32_t *req_cons);

#endif
