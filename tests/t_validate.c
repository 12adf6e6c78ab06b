/* t_validate: every hostile-frontend case of docs/protocol.md §4.6, encoded in both ring ABIs, gets the blkback answer (status and echoed op). */
#include "harness.h"
#include "blkif_abi.h"
#include "../src/ring/validate.h"

#include <stdint.h>

#define SECTORS (1ull << 20)        /* 512 MiB vbd */

struct seg { uint8_t first, last; };

struct tcase {
    const char *name;
    uint8_t op, indirect_op, flag;
    unsigned nr_segs;
    uint64_t sector, nr_sectors;
    struct seg seg0;                /* first segment (others 0..7) unless zero_all */
    int lim;                        /* which limits (below) */
    int expect;
    int expect_op;                  /* -1: same as op */
};

enum { LIM_RW, LIM_RO, LIM_4K, LIM_NOFEAT, LIM_SECURE };

static struct blkif_limits limits(int which)
{
    struct blkif_limits l = {
        .sectors = SECTORS, .sector_size = 512, .readonly = false, .flush = true,
        .barrier = true, .discard = true, .secure_discard = false, .max_indirect_segs = 256,
    };
    switch (which) {
    case LIM_RO: l.readonly = true; break;
    case LIM_4K: l.sector_size = 4096; break;
    case LIM_NOFEAT: l.flush = l.barrier = l.discard = false; l.max_indirect_segs = 0; break;
    case LIM_SECURE: l.secure_discard = true; break;
    }
    return l;
}

#define OKAY BLKIF_RSP_OKAY
#define ERR  BLKIF_RSP_ERROR
#define NOTS BLKIF_RSP_EOPNOTSUPP
#define R BLKIF_OP_READ
#define W BLKIF_OP_WRITE
#define F BLKIF_OP_FLUSH_DISKCACHE
#define B BLKIF_OP_WRITE_BARRIER
#define D BLKIF_OP_DISCARD
#define I BLKIF_OP_INDIRECT

