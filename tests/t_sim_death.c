/* t_sim_death: the simulated host releases what a SIGKILLed process held, as the kernel does (evtchn_release, gntdev unmap at exit): its ports close (the frontend's goes back to unbound and can be rebound), its grant map counts drop (exactly: a live process's counts stay), also when killed in the middle of map/unmap/copy; a live process is never reclaimed, and a slot whose start time does not match (pid reuse) is. */
#include "harness.h"
#include "lib/peer.h"
#include "lib/simevt.h"
#include "sim.h"
#include "xen_ops.h"
#include "../src/sim/sim_priv.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BACK 0
#define GUEST 5
#define PAGE 4096
#define NREF 4          /* refs the doomed backend maps: 0,1 rw, 2,3 ro */

struct grants {
    uint32_t ref[NREF];
    uint32_t shared;    /* mapped by the doomed backend and by the survivor */
    xen_port_t port;    /* the frontend's unbound port to bind */
};


/* Bind the frontend's port, take the event Xen leaves pending, notify it. */
static xen_port_t bind_and_ping(struct sim_evtchn *e, xen_port_t fport)
{
    xen_port_t bp = 0, got = 0;
    T_ASSERT(sim_evtchn_bind_interdomain(e, GUEST, fport, &bp) == 0, "bind %u", fport);
    T_EQ(sim_wait_port(e, 2000, &got), 0);
    T_EQ(got, bp);
    T_EQ(sim_evtchn_unmask(e, bp), 0);
    T_EQ(sim_evtchn_notify(e, bp), 0);
    return bp;
}

/* A backend child: host, event-channel and grant handles; the grants it
 * is told about, their port bound (and pinged). */
struct backend {
    struct sim_host *h;
    struct sim_evtchn *e;
    struct xen_host *xh;
    struct xen_gnt *g;
    struct grants gr;
    xen_port_t port;
};

static void backend_open(struct backend *b, struct peer *p, const char *dir)
{
    const struct xen_ops *ops = &xen_ops_sim;
    memset(b, 0, sizeof(*b));
    T_ASSERT(sim_host_open(dir, &b->h) == 0, "host");
    T_ASSERT(sim_evtchn_open(b->h, BACK, &b->e) == 0, "evtchn");
    T_ASSERT(ops->host_open(dir, &b->xh) == 0 && ops->gnt_open(b->xh, &b->g) == 0, "gnttab");
    peer_get(p, &b->gr, sizeof(b->gr));
    b->port = bind_and_ping(b->e, b->gr.port);
}

/* ---- a backend that is killed while holding ports and mappings ---------- */
static void doomed(struct peer *p, void *arg)
{
    const struct xen_ops *ops = &xen_ops_sim;
    struct backend b;
    backend_open(&b, p, arg);
    struct xen_gnt *g = b.g;
    struct grants gr = b.gr;
    void *a[NREF + 2];
    for (int i = 0; i < NREF; i++)
        T_ASSERT(ops->gnt_map(g, GUEST, 1, &gr.ref[i], i < 2 ? PROT_READ | PROT_WRITE : PROT_READ,
                              &a[i]) == 0, "map %d", i);
    T_ASSERT(ops->gnt_map(g, GUEST, 2, gr.ref, PROT_READ | PROT_WRITE, &a[NREF]) == 0, "map 2");
    T_ASSERT(ops->gnt_map(g, GUEST, 1, &gr.shared, PROT_READ, &a[NREF + 1]) == 0, "map shared");
    ((char *)a[0])[0] = 'D';
    peer_put_u32(p, 1);
    pause();
}

