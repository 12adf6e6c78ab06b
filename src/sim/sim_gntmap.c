/*
 * sim_gntmap.c - backend side of the simulated grant table: map, unmap and
 * copy a guest's granted pages (what gntdev and GNTTABOP_copy do on Xen).
 *
 * A handle caches, per guest domid, the guest's grant table (mapped) and an
 * fd of its memory file; a destroyed domain (alive == 0 in its header, one
 * shared-memory load per call) is dropped from the cache and the files are
 * reopened, so a recreated domain of the same id is seen.  Every mapping
 * holds a reference on its domain's cache entry until it is unmapped, so the
 * map counts of a zombie domain are still dropped correctly.
 *
 * gnt_map: each ref is checked and its map count raised by CAS, recorded in
 * the handle's gown.* file so that the counts of a dead handle can be
 * dropped exactly (sim_owner.c, "Death" in sim_priv.h); the pages are
 * mmap'ed MAP_SHARED from dom<N>.mem with the requested prot: one mmap
 * when the frames are consecutive, else a PROT_NONE reservation filled with
 * MAP_FIXED runs.  All or nothing.
 * Handles are used by one thread at a time (like xengnttab handles).
 */
#include "sim_priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIM_GNT_MAX_MAP 65536u         /* gntdev's limit for one map (docs/protocol.md §5) */

struct sim_gdom {
    struct sim_gdom *next;
    unsigned refs;                      /* cache + mappings */
    xen_domid_t domid;
    uint32_t nr_pages, nr_grefs;        /* private copies, checked against file sizes */
    int mem_fd;
    struct sim_gnt_hdr *hdr;
    size_t gnt_len;
    struct sim_gnt_entry *ent;
    uint8_t *mem;                       /* whole memory, for grant copy (lazy) */
    size_t mem_len;
    struct sim_gown_hdr *own_hdr;       /* gown.<slot>.<domid>.<gen>: our counts per ref */
    size_t own_len;
    uint32_t *own;                      /* own[0..nr_grefs) */
    char own_name[48];
};

struct sim_gmap {
    struct sim_gmap *next;
    uintptr_t addr;
    uint32_t count;
    struct sim_gdom *d;
    uint32_t refs[];
};

struct sim_bgnt {
    struct sim_host *h;
    xen_domid_t self;
    uint32_t slot;                      /* owner slot in host.ctl */
    struct sim_gdom *doms;
    struct sim_gmap **bucket;
    size_t nbucket, nmap;
};

/* ---- domain cache ------------------------------------------------------ */

static void gdom_put(struct sim_bgnt *g, struct sim_gdom *d)
{
    if (--d->refs)
        return;
    /* No mapping or copy left: every count in the record is 0. */
    munmap(d->own_hdr, d->own_len);
    unlinkat(g->h->dirfd, d->own_name, 0);
    if (d->mem)
        munmap(d->mem, d->mem_len);
    munmap(d->hdr, d->gnt_len);
    close(d->mem_fd);
    free(d);
}

static int gown_init(void *base, void *arg)
{
    memcpy(base, arg, sizeof(struct sim_gown_hdr));
    return 0;
}

/* Create and map this handle's record of its counts on `d`'s refs. */
static int gown_create(struct sim_bgnt *g, struct sim_gdom *d, uint32_t generation)
{
    struct sim_gown_hdr hdr = {
        .magic = SIM_GOWN_MAGIC, .version = SIM_LAYOUT_VERSION, .slot = g->slot,
        .domid = d->domid, .generation = generation, .nr_grefs = d->nr_grefs,
    };
    snprintf(d->own_name, sizeof(d->own_name), "gown.%u.%u.%u", g->slot, d->domid, generation);
    size_t len = sizeof(hdr) + (size_t)d->nr_grefs * sizeof(uint32_t);
    int rc = sim_file_create(g->h, d->own_name, len, false, gown_init, &hdr);
    if (rc < 0)
        return rc;
    void *base;
    rc = sim_file_map(g->h, d->own_name, len, &base, &d->own_len, NULL);
    if (rc < 0) {
        unlinkat(g->h->dirfd, d->own_name, 0);
        return rc;
    }
    d->own_hdr = base;
    d->own = (uint32_t *)(d->own_hdr + 1);
    return 0;
}