static const struct tcase cases[] = {
    /* name                          op  iop flag nseg sector            nr_sect  seg0    lim        expect op */
    { "read 1 seg",                  R, 0, 0, 1,   0,                0,   {0, 7}, LIM_RW,     OKAY, -1 },
    { "write 11 segs",               W, 0, 0, 11,  8,                0,   {0, 7}, LIM_RW,     OKAY, -1 },
    { "read partial page",           R, 0, 0, 1,   3,                0,   {3, 5}, LIM_RW,     OKAY, -1 },
    { "unknown op 7",                7, 0, 0, 1,   0,                0,   {0, 7}, LIM_RW,     NOTS, -1 },
    { "unknown op 255",              255, 0, 0, 0, 0,                0,   {0, 7}, LIM_RW,     NOTS, -1 },
    { "reserved op 4",               BLKIF_OP_RESERVED_1, 0, 0, 1, 0, 0,  {0, 7}, LIM_RW,     NOTS, -1 },
    { "read 0 segs",                 R, 0, 0, 0,   0,                0,   {0, 7}, LIM_RW,     ERR,  -1 },
    { "write 0 segs",                W, 0, 0, 0,   0,                0,   {0, 7}, LIM_RW,     ERR,  -1 },
    { "write 12 segs",               W, 0, 0, 12,  0,                0,   {0, 7}, LIM_RW,     ERR,  -1 },
    { "read 255 segs",               R, 0, 0, 255, 0,                0,   {0, 7}, LIM_RW,     ERR,  -1 },
    { "flush 12 segs",               F, 0, 0, 12,  0,                0,   {0, 7}, LIM_RW,     ERR,  -1 },
    { "last_sect 8",                 R, 0, 0, 1,   0,                0,   {0, 8}, LIM_RW,     ERR,  -1 },
    { "last_sect 255",               W, 0, 0, 2,   0,                0,   {0, 255}, LIM_RW,   ERR,  -1 },
    { "first > last",                R, 0, 0, 1,   0,                0,   {5, 4}, LIM_RW,     ERR,  -1 },
    { "flush data first > last",     F, 0, 0, 1,   0,                0,   {7, 0}, LIM_RW,     ERR,  -1 },
    { "end == sectors",              R, 0, 0, 1,   SECTORS - 8,      0,   {0, 7}, LIM_RW,     OKAY, -1 },
    { "end past sectors",            R, 0, 0, 1,   SECTORS - 7,      0,   {0, 7}, LIM_RW,     ERR,  -1 },
    { "start past sectors",          W, 0, 0, 1,   SECTORS + 100,    0,   {0, 7}, LIM_RW,     ERR,  -1 },
    { "range wraps",                 R, 0, 0, 2,   UINT64_MAX - 3,   0,   {0, 7}, LIM_RW,     ERR,  -1 },
    { "ro write",                    W, 0, 0, 1,   0,                0,   {0, 7}, LIM_RO,     ERR,  -1 },
    { "ro read",                     R, 0, 0, 1,   0,                0,   {0, 7}, LIM_RO,     OKAY, -1 },
    { "ro flush no data",            F, 0, 0, 0,   0,                0,   {0, 7}, LIM_RO,     ERR,  -1 },
    { "ro barrier with data",        B, 0, 0, 2,   0,                0,   {0, 7}, LIM_RO,     ERR,  -1 },
    { "ro flush with data",          F, 0, 0, 1,   0,                0,   {0, 7}, LIM_RO,     ERR,  -1 },
    { "ro barrier",                  B, 0, 0, 0,   0,                0,   {0, 7}, LIM_RO,     ERR,  -1 },
    { "ro discard",                  D, 0, 0, 0,   0,                8,   {0, 7}, LIM_RO,     ERR,  -1 },
    { "ro indirect write",           I, W, 0, 1,   0,                0,   {0, 7}, LIM_RO,     ERR,  W },
    { "ro indirect read",            I, R, 0, 1,   0,                0,   {0, 7}, LIM_RO,     OKAY, R },
    { "4k: sector 1",                R, 0, 0, 1,   1,                0,   {0, 7}, LIM_4K,     ERR,  -1 },
    { "4k: half page",               W, 0, 0, 1,   0,                0,   {0, 3}, LIM_4K,     ERR,  -1 },
    { "4k: aligned",                 W, 0, 0, 2,   8,                0,   {0, 7}, LIM_4K,     OKAY, -1 },
    { "4k: misaligned discard",      D, 0, 0, 0,   4,                8,   {0, 7}, LIM_4K,     ERR,  -1 },
    { "4k: discard len",             D, 0, 0, 0,   8,                12,  {0, 7}, LIM_4K,     ERR,  -1 },
    { "flush no data",               F, 0, 0, 0,   0,                0,   {0, 7}, LIM_RW,     OKAY, -1 },
    { "flush with data",             F, 0, 0, 3,   16,               0,   {0, 7}, LIM_RW,     OKAY, -1 },
    { "barrier",                     B, 0, 0, 1,   16,               0,   {0, 7}, LIM_RW,     OKAY, -1 },
    { "flush not advertised",        F, 0, 0, 0,   0,                0,   {0, 7}, LIM_NOFEAT, NOTS, -1 },
    { "barrier not advertised",      B, 0, 0, 0,   0,                0,   {0, 7}, LIM_NOFEAT, NOTS, -1 },
    { "discard not advertised",      D, 0, 0, 0,   0,                8,   {0, 7}, LIM_NOFEAT, NOTS, -1 },
    { "indirect not advertised",     I, R, 0, 1,   0,                0,   {0, 7}, LIM_NOFEAT, NOTS, R },
    { "discard",                     D, 0, 0, 0,   8,                1024, {0, 7}, LIM_RW,    OKAY, -1 },
    { "discard 0 sectors",           D, 0, 0, 0,   8,                0,   {0, 7}, LIM_RW,     OKAY, -1 },
    { "discard whole disk",          D, 0, 0, 0,   0,                SECTORS, {0, 7}, LIM_RW, OKAY, -1 },
    { "discard past end",            D, 0, 0, 0,   SECTORS - 8,      16,  {0, 7}, LIM_RW,     ERR,  -1 },
    { "discard wraps",               D, 0, 0, 0,   8,                UINT64_MAX - 4, {0, 7}, LIM_RW, ERR, -1 },
    { "secure discard unsupported",  D, 0, BLKIF_DISCARD_SECURE, 0, 0, 8, {0, 7}, LIM_RW,     NOTS, -1 },
    { "secure discard supported",    D, 0, BLKIF_DISCARD_SECURE, 0, 0, 8, {0, 7}, LIM_SECURE, OKAY, -1 },
    { "indirect read 1",             I, R, 0, 1,   0,                0,   {0, 7}, LIM_RW,     OKAY, R },
    { "indirect write 256",          I, W, 0, 256, 0,                0,   {0, 7}, LIM_RW,     OKAY, W },
    { "indirect 0 segs",             I, R, 0, 0,   0,                0,   {0, 7}, LIM_RW,     ERR,  R },
    { "indirect 257 segs",           I, W, 0, 257, 0,                0,   {0, 7}, LIM_RW,     ERR,  W },
    { "indirect 65535 segs",         I, W, 0, 65535, 0,              0,   {0, 7}, LIM_RW,     ERR,  W },
    { "indirect_op flush",           I, F, 0, 1,   0,                0,   {0, 7}, LIM_RW,     ERR,  F },
    { "indirect_op 200",             I, 200, 0, 1, 0,                0,   {0, 7}, LIM_RW,     ERR,  200 },
    { "indirect_op indirect",        I, I, 0, 1,   0,                0,   {0, 7}, LIM_RW,     ERR,  I },
    { "indirect last_sect 9",        I, R, 0, 4,   0,                0,   {0, 9}, LIM_RW,     ERR,  R },
    { "indirect first > last",       I, W, 0, 4,   0,                0,   {6, 2}, LIM_RW,     ERR,  W },
    { "indirect past end",           I, R, 0, 256, SECTORS - 1024,   0,   {0, 7}, LIM_RW,     ERR,  R },
    { "indirect to end",             I, R, 0, 256, SECTORS - 2048,   0,   {0, 7}, LIM_RW,     OKAY, R },
};

