/*
 * sim_priv.h - shared-memory layouts and internals of the simulated Xen host
 * (include/sim.h).  Private to src/sim/.
 *
 * Files of a host dir (all mmap'ed MAP_SHARED by every process that plays a
 * domain; host byte order; fields shared between processes are only touched
 * with __atomic builtins):
 *
 *   host.ctl        struct sim_ctl: a robust process-shared mutex (the "host
 *                   lock", taken by event-channel control operations and by
 *                   domain create/destroy, never on a data path) and counters
 *                   for handle ids and domain generations.  Created under a
 *                   temporary name and link(2)ed into place, so nobody ever
 *                   sees it half initialised.
 *   dom<N>.mem      guest memory, nr_pages * 4096 bytes; frame = page index.
 *   dom<N>.gnttab   struct sim_gnt_hdr, then nr_grefs struct sim_gnt_entry.
 *   dom<N>.evtchn   struct sim_evt_hdr, then SIM_EVT_NR_PORTS struct sim_evt_port.
 *   evq/<id>        one FIFO per event-channel handle (id from host.ctl).
 *   gown.<slot>.<domid>.<generation>
 *                   per grant handle and guest domain incarnation: struct
 *                   sim_gown_hdr, then one uint32_t per ref: how many counts
 *                   of that ref the handle holds (see "Death" below).
 *
 * Grant entries.  Each entry's flags, a sequence number, its map count and
 * a busy field (the owner slot changing the count) live in ONE 64-bit word
 * (`state`) so that "map" (check permission, count+1) and "end access" (fail
 * with EBUSY if count > 0, else clear) are compare-and-swaps, as the
 * hypervisor's GTF_reading/GTF_writing bits make them on Xen (a map takes
 * two, see "Death" below).  The sequence number changes at every grant, so a mapper that
 * read domid/frame of an old incarnation of the ref loses its CAS (no ABA).
 *
 * Event channels.  A port is {state, remote dom, remote port, owner handle
 * id, pm}.  state/remote/owner change only under the host lock (written
 * fields first, state last with release order); notify reads them lock-free.
 * pm holds PENDING, MASKED and QUEUED: a notifier sets PENDING and, if the
 * port was neither pending nor masked, also MASKED|QUEUED and writes the port
 * number (4 bytes) into the owner's FIFO; pending() reads it and clears
 * PENDING|QUEUED (the port stays masked); unmask clears MASKED, or, if the
 * port fired meanwhile, sets QUEUED and writes it to its own FIFO.  So a port
 * has at most one notification in flight and stays masked until unmask.  Every opener of a FIFO opens it
 * O_RDWR|O_NONBLOCK: writers never get SIGPIPE/ENXIO when the owner is gone
 * (the bytes are simply never read), and a 64 KiB pipe holds 16384 ports, so
 * unlike a unix datagram socket (net.unix.max_dgram_qlen, often 10) it never
 * overflows in practice; a full FIFO (EAGAIN) drops the wake-up.
 *
 * Death of a process (sim_owner.c).  On a real host the kernel releases what
 * a dead process held: closing its /dev/xen/evtchn fd unbinds every port it
 * bound (torvalds/linux:drivers/xen/evtchn.c@v6.1 evtchn_release ->
 * evtchn_unbind_from_user; Xen's evtchn_close puts the remote end of an
 * interdomain port back to ECS_UNBOUND for our domain), and its gntdev
 * mappings are unmapped at mm teardown (drivers/xen/gntdev.c), so the
 * guest's end of foreign access succeeds again; grant copies are
 * synchronous hypercalls, none is left in flight.  The sim does the same:
 *  - every handle (event channel or grant) owns a slot of host.ctl
 *    {pid, start time = /proc/<pid>/stat field 22}; a port records the slot
 *    of the handle holding it (owner_slot);
 *  - a slot is dead when /proc/<pid>/stat is gone, shows a zombie, or shows
 *    another start time (the pid was reused).  Whoever finds it dead
 *    reclaims it under the host lock, then frees the slot: its ports are
 *    closed exactly as sim_evtchn_close does (the remote end back to
 *    UNBOUND for us, the port FREE, its FIFO unlinked), and the counts its
 *    gown.* files record are subtracted from the guest's grant entries (the
 *    files unlinked);
 *  - when: at every handle open (a sweep of all live slots; so a daemon
 *    restarted after `kill -9` finds the ports unbound and the grants free),
 *    and lazily when an operation fails only because of a dead holder:
 *    bind_interdomain to a port still interdomain for us, a full port table,
 *    sim_gnt_end's -EBUSY, a full grant table, a grant entry busy for long
 *    (below); the queries sim_evtchn_port_state, sim_evtchn_ports_in_use,
 *    sim_gnt_mapped_count and sim_gnt_ref_mapped sweep before reporting
 *    anything not free, so tests see what they would see after the kernel's
 *    exit path.  The data path is unchanged: notify, pending and unmask make
 *    no liveness check (a notification to a dead process's port lands in its
 *    FIFO, nobody reads it: dropped, as Xen drops it on the closed port).
 *  - exact counts: a grant handle changes a count in four steps: CAS the
 *    entry's busy field (SIM_GS_BUSY) from 0 to its slot, write its new
 *    count with PEND_INC/PEND_DEC into its gown word, CAS count +-1 and busy
 *    back to 0 together, clear PEND.  The reclaimer takes the gown count,
 *    corrected by one when the entry is still busy for the slot and PEND is
 *    set (the entry step did not happen), so a kill at any instruction
 *    leaves no count behind and drops none of a live process's.  Others
 *    wait for a busy entry (a few instructions; after ~4096 spins they
 *    check whether the holder died); sim_gnt_grant skips busy entries and
 *    end access ignores them (a map racing with end access then fails, as
 *    on Xen).
 * Limits: a handle belongs to the process that opened it: a forked child
 * using an inherited handle acts as its parent (and is cut off when the
 * parent dies), unlike an inherited fd on Linux.  Without /proc (or in
 * another pid namespace) nobody is ever found dead.  A process killed while
 * itself reclaiming (holding the host lock) may leave the ref it was on off
 * by one (the next reclaimer may subtract that ref's counts again, clamped
 * at zero).  Stale FIFOs of dead handles are unlinked, but an event-channel
 * table (dom<N>.evtchn) is never removed.  Not modelled: on a PV dom0 with
 * gntdev use_ptemod, killing a process while O_DIRECT I/O is in flight on
 * gntdev-mapped pages makes the kernel log "BUG: Bad page map" and leak the
 * grants, because io_uring does not wait for that I/O before the mm is torn
 * down (libaio's exit_aio does); here the counts are always released.
 */
