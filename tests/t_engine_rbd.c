/* t_engine_rbd: the rbd engine on a real single-node Ceph cluster (mon + memstore osd started here) parses QEMU-style rbd: params, reads, writes, flushes (a FLUSH answered means a second client sees the data) and discards with many I/Os in flight, each queue reaping only its own completions; a snapshot is read-only and keeps its data; two images share one RADOS connection; `rbd resize` shows in engine_get_size; unknown pool/image, wrong key and an unreachable cluster fail open in bounded time; an I/O to a stopped OSD completes when it comes back, or is -ETIMEDOUT after rados_osd_op_timeout. */
#include "harness.h"
#include "util.h"
#include "engine.h"
#include "../src/engine/engine_priv.h"
#include "log.h"
#include "lib/ceph.h"
#include "lib/e2e.h"
#include "lib/engine_check.h"

#include <poll.h>
#include <unistd.h>

#define IMG_MIB 16

static struct t_ceph C;
static struct engine_params P = { .name = "t_engine_rbd" };

static int try_open(const char *params, bool readonly, struct engine **e, char *why, size_t wlen)
{
    struct engine_params p = P;
    p.readonly = readonly;
    p.why = why;
    p.why_len = wlen;
    if (why)
        why[0] = 0;
    return engine_open_params(params, &p, false, e);
}

static struct engine *open_rbd(const char *params, const struct engine_params *p)
{
    struct engine *e = NULL;
    char why[200] = "";
    struct engine_params q = *p;
    q.why = why;
    q.why_len = sizeof(why);
    int rc = engine_open_params(params, &q, false, &e);
    T_ASSERT(rc == 0, "open %s: %s (%s)", params, strerror(-rc), why);
    T_ASSERT(e->ops == &engine_rbd, "engine %s, not rbd", e->ops->name);
    return e;
}

static void parse(void)
{
    struct rbd_spec r;
    T_EQ(rbd_spec_parse("p/i", &r), 0);
    T_CHECK(!strcmp(r.pool, "p") && !strcmp(r.image, "i") && !r.ns[0] && !r.snap[0] &&
            !r.cluster_key[0] && !r.nopts, "p/i");
    T_EQ(rbd_spec_parse("p/ns/i@s:id=u:conf=/e/c.conf:keyring=/k:rados_osd_op_timeout=5", &r), 0);
    T_CHECK(!strcmp(r.pool, "p") && !strcmp(r.ns, "ns") && !strcmp(r.image, "i") &&
            !strcmp(r.snap, "s") && !strcmp(r.id, "u") && !strcmp(r.conf, "/e/c.conf"), "full");
    T_EQ(r.nopts, 2);
    T_CHECK(!strcmp(r.opts[0].key, "keyring") && !strcmp(r.opts[0].val, "/k") &&
            !strcmp(r.opts[1].key, "rados_osd_op_timeout") && !strcmp(r.opts[1].val, "5"), "opts");
    T_CHECK(!strcmp(r.cluster_key, ":id=u:conf=/e/c.conf:keyring=/k:rados_osd_op_timeout=5"),
            "key %s", r.cluster_key);
    /* escapes: \: \@ \/ \\ inside names and values */
    T_EQ(rbd_spec_parse("p\\:1/a\\@b\\/c\\\\:conf=/x\\:y", &r), 0);
    T_CHECK(!strcmp(r.pool, "p:1") && !strcmp(r.image, "a@b/c\\") && !strcmp(r.conf, "/x:y"),
            "escapes: pool '%s' image '%s' conf '%s'", r.pool, r.image, r.conf);
    const char *bad[] = { "", "p", "/i", "p/", "p/i@", "p/i:", "p/i:=v", "p/i:k", "p/a/b/c",
                          "p/i\\", "p//i", "p/i@s@t" };
    for (unsigned i = 0; i < ARRAY_SIZE(bad); i++)
        T_CHECK(rbd_spec_parse(bad[i], &r) == -EINVAL, "'%s' accepted", bad[i]);
    struct engine *e;
    T_EQ(try_open("rbd:nopool", false, &e, NULL, 0), -EINVAL);
}

