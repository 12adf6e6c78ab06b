/*
 * bb.h - private header of xen-blkbench, the userspace blkfront + toolstack
 * that plays a guest on the simulated Xen host (include/sim.h) and talks
 * xenstore through libxenstore.
 *
 * Pieces without a daemon or a host (unit-tested by tests/t_blkbench_args.c,
 * which #includes their .c files):
 *   opts.c    command line, sizes, vdev -> devid
 *   verify.c  self-checking sector patterns and the generation map
 *   hist.c    latency histogram (log-linear buckets)
 * Pieces that need a host:
 *   xsutil.c  xenstore helpers: typed reads, waits with timeout (watches)
 *   toolstack.c  libxl-shaped vbd add/remove, domain nodes
 *   ring.c    per-ABI front ring (x86_32 / x86_64 layouts)
 *   front.c   blkfront negotiation (Linux talk_to_blkback)
 *   io.c      request slots, grants, submit/complete, workload, passes
 *   report.c  text / JSON report
 *   main.c    the sequence: attach, sha256, workload, flush, discard, detach
 */
#ifndef XBD_BLKBENCH_H
#define XBD_BLKBENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "blkif_abi.h"

#define BB_SECTOR 512u
#define BB_PAGE XEN_PAGE_SIZE
#define BB_SECTORS_PER_PAGE (BB_PAGE / BB_SECTOR)
#define BB_MAX_QUEUES 16
#define BB_MAX_RING_ORDER 5
#define BB_MAX_DISCARDS 16
#define BB_LINUX_INDIRECT_DEFAULT 32    /* Linux blkfront xen_blkif_max_segments default */

/* ------------------------------------------------------------------ opts */
enum bb_rw { BB_RW_NONE = 0, BB_RW_READ, BB_RW_WRITE, BB_RW_RANDREAD, BB_RW_RANDWRITE, BB_RW_RANDRW };
enum bb_abi_opt { BB_ABI_X86_64 = 0, BB_ABI_X86_32, BB_ABI_NATIVE /* no protocol key */ };
/* backend/vbd (backendtype=phy) or backend/vbd3 (Xen >= 4.19 backendtype=tap:
 * params "raw:<target>", xen-project/xen:tools/libs/light/libxl_disk.c@RELEASE-4.20.0) */
enum bb_be_kind { BB_BE_VBD = 0, BB_BE_VBD3 };
#define BB_BE_KIND_NAME(k) ((k) == BB_BE_VBD3 ? "vbd3" : "vbd")
enum bb_expect { BB_EXPECT_OK = 0, BB_EXPECT_ERROR, BB_EXPECT_EOPNOTSUPP, BB_EXPECT_ANY_FAIL };

struct bb_discard_range { uint64_t offset, len; };     /* bytes */

struct bb_opts {
    /* host, toolstack */
    const char *sim_dir;            /* --sim DIR (required) */
    const char *xenstore;           /* --xenstore PATH: sets XENSTORED_PATH */
    uint32_t domid, be_domid;       /* --domid 1, --backend-domid 0 */
    int be_kind;                    /* --backend-type: enum bb_be_kind */
    const char *vdev;               /* --vdev xvda */
    uint32_t devid;                 /* from vdev (xen-vbd-interface.7) */
    const char *target;             /* --target PATH (params) */
    char mode;                      /* 'w' or 'r' */
    const char *script;             /* --script PATH (backend `script` key) */
    const char *name;               /* --name (domain name), default "blkbench<domid>" */
    int discard_enable;             /* --discard-enable 0|1; -1 = libxl default (1 iff mode w) */
    bool hotplug, keep, destroy;
    const char *grant_mode;         /* --grant-mode: backend `grant-mode` key, NULL = none */
#define BB_MAX_BE_KEYS 8
    const char *be_keys[BB_MAX_BE_KEYS];    /* --backend-key KEY=VALUE, as given */
    unsigned n_be_keys;
    const char *before_detach;      /* --before-detach: shell command run while connected */
    double timeout_s;               /* --timeout, each wait */
    /* blkfront */
    enum bb_abi_opt abi;
    unsigned ring_order;            /* requested; capped by max-ring-page-order */
    unsigned queues;                /* requested; capped by multi-queue-max-queues */
    unsigned indirect_segs;         /* requested; 0 = never INDIRECT */
    bool persistent;
    /* workload */
    enum bb_rw rw;
    unsigned rwmixread;             /* percent of reads for randrw */
    uint32_t bs_min, bs_max;        /* bytes, multiples of 512 */
    unsigned iodepth;
    double runtime_s;               /* 0 = not set */
    uint64_t size;                  /* bytes of I/O, 0 = not set */
    uint64_t offset, length;        /* region in bytes; length 0 = to end of disk */
    uint64_t seed;
    int page_offset;                /* sectors 0..7 of the first segment, -1 = random */
    bool verify, sha256, flush, json, force, quiet, secure_discard;
    unsigned nr_discards;
    struct bb_discard_range discard[BB_MAX_DISCARDS];
    uint64_t discard_max;           /* bytes per DISCARD request, 0 = like blkfront */
    enum bb_expect expect;
    bool expect_readonly;
};

