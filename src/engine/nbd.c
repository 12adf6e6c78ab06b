/*
 * nbd.c - the "nbd" storage engine: an NBD export served by another process
 * (nbdkit, qemu-storage-daemon, qemu-nbd, ...), reached with libnbd's
 * asynchronous API (libguestfs/libnbd: lib/libnbd.h, docs/libnbd.pod
 * "ISSUING ASYNCHRONOUS COMMANDS").  No NBD protocol code of our own.
 *
 * params (engine.h, xen-blkbackd-engines(7) NBD):
 *   nbd://host[:port]/export  nbd+unix:///export?socket=/path  (and nbds...)
 *   nbd:<URI>                 the same, prefixed explicitly
 * with two options of ours in the URI's query, removed before the URI goes
 * to nbd_aio_connect_uri:
 *   timeout=<seconds>   1..3600, default 30: the bound on a connect and on
 *                       the reply to any command (see FAULTS)
 *   reconnect=<ms>|off  default 1000: the delay after a failed reconnect
 *                       attempt, doubled per failure up to 30 s
 *
 * I/O: READ/WRITE -> nbd_aio_pread/pwrite, FLUSH -> nbd_aio_flush (OKAY only
 * once the server answered it; completed at once when the server offers no
 * flush: nothing we could ask for), DISCARD -> nbd_aio_trim (cap only with
 * can_trim).  Requests above the server's maximum block size (or 32 MiB)
 * are split; an iovec list that is not one contiguous buffer goes through a
 * per-request bounce buffer (libnbd takes one buffer per command).  The
 * server's minimum block size becomes the logical block size, its preferred
 * one the physical block size and the discard granularity.
 *
 * Connections: with can_multi_conn (the server promises that a FLUSH on
 * one connection covers writes completed on all of them,
 * NetworkBlockDevice/nbd:doc/proto.md@014ba1aa6c0feed233b3f218b9b8451276b84ba5
 * "NBD_FLAG_CAN_MULTI_CONN") every engine queue gets its own connection;
 * without it all queues share ONE connection, so that a FLUSH covers every
 * write.  A connection (struct conn) has one mutex held around every libnbd
 * call on its handle, so completion callbacks (which libnbd runs inside
 * those calls, in whichever thread made them) run under it too; the
 * bookkeeping of the requests of every queue on that connection (parts in
 * flight, done lists) is under the same mutex.  Uncontended with
 * multi-conn.
 *
 * Poll loop: the completion fd of a queue is an epoll fd holding the
 * queue's eventfd (requests completed), a timerfd (timeouts, connect
 * deadline) and the connection's own epoll fd, which holds libnbd's socket
 * (nbd_aio_get_fd) with EPOLLIN/EPOLLOUT following nbd_aio_get_direction,
 * updated after each libnbd call (the socket changes on reconnect; the fds
 * the data plane polls do not).  reap() polls the socket (0 timeout) under
 * the mutex and calls nbd_aio_notify_read/write only when it is really
 * ready: several queue threads may share it, and a spurious notify_read
 * leaves libnbd waiting in REPLY.START (generator/states-reply.c).
 *
 * FAULTS: a server that closes the connection or dies (EOF, ECONNRESET):
 * libnbd fails every command in flight (ENOTCONN, generator/states.c
 * nbd_internal_abort_commands) as soon as the socket says so - in-flight
 * requests are answered ERROR at once.  A server that stops answering:
 * the oldest command older than `timeout` closes the connection and fails
 * everything on it (so the bound is timeout + one timer tick of timeout/4).
 * Reconnect: the first request after the loss starts an asynchronous
 * reconnect, requests wait for it (bounded by `timeout`); if it fails they
 * are answered ERROR and requests are answered ERROR at once until
 * `reconnect` ms have passed (doubling per failure, at most 30 s), then the
 * next request tries again.  A server that comes back with a different
 * size, or read-only under a read-write device, is treated as a failed
 * attempt.
 *
 * exit_drains_io (engine.h): true.  libnbd moves the data with ordinary
 * send(2)/recv(2) from and to our buffers in the calling thread; nothing is
 * left pinned on our memory in the kernel after any syscall returns, so
 * when the process dies no I/O can still target guest pages mapped with
 * gntdev.  (What dies with the process is the socket: the server sees EOF
 * and may still execute writes it already received - see the man page.)
 */
#include "engine.h"
#include "util.h"
#include "engine_priv.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <libnbd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define NBD_MAX_IO      (32u << 20)     /* bytes per READ/WRITE command at most */
#define NBD_MAX_TRIM    (1u << 30)      /* bytes per TRIM command (32-bit length) */
#define NBD_BACKOFF_MAX_MS 30000u

struct nbd_queue;

enum conn_state { C_UP, C_CONNECTING, C_DOWN };