static struct blkif_request_segment iseg[BLKIF_MAX_INDIRECT_SEGS_PROTO];

/* Encode case c as a request of ABI T (blkif_x86_32, blkif_x86_64) at req:
 * the two layouts differ in their field offsets only. */
#define ENCODE(T, req, c, direct_n) do {                                                     \
        if ((c)->op == D) {                                                                  \
            struct T##_request_discard *d = (void *)(req);                                   \
            d->operation = (c)->op; d->flag = (c)->flag; d->id = 0xD15C0000 + (c)->op;       \
            d->sector_number = (c)->sector; d->nr_sectors = (c)->nr_sectors;                 \
        } else if ((c)->op == I) {                                                           \
            struct T##_request_indirect *r = (void *)(req);                                  \
            r->operation = (c)->op; r->indirect_op = (c)->indirect_op;                       \
            r->nr_segments = (uint16_t)(c)->nr_segs; r->id = 0x1D1D;                         \
            r->sector_number = (c)->sector;                                                  \
            for (unsigned i = 0; i < 8; i++) r->indirect_grefs[i] = 10 + i;                  \
        } else {                                                                             \
            struct T##_request *r = (req);                                                   \
            r->operation = (c)->op; r->nr_segments = (direct_n); r->id = 0xABCDEF0123ull;    \
            r->sector_number = (c)->sector;                                                  \
            for (unsigned i = 0; i < BLKIF_MAX_SEGMENTS_PER_REQUEST; i++) r->seg[i] = iseg[i]; \
        }                                                                                    \
    } while (0)

/* Encode the case into a ring entry of `abi`, copy it out, validate. */
static void run(const struct tcase *c, enum blkif_abi abi)
{
    union { union blkif_x86_32_sring_entry e32; union blkif_x86_64_sring_entry e64; } e;
    memset(&e, 0, sizeof(e));
    uint8_t direct_n = c->nr_segs > 255 ? 255 : (uint8_t)c->nr_segs;

    for (unsigned i = 0; i < BLKIF_MAX_INDIRECT_SEGS_PROTO; i++) {
        iseg[i].gref = 100 + i;
        iseg[i].first_sect = i ? 0 : c->seg0.first;
        iseg[i].last_sect = i ? 7 : c->seg0.last;
    }
    if (abi == BLKIF_ABI_X86_32)
        ENCODE(blkif_x86_32, &e.e32.req, c, direct_n);
    else
        ENCODE(blkif_x86_64, &e.e64.req, c, direct_n);
    struct blkif_req req;
    blkif_abi_get_req(abi, &req, &e);
    struct blkif_limits lim = limits(c->lim);
    struct blkif_checked chk;
    int st = blkif_validate(&lim, &req, iseg, &chk);
    int op = c->expect_op < 0 ? c->op : c->expect_op;
    T_CHECK(st == c->expect, "%s [%s]: status %d, expected %d (%s)", c->name,
            blkif_abi_name(abi), st, c->expect, chk.why ? chk.why : "-");
    T_CHECK(chk.rsp_op == op, "%s [%s]: response op %u, expected %d", c->name,
            blkif_abi_name(abi), chk.rsp_op, op);
    T_CHECK(st == OKAY || chk.why, "%s: refusal without a reason", c->name);
    if (st == OKAY && c->op != D && (c->nr_segs || c->op == R || c->op == W)) {
        /* sectors: seg0 plus 7 full pages */
        uint64_t want = (uint64_t)(c->seg0.last - c->seg0.first + 1) + 8ull * (c->nr_segs - 1);
        T_CHECK(chk.nr_sectors == want, "%s: nr_sectors %llu, expected %llu", c->name,
                (unsigned long long)chk.nr_sectors, (unsigned long long)want);
    }
}

int main(void)
{
    const enum blkif_abi abis[] = { BLKIF_ABI_X86_32, BLKIF_ABI_X86_64, BLKIF_ABI_NATIVE };
    unsigned n = 0;
    for (size_t a = 0; a < 3; a++)
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++, n++)
            run(&cases[i], abis[a]);
    T_LOG("%u case x ABI combinations checked", n);

    /* The check of a response op for an INDIRECT: indirect_op, never 6. */
    struct blkif_req r = { .operation = BLKIF_OP_INDIRECT, .indirect_op = BLKIF_OP_WRITE };
    T_EQ(blkif_rsp_op(&r), BLKIF_OP_WRITE);
    return t_done();
}
