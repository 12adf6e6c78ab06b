/*
 * ring.h - the front side of one blkif shared ring in either guest layout
 * (x86_32: 108-byte entries, x86_64: 112-byte entries; include/blkif_abi.h),
 * driven with the ring.h macros exactly as Linux blkfront does.
 */
#ifndef XBD_BLKBENCH_RING_H
#define XBD_BLKBENCH_RING_H

#include <stdbool.h>
#include <stdint.h>
#include "blkif_abi.h"

struct bbr {
    enum blkif_abi abi;                 /* BLKIF_ABI_X86_32 or BLKIF_ABI_X86_64 */
    union {
        blkif_x86_32_front_ring_t r32;
        blkif_x86_64_front_ring_t r64;
    };
};

struct bbr_rsp { uint64_t id; uint8_t op; int16_t status; };

/* SHARED_RING_INIT + FRONT_RING_INIT over `bytes` (4096 << order) at sring. */
void bbr_init(struct bbr *r, enum blkif_abi abi, void *sring, size_t bytes);
unsigned bbr_size(const struct bbr *r);            /* entries: 32 << order */
unsigned bbr_free(const struct bbr *r);            /* RING_FREE_REQUESTS */

/* Write one request at req_prod_pvt and advance it (not yet pushed).
 * seg: nseg segments (<= 11) for READ/WRITE/FLUSH/BARRIER. */
void bbr_put_rw(struct bbr *r, uint8_t op, uint8_t nseg, uint16_t handle, uint64_t id,
                uint64_t sector, const struct blkif_request_segment *seg);
void bbr_put_indirect(struct bbr *r, uint8_t indirect_op, uint16_t nseg, uint16_t handle,
                      uint64_t id, uint64_t sector, const grant_ref_t *grefs, unsigned ngrefs);
void bbr_put_discard(struct bbr *r, uint8_t flag, uint16_t handle, uint64_t id,
                     uint64_t sector, uint64_t nr_sectors);
/* RING_PUSH_REQUESTS_AND_CHECK_NOTIFY: true when the backend wants an event. */
bool bbr_push(struct bbr *r);

/* Responses: rsp_prod (read before the entries: rmb), the consumer index,
 * one entry (copied out once), advance, and RING_FINAL_CHECK_FOR_RESPONSES. */
RING_IDX bbr_rsp_prod(const struct bbr *r);
RING_IDX bbr_rsp_cons(const struct bbr *r);
RING_IDX bbr_req_prod_pvt(const struct bbr *r);
void bbr_get_rsp(const struct bbr *r, RING_IDX idx, struct bbr_rsp *out);
void bbr_set_rsp_cons(struct bbr *r, RING_IDX idx);
bool bbr_final_check(struct bbr *r);
/* Shared indices, for diagnostics. */
void bbr_indices(const struct bbr *r, RING_IDX *req_prod, RING_IDX *req_event,
                 RING_IDX *rsp_prod, RING_IDX *rsp_event);

#endif