static int gdom_open(struct sim_bgnt *g, xen_domid_t domid, struct sim_gdom **out)
{
    char name[32];
    snprintf(name, sizeof(name), "dom%u.gnttab", domid);
    void *base;
    size_t len;
    int rc = sim_file_map(g->h, name, sizeof(struct sim_gnt_hdr), &base, &len, NULL);
    if (rc < 0)
        return rc;
    struct sim_gnt_hdr *hdr = base;
    uint32_t nr_pages = hdr->nr_pages, nr_grefs = hdr->nr_grefs, generation = hdr->generation;
    uint64_t mem_dev = hdr->mem_dev, mem_ino = hdr->mem_ino;
    if (hdr->magic != SIM_GNT_MAGIC || hdr->version != SIM_LAYOUT_VERSION ||
        hdr->domid != domid || nr_pages == 0 || nr_pages > SIM_MAX_PAGES ||
        nr_grefs > SIM_GNT_MAX_GREFS ||
        len < sizeof(*hdr) + (size_t)nr_grefs * sizeof(struct sim_gnt_entry)) {
        munmap(base, len);
        return -EPROTO;
    }
    if (!SIM_LOAD(&hdr->alive)) {
        munmap(base, len);
        return -ESRCH;
    }
    snprintf(name, sizeof(name), "dom%u.mem", domid);
    int fd = openat(g->h->dirfd, name, O_RDWR | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_dev != mem_dev ||
        (uint64_t)st.st_ino != mem_ino || (uint64_t)st.st_size < (uint64_t)nr_pages * SIM_PAGE) {
        rc = fd < 0 ? -errno : -ESTALE;     /* mid-recreate: caller fails the map */
        if (fd >= 0)
            close(fd);
        munmap(base, len);
        return rc;
    }
    struct sim_gdom *d = calloc(1, sizeof(*d));
    if (!d) {
        close(fd);
        munmap(base, len);
        return -ENOMEM;
    }
    d->refs = 1;
    d->domid = domid;
    d->nr_pages = nr_pages;
    d->nr_grefs = nr_grefs;
    d->mem_fd = fd;
    d->hdr = hdr;
    d->gnt_len = len;
    d->ent = (struct sim_gnt_entry *)(hdr + 1);
    rc = gown_create(g, d, generation);
    if (rc < 0) {
        close(fd);
        munmap(base, len);
        free(d);
        return rc;
    }
    *out = d;
    return 0;
}

/* The cache entry of a live domain `domid` (no reference taken). */
static int gdom_get(struct sim_bgnt *g, xen_domid_t domid, struct sim_gdom **out)
{
    struct sim_gdom **pp = &g->doms;
    for (struct sim_gdom *d = *pp; d; pp = &d->next, d = d->next) {
        if (d->domid != domid)
            continue;
        if (SIM_LOAD(&d->hdr->alive)) {
            *out = d;
            return 0;
        }
        *pp = d->next;                  /* destroyed: forget, maybe recreated */
        gdom_put(g, d);
        break;
    }
    struct sim_gdom *d = NULL;
    int rc = gdom_open(g, domid, &d);
    if (rc < 0)
        return rc;
    d->next = g->doms;
    g->doms = d;
    *out = d;
    return 0;
}

/* ---- grant acquisition (journaled per handle) --------------------------- */
/*
 * A count change of ref r by this handle (owner slot S) takes four steps, so
 * that whoever reclaims S after its process died knows exactly how many
 * counts S held (sim_gnt_reclaim_locked):
 *   1. CAS the entry: busy 0 -> S (counts unchanged; permissions checked);
 *   2. own[r] = new count | PEND_INC (or PEND_DEC);
 *   3. CAS the entry: count +-1 and busy S -> 0 in one step;
 *   4. own[r] = new count.
 * Busy == S with PEND set means step 3 has not happened.  Busy is held for a
 * few instructions; others wait for it (and reclaim S if its process died).
 */

