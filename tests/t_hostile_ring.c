/* t_hostile_ring: a seeded fuzzing frontend (both ABIs, map/copy/persistent, 1-2 queues) writes ~20k garbage requests, revokes grants in flight, scribbles response slots and moves req_prod ahead and backwards; the daemon answers every request once with a valid status, halts only that ring, leaks nothing, logs rate-limited lines, while another guest's verified workload keeps passing and its disk is untouched. */
#include "harness.h"
#include "util.h"
#include "lib/e2e.h"
#include "lib/guest.h"
#include "lib/hostile.h"
#include "sim.h"
#include "blkif_abi.h"

#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xen/io/xenbus.h>

#define FOREIGN_DOM 5           /* grants "to another domain" go here */
#define GOOD_DOM 9
#define HOSTILE_MIB 8
#define GOOD_MIB 16
#define GOOD_BENCH_LEN (8u << 20)   /* the good guest works on [0, 8 MiB) ... */
                                    /* ... and [8 MiB, 16 MiB) must never change */
#define PROTECTED_LEN (((uint64_t)GOOD_MIB << 20) - GOOD_BENCH_LEN)
#define NRO 32                  /* data pages granted read-only, never revoked */
#define NFO 16                  /* granted to FOREIGN_DOM, never revoked */
#define NRW 320                 /* granted read-write; the fuzzer revokes and re-grants */
#define NIND 512                /* indirect pages, used round robin (even ro, odd rw) */
#define NVOL 8                  /* indirect pages rewritten all the time by a thread */
#define NVER 4                  /* pages of the clean check after fuzzing */
#define MAXOUT 256              /* outstanding requests: <= 2 queues x 128 slots */
#define MAX_REPORTS 20

enum must { MUST_ANY = 0, MUST_FAIL, MUST_EOP };
enum ring_end { END_NONE, END_AHEAD, END_BACKWARDS };
enum teardown { TD_CLOSE, TD_DESTROY };

struct sess_cfg {
    const char *name;
    unsigned domid;
    enum blkif_abi abi;
    const char *protocol;       /* NULL: no key (native) */
    unsigned nq, npages;
    const char *grant_mode;
    bool persistent;
    unsigned delay_us;          /* delay: filter engine, 0 = none */
    unsigned nreq, max_ms;
    uint64_t seed;
    enum ring_end end;
    enum teardown td;
};

struct ostd { uint64_t id; uint8_t q, op, must; bool used; const char *why; };

struct fz {
    struct e2e *e;
    const struct sess_cfg *c;
    struct guest g;
    struct hvbd v;
    uint64_t rng;
    uint64_t sectors;
    bool discard, secure, barrier;
    unsigned max_ind;
    uint32_t ro_ref[NRO], fo_ref[NFO];
    struct { uint32_t pfn, ref; bool live; } rw[NRW];
    uint32_t dead[64];
    unsigned ndead;
    uint32_t ind_pfn[NIND], ind_ref[NIND];
    unsigned ind_next;
    uint32_t vol_pfn[NVOL], vol_ref[NVOL];
    uint32_t ver_pfn[NVER], ver_ref[NVER];
    struct ostd out[MAXOUT];
    unsigned nout, qout[XBD_MAX_QUEUES];
    uint64_t recent[8];
    unsigned nrecent;
    unsigned sent, answered, ok, err, eop, must_fail, revoke_ok, revoke_busy, reports;
    pthread_t vol_thr;
    volatile bool vol_stop;
};

static const char *hostile_img, *good_img;
static const char *why_bad;     /* reason of the last MUST_FAIL, for failure reports */

/* ---- helpers --------------------------------------------------------------- */

static uint64_t rnd64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t rnd(struct fz *f, uint64_t n)
{
    return n ? rnd64(&f->rng) % n : 0;
}

#define FZ_FAIL(f, ...) do { t_failures++; if ((f)->reports++ < MAX_REPORTS) { \
    fprintf(stderr, "FAIL %s:%d: [%s] ", __FILE__, __LINE__, (f)->c->name);       \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* 64-bit FNV-1a of [off, off+len) of a file. */