struct conn {
    pthread_mutex_t mu;
    struct nbd_engine *e;
    struct nbd_handle *h;       /* NULL while down */
    enum conn_state state;
    int epfd;                   /* holds sock */
    int sock;                   /* registered in epfd, -1 */
    uint32_t sock_ev;           /* its registered events */
    uint64_t deadline_ns;       /* CONNECTING: give up then */
    uint64_t retry_ns;          /* DOWN: no attempt before */
    uint32_t backoff_ms;        /* the next failed attempt's delay */
    bool closing;               /* inside nbd_close: ignore callbacks */
    bool lost_logged;           /* one warning per outage */
    unsigned aborted;           /* requests libnbd failed with ENOTCONN (connection lost) */
    struct nbd_queue *queues;   /* attached queues (linked by next) */
};

struct nbd_engine {
    struct engine base;
    struct log_dev dev;         /* whose prefix and fields its log lines carry */
    char *uri;                  /* without our options */
    uint64_t timeout_ns;
    uint32_t reconnect_ms;      /* 0: never reconnect */
    uint32_t max_io;            /* bytes per READ/WRITE command */
    bool multi_conn;
    struct conn *conn0;         /* the connection made at open */
    bool conn0_taken;           /* multi-conn: a queue owns it */
};

struct nreq {
    struct engine_io *io;
    struct nbd_queue *q;
    unsigned parts;             /* NBD commands in flight (+1 while issuing) */
    int err;                    /* first error, positive errno */
    uint64_t t_ns;              /* issued at */
    uint8_t *bounce;            /* non-contiguous iovecs: one buffer */
    size_t bounce_cap;
    bool bounced;               /* this request uses bounce */
    bool waiting;               /* held for a reconnect */
};

struct nbd_queue {
    struct nbd_engine *e;
    struct conn *c;
    struct nbd_queue *next;     /* on c->queues */
    unsigned depth, busy;       /* busy: queued + in flight + done, not reaped */
    struct nreq *reqs;
    struct nreq **free_r;
    unsigned nfree;
    struct nreq **pend;         /* queued, not submitted (queue thread only) */
    unsigned npend;
    int efd, tfd, epfd;
    bool timer_on;
    /* under c->mu */
    struct nreq **done;         /* completed, result in err */
    unsigned ndone;
    unsigned outstanding;       /* issued or waiting, not done */
    bool signalled;             /* efd written since the last drain */
    bool reaping;               /* our own reap is collecting: no need to signal */
    struct nreq **scratch;      /* reap: taken from done */
    struct engine_io **sio;     /* reap: their I/Os, reported after the slots are free */
};

static const struct engine_ops *nbd_ops(void);

static void set_why(const struct engine_params *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_why(const struct engine_params *p, const char *fmt, ...)
{
    if (!p || !p->why || !p->why_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->why, p->why_len, fmt, ap);
    va_end(ap);
}

/* libnbd's last error message in this thread, never NULL. */
static const char *nerr(void)
{
    const char *s = nbd_get_error();
    return s && *s ? s : "unknown libnbd error";
}

/* libnbd's error as -errno (EIO when it names none). */
static int nbd_err(void)
{
    int e = nbd_get_errno();
    return e > 0 ? -e : -EIO;
}

/* ---- options --------------------------------------------------------------------- */

/* Split "URI?a=b&timeout=5&reconnect=off" into the URI for libnbd (our keys
 * removed) and our options.  0 or -EINVAL (bad value), -ENOMEM. */
static int parse_uri(const char *spec, struct nbd_engine *n, const struct engine_params *p)
{
    n->timeout_ns = 30ull * 1000000000ull;
    n->reconnect_ms = 1000;
    const char *q = strchr(spec, '?');
    size_t base = q ? (size_t)(q - spec) : strlen(spec);
    char *out = malloc(strlen(spec) + 1);
    if (!out)
        return -ENOMEM;
    memcpy(out, spec, base);
    size_t o = base;
    char sep = '?';
    for (const char *s = q ? q + 1 : NULL; s && *s;) {
        const char *amp = strchr(s, '&');
        size_t len = amp ? (size_t)(amp - s) : strlen(s);
        uint64_t v;
        if (len > 8 && !strncmp(s, "timeout=", 8)) {
            if (eng_parse_size(s + 8, s + len, &v) < 0 || v < 1 || v > 3600) {
                set_why(p, "bad timeout= (seconds, 1..3600)");
                free(out);
                return -EINVAL;
            }
            n->timeout_ns = v * 1000000000ull;
        } else if (len > 10 && !strncmp(s, "reconnect=", 10)) {
            if (len == 13 && !strncmp(s + 10, "off", 3))
                n->reconnect_ms = 0;
            else if (eng_parse_size(s + 10, s + len, &v) < 0 || v < 1 || v > NBD_BACKOFF_MAX_MS) {
                set_why(p, "bad reconnect= (ms, 1..%u, or off)", NBD_BACKOFF_MAX_MS);
                free(out);
                return -EINVAL;
            } else {
                n->reconnect_ms = (uint32_t)v;
            }
        } else if (len) {
            out[o++] = sep;
            memcpy(out + o, s, len);
            o += len;
            sep = '&';
        }
        s = amp ? amp + 1 : NULL;
    }
    out[o] = 0;
    n->uri = out;
    return 0;
}

/* ---- connections ----------------------------------------------------------------- */

/* Register libnbd's socket in c->epfd with the events its direction asks
 * for (the socket may have changed: a reconnect, the next address). */
static void conn_update_dir(struct conn *c)
{
    int fd = c->h ? nbd_aio_get_fd(c->h) : -1;
    unsigned dir = fd >= 0 ? nbd_aio_get_direction(c->h) : 0;
    uint32_t ev = ((dir & LIBNBD_AIO_DIRECTION_READ) ? EPOLLIN : 0) |
                  ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? EPOLLOUT : 0);
    if (fd != c->sock) {
        if (c->sock >= 0)
            epoll_ctl(c->epfd, EPOLL_CTL_DEL, c->sock, NULL);   /* ENOENT if closed: fine */
        c->sock = -1;
        if (fd < 0)
            return;
        struct epoll_event e = { .events = ev, .data.fd = fd };
        if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, fd, &e) < 0 && errno == EEXIST)
            epoll_ctl(c->epfd, EPOLL_CTL_MOD, fd, &e);
        c->sock = fd;
        c->sock_ev = ev;
        return;
    }
    if (fd >= 0 && ev != c->sock_ev) {
        struct epoll_event e = { .events = ev, .data.fd = fd };
        epoll_ctl(c->epfd, EPOLL_CTL_MOD, fd, &e);
        c->sock_ev = ev;
    }
}

