/*
 * conn.c - one client connection of xen-sim-xenstored: framing of
 * struct xsd_sockmsg messages (xs_wire.h), non-blocking reads, and an output
 * queue that holds replies and watch events until the socket takes them.
 *
 * Limits that keep a bad client from eating the server:
 *  - a payload over XENSTORE_PAYLOAD_MAX drops the connection, as xenstored
 *    does (xenstore.txt: "its xenstored connection will be immediately killed");
 *  - requests are not read while the queue holds over max_outq/2 bytes, so a
 *    client that sends but never reads only stalls itself;
 *  - a queue over max_outq (watch events for a client that never reads)
 *    drops the connection;
 *  - at most CONN_BATCH requests per poll round, so others get their turn.
 */
#include "xenstored.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define CONN_BATCH 64
#define CONN_IOV   64

static struct log_ratelimit rl_drop = LOG_RATELIMIT_INIT;

struct xsd_conn *conn_new(struct xsd_server *s, int fd, uint32_t domid)
{
    struct xsd_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->srv = s;
    c->fd = fd;
    c->id = ++s->next_conn_id;
    c->domid = domid;
    c->unpriv = domid != 0;
    snprintf(c->home, sizeof(c->home), "/local/domain/%u", domid);
    return c;
}

static void outq_free(struct xsd_conn *c)
{
    while (c->outq) {
        struct xsd_outbuf *b = c->outq;
        c->outq = b->next;
        free(b);
    }
    c->outq_tail = NULL;
    c->outq_bytes = 0;
}

void conn_free(struct xsd_conn *c)
{
    watch_free_all(c);
    txn_free_all(c);
    outq_free(c);
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

static void conn_kill(struct xsd_conn *c, const char *why)
{
    if (c->dead)
        return;
    log_rl(&rl_drop, LOG_WARNING, "conn %u: dropped: %s", c->id, why);
    c->dead = true;
    outq_free(c);
}

void conn_send(struct xsd_conn *c, uint32_t type, uint32_t req_id, uint32_t tx_id,
               const void *p1, uint32_t l1, const void *p2, uint32_t l2)
{
    if (c->dead)
        return;
    uint32_t len = l1 + l2;
    struct xsd_outbuf *b = malloc(sizeof(*b) + XSD_HDR_LEN + len);
    if (!b) {
        conn_kill(c, "out of memory");
        return;
    }
    struct xsd_sockmsg h = { .type = type, .req_id = req_id, .tx_id = tx_id, .len = len };
    memcpy(b->data, &h, sizeof(h));
    if (l1)
        memcpy(b->data + XSD_HDR_LEN, p1, l1);
    if (l2)
        memcpy(b->data + XSD_HDR_LEN + l1, p2, l2);
    b->len = XSD_HDR_LEN + len;
    b->off = 0;
    b->next = NULL;
    if (c->srv->verbose) {
        char tmp[XENSTORE_PAYLOAD_MAX];
        uint32_t tl = len < sizeof(tmp) ? len : (uint32_t)sizeof(tmp);
        memcpy(tmp, b->data + XSD_HDR_LEN, tl);
        ops_trace(c, "<", type, tx_id, tmp, tl);
    }
    if (c->outq_tail)
        c->outq_tail->next = b;
    else
        c->outq = b;
    c->outq_tail = b;
    c->outq_bytes += b->len;
    if (c->outq_bytes > c->srv->max_outq)
        conn_kill(c, "output queue full (client does not read)");
}

void conn_flush(struct xsd_conn *c)
{
    while (c->outq && !c->dead) {
        struct iovec iov[CONN_IOV];
        int n = 0;
        for (struct xsd_outbuf *b = c->outq; b && n < CONN_IOV; b = b->next, n++) {
            iov[n].iov_base = b->data + b->off;
            iov[n].iov_len = b->len - b->off;
        }
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EPIPE || errno == ECONNRESET) {
                c->dead = true;         /* the client went away */
                outq_free(c);
            } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
                conn_kill(c, strerror(errno));
            }
            return;
        }
        size_t left = (size_t)w;
        while (c->outq && left) {
            struct xsd_outbuf *b = c->outq;
            size_t rem = b->len - b->off;
            if (left < rem) {
                b->off += (uint32_t)left;
                left = 0;
                break;
            }
            left -= rem;
            c->outq = b->next;
            if (!c->outq)
                c->outq_tail = NULL;
            c->outq_bytes -= b->len;
            free(b);
        }
    }
}

bool conn_may_read(const struct xsd_conn *c)
{
    return !c->dead && c->outq_bytes <= c->srv->max_outq / 2;
}

static bool have_request(const struct xsd_conn *c)
{
    struct xsd_sockmsg h;
    if (c->inlen < XSD_HDR_LEN)
        return false;
    memcpy(&h, c->in, sizeof(h));
    return h.len > XENSTORE_PAYLOAD_MAX || c->inlen >= XSD_HDR_LEN + h.len;
}

bool conn_has_work(const struct xsd_conn *c)
{
    return conn_may_read(c) && have_request(c);
}

void conn_input(struct xsd_conn *c)
{
    unsigned done = 0;
    for (;;) {
        while (have_request(c)) {
            struct xsd_sockmsg h;
            memcpy(&h, c->in, sizeof(h));
            if (h.len > XENSTORE_PAYLOAD_MAX) {
                conn_kill(c, "payload over XENSTORE_PAYLOAD_MAX");
                return;
            }
            if (!conn_may_read(c)) {
                conn_flush(c);
                if (!conn_may_read(c))
                    return;     /* resumes when the client reads */
            }
            ops_dispatch(c, &h, c->in + XSD_HDR_LEN);
            size_t used = XSD_HDR_LEN + h.len;
            memmove(c->in, c->in + used, c->inlen - used);
            c->inlen -= used;
            if (c->dead || ++done >= CONN_BATCH)
                return;
        }
        ssize_t n = read(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen);
        if (n > 0) {
            c->inlen += (size_t)n;
            continue;
        }
        if (n == 0) {
            c->dead = true;     /* client closed: not worth a warning */
            outq_free(c);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == ECONNRESET) {
            c->dead = true;     /* closed with replies unread: also normal */
            outq_free(c);
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            conn_kill(c, strerror(errno));
        }
        return;
    }
}
