/*
 * opts.c - xen-blkbench command line: options, sizes, durations, vdev names.
 * No xenstore, no host: unit-tested by tests/t_blkbench_args.c.
 */
#include "bb.h"
#include "dataplane.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define BB_VERSION "0.1"

void bb_opts_defaults(struct bb_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->domid = 1;
    o->be_domid = 0;
    o->vdev = "xvda";
    o->devid = 51712;
    o->target = "";
    o->mode = 'w';
    o->script = "/etc/xen/scripts/block-xen-blkbackd";
    o->discard_enable = -1;
    o->timeout_s = 10.0;
    o->abi = BB_ABI_X86_64;
    o->ring_order = 0;
    o->queues = 1;
    o->indirect_segs = BB_LINUX_INDIRECT_DEFAULT;
    o->rw = BB_RW_NONE;
    o->rwmixread = 50;
    o->bs_min = o->bs_max = 4096;
    o->iodepth = 1;
    o->seed = 1;
    o->page_offset = 0;
    o->expect = BB_EXPECT_OK;
}

const char *bb_rw_name(enum bb_rw rw)
{
    switch (rw) {
    case BB_RW_READ: return "read";
    case BB_RW_WRITE: return "write";
    case BB_RW_RANDREAD: return "randread";
    case BB_RW_RANDWRITE: return "randwrite";
    case BB_RW_RANDRW: return "randrw";
    default: return "none";
    }
}

int bb_parse_size(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-' || isspace((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    char *end;
    int base = (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? 16 : 10;
    unsigned long long v = strtoull(s, &end, base);
    if (end == s)
        return -EINVAL;
    if (errno == ERANGE)
        return -ERANGE;
    unsigned shift = 0;
    if (*end) {
        switch (tolower((unsigned char)*end)) {
        case 'b': shift = 0; break;
        case 'k': shift = 10; break;
        case 'm': shift = 20; break;
        case 'g': shift = 30; break;
        case 't': shift = 40; break;
        default: return -EINVAL;
        }
        end++;
        /* accept "k", "kb", "kib", "KiB" */
        if (shift && (*end == 'i' || *end == 'I'))
            end++;
        if (shift && (*end == 'b' || *end == 'B'))
            end++;
        if (*end)
            return -EINVAL;
    }
    if (shift && v > (UINT64_MAX >> shift))
        return -ERANGE;
    *out = (uint64_t)v << shift;
    return 0;
}

int bb_parse_seconds(const char *s, double *out)
{
    if (!s || !*s)
        return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0 || v != v)
        return -EINVAL;
    if (!strcmp(end, "") || !strcmp(end, "s"))
        ;
    else if (!strcmp(end, "ms"))
        v /= 1000.0;
    else if (!strcmp(end, "m") || !strcmp(end, "min"))
        v *= 60.0;
    else if (!strcmp(end, "h"))
        v *= 3600.0;
    else
        return -EINVAL;
    *out = v;
    return 0;
}

/* "a".."z" -> 0..25, "aa" -> 26 ... (Linux sd naming, bijective base 26). */
static int disk_letters(const char **p, unsigned *disk)
{
    const char *s = *p;
    unsigned long v = 0;
    int n = 0;
    while (*s >= 'a' && *s <= 'z') {
        v = v * 26 + (unsigned)(*s - 'a' + 1);
        if (v > (1u << 20))
            return -EINVAL;
        s++;
        n++;
    }
    if (!n)
        return -EINVAL;
    *disk = (unsigned)(v - 1);
    *p = s;
    return 0;
}