/* A new handle for n->uri, asynchronous connect started.  0 or -errno
 * (*why filled). */
static int handle_start(struct nbd_engine *n, struct nbd_handle **out, char *why, size_t wlen)
{
    struct nbd_handle *h = nbd_create();
    if (!h) {
        snprintf(why, wlen, "nbd_create: %s", nerr());
        return nbd_err();
    }
    if (!nbd_supports_uri(h)) {
        snprintf(why, wlen, "libnbd built without URI support");
        nbd_close(h);
        return -EOPNOTSUPP;
    }
    nbd_set_request_block_size(h, true);    /* nbd_get_block_size needs NBD_INFO_BLOCK_SIZE */
    if (nbd_aio_connect_uri(h, n->uri) < 0) {
        snprintf(why, wlen, "%s", nerr());
        int rc = nbd_err();
        nbd_close(h);
        return rc;
    }
    *out = h;
    return 0;
}

/* Drive the socket of c once: notify libnbd of what poll(2) reports ready.
 * Under c->mu. */
static void conn_notify(struct conn *c)
{
    if (!c->h || c->sock < 0)
        return;
    unsigned dir = nbd_aio_get_direction(c->h);
    struct pollfd pfd = { .fd = c->sock, .events = (short)(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                                                           ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0)) };
    if (!pfd.events || poll(&pfd, 1, 0) <= 0)
        return;
    if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) && (dir & LIBNBD_AIO_DIRECTION_READ))
        nbd_aio_notify_read(c->h);
    else if ((pfd.revents & (POLLOUT | POLLHUP | POLLERR)) && (dir & LIBNBD_AIO_DIRECTION_WRITE))
        nbd_aio_notify_write(c->h);
}

static bool handle_ready(struct nbd_handle *h)
{
    return nbd_aio_is_ready(h) > 0 || nbd_aio_is_processing(h) > 0;
}

static bool handle_failed(struct nbd_handle *h)
{
    return nbd_aio_is_dead(h) > 0 || nbd_aio_is_closed(h) > 0;
}

/* A connected handle fits the engine opened earlier.  0 or -errno (why). */
static int handle_check(struct nbd_engine *n, struct nbd_handle *h, char *why, size_t wlen)
{
    int64_t size = nbd_get_size(h);
    if (size < 0) {
        snprintf(why, wlen, "nbd_get_size: %s", nerr());
        return nbd_err();
    }
    if ((uint64_t)size != n->base.size) {
        snprintf(why, wlen, "export size changed from %" PRIu64 " to %" PRId64 " bytes",
                 n->base.size, size);
        return -EIO;
    }
    if (!n->base.readonly && nbd_is_read_only(h) > 0) {
        snprintf(why, wlen, "export became read-only");
        return -EROFS;
    }
    return 0;
}

/* Synchronous connect (open, extra multi-conn queues): drive the handle until
 * it is ready, failed or `timeout` passed.  0 and *out, or -errno (why). */
static int handle_connect_sync(struct nbd_engine *n, struct nbd_handle **out, char *why, size_t wlen)
{
    struct nbd_handle *h;
    int rc = handle_start(n, &h, why, wlen);
    if (rc < 0)
        return rc;
    uint64_t end = xbd_now_ns() + n->timeout_ns;
    while (!handle_ready(h)) {
        if (handle_failed(h)) {
            snprintf(why, wlen, "%s", nerr());
            rc = nbd_err();
            goto fail;
        }
        uint64_t now = xbd_now_ns();
        if (now >= end) {
            snprintf(why, wlen, "no NBD handshake within %u s", (unsigned)(n->timeout_ns / 1000000000ull));
            rc = -ETIMEDOUT;
            goto fail;
        }
        unsigned dir = nbd_aio_get_direction(h);
        struct pollfd pfd = { .fd = nbd_aio_get_fd(h),
                              .events = (short)(((dir & LIBNBD_AIO_DIRECTION_READ) ? POLLIN : 0) |
                                                ((dir & LIBNBD_AIO_DIRECTION_WRITE) ? POLLOUT : 0)) };
        if (pfd.fd < 0) {
            snprintf(why, wlen, "%s", nerr());
            rc = nbd_err();
            goto fail;
        }
        int ms = (int)((end - now) / 1000000) + 1;
        if (poll(&pfd, 1, ms > 100 ? 100 : ms) <= 0)
            continue;
        int r = 0;
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR) && (dir & LIBNBD_AIO_DIRECTION_READ))
            r = nbd_aio_notify_read(h);
        else if (pfd.revents & (POLLOUT | POLLHUP | POLLERR) && (dir & LIBNBD_AIO_DIRECTION_WRITE))
            r = nbd_aio_notify_write(h);
        if (r < 0 && !handle_failed(h)) {
            snprintf(why, wlen, "%s", nerr());
            rc = nbd_err();
            goto fail;
        }
    }
    *out = h;
    return 0;