/* Wait while another owner is between steps 1 and 3 on this entry. */
static void busy_wait(struct sim_bgnt *g, uint64_t s, unsigned *spins)
{
    if (++*spins < 64)
        return;
    sched_yield();
    if (*spins % 4096 == 0)
        sim_reclaim_slot(g->h, SIM_GS_BUSY(s));
}

/* Step 1 for `ref`: checks as a map by domain g->self (writable when
 * `write`); returns GNTST_okay with the entry busy for us (*s its value). */
static int gref_lock(struct sim_bgnt *g, struct sim_gdom *d, uint32_t ref, bool write,
                     bool acquire, uint64_t *s, uint32_t *frame)
{
    struct sim_gnt_entry *e = &d->ent[ref];
    uint64_t busy = (uint64_t)g->slot << SIM_GS_BUSY_SHIFT;
    unsigned spins = 0;
    uint64_t v = SIM_LOAD(&e->state);
    for (;;) {
        if (acquire) {
            if (!(v & SIM_GS_PERMIT) || (write && (v & SIM_GS_READONLY)))
                return GNTST_general_error;     /* grant_table.c: bad flags / r/o */
            uint32_t dom = SIM_RELAXED(&e->domid), f = SIM_RELAXED(&e->frame);
            if (dom != g->self || f >= d->nr_pages)
                return GNTST_general_error;
            if ((v & SIM_GS_COUNT_MASK) == SIM_GS_COUNT_MASK)
                return GNTST_no_space;
            *frame = f;
        }
        if (v & SIM_GS_BUSY_MASK) {
            busy_wait(g, v, &spins);
            v = SIM_LOAD(&e->state);
            continue;
        }
        if (SIM_CAS(&e->state, &v, v | busy)) {
            *s = v | busy;
            return GNTST_okay;
        }
    }
}

/* Raise the map count of `ref` if domain g->self may use it (writable when
 * `write`).  Returns GNTST_okay or the GNTST_* Xen gives for the fault. */
static int gref_acquire(struct sim_bgnt *g, struct sim_gdom *d, uint32_t ref, bool write,
                        uint32_t *frame)
{
    if (ref >= d->nr_grefs)
        return GNTST_bad_gntref;
    uint64_t s;
    int st = gref_lock(g, d, ref, write, true, &s, frame);
    if (st != GNTST_okay)
        return st;
    struct sim_gnt_entry *e = &d->ent[ref];
    uint64_t busy = (uint64_t)g->slot << SIM_GS_BUSY_SHIFT;
    uint32_t c = SIM_RELAXED(&d->own[ref]);
    SIM_STORE(&d->own[ref], (c + 1) | SIM_OWN_PEND_INC);
    /* Only end access or domain destroy (revoking) can change it meanwhile. */
    while (s & SIM_GS_PERMIT) {
        if (SIM_CAS(&e->state, &s, (s + 1) & ~busy)) {
            SIM_STORE(&d->own[ref], c + 1);
            return GNTST_okay;
        }
    }
    SIM_STORE(&d->own[ref], c);                 /* before busy is dropped */
    __atomic_fetch_and(&e->state, ~busy, __ATOMIC_ACQ_REL);
    return GNTST_general_error;
}

static void gref_release(struct sim_bgnt *g, struct sim_gdom *d, uint32_t ref)
{
    uint64_t s;
    uint32_t unused;
    gref_lock(g, d, ref, false, false, &s, &unused);
    uint32_t c = SIM_RELAXED(&d->own[ref]);
    SIM_STORE(&d->own[ref], (c - 1) | SIM_OWN_PEND_DEC);
    __atomic_fetch_sub(&d->ent[ref].state, 1 + ((uint64_t)g->slot << SIM_GS_BUSY_SHIFT),
                       __ATOMIC_ACQ_REL);
    SIM_STORE(&d->own[ref], c - 1);
}

/* ---- reclaiming a dead handle's counts ---------------------------------- */