/* Completions counted per queue: every io's cookie names its queue. */
struct tally { void *want; unsigned done, foreign; };
static void on_done(struct engine_io *io, void *arg)
{
    struct tally *t = arg;
    t->done++;
    t->foreign += io->cookie != t->want;
}

static unsigned wait_q(struct engine *e, struct engine_queue *q, struct tally *t, unsigned n,
                       unsigned sec)
{
    struct pollfd pfd = { .fd = e->ops->completion_fd(q), .events = POLLIN };
    uint64_t end = (xbd_now_ns() / 1000) + sec * 1000000ull;
    while (t->done < n && (xbd_now_ns() / 1000) < end)
        if (poll(&pfd, 1, 200) > 0)
            T_ASSERT(e->ops->reap(q, on_done, t) >= 0, "reap");
    return t->done;
}

static void props(struct engine *e)
{
    T_EQ(e->size, IMG_MIB * MiB);
    T_EQ(e->logical_block_size, 512);
    T_CHECK(!e->readonly && !e->is_blockdev, "rw image");
    T_CHECK(e->caps.flush && e->caps.discard && !e->caps.secure_discard, "caps");
    T_EQ(e->caps.discard_granularity, 4 * MiB);     /* rbd create default: order 22 */
    T_CHECK(e->caps.exit_drains_io, "exit_drains_io: no kernel I/O on our memory");
}

/*
 * NIO writes of 4..64 KiB (1..4 iovecs) at distinct 64 KiB slots, half on
 * each of two queues started together, then FLUSH + DISCARD of one slot +
 * reads of the rest: data read back is what was written, and each queue's
 * reap returns only its own I/Os.
 */
#define NIO 128
static void many(struct engine *e)
{
    struct engine_queue *q[2];
    T_ASSERT(e->ops->queue_open(e, NIO, &q[0]) == 0 && e->ops->queue_open(e, NIO, &q[1]) == 0,
             "queue_open");
    static struct engine_io ios[NIO];
    static struct iovec iov[NIO][4];
    static uint32_t len[NIO];
    uint8_t *wb = ec_abuf((size_t)NIO * 65536, 0), *rb = ec_abuf((size_t)NIO * 65536, 0xEE);
    ec_fill_pattern(wb, (size_t)NIO * 65536, 7);
    for (unsigned i = 0; i < NIO; i++) {
        len[i] = 4096u * (1 + (i * 7) % 16);
        unsigned nv = 1 + i % 4, per = len[i] / nv;
        for (unsigned v = 0; v < nv; v++)
            iov[i][v] = (struct iovec){ wb + i * 65536ull + v * per,
                                        v == nv - 1 ? len[i] - per * v : per };
        ios[i] = (struct engine_io){ .op = ENGINE_OP_WRITE, .offset = 8 * MiB + i * 65536ull,
                                     .len = len[i], .iov = iov[i], .iovcnt = nv,
                                     .cookie = q[i % 2], .result = INT64_MIN };
        T_EQ(e->ops->queue_io(q[i % 2], &ios[i]), 0);
    }
    struct tally t[2] = { { q[0], 0, 0 }, { q[1], 0, 0 } };
    T_EQ(e->ops->submit(q[0]), NIO / 2);
    T_EQ(e->ops->submit(q[1]), NIO / 2);
    T_EQ(wait_q(e, q[1], &t[1], NIO / 2, 20), NIO / 2);
    T_EQ(wait_q(e, q[0], &t[0], NIO / 2, 20), NIO / 2);
    T_EQ(t[0].foreign + t[1].foreign, 0);
    for (unsigned i = 0; i < NIO; i++)
        T_CHECK(ios[i].result == len[i], "write %u: %lld", i, (long long)ios[i].result);

    /* FLUSH + DISCARD of slot 0 + reads of the others, one batch on q[0] */
    struct engine_io fl = { .op = ENGINE_OP_FLUSH, .cookie = q[0] };
    struct engine_io ds = { .op = ENGINE_OP_DISCARD, .offset = 8 * MiB, .len = 65536, .cookie = q[0] };
    T_EQ(e->ops->queue_io(q[0], &fl), 0);
    T_EQ(e->ops->queue_io(q[0], &ds), 0);
    for (unsigned i = 1; i < NIO - 2; i++) {
        iov[i][0] = (struct iovec){ rb + i * 65536ull, len[i] };
        ios[i] = (struct engine_io){ .op = ENGINE_OP_READ, .offset = 8 * MiB + i * 65536ull,
                                     .len = len[i], .iov = iov[i], .iovcnt = 1, .cookie = q[0] };
        T_EQ(e->ops->queue_io(q[0], &ios[i]), 0);
    }
    t[0] = (struct tally){ q[0], 0, 0 };
    T_EQ(e->ops->submit(q[0]), NIO - 1);
    T_EQ(wait_q(e, q[0], &t[0], NIO - 1, 20), NIO - 1);
    T_EQ(t[0].foreign, 0);
    T_EQ(fl.result, 0);
    T_EQ(ds.result, 0);
    unsigned bad = 0;
    for (unsigned i = 1; i < NIO - 2; i++)
        bad += ios[i].result != len[i] || memcmp(rb + i * 65536ull, wb + i * 65536ull, len[i]);
    T_EQ(bad, 0);
    /* nothing left: q[1] has no completions pending */
    struct pollfd pfd = { .fd = e->ops->completion_fd(q[1]), .events = POLLIN };
    if (poll(&pfd, 1, 0) > 0)
        T_EQ(e->ops->reap(q[1], on_done, &t[1]), 0);
    e->ops->queue_close(q[0]);
    e->ops->queue_close(q[1]);
    free(wb);
    free(rb);
}

