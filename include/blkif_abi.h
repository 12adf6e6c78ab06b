/*
 * blkif_abi.h - the guest wire ABI of the PV block protocol, for all three
 * layouts a 64-bit backend meets: native (= x86_64 here), x86_32 and x86_64
 * (protocol key "x86_32-abi" / "x86_64-abi", xen/io/protocols.h).
 *
 * Every request is copied out of the shared ring exactly once into a
 * struct blkif_req (ABI independent), and only that private copy is validated
 * and used (docs/protocol.md §4.5 (double-fetch);
 * torvalds/linux:drivers/block/xen-blkback/common.h@v6.1).
 *
 * Sizes (checked by _Static_assert below; docs/protocol.md §3.3 table):
 *   request  x86_64 112 B, x86_32 108 B;  response x86_64 16 B, x86_32 12 B.
 */
#ifndef XBD_BLKIF_ABI_H
#define XBD_BLKIF_ABI_H

#ifndef __XEN_TOOLS__
#define __XEN_TOOLS__ 1         /* ring.h barriers: docs/protocol.md §4.3 */
#endif
#include <stdint.h>
#include <stddef.h>
#include <xenctrl.h>            /* xen_mb/xen_rmb/xen_wmb used by ring.h */
#include <xen/io/blkif.h>
#include <xen/io/ring.h>
#include <xen/io/protocols.h>

#ifndef XEN_PAGE_SIZE
#define XEN_PAGE_SIZE 4096u
#endif

enum blkif_abi {
    BLKIF_ABI_NATIVE = 0,
    BLKIF_ABI_X86_32 = 1,
    BLKIF_ABI_X86_64 = 2,
};

/* ---- x86_32 layout (uint64_t 4-byte aligned) ------------------------------ */
struct blkif_x86_32_request {
    uint8_t  operation;
    uint8_t  nr_segments;
    uint16_t handle;
    uint64_t id;
    uint64_t sector_number;
    struct blkif_request_segment seg[BLKIF_MAX_SEGMENTS_PER_REQUEST];
} __attribute__((packed, aligned(4)));
struct blkif_x86_32_request_discard {
    uint8_t  operation;
    uint8_t  flag;
    uint16_t handle;
    uint64_t id;
    uint64_t sector_number;
    uint64_t nr_sectors;
} __attribute__((packed, aligned(4)));
struct blkif_x86_32_request_indirect {
    uint8_t  operation;
    uint8_t  indirect_op;
    uint16_t nr_segments;
    uint64_t id;
    uint64_t sector_number;
    uint16_t handle;
    uint16_t _pad1;
    grant_ref_t indirect_grefs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
    uint64_t pad;
} __attribute__((packed, aligned(4)));
struct blkif_x86_32_response {
    uint64_t id;
    uint8_t  operation;
    uint8_t  _pad;
    int16_t  status;
} __attribute__((packed, aligned(4)));

/* ---- x86_64 layout (uint64_t 8-byte aligned) ------------------------------ */
struct blkif_x86_64_request {
    uint8_t  operation;
    uint8_t  nr_segments;
    uint16_t handle;
    uint32_t _pad1;
    uint64_t id;
    uint64_t sector_number;
    struct blkif_request_segment seg[BLKIF_MAX_SEGMENTS_PER_REQUEST];
} __attribute__((packed, aligned(8)));
struct blkif_x86_64_request_discard {
    uint8_t  operation;
    uint8_t  flag;
    uint16_t handle;
    uint32_t _pad1;
    uint64_t id;
    uint64_t sector_number;
    uint64_t nr_sectors;
} __attribute__((packed, aligned(8)));
struct blkif_x86_64_request_indirect {
    uint8_t  operation;
    uint8_t  indirect_op;
    uint16_t nr_segments;
    uint32_t _pad1;
    uint64_t id;
    uint64_t sector_number;
    uint16_t handle;
    uint16_t _pad2;
    grant_ref_t indirect_grefs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
    uint32_t _pad3;
} __attribute__((packed, aligned(8)));
struct blkif_x86_64_response {
    uint64_t id;
    uint8_t  operation;
    uint8_t  _pad;
    int16_t  status;
    uint32_t _pad2;
} __attribute__((packed, aligned(8)));