#ifndef XBD_SIM_PRIV_H
#define XBD_SIM_PRIV_H

#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include "sim.h"

#define SIM_PAGE            4096u
#define SIM_CTL_MAGIC       0x4c544358u     /* "XCTL" */
#define SIM_GNT_MAGIC       0x544e4758u     /* "XGNT" */
#define SIM_EVT_MAGIC       0x54564558u     /* "XEVT" */
#define SIM_GOWN_MAGIC      0x4e574f58u     /* "XOWN" */
#define SIM_LAYOUT_VERSION  2u

#define SIM_GNT_FIRST_REF   8u              /* refs 0..7 reserved, as on Xen */
#define SIM_GNT_MAX_GREFS   (1u << 20)
#define SIM_MAX_PAGES       (1u << 24)      /* 64 GiB of guest memory */
#define SIM_EVT_NR_PORTS    4096u           /* 2-level ABI on 64-bit; port 0 invalid */

/* ---- host.ctl -------------------------------------------------------- */
#define SIM_MAX_OWNERS      4096u           /* owner slots 1..4095 (0: none); fits SIM_GS_BUSY */
enum { SIM_OWN_FREE = 0, SIM_OWN_LIVE = 1 };
enum { SIM_OWN_EVTCHN = 1, SIM_OWN_GNTTAB = 2 };

struct sim_owner {                  /* one open handle; written under the host lock */
    uint32_t state;                 /* SIM_OWN_*, written last */
    uint32_t kind;                  /* SIM_OWN_EVTCHN or SIM_OWN_GNTTAB */
    uint32_t pid;                   /* the process that opened the handle */
    uint32_t handle_id;             /* evtchn: its id (FIFO evq/<id>); gnttab: 0 */
    uint64_t start;                 /* /proc/<pid>/stat field 22 (clock ticks), 0 unknown */
    uint64_t pad;
};                                  /* 32 bytes */

struct sim_ctl {
    uint32_t magic, version;
    uint32_t next_handle_id;        /* atomic; ids start at 1 */
    uint32_t next_generation;       /* atomic; domain incarnations */
    pthread_mutex_t lock;           /* robust, PTHREAD_PROCESS_SHARED */
    struct sim_owner owners[SIM_MAX_OWNERS] __attribute__((aligned(64)));
};

