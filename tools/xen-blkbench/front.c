/*
 * front.c - blkfront negotiation, as Linux does it (talk_to_blkback,
 * setup_blkring, blkfront_connect, blkfront_gather_backend_features of
 * torvalds/linux:drivers/block/xen-blkfront.c@v6.1; docs/protocol.md §1.2,
 * §1.3, §2): wait for the backend's InitWait, read its limits, grant the ring pages and allocate the event channels, publish the ring keys
 * in one transaction, go Initialised, wait for Connected, read the device
 * properties, go Connected.  And the way back: Closed on backend Closing,
 * then end every grant once the backend is Closed.
 */
#include "dev.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void show_backend_error(struct bb_dev *d)
{
    char p[300], *v;
    snprintf(p, sizeof(p), "%s/error", d->be);
    if (!bbx_read(&d->xs, XBT_NULL, p, &v)) {
        bb_err(d, "backend error (%s): %s", p, v);
        free(v);
    }
    /* Linux xenbus_dev_error: <be home>/error/<nodename>/error */
    snprintf(p, sizeof(p), "/local/domain/%u/error/backend/%s/%u/%u/error", d->o->be_domid,
             BB_BE_KIND_NAME(d->o->be_kind), d->o->domid, d->o->devid);
    if (!bbx_read(&d->xs, XBT_NULL, p, &v)) {
        bb_err(d, "backend error (%s): %s", p, v);
        free(v);
    }
}

/* Wait for the backend's state `want`; Closing, Closed or a missing node
 * instead fail (bb_wait_state's error), with the backend's error nodes shown. */
static int wait_backend(struct bb_dev *d, int want)
{
    char p[256];
    int st;
    snprintf(p, sizeof(p), "%s/state", d->be);
    int rc = bb_wait_state(d, p, 1u << want,
                           (1u << XenbusStateClosing) | (1u << XenbusStateClosed) | BBX_MISSING,
                           "backend", &st);
    if (rc)
        show_backend_error(d);
    return rc;
}

static int fe_state(struct bb_dev *d, int state)
{
    char p[200];
    snprintf(p, sizeof(p), "%s/state", d->fe);
    int rc = bbx_writef(&d->xs, XBT_NULL, p, "%d", state);
    if (rc)
        bb_err(d, "writing %s: %s", p, strerror(-rc));
    return rc;
}

static int be_u64(struct bb_dev *d, const char *key, uint64_t def, uint64_t *out)
{
    char p[200];
    snprintf(p, sizeof(p), "%s/%s", d->be, key);
    int rc = bbx_read_u64_def(&d->xs, p, def, out);
    if (rc)
        bb_err(d, "reading %s: %s", p, rc == -EINVAL ? "not a number" : strerror(-rc));
    return rc;
}

static int be_u64_required(struct bb_dev *d, const char *key, uint64_t *out)
{
    char p[200];
    snprintf(p, sizeof(p), "%s/%s", d->be, key);
    int rc = bbx_read_u64(&d->xs, p, out);
    if (rc)
        bb_err(d, "reading backend fields: %s: %s", p,
               rc == -ENOENT ? "missing" : rc == -EINVAL ? "not a number" : strerror(-rc));
    return rc;
}

/* setup_blkring: grant the ring pages (contiguous in our mapping) and
 * allocate an unbound port for the backend domain. */
static int setup_ring(struct bb_dev *d, struct bb_queue *q)
{
    q->ring_pages = 1u << d->ring_order;
    if (d->next_pfn + q->ring_pages > d->nr_pages) {
        bb_err(d, "guest memory too small for the rings");
        return -ENOMEM;
    }
    q->ring_pfn = d->next_pfn;
    d->next_pfn += q->ring_pages;
    uint8_t *base = sim_dom_page(d->dom, q->ring_pfn);
    if (!base) {
        bb_err(d, "guest page %u of the ring is out of range", q->ring_pfn);
        return -EINVAL;
    }
    for (unsigned i = 0; i < q->ring_pages; i++) {
        if ((uint8_t *)sim_dom_page(d->dom, q->ring_pfn + i) != base + (size_t)i * BB_PAGE) {
            bb_err(d, "guest pages are not contiguous in our mapping: cannot build a multi-page ring");
            return -EINVAL;
        }
    }
    memset(base, 0, (size_t)q->ring_pages * BB_PAGE);
    bbr_init(&q->ring, d->abi, base, (size_t)q->ring_pages * BB_PAGE);
    for (unsigned i = 0; i < q->ring_pages; i++) {
        int rc = sim_gnt_grant(d->dom, d->o->be_domid, q->ring_pfn + i, false, &q->ring_gref[i]);
        if (rc) {
            bb_err(d, "granting ring page: %s", strerror(-rc));
            for (unsigned j = 0; j < i; j++)
                sim_gnt_end(d->dom, q->ring_gref[j]);
            return rc;
        }
    }
    q->ring_granted = true;
    int rc = sim_evtchn_alloc_unbound(d->evt, d->o->be_domid, &q->port);
    if (rc) {
        bb_err(d, "allocating an unbound event channel for domain %u: %s", d->o->be_domid, strerror(-rc));
        return rc;
    }
    q->port_alloc = true;
    return 0;
}

