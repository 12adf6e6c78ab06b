/* t_sim_gnttab: simulated grant tables across processes: permissions, map counts, multi-page maps, grant copy, domain recreate. */
#include "harness.h"
#include "util.h"
#include "lib/peer.h"
#include "sim.h"
#include "xen_ops.h"

#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GUEST 5
#define PAGE 4096


/* Permissions ("r--s", "rw-s") of the mapping that starts at addr. */
static const char *map_perms(void *addr)
{
    static char perms[8];
    char line[512], want[32];
    snprintf(want, sizeof(want), "%lx-", (unsigned long)addr);
    FILE *f = fopen("/proc/self/maps", "r");
    strcpy(perms, "none");
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, want, strlen(want)) == 0)
            sscanf(line, "%*s %7s", perms);
    if (f)
        fclose(f);
    return perms;
}

/* ---- the backend (child): xen_ops_sim, domid 0 -------------------------- */
struct refs {
    uint32_t ro, rw, foreign, revoked, multi[4], rev[2], c_rw, c_ro, keep;
};

static void backend(struct peer *p, void *arg)
{
    const char *dir = arg;
    const struct xen_ops *ops = &xen_ops_sim;
    struct xen_host *h = NULL;
    struct xen_gnt *g = NULL;
    int maps0 = t_count_maps_pid(getpid(), dir);    /* inherited from the guest */
    int fds0 = t_count_fds_pid(getpid());
    T_ASSERT(ops->host_open(dir, &h) == 0);
    T_ASSERT(ops->gnt_open(h, &g) == 0);

    struct refs r;
    peer_get(p, &r, sizeof(r));
    void *ro = NULL, *rw = NULL, *multi = NULL, *rev = NULL, *bad = (void *)1;
    T_EQ(ops->gnt_map(g, GUEST, 1, &r.ro, PROT_READ, &ro), 0);
    T_ASSERT(ro);
    T_CHECK(((char *)ro)[0] == 'A' && ((char *)ro)[PAGE - 1] == 'A');
    T_EQ(ops->gnt_map(g, GUEST, 1, &r.ro, PROT_READ | PROT_WRITE, &bad), -EINVAL);
    T_CHECK(bad == (void *)1, "out-param touched on failure");
    T_CHECK(strcmp(map_perms(ro), "r--s") == 0, "read-only map is %s", map_perms(ro));
    T_EQ(ops->gnt_map(g, GUEST, 1, &r.rw, PROT_READ | PROT_WRITE, &rw), 0);
    T_CHECK(strcmp(map_perms(rw), "rw-s") == 0, "writable map is %s", map_perms(rw));
    T_CHECK(((char *)rw)[0] == 'B');
    ((char *)rw)[100] = 'X';
    T_EQ(ops->gnt_map(g, GUEST, 1, &r.foreign, PROT_READ, &bad), -EINVAL);
    T_EQ(ops->gnt_map(g, GUEST, 1, &r.revoked, PROT_READ, &bad), -EINVAL);
    uint32_t reserved = 3, huge = 1u << 30;
    T_EQ(ops->gnt_map(g, GUEST, 1, &reserved, PROT_READ, &bad), -EINVAL);
    T_EQ(ops->gnt_map(g, GUEST, 1, &huge, PROT_READ, &bad), -EINVAL);
    T_EQ(ops->gnt_map(g, GUEST + 1, 1, &r.rw, PROT_READ, &bad), -EINVAL);   /* no such domain */
    T_EQ(ops->gnt_map(g, GUEST, 0, &r.rw, PROT_READ, &bad), -EINVAL);
    /* All or nothing: a good ref followed by a revoked one. */
    uint32_t mixed[2] = { r.c_rw, r.revoked };
    T_EQ(ops->gnt_map(g, GUEST, 2, mixed, PROT_READ, &bad), -EINVAL);
    T_CHECK(bad == (void *)1);
    /* Multi-page: frames 4,5,6 then 9; and 10,8 (reversed). */
    T_EQ(ops->gnt_map(g, GUEST, 4, r.multi, PROT_READ | PROT_WRITE, &multi), 0);
    T_ASSERT(multi);
    static const char want_multi[4] = { 'E', 'F', 'G', 'J' };
    for (int i = 0; i < 4; i++)
        T_CHECK(((char *)multi)[i * PAGE + 17] == want_multi[i], "page %d", i);
    T_EQ(ops->gnt_map(g, GUEST, 2, r.rev, PROT_READ, &rev), 0);
    T_ASSERT(rev);
    T_CHECK(((char *)rev)[0] == 'K' && ((char *)rev)[PAGE] == 'I');
    ((char *)multi)[3 * PAGE + 5] = 'm';
    peer_put_u32(p, 1);                                  /* -> guest checks */

    T_ASSERT(peer_get_u32(p) == 2);
    T_CHECK(((char *)ro)[7] == 'Y', "guest write not visible to backend");
    T_EQ(ops->gnt_unmap(g, ro, 2), -EINVAL);         /* wrong count */
    T_EQ(ops->gnt_unmap(g, (char *)ro + PAGE, 1), -EINVAL);
    T_EQ(ops->gnt_unmap(g, ro, 1), 0);
    T_EQ(ops->gnt_unmap(g, rw, 1), 0);
    T_EQ(ops->gnt_unmap(g, multi, 4), 0);
    T_EQ(ops->gnt_unmap(g, rev, 2), 0);
    T_EQ(ops->gnt_unmap(g, ro, 1), -EINVAL);         /* twice */

    /* Grant copy: both directions and bad segments, one batch. */
    char buf[PAGE], out[PAGE];
    memset(out, 'o', sizeof(out));
    xengnttab_grant_copy_segment_t s[8];
    memset(s, 0, sizeof(s));
    s[0].flags = GNTCOPY_source_gref;               /* guest (ro) -> local */
    s[0].source.foreign.ref = r.c_ro; s[0].source.foreign.offset = 10;
    s[0].source.foreign.domid = GUEST; s[0].dest.virt = buf; s[0].len = 100;
    s[1].flags = GNTCOPY_dest_gref;                 /* local -> guest (rw) */
    s[1].dest.foreign.ref = r.c_rw; s[1].dest.foreign.offset = 4000;
    s[1].dest.foreign.domid = GUEST; s[1].source.virt = out; s[1].len = 96;
    s[2] = s[1];                                    /* local -> read-only grant */
    s[2].dest.foreign.ref = r.c_ro;
    s[3] = s[1];                                    /* crosses the page end */
    s[3].dest.foreign.offset = 4000; s[3].len = 200;
    s[4] = s[0];                                    /* unknown ref */
    s[4].source.foreign.ref = 100000;
    s[5] = s[0];                                    /* no such domain */
    s[5].source.foreign.domid = GUEST + 1;
    s[6] = s[0];                                    /* granted to someone else */
    s[6].source.foreign.ref = r.foreign;
    s[7] = s[0];                                    /* revoked */
    s[7].source.foreign.ref = r.revoked;
    for (int i = 0; i < 8; i++)
        s[i].status = 99;
    T_EQ(ops->gnt_copy(g, 8, s), 0);
    T_EQ(s[0].status, GNTST_okay);
    T_EQ(s[1].status, GNTST_okay);
    T_CHECK(s[2].status != GNTST_okay && s[2].status < 0, "status %d", s[2].status);
    T_EQ(s[3].status, GNTST_bad_copy_arg);
    T_EQ(s[4].status, GNTST_bad_gntref);
    T_EQ(s[5].status, GNTST_bad_domain);
    T_CHECK(s[6].status != GNTST_okay && s[6].status < 0);
    T_CHECK(s[7].status != GNTST_okay && s[7].status < 0);
    T_CHECK(buf[0] == 'M' && buf[99] == 'M', "copied from guest: %c", buf[0]);
    peer_put_u32(p, 3);                                  /* -> guest checks copy */
    T_ASSERT(peer_get_u32(p) == 33, "sync");

    /* Domain destroy + recreate with the same domid. */
    void *keep = NULL;
    T_EQ(ops->gnt_map(g, GUEST, 1, &r.keep, PROT_READ | PROT_WRITE, &keep), 0);
    T_ASSERT(keep);
    peer_put_u32(p, 4);
    T_ASSERT(peer_get_u32(p) == 5);                       /* guest destroyed */
    T_CHECK(((char *)keep)[0] == 'N', "zombie page no longer readable");
    ((char *)keep)[1] = 'z';                        /* still valid memory */
    T_EQ(ops->gnt_map(g, GUEST, 1, &r.rw, PROT_READ, &bad), -EINVAL);
    peer_put_u32(p, 6);
    uint32_t newref = peer_get_u32(p);                   /* guest recreated */
    void *fresh = NULL;
    T_EQ(ops->gnt_map(g, GUEST, 1, &newref, PROT_READ, &fresh), 0);
    T_CHECK(fresh && ((char *)fresh)[0] == 'Z', "recreated domain not seen");
    T_EQ(ops->gnt_unmap(g, keep, 1), 0);            /* counts of the old incarnation */
    peer_put_u32(p, 7);
    T_ASSERT(peer_get_u32(p) == 8);
    T_EQ(ops->gnt_unmap(g, fresh, 1), 0);

    /* Map/unmap racing the guest's end_foreign_access. */
    uint32_t race = peer_get_u32(p);
    int n = 0, rc;
    void *a;
    double t0 = (xbd_now_ns() / 1e9);
    while ((rc = ops->gnt_map(g, GUEST, 1, &race, PROT_READ | PROT_WRITE, &a)) == 0) {
        T_EQ(ops->gnt_unmap(g, a, 1), 0);
        n++;
    }
    double dt = (xbd_now_ns() / 1e9) - t0;
    T_EQ(rc, -EINVAL);
    T_LOG("map+unmap while racing end: %d cycles, %.2f us each", n, n ? dt * 1e6 / n : 0.0);
    peer_put_u32(p, 9);

    /* A mapping left at close is dropped by close. */
    T_EQ(ops->gnt_map(g, GUEST, 1, &newref, PROT_READ, &a), 0);
    ops->gnt_close(g);
    ops->host_close(h);
    T_EQ(t_count_maps_pid(getpid(), dir), maps0);
    T_EQ(t_count_fds_pid(getpid()), fds0);
    peer_put_u32(p, 10);
}