int bb_parse_vdev(const char *s, uint32_t *devid)
{
    if (!s || !*s)
        return -EINVAL;
    uint64_t v;
    if (isdigit((unsigned char)*s)) {
        if (xbd_parse_u64(s, 10, 1, UINT32_MAX, &v))
            return -EINVAL;
        *devid = (uint32_t)v;
        return 0;
    }
    enum { XVD, SD, HD } kind;
    const char *p = s;
    if (!strncmp(p, "xvd", 3)) { kind = XVD; p += 3; }
    else if (!strncmp(p, "sd", 2)) { kind = SD; p += 2; }
    else if (!strncmp(p, "hd", 2)) { kind = HD; p += 2; }
    else return -EINVAL;
    unsigned disk, part = 0;
    if (disk_letters(&p, &disk))
        return -EINVAL;
    if (*p) {
        if (*p == '0' || xbd_parse_u64(p, 10, 1, 255, &v))
            return -EINVAL;
        part = (unsigned)v;
    }
    /* docs/man/xen-vbd-interface.7.pandoc */
    switch (kind) {
    case XVD:
    case SD:                    /* majors 202 and 8; disks past 15 in the extended form */
        if (disk < 16 && part < 16)
            *devid = ((kind == XVD ? 202u : 8u) << 8) | (disk << 4) | part;
        else if (disk < (1u << 20))
            *devid = (1u << 28) | (disk << 8) | part;
        else
            return -EINVAL;
        return 0;
    case HD:
        if (part >= 64 || disk > 3)
            return -EINVAL;
        if (disk < 2)
            *devid = (3u << 8) | (disk << 6) | part;
        else
            *devid = (22u << 8) | ((disk - 2) << 6) | part;
        return 0;
    }
    return -EINVAL;
}

void bb_usage(FILE *f)
{
    fputs(
"usage: xen-blkbench --sim DIR [options]\n"
"Plays a guest on the simulated Xen host: creates the domain and the vbd like\n"
"libxl, negotiates like Linux blkfront, runs I/O through the shared ring.\n"
"Actions, in this order: attach, --sha256, workload (--rw), --flush, --discard, detach.\n"
"\n"
"Host and toolstack:\n"
"  --sim DIR              simulated host dir (required)\n"
"  --xenstore PATH        xenstored socket (sets XENSTORED_PATH; default: $XENSTORED_PATH,\n"
"                         else DIR/xs.sock if it exists)\n"
"  --domid N              frontend domain (1)         --backend-domid N  backend domain (0)\n"
"  --backend-type vbd|vbd3   backend/vbd (phy), or backend/vbd3 as Xen >= 4.19 for\n"
"                         backendtype=tap, params \"raw:<target>\" (vbd)\n"
"  --vdev NAME            xvda, xvdb, ... or a number (xvda)\n"
"  --target PATH          backend `params` (the image or block device)\n"
"  --mode w|r             access mode (w)            --script PATH   backend `script`\n"
"  --name NAME            domain name (blkbench<domid>)\n"
"  --discard-enable 0|1   backend `discard-enable` (default 1 if --mode w, else 0)\n"
"  --hotplug              write hotplug-status=connected after backend InitWait\n"
"  --keep                 leave the device connected and the domain alive at exit\n"
"  --before-detach CMD    run the shell command CMD while still connected, before detach\n"
"  --backend-key KEY=VAL  write one more backend key (e.g. qos-iops=500 for xen-blkbackd;\n"
"                         repeatable, up to 8)\n"
"  --grant-mode MODE      write backend `grant-mode` (auto|map|copy|persistent) for xen-blkbackd\n"
"  --destroy              remove the device like `xl destroy` (frontend dir deleted first)\n"
"  --timeout SEC          limit of each wait (10)\n"
"Blkfront:\n"
"  --abi x86_64|x86_32|native   ring layout and `protocol` key (x86_64; native: no key)\n"
"  --ring-order N         ring pages = 2^N, capped by max-ring-page-order (0)\n"
"  --queues N             rings, capped by multi-queue-max-queues (1)\n"
"  --indirect-segs N      max segments with INDIRECT, capped by the backend (32; 0 = off)\n"
"  --persistent           write feature-persistent=1 (grants kept until detach)\n"
"Workload:\n"
"  --rw read|write|randread|randwrite|randrw   (no --rw: no workload)\n"
"  --rwmixread N          percent reads for randrw (50)\n"
"  --bs SIZE | --bs-range MIN-MAX   request size, multiple of 512 (4k)\n"
"  --iodepth N            requests in flight, over all queues (1)\n"
"  --runtime SEC | --size BYTES    stop condition (default: one pass over the region)\n"
"  --offset BYTES --length BYTES   region (whole disk)\n"
"  --page-offset N|rand   first segment starts at sector N (0-7) of its page (0)\n"
"  --seed N               PRNG seed (1)\n"
"  --verify               self-checking data, generation map, final read-back\n"
"  --sha256               read the whole disk and print \"sha256 <hex>\"\n"
"  --flush                FLUSH_DISKCACHE (or WRITE_BARRIER), no segments\n"
"  --discard OFF:LEN      DISCARD bytes, split like blkfront (repeatable)\n"
"  --discard-max BYTES    split size (default: as blkfront)  --secure-discard\n"
"  --force                send flush/discard even if the backend did not advertise it\n"
"  --expect-error[=error|eopnotsupp|any]   every request must fail (negative tests)\n"
"  --expect-readonly      reads succeed; writes, flush, discard fail with ERROR\n"
"  --json                 JSON report on stdout    --quiet   less chatter on stderr\n"
"Exit: 0 ok, 1 data mismatch / unexpected status / protocol or setup failure, 2 usage.\n",
          f);
}

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* ---- the option table ------------------------------------------------------ */

