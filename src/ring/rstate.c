/*
 * rstate.c - the restart state file of a vbd: create, take over, recover,
 * remove.  Layout, hot-path order and the recovery rule: rstate.h.
 */
#include "rstate.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static size_t layout(const struct dp_config *cfg, const unsigned *nr_slots, uint64_t *rec_off)
{
    size_t off = (sizeof(struct rs_hdr) + 63) & ~(size_t)63;
    for (unsigned i = 0; i < cfg->nr_queues; i++) {
        rec_off[i] = off;
        off += (size_t)nr_slots[i] * sizeof(struct rs_rec);
    }
    return (off + 4095) & ~(size_t)4095;
}

/* Does the mapped file describe exactly these rings? */
static bool matches(const struct rs_hdr *h, size_t len, const struct dp_config *cfg,
                    const unsigned *nr_slots, const uint64_t *rec_off, size_t want)
{
    if (len != want || h->magic != RS_MAGIC || h->version != RS_VERSION ||
        h->hdr_bytes != sizeof(*h) || h->rec_bytes != sizeof(struct rs_rec) ||
        h->file_bytes != want || h->fe_domid != cfg->fe_domid || h->abi != (uint32_t)cfg->abi ||
        h->nr_queues != cfg->nr_queues)
        return false;
    for (unsigned i = 0; i < cfg->nr_queues; i++) {
        const struct rs_queue *q = &h->q[i];
        const struct dp_queue_cfg *qc = &cfg->queue[i];
        if (q->nr_ring_pages != qc->nr_ring_pages || q->evtchn != qc->evtchn ||
            q->nr_slots != nr_slots[i] || q->rec_off != rec_off[i] ||
            memcmp(q->ring_ref, qc->ring_ref, qc->nr_ring_pages * sizeof(uint32_t)))
            return false;
    }
    return true;
}

static void fill(struct rs_hdr *h, const struct dp_config *cfg, const unsigned *nr_slots,
                 const uint64_t *rec_off, size_t len)
{
    memset(h, 0, len);
    h->version = RS_VERSION;
    h->hdr_bytes = sizeof(*h);
    h->rec_bytes = sizeof(struct rs_rec);
    h->fe_domid = cfg->fe_domid;
    h->abi = (uint32_t)cfg->abi;
    h->nr_queues = cfg->nr_queues;
    h->file_bytes = len;
    for (unsigned i = 0; i < cfg->nr_queues; i++) {
        struct rs_queue *q = &h->q[i];
        q->nr_ring_pages = cfg->queue[i].nr_ring_pages;
        q->evtchn = cfg->queue[i].evtchn;
        q->nr_slots = nr_slots[i];
        q->rec_off = rec_off[i];
        memcpy(q->ring_ref, cfg->queue[i].ring_ref, q->nr_ring_pages * sizeof(uint32_t));
    }
    /* req_cons is set by the caller once the ring is attached */
    __atomic_store_n(&h->magic, RS_MAGIC, __ATOMIC_RELEASE);
}

int rs_open(struct rstate *rs, const char *path, const struct dp_config *cfg,
            const unsigned *nr_slots, const struct log_dev *dev)
{
    uint64_t rec_off[XBD_MAX_QUEUES];
    memset(rs, 0, sizeof(*rs));
    rs->dev = dev;
    for (unsigned i = 0; i < cfg->nr_queues; i++)
        if (nr_slots[i] == 0 || nr_slots[i] > 65536)
            return -EINVAL;
    size_t len = layout(cfg, nr_slots, rec_off);

    if (!path) {
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return -errno;
        rs->hdr = p;
        rs->len = len;
        fill(rs->hdr, cfg, nr_slots, rec_off, len);
        return 0;
    }

    rs->path = strdup(path);
    if (!rs->path)
        return -ENOMEM;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int rc = -errno;
        log_dev(LOG_ERR, dev, LOG_NO_QUEUE, "restart state %s: %s", path, strerror(-rc));
        free(rs->path);
        rs->path = NULL;
        return rc;
    }
    struct stat st;
    int rc = 0;
    bool take_over = false;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        rc = fstat(fd, &st) < 0 ? -errno : -EINVAL;
        log_dev(LOG_ERR, dev, LOG_NO_QUEUE, "restart state %s: not a regular file", path);
        goto out;
    }
    if (cfg->reattach && (size_t)st.st_size == len) {
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            rc = -errno;
            goto out;
        }
        if (matches(p, len, cfg, nr_slots, rec_off, len)) {
            take_over = true;
            rs->hdr = p;
        } else {
            munmap(p, len);
        }
    }
    if (take_over)
        LOG_DBG(LOG_CAT_RESTART, dev, LOG_NO_QUEUE, "restart state %s taken over (%u queue(s), "
                "%zu bytes)", path, cfg->nr_queues, len);
    if (cfg->reattach && !take_over)
        log_dev(LOG_WARNING, dev, LOG_NO_QUEUE, "no restart state of these rings in %s%s: "
                "resuming at the published responses; requests that were in flight when the "
                "previous daemon stopped may go unanswered or be answered twice", path,
                st.st_size ? " (stale file replaced)" : "");
    if (!take_over) {
        /* A new, empty state: truncate first so no old record survives. */
        if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)len) < 0) {
            rc = -errno;
            log_dev(LOG_ERR, dev, LOG_NO_QUEUE, "restart state %s: %s", path, strerror(-rc));
            goto out;
        }
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
        if (p == MAP_FAILED) {
            rc = -errno;
            log_dev(LOG_ERR, dev, LOG_NO_QUEUE, "restart state %s: mmap: %s", path, strerror(-rc));
            goto out;
        }
        rs->hdr = p;
        fill(rs->hdr, cfg, nr_slots, rec_off, len);
    }
    rs->len = len;
    rs->recovered = take_over;