/* write_per_ring_nodes */
static int write_ring_nodes(struct bb_dev *d, xs_transaction_t t, struct bb_queue *q, const char *dir)
{
    char p[256];
    int rc;
    if (q->ring_pages == 1) {
        snprintf(p, sizeof(p), "%s/ring-ref", dir);
        if ((rc = bbx_writef(&d->xs, t, p, "%u", q->ring_gref[0])))
            return rc;
    } else {
        for (unsigned i = 0; i < q->ring_pages; i++) {
            snprintf(p, sizeof(p), "%s/ring-ref%u", dir, i);
            if ((rc = bbx_writef(&d->xs, t, p, "%u", q->ring_gref[i])))
                return rc;
        }
    }
    snprintf(p, sizeof(p), "%s/event-channel", dir);
    return bbx_writef(&d->xs, t, p, "%u", q->port);
}

static int write_front_nodes(struct bb_dev *d, xs_transaction_t t)
{
    char p[256];
    int rc;
    if (d->ring_order > 0) {
        snprintf(p, sizeof(p), "%s/ring-page-order", d->fe);
        if ((rc = bbx_writef(&d->xs, t, p, "%u", d->ring_order)))
            return rc;
    }
    if (d->nq == 1) {
        if ((rc = write_ring_nodes(d, t, &d->q[0], d->fe)))
            return rc;
    } else {
        snprintf(p, sizeof(p), "%s/multi-queue-num-queues", d->fe);
        if ((rc = bbx_writef(&d->xs, t, p, "%u", d->nq)))
            return rc;
        for (unsigned i = 0; i < d->nq; i++) {
            char dir[200];
            snprintf(dir, sizeof(dir), "%s/queue-%u", d->fe, i);
            if ((rc = write_ring_nodes(d, t, &d->q[i], dir)))
                return rc;
        }
    }
    if (d->protocol) {
        snprintf(p, sizeof(p), "%s/protocol", d->fe);
        if ((rc = bbx_write(&d->xs, t, p, d->protocol)))
            return rc;
    }
    snprintf(p, sizeof(p), "%s/feature-persistent", d->fe);
    return bbx_writef(&d->xs, t, p, "%u", d->o->persistent ? 1 : 0);
}