struct parse_state { bool bs_set, range_set; };

/* A word of an enum-valued option and its value. */
struct bb_word { const char *name; int val; };

enum bb_kind {
    K_STR,          /* const char * = the argument */
    K_FLAG,         /* bool = true */
    K_U32,          /* uint32_t / unsigned in lo..hi (decimal or 0x) */
    K_U64,          /* uint64_t in lo..hi */
    K_SIZE,         /* uint64_t bytes (bb_parse_size) >= lo, a multiple of `align` */
    K_SECS,         /* double seconds > 0 */
    K_WORD,         /* int (an enum) from words[] */
    K_FN,           /* fn() */
};

struct bb_opt {
    const char *name;
    int has_arg;
    enum bb_kind kind;
    size_t off;
    uint64_t lo, hi;
    unsigned align;
    const struct bb_word *words;        /* K_WORD, NULL-name terminated; [0] for no argument */
    const char *expect;                 /* "--name: expected <expect>, got '...'" */
    /* K_FN: 0, 1 (done: --help, --version), or -EINVAL with the message in err */
    int (*fn)(struct bb_opts *o, const char *a, struct parse_state *st, char *err, size_t errlen);
};

static int opt_vdev(struct bb_opts *o, const char *a, struct parse_state *st, char *err, size_t errlen)
{
    (void)st;
    if (bb_parse_vdev(a, &o->devid))
        return fail(err, errlen, "--vdev: unknown virtual device '%s'", a);
    o->vdev = a;
    return 0;
}

static int opt_mode(struct bb_opts *o, const char *a, struct parse_state *st, char *err, size_t errlen)
{
    (void)st;
    if (strcmp(a, "w") && strcmp(a, "r"))
        return fail(err, errlen, "--mode: expected w or r, got '%s'", a);
    o->mode = a[0];
    return 0;
}

static int opt_discard_enable(struct bb_opts *o, const char *a, struct parse_state *st,
                              char *err, size_t errlen)
{
    (void)st;
    if (strcmp(a, "0") && strcmp(a, "1"))
        return fail(err, errlen, "--discard-enable: expected 0 or 1");
    o->discard_enable = a[0] - '0';
    return 0;
}

static int opt_grant_mode(struct bb_opts *o, const char *a, struct parse_state *st,
                          char *err, size_t errlen)
{
    enum grant_mode m;
    (void)st;
    if (grant_mode_parse(a, &m))
        return fail(err, errlen, "--grant-mode: expected auto, map, copy or persistent, got '%s'", a);
    o->grant_mode = a;
    return 0;
}

static int opt_backend_key(struct bb_opts *o, const char *a, struct parse_state *st,
                           char *err, size_t errlen)
{
    (void)st;
    const char *eq = strchr(a, '='), *slash = strchr(a, '/');
    if (!eq || eq == a || (slash && slash < eq) || eq - a > 64)
        return fail(err, errlen, "--backend-key: expected KEY=VALUE (KEY a name, no '/'), got '%s'", a);
    if (o->n_be_keys == BB_MAX_BE_KEYS)
        return fail(err, errlen, "--backend-key: at most %d", BB_MAX_BE_KEYS);
    o->be_keys[o->n_be_keys++] = a;
    return 0;
}

