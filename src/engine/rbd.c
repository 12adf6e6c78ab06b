/*
 * rbd.c - the "rbd" storage engine: a Ceph RBD image through librbd's
 * asynchronous C API (ceph/ceph:src/include/rbd/librbd.h@v16.2.15; no Ceph protocol
 * code here).  params syntax, parsed by rbd_spec_parse below:
 *
 *   rbd:<pool>[/<namespace>]/<image>[@<snapshot>][:<key>=<value>]...
 *
 * as QEMU's rbd: filename (qemu/qemu:block/rbd.c@v7.2.0 qemu_rbd_parse_filename):
 * keys id (the cephx user without "client."), conf (a ceph.conf; none: the
 * librados default search, a missing default file is not an error) and
 * keyring; every other key is a librados option given to rados_conf_set
 * (e.g. rados_osd_op_timeout=10).  A backslash makes the next character
 * literal (write \: \@ \/ \= \\ inside names and values).  A snapshot is
 * read-only.
 *
 * Connections: one rados_t per daemon and cluster, shared by the images
 * opened with the same option text (everything after the image name), and
 * reference counted (struct rbd_cluster, a process-wide list under a
 * mutex: librados is per process too).  One rbd_image_t per vbd, opened and
 * closed by the caller of open/close (the control plane), shared by all the
 * vbd's queues: a second handle on the same image would be a second
 * exclusive-lock owner and the two would pass the lock to and fro.
 *
 * Completions: librbd runs each rbd_aio_* completion callback in one of its
 * own threads.  The callback pushes the request onto ITS queue's done list
 * (mutex) and writes the queue's eventfd when the list was empty; reap
 * takes the list.  So each queue thread completes exactly its own I/Os, at
 * most one eventfd write per reap round, no thread per request.  The
 * image-wide notification (rbd_set_image_notification + rbd_poll_io_events)
 * has one eventfd per image: with several queues one thread would reap
 * another's completions, so it is not used.
 *
 *   READ/WRITE   rbd_aio_readv/rbd_aio_writev straight from/to the iovecs
 *   FLUSH        rbd_aio_flush: the RBD client cache acknowledges writes
 *                before the OSDs have them; after the flush they do
 *   DISCARD      rbd_aio_discard (granularity advertised: the object size)
 *
 * Time bounds (defaults below, set before the conf file and the params
 * options, which override them): client_mount_timeout bounds rados_connect
 * (the control plane waits that long for a cluster that is down),
 * rados_mon_op_timeout monitor requests, rados_osd_op_timeout every OSD
 * request, so an I/O to an OSD that is down is answered -ETIMEDOUT after
 * that long (0: wait for the OSD forever).
 */
#include "engine.h"
#include "util.h"
#include "engine_priv.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <rados/librados.h>
#include <rbd/librbd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* Defaults (seconds), overridden by the conf file and params options. */
static const struct { const char *key, *val; } rbd_defaults[] = {
    { "client_mount_timeout", "10" },
    { "rados_mon_op_timeout", "10" },
    { "rados_osd_op_timeout", "30" },
    /* librados' own messages would go to our stderr: the error that
     * reaches the caller is the one logged (xen-blkbackd-engines(7)) */
    { "log_to_stderr", "false" },
    { "err_to_stderr", "false" },
};

/* ---- params ------------------------------------------------------------ */

/* Copy the token at *s up to an unescaped character of `stops` (or the end)
 * into out[outlen], removing the escapes; *s is left on the stop character.
 * -EINVAL when it does not fit or ends in a lone backslash. */
static int next_tok(const char **s, const char *stops, char *out, size_t outlen)
{
    size_t n = 0;
    const char *p = *s;
    for (; *p && !strchr(stops, *p); p++) {
        if (*p == '\\' && !*++p)
            return -EINVAL;
        if (n + 1 >= outlen)
            return -EINVAL;
        out[n++] = *p;
    }
    out[n] = 0;
    *s = p;
    return 0;
}

