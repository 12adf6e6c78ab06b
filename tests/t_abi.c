/* t_abi: blkif wire layouts (x86_32, x86_64, native) built byte by byte at the offsets of docs/protocol.md §3.3 are copied and answered right. */
#include "harness.h"
#include "blkif_abi.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

static void put(uint8_t *b, size_t off, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        b[off + i] = (uint8_t)(v >> (8 * i));       /* little endian (x86) */
}

static uint64_t get(const uint8_t *b, size_t off, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)b[off + i] << (8 * i);
    return v;
}

struct layout {
    enum blkif_abi abi;
    const char *name;
    size_t entry, id, sector, seg;          /* rw request */
    size_t d_nr_sectors;                    /* discard */
    size_t i_id, i_sector, i_handle, i_grefs;  /* indirect */
    size_t rsp_size;
};

static const struct layout L[] = {
    { BLKIF_ABI_X86_64, "x86_64", 112, 8, 16, 24, 24, 8, 16, 24, 28, 16 },
    { BLKIF_ABI_NATIVE, "native", 112, 8, 16, 24, 24, 8, 16, 24, 28, 16 },
    { BLKIF_ABI_X86_32, "x86_32", 108, 4, 12, 20, 20, 4, 12, 20, 24, 12 },
};

/* A request slot placed so that the entry ends exactly at a PROT_NONE page:
 * reading one byte past the entry faults. */
static uint8_t *guarded_slot(uint8_t *area, size_t entry)
{
    return area + 4096 - entry;
}

/* The request in slot b as blkif_abi_get_req copies it out, into a
 * struct first filled with 0x55 (a field it does not set shows). */
static struct blkif_req decode(const struct layout *l, const uint8_t *b)
{
    struct blkif_req r;
    memset(&r, 0x55, sizeof(r));
    blkif_abi_get_req(l->abi, &r, b);
    return r;
}

static void test_rw(const struct layout *l, uint8_t *area)
{
    uint8_t *b = guarded_slot(area, l->entry);
    memset(b, 0xEE, l->entry);
    put(b, 0, BLKIF_OP_WRITE, 1);
    put(b, 1, 11, 1);
    put(b, 2, 0xCAFE, 2);
    put(b, l->id, 0x1122334455667788ull, 8);
    put(b, l->sector, 0x0102030405060708ull, 8);
    for (unsigned i = 0; i < 11; i++) {
        put(b, l->seg + 8 * i, 1000 + i, 4);
        put(b, l->seg + 8 * i + 4, i % 8, 1);
        put(b, l->seg + 8 * i + 5, 7, 1);
    }
    struct blkif_req r = decode(l, b);
    T_EQ(r.operation, BLKIF_OP_WRITE);
    T_EQ(r.nr_segments, 11);
    T_EQ(r.handle, 0xCAFE);
    T_CHECK(r.id == 0x1122334455667788ull, "%s id %llx", l->name, (unsigned long long)r.id);
    T_CHECK(r.sector_number == 0x0102030405060708ull, "%s sector", l->name);
    for (unsigned i = 0; i < 11; i++) {
        T_EQ(r.seg[i].gref, 1000 + i);
        T_EQ(r.seg[i].first_sect, i % 8);
        T_EQ(r.seg[i].last_sect, 7);
    }

    /* nr_segments > 11: raw count kept for validation, the copy clamped
     * (the guard page proves nothing past the entry was read). */
    put(b, 0, BLKIF_OP_READ, 1);
    put(b, 1, 255, 1);
    blkif_abi_get_req(l->abi, &r, b);
    T_EQ(r.operation, BLKIF_OP_READ);
    T_EQ(r.nr_segments, 255);
    T_EQ(r.seg[10].gref, 1010);

    /* FLUSH with 0 segments: header only */
    put(b, 0, BLKIF_OP_FLUSH_DISKCACHE, 1);
    put(b, 1, 0, 1);
    blkif_abi_get_req(l->abi, &r, b);
    T_EQ(r.operation, BLKIF_OP_FLUSH_DISKCACHE);
    T_EQ(r.nr_segments, 0);
    T_CHECK(r.id == 0x1122334455667788ull, "%s flush id", l->name);
}

static void test_discard(const struct layout *l, uint8_t *area)
{
    uint8_t *b = guarded_slot(area, l->entry);
    memset(b, 0, l->entry);
    put(b, 0, BLKIF_OP_DISCARD, 1);
    put(b, 1, BLKIF_DISCARD_SECURE, 1);
    put(b, 2, 51712, 2);
    put(b, l->id, 77, 8);
    put(b, l->sector, 1ull << 33, 8);
    put(b, l->d_nr_sectors, 0xABCDEF012345ull, 8);
    struct blkif_req r = decode(l, b);
    T_EQ(r.operation, BLKIF_OP_DISCARD);
    T_EQ(r.discard_flag, BLKIF_DISCARD_SECURE);
    T_EQ(r.handle, 51712);
    T_EQ(r.id, 77);
    T_CHECK(r.sector_number == 1ull << 33, "%s discard sector", l->name);
    T_CHECK(r.nr_sectors == 0xABCDEF012345ull, "%s nr_sectors %llx", l->name,
            (unsigned long long)r.nr_sectors);
    T_EQ(r.nr_segments, 0);
}