static uint64_t hash_region(const char *path, uint64_t off, uint64_t len)
{
    int fd = open(path, O_RDONLY);
    T_ASSERT(fd >= 0, "%s: %s", path, strerror(errno));
    static uint8_t buf[1 << 20];
    uint64_t h = 0xcbf29ce484222325ull;
    while (len) {
        size_t n = len < sizeof(buf) ? len : sizeof(buf);
        ssize_t r = pread(fd, buf, n, (off_t)off);
        T_ASSERT(r > 0, "pread %s", path);
        for (ssize_t i = 0; i < r; i++)
            h = (h ^ buf[i]) * 0x100000001b3ull;
        off += (uint64_t)r;
        len -= (uint64_t)r;
    }
    close(fd);
    return h;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static void *entry(struct fz *f, unsigned qi, RING_IDX i)
{
    struct gq *q = &f->g.q[qi];
    return (char *)q->fr.sring->ring + (size_t)(i & (RING_SIZE(&q->fr) - 1)) * f->g.esz;
}

static void grant(struct fz *f, uint32_t pfn, xen_domid_t to, bool ro, uint32_t *ref)
{
    int rc = sim_gnt_grant(f->g.dom, to, pfn, ro, ref);
    T_ASSERT(rc == 0, "grant pfn %u: %d", pfn, rc);
}

/* ---- guest memory pools ------------------------------------------------------ */

static void pools_init(struct fz *f)
{
    for (unsigned i = 0; i < NRO; i++)
        grant(f, guest_page(&f->g), 0, true, &f->ro_ref[i]);
    for (unsigned i = 0; i < NFO; i++)
        grant(f, guest_page(&f->g), FOREIGN_DOM, false, &f->fo_ref[i]);
    for (unsigned i = 0; i < NRW; i++) {
        f->rw[i].pfn = guest_page(&f->g);
        grant(f, f->rw[i].pfn, 0, false, &f->rw[i].ref);
        f->rw[i].live = true;
    }
    for (unsigned i = 0; i < NIND; i++) {
        f->ind_pfn[i] = guest_page(&f->g);
        grant(f, f->ind_pfn[i], 0, !(i & 1), &f->ind_ref[i]);
    }
    for (unsigned i = 0; i < NVOL; i++) {
        f->vol_pfn[i] = guest_page(&f->g);
        grant(f, f->vol_pfn[i], 0, false, &f->vol_ref[i]);
    }
    for (unsigned i = 0; i < NVER; i++) {
        f->ver_pfn[i] = guest_page(&f->g);
        grant(f, f->ver_pfn[i], 0, false, &f->ver_ref[i]);
    }
}

/* End every grant we hold: nothing may be mapped once the backend closed. */
static void pools_end(struct fz *f)
{
    unsigned busy = 0;
#define END(ref) do { if (sim_gnt_end(f->g.dom, (ref)) == -EBUSY) busy++; } while (0)
    for (unsigned i = 0; i < NRO; i++) END(f->ro_ref[i]);
    for (unsigned i = 0; i < NFO; i++) END(f->fo_ref[i]);
    for (unsigned i = 0; i < NRW; i++) if (f->rw[i].live) END(f->rw[i].ref);
    for (unsigned i = 0; i < NIND; i++) END(f->ind_ref[i]);
    for (unsigned i = 0; i < NVOL; i++) END(f->vol_ref[i]);
    for (unsigned i = 0; i < NVER; i++) END(f->ver_ref[i]);
    for (unsigned qi = 0; qi < f->g.nq; qi++)
        for (unsigned i = 0; i < f->g.q[qi].npages; i++)
            END(f->g.q[qi].ring_ref[i]);
#undef END
    T_CHECK(busy == 0, "[%s] %u grant(s) still mapped by the backend after Closed", f->c->name, busy);
}

enum gk { GK_RW, GK_RO, GK_FO, GK_NEVER, GK_DEAD };

/* A gref for a data segment, and what it is. */
static uint32_t pick_gref(struct fz *f, enum gk *kind)
{
    unsigned r = (unsigned)rnd(f, 100);
    if (r < 62) {
        unsigned i = (unsigned)rnd(f, NRW);
        if (!f->rw[i].live) {
            grant(f, f->rw[i].pfn, 0, false, &f->rw[i].ref);
            f->rw[i].live = true;
        }
        *kind = GK_RW;
        return f->rw[i].ref;
    }
    if (r < 74) {
        *kind = GK_RO;
        return f->ro_ref[rnd(f, NRO)];
    }
    if (r < 80) {
        *kind = GK_FO;
        return f->fo_ref[rnd(f, NFO)];
    }
    if (r < 92 || !f->ndead) {
        static const uint32_t never[] = { 0, 1, 7, 16384, 16385, 100000, 0x7fffffff, 0xffffffff };
        *kind = GK_NEVER;
        return never[rnd(f, ARRAY_SIZE(never))];
    }
    *kind = GK_DEAD;                    /* revoked; maybe granted again since */
    return f->dead[rnd(f, f->ndead)];
}

/* The frontend takes a grant back while requests may use it. */
static void maybe_revoke(struct fz *f)
{
    unsigned i = (unsigned)rnd(f, NRW);
    if (!f->rw[i].live)
        return;
    int rc = sim_gnt_end(f->g.dom, f->rw[i].ref);
    if (rc == 0) {
        f->rw[i].live = false;
        f->revoke_ok++;
        if (f->ndead < 64)
            f->dead[f->ndead++] = f->rw[i].ref;
        else
            f->dead[rnd(f, 64)] = f->rw[i].ref;
    } else {
        T_CHECK(rc == -EBUSY, "[%s] sim_gnt_end: %d", f->c->name, rc);
        f->revoke_busy++;
    }
}

/* Indirect pages rewritten while the backend may be reading them. */
static void *vol_thread(void *arg)
{
    struct fz *f = arg;
    uint64_t s = f->c->seed ^ 0x5eed;
    while (!f->vol_stop) {
        for (unsigned p = 0; p < NVOL; p++) {
            uint64_t *w = sim_dom_page(f->g.dom, f->vol_pfn[p]);
            for (unsigned i = 0; i < GUEST_PG / 8; i++)
                __atomic_store_n(&w[i], rnd64(&s), __ATOMIC_RELAXED);
        }
        usleep(200);
    }
    return NULL;
}

/* ---- request generation --------------------------------------------------------- */

static uint64_t pick_id(struct fz *f)
{
    unsigned r = (unsigned)rnd(f, 100);
    uint64_t id;
    if (r < 15 && f->nrecent)
        id = f->recent[rnd(f, f->nrecent < 8 ? f->nrecent : 8)];   /* duplicate / in flight */
    else if (r < 20)
        id = rnd(f, 4);
    else if (r < 23)
        id = UINT64_MAX - rnd(f, 2);
    else
        id = rnd64(&f->rng);
    f->recent[f->nrecent++ % 8] = id;
    return id;
}

/* A sector for `span` sectors of data: mostly inside the disk, else at or
 * past the end, wrapping, or anything. */
static uint64_t pick_sector(struct fz *f, uint64_t span)
{
    unsigned r = (unsigned)rnd(f, 100);
    if (r < 72)
        return rnd(f, f->sectors > span ? f->sectors - span : 1);
    if (r < 82)
        return f->sectors - rnd(f, 64);
    if (r < 88)
        return UINT64_MAX - rnd(f, 4096);
    if (r < 94)
        return rnd64(&f->rng);
    return f->sectors + rnd(f, 1u << 20);
}

static bool range_bad(struct fz *f, uint64_t start, uint64_t n)
{
    uint64_t end = start + n;
    return end < start || end > f->sectors;
}

/* Fill n segments (mostly valid); *bad: some segment must make the request fail. */
static uint64_t gen_segs(struct fz *f, struct blkif_request_segment *seg, unsigned n, bool to_guest,
                         bool *bad)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        enum gk k;
        seg[i].gref = pick_gref(f, &k);
        if (rnd(f, 100) < 85) {
            uint8_t a = (uint8_t)rnd(f, 8), b = (uint8_t)rnd(f, 8);
            seg[i].first_sect = a < b ? a : b;
            seg[i].last_sect = a < b ? b : a;
        } else {
            seg[i].first_sect = (uint8_t)rnd(f, 256);
            seg[i].last_sect = (uint8_t)rnd(f, 256);
        }
        if (seg[i].last_sect >= 8 || seg[i].first_sect > seg[i].last_sect)
            *bad = true, why_bad = "first/last";
        else
            total += (uint64_t)(seg[i].last_sect - seg[i].first_sect + 1);
        if (k == GK_FO || k == GK_NEVER || (k == GK_RO && to_guest))
            *bad = true, why_bad = k == GK_FO ? "foreign gref" : k == GK_NEVER ? "never granted" : "ro for READ";
    }
    return total;
}

