/*
 * validate.h - request validation of the data plane (private to src/ring/,
 * used by tests/t_validate.c without a ring).  The hostile-frontend table of
 * docs/protocol.md §4.6, answered as Linux 6.1 blkback does
 * (torvalds/linux:drivers/block/xen-blkback/blkback.c@v6.1) or
 * stricter where noted.
 *
 * Validation runs on the private copy (struct blkif_req) only, in two steps
 * because indirect segments are only known after the indirect pages are
 * read: blkif_check_req (the request header) then blkif_check_segs (the
 * segment array: req->seg for direct requests, the private copy of the
 * indirect pages for INDIRECT).  blkif_validate does both for tests.
 *
 * Every function returns a blkif status: BLKIF_RSP_OKAY, BLKIF_RSP_ERROR or
 * BLKIF_RSP_EOPNOTSUPP, and a short reason for the log line.
 */
#ifndef XBD_RING_VALIDATE_H
#define XBD_RING_VALIDATE_H

#include <stdbool.h>
#include <stdint.h>
#include "blkif_abi.h"
#include "dataplane.h"          /* struct blkif_limits */

/* What the backend advertised (from struct dp_config + engine caps). */
/* What a request turned out to be (filled by blkif_check_req). */
enum blkif_kind {
    BLKIF_KIND_READ,            /* READ, or INDIRECT(READ) */
    BLKIF_KIND_WRITE,           /* WRITE, or INDIRECT(WRITE) */
    BLKIF_KIND_FLUSH,           /* FLUSH_DISKCACHE (with or without data) */
    BLKIF_KIND_BARRIER,         /* WRITE_BARRIER (with or without data) */
    BLKIF_KIND_DISCARD,
};

struct blkif_checked {
    enum blkif_kind kind;
    uint8_t rsp_op;             /* operation to echo: indirect_op for INDIRECT
                                   (docs/protocol.md §4.7) */
    bool indirect;
    bool secure;                /* DISCARD with BLKIF_DISCARD_SECURE */
    bool to_guest;              /* data moves storage -> guest memory (READ): map RW */
    unsigned nr_segs;           /* segments that follow (0 for flush/barrier w/o data, discard) */
    unsigned nr_indirect_pages; /* INDIRECT: ceil(nr_segs / 512) */
    uint64_t nr_sectors;        /* DISCARD: from the request; else filled by check_segs */
    const char *why;            /* reason of a refusal, static string, for the log */
};

/* The operation the response must carry for this raw request. */
static inline uint8_t blkif_rsp_op(const struct blkif_req *req)
{
    return req->operation == BLKIF_OP_INDIRECT ? req->indirect_op : req->operation;
}

/*
 * Step 1, the header: opcode and features, segment count, read-only, and for
 * DISCARD the alignment and sector range (docs/protocol.md §4.6 table).
 * Order of checks: unknown op (EOPNOTSUPP), op not advertised (EOPNOTSUPP;
 * INDIRECT when max_indirect_segs == 0 too, where Linux answers ERROR),
 * segment count (ERROR), read-only (ERROR), alignment/range (ERROR).
 */
int blkif_check_req(const struct blkif_limits *lim, const struct blkif_req *req,
                    struct blkif_checked *out);

/*
 * Step 2, the segments (n = out->nr_segs entries of a private array):
 * last_sect >= 8 or first_sect > last_sect (ERROR, dispatch_rw_block_io and
 * xen_blkbk_parse_indirect),
 * sector_number or a segment length not a multiple of sector_size/512
 * (ERROR, dispatch_rw_block_io), range wraps or ends past `sectors` (ERROR,
 * xen_vbd_translate; Linux functions as in docs/protocol.md §4.6).  Sets
 * c->nr_sectors (512-byte sectors of data).
 */
int blkif_check_segs(const struct blkif_limits *lim, const struct blkif_req *req,
                     const struct blkif_request_segment *seg, struct blkif_checked *c);

/* Both steps; `iseg` is the segment array of an INDIRECT request (ignored
 * otherwise).  For tests and tools. */
int blkif_validate(const struct blkif_limits *lim, const struct blkif_req *req,
                   const struct blkif_request_segment *iseg, struct blkif_checked *out);

#endif
