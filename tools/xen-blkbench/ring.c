/*
 * ring.c - blkif front ring in the x86_32 or x86_64 layout (Linux blkfront
 * blkif_queue_request / blkif_interrupt, xen/io/ring.h macros).
 */
#include "ring.h"

#include <string.h>

/* Run `stmt` with `R` bound to the front ring of the right layout. */
#define WITH_RING(r, R, stmt) do {                                          \
    if ((r)->abi == BLKIF_ABI_X86_32) { __auto_type R = &(r)->r32; stmt; }  \
    else { __auto_type R = &(r)->r64; stmt; }                               \
} while (0)

void bbr_init(struct bbr *r, enum blkif_abi abi, void *sring, size_t bytes)
{
    memset(r, 0, sizeof(*r));
    r->abi = abi == BLKIF_ABI_X86_32 ? BLKIF_ABI_X86_32 : BLKIF_ABI_X86_64;
    if (r->abi == BLKIF_ABI_X86_32) {
        blkif_x86_32_sring_t *s = sring;
        SHARED_RING_INIT(s);
        FRONT_RING_INIT(&r->r32, s, bytes);
    } else {
        blkif_x86_64_sring_t *s = sring;
        SHARED_RING_INIT(s);
        FRONT_RING_INIT(&r->r64, s, bytes);
    }
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
    if (r->abi == BLKIF_ABI_X86_32) {
        __auto_type R = &r->r32;
        struct blkif_x86_32_request_indirect *req = (void *)RING_GET_REQUEST(R, R->req_prod_pvt);
        memset(req, 0, sizeof(*req));
        req->operation = BLKIF_OP_INDIRECT;
        req->indirect_op = indirect_op;
        req->nr_segments = nseg;
        req->id = id;
        req->sector_number = sector;
        req->handle = handle;
        for (unsigned i = 0; i < ngrefs && i < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; i++)
            req->indirect_grefs[i] = grefs[i];
        R->req_prod_pvt++;
    } else {
        __auto_type R = &r->r64;
        struct blkif_x86_64_request_indirect *req = (void *)RING_GET_REQUEST(R, R->req_prod_pvt);
        memset(req, 0, sizeof(*req));
        req->operation = BLKIF_OP_INDIRECT;
        req->indirect_op = indirect_op;
        req->nr_segments = nseg;
        req->id = id;
        req->sector_number = sector;
        req->handle = handle;
        for (unsigned i = 0; i < ngrefs && i < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; i++)
            req->indirect_grefs[i] = grefs[i];
        R->req_prod_pvt++;
    }
}

void bbr_put_discard(struct bbr *r, uint8_t flag, uint16_t handle, uint64_t id,
                     uint64_t sector, uint64_t nr_sectors)
{
    if (r->abi == BLKIF_ABI_X86_32) {
        __auto_type R = &r->r32;
        struct blkif_x86_32_request_discard *req = (void *)RING_GET_REQUEST(R, R->req_prod_pvt);
        memset(req, 0, sizeof(*req));
        req->operation = BLKIF_OP_DISCARD;
        req->flag = flag;
        req->handle = handle;
        req->id = id;
        req->sector_number = sector;
        req->nr_sectors = nr_sectors;
        R->req_prod_pvt++;
    } else {
        __auto_type R = &r->r64;
        struct blkif_x86_64_request_discard *req = (void *)RING_GET_REQUEST(R, R->req_prod_pvt);
        memset(req, 0, sizeof(*req));
        req->operation = BLKIF_OP_DISCARD;
        req->flag = flag;
        req->handle = handle;
        req->id = id;
        req->sector_number = sector;
        req->nr_sectors = nr_sectors;
        R->req_prod_pvt++;
    }
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
    if (r->abi == BLKIF_ABI_X86_32)
        rp = *(volatile RING_IDX *)&r->r32.sring->rsp_prod;
    else
        rp = *(volatile RING_IDX *)&r->r64.sring->rsp_prod;
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
    if (r->abi == BLKIF_ABI_X86_32) {
        struct blkif_x86_32_response rsp;
        RING_COPY_RESPONSE(&r->r32, idx, &rsp);
        out->id = rsp.id;
        out->op = rsp.operation;
        out->status = rsp.status;
    } else {
        struct blkif_x86_64_response rsp;
        RING_COPY_RESPONSE(&r->r64, idx, &rsp);
        out->id = rsp.id;
        out->op = rsp.operation;
        out->status = rsp.status;
    }
}

void bbr_set_rsp_cons(struct bbr *r, RING_IDX idx)
{
    if (r->abi == BLKIF_ABI_X86_32)
        r->r32.rsp_cons = idx;
    else
        r->r64.rsp_cons = idx;
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
