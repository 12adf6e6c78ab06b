/*
 * sim_dom.c - guest side of the simulated host: a domain's memory
 * (dom<N>.mem) and grant table (dom<N>.gnttab), granting and revoking
 * foreign access (cf. Linux gnttab_grant_foreign_access /
 * gnttab_end_foreign_access_ref).  Layouts and the grant-state word:
 * sim_priv.h.
 */
#include "sim_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct sim_dom {
    struct sim_host *h;
    xen_domid_t domid;
    uint32_t nr_pages, nr_grefs;
    uint8_t *mem;
    size_t mem_len;
    struct sim_gnt_hdr *hdr;
    size_t gnt_len;
    struct sim_gnt_entry *ent;
};

struct gnt_init_arg {
    xen_domid_t domid;
    uint32_t nr_pages, nr_grefs, generation;
    struct stat mem_st;
};

static int gnt_init(void *base, void *arg)
{
    struct gnt_init_arg *a = arg;
    struct sim_gnt_hdr *hdr = base;
    hdr->domid = a->domid;
    hdr->nr_pages = a->nr_pages;
    hdr->nr_grefs = a->nr_grefs;
    hdr->generation = a->generation;
    hdr->creator_pid = (uint32_t)getpid();
    hdr->mem_dev = a->mem_st.st_dev;
    hdr->mem_ino = a->mem_st.st_ino;
    hdr->alloc_hint = SIM_GNT_FIRST_REF;
    hdr->alive = 1;
    hdr->version = SIM_LAYOUT_VERSION;
    hdr->magic = SIM_GNT_MAGIC;
    return 0;
}

enum dom_state { DOM_NONE, DOM_LIVE, DOM_STALE };

/* Is there a domain `domid` in the host dir?  One whose creator process is
 * gone is stale: it is marked dead (backends holding it see that) and the
 * caller replaces its files. */
static enum dom_state dom_state(struct sim_host *h, xen_domid_t domid)
{
    char name[32];
    snprintf(name, sizeof(name), "dom%u.gnttab", domid);
    void *base;
    size_t len;
    if (sim_file_map(h, name, sizeof(struct sim_gnt_hdr), &base, &len, NULL) < 0)
        return DOM_NONE;
    struct sim_gnt_hdr *hdr = base;
    bool live = hdr->magic == SIM_GNT_MAGIC && SIM_LOAD(&hdr->alive) &&
                (kill((pid_t)hdr->creator_pid, 0) == 0 || errno == EPERM);
    if (!live && hdr->magic == SIM_GNT_MAGIC)
        SIM_STORE(&hdr->alive, 0);
    munmap(base, len);
    return live ? DOM_LIVE : DOM_STALE;
}

