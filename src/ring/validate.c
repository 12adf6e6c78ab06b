/*
 * validate.c - the hostile-frontend table of docs/protocol.md §4.6 applied to the
 * private copy of a request (see validate.h for the order of checks).
 */
#include "validate.h"

#define OK(c)             (BLKIF_RSP_OKAY)
#define REFUSE(c, st, w)  ((c)->why = (w), (st))

/* Sector range [start, start + n) must not wrap nor pass the end of the
 * device (torvalds/linux:drivers/block/xen-blkback/blkback.c@v6.1 xen_vbd_translate). */
static bool range_ok(const struct blkif_limits *lim, uint64_t start, uint64_t n)
{
    uint64_t end = start + n;
    return end >= start && end <= lim->sectors;
}

static uint64_t align_mask(const struct blkif_limits *lim)
{
    uint32_t ss = lim->sector_size < 512 ? 512 : lim->sector_size;
    return (ss >> 9) - 1;                /* in 512-byte sectors */
}

int blkif_check_req(const struct blkif_limits *lim, const struct blkif_req *req,
                    struct blkif_checked *c)
{
    c->rsp_op = blkif_rsp_op(req);
    c->indirect = false;
    c->secure = false;
    c->to_guest = false;
    c->nr_segs = 0;
    c->nr_indirect_pages = 0;
    c->nr_sectors = 0;
    c->why = NULL;

    switch (req->operation) {
    case BLKIF_OP_READ:
    case BLKIF_OP_WRITE:
        c->kind = req->operation == BLKIF_OP_READ ? BLKIF_KIND_READ : BLKIF_KIND_WRITE;
        c->to_guest = req->operation == BLKIF_OP_READ;
        if (req->nr_segments == 0 || req->nr_segments > BLKIF_MAX_SEGMENTS_PER_REQUEST)
            return REFUSE(c, BLKIF_RSP_ERROR, "bad nr_segments");
        c->nr_segs = req->nr_segments;
        break;
    case BLKIF_OP_FLUSH_DISKCACHE:
    case BLKIF_OP_WRITE_BARRIER:
        if (req->operation == BLKIF_OP_FLUSH_DISKCACHE) {
            c->kind = BLKIF_KIND_FLUSH;
            if (!lim->flush)
                return REFUSE(c, BLKIF_RSP_EOPNOTSUPP, "flush not advertised");
        } else {
            c->kind = BLKIF_KIND_BARRIER;
            if (!lim->barrier)
                return REFUSE(c, BLKIF_RSP_EOPNOTSUPP, "barrier not advertised");
        }
        if (req->nr_segments > BLKIF_MAX_SEGMENTS_PER_REQUEST)
            return REFUSE(c, BLKIF_RSP_ERROR, "bad nr_segments");
        c->nr_segs = req->nr_segments;
        /* Linux refuses write, flush or discard on a read-only vbd with
         * -EACCES -> ERROR, a flush without data included (docs/protocol.md §4.6;
         * Linux xen_vbd_translate, dispatch_rw_block_io: operation != REQ_OP_READ). */
        if (lim->readonly)
            return REFUSE(c, BLKIF_RSP_ERROR, c->nr_segs ? "write to read-only vbd"
                                                        : "flush on read-only vbd");
        return OK(c);
    case BLKIF_OP_DISCARD:
        c->kind = BLKIF_KIND_DISCARD;
        if (!lim->discard)
            return REFUSE(c, BLKIF_RSP_EOPNOTSUPP, "discard not advertised");
        c->secure = req->discard_flag & BLKIF_DISCARD_SECURE;
        if (c->secure && !lim->secure_discard)
            return REFUSE(c, BLKIF_RSP_EOPNOTSUPP, "secure discard not supported");
        if (lim->readonly)
            return REFUSE(c, BLKIF_RSP_ERROR, "discard on read-only vbd");
        if ((req->sector_number | req->nr_sectors) & align_mask(lim))
            return REFUSE(c, BLKIF_RSP_ERROR, "misaligned discard");
        if (!range_ok(lim, req->sector_number, req->nr_sectors))
            return REFUSE(c, BLKIF_RSP_ERROR, "discard beyond end of vbd");
        c->nr_sectors = req->nr_sectors;
        return OK(c);
    case BLKIF_OP_INDIRECT: {
        /* Linux answers ERROR when it does not advertise INDIRECT.  blkif.h
         * (at BLKIF_OP_INDIRECT) only says such a backend must not write
         * feature-max-indirect-segments; we answer EOPNOTSUPP as for any
         * operation not advertised. */
        unsigned max = lim->max_indirect_segs;
        if (max > BLKIF_MAX_INDIRECT_SEGS_PROTO)
            max = BLKIF_MAX_INDIRECT_SEGS_PROTO;
        if (max == 0)
            return REFUSE(c, BLKIF_RSP_EOPNOTSUPP, "indirect not advertised");
        if (req->indirect_op != BLKIF_OP_READ && req->indirect_op != BLKIF_OP_WRITE)
            return REFUSE(c, BLKIF_RSP_ERROR, "bad indirect_op");
        c->kind = req->indirect_op == BLKIF_OP_READ ? BLKIF_KIND_READ : BLKIF_KIND_WRITE;
        c->to_guest = req->indirect_op == BLKIF_OP_READ;
        c->indirect = true;
        if (req->nr_segments == 0 || req->nr_segments > max)
            return REFUSE(c, BLKIF_RSP_ERROR, "bad indirect nr_segments");
        c->nr_segs = req->nr_segments;
        c->nr_indirect_pages = (c->nr_segs + BLKIF_SEGS_PER_INDIRECT_PAGE - 1) /
                               BLKIF_SEGS_PER_INDIRECT_PAGE;
        break;
    }
    default:
        /* Unknown (incl. RESERVED_1): echo op and id (Linux dispatch_other_io). */
        return REFUSE(c, BLKIF_RSP_EOPNOTSUPP, "unknown operation");
    }
    /* READ / WRITE / INDIRECT */
    if (lim->readonly && c->kind != BLKIF_KIND_READ)
        return REFUSE(c, BLKIF_RSP_ERROR, "write to read-only vbd");
    return OK(c);
}

