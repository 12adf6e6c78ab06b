/*
 * verify.c - self-checking sector patterns and the per-sector generation map
 * of --verify.  No host needed: unit-tested by tests/t_blkbench_args.c.
 *
 * Sector layout (512 bytes, host endian):
 *   0  magic "XBDBENCH"   8  sector number   16  generation   20  ~generation
 *   24 seed               32..511  splitmix64 stream seeded from (sector, gen, seed)
 * A stale sector (older generation), a misplaced one (wrong sector number: the
 * backend used the wrong offset) and a torn one (stream differs) are all
 * reported as mismatches; the header tells which.
 */
#include "bb.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void pattern_make(uint8_t *b, uint64_t sector, uint32_t gen, uint64_t seed)
{
    uint64_t magic = BB_PATTERN_MAGIC;
    uint32_t ngen = ~gen;
    memcpy(b + 0, &magic, 8);
    memcpy(b + 8, &sector, 8);
    memcpy(b + 16, &gen, 4);
    memcpy(b + 20, &ngen, 4);
    memcpy(b + 24, &seed, 8);
    uint64_t s = seed ^ (sector * 0xD6E8FEB86659FD93ull) ^ ((uint64_t)gen << 32 | gen);
    for (unsigned off = 32; off < BB_SECTOR; off += 8) {
        uint64_t v = bb_rand_next(&s);
        memcpy(b + off, &v, 8);
    }
}

void bb_pattern_fill(void *sector_buf, uint64_t sector, uint32_t gen, uint64_t seed)
{
    pattern_make(sector_buf, sector, gen, seed);
}

int bb_pattern_check(const void *sector_buf, uint64_t sector, uint32_t gen, uint64_t seed,
                     uint64_t *found_sector, uint32_t *found_gen)
{
    uint8_t want[BB_SECTOR];
    pattern_make(want, sector, gen, seed);
    if (!memcmp(want, sector_buf, BB_SECTOR))
        return 0;
    const uint8_t *b = sector_buf;
    uint64_t magic, fs;
    uint32_t fg, nfg;
    memcpy(&magic, b, 8);
    memcpy(&fs, b + 8, 8);
    memcpy(&fg, b + 16, 4);
    memcpy(&nfg, b + 20, 4);
    if (magic == BB_PATTERN_MAGIC && fg == ~nfg) {
        if (found_sector) *found_sector = fs;
        if (found_gen) *found_gen = fg;
    } else {
        if (found_sector) *found_sector = ~0ull;
        if (found_gen) *found_gen = ~0u;
    }
    return -EILSEQ;
}

int bb_vmap_init(struct bb_vmap *m, uint64_t first_sector, uint64_t nr_sectors)
{
    if (nr_sectors > (1ull << 34))
        return -E2BIG;          /* 16 Gi sectors = 8 TiB; 80 GiB of map: refuse */
    uint32_t *gen = calloc(nr_sectors ? nr_sectors : 1, sizeof(*gen));
    uint8_t *busy = calloc(nr_sectors ? nr_sectors : 1, 1);
    if (!gen || !busy) {
        free(gen);
        free(busy);
        return -ENOMEM;
    }
    m->first = first_sector;
    m->nr = nr_sectors;
    m->gen = gen;
    m->busy = busy;
    m->next_gen = 0;
    return 0;
}

void bb_vmap_free(struct bb_vmap *m)
{
    free(m->gen);
    free(m->busy);
    m->gen = NULL;
    m->busy = NULL;
    m->nr = 0;
}

/* Clip [s, s+n) to the map; returns false when nothing is left. */
static bool clip(const struct bb_vmap *m, uint64_t *s, uint64_t *n)
{
    uint64_t a = *s, b = *s + *n;
    if (b < a)
        b = UINT64_MAX;
    if (a < m->first)
        a = m->first;
    if (b > m->first + m->nr)
        b = m->first + m->nr;
    if (a >= b)
        return false;
    *s = a - m->first;
    *n = b - a;
    return true;
}

bool bb_vmap_busy(const struct bb_vmap *m, uint64_t s, uint64_t n)
{
    if (!m->busy || !clip(m, &s, &n))
        return false;
    for (uint64_t i = 0; i < n; i++)
        if (m->busy[s + i])
            return true;
    return false;
}

void bb_vmap_set_busy(struct bb_vmap *m, uint64_t s, uint64_t n, bool busy)
{
    if (!m->busy || !clip(m, &s, &n))
        return;
    memset(m->busy + s, busy ? 1 : 0, n);
}

uint32_t bb_vmap_get(const struct bb_vmap *m, uint64_t s)
{
    if (!m->gen || s < m->first || s - m->first >= m->nr)
        return 0;
    return m->gen[s - m->first];
}

void bb_vmap_set(struct bb_vmap *m, uint64_t s, uint64_t n, uint32_t gen)
{
    if (!m->gen || !clip(m, &s, &n))
        return;
    for (uint64_t i = 0; i < n; i++)
        m->gen[s + i] = gen;
}

uint32_t bb_vmap_new_gen(struct bb_vmap *m)
{
    if (++m->next_gen == 0)
        m->next_gen = 1;
    return m->next_gen;
}