/* Drop the counts recorded in one gown file of dead slot `slot`. */
static void gown_reclaim(struct sim_host *h, uint32_t slot, const char *name)
{
    void *obase, *gbase;
    size_t olen, glen;
    if (sim_file_map(h, name, sizeof(struct sim_gown_hdr), &obase, &olen, NULL) < 0)
        return;
    struct sim_gown_hdr *oh = obase;
    char gname[32];
    snprintf(gname, sizeof(gname), "dom%u.gnttab", oh->domid);
    if (oh->magic != SIM_GOWN_MAGIC || oh->version != SIM_LAYOUT_VERSION || oh->slot != slot ||
        olen < sizeof(*oh) + (size_t)oh->nr_grefs * sizeof(uint32_t) ||
        sim_file_map(h, gname, sizeof(struct sim_gnt_hdr), &gbase, &glen, NULL) < 0)
        goto out;                       /* domain gone: nobody can end access */
    struct sim_gnt_hdr *gh = gbase;
    uint32_t n = oh->nr_grefs < gh->nr_grefs ? oh->nr_grefs : gh->nr_grefs;
    if (gh->magic == SIM_GNT_MAGIC && gh->version == SIM_LAYOUT_VERSION &&
        gh->generation == oh->generation &&
        glen >= sizeof(*gh) + (size_t)n * sizeof(struct sim_gnt_entry)) {
        struct sim_gnt_entry *ent = (struct sim_gnt_entry *)(gh + 1);
        uint32_t *own = (uint32_t *)(oh + 1);
        for (uint32_t r = 0; r < n; r++) {
            uint64_t s = SIM_LOAD(&ent[r].state);
            uint32_t v = SIM_LOAD(&own[r]);
            bool busy = SIM_GS_BUSY(s) == slot;
            if (v == 0 && !busy)
                continue;
            uint64_t held = v & SIM_OWN_COUNT_MASK;
            if (busy && (v & SIM_OWN_PEND_INC))
                held--;                 /* step 3 of the raise not done */
            if (busy && (v & SIM_OWN_PEND_DEC))
                held++;                 /* step 3 of the drop not done */
            uint64_t nv;
            do {
                uint64_t cnt = s & SIM_GS_COUNT_MASK;
                nv = s - (held < cnt ? held : cnt);
                if (SIM_GS_BUSY(nv) == slot)
                    nv &= ~SIM_GS_BUSY_MASK;
            } while (!SIM_CAS(&ent[r].state, &s, nv));
            SIM_STORE(&own[r], 0);
        }
    }
    munmap(gbase, glen);
out:
    munmap(obase, olen);
    unlinkat(h->dirfd, name, 0);
}

void sim_gnt_reclaim_locked(struct sim_host *h, uint32_t slot)
{
    DIR *dir = sim_host_opendir(h);
    if (!dir)
        return;
    char prefix[24];
    int plen = snprintf(prefix, sizeof(prefix), "gown.%u.", slot);
    struct dirent *de;
    while ((de = readdir(dir)))
        if (strncmp(de->d_name, prefix, (size_t)plen) == 0)
            gown_reclaim(h, slot, de->d_name);
    closedir(dir);
}

/* ---- mapping table (addr -> domain, refs) ------------------------------ */

static size_t map_hash(const struct sim_bgnt *g, uintptr_t addr)
{
    return (size_t)(((addr >> 12) * 0x9e3779b97f4a7c15ull) >> 20) & (g->nbucket - 1);
}

static int map_insert(struct sim_bgnt *g, struct sim_gmap *m)
{
    if (g->nmap >= g->nbucket) {
        size_t n = g->nbucket ? g->nbucket * 2 : 64;
        struct sim_gmap **nb = calloc(n, sizeof(*nb));
        if (!nb)
            return -ENOMEM;
        struct sim_gmap **ob = g->bucket;
        size_t on = g->nbucket;
        g->bucket = nb;
        g->nbucket = n;
        for (size_t i = 0; i < on; i++) {
            while (ob[i]) {
                struct sim_gmap *x = ob[i];
                ob[i] = x->next;
                size_t b = map_hash(g, x->addr);
                x->next = nb[b];
                nb[b] = x;
            }
        }
        free(ob);
    }
    size_t b = map_hash(g, m->addr);
    m->next = g->bucket[b];
    g->bucket[b] = m;
    g->nmap++;
    return 0;
}