static int opt_bs(struct bb_opts *o, const char *a, struct parse_state *st, char *err, size_t errlen)
{
    uint64_t v;
    if (bb_parse_size(a, &v) || v == 0 || v % BB_SECTOR || v > UINT32_MAX)
        return fail(err, errlen, "--bs: expected a multiple of 512 bytes, got '%s'", a);
    o->bs_min = o->bs_max = (uint32_t)v;
    st->bs_set = true;
    return 0;
}

/* "A<sep>B" -> two sizes (bb_parse_size).  0 or -EINVAL. */
static int size_pair(const char *a, char sep, uint64_t *x, uint64_t *y)
{
    const char *p = strchr(a, sep);
    char first[64];
    if (!p || (size_t)(p - a) >= sizeof(first))
        return -EINVAL;
    memcpy(first, a, (size_t)(p - a));
    first[p - a] = 0;
    return bb_parse_size(first, x) || bb_parse_size(p + 1, y) ? -EINVAL : 0;
}

static int opt_bs_range(struct bb_opts *o, const char *a, struct parse_state *st,
                        char *err, size_t errlen)
{
    uint64_t lo, hi;
    if (!strchr(a, '-') || strlen(a) > 64)
        return fail(err, errlen, "--bs-range: expected MIN-MAX, got '%s'", a);
    if (size_pair(a, '-', &lo, &hi) || lo == 0 || lo % BB_SECTOR || hi % BB_SECTOR || hi < lo ||
        hi > UINT32_MAX)
        return fail(err, errlen, "--bs-range: expected MIN-MAX, multiples of 512, MIN <= MAX, got '%s'", a);
    o->bs_min = (uint32_t)lo;
    o->bs_max = (uint32_t)hi;
    st->range_set = true;
    return 0;
}

static int opt_page_offset(struct bb_opts *o, const char *a, struct parse_state *st,
                           char *err, size_t errlen)
{
    uint64_t v;
    (void)st;
    if (!strcmp(a, "rand") || !strcmp(a, "random"))
        o->page_offset = -1;
    else if (xbd_parse_u64(a, 0, 0, BB_SECTORS_PER_PAGE - 1, &v))
        return fail(err, errlen, "--page-offset: expected 0..7 or rand, got '%s'", a);
    else
        o->page_offset = (int)v;
    return 0;
}

static int opt_discard(struct bb_opts *o, const char *a, struct parse_state *st,
                       char *err, size_t errlen)
{
    uint64_t off, len;
    (void)st;
    if (o->nr_discards >= BB_MAX_DISCARDS)
        return fail(err, errlen, "--discard: at most %d ranges", BB_MAX_DISCARDS);
    if (!strchr(a, ':') || strlen(a) > 64)
        return fail(err, errlen, "--discard: expected OFFSET:LEN, got '%s'", a);
    if (size_pair(a, ':', &off, &len) || off % BB_SECTOR || len % BB_SECTOR || len == 0 ||
        off + len < off)
        return fail(err, errlen, "--discard: expected OFFSET:LEN in bytes, multiples of 512, LEN > 0, got '%s'", a);
    o->discard[o->nr_discards].offset = off;
    o->discard[o->nr_discards].len = len;
    o->nr_discards++;
    return 0;
}

static int opt_help(struct bb_opts *o, const char *a, struct parse_state *st, char *err, size_t errlen)
{
    (void)o, (void)a, (void)st, (void)err, (void)errlen;
    bb_usage(stdout);
    return 1;
}

static int opt_version(struct bb_opts *o, const char *a, struct parse_state *st, char *err, size_t errlen)
{
    (void)o, (void)a, (void)st, (void)err, (void)errlen;
    printf("xen-blkbench %s\n", BB_VERSION);
    return 1;
}

static const struct bb_word abi_words[] = {
    { "x86_64", BB_ABI_X86_64 }, { "x86_64-abi", BB_ABI_X86_64 }, { "x86_32", BB_ABI_X86_32 },
    { "x86_32-abi", BB_ABI_X86_32 }, { "native", BB_ABI_NATIVE }, { NULL, 0 },
};
static const struct bb_word be_kind_words[] = {
    { "vbd", BB_BE_VBD }, { "vbd3", BB_BE_VBD3 }, { NULL, 0 },
};
static const struct bb_word rw_words[] = {
    { "read", BB_RW_READ }, { "write", BB_RW_WRITE }, { "randread", BB_RW_RANDREAD },
    { "randwrite", BB_RW_RANDWRITE }, { "randrw", BB_RW_RANDRW }, { NULL, 0 },
};
static const struct bb_word expect_words[] = {
    { "error", BB_EXPECT_ERROR }, { "eopnotsupp", BB_EXPECT_EOPNOTSUPP },
    { "any", BB_EXPECT_ANY_FAIL }, { NULL, 0 },
};