/* ---- a backend that stays alive: nothing of it may be reclaimed --------- */
static void survivor(struct peer *p, void *arg)
{
    const struct xen_ops *ops = &xen_ops_sim;
    struct backend b;
    backend_open(&b, p, arg);
    xen_port_t got = 0;
    void *a = NULL;
    T_ASSERT(ops->gnt_map(b.g, GUEST, 1, &b.gr.shared, PROT_READ, &a) == 0, "map shared");
    peer_put_u32(p, 1);
    /* After the other backend died and was reclaimed: still bound. */
    T_ASSERT(peer_get_u32(p) == 2, "sync");
    T_EQ(sim_wait_port(b.e, 2000, &got), 0);
    T_EQ(got, b.port);
    T_EQ(sim_evtchn_unmask(b.e, b.port), 0);
    T_EQ(sim_evtchn_notify(b.e, b.port), 0);
    T_EQ(((char *)a)[0], 'S');
    T_EQ(ops->gnt_unmap(b.g, a, 1), 0);
    ops->gnt_close(b.g);
    ops->host_close(b.xh);
    sim_evtchn_close(b.e);
    sim_host_close(b.h);
    peer_put_u32(p, 3);
}

/* ---- killed at a random point of a map/unmap/copy loop ----------------- */
struct stress {
    uint32_t ref[3];                    /* 0 rw, 1 rw, 2 ro */
    uint32_t loops;                     /* atomic; the struct is shared with the parent */
};

static void churner(struct peer *p, void *arg)
{
    struct stress *st = arg;
    const struct xen_ops *ops = &xen_ops_sim;
    struct xen_host *xh = NULL;
    struct xen_gnt *g = NULL;
    const char *dir = (const char *)(st + 1);
    T_ASSERT(ops->host_open(dir, &xh) == 0 && ops->gnt_open(xh, &g) == 0, "gnttab");
    peer_put_u32(p, 1);
    char buf[64];
    for (;;) {
        void *a = NULL, *b = NULL;
        T_ASSERT(ops->gnt_map(g, GUEST, 2, st->ref, PROT_READ | PROT_WRITE, &a) == 0, "map");
        T_ASSERT(ops->gnt_map(g, GUEST, 1, &st->ref[2], PROT_READ, &b) == 0, "map ro");
        xengnttab_grant_copy_segment_t s[2];
        memset(s, 0, sizeof(s));
        s[0].flags = GNTCOPY_source_gref;
        s[0].source.foreign.ref = st->ref[2];
        s[0].source.foreign.domid = GUEST;
        s[0].dest.virt = buf;
        s[0].len = sizeof(buf);
        s[1].flags = GNTCOPY_dest_gref;
        s[1].dest.foreign.ref = st->ref[1];
        s[1].dest.foreign.domid = GUEST;
        s[1].source.virt = buf;
        s[1].len = sizeof(buf);
        T_ASSERT(ops->gnt_copy(g, 2, s) == 0 && s[0].status == 0 && s[1].status == 0, "copy");
        T_ASSERT(ops->gnt_unmap(g, b, 1) == 0 && ops->gnt_unmap(g, a, 2) == 0, "unmap");
        __atomic_fetch_add(&st->loops, 1, __ATOMIC_RELAXED);
    }
}

/* ---- a backend that maps one ref and waits to be killed ---------------- */
static void holder(struct peer *p, void *arg)
{
    const struct xen_ops *ops = &xen_ops_sim;
    struct xen_host *xh = NULL;
    struct xen_gnt *g = NULL;
    uint32_t ref = peer_get_u32(p);
    void *a = NULL;
    T_ASSERT(ops->host_open(arg, &xh) == 0 && ops->gnt_open(xh, &g) == 0, "gnttab");
    T_ASSERT(ops->gnt_map(g, GUEST, 1, &ref, PROT_READ, &a) == 0, "map");
    peer_put_u32(p, 1);
    pause();
}

