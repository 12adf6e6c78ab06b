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
 *
 * Grant entries.  Each entry's flags, a sequence number and its map count
 * live in ONE 64-bit word (`state`) so that "map" (check permission, count+1)
 * and "end access" (fail with EBUSY if count > 0, else clear) are single
 * compare-and-swaps, as the hypervisor's GTF_reading/GTF_writing bits make
 * them on Xen.  The sequence number changes at every grant, so a mapper that
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
 */
#ifndef XBD_SIM_PRIV_H
#define XBD_SIM_PRIV_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include "sim.h"

#define SIM_PAGE            4096u
#define SIM_CTL_MAGIC       0x4c544358u     /* "XCTL" */
#define SIM_GNT_MAGIC       0x544e4758u     /* "XGNT" */
#define SIM_EVT_MAGIC       0x54564558u     /* "XEVT" */
#define SIM_LAYOUT_VERSION  1u

#define SIM_GNT_FIRST_REF   8u              /* refs 0..7 reserved, as on Xen */
#define SIM_GNT_MAX_GREFS   (1u << 20)
#define SIM_MAX_PAGES       (1u << 24)      /* 64 GiB of guest memory */
#define SIM_EVT_NR_PORTS    4096u           /* 2-level ABI on 64-bit; port 0 invalid */

/* ---- host.ctl -------------------------------------------------------- */
struct sim_ctl {
    uint32_t magic, version;
    uint32_t next_handle_id;        /* atomic; ids start at 1 */
    uint32_t next_generation;       /* atomic; domain incarnations */
    pthread_mutex_t lock;           /* robust, PTHREAD_PROCESS_SHARED */
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

#define SIM_GS_COUNT_MASK   0xffffffffull       /* foreign mappings (and copies in flight) */
#define SIM_GS_PERMIT       (1ull << 32)        /* GTF_permit_access */
#define SIM_GS_READONLY     (1ull << 33)        /* GTF_readonly */
#define SIM_GS_RESERVED     (1ull << 34)        /* being filled in by sim_gnt_grant */
#define SIM_GS_FLAGS        (SIM_GS_PERMIT | SIM_GS_READONLY | SIM_GS_RESERVED)
#define SIM_GS_SEQ_ONE      (1ull << 40)

struct sim_gnt_entry {
    uint64_t state;                 /* atomic: seq | flags | map count */
    uint32_t domid;                 /* domain allowed to map */
    uint32_t frame;                 /* guest page index */
};

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
    uint32_t pad;
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

/* Backend side of the grant table (sim_gntmap.c), behind xen_ops_sim. */
struct sim_bgnt;
int  sim_bgnt_open(struct sim_host *h, xen_domid_t self, struct sim_bgnt **out);
void sim_bgnt_close(struct sim_bgnt *g);
int  sim_bgnt_map(struct sim_bgnt *g, xen_domid_t domid, uint32_t count, const uint32_t *refs,
                  int prot, void **addr);
int  sim_bgnt_unmap(struct sim_bgnt *g, void *addr, uint32_t count);
int  sim_bgnt_copy(struct sim_bgnt *g, uint32_t count, xengnttab_grant_copy_segment_t *segs);

#endif
