/*
 * metrics.c - the counters of every vbd in the Prometheus text exposition
 * format (version 0.0.4: prometheus/docs:content/docs/instrumenting/
 * exposition_formats.md; names and units after
 * prometheus/docs:content/docs/practices/naming.md).  Served by the control
 * socket's `metrics` request and the optional HTTP listener (metrics_http.c).
 *
 * Per device (labels kind, domid, devid, vdev): blkback's counters (earlier
 * connections included, as `stats`), the latency histograms (stats.h), and
 * per queue (label queue) the gauges of the live rings.
 */
#include "backend.h"
#include "util.h"

#include <errno.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const char *const op_label[VBD_OP_N] = { "read", "write", "flush", "discard" };

struct mdev {
    struct vbd *v;
    struct vbd_stats st;
};

struct mout {
    FILE *f;
    struct mdev *d;
    size_t n;
};

/* `value` of a label, escaped (backslash, double quote, newline). */
static void put_label_value(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f);
        if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void family(const struct mout *m, const char *name, const char *type, const char *help)
{
    fprintf(m->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{kind=..,domid=..,devid=..,vdev=..[,extra]} (no value) */
static void series(const struct mout *m, const char *name, const char *suffix,
                   const struct vbd *v, const char *extra)
{
    fprintf(m->f, "%s%s{kind=\"%s\",domid=\"%u\",devid=\"%u\",vdev=\"", name, suffix, v->kind,
            (unsigned)v->fe_domid, v->devid);
    put_label_value(m->f, v->vdev);
    fprintf(m->f, "\"%s%s} ", extra ? "," : "", extra ? extra : "");
}

/* A field of struct vbd_stats (at `off`) as one series, with label `extra`
 * (NULL: none). */
struct mfield {
    const char *extra;
    size_t off;
};

#define F(label, field) { label, offsetof(struct vbd_stats, field) }
#define ONE(field) 1, { F(NULL, field) }

static uint64_t field_of(const struct vbd_stats *st, size_t off)
{
    return *(const uint64_t *)((const char *)st + off);
}

/* The counter families: one series per device and field. */
static const struct mcounter {
    const char *name, *help;
    unsigned nf;
    struct mfield f[4];
} counters[] = {
    { "xen_blkback_requests_total",
      "Requests by op (blkback rd_req, wr_req, f_req: flush and barrier, ds_req).", 4,
      { F("op=\"read\"", rd_req), F("op=\"write\"", wr_req), F("op=\"flush\"", f_req),
        F("op=\"discard\"", ds_req) } },
    { "xen_blkback_sectors_total", "512-byte sectors transferred (blkback rd_sect, wr_sect).", 2,
      { F("op=\"read\"", rd_sect), F("op=\"write\"", wr_sect) } },
    { "xen_blkback_out_of_slots_total",
      "Times requests waited on the ring for a free request slot (blkback oo_req).", ONE(oo_req) },
    { "xen_blkback_errors_total",
      "Responses by non-OKAY status (BLKIF_RSP_ERROR, BLKIF_RSP_EOPNOTSUPP).", 2,
      { F("status=\"error\"", errors), F("status=\"eopnotsupp\"", eopnotsupp) } },
    { "xen_blkback_invalid_requests_total",
      "Requests refused by validation (counted in errors_total too).", ONE(bad_req) },
    { "xen_blkback_io_errors_total",
      "Storage errors (counted in errors_total{status=\"error\"} too).", ONE(io_errors) },
    { "xen_blkback_replayed_requests_total",
      "Requests re-issued from the restart state of a previous daemon.", ONE(replayed) },
    { "xen_blkback_throttled_requests_total",
      "Read and write requests held back by the vbd's QoS limits.", ONE(throttled) },
    { "xen_blkback_grant_map_calls_total", "Grant map calls (a batch counts once).", ONE(gnt_map) },
    { "xen_blkback_grant_unmap_calls_total", "Grant unmap calls (a batch counts once).",
      ONE(gnt_unmap) },
    { "xen_blkback_grant_copy_calls_total", "Grant copy calls (a batch counts once).",
      ONE(gnt_copy) },
    { "xen_blkback_notifications_sent_total", "Event channel notifications sent to the frontend.",
      ONE(notify) },
    { "xen_blkback_notifications_received_total",
      "Event channel notifications received from the frontend.", ONE(kicks) },
    { "xen_blkback_engine_submits_total", "Storage engine submit calls.", ONE(submits) },
    { "xen_blkback_queue_sleeps_total", "Times a queue thread slept waiting for work.",
      ONE(sleeps) },
    { "xen_blkback_engine_waits_total",
      "Queue thread sleeps inside the storage engine (submit and sleep in one system call).",
      ONE(engine_waits) },
};

/* The gauges of each live queue. */
static const struct mgauge {
    const char *name, *help;
    size_t off;
} queue_gauges[] = {
    { "xen_blkback_inflight_requests", "Requests being processed by the queue.",
      offsetof(struct vbd_stats, inflight) },
    { "xen_blkback_ring_slots", "Requests the queue's shared ring holds.",
      offsetof(struct vbd_stats, ring_slots) },
    { "xen_blkback_ring_occupancy_requests", "Requests on the queue's ring not answered yet.",
      offsetof(struct vbd_stats, ring_occupancy) },
    { "xen_blkback_grants_mapped",
      "Guest pages the queue has mapped (ring, data, persistent grants).",
      offsetof(struct vbd_stats, grants_mapped) },
    { "xen_blkback_ring_halted", "1 once the queue's ring halted on a protocol violation.",
      offsetof(struct vbd_stats, halted) },
};

static void per_device(const struct mout *m, const struct mcounter *c)
{
    family(m, c->name, "counter", c->help);
    for (size_t i = 0; i < m->n; i++)
        for (unsigned k = 0; k < c->nf; k++) {
            series(m, c->name, "", m->d[i].v, c->f[k].extra);
            fprintf(m->f, "%llu\n", (unsigned long long)field_of(&m->d[i].st, c->f[k].off));
        }
}

static void histogram(const struct mout *m, const char *name, const char *help, bool engine)
{
    family(m, name, "histogram", help);
    for (size_t i = 0; i < m->n; i++)
        for (unsigned op = 0; op < VBD_OP_N; op++) {
            const struct vbd_hist *h = engine ? &m->d[i].st.lat[op].engine
                                              : &m->d[i].st.lat[op].total;
            char extra[64];
            uint64_t cum = 0;
            for (unsigned b = 0; b < VBD_LAT_BUCKETS; b++) {
                cum += h->bucket[b];
                if (b == VBD_LAT_BUCKETS - 1)
                    snprintf(extra, sizeof(extra), "op=\"%s\",le=\"+Inf\"", op_label[op]);
                else
                    snprintf(extra, sizeof(extra), "op=\"%s\",le=\"%.9g\"", op_label[op],
                             (double)vbd_lat_bound_ns(b) / 1e9);
                series(m, name, "_bucket", m->d[i].v, extra);
                fprintf(m->f, "%llu\n", (unsigned long long)cum);
            }
            snprintf(extra, sizeof(extra), "op=\"%s\"", op_label[op]);
            series(m, name, "_sum", m->d[i].v, extra);
            fprintf(m->f, "%.9f\n", (double)h->sum_ns / 1e9);
            series(m, name, "_count", m->d[i].v, extra);
            fprintf(m->f, "%llu\n", (unsigned long long)cum);
        }
}

static void per_queue(const struct mout *m, const struct mgauge *g)
{
    family(m, g->name, "gauge", g->help);
    for (size_t i = 0; i < m->n; i++) {
        struct vbd *v = m->d[i].v;
        for (unsigned q = 0; q < vdp_nr_queues(v->dp); q++) {
            struct vbd_stats st;
            if (vdp_get_queue_stats(v->dp, q, &st))
                continue;
            char extra[24];
            snprintf(extra, sizeof(extra), "queue=\"%u\"", q);
            series(m, g->name, "", v, extra);
            fprintf(m->f, "%llu\n", (unsigned long long)field_of(&st, g->off));
        }
    }
}

char *metrics_text(struct backend *b)
{
    struct mout m = { 0 };
    for (struct vbd *v = b->vbds; v; v = v->next)
        m.n++;
    m.d = calloc(m.n ? m.n : 1, sizeof(*m.d));
    char *buf = NULL;
    size_t len = 0;
    m.f = open_memstream(&buf, &len);
    if (!m.d || !m.f) {
        if (m.f)
            fclose(m.f);
        free(buf);
        free(m.d);
        return NULL;
    }
    size_t i = 0;
    for (struct vbd *v = b->vbds; v; v = v->next, i++) {
        m.d[i].v = v;
        vbd_get_stats(v, &m.d[i].st);
    }
    family(&m, "xen_blkback_build_info", "gauge", "xen-blkbackd version (value 1).");
    fprintf(m.f, "xen_blkback_build_info{version=\"" XBD_VERSION "\"} 1\n");
    family(&m, "xen_blkback_connected", "gauge",
           "1 while the device's rings are attached (xenbus Connected), else 0.");
    for (i = 0; i < m.n; i++) {
        series(&m, "xen_blkback_connected", "", m.d[i].v, NULL);
        fprintf(m.f, "%d\n", m.d[i].v->dp != NULL);
    }
    family(&m, "xen_blkback_connects_total", "counter", "Successful connects of the device.");
    for (i = 0; i < m.n; i++) {
        series(&m, "xen_blkback_connects_total", "", m.d[i].v, NULL);
        fprintf(m.f, "%u\n", m.d[i].v->connects);
    }
    for (i = 0; i < ARRAY_SIZE(counters); i++)
        per_device(&m, &counters[i]);
    family(&m, "xen_blkback_throttled_seconds_total", "counter",
           "Time read and write requests waited for the vbd's QoS buckets.");
    for (i = 0; i < m.n; i++) {
        series(&m, "xen_blkback_throttled_seconds_total", "", m.d[i].v, NULL);
        fprintf(m.f, "%.9f\n", (double)m.d[i].st.throttle_ns / 1e9);
    }
    histogram(&m, "xen_blkback_request_duration_seconds",
              "Request latency from being consumed off the ring to its response being pushed.",
              false);
    histogram(&m, "xen_blkback_engine_duration_seconds",
              "The storage engine's share of each request's latency (submit to completion).",
              true);
    for (i = 0; i < ARRAY_SIZE(queue_gauges); i++)
        per_queue(&m, &queue_gauges[i]);
    free(m.d);
    if (fclose(m.f)) {
        free(buf);
        return NULL;
    }
    return buf;
}

int metrics_listen_parse(const char *v, struct sockaddr_storage *ss, unsigned *sslen,
                         char *err, size_t errlen)
{
    char host[256] = "127.0.0.1", port[8];
    const char *p = v ? strrchr(v, ':') : NULL;
    size_t hl = p ? (size_t)(p - v) : 0;
    const char *ps = p ? p + 1 : v;
    if (!ps || !*ps || strlen(ps) >= sizeof(port) || strspn(ps, "0123456789") != strlen(ps) ||
        atol(ps) > 65535) {
        snprintf(err, errlen, "expected [ADDR:]PORT (PORT 0..65535), got '%s'", v ? v : "");
        return -EINVAL;
    }
    snprintf(port, sizeof(port), "%s", ps);
    if (hl && v[0] == '[') {
        if (hl < 3 || v[hl - 1] != ']') {
            snprintf(err, errlen, "expected [IPV6]:PORT, got '%s'", v);
            return -EINVAL;
        }
        snprintf(host, sizeof(host), "%.*s", (int)(hl - 2), v + 1);
    } else if (hl) {
        if (memchr(v, ':', hl) || hl >= sizeof(host)) {
            snprintf(err, errlen, "an IPv6 address goes in brackets ([::1]:PORT), got '%s'", v);
            return -EINVAL;
        }
        snprintf(host, sizeof(host), "%.*s", (int)hl, v);
    }
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc || !ai || ai->ai_addrlen > sizeof(*ss)) {
        snprintf(err, errlen, "cannot resolve '%s': %s", host, rc ? gai_strerror(rc) : "no address");
        if (ai)
            freeaddrinfo(ai);
        return -EINVAL;
    }
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *sslen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}
