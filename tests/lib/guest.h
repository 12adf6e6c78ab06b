/*
 * guest.h - a guest played in-process on the simulated Xen host, for tests
 * that drive the data plane (dp_*) directly: the domain, its rings (either
 * ABI, any order, up to XBD_MAX_QUEUES queues), requests encoded in the
 * frontend's layout, responses collected, grants made and ended.  Data pages
 * are 4 KiB guest frames; sectors are 512 bytes.  Helpers fail the test
 * (T_ASSERT/T_CHECK) on setup errors.
 */
#ifndef XBD_TEST_GUEST_H
#define XBD_TEST_GUEST_H

#include <stdbool.h>
#include <stdint.h>
#include "dataplane.h"
#include "engine.h"
#include "sim.h"

#define GUEST_PG 4096
#define GUEST_MAX_PAGES_PER_REQ 1100   /* 1024 data + 8 indirect, with room */

struct gq {
    xen_port_t port;                /* guest's port */
    unsigned npages;
    uint32_t ring_ref[XBD_MAX_RING_PAGES];
    void *sring;
    blkif_x86_64_front_ring_t fr;   /* index view; entries addressed by esz */
    unsigned notifies;              /* notifications received */
};

struct guest {
    struct sim_host *sh;
    struct sim_dom *dom;
    struct sim_evtchn *ev;
    xen_domid_t domid;
    enum blkif_abi abi;
    size_t esz;
    unsigned nq;
    struct gq q[XBD_MAX_QUEUES];
    uint32_t nr_pages;
    uint32_t next_pfn;
    uint32_t data_pfn0;             /* first frame after the rings (guest_page recycles here) */
};

struct treq {
    uint8_t op, indirect_op, flag;
    unsigned nr_segs;               /* raw value written (direct: low 8 bits) */
    uint64_t id, sector, nr_sectors;
    struct blkif_request_segment seg[BLKIF_MAX_SEGMENTS_PER_REQUEST];
    uint32_t indirect_grefs[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST];
    /* guest-side bookkeeping: refs to end after the response, data pages */
    uint32_t refs[GUEST_MAX_PAGES_PER_REQ];
    unsigned nrefs;
    uint32_t pfn[GUEST_MAX_PAGES_PER_REQ];
    unsigned npfn;
};

struct trsp { uint64_t id; uint8_t op; int16_t status; };

/* The host side of a data-plane test: the simulated host's directory
 * <t_tmpdir(1)>/host (malloc'd into *hostdir: free it), the image path
 * <t_tmpdir(0)>/img.raw into imgpath (len bytes), and the backend's view of
 * that host opened with ops->host_open into *xh (the test fails if it
 * cannot). */
void guest_test_host(const struct xen_ops *ops, char **hostdir, char *imgpath, size_t len,
                     struct xen_host **xh);

/* Create domain `domid` with nr_pages of memory (0: 4096) on the host dir,
 * nq rings of npages pages each (frames from 0), unbound ports for domain 0. */
void guest_init(struct guest *g, const char *hostdir, xen_domid_t domid, enum blkif_abi abi,
                unsigned nq, unsigned npages, uint32_t nr_pages);
void guest_fini(struct guest *g);

/* A data frame: the next one, recycling from data_pfn0 at the end. */
uint32_t guest_page(struct guest *g);

/* Encode r in the frontend's layout at req_prod_pvt of queue qi (not pushed). */
void guest_put_req(struct guest *g, unsigned qi, const struct treq *r);
/* RING_PUSH_REQUESTS_AND_CHECK_NOTIFY + notify. */
void guest_push(struct guest *g, unsigned qi);
/* Collect n responses of queue qi in arrival order; false on timeout. */
bool guest_wait_rsps(struct guest *g, unsigned qi, struct trsp *out, unsigned n, unsigned timeout_ms);

/* Grant fresh data pages (guest_page) for n segments first..last. */
void guest_add_pages(struct guest *g, struct treq *r, unsigned n, bool readonly,
                     struct blkif_request_segment *segs, uint8_t first, uint8_t last);
/* Deterministic pattern from seed. */
void guest_fill(void *p, size_t len, uint64_t seed);
/* *r cleared, with op (BLKIF_OP_INDIRECT: indirect_op is the real one, else
 * 0), id, sector and nr_segs set: no segments, pages or grants yet. */
void guest_req_init(struct treq *r, uint8_t op, uint8_t indirect_op, uint64_t id, uint64_t sector,
                    unsigned nr_segs);
/* Direct READ/WRITE of n full pages at sector (WRITE pages filled, granted ro). */
void guest_rw_req(struct guest *g, struct treq *r, uint8_t op, uint64_t id, uint64_t sector,
                  unsigned n, uint64_t seed);
/* INDIRECT of n full pages: descriptors in ceil(n/512) read-only pages. */
void guest_ind_req(struct guest *g, struct treq *r, uint8_t iop, uint64_t id, uint64_t sector,
                   unsigned n, uint64_t seed);
/* End access of every ref of r: must succeed once answered (nothing mapped). */
void guest_end_grants(struct guest *g, struct treq *r);
/* Send one request, wait, check id/op/status == want, end its grants. */
int16_t guest_do_req(struct guest *g, unsigned qi, struct treq *r, int16_t want, const char *what);

/* A dp_config for this guest: its rings and ports, engine e, 512-byte
 * sectors, flush, 256 indirect segments, GRANT_MODE_MAP. */
void guest_dp_config(struct dp_config *c, const struct guest *g, struct engine *e);
/* After dp_stop: no grant of the guest mapped, every port back to unbound. */
void guest_check_released(struct guest *g, const char *what);

#endif