static struct sim_gmap *map_remove(struct sim_bgnt *g, uintptr_t addr)
{
    if (!g->nbucket)
        return NULL;
    for (struct sim_gmap **pp = &g->bucket[map_hash(g, addr)]; *pp; pp = &(*pp)->next) {
        if ((*pp)->addr == addr) {
            struct sim_gmap *m = *pp;
            *pp = m->next;
            g->nmap--;
            return m;
        }
    }
    return NULL;
}

static void map_release(struct sim_bgnt *g, struct sim_gmap *m)
{
    munmap((void *)m->addr, (size_t)m->count * SIM_PAGE);
    for (uint32_t i = 0; i < m->count; i++)
        gref_release(g, m->d, m->refs[i]);
    gdom_put(g, m->d);
    free(m);
}

/* ---- public (behind xen_ops_sim) --------------------------------------- */

int sim_bgnt_open(struct sim_host *h, xen_domid_t self, struct sim_bgnt **out)
{
    struct sim_bgnt *g = calloc(1, sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->h = h;
    g->self = self;
    int rc = sim_host_lock(h);
    if (rc == 0) {
        rc = sim_owner_claim_locked(h, SIM_OWN_GNTTAB, 0, &g->slot);
        sim_host_unlock(h);
    }
    if (rc < 0) {
        free(g);
        return rc;
    }
    *out = g;
    return 0;
}

void sim_bgnt_close(struct sim_bgnt *g)
{
    if (!g)
        return;
    /* Mappings left behind are unmapped (their counts dropped). */
    for (size_t i = 0; i < g->nbucket; i++) {
        while (g->bucket[i]) {
            struct sim_gmap *m = g->bucket[i];
            g->bucket[i] = m->next;
            map_release(g, m);
        }
    }
    free(g->bucket);
    while (g->doms) {
        struct sim_gdom *d = g->doms;
        g->doms = d->next;
        gdom_put(g, d);
    }
    if (sim_host_lock(g->h) == 0) {
        sim_owner_release_locked(g->h, g->slot);
        sim_host_unlock(g->h);
    }
    free(g);
}

/* mmap `n` pages of frames[] at `at` (MAP_FIXED) or anywhere (at == NULL). */
static void *map_run(struct sim_gdom *d, void *at, const uint32_t *frames, uint32_t n, int prot)
{
    return mmap(at, (size_t)n * SIM_PAGE, prot, MAP_SHARED | (at ? MAP_FIXED : 0), d->mem_fd,
                (off_t)frames[0] * SIM_PAGE);
}

int sim_bgnt_map(struct sim_bgnt *g, xen_domid_t domid, uint32_t count, const uint32_t *refs,
                 int prot, void **addr)
{
    if (count == 0 || count > SIM_GNT_MAX_MAP || !refs || (prot & ~(PROT_READ | PROT_WRITE)))
        return -EINVAL;
    struct sim_gdom *d;
    int rc = gdom_get(g, domid, &d);
    if (rc < 0)
        return rc == -ENOMEM ? rc : -EINVAL;    /* gntdev: failed grant op = EINVAL */
    struct sim_gmap *m = malloc(sizeof(*m) + (size_t)count * sizeof(uint32_t));
    uint32_t frame1, *frames = count == 1 ? &frame1 : malloc((size_t)count * sizeof(uint32_t));
    if (!m || !frames) {
        rc = -ENOMEM;
        goto fail_free;
    }
    bool write = prot & PROT_WRITE, contiguous = true;
    uint32_t got = 0;
    for (; got < count; got++) {
        if (gref_acquire(g, d, refs[got], write, &frames[got]) != GNTST_okay) {
            rc = -EINVAL;
            goto fail_release;
        }
        m->refs[got] = refs[got];
        if (got && frames[got] != frames[got - 1] + 1)
            contiguous = false;
    }
    void *base;
    if (contiguous) {
        base = map_run(d, NULL, frames, count, prot);
        if (base == MAP_FAILED) {
            rc = -errno;
            goto fail_release;
        }
    } else {
        base = mmap(NULL, (size_t)count * SIM_PAGE, PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (base == MAP_FAILED) {
            rc = -errno;
            goto fail_release;
        }
        for (uint32_t i = 0; i < count;) {
            uint32_t n = 1;
            while (i + n < count && frames[i + n] == frames[i] + n)
                n++;
            if (map_run(d, (uint8_t *)base + (size_t)i * SIM_PAGE, frames + i, n, prot) == MAP_FAILED) {
                rc = -errno;
                munmap(base, (size_t)count * SIM_PAGE);
                goto fail_release;
            }
            i += n;
        }
    }
    m->addr = (uintptr_t)base;
    m->count = count;
    m->d = d;
    d->refs++;
    rc = map_insert(g, m);
    if (rc < 0) {
        d->refs--;
        munmap(base, (size_t)count * SIM_PAGE);
        goto fail_release;
    }
    if (frames != &frame1)
        free(frames);
    *addr = base;
    return 0;

fail_release:
    while (got > 0)
        gref_release(g, d, refs[--got]);
fail_free:
    if (frames != &frame1)
        free(frames);
    free(m);
    return rc;
}

int sim_bgnt_unmap(struct sim_bgnt *g, void *addr, uint32_t count)
{
    struct sim_gmap *m = map_remove(g, (uintptr_t)addr);
    if (!m)
        return -EINVAL;
    if (m->count != count) {
        map_insert(g, m);               /* cannot fail: nmap < nbucket again */
        return -EINVAL;
    }
    map_release(g, m);
    return 0;
}

/* Resolve one foreign side of a copy segment; on GNTST_okay the ref is held
 * and so is a reference on its domain (release with copy_release). */
static int copy_side(struct sim_bgnt *g, const xengnttab_grant_copy_segment_t *s, bool dest,
                     struct sim_gdom **dout, uint8_t **p)
{
    const union xengnttab_copy_ptr *f = dest ? &s->dest : &s->source;
    if ((uint32_t)f->foreign.offset + s->len > SIM_PAGE)
        return GNTST_bad_copy_arg;
    struct sim_gdom *d;
    if (gdom_get(g, f->foreign.domid, &d) < 0)
        return GNTST_bad_domain;
    if (!d->mem) {
        void *mem = mmap(NULL, (size_t)d->nr_pages * SIM_PAGE, PROT_READ | PROT_WRITE,
                         MAP_SHARED, d->mem_fd, 0);
        if (mem == MAP_FAILED)
            return GNTST_general_error;
        d->mem = mem;
        d->mem_len = (size_t)d->nr_pages * SIM_PAGE;
    }
    uint32_t frame;
    int st = gref_acquire(g, d, f->foreign.ref, dest, &frame);
    if (st != GNTST_okay)
        return st;
    d->refs++;
    *dout = d;
    *p = d->mem + (size_t)frame * SIM_PAGE + f->foreign.offset;
    return GNTST_okay;
}

static void copy_release(struct sim_bgnt *g, struct sim_gdom *d, uint32_t ref)
{
    gref_release(g, d, ref);
    gdom_put(g, d);
}

int sim_bgnt_copy(struct sim_bgnt *g, uint32_t count, xengnttab_grant_copy_segment_t *segs)
{
    if (count && !segs)
        return -EINVAL;
    for (uint32_t i = 0; i < count; i++) {
        xengnttab_grant_copy_segment_t *s = &segs[i];
        struct sim_gdom *sd = NULL, *dd = NULL;
        uint8_t *src = s->source.virt, *dst = s->dest.virt;
        int st = GNTST_okay;
        if (s->flags & ~(GNTCOPY_source_gref | GNTCOPY_dest_gref))
            st = GNTST_bad_copy_arg;
        if (st == GNTST_okay && (s->flags & GNTCOPY_source_gref))
            st = copy_side(g, s, false, &sd, &src);
        if (st == GNTST_okay && (s->flags & GNTCOPY_dest_gref))
            st = copy_side(g, s, true, &dd, &dst);
        if (st == GNTST_okay && s->len)
            memmove(dst, src, s->len);
        if (sd)
            copy_release(g, sd, s->source.foreign.ref);
        if (dd)
            copy_release(g, dd, s->dest.foreign.ref);
        s->status = (int16_t)st;
    }
    return 0;
}