/* Read 4 KiB at off through a separate connection (other option text: no
 * shared cache), read-only. */
static int peek(const char *image, uint64_t off, uint8_t *buf)
{
    char params[600];
    t_ceph_params(&C, image, ":rbd_cache=false", params, sizeof(params));
    struct engine_params p = P;
    p.readonly = true;
    struct engine *r = open_rbd(params, &p);
    struct engine_queue *q;
    T_ASSERT(r->ops->queue_open(r, 1, &q) == 0, "queue_open");
    struct iovec v = { buf, 4096 };
    int64_t rc = ec_run1(r, q, ENGINE_OP_READ, off, 4096, &v, 1);
    r->ops->queue_close(q);
    r->ops->close(r);
    return rc == 4096 ? 0 : -EIO;
}

/*
 * The client cache acknowledges writes early: with rbd_cache_policy=writeback
 * (after a first flush: rbd_cache_writethrough_until_flush) a written block
 * is not on the OSDs until FLUSH; after our FLUSH completes a second client
 * reads it.  (Pacific's default policy, writearound, sends at once but
 * acknowledges before the OSDs have it.)
 */
static void flush_reaches_osds(void)
{
    char params[600];
    T_ASSERT(t_ceph_image(&C, "img3", 8, 0) == 0, "rbd create img3");
    t_ceph_params(&C, "img3", ":rbd_cache_policy=writeback:rbd_cache_max_dirty_age=60", params,
                  sizeof(params));
    struct engine *e = open_rbd(params, &P);
    struct engine_queue *q;
    T_ASSERT(e->ops->queue_open(e, 4, &q) == 0, "queue_open");
    uint8_t *w = ec_abuf(4096, 0xA1), *r = ec_abuf(4096, 0);
    struct iovec v = { w, 4096 };
    uint64_t off = 5 * MiB;
    T_EQ(ec_run1(e, q, ENGINE_OP_WRITE, off, 4096, &v, 1), 4096);
    T_EQ(ec_run1(e, q, ENGINE_OP_FLUSH, 0, 0, NULL, 0), 0);
    memset(w, 0xB2, 4096);
    T_EQ(ec_run1(e, q, ENGINE_OP_WRITE, off, 4096, &v, 1), 4096);
    T_EQ(peek("img3", off, r), 0);
    T_LOG("before FLUSH a second client reads 0x%02x (0xa1: the write sits in the cache)", r[0]);
    T_CHECK(r[0] == 0xA1, "writeback cache off? read 0x%02x before FLUSH", r[0]);
    T_EQ(ec_run1(e, q, ENGINE_OP_FLUSH, 0, 0, NULL, 0), 0);
    T_EQ(peek("img3", off, r), 0);
    T_CHECK(!memcmp(r, w, 4096), "after FLUSH a second client reads 0x%02x, not 0xb2", r[0]);
    e->ops->queue_close(q);
    e->ops->close(e);
    free(w);
    free(r);
}