int main(void)
{
    const char *dir = t_tmpdir(1);
    struct sim_host *h = NULL;
    struct sim_dom *d = NULL;
    T_ASSERT(sim_host_open(dir, &h) == 0);
    T_EQ(sim_dom_create(h, GUEST, 16, 64, &d), 0);
    T_ASSERT(d);
    struct sim_dom *dup = NULL;
    T_EQ(sim_dom_create(h, GUEST, 16, 64, &dup), -EEXIST);
    T_EQ(sim_dom_nr_pages(d), 16);
    T_CHECK(sim_dom_page(d, 16) == NULL);
    for (uint32_t i = 0; i < 16; i++)
        memset(sim_dom_page(d, i), 'A' + (int)i, PAGE);

    struct refs r;
    uint32_t tmp;
    T_EQ(sim_gnt_grant(d, 0, 16, false, &tmp), -EINVAL);
    T_EQ(sim_gnt_grant(d, 0, 0, true, &r.ro), 0);
    T_CHECK(r.ro >= 8, "first usable ref is 8, got %u", r.ro);
    T_EQ(sim_gnt_grant(d, 0, 1, false, &r.rw), 0);
    T_EQ(sim_gnt_grant(d, 7, 2, false, &r.foreign), 0);
    T_EQ(sim_gnt_grant(d, 0, 3, false, &r.revoked), 0);
    T_EQ(sim_gnt_end(d, r.revoked), 0);
    static const uint32_t mpfn[4] = { 4, 5, 6, 9 };
    for (int i = 0; i < 4; i++)
        T_EQ(sim_gnt_grant(d, 0, mpfn[i], false, &r.multi[i]), 0);
    T_EQ(sim_gnt_grant(d, 0, 10, true, &r.rev[0]), 0);
    T_EQ(sim_gnt_grant(d, 0, 8, true, &r.rev[1]), 0);
    T_EQ(sim_gnt_grant(d, 0, 11, false, &r.c_rw), 0);
    T_EQ(sim_gnt_grant(d, 0, 12, true, &r.c_ro), 0);
    T_EQ(sim_gnt_grant(d, 0, 13, false, &r.keep), 0);

    struct peer p;
    peer_fork(&p, backend, (void *)dir);
    peer_put(&p, &r, sizeof(r));

    T_ASSERT(peer_get_u32(&p) == 1);
    T_CHECK(((char *)sim_dom_page(d, 1))[100] == 'X', "backend write not visible to guest");
    T_CHECK(((char *)sim_dom_page(d, 9))[5] == 'm', "multi-page write went elsewhere");
    T_EQ(sim_gnt_ref_mapped(d, r.ro), 1);
    T_EQ(sim_gnt_ref_mapped(d, r.rw), 1);
    T_EQ(sim_gnt_ref_mapped(d, r.c_rw), 0);          /* the failed all-or-nothing map */
    T_EQ(sim_gnt_mapped_count(d), 8);
    T_EQ(sim_gnt_end(d, r.rw), -EBUSY);
    T_EQ(sim_gnt_end(d, r.multi[3]), -EBUSY);
    ((char *)sim_dom_page(d, 0))[7] = 'Y';
    peer_put_u32(&p, 2);

    T_ASSERT(peer_get_u32(&p) == 3);
    T_EQ(sim_gnt_mapped_count(d), 0);
    T_EQ(sim_gnt_end(d, r.rw), 0);
    T_EQ(sim_gnt_end(d, r.rw), -EINVAL);
    const char *p11 = sim_dom_page(d, 11), *p12 = sim_dom_page(d, 12);
    T_CHECK(p11[3999] == 'L' && p11[4000] == 'o' && p11[4095] == 'o', "copy to guest");
    int untouched = 1;
    for (int i = 0; i < PAGE; i++)
        untouched &= p12[i] == 'M';
    T_CHECK(untouched, "read-only grant was written by grant copy");
    peer_put_u32(&p, 33);

    T_ASSERT(peer_get_u32(&p) == 4);
    T_EQ(sim_gnt_ref_mapped(d, r.keep), 1);
    sim_dom_destroy(d);
    d = NULL;
    peer_put_u32(&p, 5);
    T_ASSERT(peer_get_u32(&p) == 6);
    T_EQ(sim_dom_create(h, GUEST, 4, 16, &d), 0);
    T_ASSERT(d);
    memset(sim_dom_page(d, 0), 'Z', PAGE);
    uint32_t newref;
    T_EQ(sim_gnt_grant(d, 0, 0, false, &newref), 0);
    peer_put_u32(&p, newref);
    T_ASSERT(peer_get_u32(&p) == 7);
    T_EQ(sim_gnt_mapped_count(d), 1);                /* the old unmap did not count here */
    peer_put_u32(&p, 8);

    uint32_t race;
    T_EQ(sim_gnt_grant(d, 0, 1, false, &race), 0);
    peer_put_u32(&p, race);
    usleep(20000);
    int busy = 0, rc;
    while ((rc = sim_gnt_end(d, race)) == -EBUSY)
        busy++;
    T_EQ(rc, 0);
    T_LOG("end_foreign_access saw EBUSY %d times before it won", busy);
    T_ASSERT(peer_get_u32(&p) == 9);
    T_EQ(sim_gnt_ref_mapped(d, race), 0);
    T_ASSERT(peer_get_u32(&p) == 10);
    T_EQ(sim_gnt_mapped_count(d), 0);                /* close dropped the leftover map */
    T_EQ(peer_wait(&p), 0);

    /* Table full. */
    uint32_t n = 0;
    while (sim_gnt_grant(d, 0, 2, true, &tmp) == 0)
        n++;
    T_EQ(n, 16 - 8 - 1);                             /* 16 entries, 8 reserved, newref held */
    sim_dom_destroy(d);

    /* A guest process that died without destroying its domain: stale. */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct sim_dom *z;
        _exit(sim_dom_create(h, GUEST + 4, 2, 16, &z) == 0 ? 0 : 1);
    }
    int st = -1;
    T_ASSERT(pid > 0 && waitpid(pid, &st, 0) == pid, "fork");
    T_EQ(st, 0);
    T_EQ(sim_dom_create(h, GUEST + 4, 2, 16, &d), 0);        /* not -EEXIST */
    if (d)
        sim_dom_destroy(d);
    sim_host_close(h);
    T_EQ(t_count_maps_pid(getpid(), dir), 0);
    return t_done();
}