/* A direct request of op (READ/WRITE/FLUSH/BARRIER). */
static uint8_t gen_direct(struct fz *f, struct treq *r, uint8_t op)
{
    r->op = op;
    unsigned k = (unsigned)rnd(f, 100), n;
    bool flush = op == BLKIF_OP_FLUSH_DISKCACHE || op == BLKIF_OP_WRITE_BARRIER;
    if (flush)
        n = k < 50 ? 0 : k < 80 ? 1 + (unsigned)rnd(f, 11) : (unsigned)rnd(f, 256);
    else
        n = k < 60 ? 1 + (unsigned)rnd(f, 11) : k < 70 ? 0 : (unsigned)rnd(f, 256);
    r->nr_segs = n;
    bool bad = n > BLKIF_MAX_SEGMENTS_PER_REQUEST || (!flush && n == 0);
    why_bad = "nr_segments";
    unsigned used = n > BLKIF_MAX_SEGMENTS_PER_REQUEST ? BLKIF_MAX_SEGMENTS_PER_REQUEST : n;
    uint64_t total = gen_segs(f, r->seg, used, op == BLKIF_OP_READ, &bad);
    for (unsigned i = used; i < BLKIF_MAX_SEGMENTS_PER_REQUEST; i++) {   /* junk beyond n */
        r->seg[i].gref = (uint32_t)rnd64(&f->rng);
        r->seg[i].first_sect = (uint8_t)rnd(f, 256);
        r->seg[i].last_sect = (uint8_t)rnd(f, 256);
    }
    r->sector = pick_sector(f, 88);
    if (used && !bad && range_bad(f, r->sector, total))
        bad = true, why_bad = "range";
    if (op == BLKIF_OP_WRITE_BARRIER && !f->barrier)
        return MUST_EOP;
    return bad ? MUST_FAIL : MUST_ANY;
}

/* A READ or WRITE that is valid when built (grants may be revoked later). */
static uint8_t gen_valid(struct fz *f, struct treq *r)
{
    r->op = rnd(f, 2) ? BLKIF_OP_READ : BLKIF_OP_WRITE;
    unsigned n = 1 + (unsigned)rnd(f, 11);
    r->nr_segs = n;
    for (unsigned i = 0; i < n; i++) {
        unsigned j = (unsigned)rnd(f, NRW);
        if (!f->rw[j].live) {
            grant(f, f->rw[j].pfn, 0, false, &f->rw[j].ref);
            f->rw[j].live = true;
        }
        r->seg[i] = (struct blkif_request_segment){ .gref = f->rw[j].ref, .first_sect = 0, .last_sect = 7 };
    }
    r->sector = rnd(f, f->sectors - 88);
    return MUST_ANY;
}

static uint8_t gen_discard(struct fz *f, struct treq *r)
{
    r->op = BLKIF_OP_DISCARD;
    unsigned k = (unsigned)rnd(f, 100);
    r->flag = k < 10 ? BLKIF_DISCARD_SECURE : k < 15 ? (uint8_t)rnd(f, 256) : 0;
    r->sector = pick_sector(f, 2048);
    k = (unsigned)rnd(f, 100);
    r->nr_sectors = k < 45 ? rnd(f, 2048) : k < 60 ? UINT64_MAX - r->sector + 1 + rnd(f, 16)
                  : k < 75 ? f->sectors : k < 85 ? UINT64_MAX : rnd64(&f->rng);
    bool bad = !f->discard || ((r->flag & BLKIF_DISCARD_SECURE) && !f->secure) ||
               range_bad(f, r->sector, r->nr_sectors);
    why_bad = "discard";
    return bad ? MUST_FAIL : MUST_ANY;
}

/* Descriptors of the indirect page at `p` for segments [first, first+n). */
static void fill_indirect(struct fz *f, uint32_t pfn, unsigned n, uint64_t *total)
{
    struct blkif_request_segment *d = sim_dom_page(f->g.dom, pfn);
    bool dummy = false;
    *total += gen_segs(f, d, n, false, &dummy);
    for (unsigned i = n; i < BLKIF_SEGS_PER_INDIRECT_PAGE && i < n + 4; i++)
        d[i].gref = (uint32_t)rnd64(&f->rng);
}