out:
    close(fd);
    if (rc < 0) {
        free(rs->path);
        rs->path = NULL;
    }
    return rc;
}

void rs_close(struct rstate *rs)
{
    if (rs->hdr) {
        munmap(rs->hdr, rs->len);
        rs->hdr = NULL;
    }
    if (rs->path) {
        if (!rs->keep && unlink(rs->path) < 0 && errno != ENOENT)
            log_dev(LOG_WARNING, rs->dev, LOG_NO_QUEUE, "restart state %s: cannot remove: %s",
                    rs->path, strerror(errno));
        free(rs->path);
        rs->path = NULL;
    }
}

/* a - b as a signed distance of ring indexes (they wrap at 2^32) */
static inline int32_t idx_diff(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b);
}

int rs_recover(struct rstate *rs, unsigned qi, uint32_t req_prod, uint32_t rsp_prod,
               unsigned size, uint16_t *redo, unsigned *nredo, uint32_t *req_cons)
{
    struct rs_queue *q = &rs->hdr->q[qi];
    struct rs_rec *rec = rs_recs(rs, qi);
    uint32_t rc = __atomic_load_n(&q->req_cons, __ATOMIC_RELAXED);
    unsigned n = 0;

    for (unsigned i = 0; i < q->nr_slots; i++) {
        struct rs_rec *r = &rec[i];
        if (r->state == RS_FREE)
            continue;
        if (r->state == RS_ANSWERED && idx_diff(r->rsp_idx, rsp_prod) < 0)
            continue;           /* published before the crash, not yet marked free */
        if (r->state != RS_INFLIGHT && r->state != RS_ANSWERED) {
            log_dev(LOG_ERR, rs->dev, (int)qi, "restart state: slot %u in unknown state %u", i,
                    r->state);
            return -EPROTO;
        }
        if (idx_diff(r->ring_idx, rc) >= 0)
            rc = r->ring_idx + 1;   /* consumed just before the crash */
        redo[n++] = (uint16_t)i;
    }
    /* ring order: insertion sort (n <= ring size, once per restart) */
    for (unsigned i = 1; i < n; i++) {
        uint16_t v = redo[i];
        unsigned j = i;
        while (j > 0 && idx_diff(rec[redo[j - 1]].ring_idx, rec[v].ring_idx) > 0) {
            redo[j] = redo[j - 1];
            j--;
        }
        redo[j] = v;
    }
    const char *why = NULL;
    if (idx_diff(rc, rsp_prod) < 0 || (uint32_t)(rc - rsp_prod) > size)
        why = "req_cons outside the ring";
    else if (idx_diff(req_prod, rc) < 0)
        why = "req_cons ahead of req_prod";
    else if (rc - rsp_prod != n)
        why = "in-flight records do not match req_cons - rsp_prod";
    /* A request in flight may be older than rsp_prod (later ones were
     * answered first): only "consumed, and each ring index once" holds. */
    for (unsigned i = 0; !why && i < n; i++)
        if (idx_diff(rec[redo[i]].ring_idx, rc) >= 0 ||
            (i && rec[redo[i]].ring_idx == rec[redo[i - 1]].ring_idx))
            why = "a record outside the consumed range";
    if (why) {
        log_dev(LOG_ERR, rs->dev, (int)qi, "restart state not used: %s (req_prod %" PRIu32
                ", rsp_prod %" PRIu32 ", saved req_cons %" PRIu32 ", %u record(s) in flight)", why,
                req_prod, rsp_prod, __atomic_load_n(&q->req_cons, __ATOMIC_RELAXED), n);
        return -EPROTO;
    }
    for (unsigned i = 0; i < q->nr_slots; i++)
        if (rec[i].state == RS_ANSWERED)
            rec[i].state = RS_FREE;     /* published (the others are in redo) */
    for (unsigned i = 0; i < n; i++)
        rec[redo[i]].state = RS_INFLIGHT;
    q->req_cons = rc;
    *nredo = n;
    *req_cons = rc;
    return 0;
}
