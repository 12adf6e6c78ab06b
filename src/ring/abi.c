/*
 * abi.c - blkif wire ABI translation: one request copied out of a shared
 * ring slot into struct blkif_req (each shared byte read once), one response
 * written in the frontend's layout.  Mirrors blkif_get_x86_{32,64}_req of
 * torvalds/linux:drivers/block/xen-blkback/common.h@v6.1; layouts in
 * docs/protocol.md §3.3 (layouts).
 */
#include "blkif_abi.h"

#include <errno.h>
#include <string.h>

int blkif_abi_parse(const char *protocol, enum blkif_abi *abi)
{
    enum blkif_abi a;

    if (!protocol || !*protocol)
        a = BLKIF_ABI_NATIVE;                   /* blkif.h `protocol` */
    else if (!strcmp(protocol, XEN_IO_PROTO_ABI_X86_32))
        a = BLKIF_ABI_X86_32;
    else if (!strcmp(protocol, XEN_IO_PROTO_ABI_X86_64))
        a = BLKIF_ABI_X86_64;
    else
        return -EINVAL;
    *abi = a;
    return 0;
}

const char *blkif_abi_name(enum blkif_abi abi)
{
    switch (abi) {
    case BLKIF_ABI_NATIVE: return "native";
    case BLKIF_ABI_X86_32: return XEN_IO_PROTO_ABI_X86_32;
    case BLKIF_ABI_X86_64: return XEN_IO_PROTO_ABI_X86_64;
    }
    return "unknown";
}

size_t blkif_abi_entry_size(enum blkif_abi abi)
{
    if (abi == BLKIF_ABI_X86_32)
        return sizeof(union blkif_x86_32_sring_entry);
    return sizeof(union blkif_x86_64_sring_entry);
}

/* The request layouts differ only in where fields sit; one macro body reads
 * each variant of either layout.  `s` points at the shared entry (volatile):
 * every field is loaded exactly once into the private copy. */
#define GET_REQ(T, dst, slot) do {                                              \
    const volatile struct T##_request *r_ = (const volatile void *)(slot);      \
    uint8_t op_ = r_->operation;                                                \
    (dst)->operation = op_;                                                     \
    if (op_ == BLKIF_OP_DISCARD) {                                              \
        const volatile struct T##_request_discard *d_ = (const volatile void *)(slot); \
        (dst)->discard_flag = d_->flag;                                         \
        (dst)->handle = d_->handle;                                             \
        (dst)->id = d_->id;                                                     \
        (dst)->sector_number = d_->sector_number;                               \
        (dst)->nr_sectors = d_->nr_sectors;                                     \
    } else if (op_ == BLKIF_OP_INDIRECT) {                                      \
        const volatile struct T##_request_indirect *i_ = (const volatile void *)(slot); \
        (dst)->indirect_op = i_->indirect_op;                                   \
        (dst)->nr_segments = i_->nr_segments;                                   \
        (dst)->handle = i_->handle;                                             \
        (dst)->id = i_->id;                                                     \
        (dst)->sector_number = i_->sector_number;                               \
        for (unsigned k_ = 0; k_ < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; k_++)  \
            (dst)->indirect_grefs[k_] = i_->indirect_grefs[k_];                 \
    } else {                                                                    \
        uint8_t n_ = r_->nr_segments;                                           \
        (dst)->nr_segments = n_;        /* raw: validation refuses > 11 */      \
        (dst)->handle = r_->handle;                                             \
        (dst)->id = r_->id;                                                     \
        (dst)->sector_number = r_->sector_number;                               \
        if (n_ > BLKIF_MAX_SEGMENTS_PER_REQUEST)                                \
            n_ = BLKIF_MAX_SEGMENTS_PER_REQUEST;    /* docs/protocol.md §4.5 */ \
        for (unsigned k_ = 0; k_ < n_; k_++) {                                  \
            (dst)->seg[k_].gref = r_->seg[k_].gref;                             \
            (dst)->seg[k_].first_sect = r_->seg[k_].first_sect;                 \
            (dst)->seg[k_].last_sect = r_->seg[k_].last_sect;                   \
        }                                                                       \
    }                                                                           \
} while (0)

/*
 * Copy one request.  Only the fields of the variant selected by `operation`
 * are filled; the others are zeroed except seg[] (left as is: only the first
 * min(nr_segments, 11) entries are meaningful) so the hot path does not clear
 * 88 bytes per request.  nr_segments keeps the frontend's raw count (so the
 * validator can refuse > 11, Linux dispatch_rw_block_io); only the segment copy
 * loop is clamped (Linux blkif_get_x86_*_req; docs/protocol.md §4.5, §4.6).
 */
void blkif_abi_get_req(enum blkif_abi abi, struct blkif_req *dst, const volatile void *slot)
{
    dst->indirect_op = 0;
    dst->discard_flag = 0;
    dst->nr_segments = 0;
    dst->nr_sectors = 0;
    memset(dst->indirect_grefs, 0, sizeof(dst->indirect_grefs));
    if (abi == BLKIF_ABI_X86_32)
        GET_REQ(blkif_x86_32, dst, slot);
    else
        GET_REQ(blkif_x86_64, dst, slot);
}

void blkif_abi_put_rsp(enum blkif_abi abi, volatile void *slot, uint64_t id, uint8_t op, int16_t status)
{
    if (abi == BLKIF_ABI_X86_32) {
        volatile struct blkif_x86_32_response *r = slot;
        r->id = id;
        r->operation = op;
        r->_pad = 0;
        r->status = status;
    } else {
        volatile struct blkif_x86_64_response *r = slot;
        r->id = id;
        r->operation = op;
        r->_pad = 0;
        r->status = status;
        r->_pad2 = 0;
    }
}