static uint8_t gen_indirect(struct fz *f, struct treq *r)
{
    r->op = BLKIF_OP_INDIRECT;
    unsigned k = (unsigned)rnd(f, 100);
    r->indirect_op = k < 80 ? (uint8_t)rnd(f, 2) : (uint8_t)rnd(f, 256);
    k = (unsigned)rnd(f, 100);
    unsigned n = k < 30 ? 1 + (unsigned)rnd(f, 32) : k < 55 ? 1 + (unsigned)rnd(f, 256)
               : k < 65 ? 0 : k < 75 ? 257 + (unsigned)rnd(f, 3840) : k < 85 ? (unsigned)rnd(f, 65536)
               : 1 + (unsigned)rnd(f, 8);
    r->nr_segs = n;
    bool bad = (r->indirect_op != BLKIF_OP_READ && r->indirect_op != BLKIF_OP_WRITE) ||
               n == 0 || n > f->max_ind;
    why_bad = "indirect header";
    unsigned m = n > BLKIF_MAX_INDIRECT_SEGS_PROTO ? BLKIF_MAX_INDIRECT_SEGS_PROTO : n;
    unsigned np = (m + BLKIF_SEGS_PER_INDIRECT_PAGE - 1) / BLKIF_SEGS_PER_INDIRECT_PAGE;
    uint64_t total = 0;
    for (unsigned p = 0; p < BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST; p++) {
        if (p >= np) {
            r->indirect_grefs[p] = (uint32_t)rnd64(&f->rng);    /* must be ignored */
            continue;
        }
        unsigned segs = m - p * BLKIF_SEGS_PER_INDIRECT_PAGE;
        if (segs > BLKIF_SEGS_PER_INDIRECT_PAGE)
            segs = BLKIF_SEGS_PER_INDIRECT_PAGE;
        unsigned c = (unsigned)rnd(f, 100);
        if (c < 75) {
            unsigned i = f->ind_next++ % NIND;
            r->indirect_grefs[p] = f->ind_ref[i];
            if (!bad)                   /* only pages the backend may read get content */
                fill_indirect(f, f->ind_pfn[i], segs, &total);
        } else if (c < 85) {
            r->indirect_grefs[p] = f->vol_ref[rnd(f, NVOL)];
        } else if (c < 90) {
            r->indirect_grefs[p] = f->fo_ref[rnd(f, NFO)];
        } else {
            enum gk kk;
            do
                r->indirect_grefs[p] = pick_gref(f, &kk);
            while (kk == GK_RW);
        }
    }
    r->sector = pick_sector(f, total ? total : 1);
    return bad ? MUST_FAIL : MUST_ANY;
}

/* One random request; returns what its response must be. */
static uint8_t gen_req(struct fz *f, struct treq *r)
{
    memset(r, 0, sizeof(*r));
    r->id = pick_id(f);
    unsigned k = (unsigned)rnd(f, 100);
    if (k < 22)
        return gen_direct(f, r, rnd(f, 2) ? BLKIF_OP_READ : BLKIF_OP_WRITE);
    if (k < 40)
        return gen_indirect(f, r);
    if (k < 48)
        return gen_direct(f, r, BLKIF_OP_FLUSH_DISKCACHE);
    if (k < 52)
        return gen_direct(f, r, BLKIF_OP_WRITE_BARRIER);
    if (k < 62)
        return gen_discard(f, r);
    if (k < 72) {                       /* unknown operation (incl. RESERVED_1) */
        uint8_t op;
        do
            op = (uint8_t)rnd(f, 256);
        while (op <= BLKIF_OP_FLUSH_DISKCACHE || op == BLKIF_OP_DISCARD || op == BLKIF_OP_INDIRECT);
        r->op = op;
        r->nr_segs = (unsigned)rnd(f, 256);
        r->sector = rnd64(&f->rng);
        for (unsigned i = 0; i < BLKIF_MAX_SEGMENTS_PER_REQUEST; i++)
            r->seg[i].gref = (uint32_t)rnd64(&f->rng);
        return MUST_EOP;
    }
    return gen_valid(f, r);
}

/* ---- responses ------------------------------------------------------------------- */

static void check_rsp(struct fz *f, unsigned qi, uint64_t id, uint8_t op, int16_t st)
{
    f->answered++;
    if (st == BLKIF_RSP_OKAY)
        f->ok++;
    else if (st == BLKIF_RSP_ERROR)
        f->err++;
    else if (st == BLKIF_RSP_EOPNOTSUPP)
        f->eop++;
    else
        FZ_FAIL(f, "queue %u: response id %#" PRIx64 " has status %d", qi, id, st);
    /* The outstanding request this answers: same queue, id and op; with
     * duplicate ids, one whose expectation the status meets, the most
     * constrained first (an ERROR goes to a must-fail request before an
     * any-status one, which may still be answered OKAY). */
    int any = -1, fit = -1;
    for (unsigned k = 0; k < MAXOUT; k++) {
        struct ostd *o = &f->out[k];
        if (!o->used || o->q != qi || o->id != id || o->op != op)
            continue;
        any = (int)k;
        bool ok = o->must == MUST_ANY || (o->must == MUST_FAIL && st != BLKIF_RSP_OKAY) ||
                  (o->must == MUST_EOP && st == BLKIF_RSP_EOPNOTSUPP);
        if (ok && (fit < 0 || o->must > f->out[fit].must))
            fit = (int)k;
    }
    if (any < 0) {
        bool id_known = false;
        for (unsigned k = 0; k < MAXOUT; k++)
            id_known |= f->out[k].used && f->out[k].id == id;
        FZ_FAIL(f, "queue %u: response id %#" PRIx64 " op %u status %d matches no outstanding "
                "request (%s)", qi, id, op, st, id_known ? "wrong op or queue" : "unknown id");
        return;
    }
    if (fit < 0) {
        struct ostd *o = &f->out[any];
        f->must_fail++;
        FZ_FAIL(f, "queue %u: request id %#" PRIx64 " op %u answered %d, must be %s (%s)", qi, id, op,
                st, o->must == MUST_EOP ? "EOPNOTSUPP" : "ERROR/EOPNOTSUPP",
                o->must == MUST_EOP ? "unknown op" : o->why);
        fit = any;
    }
    f->out[fit].used = false;
    f->nout--;
    f->qout[qi]--;
}

/* Take every response the rings hold; wait up to timeout_ms for the first. */
static unsigned collect(struct fz *f, unsigned timeout_ms)
{
    uint64_t end = xbd_now_ms() + timeout_ms;
    unsigned got = 0;
    for (;;) {
        for (unsigned qi = 0; qi < f->g.nq; qi++) {
            struct gq *q = &f->g.q[qi];
            int more;
            RING_FINAL_CHECK_FOR_RESPONSES(&q->fr, more);
            if (!more)
                continue;
            RING_IDX rp = __atomic_load_n(&q->fr.sring->rsp_prod, __ATOMIC_ACQUIRE);
            while (q->fr.rsp_cons != rp) {
                void *e = entry(f, qi, q->fr.rsp_cons++);
                if (f->g.abi == BLKIF_ABI_X86_32) {
                    struct blkif_x86_32_response *r = e;
                    check_rsp(f, qi, r->id, r->operation, r->status);
                } else {
                    struct blkif_x86_64_response *r = e;
                    check_rsp(f, qi, r->id, r->operation, r->status);
                }
                got++;
            }
        }
        uint64_t now = xbd_now_ms();
        if (got || now >= end)
            return got;
        struct pollfd pfd = { .fd = sim_evtchn_fd(f->g.ev), .events = POLLIN };
        poll(&pfd, 1, (int)(end - now < 20 ? end - now : 20));
        xen_port_t p;
        while (sim_evtchn_pending(f->g.ev, &p) == 0)
            sim_evtchn_unmask(f->g.ev, p);
    }
}