/* Snapshot s1 holds what was written before it; writes after it do not show;
 * the snapshot opens read-only even when asked read-write. */
static void snapshot(struct engine *e)
{
    struct engine_queue *q;
    T_ASSERT(e->ops->queue_open(e, 4, &q) == 0, "queue_open");
    uint8_t *w = ec_abuf(4096, 0x5A), *r = ec_abuf(4096, 0);
    struct iovec v = { w, 4096 };
    T_EQ(ec_run1(e, q, ENGINE_OP_WRITE, 12 * MiB, 4096, &v, 1), 4096);
    T_EQ(ec_run1(e, q, ENGINE_OP_FLUSH, 0, 0, NULL, 0), 0);
    T_ASSERT(t_ceph_snap(&C, "img1", "s1") == 0, "snap create");
    memset(w, 0x6B, 4096);
    T_EQ(ec_run1(e, q, ENGINE_OP_WRITE, 12 * MiB, 4096, &v, 1), 4096);
    T_EQ(ec_run1(e, q, ENGINE_OP_FLUSH, 0, 0, NULL, 0), 0);
    e->ops->queue_close(q);

    char params[600];
    t_ceph_params(&C, "img1@s1", "", params, sizeof(params));
    struct engine_params p = P;
    struct engine *s = open_rbd(params, &p);        /* asked read-write */
    T_CHECK(s->readonly && !s->caps.discard, "snapshot not read-only");
    T_ASSERT(s->ops->queue_open(s, 2, &q) == 0, "queue_open");
    struct iovec rv = { r, 4096 };
    T_EQ(ec_run1(s, q, ENGINE_OP_READ, 12 * MiB, 4096, &rv, 1), 4096);
    T_CHECK(r[0] == 0x5A && r[4095] == 0x5A, "snapshot reads 0x%02x, not 0x5a", r[0]);
    T_CHECK(ec_run1(s, q, ENGINE_OP_WRITE, 12 * MiB, 4096, &v, 1) < 0, "write to a snapshot");
    s->ops->queue_close(q);
    s->ops->close(s);
    ec_check_readonly(open_rbd, params, &P, "rbd snapshot");
    free(w);
    free(r);
}

/* Two images of one cluster with the same options: one connection, closed
 * with the last image; other options: a second one. */
static void sharing(struct engine *e1)
{
    char p2[600], p3[600];
    T_EQ(rbd_cluster_count(), 1);
    T_ASSERT(t_ceph_image(&C, "img2", 8, 20) == 0, "rbd create img2");
    t_ceph_params(&C, "img2", "", p2, sizeof(p2));
    struct engine *e2 = open_rbd(p2, &P);
    T_EQ(rbd_cluster_count(), 1);
    T_EQ(e2->size, 8 * MiB);
    T_EQ(e2->caps.discard_granularity, MiB);       /* --order 20 */
    struct engine_queue *q;
    T_ASSERT(e2->ops->queue_open(e2, 2, &q) == 0, "queue_open");
    ec_check_roundtrip(e2, q, 0, 0x33, true, "img2");
    e2->ops->queue_close(q);
    t_ceph_params(&C, "img2", ":rbd_cache=false", p3, sizeof(p3));
    struct engine *e3 = open_rbd(p3, &P);
    T_EQ(rbd_cluster_count(), 2);
    e3->ops->close(e3);
    T_EQ(rbd_cluster_count(), 1);
    e2->ops->close(e2);
    T_EQ(rbd_cluster_count(), 1);                   /* e1 still holds it */
    (void)e1;
}

/* `rbd resize` while the image is open: engine_get_size follows (librbd
 * refreshes its header on the resize notification). */
static void resize(struct engine *e)
{
    char *out = NULL;
    T_ASSERT(e2e_sh(&out, "timeout 60 rbd -c %s resize --size %uM %s/img1 2>&1", C.conf,
                    IMG_MIB * 2, C.pool) == 0, "rbd resize: %s", out ? out : "");
    free(out);
    uint64_t sz = 0;
    for (int i = 0; i < 100; i++) {
        T_EQ(engine_get_size(e, &sz), 0);
        if (sz == IMG_MIB * 2 * MiB)
            break;
        usleep(50000);
    }
    T_EQ(sz, IMG_MIB * 2 * MiB);
}