/* ---- dom<N>.gnttab --------------------------------------------------- */
struct sim_gnt_hdr {
    uint32_t magic, version;
    uint32_t domid, nr_pages, nr_grefs;
    uint32_t alive;                 /* atomic: 0 once destroyed */
    uint32_t generation;            /* unique per incarnation of the domain */
    uint32_t creator_pid;           /* a dead creator means a dead domain */
    uint64_t mem_dev, mem_ino;      /* identity of the matching dom<N>.mem */
    uint32_t alloc_hint;            /* atomic: where the next grant search starts */
    uint32_t pad[5];
};                                  /* 64 bytes */

#define SIM_GS_COUNT_MASK   0xffffffull         /* foreign mappings (and copies in flight) */
#define SIM_GS_PERMIT       (1ull << 24)        /* GTF_permit_access */
#define SIM_GS_READONLY     (1ull << 25)        /* GTF_readonly */
#define SIM_GS_RESERVED     (1ull << 26)        /* being filled in by sim_gnt_grant */
#define SIM_GS_FLAGS        (SIM_GS_PERMIT | SIM_GS_READONLY | SIM_GS_RESERVED)
#define SIM_GS_BUSY_SHIFT   27                  /* owner slot changing the count, 0 none */
#define SIM_GS_BUSY_MASK    (0xfffull << SIM_GS_BUSY_SHIFT)
#define SIM_GS_BUSY(s)      ((uint32_t)(((s) & SIM_GS_BUSY_MASK) >> SIM_GS_BUSY_SHIFT))
#define SIM_GS_SEQ_ONE      (1ull << 40)

struct sim_gnt_entry {
    uint64_t state;                 /* atomic: seq | busy | flags | map count */
    uint32_t domid;                 /* domain allowed to map */
    uint32_t frame;                 /* guest page index */
};

/* ---- gown.<slot>.<domid>.<generation> ---------------------------------- */
struct sim_gown_hdr {
    uint32_t magic, version;
    uint32_t slot, domid, generation, nr_grefs;
    uint32_t pad[2];
};                                  /* 32 bytes, then nr_grefs uint32_t words */

#define SIM_OWN_COUNT_MASK  0x3fffffffu         /* this handle's count on the ref */
#define SIM_OWN_PEND_DEC    (1u << 30)          /* count already lowered, entry not yet */
#define SIM_OWN_PEND_INC    (1u << 31)          /* count already raised, entry not yet */

/* ---- dom<N>.evtchn --------------------------------------------------- */
enum { SIM_ECS_FREE = 0, SIM_ECS_UNBOUND = 1, SIM_ECS_INTERDOMAIN = 2 };
#define SIM_PM_PENDING      1u
#define SIM_PM_MASKED       2u
#define SIM_PM_QUEUED       4u              /* its port number is in the owner's FIFO */

struct sim_evt_hdr {
    uint32_t magic, version, domid, nr_ports;
    uint32_t pad[12];
};                                  /* 64 bytes */

struct sim_evt_port {
    uint32_t state;                 /* SIM_ECS_* */
    uint32_t remote_dom;            /* UNBOUND: who may bind; INTERDOMAIN: peer */
    uint32_t remote_port;
    uint32_t owner;                 /* handle id that holds the port; 0 none */
    uint32_t pm;                    /* atomic SIM_PM_* */
    uint32_t owner_slot;            /* host.ctl owner slot of that handle; 0 none */
};

/* ---- host ------------------------------------------------------------ */
struct sim_evt_map {                /* a mapped dom<N>.evtchn, while referenced */
    struct sim_evt_map *next;
    xen_domid_t domid;
    unsigned refs;                  /* sim_evt_table gets minus sim_evt_table_put calls */
    struct sim_evt_port *ports;     /* ports[0..SIM_EVT_NR_PORTS) */
    void *base;
    size_t len;
};

struct sim_host {
    char *dir;
    int dirfd;
    struct sim_ctl *ctl;
    size_t ctl_len;
    pthread_mutex_t evt_lock;       /* protects evt (threads of this process) */
    struct sim_evt_map *evt;
};

/* Atomics on shared memory. */
#define SIM_LOAD(p)         __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define SIM_RELAXED(p)      __atomic_load_n((p), __ATOMIC_RELAXED)
#define SIM_STORE(p, v)     __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define SIM_CAS(p, o, n)    __atomic_compare_exchange_n((p), (o), (n), false, \
                                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)