static void submit(struct fz *f, unsigned qi, const struct treq *r, uint8_t must)
{
    guest_put_req(&f->g, qi, r);
    unsigned k = 0;
    while (f->out[k].used)
        k++;
    T_ASSERT(k < MAXOUT, "outstanding table full");
    f->out[k] = (struct ostd){ .id = r->id, .q = (uint8_t)qi,
                               .op = r->op == BLKIF_OP_INDIRECT ? r->indirect_op : r->op,
                               .must = must, .used = true, .why = why_bad };
    f->nout++;
    f->qout[qi]++;
    f->sent++;
}

/* ---- one hostile session ------------------------------------------------------------ */

static void wait_halted(struct fz *f, bool want)
{
    uint64_t end = xbd_now_ms() + 3000;
    long long h;
    while ((h = t_daemon_dev_int(&f->e->d, f->v.domid, f->v.devid, "halted")) != want &&
           xbd_now_ms() < end)
        usleep(10000);
    T_CHECK(h == want, "[%s] halted = %lld, expected %d", f->c->name, h, want);
}

/* A clean WRITE then READ of NVER/2 pages: the device still serves correctly. */
static void clean_check(struct fz *f)
{
    const unsigned n = NVER / 2;
    uint64_t sector = 1024 + rnd(f, 1024);
    for (int pass = 0; pass < 2; pass++) {
        struct treq r;
        memset(&r, 0, sizeof(r));
        r.op = pass ? BLKIF_OP_READ : BLKIF_OP_WRITE;
        r.id = 0xC1EA0000ull + (uint64_t)pass;
        r.sector = sector;
        r.nr_segs = n;
        for (unsigned i = 0; i < n; i++) {
            unsigned pg = pass ? n + i : i;
            r.seg[i] = (struct blkif_request_segment){ .gref = f->ver_ref[pg], .first_sect = 0, .last_sect = 7 };
            if (!pass)
                guest_fill(sim_dom_page(f->g.dom, f->ver_pfn[pg]), GUEST_PG, f->c->seed + i);
            else
                memset(sim_dom_page(f->g.dom, f->ver_pfn[pg]), 0, GUEST_PG);
        }
        unsigned ok0 = f->ok;
        submit(f, 0, &r, MUST_ANY);
        guest_push(&f->g, 0);
        uint64_t end = xbd_now_ms() + 5000;
        while (f->nout && xbd_now_ms() < end)
            collect(f, 50);
        T_CHECK(f->nout == 0 && f->ok == ok0 + 1, "[%s] clean %s after fuzzing: not answered OKAY",
                f->c->name, pass ? "READ" : "WRITE");
    }
    for (unsigned i = 0; i < n; i++)
        T_CHECK(!memcmp(sim_dom_page(f->g.dom, f->ver_pfn[i]), sim_dom_page(f->g.dom, f->ver_pfn[n + i]),
                        GUEST_PG), "[%s] clean read-back differs (page %u)", f->c->name, i);
}

/*
 * A WRITE whose grant cannot be reached, then a BARRIER with data, in one
 * push: the BARRIER waits for the WRITE, which fails when its data is
 * fetched (COPY: at the batch copy); the BARRIER must still run.
 */
static void barrier_after_fault(struct fz *f)
{
    if (!f->barrier)
        return;
    struct treq w, b;
    memset(&w, 0, sizeof(w));
    w.op = BLKIF_OP_WRITE;
    w.id = 0xBA5E0001ull;
    w.nr_segs = 1;
    w.sector = 64;
    w.seg[0] = (struct blkif_request_segment){ .gref = 12345, .first_sect = 0, .last_sect = 7 };
    memset(&b, 0, sizeof(b));
    b.op = BLKIF_OP_WRITE_BARRIER;
    b.id = 0xBA5E0002ull;
    b.nr_segs = 1;
    b.sector = 72;
    b.seg[0] = (struct blkif_request_segment){ .gref = f->ver_ref[0], .first_sect = 0, .last_sect = 7 };
    unsigned ok0 = f->ok, err0 = f->err;
    submit(f, 0, &w, MUST_FAIL);
    submit(f, 0, &b, MUST_ANY);
    guest_push(&f->g, 0);
    uint64_t end = xbd_now_ms() + 5000;
    while (f->nout && xbd_now_ms() < end)
        collect(f, 50);
    T_CHECK(f->nout == 0, "[%s] BARRIER after a failed WRITE: %u request(s) never answered",
            f->c->name, f->nout);
    T_CHECK(f->ok == ok0 + 1 && f->err == err0 + 1, "[%s] BARRIER after a failed WRITE: "
            "%u OKAY, %u ERROR, expected 1 and 1", f->c->name, f->ok - ok0, f->err - err0);
}

