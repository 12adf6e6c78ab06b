/*
 * ring.c - blkif front ring in the x86_32 or x86_64 layout (Linux blkfront
 * blkif_queue_request / blkif_interrupt, xen/io/ring.h macros).
 */
#include "ring.h"

#include <string.h>

/* Run the statement (the variadic argument) with `R` bound to the front
 * ring of the right layout. */
#define WITH_RING(r, R, ...) do {                                                   \
    if ((r)->abi == BLKIF_ABI_X86_32) { __auto_type R = &(r)->r32; __VA_ARGS__; }   \
    else { __auto_type R = &(r)->r64; __VA_ARGS__; }                                \
} while (0)

/* The same, with the type name `T` bound to T32 or T64 (a request or response
 * struct of that layout). */
#define WITH_RING_T(r, R, T, T32, T64, ...) do {                                    \
    if ((r)->abi == BLKIF_ABI_X86_32) {                                             \
        __auto_type R = &(r)->r32; typedef T32 T; __VA_ARGS__;                      \
    } else {                                                                        \
        __auto_type R = &(r)->r64; typedef T64 T; __VA_ARGS__;                      \
    }                                                                               \
} while (0)

/* Declare `req`: the request at req_prod_pvt as a zeroed T, with the header
 * fields every request has. */
#define NEW_REQ(R, T, req, op_, handle_, id_, sector_)                              \
    T *req = (void *)RING_GET_REQUEST(R, (R)->req_prod_pvt);                          \
    memset(req, 0, sizeof(*req));                                                   \
    req->operation = (op_);                                                         \
    req->handle = (handle_);                                                        \
    req->id = (id_);                                                                \
    req->sector_number = (sector_)

void bbr_init(struct bbr *r, enum blkif_abi abi, void *sring, size_t bytes)
{
    memset(r, 0, sizeof(*r));
    r->abi = abi == BLKIF_ABI_X86_32 ? BLKIF_ABI_X86_32 : BLKIF_ABI_X86_64;
    WITH_RING(r, R, {
        __typeof__(R->sring) s = sring;
        SHARED_RING_INIT(s);
        FRONT_RING_INIT(R, s, bytes);
    });
}

unsigned bbr_size(const struct bbr *r)
{
    return r->abi == BLKIF_ABI_X86_32 ? RING_SIZE(&r->r32) : RING_SIZE(&r->r64);
}

unsigned bbr_free(const struct bbr *r)
{
    return r->abi == BLKIF_ABI_X86_32 ? RING_FREE_REQUESTS(&r->r32) : RING_FREE_REQUESTS(&r->r64);
}

void bbr_put_rw(struct bbr *r, uint8_t op, uint8_t nseg, uint16_t handle, uint64_t id,
                uint64_t sector, const struct blkif_request_segment *seg)
{
    WITH_RING(r, R, {
        __auto_type req = RING_GET_REQUEST(R, R->req_prod_pvt);
        req->operation = op;
        req->nr_segments = nseg;
        req->handle = handle;
        req->id = id;
        req->sector_number = sector;
        for (unsigned i = 0; i < nseg && i < BLKIF_MAX_SEGMENTS_PER_REQUEST; i++)
            req->seg[i] = seg[i];
        R->req_prod_pvt++;
    });
}

void bbr_put_indirect(struct bbr *r, uint8_t indirect_op, uint16_t nseg, uint16_t handle,
                      uint64_t id, uint64_t sector, const grant_ref_t *grefs, unsigned ngrefs)
{
    WITH_RING_T(r, R, req_t, struct blkif_x86_32_request_indirect,
                struct blkif_x86_64_request_indirect, {
        NEW_REQ(R, req_t, req, BLKIF_OP_INDIRECT, handle, id, sector);
        req->indirect_op = indirect_op;
        req->nr_segments = nseg;
        for (unsigned i = 0; i < ngrefs && i < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; i++)
            req->indirect_grefs[i] = grefs[i];
        R->req_prod_pvt++;
    });
}

void bbr_put_discard(struct bbr *r, uint8_t flag, uint16_t handle, uint64_t id,
                     uint64_t sector, uint64_t nr_sectors)
{
    WITH_RING_T(r, R, req_t, struct blkif_x86_32_request_discard,
                struct blkif_x86_64_request_discard, {
        NEW_REQ(R, req_t, req, BLKIF_OP_DISCARD, handle, id, sector);
        req->flag = flag;
        req->nr_sectors = nr_sectors;
        R->req_prod_pvt++;
    });
}

bool bbr_push(struct bbr *r)
{
    int notify;
    WITH_RING(r, R, RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(R, notify));
    return notify;
}

RING_IDX bbr_rsp_prod(const struct bbr *r)
{
    RING_IDX rp;
    WITH_RING(r, R, rp = *(volatile RING_IDX *)&R->sring->rsp_prod);
    xen_rmb();          /* entries after the index (blkif_interrupt) */
    return rp;
}

RING_IDX bbr_rsp_cons(const struct bbr *r)
{
    return r->abi == BLKIF_ABI_X86_32 ? r->r32.rsp_cons : r->r64.rsp_cons;
}

RING_IDX bbr_req_prod_pvt(const struct bbr *r)
{
    return r->abi == BLKIF_ABI_X86_32 ? r->r32.req_prod_pvt : r->r64.req_prod_pvt;
}

void bbr_get_rsp(const struct bbr *r, RING_IDX idx, struct bbr_rsp *out)
{
    WITH_RING_T(r, R, rsp_t, struct blkif_x86_32_response, struct blkif_x86_64_response, {
        rsp_t rsp;
        RING_COPY_RESPONSE(R, idx, &rsp);
        out->id = rsp.id;
        out->op = rsp.operation;
        out->status = rsp.status;
    });
}

void bbr_set_rsp_cons(struct bbr *r, RING_IDX idx)
{
    WITH_RING(r, R, R->rsp_cons = idx);
}

bool bbr_final_check(struct bbr *r)
{
    int more;
    WITH_RING(r, R, RING_FINAL_CHECK_FOR_RESPONSES(R, more));
    return more;
}

void bbr_indices(const struct bbr *r, RING_IDX *req_prod, RING_IDX *req_event,
                 RING_IDX *rsp_prod, RING_IDX *rsp_event)
{
    WITH_RING(r, R, {
        *req_prod = R->sring->req_prod;
        *req_event = R->sring->req_event;
        *rsp_prod = R->sring->rsp_prod;
        *rsp_event = R->sring->rsp_event;
    });
}