int rbd_spec_parse(const char *spec, struct rbd_spec *out)
{
    struct rbd_spec r;
    char a[RBD_SPEC_NAME], b[RBD_SPEC_NAME];
    memset(&r, 0, sizeof(r));
    const char *s = spec;
    if (!s || next_tok(&s, "/@:", r.pool, sizeof(r.pool)) || *s != '/' || !r.pool[0])
        return -EINVAL;
    s++;
    if (next_tok(&s, "/@:", a, sizeof(a)))
        return -EINVAL;
    if (*s == '/') {            /* pool/namespace/image */
        s++;
        if (next_tok(&s, "/@:", b, sizeof(b)) || *s == '/' || !a[0])
            return -EINVAL;
        memcpy(r.ns, a, sizeof(r.ns));
        memcpy(r.image, b, sizeof(r.image));
    } else {
        memcpy(r.image, a, sizeof(r.image));
    }
    if (!r.image[0])
        return -EINVAL;
    if (*s == '@') {
        s++;
        if (next_tok(&s, ":@", r.snap, sizeof(r.snap)) || !r.snap[0])
            return -EINVAL;
    }
    if (*s && *s != ':')
        return -EINVAL;
    snprintf(r.cluster_key, sizeof(r.cluster_key), "%s", s);
    if (strlen(s) >= sizeof(r.cluster_key))
        return -EINVAL;
    while (*s == ':') {
        s++;
        if (r.nopts == RBD_SPEC_MAX_OPTS)
            return -EINVAL;
        struct rbd_spec_opt *o = &r.opts[r.nopts];
        if (next_tok(&s, "=:", o->key, sizeof(o->key)) || *s != '=' || !o->key[0])
            return -EINVAL;
        s++;
        if (next_tok(&s, ":", o->val, sizeof(o->val)))
            return -EINVAL;
        if (!strcmp(o->key, "id"))
            memcpy(r.id, o->val, sizeof(r.id));
        else if (!strcmp(o->key, "conf"))
            memcpy(r.conf, o->val, sizeof(r.conf));
        else
            r.nopts++;          /* keyring and librados options */
    }
    *out = r;
    return 0;
}

/* ---- connections ------------------------------------------------------- */

struct rbd_cluster {
    struct rbd_cluster *next;
    char key[RBD_SPEC_KEY];
    rados_t rados;
    unsigned refs;
};

static pthread_mutex_t clusters_mu = PTHREAD_MUTEX_INITIALIZER;
static struct rbd_cluster *clusters;

/* librados/librbd start threads; they inherit our signal mask, and every
 * signal is the main loop's (src/main.c). */
static void block_signals(sigset_t *old)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, old);
}

static void set_why(const struct engine_params *p, const char *fmt, const char *arg)
{
    if (p && p->why && p->why_len)
        snprintf(p->why, p->why_len, fmt, arg);
}

static int cluster_connect(const struct rbd_spec *r, const struct engine_params *p,
                           rados_t *out)
{
    rados_t c;
    int rc = rados_create(&c, r->id[0] ? r->id : NULL);
    if (rc < 0) {
        set_why(p, "rados_create for user '%s'", r->id[0] ? r->id : "admin");
        return rc;
    }
    for (size_t i = 0; i < ARRAY_SIZE(rbd_defaults); i++)
        rados_conf_set(c, rbd_defaults[i].key, rbd_defaults[i].val);
    rc = rados_conf_read_file(c, r->conf[0] ? r->conf : NULL);
    if (rc < 0 && (r->conf[0] || rc != -ENOENT)) {
        set_why(p, "reading ceph conf '%s'", r->conf[0] ? r->conf : "(default)");
        goto fail;
    }
    for (unsigned i = 0; i < r->nopts; i++) {
        rc = rados_conf_set(c, r->opts[i].key, r->opts[i].val);
        if (rc < 0) {
            set_why(p, "ceph option '%s'", r->opts[i].key);
            goto fail;
        }
    }
    rc = rados_connect(c);      /* bounded by client_mount_timeout */
    if (rc < 0) {
        /* A refused key is retried until the timeout as well: say both. */
        char t[32] = "?", msg[200];
        rados_conf_get(c, "client_mount_timeout", t, sizeof(t));
        if (rc == -ETIMEDOUT)
            snprintf(msg, sizeof(msg), "connecting as client.%.64s: no monitor answered or the "
                     "key was refused within client_mount_timeout=%.8s s",
                     r->id[0] ? r->id : "admin", t);
        else
            snprintf(msg, sizeof(msg), "connecting as client.%.64s", r->id[0] ? r->id : "admin");
        set_why(p, "%s", msg);
        goto fail;
    }
    *out = c;
    return 0;
fail:
    rados_shutdown(c);
    return rc;
}

/* The connection for r's option text: an existing one (one more ref) or a
 * new one.  0 or -errno of librados (p->why says which step). */