static void session_connect(struct fz *f, struct e2e *e, const struct sess_cfg *c)
{
    memset(f, 0, sizeof(*f));
    f->e = e;
    f->c = c;
    f->rng = c->seed;
    guest_init(&f->g, e->sim, c->domid, c->abi, c->nq, c->npages, 0);
    pools_init(f);
    char params[600];
    if (c->delay_us)
        snprintf(params, sizeof(params), "delay:%u:%s", c->delay_us, hostile_img);
    else
        snprintf(params, sizeof(params), "%s", hostile_img);
    const char *extra[] = { "grant-mode", c->grant_mode, NULL };
    hx_add(&f->v, c->domid, 51712, params, extra);
    T_ASSERT(hx_wait_be(&e->d, &f->v, XenbusStateInitWait, 10000), "[%s] InitWait", c->name);
    hx_publish(&f->v, &f->g, c->protocol, c->persistent);
    hx_fe_state(&f->v, XenbusStateInitialised);
    T_ASSERT(hx_wait_be(&e->d, &f->v, XenbusStateConnected, 10000), "[%s] Connected", c->name);
    hx_fe_state(&f->v, XenbusStateConnected);
    f->sectors = (uint64_t)hx_read_int("%s/sectors", f->v.be);
    T_ASSERT(f->sectors == (uint64_t)HOSTILE_MIB << 11, "[%s] sectors %" PRIu64, c->name, f->sectors);
    f->discard = hx_read_int("%s/feature-discard", f->v.be) == 1;
    f->secure = hx_read_int("%s/discard-secure", f->v.be) == 1;
    f->barrier = hx_read_int("%s/feature-barrier", f->v.be) == 1;
    long long mi = hx_read_int("%s/feature-max-indirect-segments", f->v.be);
    f->max_ind = mi > 0 ? (unsigned)mi : 0;
    T_LOG("[%s] connected: domid %u, %s, %u queue(s) x %u page(s), grant-mode %s%s, delay %u us, "
          "discard %d secure %d barrier %d indirect %u", c->name, c->domid, blkif_abi_name(c->abi),
          c->nq, c->npages, c->grant_mode, c->persistent ? " (persistent offered)" : "", c->delay_us,
          f->discard, f->secure, f->barrier, f->max_ind);
}

static void session_fuzz(struct fz *f)
{
    const struct sess_cfg *c = f->c;
    T_ASSERT(pthread_create(&f->vol_thr, NULL, vol_thread, f) == 0);
    uint64_t t0 = xbd_now_ms(), deadline = t0 + c->max_ms;
    while (f->sent < c->nreq && xbd_now_ms() < deadline) {
        unsigned qi = (unsigned)rnd(f, c->nq);
        struct gq *q = &f->g.q[qi];
        unsigned size = RING_SIZE(&q->fr);
        unsigned room = size - (q->fr.req_prod_pvt - q->fr.rsp_cons);
        if (!room) {
            collect(f, 20);
            continue;
        }
        unsigned batch = 1 + (unsigned)rnd(f, room < 16 ? room : 16);
        for (unsigned b = 0; b < batch && f->sent < c->nreq; b++) {
            struct treq r;
            uint8_t must = gen_req(f, &r);
            submit(f, qi, &r, must);
        }
        guest_push(&f->g, qi);
        if (rnd(f, 100) < 25)
            maybe_revoke(f);            /* grants taken back while requests use them */
        collect(f, 0);
    }
    uint64_t end = xbd_now_ms() + 15000;
    while (f->nout && xbd_now_ms() < end)
        collect(f, 50);
    f->vol_stop = true;
    pthread_join(f->vol_thr, NULL);
    T_CHECK(f->nout == 0, "[%s] %u request(s) never answered (daemon hung?)", c->name, f->nout);
    if (f->nout) {
        for (unsigned qi = 0; qi < c->nq; qi++) {
            struct gq *q = &f->g.q[qi];
            T_LOG("queue %u: req_prod %u req_event %u rsp_prod %u rsp_event %u rsp_cons %u", qi,
                  q->fr.sring->req_prod, q->fr.sring->req_event, q->fr.sring->rsp_prod,
                  q->fr.sring->rsp_event, q->fr.rsp_cons);
        }
        char req[64];
        snprintf(req, sizeof(req), "stats %u %u", f->v.domid, f->v.devid);
        char *st = t_daemon_request(&f->e->d, req);
        T_LOG("%s", st ? st : "(no stats)");
        free(st);
        for (unsigned k = 0; k < MAXOUT; k++)
            if (f->out[k].used)
                T_LOG("outstanding: q %u id %#" PRIx64 " op %u must %u", f->out[k].q, f->out[k].id,
                      f->out[k].op, f->out[k].must);
    }
    T_LOG("[%s] %u requests in %" PRIu64 " ms: %u answered (okay %u, error %u, eopnotsupp %u); "
          "revokes: %u done, %u refused busy", c->name, f->sent, xbd_now_ms() - t0, f->answered, f->ok,
          f->err, f->eop, f->revoke_ok, f->revoke_busy);
    T_CHECK(f->sent >= c->nreq / 2, "[%s] only %u requests sent in time", c->name, f->sent);
    T_CHECK(f->ok > f->sent / 20, "[%s] only %u OKAY of %u: is the device serving at all?", c->name,
            f->ok, f->sent);
    T_CHECK(f->err > f->sent / 10 && f->eop > f->sent / 20, "[%s] too few refusals", c->name);
    clean_check(f);
    barrier_after_fault(f);
}

/* req_prod far ahead: the ring halts, the daemon lives. */
static void ring_jump_ahead(struct fz *f)
{
    struct gq *q = &f->g.q[0];
    q->fr.sring->req_prod = q->fr.sring->rsp_prod + RING_SIZE(&q->fr) + 7;
    sim_evtchn_notify(f->g.ev, q->port);
    wait_halted(f, true);
}

/*
 * req_prod moved backwards, behind requests the backend already consumed
 * (some still in flight), with every other slot an unknown op (answered at
 * once): the backend must not consume the slots between req_cons and the
 * bogus req_prod (~2^32 of them) but halt.
 */
static void ring_backwards(struct fz *f)
{
    struct gq *q = &f->g.q[0];
    unsigned size = RING_SIZE(&q->fr), n = size / 2;
    /* n slow valid READs (needs the delay engine to stay in flight) */
    for (unsigned i = 0; i < n; i++) {
        struct treq r;
        guest_req_init(&r, BLKIF_OP_READ, 0, 0xBAC0000ull + i, 8ull * i, 1);
        r.seg[0] = (struct blkif_request_segment){ .gref = f->rw[i].ref, .first_sect = 0, .last_sect = 7 };
        T_ASSERT(f->rw[i].live);
        submit(f, 0, &r, MUST_ANY);
    }
    guest_push(&f->g, 0);
    uint64_t end = xbd_now_ms() + 3000;
    while (t_daemon_stat(&f->e->d, f->v.domid, f->v.devid, "inflight") < n && xbd_now_ms() < end)
        usleep(2000);
    RING_IDX prod = q->fr.req_prod_pvt;
    for (unsigned i = 0; i < size - n; i++) {       /* the free slots: unknown ops */
        uint8_t *e = entry(f, 0, prod + i);
        memset(e, 0, f->g.esz);
        e[0] = 0xEE;
        memset(e + (f->g.abi == BLKIF_ABI_X86_32 ? 4 : 8), 0xEE, 8);    /* id */
    }
    __atomic_thread_fence(__ATOMIC_RELEASE);
    q->fr.sring->req_prod = prod - n / 2;
    sim_evtchn_notify(f->g.ev, q->port);
    wait_halted(f, true);
    T_CHECK(t_daemon_alive(&f->e->d), "[%s] daemon died", f->c->name);
}

