/*
 * opts.c - xen-blkbench command line: options, sizes, durations, vdev names.
 * No xenstore, no host: unit-tested by tests/t_blkbench_args.c.
 */
#include "bb.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
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
    if (isdigit((unsigned char)*s)) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (*end || errno || v == 0 || v > UINT32_MAX)
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
        if (!isdigit((unsigned char)*p) || *p == '0')
            return -EINVAL;
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (*end || v > 255)
            return -EINVAL;
        part = (unsigned)v;
    }
    /* docs/man/xen-vbd-interface.7.pandoc */
    switch (kind) {
    case XVD:
        if (disk < 16 && part < 16)
            *devid = (202u << 8) | (disk << 4) | part;
        else if (disk < (1u << 20))
            *devid = (1u << 28) | (disk << 8) | part;
        else
            return -EINVAL;
        return 0;
    case SD:
        if (disk < 16 && part < 16)
            *devid = (8u << 8) | (disk << 4) | part;
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
"  --vdev NAME            xvda, xvdb, ... or a number (xvda)\n"
"  --target PATH          backend `params` (the image or block device)\n"
"  --mode w|r             access mode (w)            --script PATH   backend `script`\n"
"  --name NAME            domain name (blkbench<domid>)\n"
"  --discard-enable 0|1   backend `discard-enable` (default 1 if --mode w, else 0)\n"
"  --hotplug              write hotplug-status=connected after backend InitWait\n"
"  --keep                 leave the device connected and the domain alive at exit\n"
"  --before-detach CMD    run the shell command CMD while still connected, before detach\n"
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

enum {
    O_SIM = 256, O_XENSTORE, O_DOMID, O_BEDOMID, O_VDEV, O_TARGET, O_MODE, O_SCRIPT, O_NAME,
    O_DISCARD_ENABLE, O_HOTPLUG, O_KEEP, O_BEFORE_DETACH, O_GRANT_MODE, O_DESTROY, O_TIMEOUT, O_ABI, O_RING_ORDER, O_QUEUES,
    O_INDIRECT, O_PERSISTENT, O_RW, O_RWMIX, O_BS, O_BS_RANGE, O_IODEPTH, O_RUNTIME, O_SIZE,
    O_OFFSET, O_LENGTH, O_SEED, O_PAGE_OFFSET, O_VERIFY, O_SHA256, O_FLUSH, O_DISCARD,
    O_DISCARD_MAX, O_SECURE_DISCARD, O_FORCE, O_EXPECT_ERROR, O_EXPECT_RO, O_JSON, O_QUIET,
    O_HELP, O_VERSION,
};

static const struct option long_opts[] = {
    { "sim", required_argument, 0, O_SIM },
    { "xenstore", required_argument, 0, O_XENSTORE },
    { "domid", required_argument, 0, O_DOMID },
    { "backend-domid", required_argument, 0, O_BEDOMID },
    { "vdev", required_argument, 0, O_VDEV },
    { "target", required_argument, 0, O_TARGET },
    { "mode", required_argument, 0, O_MODE },
    { "script", required_argument, 0, O_SCRIPT },
    { "name", required_argument, 0, O_NAME },
    { "discard-enable", required_argument, 0, O_DISCARD_ENABLE },
    { "hotplug", no_argument, 0, O_HOTPLUG },
    { "keep", no_argument, 0, O_KEEP },
    { "before-detach", required_argument, 0, O_BEFORE_DETACH },
    { "grant-mode", required_argument, 0, O_GRANT_MODE },
    { "destroy", no_argument, 0, O_DESTROY },
    { "timeout", required_argument, 0, O_TIMEOUT },
    { "abi", required_argument, 0, O_ABI },
    { "ring-order", required_argument, 0, O_RING_ORDER },
    { "queues", required_argument, 0, O_QUEUES },
    { "indirect-segs", required_argument, 0, O_INDIRECT },
    { "persistent", no_argument, 0, O_PERSISTENT },
    { "rw", required_argument, 0, O_RW },
    { "rwmixread", required_argument, 0, O_RWMIX },
    { "bs", required_argument, 0, O_BS },
    { "bs-range", required_argument, 0, O_BS_RANGE },
    { "iodepth", required_argument, 0, O_IODEPTH },
    { "runtime", required_argument, 0, O_RUNTIME },
    { "size", required_argument, 0, O_SIZE },
    { "offset", required_argument, 0, O_OFFSET },
    { "length", required_argument, 0, O_LENGTH },
    { "seed", required_argument, 0, O_SEED },
    { "page-offset", required_argument, 0, O_PAGE_OFFSET },
    { "verify", no_argument, 0, O_VERIFY },
    { "sha256", no_argument, 0, O_SHA256 },
    { "flush", no_argument, 0, O_FLUSH },
    { "discard", required_argument, 0, O_DISCARD },
    { "discard-max", required_argument, 0, O_DISCARD_MAX },
    { "secure-discard", no_argument, 0, O_SECURE_DISCARD },
    { "force", no_argument, 0, O_FORCE },
    { "expect-error", optional_argument, 0, O_EXPECT_ERROR },
    { "expect-readonly", no_argument, 0, O_EXPECT_RO },
    { "json", no_argument, 0, O_JSON },
    { "quiet", no_argument, 0, O_QUIET },
    { "help", no_argument, 0, O_HELP },
    { "version", no_argument, 0, O_VERSION },
    { 0, 0, 0, 0 },
};

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

static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (*end || errno || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

int bb_parse_args(int argc, char **argv, struct bb_opts *o, char *err, size_t errlen)
{
    uint64_t v;
    double d;
    bool bs_set = false, range_set = false;
    optind = 1;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "", long_opts, NULL);
        if (c == -1)
            break;
        const char *a = optarg;
        switch (c) {
        case O_SIM: o->sim_dir = a; break;
        case O_XENSTORE: o->xenstore = a; break;
        case O_DOMID:
            if (parse_uint(a, 0x7fef, &v) || v == 0)
                return fail(err, errlen, "--domid: expected 1..32751, got '%s'", a);
            o->domid = (uint32_t)v;
            break;
        case O_BEDOMID:
            if (parse_uint(a, 0x7fef, &v))
                return fail(err, errlen, "--backend-domid: expected 0..32751, got '%s'", a);
            o->be_domid = (uint32_t)v;
            break;
        case O_VDEV:
            if (bb_parse_vdev(a, &o->devid))
                return fail(err, errlen, "--vdev: unknown virtual device '%s'", a);
            o->vdev = a;
            break;
        case O_TARGET: o->target = a; break;
        case O_MODE:
            if (strcmp(a, "w") && strcmp(a, "r"))
                return fail(err, errlen, "--mode: expected w or r, got '%s'", a);
            o->mode = a[0];
            break;
        case O_SCRIPT: o->script = a; break;
        case O_NAME: o->name = a; break;
        case O_DISCARD_ENABLE:
            if (strcmp(a, "0") && strcmp(a, "1"))
                return fail(err, errlen, "--discard-enable: expected 0 or 1");
            o->discard_enable = a[0] - '0';
            break;
        case O_HOTPLUG: o->hotplug = true; break;
        case O_KEEP: o->keep = true; break;
        case O_BEFORE_DETACH: o->before_detach = optarg; break;
        case O_GRANT_MODE:
            if (strcmp(a, "auto") && strcmp(a, "map") && strcmp(a, "copy") && strcmp(a, "persistent"))
                return fail(err, errlen, "--grant-mode: expected auto, map, copy or persistent, got '%s'", a);
            o->grant_mode = a;
            break;
        case O_DESTROY: o->destroy = true; break;
        case O_TIMEOUT:
            if (bb_parse_seconds(a, &d) || d <= 0)
                return fail(err, errlen, "--timeout: expected seconds > 0, got '%s'", a);
            o->timeout_s = d;
            break;
        case O_ABI:
            if (!strcmp(a, "x86_64") || !strcmp(a, "x86_64-abi")) o->abi = BB_ABI_X86_64;
            else if (!strcmp(a, "x86_32") || !strcmp(a, "x86_32-abi")) o->abi = BB_ABI_X86_32;
            else if (!strcmp(a, "native")) o->abi = BB_ABI_NATIVE;
            else return fail(err, errlen, "--abi: expected x86_64, x86_32 or native, got '%s'", a);
            break;
        case O_RING_ORDER:
            if (parse_uint(a, BB_MAX_RING_ORDER, &v))
                return fail(err, errlen, "--ring-order: expected 0..%d, got '%s'", BB_MAX_RING_ORDER, a);
            o->ring_order = (unsigned)v;
            break;
        case O_QUEUES:
            if (parse_uint(a, BB_MAX_QUEUES, &v) || v == 0)
                return fail(err, errlen, "--queues: expected 1..%d, got '%s'", BB_MAX_QUEUES, a);
            o->queues = (unsigned)v;
            break;
        case O_INDIRECT:
            if (parse_uint(a, BLKIF_MAX_INDIRECT_SEGS_PROTO, &v))
                return fail(err, errlen, "--indirect-segs: expected 0..%u, got '%s'",
                            (unsigned)BLKIF_MAX_INDIRECT_SEGS_PROTO, a);
            o->indirect_segs = (unsigned)v;
            break;
        case O_PERSISTENT: o->persistent = true; break;
        case O_RW:
            if (!strcmp(a, "read")) o->rw = BB_RW_READ;
            else if (!strcmp(a, "write")) o->rw = BB_RW_WRITE;
            else if (!strcmp(a, "randread")) o->rw = BB_RW_RANDREAD;
            else if (!strcmp(a, "randwrite")) o->rw = BB_RW_RANDWRITE;
            else if (!strcmp(a, "randrw")) o->rw = BB_RW_RANDRW;
            else return fail(err, errlen, "--rw: expected read, write, randread, randwrite or randrw, got '%s'", a);
            break;
        case O_RWMIX:
            if (parse_uint(a, 100, &v))
                return fail(err, errlen, "--rwmixread: expected 0..100, got '%s'", a);
            o->rwmixread = (unsigned)v;
            break;
        case O_BS:
            if (bb_parse_size(a, &v) || v == 0 || v % BB_SECTOR || v > UINT32_MAX)
                return fail(err, errlen, "--bs: expected a multiple of 512 bytes, got '%s'", a);
            o->bs_min = o->bs_max = (uint32_t)v;
            bs_set = true;
            break;
        case O_BS_RANGE: {
            const char *dash = strchr(a, '-');
            char lo[64];
            uint64_t hi;
            if (!dash || (size_t)(dash - a) >= sizeof(lo))
                return fail(err, errlen, "--bs-range: expected MIN-MAX, got '%s'", a);
            memcpy(lo, a, (size_t)(dash - a));
            lo[dash - a] = 0;
            if (bb_parse_size(lo, &v) || bb_parse_size(dash + 1, &hi) || v == 0 || v % BB_SECTOR ||
                hi % BB_SECTOR || hi < v || hi > UINT32_MAX)
                return fail(err, errlen, "--bs-range: expected MIN-MAX, multiples of 512, MIN <= MAX, got '%s'", a);
            o->bs_min = (uint32_t)v;
            o->bs_max = (uint32_t)hi;
            range_set = true;
            break;
        }
        case O_IODEPTH:
            if (parse_uint(a, 4096, &v) || v == 0)
                return fail(err, errlen, "--iodepth: expected 1..4096, got '%s'", a);
            o->iodepth = (unsigned)v;
            break;
        case O_RUNTIME:
            if (bb_parse_seconds(a, &d) || d <= 0)
                return fail(err, errlen, "--runtime: expected seconds > 0, got '%s'", a);
            o->runtime_s = d;
            break;
        case O_SIZE:
            if (bb_parse_size(a, &v) || v == 0)
                return fail(err, errlen, "--size: expected bytes > 0, got '%s'", a);
            o->size = v;
            break;
        case O_OFFSET:
            if (bb_parse_size(a, &v) || v % BB_SECTOR)
                return fail(err, errlen, "--offset: expected a multiple of 512 bytes, got '%s'", a);
            o->offset = v;
            break;
        case O_LENGTH:
            if (bb_parse_size(a, &v) || v == 0 || v % BB_SECTOR)
                return fail(err, errlen, "--length: expected a multiple of 512 bytes > 0, got '%s'", a);
            o->length = v;
            break;
        case O_SEED:
            if (parse_uint(a, UINT64_MAX, &v))
                return fail(err, errlen, "--seed: expected a number, got '%s'", a);
            o->seed = v;
            break;
        case O_PAGE_OFFSET:
            if (!strcmp(a, "rand") || !strcmp(a, "random"))
                o->page_offset = -1;
            else if (parse_uint(a, BB_SECTORS_PER_PAGE - 1, &v))
                return fail(err, errlen, "--page-offset: expected 0..7 or rand, got '%s'", a);
            else
                o->page_offset = (int)v;
            break;
        case O_VERIFY: o->verify = true; break;
        case O_SHA256: o->sha256 = true; break;
        case O_FLUSH: o->flush = true; break;
        case O_DISCARD: {
            const char *colon = strchr(a, ':');
            char off[64];
            uint64_t len;
            if (o->nr_discards >= BB_MAX_DISCARDS)
                return fail(err, errlen, "--discard: at most %d ranges", BB_MAX_DISCARDS);
            if (!colon || (size_t)(colon - a) >= sizeof(off))
                return fail(err, errlen, "--discard: expected OFFSET:LEN, got '%s'", a);
            memcpy(off, a, (size_t)(colon - a));
            off[colon - a] = 0;
            if (bb_parse_size(off, &v) || bb_parse_size(colon + 1, &len) || v % BB_SECTOR ||
                len % BB_SECTOR || len == 0 || v + len < v)
                return fail(err, errlen, "--discard: expected OFFSET:LEN in bytes, multiples of 512, LEN > 0, got '%s'", a);
            o->discard[o->nr_discards].offset = v;
            o->discard[o->nr_discards].len = len;
            o->nr_discards++;
            break;
        }
        case O_DISCARD_MAX:
            if (bb_parse_size(a, &v) || v == 0 || v % BB_SECTOR)
                return fail(err, errlen, "--discard-max: expected a multiple of 512 bytes, got '%s'", a);
            o->discard_max = v;
            break;
        case O_SECURE_DISCARD: o->secure_discard = true; break;
        case O_FORCE: o->force = true; break;
        case O_EXPECT_ERROR:
            if (!a || !strcmp(a, "error")) o->expect = BB_EXPECT_ERROR;
            else if (!strcmp(a, "eopnotsupp")) o->expect = BB_EXPECT_EOPNOTSUPP;
            else if (!strcmp(a, "any")) o->expect = BB_EXPECT_ANY_FAIL;
            else return fail(err, errlen, "--expect-error: expected error, eopnotsupp or any, got '%s'", a);
            break;
        case O_EXPECT_RO: o->expect_readonly = true; break;
        case O_JSON: o->json = true; break;
        case O_QUIET: o->quiet = true; break;
        case O_HELP: bb_usage(stdout); return 1;
        case O_VERSION: printf("xen-blkbench %s\n", BB_VERSION); return 1;
        case ':':
            return fail(err, errlen, "option '%s' needs an argument", argv[optind - 1]);
        default:
            return fail(err, errlen, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return fail(err, errlen, "unexpected argument '%s'", argv[optind]);
    if (!o->sim_dir)
        return fail(err, errlen, "--sim DIR is required");
    if (bs_set && range_set)
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