fail:
    nbd_close(h);
    return rc;
}

static struct conn *conn_new(struct nbd_engine *n, struct nbd_handle *h)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (c->epfd < 0) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->mu, NULL);
    c->e = n;
    c->h = h;
    c->sock = -1;
    c->state = C_UP;
    c->backoff_ms = n->reconnect_ms;
    conn_update_dir(c);
    return c;
}

static void conn_free(struct conn *c)
{
    if (!c)
        return;
    if (c->h) {
        c->closing = true;
        nbd_close(c->h);
    }
    close(c->epfd);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

/* ---- requests -------------------------------------------------------------------- */

static void q_signal(struct nbd_queue *q)
{
    uint64_t one = 1;
    if (write(q->efd, &one, sizeof(one)) < 0) {
        /* saturated: readable anyway */
    }
}

/* r is complete (r->err set or 0): onto its queue's done list.  Under mu. */
static void req_finish(struct nreq *r)
{
    struct nbd_queue *q = r->q;
    r->waiting = false;
    q->done[q->ndone++] = r;            /* ndone <= outstanding <= depth */
    q->outstanding--;
    if (!q->reaping && !q->signalled) {
        q->signalled = true;
        q_signal(q);
    }
}

/* libnbd completion callback (docs/libnbd.pod "Completion callbacks"): runs
 * inside a libnbd call made under c->mu.  Returns 1: retire the command. */
static int cmd_done(void *ud, int *error)
{
    struct nreq *r = ud;
    if (r->q->c->closing)
        return 1;                       /* nbd_close from conn_fail: failed there */
    if (*error && !r->err)
        r->err = *error;
    if (--r->parts == 0) {
        if (r->err == ENOTCONN)
            r->q->c->aborted++;
        req_finish(r);
    }
    return 1;
}

/* The buffer of a READ/WRITE: its iovec when contiguous, else the bounce
 * buffer (WRITE data gathered).  NULL: -ENOMEM. */
static uint8_t *req_buffer(struct nreq *r)
{
    const struct engine_io *io = r->io;
    uint8_t *base = io->iovcnt ? io->iov[0].iov_base : NULL;
    size_t off = 0;
    bool contig = true;
    for (unsigned i = 0; i < io->iovcnt && contig; i++) {
        contig = (uint8_t *)io->iov[i].iov_base == base + off;
        off += io->iov[i].iov_len;
    }
    r->bounced = !contig;
    if (contig)
        return base;
    if (r->bounce_cap < io->len) {
        void *b = realloc(r->bounce, io->len);
        if (!b)
            return NULL;
        r->bounce = b;
        r->bounce_cap = io->len;
    }
    if (io->op == ENGINE_OP_WRITE)
        for (unsigned i = 0, o = 0; i < io->iovcnt; o += io->iov[i].iov_len, i++)
            memcpy(r->bounce + o, io->iov[i].iov_base, io->iov[i].iov_len);
    return r->bounce;
}

/* Issue r's NBD command(s) on the connected handle.  Under mu; r counts in
 * q->outstanding.  Completion, possibly at once, through req_finish. */
static void req_issue(struct conn *c, struct nreq *r)
{
    struct nbd_engine *n = c->e;
    struct engine_io *io = r->io;
    nbd_completion_callback cb = { .callback = cmd_done, .user_data = r };
    uint8_t *buf = NULL;
    uint64_t chunk = 0;

    r->err = 0;
    r->parts = 1;                       /* held until every command is issued */
    r->t_ns = xbd_now_ns();
    switch (io->op) {
    case ENGINE_OP_READ:
    case ENGINE_OP_WRITE:
        buf = req_buffer(r);
        if (!buf) {
            r->err = ENOMEM;
            break;
        }
        chunk = n->max_io;
        break;
    case ENGINE_OP_DISCARD:
        chunk = NBD_MAX_TRIM;
        break;
    case ENGINE_OP_FLUSH:
        if (!n->base.caps.flush)
            break;                      /* no volatile cache the server lets us flush */
        r->parts++;
        if (nbd_aio_flush(c->h, cb, 0) < 0) {
            r->parts--;
            r->err = -nbd_err();
        }
        break;
    default:
        r->err = EOPNOTSUPP;
        break;
    }
    for (uint64_t done = 0; chunk && done < io->len && !r->err;) {
        uint64_t len = io->len - done < chunk ? io->len - done : chunk;
        int64_t ck;
        r->parts++;
        if (io->op == ENGINE_OP_READ)
            ck = nbd_aio_pread(c->h, buf + done, len, io->offset + done, cb, 0);
        else if (io->op == ENGINE_OP_WRITE)
            ck = nbd_aio_pwrite(c->h, buf + done, len, io->offset + done, cb, 0);
        else
            ck = nbd_aio_trim(c->h, len, io->offset + done, cb, 0);
        if (ck < 0) {                   /* not issued: the callback will not run */
            r->parts--;
            r->err = -nbd_err();
        }
        done += len;
    }
    if (--r->parts == 0)
        req_finish(r);
}

/* ---- connection loss and reconnect ------------------------------------------------ */

static void conn_issue_waiting(struct conn *c)
{
    for (struct nbd_queue *q = c->queues; q; q = q->next)
        for (unsigned i = 0; i < q->depth; i++)
            if (q->reqs[i].waiting) {
                q->reqs[i].waiting = false;
                req_issue(c, &q->reqs[i]);
            }
}

/* Close the handle (if any) and fail every request on c: in flight (parts)
 * and waiting.  Under mu.  `why` for the log line. */
static void conn_fail(struct conn *c, const char *why, bool was_up)
{
    unsigned failed = c->aborted;
    c->aborted = 0;
    if (c->h) {
        c->closing = true;
        nbd_close(c->h);                /* frees the commands, no callbacks */
        c->closing = false;
        c->h = NULL;
    }
    conn_update_dir(c);
    for (struct nbd_queue *q = c->queues; q; q = q->next)
        for (unsigned i = 0; i < q->depth; i++) {
            struct nreq *r = &q->reqs[i];
            if (r->parts || r->waiting) {
                r->parts = 0;
                if (!r->err)
                    r->err = EIO;
                req_finish(r);
                failed++;
            }
        }
    struct nbd_engine *n = c->e;
    uint64_t now = xbd_now_ns();
    c->state = C_DOWN;
    if (was_up) {
        c->backoff_ms = n->reconnect_ms;
        c->retry_ns = now;              /* the next request tries at once */
    } else {
        c->retry_ns = now + (uint64_t)c->backoff_ms * 1000000ull;
        c->backoff_ms = c->backoff_ms * 2 > NBD_BACKOFF_MAX_MS ? NBD_BACKOFF_MAX_MS : c->backoff_ms * 2;
    }
    if (!c->lost_logged) {
        c->lost_logged = true;
        if (n->reconnect_ms)
            log_dev(LOG_WARNING, &n->dev, LOG_NO_QUEUE,
                    "NBD connection to %s lost: %s; %u request(s) answered with errors; "
                    "reconnecting at the next request (then every %u ms or more while it fails)",
                    n->uri, why, failed, n->reconnect_ms);
        else
            log_dev(LOG_WARNING, &n->dev, LOG_NO_QUEUE,
                    "NBD connection to %s lost: %s; %u request(s) answered with errors; "
                    "reconnect=off: every further request fails", n->uri, why, failed);
    } else {
        LOG_DBG(LOG_CAT_ENGINE, &n->dev, LOG_NO_QUEUE, "NBD %s: %s; %u request(s) failed",
                was_up ? "connection" : "reconnect", why, failed);
    }
}

/* DOWN and allowed to: start an asynchronous reconnect.  Under mu. */
static void conn_try_reconnect(struct conn *c)
{
    struct nbd_engine *n = c->e;
    char why[256];
    struct nbd_handle *h;
    int rc = handle_start(n, &h, why, sizeof(why));
    if (rc < 0) {
        conn_fail(c, why, false);
        return;
    }
    c->h = h;
    c->state = C_CONNECTING;
    c->deadline_ns = xbd_now_ns() + n->timeout_ns;
    conn_update_dir(c);
}

/* After any libnbd activity: follow state changes.  Under mu. */
static void conn_check(struct conn *c)
{
    char why[256];
    if (!c->h)
        return;
    if (handle_failed(c->h)) {
        /* DEAD comes with an error; CLOSED (EOF) without one (generator/states.c) */
        snprintf(why, sizeof(why), "%s",
                 nbd_aio_is_dead(c->h) > 0 ? nerr() : "the server closed the connection");
        conn_fail(c, why, c->state == C_UP);
        return;
    }
    if (c->state == C_CONNECTING && handle_ready(c->h)) {
        if (handle_check(c->e, c->h, why, sizeof(why)) < 0) {
            conn_fail(c, why, false);
            return;
        }
        c->state = C_UP;
        c->backoff_ms = c->e->reconnect_ms;
        if (c->lost_logged)
            log_dev(LOG_NOTICE, &c->e->dev, LOG_NO_QUEUE, "NBD connection to %s re-established",
                    c->e->uri);
        c->lost_logged = false;
        conn_issue_waiting(c);
    }
    conn_update_dir(c);
}

/* Timer tick: connect deadline, commands older than the timeout.  Under mu. */
static void conn_tick(struct conn *c, uint64_t now)
{
    struct nbd_engine *n = c->e;
    char why[128];
    if (c->state == C_CONNECTING && now >= c->deadline_ns) {
        snprintf(why, sizeof(why), "no NBD handshake within %u s",
                 (unsigned)(n->timeout_ns / 1000000000ull));
        conn_fail(c, why, false);
        return;
    }
    if (c->state != C_UP)
        return;
    for (struct nbd_queue *q = c->queues; q; q = q->next)
        for (unsigned i = 0; i < q->depth; i++)
            if (q->reqs[i].parts && now - q->reqs[i].t_ns >= n->timeout_ns) {
                snprintf(why, sizeof(why), "no reply within %u s",
                         (unsigned)(n->timeout_ns / 1000000000ull));
                conn_fail(c, why, true);
                return;
            }
}

/* ---- engine ---------------------------------------------------------------------- */

static int nbd_open(const struct engine_params *p, struct engine **out)
{
    if (!p || !p->path || !*p->path)
        return -EINVAL;
    struct nbd_engine *n = calloc(1, sizeof(*n));
    if (!n)
        return -ENOMEM;
    eng_log_dev(&n->dev, p);
    n->base.ops = nbd_ops();
    int rc = parse_uri(p->path, n, p);
    if (rc < 0) {
        free(n);
        return rc;
    }
    char why[256] = "";
    struct nbd_handle *h = NULL;
    rc = handle_connect_sync(n, &h, why, sizeof(why));
    if (rc < 0) {
        set_why(p, "%s", why);
        LOG_DBG(LOG_CAT_ENGINE, &n->dev, LOG_NO_QUEUE, "NBD connect to %s: %s", n->uri, why);
        goto fail;
    }
    int64_t size = nbd_get_size(h);
    int64_t bmin = nbd_get_block_size(h, LIBNBD_SIZE_MINIMUM);
    int64_t bpref = nbd_get_block_size(h, LIBNBD_SIZE_PREFERRED);
    int64_t bmax = nbd_get_block_size(h, LIBNBD_SIZE_MAXIMUM);
    if (size < 0) {
        set_why(p, "nbd_get_size: %s", nerr());
        rc = nbd_err();
        goto fail;
    }
    /* The NBD protocol document (as cited at the top), "Block size
     * constraints": min a power of 2 <= 64 KiB, preferred >= min, max a
     * multiple of min; 0 = not advertised. */
    uint32_t lbs = bmin > 512 && bmin <= 65536 ? (uint32_t)bmin : 512;
    uint32_t pbs = bpref > lbs ? (bpref > 65536 ? 65536 : (uint32_t)bpref) : lbs;
    uint64_t mx = bmax > 0 && (uint64_t)bmax < NBD_MAX_IO ? (uint64_t)bmax : NBD_MAX_IO;
    mx -= mx % lbs;
    n->max_io = mx ? (uint32_t)mx : lbs;
    n->base.size = (uint64_t)size;
    n->base.logical_block_size = lbs;
    n->base.physical_block_size = pbs;
    n->base.readonly = p->readonly || nbd_is_read_only(h) > 0;
    n->base.is_blockdev = false;
    n->base.direct = false;
    n->base.caps.flush = nbd_can_flush(h) > 0;
    n->base.caps.fua = nbd_can_fua(h) > 0;
    n->base.caps.discard = !n->base.readonly && nbd_can_trim(h) > 0;
    n->base.caps.discard_granularity = pbs;
    n->base.caps.exit_drains_io = true;     /* send/recv only: see the top of this file */
    n->multi_conn = nbd_can_multi_conn(h) > 0;
    n->conn0 = conn_new(n, h);
    if (!n->conn0) {
        rc = -ENOMEM;
        goto fail;
    }
    log_dev(LOG_INFO, &n->dev, LOG_NO_QUEUE, "NBD %s: %" PRIu64 " bytes, block sizes min %" PRId64
            " preferred %" PRId64 " max %" PRId64 ", %s, flush %d, fua %d, trim %d, "
            "multi-conn %d (%s)",
            n->uri, n->base.size, bmin, bpref, bmax, n->base.readonly ? "ro" : "rw",
            n->base.caps.flush, n->base.caps.fua, nbd_can_trim(h) > 0, n->multi_conn,
            n->multi_conn ? "one connection per queue" : "one connection shared by all queues");
    *out = &n->base;
    return 0;
fail:
    if (h)
        nbd_close(h);
    free(n->uri);
    free(n);
    return rc;
}

static void nbd_engine_close(struct engine *e)
{
    struct nbd_engine *n = (struct nbd_engine *)e;
    if (!n)
        return;
    conn_free(n->conn0);
    free(n->uri);
    free(n);
}

static void queue_free(struct nbd_queue *q)
{
    if (q->reqs)
        for (unsigned i = 0; i < q->depth; i++)
            free(q->reqs[i].bounce);
    if (q->efd >= 0)
        close(q->efd);
    if (q->tfd >= 0)
        close(q->tfd);
    if (q->epfd >= 0)
        close(q->epfd);
    free(q->reqs);
    free(q->free_r);
    free(q->pend);
    free(q->done);
    free(q->scratch);
    free(q->sio);
    free(q);
}

static int nbd_queue_open(struct engine *e, unsigned depth, struct engine_queue **out)
{
    struct nbd_engine *n = (struct nbd_engine *)e;
    struct nbd_queue *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->e = n;
    q->depth = depth ? depth : 1;
    q->efd = q->tfd = q->epfd = -1;
    q->reqs = calloc(q->depth, sizeof(*q->reqs));
    q->free_r = calloc(q->depth, sizeof(*q->free_r));
    q->pend = calloc(q->depth, sizeof(*q->pend));
    q->done = calloc(q->depth, sizeof(*q->done));
    q->scratch = calloc(q->depth, sizeof(*q->scratch));
    q->sio = calloc(q->depth, sizeof(*q->sio));
    int rc = -ENOMEM;
    if (!q->reqs || !q->free_r || !q->pend || !q->done || !q->scratch || !q->sio)
        goto fail;
    for (unsigned i = 0; i < q->depth; i++) {
        q->reqs[i].q = q;
        q->free_r[i] = &q->reqs[q->depth - 1 - i];
    }
    q->nfree = q->depth;
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    q->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    q->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (q->efd < 0 || q->tfd < 0 || q->epfd < 0) {
        rc = -errno;
        goto fail;
    }
    /* The connection: with multi-conn one of our own (the one made at open
     * for the first queue), else the shared one. */
    struct conn *c = n->conn0;
    if (n->multi_conn && n->conn0_taken) {
        char why[256];
        struct nbd_handle *h;
        rc = handle_connect_sync(n, &h, why, sizeof(why));
        if (rc == 0 && (rc = handle_check(n, h, why, sizeof(why))) < 0)
            nbd_close(h);
        if (rc < 0) {
            log_dev(LOG_ERR, &n->dev, LOG_NO_QUEUE, "NBD connection for a new queue: %s", why);
            goto fail;
        }
        c = conn_new(n, h);
        if (!c) {
            nbd_close(h);
            rc = -ENOMEM;
            goto fail;
        }
    } else if (n->multi_conn) {
        n->conn0_taken = true;
    }
    q->c = c;
    struct epoll_event ev = { .events = EPOLLIN };
    if (epoll_ctl(q->epfd, EPOLL_CTL_ADD, q->efd, &ev) < 0 ||
        epoll_ctl(q->epfd, EPOLL_CTL_ADD, q->tfd, &ev) < 0 ||
        epoll_ctl(q->epfd, EPOLL_CTL_ADD, c->epfd, &ev) < 0) {
        rc = -errno;
        if (c != n->conn0)
            conn_free(c);
        else if (n->multi_conn)
            n->conn0_taken = false;
        goto fail;
    }
    pthread_mutex_lock(&c->mu);
    q->next = c->queues;
    c->queues = q;
    pthread_mutex_unlock(&c->mu);
    *out = (struct engine_queue *)q;
    return 0;
fail:
    queue_free(q);
    return rc;
}

/* Timer on while the queue has requests outstanding: ticks of timeout/4
 * (50 ms .. 1 s).  Switched off by the first tick that finds it idle. */
static void timer_arm(struct nbd_queue *q)
{
    if (q->timer_on)
        return;
    uint64_t t = q->e->timeout_ns / 4;
    if (t < 50000000ull)
        t = 50000000ull;
    if (t > 1000000000ull)
        t = 1000000000ull;
    struct itimerspec its = { { (time_t)(t / 1000000000ull), (long)(t % 1000000000ull) },
                              { (time_t)(t / 1000000000ull), (long)(t % 1000000000ull) } };
    if (timerfd_settime(q->tfd, 0, &its, NULL) == 0)
        q->timer_on = true;
}

static void timer_disarm(struct nbd_queue *q)
{
    struct itimerspec its = { { 0, 0 }, { 0, 0 } };
    timerfd_settime(q->tfd, 0, &its, NULL);
    q->timer_on = false;
}

/* Take the queue's completed requests (under mu) into q->scratch; the
 * eventfd is drained with them (pushes after this signal it again). */
static unsigned take_done(struct nbd_queue *q)
{
    if (q->signalled) {
        eng_efd_drain(q->efd);
        q->signalled = false;
    }
    unsigned k = q->ndone;
    memcpy(q->scratch, q->done, k * sizeof(*q->done));
    q->ndone = 0;
    return k;
}

static void nbd_queue_close(struct engine_queue *eq)
{
    struct nbd_queue *q = (struct nbd_queue *)eq;
    if (!q)
        return;
    struct conn *c = q->c;
    struct nbd_engine *n = q->e;
    /* In flight: drive the connection for up to 1 s (the caller has stopped
     * caring about the results), then give up on the connection. */
    uint64_t end = xbd_now_ns() + 1000000000ull;
    pthread_mutex_lock(&c->mu);
    while (q->outstanding && xbd_now_ns() < end) {
        pthread_mutex_unlock(&c->mu);
        struct pollfd pfd = { .fd = q->epfd, .events = POLLIN };
        poll(&pfd, 1, 50);
        pthread_mutex_lock(&c->mu);
        conn_notify(c);
        conn_check(c);
        q->ndone = 0;
    }
    if (q->outstanding) {
        log_dev(LOG_WARNING, &n->dev, LOG_NO_QUEUE,
                "%u NBD request(s) still in flight after 1 s at queue close", q->outstanding);
        conn_fail(c, "queue closed with requests in flight", c->state == C_UP);
    }
    for (struct nbd_queue **pp = &c->queues; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            break;
        }
    pthread_mutex_unlock(&c->mu);
    if (c != n->conn0)
        conn_free(c);
    else if (n->multi_conn)
        n->conn0_taken = false;
    queue_free(q);
}

static int nbd_queue_io(struct engine_queue *eq, struct engine_io *io)
{
    struct nbd_queue *q = (struct nbd_queue *)eq;
    if (q->busy >= q->depth)
        return -EBUSY;
    struct nreq *r = q->free_r[--q->nfree];
    r->io = io;
    r->err = 0;
    q->pend[q->npend++] = r;
    q->busy++;
    return 0;
}

static int nbd_submit(struct engine_queue *eq)
{
    struct nbd_queue *q = (struct nbd_queue *)eq;
    struct nbd_engine *n = q->e;
    struct conn *c = q->c;
    unsigned np = q->npend;
    if (!np)
        return 0;
    pthread_mutex_lock(&c->mu);
    if (c->state == C_DOWN && n->reconnect_ms && xbd_now_ns() >= c->retry_ns)
        conn_try_reconnect(c);
    for (unsigned i = 0; i < np; i++) {
        struct nreq *r = q->pend[i];
        struct engine_io *io = r->io;
        q->outstanding++;
        bool writes = io->op == ENGINE_OP_WRITE || io->op == ENGINE_OP_DISCARD ||
                      io->op == ENGINE_OP_SECURE_DISCARD;
        if (io->op == ENGINE_OP_SECURE_DISCARD ||
            (io->op == ENGINE_OP_DISCARD && !n->base.caps.discard)) {
            r->err = n->base.readonly ? EROFS : EOPNOTSUPP;
            req_finish(r);
        } else if (writes && n->base.readonly) {
            r->err = EROFS;
            req_finish(r);
        } else if (io->op != ENGINE_OP_FLUSH && io->op != ENGINE_OP_READ && !writes) {
            r->err = EINVAL;
            req_finish(r);
        } else if (c->state == C_UP) {
            req_issue(c, r);
        } else if (c->state == C_CONNECTING) {
            r->waiting = true;
        } else {
            r->err = EIO;               /* down, next attempt not yet due */
            req_finish(r);
        }
    }
    q->npend = 0;
    conn_check(c);
    pthread_mutex_unlock(&c->mu);
    timer_arm(q);
    return (int)np;
}

/* The queue's epoll fd: readable when requests completed (eventfd), a tick
 * is due (timerfd) or the connection's socket is ready as libnbd wants. */
static int nbd_completion_fd(struct engine_queue *eq)
{
    return ((struct nbd_queue *)eq)->epfd;
}

/* Copy a bounced READ's data out to its iovecs. */
static void scatter(struct nreq *r)
{
    const struct engine_io *io = r->io;
    for (unsigned i = 0, o = 0; i < io->iovcnt; o += io->iov[i].iov_len, i++)
        memcpy(io->iov[i].iov_base, r->bounce + o, io->iov[i].iov_len);
}

static int nbd_reap(struct engine_queue *eq, engine_done_fn done, void *arg)
{
    struct nbd_queue *q = (struct nbd_queue *)eq;
    struct conn *c = q->c;
    uint64_t ticks;
    bool tick = q->timer_on && read(q->tfd, &ticks, sizeof(ticks)) == (ssize_t)sizeof(ticks);

    pthread_mutex_lock(&c->mu);
    q->reaping = true;
    conn_notify(c);
    conn_check(c);
    if (tick)
        conn_tick(c, xbd_now_ns());
    q->reaping = false;
    unsigned k = take_done(q);
    bool idle = !q->outstanding;
    pthread_mutex_unlock(&c->mu);
    if (tick && idle)
        timer_disarm(q);

    /* Account first: done() may queue new I/O. */
    q->busy -= k;
    for (unsigned i = 0; i < k; i++) {
        struct nreq *r = q->scratch[i];
        struct engine_io *io = r->io;
        if (r->err)
            io->result = -r->err;
        else {
            if (io->op == ENGINE_OP_READ && r->bounced)
                scatter(r);
            io->result = io->op == ENGINE_OP_READ || io->op == ENGINE_OP_WRITE ? (int64_t)io->len : 0;
        }
        q->free_r[q->nfree++] = r;
        q->sio[i] = io;
    }
    for (unsigned i = 0; i < k; i++)
        done(q->sio[i], arg);
    return (int)k;
}

const struct engine_ops engine_nbd = {
    ENGINE_OPS_REQUIRED("nbd", nbd, nbd_open, nbd_engine_close),
};

static const struct engine_ops *nbd_ops(void)
{
    return &engine_nbd;
}