#define BB_XSTR_(x) #x
#define BB_XSTR(x) BB_XSTR_(x)
#define F(field) offsetof(struct bb_opts, field)
#define STR(n, f) { n, required_argument, K_STR, F(f), 0, 0, 0, NULL, NULL, NULL }
#define FLAG(n, f) { n, no_argument, K_FLAG, F(f), 0, 0, 0, NULL, NULL, NULL }
#define U32(n, f, lo, hi, ex) { n, required_argument, K_U32, F(f), lo, hi, 0, NULL, ex, NULL }
#define SIZE(n, f, lo, al, ex) { n, required_argument, K_SIZE, F(f), lo, 0, al, NULL, ex, NULL }
#define SECS(n, f) { n, required_argument, K_SECS, F(f), 0, 0, 0, NULL, "seconds > 0", NULL }
#define WORD(n, has, f, w, ex) { n, has, K_WORD, F(f), 0, 0, 0, w, ex, NULL }
#define FN(n, has, fn) { n, has, K_FN, 0, 0, 0, 0, NULL, NULL, fn }

/* Every option of xen-blkbench(1), in the order of its usage text. */
static const struct bb_opt opts[] = {
    STR("sim", sim_dir),
    STR("xenstore", xenstore),
    U32("domid", domid, 1, 0x7fef, "1..32751"),
    U32("backend-domid", be_domid, 0, 0x7fef, "0..32751"),
    WORD("backend-type", required_argument, be_kind, be_kind_words, "vbd or vbd3"),
    FN("vdev", required_argument, opt_vdev),
    STR("target", target),
    FN("mode", required_argument, opt_mode),
    STR("script", script),
    STR("name", name),
    FN("discard-enable", required_argument, opt_discard_enable),
    FLAG("hotplug", hotplug),
    FLAG("keep", keep),
    STR("before-detach", before_detach),
    FN("grant-mode", required_argument, opt_grant_mode),
    FN("backend-key", required_argument, opt_backend_key),
    FLAG("destroy", destroy),
    SECS("timeout", timeout_s),
    WORD("abi", required_argument, abi, abi_words, "x86_64, x86_32 or native"),
    U32("ring-order", ring_order, 0, BB_MAX_RING_ORDER, "0.." BB_XSTR(BB_MAX_RING_ORDER)),
    U32("queues", queues, 1, BB_MAX_QUEUES, "1.." BB_XSTR(BB_MAX_QUEUES)),
    U32("indirect-segs", indirect_segs, 0, BLKIF_MAX_INDIRECT_SEGS_PROTO, "0..4096"),
    FLAG("persistent", persistent),
    WORD("rw", required_argument, rw, rw_words, "read, write, randread, randwrite or randrw"),
    U32("rwmixread", rwmixread, 0, 100, "0..100"),
    FN("bs", required_argument, opt_bs),
    FN("bs-range", required_argument, opt_bs_range),
    U32("iodepth", iodepth, 1, 4096, "1..4096"),
    SECS("runtime", runtime_s),
    SIZE("size", size, 1, 1, "bytes > 0"),
    SIZE("offset", offset, 0, BB_SECTOR, "a multiple of 512 bytes"),
    SIZE("length", length, 1, BB_SECTOR, "a multiple of 512 bytes > 0"),
    { "seed", required_argument, K_U64, F(seed), 0, UINT64_MAX, 0, NULL, "a number", NULL },
    FN("page-offset", required_argument, opt_page_offset),
    FLAG("verify", verify),
    FLAG("sha256", sha256),
    FLAG("flush", flush),
    FN("discard", required_argument, opt_discard),
    SIZE("discard-max", discard_max, 1, BB_SECTOR, "a multiple of 512 bytes"),
    FLAG("secure-discard", secure_discard),
    FLAG("force", force),
    WORD("expect-error", optional_argument, expect, expect_words, "error, eopnotsupp or any"),
    FLAG("expect-readonly", expect_readonly),
    FLAG("json", json),
    FLAG("quiet", quiet),
    FN("help", no_argument, opt_help),
    FN("version", no_argument, opt_version),
};
#undef F
#undef STR
#undef FLAG
#undef U32
#undef SIZE
#undef SECS
#undef WORD
#undef FN