/* sim_host.c */
int  sim_host_lock(struct sim_host *h);
void sim_host_unlock(struct sim_host *h);
/* Create `name` (len bytes) in the host dir atomically: a temporary file is
 * sized, mapped and filled by init(base, arg), then rename(2)d into place
 * (replacing an old file) or, with excl, link(2)ed (-EEXIST if it exists).
 * Returns 0 or -errno (init's error included). */
int  sim_file_create(struct sim_host *h, const char *name, size_t len, bool excl,
                     int (*init)(void *base, void *arg), void *arg);
/* The host dir for readdir (its own fd; closedir it); NULL with errno set. */
DIR *sim_host_opendir(struct sim_host *h);
/* Open and map a whole host file MAP_SHARED read/write; checks size >= min_len.
 * *fd_out (optional) keeps the fd open (else it is closed). */
int  sim_file_map(struct sim_host *h, const char *name, size_t min_len, void **base,
                  size_t *len, int *fd_out);
/* The mapped event-channel table of `domid`, ports[0..SIM_EVT_NR_PORTS),
 * with one reference taken: the mapping stays valid until the matching
 * sim_evt_table_put (the last put unmaps it).  Holders: each handle for its
 * own domain's table, each port for its remote domain's table (taken at bind
 * or first notify, so notify itself makes no map syscalls), short lookups.
 * create: make it if missing (caller holds the host lock).  0, -ENOENT (no
 * table and !create), -EPROTO (bad layout), -ENOMEM, -errno of open/mmap. */
int  sim_evt_table(struct sim_host *h, xen_domid_t domid, bool create, struct sim_evt_port **out);
/* Drop a reference taken by sim_evt_table (ports as returned; NULL: no-op). */
void sim_evt_table_put(struct sim_host *h, struct sim_evt_port *ports);
/* Free every port of `domid` (its remote ends go back to unbound); caller
 * holds the host lock.  Used by sim_dom_destroy. */
void sim_evt_reset_dom_locked(struct sim_host *h, xen_domid_t domid);

/* sim_owner.c: owner slots (host.ctl) and reclaiming what dead processes held.
 * Claim a slot for a handle of `kind` opened by this process (evtchn:
 * handle_id names its FIFO); first reclaims every dead owner (the sweep at
 * handle open).  Host lock held.  0 and *slot (1..SIM_MAX_OWNERS-1), or
 * -ENOSPC when every slot is live. */
int  sim_owner_claim_locked(struct sim_host *h, uint32_t kind, uint32_t handle_id,
                            uint32_t *slot);
/* Give a slot back (its handle was closed).  Host lock held. */
void sim_owner_release_locked(struct sim_host *h, uint32_t slot);
/* Reclaim every live slot whose process is gone: one /proc read per live
 * slot.  Host lock held.  Returns the number of slots reclaimed. */
int  sim_reclaim_dead_locked(struct sim_host *h);
/* The same, taking the host lock; 0 when it cannot be taken. */
int  sim_reclaim_dead(struct sim_host *h);
/* Reclaim slot `slot` if its process is gone (takes the host lock).  Used by
 * a mapper that finds a grant entry busy for too long.  true if reclaimed. */
bool sim_reclaim_slot(struct sim_host *h, uint32_t slot);
/* Per-kind reclaim of a dead slot, host lock held: free the event-channel
 * ports of handle `handle_id` (sim_evtchn.c; remote ends go back to unbound,
 * its FIFO is unlinked), or drop the grant map counts recorded in the slot's
 * gown.* files and unlink them (sim_gntmap.c). */
void sim_evt_reclaim_locked(struct sim_host *h, uint32_t slot, uint32_t handle_id);
void sim_gnt_reclaim_locked(struct sim_host *h, uint32_t slot);

/* Backend side of the grant table (sim_gntmap.c), behind xen_ops_sim. */
struct sim_bgnt;
int  sim_bgnt_open(struct sim_host *h, xen_domid_t self, struct sim_bgnt **out);
void sim_bgnt_close(struct sim_bgnt *g);
int  sim_bgnt_map(struct sim_bgnt *g, xen_domid_t domid, uint32_t count, const uint32_t *refs,
                  int prot, void **addr);
int  sim_bgnt_unmap(struct sim_bgnt *g, void *addr, uint32_t count);
int  sim_bgnt_copy(struct sim_bgnt *g, uint32_t count, xengnttab_grant_copy_segment_t *segs);

#endif
