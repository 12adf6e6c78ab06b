/*
 * sim.h - the simulated Xen host: guest memory, grant tables and event
 * channels in shared memory under one directory (the "host dir"), shared by
 * the processes that play the domains.  The daemon reaches it only through
 * xen_ops_sim (the seam); the userspace frontend (tools/xen-blkbench) and
 * tests use this API to play a guest.
 *
 * Layout of a host dir (all files are shared-memory files; put the dir on
 * tmpfs, e.g. /dev/shm/...):
 *   dom<N>.mem      guest N's memory, nr_pages * 4096 bytes (frame = page index)
 *   dom<N>.gnttab   guest N's grant table (entries + per-entry map counts)
 *   dom<N>.evtchn   domain N's event-channel table (any domain, incl. backend)
 *   host.ctl        host lock (robust process-shared mutex) and id counters
 *   evq/<id>        per-handle notification FIFOs (the handle's pollable fd)
 *   gown.*          per grant handle: the map counts it holds (for its death)
 * Details of the layouts and the lock-free notify protocol: src/sim/sim_priv.h.
 *
 * Semantics follow the real hypervisor where a backend can observe them:
 *  - a grant can be mapped only by the domain it was granted to; a read-only
 *    grant cannot be mapped writable; an unknown or revoked ref fails (EINVAL);
 *  - the guest cannot end foreign access to a ref that is mapped (-EBUSY),
 *    and the map counts let a test see leaked mappings;
 *  - event channels: the guest allocates an unbound port for a remote domain,
 *    the remote binds it interdomain, either side notifies; a port that fired
 *    stays masked until unmasked; notifications while masked are delivered at
 *    unmask; a freshly bound interdomain port has one event pending (Xen's
 *    evtchn_bind_interdomain sets it), so expect an event right after bind;
 *    closing one end puts the other back to unbound (it can be rebound);
 *  - a process that dies, even by SIGKILL, releases what its handles held,
 *    as the kernel does at exit: its ports are closed (the remote end goes
 *    back to unbound) and its grant mappings dropped, so a restarted backend
 *    can bind and map again and the guest can end access (sim_priv.h).
 *
 * Errors: 0 or a negative errno, as in xen_ops.h.
 */
#ifndef XBD_SIM_H
#define XBD_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include "xen_ops.h"

struct sim_host;
struct sim_dom;
struct sim_evtchn;

/* Create (mkdir -p, idempotent) and open a host dir. */
int  sim_host_open(const char *dir, struct sim_host **out);
void sim_host_close(struct sim_host *h);
const char *sim_host_dir(const struct sim_host *h);

/* ---- guest side: a domain's memory and grant table -------------------- */
/* Create domain `domid` with nr_pages of zeroed memory and nr_grefs grant
 * entries (refs 0..7 are reserved as on Xen: the first usable ref is 8).
 * -EEXIST if a live domain of that id exists. */
int  sim_dom_create(struct sim_host *h, xen_domid_t domid, uint32_t nr_pages,
                    uint32_t nr_grefs, struct sim_dom **out);
/* Mark the domain dead, revoke every grant, unlink its files.  Mappings the
 * backend still holds stay valid memory (as a zombie domain's pages do). */
void sim_dom_destroy(struct sim_dom *d);
xen_domid_t sim_dom_id(const struct sim_dom *d);
uint32_t sim_dom_nr_pages(const struct sim_dom *d);
/* The guest's own mapping of its page `pfn` (NULL if out of range). */
void *sim_dom_page(struct sim_dom *d, uint32_t pfn);

/* gnttab_grant_foreign_access: grant page `pfn` to domain `to`.  *ref gets a
 * free grant ref.  -ENOSPC when the table is full, -EINVAL bad pfn. */
int  sim_gnt_grant(struct sim_dom *d, xen_domid_t to, uint32_t pfn, bool readonly, uint32_t *ref);
/* gnttab_end_foreign_access_ref: revoke.  -EBUSY while a live backend maps
 * it (a dead process's mappings are reclaimed first); -EINVAL not granted. */
int  sim_gnt_end(struct sim_dom *d, uint32_t ref);
/* Number of foreign mappings currently held of this domain's grants (by live
 * processes: a dead one's are reclaimed first, as for sim_gnt_end). */
uint64_t sim_gnt_mapped_count(struct sim_dom *d);
/* Mappings of one ref. */
uint32_t sim_gnt_ref_mapped(struct sim_dom *d, uint32_t ref);

/* ---- event channels (either side) -------------------------------------- */
/* An event-channel handle of domain `self` (cf. xenevtchn_open). */
int  sim_evtchn_open(struct sim_host *h, xen_domid_t self, struct sim_evtchn **out);
void sim_evtchn_close(struct sim_evtchn *e);          /* unbinds/frees every port it holds */
int  sim_evtchn_fd(struct sim_evtchn *e);              /* pollable, non-blocking */
/* EVTCHNOP_alloc_unbound: a port of `self` that `remote` may bind. */
int  sim_evtchn_alloc_unbound(struct sim_evtchn *e, xen_domid_t remote, xen_port_t *port);
/* EVTCHNOP_bind_interdomain.  -EINVAL if remote port is not unbound for us,
 * -ESRCH if domain `remote` has no event-channel table. */
int  sim_evtchn_bind_interdomain(struct sim_evtchn *e, xen_domid_t remote,
                                 xen_port_t remote_port, xen_port_t *local);
/* unbind/notify/unmask: -EINVAL port out of range, -ENOTCONN not held by
 * this handle (Linux evtchn device).  notify on an unbound port: 0 (dropped). */
int  sim_evtchn_unbind(struct sim_evtchn *e, xen_port_t local);
int  sim_evtchn_notify(struct sim_evtchn *e, xen_port_t local);
/* 0 and *port when one fired (left masked); -EAGAIN when none. */
int  sim_evtchn_pending(struct sim_evtchn *e, xen_port_t *port);
/* The part of sim_evtchn_pending after its read(2) of the fd: n bytes at buf
 * that a caller read itself.  0 and *port; -EAGAIN (stale: the port was
 * unbound since); -EIO (not one 4-byte port). */
int  sim_evtchn_pending_read(struct sim_evtchn *e, const void *buf, size_t n, xen_port_t *port);
int  sim_evtchn_unmask(struct sim_evtchn *e, xen_port_t local);
/* State of a port of domain `domid`: 0 free, 1 unbound, 2 interdomain; -ENOENT.
 * This and the counts below first reclaim what dead processes held. */
int  sim_evtchn_port_state(struct sim_host *h, xen_domid_t domid, xen_port_t port);
/* Number of ports of `domid` that are not free. */
int  sim_evtchn_ports_in_use(struct sim_host *h, xen_domid_t domid);

#endif