static void test_indirect(const struct layout *l, uint8_t *area)
{
    uint8_t *b = guarded_slot(area, l->entry);
    memset(b, 0, l->entry);
    put(b, 0, BLKIF_OP_INDIRECT, 1);
    put(b, 1, BLKIF_OP_READ, 1);
    put(b, 2, 4000, 2);                 /* u16 nr_segments */
    put(b, l->i_id, 0xFEEDFACE12ull, 8);
    put(b, l->i_sector, 123456789, 8);
    put(b, l->i_handle, 768, 2);
    for (unsigned i = 0; i < 8; i++)
        put(b, l->i_grefs + 4 * i, 500 + i, 4);
    struct blkif_req r = decode(l, b);
    T_EQ(r.operation, BLKIF_OP_INDIRECT);
    T_EQ(r.indirect_op, BLKIF_OP_READ);
    T_EQ(r.nr_segments, 4000);
    T_CHECK(r.id == 0xFEEDFACE12ull, "%s indirect id", l->name);
    T_EQ(r.sector_number, 123456789);
    T_EQ(r.handle, 768);
    for (unsigned i = 0; i < 8; i++)
        T_EQ(r.indirect_grefs[i], 500 + i);
}

static void test_rsp(const struct layout *l)
{
    uint8_t buf[128];
    memset(buf, 0xAA, sizeof(buf));
    blkif_abi_put_rsp(l->abi, buf + 8, 0x0102030405060708ull, BLKIF_OP_WRITE,
                      BLKIF_RSP_EOPNOTSUPP);
    T_CHECK(get(buf, 8, 8) == 0x0102030405060708ull, "%s rsp id", l->name);
    T_EQ(get(buf, 8 + 8, 1), BLKIF_OP_WRITE);
    T_EQ((int16_t)get(buf, 8 + 10, 2), BLKIF_RSP_EOPNOTSUPP);
    for (size_t i = 0; i < 8; i++)
        T_CHECK(buf[i] == 0xAA, "%s: byte %zu before the response written", l->name, i);
    for (size_t i = 8 + l->rsp_size; i < sizeof(buf); i++)
        T_CHECK(buf[i] == 0xAA, "%s: byte %zu past the %zu-byte response written", l->name,
                i - 8, l->rsp_size);
    /* responses are laid out at entry-size strides in the ring */
    T_EQ(blkif_abi_entry_size(l->abi), l->entry);
}

int main(void)
{
    uint8_t *area = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    T_ASSERT(area != MAP_FAILED, "mmap");
    T_ASSERT(mprotect(area + 4096, 4096, PROT_NONE) == 0, "mprotect");

    for (size_t i = 0; i < ARRAY_SIZE(L); i++) {
        T_LOG("layout %s", L[i].name);
        test_rw(&L[i], area);
        test_discard(&L[i], area);
        test_indirect(&L[i], area);
        test_rsp(&L[i]);
    }

    /* 32 entries per ring page in both ABIs (docs/protocol.md §3.3), 32 << order */
    T_EQ(__CONST_RING_SIZE(blkif_x86_32, 4096), 32);
    T_EQ(__CONST_RING_SIZE(blkif_x86_64, 4096), 32);
    T_EQ(__CONST_RING_SIZE(blkif_x86_32, 4096 * 16), 512);
    T_EQ(__CONST_RING_SIZE(blkif_x86_64, 4096 * 32), 1024);

    /* protocol key */
    enum blkif_abi abi = BLKIF_ABI_X86_64;
    T_EQ(blkif_abi_parse(NULL, &abi), 0);
    T_EQ(abi, BLKIF_ABI_NATIVE);
    T_EQ(blkif_abi_parse("x86_32-abi", &abi), 0);
    T_EQ(abi, BLKIF_ABI_X86_32);
    T_EQ(blkif_abi_parse("x86_64-abi", &abi), 0);
    T_EQ(abi, BLKIF_ABI_X86_64);
    abi = BLKIF_ABI_X86_32;
    T_EQ(blkif_abi_parse("arm-abi", &abi), -EINVAL);
    T_EQ(abi, BLKIF_ABI_X86_32);        /* untouched on failure */
    T_EQ(blkif_abi_parse("x86_32-abi ", &abi), -EINVAL);
    T_CHECK(!strcmp(blkif_abi_name(BLKIF_ABI_X86_32), "x86_32-abi"), "name");
    T_CHECK(!strcmp(blkif_abi_name(BLKIF_ABI_X86_64), "x86_64-abi"), "name");

    munmap(area, 8192);
    return t_done();
}