int fe_connect(struct bb_dev *d)
{
    const struct bb_opts *o = d->o;
    int rc;

    if ((rc = wait_backend(d, XenbusStateInitWait)))
        return rc;
    /* transport limits, published before InitWait (blkif.h) */
    if ((rc = be_u64(d, "max-ring-page-order", 0, &d->be_max_ring_order)) ||
        (rc = be_u64(d, "multi-queue-max-queues", 1, &d->be_max_queues)))
        return rc;
    d->ring_order = o->ring_order < d->be_max_ring_order ? o->ring_order : (unsigned)d->be_max_ring_order;
    if (d->ring_order > BB_MAX_RING_ORDER)
        d->ring_order = BB_MAX_RING_ORDER;
    uint64_t maxq = d->be_max_queues ? d->be_max_queues : 1;
    d->nq = o->queues < maxq ? o->queues : (unsigned)maxq;

    for (unsigned i = 0; i < d->nq; i++)
        if ((rc = setup_ring(d, &d->q[i])))
            return rc;

    /* one transaction, retried on EAGAIN (talk_to_blkback "again:") */
    for (int tries = 0;; tries++) {
        xs_transaction_t t = xs_transaction_start(d->xs.h);
        if (!t) {
            bb_err(d, "starting transaction: %s", strerror(errno));
            return -EIO;
        }
        rc = write_front_nodes(d, t);
        if (rc) {
            xs_transaction_end(d->xs.h, t, true);
            bb_err(d, "writing frontend ring keys under %s: %s", d->fe, strerror(-rc));
            return rc;
        }
        errno = 0;
        if (xs_transaction_end(d->xs.h, t, false))
            break;
        if (errno != EAGAIN || tries > 16) {
            bb_err(d, "completing transaction: %s", strerror(errno ? errno : EIO));
            return -EIO;
        }
    }
    if ((rc = fe_state(d, XenbusStateInitialised)))
        return rc;

    if ((rc = wait_backend(d, XenbusStateConnected)))
        return rc;
    /* blkfront_connect: sectors, info, sector-size are required */
    if ((rc = be_u64_required(d, "sectors", &d->sectors)) ||
        (rc = be_u64_required(d, "info", &d->info)) ||
        (rc = be_u64_required(d, "sector-size", &d->sector_size)))
        return rc;
    if (d->sector_size < 512 || d->sector_size % 512 || d->sector_size > 65536) {
        bb_err(d, "backend sector-size %" PRIu64 " is not a multiple of 512", d->sector_size);
        return -EINVAL;
    }
    uint64_t v;
    if ((rc = be_u64(d, "physical-sector-size", d->sector_size, &d->phys_sector_size)))
        return rc;
    /* blkfront_gather_backend_features */
    if ((rc = be_u64(d, "feature-flush-cache", 0, &v)))
        return rc;
    d->flush = v != 0;
    if ((rc = be_u64(d, "feature-barrier", 0, &v)))
        return rc;
    d->barrier = v != 0;
    if ((rc = be_u64(d, "feature-discard", 0, &v)))
        return rc;
    d->discard = v != 0;
    if (d->discard) {
        if ((rc = be_u64(d, "discard-granularity", 0, &d->discard_gran)) ||
            (rc = be_u64(d, "discard-alignment", 0, &d->discard_align)) ||
            (rc = be_u64(d, "discard-secure", 0, &v)))
            return rc;
        d->discard_secure = v != 0;
    }
    if ((rc = be_u64(d, "feature-persistent", 0, &v)))
        return rc;
    d->be_persistent = v != 0;
    d->persistent = o->persistent && d->be_persistent;
    if ((rc = be_u64(d, "feature-max-indirect-segments", 0, &d->be_max_indirect)))
        return rc;
    uint64_t ind = o->indirect_segs < d->be_max_indirect ? o->indirect_segs : d->be_max_indirect;
    if (ind > BLKIF_MAX_INDIRECT_SEGS_PROTO)
        ind = BLKIF_MAX_INDIRECT_SEGS_PROTO;
    d->max_indirect = ind > BLKIF_MAX_SEGMENTS_PER_REQUEST ? (unsigned)ind : 0;
    d->max_segs = d->max_indirect ? d->max_indirect : BLKIF_MAX_SEGMENTS_PER_REQUEST;

    if ((rc = fe_state(d, XenbusStateConnected)))
        return rc;
    d->connected = true;
    return 0;
}

int fe_close(struct bb_dev *d)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/state", d->be);
    /* blkback_changed: Closing (or Closed) -> blkfront_closing -> Closed */
    int rc = bb_wait_state(d, p, (1u << XenbusStateClosing) | (1u << XenbusStateClosed),
                            BBX_MISSING, "backend", NULL);
    if (rc)
        return rc;
    d->connected = false;
    return fe_state(d, XenbusStateClosed);
}

static void end_grant(struct bb_dev *d, uint32_t ref, const char *what)
{
    int rc = sim_gnt_end(d->dom, ref);
    if (rc) {
        d->res.gnt_leaked++;
        if (d->res.gnt_leaked <= 5)
            bb_err(d, "ending %s grant %u after the backend closed: %s (mapped %u times)", what, ref,
                   strerror(-rc), sim_gnt_ref_mapped(d->dom, ref));
    }
}

void fe_release(struct bb_dev *d)
{
    if (!d->dom)
        return;
    for (unsigned s = 0; s < d->nslots; s++) {
        struct bb_slot *sl = &d->slots[s];
        for (unsigned i = 0; sl->pgref && i < d->slot_data_pages; i++)
            if (sl->pgref[i]) {
                end_grant(d, sl->pgref[i], "persistent data");
                sl->pgref[i] = 0;
            }
        for (unsigned i = 0; sl->indref && i < d->slot_ind_pages; i++)
            if (sl->indref[i]) {
                end_grant(d, sl->indref[i], "persistent indirect");
                sl->indref[i] = 0;
            }
        /* grants of requests that never completed (or whose end failed) */
        for (unsigned i = 0; i < sl->ngnt; i++)
            end_grant(d, sl->gnt[i], "request");
        sl->ngnt = 0;
    }
    /* grants whose end failed right after their response (already counted) */
    for (size_t i = 0; i < d->nstale; i++)
        end_grant(d, d->stale_gnt[i], "data");
    d->nstale = 0;
    for (unsigned i = 0; i < d->nq; i++) {
        struct bb_queue *q = &d->q[i];
        if (q->ring_granted)
            for (unsigned j = 0; j < q->ring_pages; j++)
                end_grant(d, q->ring_gref[j], "ring");
        q->ring_granted = false;
        if (q->port_alloc)
            sim_evtchn_unbind(d->evt, q->port);
        q->port_alloc = false;
    }
}