DEFINE_RING_TYPES(blkif_x86_32, struct blkif_x86_32_request, struct blkif_x86_32_response);
DEFINE_RING_TYPES(blkif_x86_64, struct blkif_x86_64_request, struct blkif_x86_64_response);

_Static_assert(sizeof(struct blkif_x86_32_request) == 108, "x86_32 request");
_Static_assert(offsetof(struct blkif_x86_32_request, seg) == 20, "x86_32 seg");
_Static_assert(sizeof(struct blkif_x86_32_request_discard) == 28, "x86_32 discard");
_Static_assert(sizeof(struct blkif_x86_32_request_indirect) == 64, "x86_32 indirect");
_Static_assert(offsetof(struct blkif_x86_32_request_indirect, indirect_grefs) == 24, "x86_32 grefs");
_Static_assert(sizeof(struct blkif_x86_32_response) == 12, "x86_32 response");
_Static_assert(sizeof(union blkif_x86_32_sring_entry) == 108, "x86_32 entry");
_Static_assert(sizeof(struct blkif_x86_64_request) == 112, "x86_64 request");
_Static_assert(offsetof(struct blkif_x86_64_request, seg) == 24, "x86_64 seg");
_Static_assert(sizeof(struct blkif_x86_64_request_discard) == 32, "x86_64 discard");
_Static_assert(sizeof(struct blkif_x86_64_request_indirect) == 64, "x86_64 indirect");
_Static_assert(offsetof(struct blkif_x86_64_request_indirect, indirect_grefs) == 28, "x86_64 grefs");
_Static_assert(sizeof(struct blkif_x86_64_response) == 16, "x86_64 response");
_Static_assert(sizeof(union blkif_x86_64_sring_entry) == 112, "x86_64 entry");
#if defined(__x86_64__)
_Static_assert(sizeof(union blkif_sring_entry) == 112, "native == x86_64");
#endif

/* Segments per indirect page (Linux SEGS_PER_INDIRECT_FRAME). */
#define BLKIF_SEGS_PER_INDIRECT_PAGE (XEN_PAGE_SIZE / sizeof(struct blkif_request_segment))
/* Protocol maximum of segments in one indirect request: 8 pages x 512. */
#define BLKIF_MAX_INDIRECT_SEGS_PROTO (BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST * BLKIF_SEGS_PER_INDIRECT_PAGE)

/*
 * The private, ABI-independent copy of one request.  Fields are raw as the
 * frontend sent them: nothing in here is validated yet.
 */
struct blkif_req {
    uint8_t  operation;         /* BLKIF_OP_* */
    uint8_t  indirect_op;       /* INDIRECT only */
    uint8_t  discard_flag;      /* DISCARD only: BLKIF_DISCARD_SECURE */
    uint16_t nr_segments;       /* as sent (direct: only seg[0..10] are copied) or indirect count */
    uint16_t handle;
    uint64_t id;
    uint64_t sector_number;     /* 512-byte sectors */
    uint64_t nr_sectors;        /* DISCARD only, 512-byte sectors */
    grant_ref_t indirect_grefs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
    struct blkif_request_segment seg[BLKIF_MAX_SEGMENTS_PER_REQUEST]; /* direct only */
};

/* Parse the xenstore `protocol` value.  NULL/missing -> native (docs/protocol.md §1.3).
 * Returns 0, or -EINVAL for an unknown string (e.g. "arm-abi" on x86). */
int blkif_abi_parse(const char *protocol, enum blkif_abi *abi);
const char *blkif_abi_name(enum blkif_abi abi);

/* Bytes of one ring entry for this ABI (112 or 108). */
size_t blkif_abi_entry_size(enum blkif_abi abi);

/* Copy the request in ring slot `slot` (pointer to the shared entry) into *dst,
 * reading each shared byte once; nr_segments of direct requests is clamped to
 * BLKIF_MAX_SEGMENTS_PER_REQUEST before segments are copied (docs/protocol.md
 * §4.5). */
void blkif_abi_get_req(enum blkif_abi abi, struct blkif_req *dst, const volatile void *slot);

/* Write one response into ring slot `slot` in the ABI's layout. */
void blkif_abi_put_rsp(enum blkif_abi abi, volatile void *slot, uint64_t id, uint8_t op, int16_t status);

#endif