/*
 * The frontend scribbles over every slot while its requests are in flight
 * (slow engine), and tries to take their grants back: the responses still
 * carry the ids and ops of the private copies, the data is the image's.
 */
static void scribble_in_flight(struct fz *f)
{
    struct gq *q = &f->g.q[0];
    const unsigned n = 16;
    uint64_t sector0 = 4096;
    for (unsigned i = 0; i < n; i++) {
        struct treq r;
        guest_req_init(&r, BLKIF_OP_READ, 0, 0x5C00000ull + i, sector0 + 8ull * i, 1);
        memset(sim_dom_page(f->g.dom, f->rw[i].pfn), 0xA5, GUEST_PG);
        r.seg[0] = (struct blkif_request_segment){ .gref = f->rw[i].ref, .first_sect = 0, .last_sect = 7 };
        submit(f, 0, &r, MUST_ANY);
    }
    guest_push(&f->g, 0);
    uint64_t end = xbd_now_ms() + 3000;
    long long inflight;
    while ((inflight = t_daemon_stat(&f->e->d, f->v.domid, f->v.devid, "inflight")) < n &&
           xbd_now_ms() < end)
        usleep(2000);
    T_CHECK(inflight == n, "[%s] %lld in flight, expected %u", f->c->name, inflight, n);
    RING_IDX rsp0 = q->fr.sring->rsp_prod;
    for (unsigned i = 0; i < RING_SIZE(&q->fr); i++) {
        uint8_t *e = entry(f, 0, i);
        for (size_t b = 0; b < f->g.esz; b++)
            e[b] = (uint8_t)rnd(f, 256);
    }
    unsigned busy = 0;
    for (unsigned i = 0; i < n; i++) {
        int rc = sim_gnt_end(f->g.dom, f->rw[i].ref);
        busy += rc == -EBUSY;
        if (rc == 0)
            f->rw[i].live = false;
    }
    T_CHECK(q->fr.sring->rsp_prod == rsp0, "[%s] responses arrived while scribbling: the check "
            "below is not sound (engine delay too short?)", f->c->name);
    T_EQ(busy, n);                      /* mapped while in flight: cannot be revoked */
    end = xbd_now_ms() + 5000;
    while (f->nout && xbd_now_ms() < end)
        collect(f, 50);
    T_CHECK(f->nout == 0 && f->ok == n, "[%s] scribbled in-flight requests: %u answered OKAY of %u",
            f->c->name, f->ok, n);
    int fd = open(hostile_img, O_RDONLY);
    T_ASSERT(fd >= 0);
    static uint8_t buf[GUEST_PG];
    for (unsigned i = 0; i < n; i++) {
        T_ASSERT(pread(fd, buf, GUEST_PG, (off_t)((sector0 + 8ull * i) << 9)) == GUEST_PG);
        T_CHECK(!memcmp(buf, sim_dom_page(f->g.dom, f->rw[i].pfn), GUEST_PG),
                "[%s] READ %u: data differs from the image", f->c->name, i);
    }
    close(fd);
}

static void session_teardown(struct fz *f)
{
    const struct sess_cfg *c = f->c;
    struct e2e *e = f->e;
    if (c->td == TD_CLOSE) {
        hx_fe_state(&f->v, XenbusStateClosing);
        hx_fe_state(&f->v, XenbusStateClosed);
    } else {
        hx_rm("%s", f->v.fe);           /* xl destroy: the frontend vanishes */
    }
    T_CHECK(hx_wait_be(&e->d, &f->v, XenbusStateClosed, 10000), "[%s] not Closed", c->name);
    T_EQ(sim_gnt_mapped_count(f->g.dom), 0);
    guest_check_released(&f->g, c->name);
    char p[200];
    snprintf(p, sizeof(p), "%s/online", f->v.be);
    hx_write(p, "0");
    hx_remove(&f->v);
    T_CHECK(hx_wait_forgotten(&e->d, f->v.domid, f->v.devid, 5000), "[%s] device not released", c->name);
    pools_end(f);
    guest_fini(&f->g);
}

/* Lines of the daemon's log naming this vbd. */
static long vbd_lines(const struct e2e *e, unsigned domid)
{
    char name[32];
    snprintf(name, sizeof(name), "vbd %u/51712", domid);
    return hx_log_count(&e->d, name, NULL);
}

static void run_session(struct e2e *e, const struct sess_cfg *c)
{
    static struct fz f;                 /* big: keep it off the stack */
    long lines0 = vbd_lines(e, c->domid);
    session_connect(&f, e, c);
    if (c->nreq)
        session_fuzz(&f);
    else
        scribble_in_flight(&f);
    long long bad = t_daemon_stat(&e->d, c->domid, 51712, "bad_req");
    if (c->end == END_AHEAD)
        ring_jump_ahead(&f);
    else if (c->end == END_BACKWARDS)
        ring_backwards(&f);
    T_CHECK(t_daemon_alive(&e->d), "[%s] daemon died", c->name);
    session_teardown(&f);
    long lines = vbd_lines(e, c->domid) - lines0;
    T_LOG("[%s] %lld requests refused by validation, %ld log lines name the device", c->name, bad, lines);
    if (c->nreq) {
        /* 4 fault sites x 10 lines per 5 s per queue, plus the lifecycle */
        long bound = 60 + (long)c->nq * 4 * 10 * (long)(1 + c->max_ms / 5000 + 3);
        T_CHECK(lines <= bound, "[%s] %ld log lines for one hostile device (bound %ld): not rate "
                "limited", c->name, lines, bound);
        T_CHECK(bad > 1000, "[%s] only %lld requests refused", c->name, bad);
    }
}