int sim_dom_create(struct sim_host *h, xen_domid_t domid, uint32_t nr_pages,
                   uint32_t nr_grefs, struct sim_dom **out)
{
    if (nr_pages == 0 || nr_pages > SIM_MAX_PAGES || nr_grefs <= SIM_GNT_FIRST_REF ||
        nr_grefs > SIM_GNT_MAX_GREFS || domid >= 0x7ff0 /* DOMID_FIRST_RESERVED */)
        return -EINVAL;
    struct sim_dom *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->h = h;
    d->domid = domid;
    d->nr_pages = nr_pages;
    d->nr_grefs = nr_grefs;
    d->mem = MAP_FAILED;
    d->hdr = MAP_FAILED;

    char mem_name[32], gnt_name[32];
    snprintf(mem_name, sizeof(mem_name), "dom%u.mem", domid);
    snprintf(gnt_name, sizeof(gnt_name), "dom%u.gnttab", domid);
    size_t gnt_len = sizeof(struct sim_gnt_hdr) + (size_t)nr_grefs * sizeof(struct sim_gnt_entry);
    struct gnt_init_arg a = { domid, nr_pages, nr_grefs, 0, { 0 } };
    int mem_fd = -1;

    int rc = sim_host_lock(h);
    if (rc < 0) {
        free(d);
        return rc;
    }
    enum dom_state st = dom_state(h, domid);
    if (st == DOM_LIVE) {
        rc = -EEXIST;
        goto out_unlock;
    }
    if (st == DOM_STALE)        /* its creator died: its ports go back to free */
        sim_evt_reset_dom_locked(h, domid);
    a.generation = __atomic_fetch_add(&h->ctl->next_generation, 1, __ATOMIC_RELAXED);
    /* Memory first (the gnttab header names its inode), then the table. */
    rc = sim_file_create(h, mem_name, (size_t)nr_pages * SIM_PAGE, false, NULL, NULL);
    if (rc < 0)
        goto out_unlock;
    void *base;
    size_t len;
    rc = sim_file_map(h, mem_name, (size_t)nr_pages * SIM_PAGE, &base, &len, &mem_fd);
    if (rc < 0)
        goto out_unlock;
    d->mem = base;
    d->mem_len = len;
    if (fstat(mem_fd, &a.mem_st) < 0) {
        rc = -errno;
        goto out_unlock;
    }
    rc = sim_file_create(h, gnt_name, gnt_len, false, gnt_init, &a);
    if (rc < 0)
        goto out_unlock;
    rc = sim_file_map(h, gnt_name, gnt_len, &base, &len, NULL);
    if (rc < 0)
        goto out_unlock;
    d->hdr = base;
    d->gnt_len = len;
    d->ent = (struct sim_gnt_entry *)(d->hdr + 1);
out_unlock:
    sim_host_unlock(h);
    if (mem_fd >= 0)
        close(mem_fd);
    if (rc < 0) {
        if (d->mem != MAP_FAILED)
            munmap(d->mem, d->mem_len);
        if (d->hdr != MAP_FAILED)
            munmap(d->hdr, d->gnt_len);
        if (rc != -EEXIST) {
            unlinkat(h->dirfd, gnt_name, 0);
            unlinkat(h->dirfd, mem_name, 0);
        }
        free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void sim_dom_destroy(struct sim_dom *d)
{
    if (!d)
        return;
    struct sim_host *h = d->h;
    char name[32];
    int locked = sim_host_lock(h) == 0;
    SIM_STORE(&d->hdr->alive, 0);
    /* Revoke every grant; map counts stay (the backend's unmaps drop them). */
    for (uint32_t i = 0; i < d->nr_grefs; i++) {
        uint64_t s = SIM_LOAD(&d->ent[i].state);
        while ((s & SIM_GS_FLAGS) && !SIM_CAS(&d->ent[i].state, &s, s & ~SIM_GS_FLAGS))
            ;
    }
    snprintf(name, sizeof(name), "dom%u.gnttab", d->domid);
    unlinkat(h->dirfd, name, 0);
    snprintf(name, sizeof(name), "dom%u.mem", d->domid);
    unlinkat(h->dirfd, name, 0);
    sim_evt_reset_dom_locked(h, d->domid);
    if (locked)
        sim_host_unlock(h);
    munmap(d->mem, d->mem_len);
    munmap(d->hdr, d->gnt_len);
    free(d);
}

xen_domid_t sim_dom_id(const struct sim_dom *d)
{
    return d->domid;
}

uint32_t sim_dom_nr_pages(const struct sim_dom *d)
{
    return d->nr_pages;
}

void *sim_dom_page(struct sim_dom *d, uint32_t pfn)
{
    return pfn < d->nr_pages ? d->mem + (size_t)pfn * SIM_PAGE : NULL;
}

static int gnt_grant_once(struct sim_dom *d, xen_domid_t to, uint32_t pfn, bool readonly,
                          uint32_t *ref)
{
    uint32_t n = d->nr_grefs - SIM_GNT_FIRST_REF;
    uint32_t start = SIM_RELAXED(&d->hdr->alloc_hint);
    if (start < SIM_GNT_FIRST_REF || start >= d->nr_grefs)
        start = SIM_GNT_FIRST_REF;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t r = SIM_GNT_FIRST_REF + (start - SIM_GNT_FIRST_REF + k) % n;
        struct sim_gnt_entry *e = &d->ent[r];
        uint64_t s = SIM_LOAD(&e->state);
        /* Free: no flags, no mapping left over from a revoked grant, and no
         * backend in the middle of changing its count (sim_gntmap.c). */
        if (s & (SIM_GS_FLAGS | SIM_GS_COUNT_MASK | SIM_GS_BUSY_MASK))
            continue;
        uint64_t seq = (s & ~(SIM_GS_SEQ_ONE - 1)) + SIM_GS_SEQ_ONE;
        if (!SIM_CAS(&e->state, &s, seq | SIM_GS_RESERVED))
            continue;
        __atomic_store_n(&e->domid, to, __ATOMIC_RELAXED);
        __atomic_store_n(&e->frame, pfn, __ATOMIC_RELAXED);
        SIM_STORE(&e->state, seq | SIM_GS_PERMIT | (readonly ? SIM_GS_READONLY : 0));
        __atomic_store_n(&d->hdr->alloc_hint, r + 1, __ATOMIC_RELAXED);
        *ref = r;
        return 0;
    }
    return -ENOSPC;
}

/* A full table may hold entries a dead process left mapped or busy. */
int sim_gnt_grant(struct sim_dom *d, xen_domid_t to, uint32_t pfn, bool readonly, uint32_t *ref)
{
    if (pfn >= d->nr_pages)
        return -EINVAL;
    int rc = gnt_grant_once(d, to, pfn, readonly, ref);
    if (rc == -ENOSPC && sim_reclaim_dead(d->h) > 0)
        rc = gnt_grant_once(d, to, pfn, readonly, ref);
    return rc;
}

static int gnt_end_once(struct sim_gnt_entry *e)
{
    uint64_t s = SIM_LOAD(&e->state);
    for (;;) {
        if (!(s & SIM_GS_PERMIT))
            return -EINVAL;
        if (s & SIM_GS_COUNT_MASK)
            return -EBUSY;
        if (SIM_CAS(&e->state, &s, s & ~SIM_GS_FLAGS))
            return 0;
    }
}

/* A count may belong to a process that died: its exit would have unmapped
 * it on a real host (gntdev), so reclaim dead owners and look again. */
int sim_gnt_end(struct sim_dom *d, uint32_t ref)
{
    if (ref < SIM_GNT_FIRST_REF || ref >= d->nr_grefs)
        return -EINVAL;
    int rc = gnt_end_once(&d->ent[ref]);
    if (rc == -EBUSY && sim_reclaim_dead(d->h) > 0)
        rc = gnt_end_once(&d->ent[ref]);
    return rc;
}

static uint64_t mapped_sum(struct sim_dom *d)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < d->nr_grefs; i++)
        sum += SIM_LOAD(&d->ent[i].state) & SIM_GS_COUNT_MASK;
    return sum;
}

uint64_t sim_gnt_mapped_count(struct sim_dom *d)
{
    uint64_t sum = mapped_sum(d);
    if (sum && sim_reclaim_dead(d->h) > 0)
        sum = mapped_sum(d);
    return sum;
}

uint32_t sim_gnt_ref_mapped(struct sim_dom *d, uint32_t ref)
{
    if (ref >= d->nr_grefs)
        return 0;
    uint32_t n = (uint32_t)(SIM_LOAD(&d->ent[ref].state) & SIM_GS_COUNT_MASK);
    if (n && sim_reclaim_dead(d->h) > 0)
        n = (uint32_t)(SIM_LOAD(&d->ent[ref].state) & SIM_GS_COUNT_MASK);
    return n;
}