/* Fill *o with the defaults documented in man/xen-blkbench.8. */
void bb_opts_defaults(struct bb_opts *o);
/*
 * Parse argv into *o (defaults must be set first).  On error returns -EINVAL
 * and writes a one-line message into err (errlen bytes); returns 1 when --help
 * or --version was handled (printed to stdout), else 0.  Cross-option rules
 * (e.g. --verify needs --rw, --bs-range ordering) are checked here.
 */
int bb_parse_args(int argc, char **argv, struct bb_opts *o, char *err, size_t errlen);
void bb_usage(FILE *f);
/* "4k", "1M", "512", "2G", "1g" (binary units) -> bytes.  -EINVAL / -ERANGE. */
int bb_parse_size(const char *s, uint64_t *out);
/* "10", "1.5", "2s", "500ms", "1m" -> seconds.  -EINVAL. */
int bb_parse_seconds(const char *s, double *out);
/* Linux vdev name or number -> devid (xen-vbd-interface.7): xvda 51712, xvdb 51728,
 * xvdq (disk 16) 1<<28|16<<8, xvda1 51713, sda 2048, hda 768, "51712" as is.  -EINVAL. */
int bb_parse_vdev(const char *s, uint32_t *devid);
const char *bb_rw_name(enum bb_rw rw);

/* ---------------------------------------------------------------- random */
static inline uint64_t bb_rand_next(uint64_t *s)    /* splitmix64 */
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* Uniform in [0, n), n > 0. */
static inline uint64_t bb_rand_below(uint64_t *s, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)bb_rand_next(s) * n) >> 64);
}

/* ---------------------------------------------------------------- verify */
/*
 * Every written 512-byte sector carries: magic, its sector number, the write
 * generation, the run seed, then 480 bytes of a stream derived from those.
 * The generation map keeps the latest generation acknowledged per sector of
 * the region (0 = unknown content: not checked) and a busy mark per sector so
 * that overlapping requests are never in flight together.
 */
#define BB_PATTERN_MAGIC 0x58424442454e4348ull     /* "XBDBENCH" */
void bb_pattern_fill(void *sector_buf, uint64_t sector, uint32_t gen, uint64_t seed);
/* 0 if the sector holds pattern (sector, gen, seed); else -EILSEQ and, when
 * the header is ours, *found_sector / *found_gen (else both ~0). */
int  bb_pattern_check(const void *sector_buf, uint64_t sector, uint32_t gen, uint64_t seed,
                      uint64_t *found_sector, uint32_t *found_gen);

struct bb_vmap {
    uint64_t first, nr;             /* sectors covered */
    uint32_t *gen;                  /* nr entries */
    uint8_t *busy;                  /* nr entries */
    uint32_t next_gen;
};
int  bb_vmap_init(struct bb_vmap *m, uint64_t first_sector, uint64_t nr_sectors);
void bb_vmap_free(struct bb_vmap *m);
/* Is any sector of [s, s+n) busy?  Sectors outside the map are never busy. */
bool bb_vmap_busy(const struct bb_vmap *m, uint64_t s, uint64_t n);
void bb_vmap_set_busy(struct bb_vmap *m, uint64_t s, uint64_t n, bool busy);
/* Generation of sector s (0 = unknown / outside). */
uint32_t bb_vmap_get(const struct bb_vmap *m, uint64_t s);
void bb_vmap_set(struct bb_vmap *m, uint64_t s, uint64_t n, uint32_t gen);
/* A fresh generation (never 0). */
uint32_t bb_vmap_new_gen(struct bb_vmap *m);

/* ------------------------------------------------------------- histogram */
/* Log-linear histogram of nanosecond values: 32 sub-buckets per power of two
 * (worst relative error ~3 %), values up to 2^40 ns. */
#define BB_HIST_SUB_BITS 5
#define BB_HIST_SUB (1u << BB_HIST_SUB_BITS)
#define BB_HIST_BUCKETS ((41 - BB_HIST_SUB_BITS) * BB_HIST_SUB + BB_HIST_SUB)
struct bb_hist {
    uint64_t count, sum, min, max;
    uint64_t bucket[BB_HIST_BUCKETS];
};
void bb_hist_init(struct bb_hist *h);
void bb_hist_add(struct bb_hist *h, uint64_t ns);
void bb_hist_merge(struct bb_hist *dst, const struct bb_hist *src);
/* Value at quantile q (0..1), the upper bound of the bucket that holds it
 * (exact for values < 32); 0 when empty. */
uint64_t bb_hist_quantile(const struct bb_hist *h, double q);
unsigned bb_hist_index(uint64_t ns);
uint64_t bb_hist_upper(unsigned idx);


#endif