/* Open failures: the errno, the detail for the log line, the time taken. */
static void open_faults(void)
{
    char params[1200], why[160], extra[500];
    struct engine *e = NULL;
    unsigned n0 = rbd_cluster_count();

    snprintf(params, sizeof(params), "rbd:nopool/img1:conf=%s", C.conf);
    int rc = try_open(params, false, &e, why, sizeof(why));
    T_LOG("unknown pool: %s: %s", strerror(-rc), why);
    T_EQ(rc, -ENOENT);
    T_CHECK(strstr(why, "pool 'nopool'") != NULL, "why: %s", why);

    t_ceph_params(&C, "noimage", "", params, sizeof(params));
    rc = try_open(params, false, &e, why, sizeof(why));
    T_LOG("unknown image: %s: %s", strerror(-rc), why);
    T_EQ(rc, -ENOENT);
    T_CHECK(strstr(why, "image") != NULL, "why: %s", why);
    T_EQ(rbd_cluster_count(), n0);      /* the connection stays with img1's engine */

    /* wrong key for client.admin */
    char kr[400];
    snprintf(kr, sizeof(kr), "%s/bad.keyring", C.dir);
    T_ASSERT(e2e_sh(NULL, "ceph-authtool --create-keyring %s --gen-key -n client.admin >/dev/null", kr) == 0);
    snprintf(extra, sizeof(extra), ":keyring=%s:client_mount_timeout=2", kr);
    t_ceph_params(&C, "img1", extra, params, sizeof(params));
    uint64_t t0 = (xbd_now_ns() / 1000);
    rc = try_open(params, false, &e, why, sizeof(why));
    T_LOG("wrong key: %s: %s (%.1f s)", strerror(-rc), why, ((xbd_now_ns() / 1000) - t0) / 1e6);
    /* librados retries a refused key until client_mount_timeout */
    T_CHECK(rc == -EACCES || rc == -EPERM || rc == -ETIMEDOUT, "wrong key: %s", strerror(-rc));
    T_CHECK(strstr(why, "key was refused") != NULL, "why: %s", why);

    /* unknown user (no key in the keyring) */
    t_ceph_params(&C, "img1", ":id=nobody:client_mount_timeout=2", params, sizeof(params));
    rc = try_open(params, false, &e, why, sizeof(why));
    T_LOG("unknown user: %s: %s", strerror(-rc), why);
    T_CHECK(rc < 0, "unknown user accepted");

    /* cluster down: no monitor at that port; bounded by client_mount_timeout */
    int port = 0;
    {
        char *out = NULL;
        e2e_sh(&out, "python3 -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); "
                     "print(s.getsockname()[1])'");
        port = out ? atoi(out) : 1;
        free(out);
    }
    snprintf(extra, sizeof(extra), ":mon_host=127.0.0.1\\:%d:client_mount_timeout=2", port);
    t_ceph_params(&C, "img1", extra, params, sizeof(params));
    t0 = (xbd_now_ns() / 1000);
    rc = try_open(params, false, &e, why, sizeof(why));
    double s = ((xbd_now_ns() / 1000) - t0) / 1e6;
    T_LOG("cluster down: %s: %s (%.1f s)", strerror(-rc), why, s);
    T_EQ(rc, -ETIMEDOUT);
    T_CHECK(s < 6, "connect to a dead cluster took %.1f s with client_mount_timeout=2", s);
    T_EQ(rbd_cluster_count(), n0);
}

/* The OSD stops with I/O in flight.  Default timeout: a write and a read
 * complete once it is back.  rados_osd_op_timeout=3: -ETIMEDOUT in ~3 s. */
