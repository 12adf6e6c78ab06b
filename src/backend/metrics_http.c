/*
 * metrics_http.c - the optional HTTP listener of the metrics
 * (--metrics-listen): libmicrohttpd in external-epoll mode, driven by the
 * main loop (backend.c polls its one epoll fd and calls metrics_http_run),
 * so requests are answered on the main thread, which owns the device list.
 * GET or HEAD /metrics: metrics_text(); anything else: 404 or 405.
 */
#include "backend.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define MH_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct metrics_http {
    struct backend *b;
    struct MHD_Daemon *d;
    int fd;                     /* MHD's epoll fd */
    char addr[64];              /* as bound: "127.0.0.1:9477", "[::1]:9477" */
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, char *body, bool owned)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(body), body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            status == MHD_HTTP_OK ? MH_CONTENT_TYPE : "text/plain");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_len, void **state)
{
    struct metrics_http *m = cls;
    (void)version;
    (void)upload;
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD)) {
        *upload_len = 0;
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n", false);
    }
    (void)state;
    if (strcmp(url, "/metrics"))
        return reply(c, MHD_HTTP_NOT_FOUND, "xen-blkbackd: the metrics are at /metrics\n", false);
    char *text = metrics_text(m->b);
    if (!text)
        return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", false);
    return reply(c, MHD_HTTP_OK, text, true);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    log_warn("metrics listener: %s", msg);
}

/* "ADDR:PORT" of a bound socket ("[ADDR]:PORT" for IPv6). */
static void format_addr(const struct sockaddr_storage *ss, char *out, size_t len)
{
    char h[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof(h));
        port = ntohs(a->sin6_port);
        snprintf(out, len, "[%s]:%u", h, port);
        return;
    }
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &a->sin_addr, h, sizeof(h));
    snprintf(out, len, "%s:%u", h, ntohs(a->sin_port));
}

int metrics_http_open(struct backend *b, const char *listen, struct metrics_http **out)
{
    struct sockaddr_storage ss;
    unsigned sl;
    char err[300];
    if (metrics_listen_parse(listen, &ss, &sl, err, sizeof(err))) {
        log_err("metrics-listen: %s", err);
        return -EINVAL;
    }
    struct metrics_http *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->b = b;
    unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    m->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,     /* first: all its messages */
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_END);
    if (!m->d) {
        int e = errno ? errno : EADDRNOTAVAIL;
        char a[64];
        format_addr(&ss, a, sizeof(a));
        log_err("metrics-listen %s: cannot listen: %s", a, strerror(e));
        free(m);
        return -e;
    }
    const union MHD_DaemonInfo *ie = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *il = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_LISTEN_FD);
    m->fd = ie ? ie->epoll_fd : -1;
    struct sockaddr_storage bound;
    socklen_t bl = sizeof(bound);
    if (m->fd < 0 || !il || getsockname(il->listen_fd, (struct sockaddr *)&bound, &bl)) {
        log_err("metrics-listen: libmicrohttpd gave no epoll or listen fd");
        MHD_stop_daemon(m->d);
        free(m);
        return -EIO;
    }
    format_addr(&bound, m->addr, sizeof(m->addr));
    log_notice("metrics on http://%s/metrics", m->addr);
    *out = m;
    return 0;
}

void metrics_http_close(struct metrics_http *m)
{
    if (!m)
        return;
    MHD_stop_daemon(m->d);
    free(m);
}

int metrics_http_fd(const struct metrics_http *m)
{
    return m->fd;
}

const char *metrics_http_addr(const struct metrics_http *m)
{
    return m->addr;
}

int metrics_http_timeout(struct metrics_http *m)
{
    MHD_UNSIGNED_LONG_LONG t;
    if (MHD_get_timeout(m->d, &t) != MHD_YES)
        return -1;
    return t > 60000 ? 60000 : (int)t;
}

void metrics_http_run(struct metrics_http *m)
{
    MHD_run(m->d);
}