static int cluster_get(const struct rbd_spec *r, const struct engine_params *p,
                       struct rbd_cluster **out)
{
    pthread_mutex_lock(&clusters_mu);
    for (struct rbd_cluster *c = clusters; c; c = c->next) {
        if (!strcmp(c->key, r->cluster_key)) {
            c->refs++;
            pthread_mutex_unlock(&clusters_mu);
            *out = c;
            return 0;
        }
    }
    /* Connect under the lock: a second vbd of the same cluster waits for
     * this connection instead of making its own. */
    int rc = -ENOMEM;
    struct rbd_cluster *c = calloc(1, sizeof(*c));
    if (c)
        rc = cluster_connect(r, p, &c->rados);
    if (rc < 0) {
        free(c);
        pthread_mutex_unlock(&clusters_mu);
        return rc;
    }
    memcpy(c->key, r->cluster_key, sizeof(c->key));
    c->refs = 1;
    c->next = clusters;
    clusters = c;
    pthread_mutex_unlock(&clusters_mu);
    *out = c;
    return 0;
}

static void cluster_put(struct rbd_cluster *c)
{
    pthread_mutex_lock(&clusters_mu);
    if (--c->refs) {
        pthread_mutex_unlock(&clusters_mu);
        return;
    }
    for (struct rbd_cluster **pp = &clusters; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    pthread_mutex_unlock(&clusters_mu);
    rados_shutdown(c->rados);
    free(c);
}

unsigned rbd_cluster_count(void)
{
    unsigned n = 0;
    pthread_mutex_lock(&clusters_mu);
    for (struct rbd_cluster *c = clusters; c; c = c->next)
        n++;
    pthread_mutex_unlock(&clusters_mu);
    return n;
}

/* ---- engine ------------------------------------------------------------ */

struct rbd_engine {
    struct engine base;
    struct rbd_cluster *cluster;
    rados_ioctx_t ioctx;
    rbd_image_t image;
    struct log_dev dev;         /* whose prefix and fields its log lines carry */
};

struct rbd_queue;

/* One I/O handed to librbd. */
struct rbd_req {
    struct rbd_queue *q;
    struct engine_io *io;
};

struct rbd_queue {
    struct rbd_engine *e;
    int efd;                    /* eventfd: readable while `fin` is not empty */
    unsigned depth, busy;       /* busy: queued + in librbd + done, not reaped */
    struct engine_io **pend;    /* queued, not yet submitted */
    unsigned npend;
    struct rbd_req *reqs;       /* depth */
    struct rbd_req **free_req;  /* stack of unused reqs */
    unsigned nfree;
    struct rbd_req **scratch;   /* reap: taken from fin */

    /* shared with librbd's callback threads, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* signalled when in_lib drops to 0 */
    struct rbd_req **fin;       /* completed, result set */
    unsigned nfin;
    unsigned in_lib;            /* handed to librbd, callback not yet run */
};

static int rbd_engine_open(const struct engine_params *p, struct engine **out)
{
    struct rbd_spec *r = calloc(1, sizeof(*r));
    struct rbd_engine *e = calloc(1, sizeof(*e));
    int rc = -ENOMEM;
    sigset_t old;

    if (!r || !e)
        goto out_free;
    rc = rbd_spec_parse(p && p->path ? p->path : NULL, r);
    if (rc < 0) {
        set_why(p, "%s", "syntax: rbd:<pool>[/<namespace>]/<image>[@<snapshot>][:<key>=<value>]...");
        goto out_free;
    }
    eng_log_dev(&e->dev, p);
    e->base.ops = &engine_rbd;
    block_signals(&old);
    rc = cluster_get(r, p, &e->cluster);
    if (rc < 0)
        goto out_sig;
    rc = rados_ioctx_create(e->cluster->rados, r->pool, &e->ioctx);
    if (rc < 0) {
        set_why(p, "pool '%s'", r->pool);
        goto out_cluster;
    }
    rados_ioctx_set_namespace(e->ioctx, r->ns[0] ? r->ns : NULL);
    bool ro = p->readonly || r->snap[0];
    if (ro)
        rc = rbd_open_read_only(e->ioctx, r->image, &e->image, r->snap[0] ? r->snap : NULL);
    else
        rc = rbd_open(e->ioctx, r->image, &e->image, NULL);
    if (rc < 0) {
        char what[2 * RBD_SPEC_NAME + 2];
        snprintf(what, sizeof(what), "%s%s%s", r->image, r->snap[0] ? "@" : "", r->snap);
        set_why(p, r->snap[0] ? "image or snapshot '%.100s'" : "image '%.100s'", what);
        goto out_ioctx;
    }
    rbd_image_info_t st;
    rc = rbd_stat(e->image, &st, sizeof(st));
    if (rc < 0) {
        set_why(p, "rbd_stat of '%s'", r->image);
        goto out_image;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    e->base.size = st.size;
    e->base.logical_block_size = 512;
    e->base.physical_block_size = 4096;
    e->base.readonly = ro;
    e->base.caps.flush = true;
    e->base.caps.discard = !ro;
    e->base.caps.discard_granularity = st.obj_size <= UINT32_MAX ? (uint32_t)st.obj_size : 0;
    e->base.caps.discard_alignment = 0;
    /* librbd moves data between our buffers and its own with memcpy and
     * socket send/recv in its threads: no kernel I/O keeps our pages
     * pinned, nothing is left in flight on our memory once the process is
     * gone (engine.h). */
    e->base.caps.exit_drains_io = true;
    uint64_t feat = 0;
    if (!ro && rbd_get_features(e->image, &feat) == 0 && !(feat & RBD_FEATURE_EXCLUSIVE_LOCK))
        log_dev(LOG_WARNING, &e->dev, LOG_NO_QUEUE,
                "rbd image '%s' has no exclusive-lock feature: after a daemon crash the "
                "dead client's writes are not fenced off (xen-blkbackd-engines(7))", r->image);
    log_dev(LOG_INFO, &e->dev, LOG_NO_QUEUE, "rbd %s/%s%s%s%s: %llu bytes, %llu-byte objects%s",
            r->pool, r->ns[0] ? r->ns : "", r->ns[0] ? "/" : "", r->image,
            r->snap[0] ? " (snapshot)" : "", (unsigned long long)st.size,
            (unsigned long long)st.obj_size, ro ? ", read-only" : "");
    free(r);
    *out = &e->base;
    return 0;

out_image:
    rbd_close(e->image);
out_ioctx:
    rados_ioctx_destroy(e->ioctx);
out_cluster:
    cluster_put(e->cluster);
out_sig:
    pthread_sigmask(SIG_SETMASK, &old, NULL);
out_free:
    free(r);
    free(e);
    return rc;
}

static void rbd_engine_close(struct engine *eb)
{
    struct rbd_engine *e = (struct rbd_engine *)eb;
    if (!e)
        return;
    int rc = rbd_close(e->image);   /* flushes the client cache */
    if (rc < 0)
        log_dev(LOG_WARNING, &e->dev, LOG_NO_QUEUE, "rbd_close: %s", strerror(-rc));
    rados_ioctx_destroy(e->ioctx);
    cluster_put(e->cluster);
    free(e);
}

/* The image's size now: rbd_get_size, which reads librbd's copy of the
 * header; only after a header-update notification (e.g. `rbd resize`) does
 * it refresh the header from the OSDs first (bounded by
 * rados_osd_op_timeout).  0 or -errno of librbd. */
static int rbd_engine_get_size(struct engine *eb, uint64_t *bytes)
{
    struct rbd_engine *e = (struct rbd_engine *)eb;
    uint64_t sz;
    int rc = rbd_get_size(e->image, &sz);
    if (rc < 0)
        return rc;
    *bytes = sz;
    return 0;
}

static void queue_free(struct rbd_queue *q)
{
    free(q->pend);
    free(q->reqs);
    free(q->free_req);
    free(q->scratch);
    free(q->fin);
    free(q);
}

static int rbd_queue_open(struct engine *eb, unsigned depth, struct engine_queue **out)
{
    struct rbd_queue *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    if (!depth)
        depth = 1;
    q->e = (struct rbd_engine *)eb;
    q->depth = depth;
    q->pend = calloc(depth, sizeof(*q->pend));
    q->reqs = calloc(depth, sizeof(*q->reqs));
    q->free_req = calloc(depth, sizeof(*q->free_req));
    q->scratch = calloc(depth, sizeof(*q->scratch));
    q->fin = calloc(depth, sizeof(*q->fin));
    if (!q->pend || !q->reqs || !q->free_req || !q->scratch || !q->fin) {
        queue_free(q);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < depth; i++)
        q->free_req[i] = &q->reqs[depth - 1 - i];
    q->nfree = depth;
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->efd < 0) {
        int rc = -errno;
        queue_free(q);
        return rc;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    *out = (struct engine_queue *)q;
    return 0;
}

/* A request is done (result set): onto fin; from_lib: it was in librbd. */
static void finish(struct rbd_req *rq, bool from_lib)
{
    struct rbd_queue *q = rq->q;
    pthread_mutex_lock(&q->mu);
    bool wake = q->nfin == 0;
    q->fin[q->nfin++] = rq;             /* nfin <= busy <= depth */
    if (from_lib && --q->in_lib == 0)
        pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    if (wake)
        eng_efd_signal(q->efd);
}

/* librbd's callback, in one of its threads. */
static void rbd_cb(rbd_completion_t c, void *arg)
{
    struct rbd_req *rq = arg;
    struct engine_io *io = rq->io;
    ssize_t r = rbd_aio_get_return_value(c);
    rbd_aio_release(c);
    if (r < 0)
        io->result = r;
    else if (io->op == ENGINE_OP_READ && (uint64_t)r != io->len)
        io->result = -EIO;              /* short read (past the end) */
    else
        io->result = io->op == ENGINE_OP_READ || io->op == ENGINE_OP_WRITE ? (int64_t)io->len : 0;
    finish(rq, true);
}

static void rbd_queue_close(struct engine_queue *eq)
{
    struct rbd_queue *q = (struct rbd_queue *)eq;
    if (!q)
        return;
    /* librbd writes into the I/Os' buffers and calls back into q until the
     * last callback: wait for every one (each is bounded by
     * rados_osd_op_timeout). */
    pthread_mutex_lock(&q->mu);
    unsigned waited = 0;
    while (q->in_lib) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 5;
        if (pthread_cond_timedwait(&q->cv, &q->mu, &ts) == ETIMEDOUT && q->in_lib)
            log_dev(LOG_WARNING, &q->e->dev, LOG_NO_QUEUE,
                    "queue close: %u I/O still in librbd after %u s", q->in_lib, waited += 5);
    }
    pthread_mutex_unlock(&q->mu);
    close(q->efd);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    queue_free(q);
}

static int rbd_queue_io(struct engine_queue *eq, struct engine_io *io)
{
    struct rbd_queue *q = (struct rbd_queue *)eq;
    if (q->busy >= q->depth)
        return -EBUSY;
    q->pend[q->npend++] = io;
    q->busy++;
    return 0;
}

/* Hand one I/O to librbd: 0 or -errno (nothing started). */
static int start_io(struct rbd_engine *e, struct engine_io *io, rbd_completion_t c)
{
    switch (io->op) {
    case ENGINE_OP_READ:
        return rbd_aio_readv(e->image, io->iov, (int)io->iovcnt, io->offset, c);
    case ENGINE_OP_WRITE:
        return rbd_aio_writev(e->image, io->iov, (int)io->iovcnt, io->offset, c);
    case ENGINE_OP_FLUSH:
        return rbd_aio_flush(e->image, c);
    case ENGINE_OP_DISCARD:
        return rbd_aio_discard(e->image, io->offset, io->len, c);
    case ENGINE_OP_SECURE_DISCARD:
        return -EOPNOTSUPP;
    }
    return -EINVAL;
}

static int rbd_submit(struct engine_queue *eq)
{
    struct rbd_queue *q = (struct rbd_queue *)eq;
    unsigned n = q->npend;
    for (unsigned i = 0; i < n; i++) {
        struct engine_io *io = q->pend[i];
        struct rbd_req *rq = q->free_req[--q->nfree];   /* nfree >= depth - busy + queued */
        rq->q = q;
        rq->io = io;
        rbd_completion_t c;
        int rc = rbd_aio_create_completion(rq, rbd_cb, &c);
        if (rc == 0) {
            pthread_mutex_lock(&q->mu);
            q->in_lib++;        /* before librbd can call back */
            pthread_mutex_unlock(&q->mu);
            rc = start_io(q->e, io, c);
            if (rc == 0)
                continue;
            rbd_aio_release(c);
            pthread_mutex_lock(&q->mu);
            q->in_lib--;
            pthread_mutex_unlock(&q->mu);
        }
        io->result = rc;
        finish(rq, false);
    }
    q->npend = 0;
    return (int)n;
}

static int rbd_completion_fd(struct engine_queue *eq)
{
    return ((struct rbd_queue *)eq)->efd;
}

static int rbd_reap(struct engine_queue *eq, engine_done_fn done, void *arg)
{
    struct rbd_queue *q = (struct rbd_queue *)eq;
    unsigned k;

    eng_efd_drain(q->efd);      /* before taking fin: a later push signals again */
    pthread_mutex_lock(&q->mu);
    k = q->nfin;
    memcpy(q->scratch, q->fin, k * sizeof(*q->fin));
    q->nfin = 0;
    pthread_mutex_unlock(&q->mu);
    /* Account first: done() may queue new I/O. */
    q->busy -= k;
    for (unsigned i = 0; i < k; i++) {
        struct engine_io *io = q->scratch[i]->io;
        q->free_req[q->nfree++] = q->scratch[i];
        done(io, arg);
    }
    return (int)k;
}

const struct engine_ops engine_rbd = {
    ENGINE_OPS_REQUIRED("rbd", rbd, rbd_engine_open, rbd_engine_close),
    .get_size = rbd_engine_get_size,
};