static void osd_outage(void)
{
    char params[600];
    t_ceph_params(&C, "img1", ":rados_osd_op_timeout=3", params, sizeof(params));
    struct engine *et = open_rbd(params, &P);
    struct engine_queue *qt;
    T_ASSERT(et->ops->queue_open(et, 4, &qt) == 0, "queue_open");

    uint8_t *r = ec_abuf(65536, 0);
    struct iovec rv = { r, 65536 };
    T_ASSERT(t_ceph_osd_stop(&C) == 0, "osd stop");
    /* timeout case */
    struct engine_io rd = { .op = ENGINE_OP_READ, .offset = 0, .len = 65536, .iov = &rv,
                            .iovcnt = 1, .cookie = qt };
    struct tally t = { qt, 0, 0 };
    uint64_t t0 = (xbd_now_ns() / 1000);
    T_EQ(et->ops->queue_io(qt, &rd), 0);
    T_EQ(et->ops->submit(qt), 1);
    T_EQ(wait_q(et, qt, &t, 1, 20), 1);
    double s = ((xbd_now_ns() / 1000) - t0) / 1e6;
    T_LOG("read with the OSD down, rados_osd_op_timeout=3: %s after %.1f s",
          rd.result < 0 ? strerror((int)-rd.result) : "ok", s);
    T_EQ(rd.result, -ETIMEDOUT);
    T_CHECK(s >= 2.5 && s < 10, "timeout after %.1f s", s);
    T_ASSERT(t_ceph_osd_start(&C) == 0, "osd start");
    et->ops->queue_close(qt);
    et->ops->close(et);
    free(r);
}

/* The OSD stops with a write and a read in flight on the long-lived engine
 * (default rados_osd_op_timeout 30 s) and comes back within it: both
 * complete, the data is there. */
static void osd_restart(struct engine *e)
{
    struct engine_queue *q;
    T_ASSERT(e->ops->queue_open(e, 4, &q) == 0, "queue_open");
    uint8_t *w = ec_abuf(65536, 0xD4), *r = ec_abuf(65536, 0);
    struct iovec wv = { w, 65536 }, rv = { r, 65536 };
    T_ASSERT(t_ceph_osd_stop(&C) == 0, "osd stop");
    struct engine_io wr = { .op = ENGINE_OP_WRITE, .offset = 3 * MiB, .len = 65536, .iov = &wv,
                            .iovcnt = 1, .cookie = q };
    struct engine_io fl = { .op = ENGINE_OP_FLUSH, .cookie = q };
    struct tally t = { q, 0, 0 };
    T_EQ(e->ops->queue_io(q, &wr), 0);
    T_EQ(e->ops->queue_io(q, &fl), 0);
    T_EQ(e->ops->submit(q), 2);
    usleep(1500000);
    T_EQ(wait_q(e, q, &t, 2, 0), t.done);
    T_LOG("after 1.5 s with the OSD down: %u of 2 completed", t.done);
    T_CHECK(t.done < 2, "write+flush answered while the only OSD was down");
    uint64_t t0 = (xbd_now_ns() / 1000);
    T_ASSERT(t_ceph_osd_start(&C) == 0, "osd start");
    T_EQ(wait_q(e, q, &t, 2, 40), 2);
    T_LOG("write+flush completed %.1f s after the OSD restart began", ((xbd_now_ns() / 1000) - t0) / 1e6);
    T_EQ(wr.result, 65536);
    T_EQ(fl.result, 0);
    T_EQ(ec_run1(e, q, ENGINE_OP_READ, 3 * MiB, 65536, &rv, 1), 65536);
    T_CHECK(!memcmp(r, w, 65536), "data written across the OSD restart");
    e->ops->queue_close(q);
    free(w);
    free(r);
}

int main(void)
{
    log_init("t_engine_rbd", LOG_TARGET_STDERR, NULL, LOG_INFO);
    parse();
    t_ceph_need();
    t_ceph_start(&C);
    T_ASSERT(t_ceph_image(&C, "img1", IMG_MIB, 0) == 0, "rbd create img1");

    char params[600];
    t_ceph_params(&C, "img1", "", params, sizeof(params));
    struct engine *e = open_rbd(params, &P);
    props(e);
    struct engine_queue *q;
    T_ASSERT(e->ops->queue_open(e, 8, &q) == 0, "queue_open");
    ec_check_rw(e, q, "rbd", NULL, true);
    ec_check_eof_discard(e, q, "rbd", NULL);
    e->ops->queue_close(q);
    many(e);
    flush_reaches_osds();
    snapshot(e);
    sharing(e);
    resize(e);
    open_faults();
    osd_restart(e);
    osd_outage();
    e->ops->close(e);
    T_EQ(rbd_cluster_count(), 0);
    return t_done();
}