/* Entries of dir whose name starts with prefix. */
static int count_prefix(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    T_ASSERT(d, "opendir %s", dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

/* host.ctl of the host dir, mapped (to find and alter owner slots). */
static struct sim_ctl *map_ctl(const char *dir, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/host.ctl", dir);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    T_ASSERT(fd >= 0, "open %s", path);
    *len = sizeof(struct sim_ctl);
    void *p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    T_ASSERT(p != MAP_FAILED, "mmap host.ctl");
    return p;
}

/* Map host file `name` (whole) read/write. */
static void *map_file(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    T_ASSERT(fd >= 0, "open %s", path);
    struct stat sb;
    T_ASSERT(fstat(fd, &sb) == 0, "stat");
    *len = (size_t)sb.st_size;
    void *p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    T_ASSERT(p != MAP_FAILED, "mmap %s", path);
    return p;
}

/* The (only) live slot of `pid`, 0 if none. */
static uint32_t slot_of(struct sim_ctl *c, pid_t pid)
{
    for (uint32_t s = 1; s < SIM_MAX_OWNERS; s++)
        if (c->owners[s].state == SIM_OWN_LIVE && c->owners[s].pid == (uint32_t)pid)
            return s;
    return 0;
}

/*
 * Every point where a backend can die while changing a count (sim_gntmap.c:
 * 1 busy, 2 record, 3 entry, 4 record), set up by hand on a real holder's
 * entry and record (it holds 1, we hold 1), then SIGKILL: exactly our 1 is
 * left and the entry is not busy.  Random kills (below) rarely hit these.
 */
static void crash_points(const char *dir, struct sim_host *h, struct sim_dom *dom)
{
    static const struct { const char *what; int count; bool busy; uint32_t own; } pt[] = {
        { "raise, after 1", 2, true, 1 },
        { "raise, after 2", 2, true, 2 | SIM_OWN_PEND_INC },
        { "raise, after 3", 3, false, 2 | SIM_OWN_PEND_INC },
        { "raise, after 4", 3, false, 2 },
        { "drop, after 1", 2, true, 1 },
        { "drop, after 2", 2, true, 0 | SIM_OWN_PEND_DEC },
        { "drop, after 3", 1, false, 0 | SIM_OWN_PEND_DEC },
    };
    (void)h;
    const struct xen_ops *ops = &xen_ops_sim;
    struct xen_host *xh = NULL;
    struct xen_gnt *g = NULL;
    uint32_t ref;
    void *mine = NULL;
    T_ASSERT(sim_gnt_grant(dom, BACK, 30, true, &ref) == 0, "grant");
    T_ASSERT(ops->host_open(dir, &xh) == 0 && ops->gnt_open(xh, &g) == 0, "gnttab");
    T_ASSERT(ops->gnt_map(g, GUEST, 1, &ref, PROT_READ, &mine) == 0, "map");
    size_t clen, glen, olen;
    struct sim_ctl *c = map_file(dir, "host.ctl", &clen);
    char name[64];
    snprintf(name, sizeof(name), "dom%u.gnttab", GUEST);
    struct sim_gnt_hdr *gh = map_file(dir, name, &glen);
    uint64_t *state = &((struct sim_gnt_entry *)(gh + 1))[ref].state;
    int records = count_prefix(dir, "gown.");             /* this process's handles */
    for (size_t i = 0; i < ARRAY_SIZE(pt); i++) {
        struct peer pc;
        peer_fork(&pc, holder, (void *)dir);
        peer_put_u32(&pc, ref);
        T_ASSERT(peer_get_u32(&pc) == 1, "holder ready");
        T_EQ(sim_gnt_ref_mapped(dom, ref), 2);
        uint32_t slot = slot_of(c, pc.pid);
        T_ASSERT(slot, "holder's slot");
        snprintf(name, sizeof(name), "gown.%u.%u.%u", slot, GUEST, gh->generation);
        struct sim_gown_hdr *oh = map_file(dir, name, &olen);
        uint32_t *own = (uint32_t *)(oh + 1);
        T_EQ(own[ref], 1);
        uint64_t s = __atomic_load_n(state, __ATOMIC_ACQUIRE);
        s = (s & ~(SIM_GS_COUNT_MASK | SIM_GS_BUSY_MASK)) | (uint64_t)pt[i].count |
            (pt[i].busy ? (uint64_t)slot << SIM_GS_BUSY_SHIFT : 0);
        __atomic_store_n(state, s, __ATOMIC_RELEASE);
        __atomic_store_n(&own[ref], pt[i].own, __ATOMIC_RELEASE);
        munmap(oh, olen);
        kill(pc.pid, SIGKILL);
        T_EQ(peer_wait(&pc), 128 + SIGKILL);
        uint32_t left = sim_gnt_ref_mapped(dom, ref);
        T_CHECK(left == 1, "%s: %u mappings left, expected ours", pt[i].what, left);
        T_CHECK(SIM_GS_BUSY(__atomic_load_n(state, __ATOMIC_ACQUIRE)) == 0, "%s: still busy",
                pt[i].what);
        T_EQ(count_prefix(dir, "gown."), records);      /* the holder's is gone */
    }
    T_EQ(sim_gnt_end(dom, ref), -EBUSY);
    T_EQ(ops->gnt_unmap(g, mine, 1), 0);
    T_EQ(sim_gnt_end(dom, ref), 0);
    ops->gnt_close(g);
    ops->host_close(xh);
    munmap(gh, glen);
    munmap(c, clen);
}

static int live_slots_of(struct sim_ctl *c, pid_t pid)
{
    int n = 0;
    for (uint32_t s = 1; s < SIM_MAX_OWNERS; s++)
        n += c->owners[s].state == SIM_OWN_LIVE && c->owners[s].pid == (uint32_t)pid;
    return n;
}

int main(void)
{
    signal(SIGPIPE, SIG_DFL);
    const char *dir = t_tmpdir(1);
    const struct xen_ops *ops = &xen_ops_sim;
    struct sim_host *h = NULL;
    struct sim_dom *dom = NULL;
    struct sim_evtchn *fe = NULL, *be = NULL;
    T_ASSERT(sim_host_open(dir, &h) == 0, "host");
    T_ASSERT(sim_dom_create(h, GUEST, 64, 64, &dom) == 0, "dom");
    T_ASSERT(sim_evtchn_open(h, GUEST, &fe) == 0, "frontend evtchn");
    T_ASSERT(sim_evtchn_open(h, BACK, &be) == 0, "spare backend evtchn");   /* opened before */

    /* Grants for the doomed backend (rw, rw, ro, ro), one shared (ro). */
    struct grants gd, gs;
    for (int i = 0; i < NREF; i++)
        T_ASSERT(sim_gnt_grant(dom, BACK, (uint32_t)i, i >= 2, &gd.ref[i]) == 0, "grant");
    T_ASSERT(sim_gnt_grant(dom, BACK, 10, true, &gd.shared) == 0, "grant shared");
    ((char *)sim_dom_page(dom, 10))[0] = 'S';
    gs = gd;
    T_EQ(sim_evtchn_alloc_unbound(fe, BACK, &gd.port), 0);
    T_EQ(sim_evtchn_alloc_unbound(fe, BACK, &gs.port), 0);

    struct peer pd, ps;
    peer_fork(&pd, doomed, (void *)dir);
    peer_put(&pd, &gd, sizeof(gd));
    T_ASSERT(peer_get_u32(&pd) == 1, "doomed ready");
    peer_fork(&ps, survivor, (void *)dir);
    peer_put(&ps, &gs, sizeof(gs));
    T_ASSERT(peer_get_u32(&ps) == 1, "survivor ready");

    /* Before the kill: both bound, refs busy (so the checks below can fail). */
    xen_port_t got = 0;
    for (int k = 0; k < 2; k++) {
        T_EQ(sim_wait_port(fe, 2000, &got), 0);             /* each backend notified once */
        T_CHECK(got == gd.port || got == gs.port, "event on port %u", got);
        T_EQ(sim_evtchn_unmask(fe, got), 0);
    }
    T_EQ(sim_evtchn_port_state(h, GUEST, gd.port), 2);
    T_EQ(sim_evtchn_port_state(h, GUEST, gs.port), 2);
    T_EQ(sim_gnt_ref_mapped(dom, gd.ref[0]), 2);        /* alone and in the 2-page map */
    T_EQ(sim_gnt_ref_mapped(dom, gd.ref[2]), 1);
    T_EQ(sim_gnt_ref_mapped(dom, gd.shared), 2);
    T_EQ(sim_gnt_end(dom, gd.ref[1]), -EBUSY);
    T_EQ(sim_gnt_end(dom, gd.ref[3]), -EBUSY);
    T_EQ(sim_gnt_mapped_count(dom), 8);
    T_EQ(((char *)sim_dom_page(dom, 0))[0], 'D');

    kill(pd.pid, SIGKILL);
    T_EQ(peer_wait(&pd), 128 + SIGKILL);

    /* Ending access is the first thing anyone does after the kill: it
     * finds the dead owner (gntdev would have unmapped at its exit). */
    T_EQ(sim_gnt_end(dom, gd.ref[3]), 0);
    T_EQ(sim_gnt_ref_mapped(dom, gd.ref[0]), 0);
    T_EQ(sim_gnt_ref_mapped(dom, gd.ref[2]), 0);
    T_EQ(sim_gnt_ref_mapped(dom, gd.shared), 1);        /* the survivor's */
    T_EQ(sim_gnt_end(dom, gd.shared), -EBUSY);
    T_EQ(sim_gnt_mapped_count(dom), 1);
    /* Its port is closed: the frontend's is unbound for the backend again. */
    T_EQ(sim_evtchn_port_state(h, GUEST, gd.port), 1);
    T_EQ(sim_evtchn_port_state(h, GUEST, gs.port), 2);
    T_EQ(sim_evtchn_notify(fe, gd.port), 0);            /* unbound: dropped */

    /* A new backend binds the same port; notifications flow both ways. */
    xen_port_t bp = bind_and_ping(be, gd.port);
    T_EQ(sim_wait_port(fe, 2000, &got), 0);
    T_EQ(got, gd.port);
    T_EQ(sim_evtchn_unmask(fe, gd.port), 0);
    T_EQ(sim_evtchn_notify(fe, gd.port), 0);
    T_EQ(sim_wait_port(be, 2000, &got), 0);
    T_EQ(got, bp);
    /* ... and maps the grefs the dead one had mapped. */
    struct xen_host *xh = NULL;
    struct xen_gnt *g = NULL;
    T_ASSERT(ops->host_open(dir, &xh) == 0 && ops->gnt_open(xh, &g) == 0, "gnttab");
    void *a = NULL, *b = NULL;
    T_EQ(ops->gnt_map(g, GUEST, 2, gd.ref, PROT_READ | PROT_WRITE, &a), 0);
    T_EQ(ops->gnt_map(g, GUEST, 1, &gd.ref[2], PROT_READ, &b), 0);
    T_CHECK(a && ((char *)a)[0] == 'D', "the dead backend's write is in guest memory");
    T_EQ(sim_gnt_ref_mapped(dom, gd.ref[0]), 1);
    T_EQ(ops->gnt_unmap(g, a, 2), 0);
    T_EQ(ops->gnt_unmap(g, b, 1), 0);
    T_EQ(sim_gnt_end(dom, gd.ref[0]), 0);
    T_EQ(sim_gnt_end(dom, gd.ref[1]), 0);
    T_EQ(sim_gnt_end(dom, gd.ref[2]), 0);

    /* The survivor kept everything. */
    ((char *)sim_dom_page(dom, 10))[0] = 'S';
    T_EQ(sim_evtchn_notify(fe, gs.port), 0);
    peer_put_u32(&ps, 2);
    T_EQ(sim_wait_port(fe, 2000, &got), 0);
    T_EQ(got, gs.port);
    T_ASSERT(peer_get_u32(&ps) == 3, "survivor done");
    T_EQ(peer_wait(&ps), 0);
    T_EQ(sim_gnt_end(dom, gd.shared), 0);
    T_EQ(sim_gnt_mapped_count(dom), 0);
    T_EQ(sim_evtchn_port_state(h, GUEST, gs.port), 1);  /* it closed: unbound */

    /* Killed at random points of map/unmap/copy: the counts come back to 0
     * exactly (the per-handle record says what it held at every step). */
    size_t slen = sizeof(struct stress) + strlen(dir) + 1;
    struct stress *st = mmap(NULL, slen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    T_ASSERT(st != MAP_FAILED, "mmap");
    strcpy((char *)(st + 1), dir);
    for (int i = 0; i < 3; i++)
        T_ASSERT(sim_gnt_grant(dom, BACK, 20u + (uint32_t)i, i == 2, &st->ref[i]) == 0, "grant");
    struct timespec seed;
    clock_gettime(CLOCK_MONOTONIC, &seed);
    srand((unsigned)seed.tv_nsec);
    uint32_t total = 0;
    for (int round = 0; round < 25; round++) {
        struct peer pc;
        __atomic_store_n(&st->loops, 0, __ATOMIC_RELAXED);
        peer_fork(&pc, churner, st);
        T_ASSERT(peer_get_u32(&pc) == 1, "churner ready");
        while (__atomic_load_n(&st->loops, __ATOMIC_RELAXED) < 3)
            usleep(100);
        usleep((useconds_t)(rand() % 3000));
        kill(pc.pid, SIGKILL);
        T_EQ(peer_wait(&pc), 128 + SIGKILL);
        total += __atomic_load_n(&st->loops, __ATOMIC_RELAXED);
        T_EQ(sim_gnt_mapped_count(dom), 0);
        for (int i = 0; i < 3; i++)
            T_EQ(sim_gnt_ref_mapped(dom, st->ref[i]), 0);
    }
    T_LOG("25 kills after %u map/copy/unmap loops in all", total);
    for (int i = 0; i < 3; i++)
        T_EQ(sim_gnt_end(dom, st->ref[i]), 0);
    munmap(st, slen);

    crash_points(dir, h, dom);

    /* Pid reuse: a live slot whose start time is not its process's is an
     * older process's, so it is reclaimed (and a live one is not). */
    size_t clen;
    struct sim_ctl *c = map_ctl(dir, &clen);
    struct peer pr;
    struct hold_arg reused = { dir, GUEST + 1, BACK };   /* its slot made to look older */
    peer_fork(&pr, peer_hold_unbound, &reused);
    xen_port_t rport = peer_get_u32(&pr);
    T_EQ(sim_evtchn_port_state(h, GUEST + 1, rport), 1);    /* a sweep: it is alive */
    T_EQ(live_slots_of(c, pr.pid), 1);
    for (uint32_t s = 1; s < SIM_MAX_OWNERS; s++)
        if (c->owners[s].state == SIM_OWN_LIVE && c->owners[s].pid == (uint32_t)pr.pid)
            c->owners[s].start ^= 1;
    T_EQ(sim_evtchn_port_state(h, GUEST + 1, rport), 0);
    T_EQ(live_slots_of(c, pr.pid), 0);
    kill(pr.pid, SIGKILL);
    T_EQ(peer_wait(&pr), 128 + SIGKILL);

    ops->gnt_close(g);
    ops->host_close(xh);
    sim_evtchn_close(be);
    T_EQ(sim_evtchn_port_state(h, GUEST, gd.port), 1);
    sim_evtchn_close(fe);
    T_EQ(sim_evtchn_ports_in_use(h, GUEST), 0);
    T_EQ(sim_evtchn_ports_in_use(h, BACK), 0);
    T_EQ(live_slots_of(c, getpid()), 0);
    munmap(c, clen);
    sim_dom_destroy(dom);
    sim_host_close(h);
    /* Nothing left behind: no grant record, no FIFO of a dead handle. */
    char path[4096];
    snprintf(path, sizeof(path), "%s/evq", dir);
    T_EQ(t_count_dir(path), 0);
    T_EQ(count_prefix(dir, "gown."), 0);
    return t_done();
}