_Static_assert(BLKIF_MAX_INDIRECT_SEGS_PROTO == 4096, "--indirect-segs message");

/* Apply one option of the table to *o.  0, 1 (done), -EINVAL. */
static int apply(const struct bb_opt *t, const char *a, struct bb_opts *o, struct parse_state *st,
                 char *err, size_t errlen)
{
    char *field = (char *)o + t->off;
    uint64_t v;
    double d;
    switch (t->kind) {
    case K_STR:
        *(const char **)field = a;
        return 0;
    case K_FLAG:
        *(bool *)field = true;
        return 0;
    case K_U32:
        if (xbd_parse_u64(a, 0, t->lo, t->hi, &v))
            break;
        *(uint32_t *)field = (uint32_t)v;
        return 0;
    case K_U64:
        if (xbd_parse_u64(a, 0, t->lo, t->hi, &v))
            break;
        *(uint64_t *)field = v;
        return 0;
    case K_SIZE:
        if (bb_parse_size(a, &v) || v < t->lo || v % t->align)
            break;
        *(uint64_t *)field = v;
        return 0;
    case K_SECS:
        if (bb_parse_seconds(a, &d) || d <= 0)
            break;
        *(double *)field = d;
        return 0;
    case K_WORD:
        for (const struct bb_word *w = t->words; w->name; w++)
            if (!a || !strcmp(a, w->name)) {
                *(int *)field = w->val;
                return 0;
            }
        break;
    case K_FN:
        return t->fn(o, a, st, err, errlen);
    }
    return fail(err, errlen, "--%s: expected %s, got '%s'", t->name, t->expect, a);
}

/* The rules between options, once all are read. */
static int check_combination(struct bb_opts *o, const struct parse_state *st, char *err, size_t errlen)
{
    if (!o->sim_dir)
        return fail(err, errlen, "--sim DIR is required");
    if (st->bs_set && st->range_set)
        return fail(err, errlen, "--bs and --bs-range are exclusive");
    if (o->keep && o->destroy)
        return fail(err, errlen, "--keep and --destroy are exclusive");
    if (o->verify && o->rw == BB_RW_NONE)
        return fail(err, errlen, "--verify needs a workload (--rw)");
    if (o->expect != BB_EXPECT_OK && o->expect_readonly)
        return fail(err, errlen, "--expect-error and --expect-readonly are exclusive");
    if (o->expect != BB_EXPECT_OK && o->verify)
        return fail(err, errlen, "--expect-error and --verify are exclusive");
    if (o->expect_readonly && o->verify && o->rw != BB_RW_READ && o->rw != BB_RW_RANDREAD)
        return fail(err, errlen, "--expect-readonly with --verify allows only read workloads");
    if (o->domid == o->be_domid)
        return fail(err, errlen, "--domid and --backend-domid must differ");
    if (o->discard_enable < 0)
        o->discard_enable = o->mode == 'w';
    return 0;
}

int bb_parse_args(int argc, char **argv, struct bb_opts *o, char *err, size_t errlen)
{
    struct option lo[ARRAY_SIZE(opts) + 1];
    struct parse_state st = { false, false };
    for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
        lo[i] = (struct option){ opts[i].name, opts[i].has_arg, NULL, 256 + (int)i };
    lo[ARRAY_SIZE(opts)] = (struct option){ 0 };
    optind = 1;
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, "", lo, NULL)) != -1;) {
        if (c == ':')
            return fail(err, errlen, "option '%s' needs an argument", argv[optind - 1]);
        if (c < 256 || c >= 256 + (int)ARRAY_SIZE(opts))
            return fail(err, errlen, "unknown option '%s'", argv[optind - 1]);
        int rc = apply(&opts[c - 256], optarg, o, &st, err, errlen);
        if (rc)
            return rc;
    }
    if (optind < argc)
        return fail(err, errlen, "unexpected argument '%s'", argv[optind]);
    return check_combination(o, &st, err, errlen);
}