/* ---- the good guest ------------------------------------------------------------------- */

static pid_t good_pid;

/* Test exit (also a failed T_ASSERT): stop the good guest's loop. */
static void good_kill(void *arg)
{
    (void)arg;
    if (good_pid > 0) {
        kill(good_pid, SIGKILL);
        waitpid(good_pid, NULL, 0);
        good_pid = 0;
    }
}

static pid_t good_start(struct e2e *e, const char *stopfile)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid) {
        good_pid = pid;
        t_atexit(good_kill, NULL);
        return pid;
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);   /* never outlive the test */
    if (getppid() != parent)
        _exit(1);
    unsigned runs = 0, bad = 0;
    char len[32];
    snprintf(len, sizeof(len), "%u", GOOD_BENCH_LEN);
    do {
        const char *args[] = { "--rw", "randrw", "--bs-range", "512-44k", "--iodepth", "16",
            "--runtime", "2", "--verify", "--offset", "0", "--length", len, "--abi",
            runs % 2 ? "x86_32" : "x86_64", NULL };
        if (e2e_bench(e, GOOD_DOM, good_img, args, NULL) != 0)
            bad++;
        runs++;
    } while (access(stopfile, F_OK) != 0 && runs < 60);
    fprintf(stderr, "# good guest: %u verified runs, %u failed\n", runs, bad);
    _exit(bad || !runs ? 1 : 0);
}

int main(void)
{
    struct e2e e;
    const char *dargs[] = { "--allow-test-engines", "--feature-barrier=yes", "--max-queues=2",
                            "--max-ring-page-order=2", NULL };
    e2e_start(&e, dargs);
    hostile_img = e2e_make_image(&e, "hostile.img", HOSTILE_MIB);
    good_img = e2e_make_image(&e, "good.img", GOOD_MIB);
    hx_open();

    /* warm-up: lazily created things may stay */
    {
        const char *args[] = { "--rw", "randrw", "--bs", "4k", "--iodepth", "8", "--size", "1m",
                               "--offset", "0", "--length", "8388608", NULL };
        T_ASSERT(e2e_bench(&e, GOOD_DOM, good_img, args, NULL) == 0, "warm-up run");
    }
    struct e2e_counts c0 = e2e_counts(&e);
    uint64_t protected0 = hash_region(good_img, GOOD_BENCH_LEN, PROTECTED_LEN);
    off_t hsize0 = file_size(hostile_img);

    char stopfile[600];
    snprintf(stopfile, sizeof(stopfile), "%s/good.stop", e.work);
    pid_t good = good_start(&e, stopfile);

    static const struct sess_cfg sess[] = {
        { "x86_64/map", 3, BLKIF_ABI_X86_64, "x86_64-abi", 1, 2, "map", false, 1000,
          8000, 15000, 0x1111, END_AHEAD, TD_CLOSE },
        { "x86_32/copy", 4, BLKIF_ABI_X86_32, "x86_32-abi", 1, 1, "copy", false, 0,
          8000, 15000, 0x2222, END_NONE, TD_DESTROY },
        { "native/persistent/2q", 6, BLKIF_ABI_NATIVE, NULL, 2, 1, "persistent", true, 0,
          8000, 15000, 0x3333, END_NONE, TD_CLOSE },
        { "x86_64/copy/order2", 8, BLKIF_ABI_X86_64, "x86_64-abi", 1, 4, "copy", false, 0,
          8000, 15000, 0x5555, END_AHEAD, TD_CLOSE },
        { "x86_32/map/2q", 10, BLKIF_ABI_X86_32, "x86_32-abi", 2, 2, "map", false, 0,
          8000, 15000, 0x6666, END_NONE, TD_DESTROY },
        { "x86_32/map/scribble+backwards", 7, BLKIF_ABI_X86_32, "x86_32-abi", 1, 1, "map", false,
          300000, 0, 0, 0x4444, END_BACKWARDS, TD_DESTROY },
    };
    for (unsigned i = 0; i < ARRAY_SIZE(sess); i++) {
        T_LOG("---- session %u: %s", i + 1, sess[i].name);
        run_session(&e, &sess[i]);
        T_ASSERT(t_daemon_alive(&e.d), "daemon died in session %s", sess[i].name);
    }

    int fd = open(stopfile, O_CREAT | O_WRONLY, 0600);
    T_ASSERT(fd >= 0);
    close(fd);
    int st;
    T_ASSERT(waitpid(good, &st, 0) == good);
    good_pid = 0;
    T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the good guest's verified runs failed "
            "(status 0x%x)", st);

    T_CHECK(hash_region(good_img, GOOD_BENCH_LEN, PROTECTED_LEN) == protected0,
            "the good guest's disk changed outside its workload region");
    T_EQ(file_size(hostile_img), hsize0);
    T_EQ(t_daemon_ndevices(&e.d), 0);
    struct e2e_counts c1 = e2e_counts(&e);
    T_LOG("daemon: fds %d -> %d, sim mappings %d -> %d (evtchn tables among them %d -> %d), threads %d -> %d",
          c0.fds, c1.fds, c0.maps, c1.maps, c0.evt, c1.evt, c0.threads, c1.threads);
    T_EQ(c1.fds, c0.fds);
    T_EQ(c1.maps, c0.maps);
    if (c1.maps != c0.maps)
        e2e_log_sim_maps(&e);
    T_EQ(c1.threads, c0.threads);
    struct sim_host *h;
    T_ASSERT(sim_host_open(e.sim, &h) == 0);
    T_EQ(sim_evtchn_ports_in_use(h, 0), 0);
    sim_host_close(h);
    T_EQ(e2e_stop(&e), 0);              /* LeakSanitizer runs at the daemon's exit */
    if (t_failures)
        t_daemon_dump_log(&e.d, 40);
    return t_done();
}