int blkif_check_segs(const struct blkif_limits *lim, const struct blkif_req *req,
                     const struct blkif_request_segment *seg, struct blkif_checked *c)
{
    uint64_t mask = align_mask(lim), total = 0;

    if (c->nr_segs == 0)
        return OK(c);
    if (req->sector_number & mask)
        return REFUSE(c, BLKIF_RSP_ERROR, "misaligned sector_number");
    for (unsigned i = 0; i < c->nr_segs; i++) {
        uint8_t first = seg[i].first_sect, last = seg[i].last_sect;
        if (last >= XEN_PAGE_SIZE / 512 || first > last)
            return REFUSE(c, BLKIF_RSP_ERROR, "bad first_sect/last_sect");
        if ((uint64_t)(last - first + 1) & mask)
            return REFUSE(c, BLKIF_RSP_ERROR, "misaligned segment");
        total += (uint64_t)(last - first + 1);
    }
    if (!range_ok(lim, req->sector_number, total))
        return REFUSE(c, BLKIF_RSP_ERROR, "access beyond end of vbd");
    c->nr_sectors = total;
    return OK(c);
}

int blkif_validate(const struct blkif_limits *lim, const struct blkif_req *req,
                   const struct blkif_request_segment *iseg, struct blkif_checked *c)
{
    int st = blkif_check_req(lim, req, c);
    if (st != BLKIF_RSP_OKAY || c->kind == BLKIF_KIND_DISCARD)
        return st;
    return blkif_check_segs(lim, req, c->indirect ? iseg : req->seg, c);
}
