/*
 * main.c - xen-sim-xenstored: a small xenstore server for tests and demos.
 * Listens on a unix socket (--socket, default $XENSTORED_PATH) and serves the
 * xenstore wire protocol to any number of clients from one poll() loop; the
 * real libxenstore and xenstore-* tools reach it through XENSTORED_PATH
 * (docs/protocol.md §5).  Each --domain-socket DOMID:PATH is one more
 * socket whose clients act as that unprivileged domain (perms.c), as a
 * driver domain's /dev/xen/xenbus would.  Foreground only; SIGTERM/SIGINT exit 0 and remove the
 * socket and pidfile.  See man/xen-sim-xenstored.8.
 */
#include "xenstored.h"
#include "util.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
    stop_signal = sig;
}

static void usage(FILE *f, const char *prog)
{
    fprintf(f,
        "Usage: %s [options]\n"
        "A test xenstore server speaking the xenstore socket wire protocol.\n"
        "  --socket PATH          unix socket to listen on (default $XENSTORED_PATH)\n"
        "  --pidfile PATH         write the pid here once the socket listens\n"
        "  --log-level LEVEL      error|warning|notice|info|debug (default notice)\n"
        "  --verbose              trace every request, reply and event to stderr\n"
        "  --max-watches N        watches per connection (default %u; more: E2BIG)\n"
        "  --max-transactions N   open transactions per connection (default %u; more: ENOSPC)\n"
        "  --max-outq BYTES       output queued to one client before it is dropped (default %u)\n"
        "  --max-nodes N          nodes in the store (default %u; more: ENOSPC)\n"
        "  --domain-socket DOMID:PATH  one more socket whose clients act as unprivileged\n"
        "                         domain DOMID (1..32751), permissions checked (repeatable)\n"
        "  -h, --help             this help\n",
        prog, XSD_DEF_MAX_WATCHES, XSD_DEF_MAX_TXNS, XSD_DEF_MAX_OUTQ, XSD_DEF_MAX_NODES);
}

/* Bind and listen on path.  A stale socket left by a dead server is
 * replaced; a live one, or a non-socket file, is an error.  fd or -errno. */
static int listen_on(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            close(fd);
            return -EEXIST;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(probe);
            close(fd);
            return -EADDRINUSE;
        }
        if (probe >= 0)
            close(probe);
        unlink(path);
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* Write the pid atomically (tmp + rename), so a waiter never sees half. */
static int write_pidfile(const char *path)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (!f)
        return -errno;
    fprintf(f, "%ld\n", (long)getpid());
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        int e = -errno;
        unlink(tmp);
        return e;
    }
    return 0;
}

struct listener {
    int fd;
    uint32_t domid;             /* what its clients act as: 0 = privileged */
    const char *path;
};

static void accept_clients(struct xsd_server *s, int lfd, uint32_t domid)
{
    static struct log_ratelimit rl = LOG_RATELIMIT_INIT;
    while (s->nconns < XSD_MAX_CONNS) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                log_rl(&rl, LOG_WARNING, "accept: %s", strerror(errno));
            return;
        }
        struct xsd_conn *c = conn_new(s, fd, domid);
        if (!c) {
            close(fd);
            return;
        }
        s->conns[s->nconns++] = c;
        log_debug("conn %u: connected as domain %u", c->id, domid);
    }
}

static void reap_dead(struct xsd_server *s)
{
    unsigned j = 0;
    for (unsigned i = 0; i < s->nconns; i++) {
        struct xsd_conn *c = s->conns[i];
        if (c->dead) {
            log_debug("conn %u: closed", c->id);
            conn_free(c);
        } else {
            s->conns[j++] = c;
        }
    }
    s->nconns = j;
}

static int serve(struct xsd_server *s, const struct listener *l, unsigned nl,
                 const sigset_t *waitmask)
{
    static struct pollfd pfd[XSD_MAX_CONNS + XSD_MAX_LISTENERS];
    static struct xsd_conn *pc[XSD_MAX_CONNS + XSD_MAX_LISTENERS];
    while (!stop_signal) {
        nfds_t n = 0;
        bool work = false;
        for (unsigned i = 0; i < nl; i++) {
            pfd[n] = (struct pollfd){ .fd = l[i].fd, .events = s->nconns < XSD_MAX_CONNS ? POLLIN : 0 };
            pc[n++] = NULL;
        }
        for (unsigned i = 0; i < s->nconns; i++) {
            struct xsd_conn *c = s->conns[i];
            short ev = (conn_may_read(c) ? POLLIN : 0) | (c->outq ? POLLOUT : 0);
            work |= conn_has_work(c);
            pfd[n] = (struct pollfd){ .fd = c->fd, .events = ev };
            pc[n++] = c;
        }
        struct timespec zero = { 0, 0 };
        int r = ppoll(pfd, n, work ? &zero : NULL, waitmask);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            log_err("poll: %s", strerror(errno));
            return -1;
        }
        for (unsigned i = 0; i < nl; i++)
            if (pfd[i].revents & POLLIN)
                accept_clients(s, l[i].fd, l[i].domid);
        for (nfds_t i = nl; i < n; i++) {
            struct xsd_conn *c = pc[i];
            if (c->dead)
                continue;
            if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) || conn_has_work(c))
                conn_input(c);
        }
        for (unsigned i = 0; i < s->nconns; i++)
            if (s->conns[i]->outq && !s->conns[i]->dead)
                conn_flush(s->conns[i]);
        reap_dead(s);
    }
    return 0;
}

int main(int argc, char **argv)
{
    enum { O_SOCKET = 256, O_PIDFILE, O_LEVEL, O_VERBOSE, O_WATCHES, O_TXNS, O_OUTQ, O_NODES,
           O_DOMSOCK };
    static const struct option opts[] = {
        { "socket", required_argument, NULL, O_SOCKET },
        { "pidfile", required_argument, NULL, O_PIDFILE },
        { "log-level", required_argument, NULL, O_LEVEL },
        { "verbose", no_argument, NULL, O_VERBOSE },
        { "max-watches", required_argument, NULL, O_WATCHES },
        { "max-transactions", required_argument, NULL, O_TXNS },
        { "max-outq", required_argument, NULL, O_OUTQ },
        { "max-nodes", required_argument, NULL, O_NODES },
        { "domain-socket", required_argument, NULL, O_DOMSOCK },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    static struct xsd_server srv;      /* big (connection table): not on the stack */
    struct xsd_server *s = &srv;
    const char *sock = getenv("XENSTORED_PATH"), *pidfile = NULL;
    int level = LOG_NOTICE, o;
    uint64_t v;
    unsigned long max_nodes = XSD_DEF_MAX_NODES;
    struct listener l[XSD_MAX_LISTENERS];
    unsigned nl = 1;
    char *colon;

    s->max_watches = XSD_DEF_MAX_WATCHES;
    s->max_txns = XSD_DEF_MAX_TXNS;
    s->max_outq = XSD_DEF_MAX_OUTQ;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case O_SOCKET: sock = optarg; break;
        case O_PIDFILE: pidfile = optarg; break;
        case O_LEVEL:
            if (log_level_parse(optarg, LOG_EMERG, LOG_DEBUG, &level)) {
                fprintf(stderr, "%s: bad --log-level '%s'\n", argv[0], optarg);
                return 2;
            }
            break;
        case O_VERBOSE: s->verbose = true; break;
        case O_WATCHES: case O_TXNS: case O_OUTQ: case O_NODES:
            if (xbd_parse_u64(optarg, 0, o == O_OUTQ ? 8192 : 1, o == O_OUTQ ? 1ul << 30 : 10000000, &v)) {
                fprintf(stderr, "%s: bad value '%s' for --%s\n", argv[0], optarg, opts[o - O_SOCKET].name);
                return 2;
            }
            if (o == O_WATCHES) s->max_watches = (unsigned)v;
            else if (o == O_TXNS) s->max_txns = (unsigned)v;
            else if (o == O_OUTQ) s->max_outq = v;
            else max_nodes = v;
            break;
        case O_DOMSOCK:
            colon = strchr(optarg, ':');
            if (colon)
                *colon = '\0';
            if (!colon || !colon[1] || xbd_parse_u64(optarg, 10, 1, 0x7fef, &v) ||
                nl >= XSD_MAX_LISTENERS) {
                fprintf(stderr, "%s: bad --domain-socket (DOMID:PATH, DOMID 1..32751, at most %d)\n",
                        argv[0], XSD_MAX_LISTENERS - 1);
                return 2;
            }
            l[nl++] = (struct listener){ .fd = -1, .domid = (uint32_t)v, .path = colon + 1 };
            break;
        case 'h': usage(stdout, argv[0]); return 0;
        default: usage(stderr, argv[0]); return 2;
        }
    }
    if (optind < argc || !sock || !*sock) {
        if (optind >= argc)
            fprintf(stderr, "%s: no socket: give --socket or set XENSTORED_PATH\n", argv[0]);
        usage(stderr, argv[0]);
        return 2;
    }
    if (s->verbose && level < LOG_INFO)
        level = LOG_INFO;
    log_init("xen-sim-xenstored", LOG_TARGET_STDERR, NULL, level);

    if (tree_init(&s->tree, &s->gen, (unsigned)max_nodes)) {
        log_err("out of memory");
        return 1;
    }

    sigset_t block, waitmask;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &waitmask);
    sigdelset(&waitmask, SIGTERM);
    sigdelset(&waitmask, SIGINT);
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    l[0] = (struct listener){ .fd = -1, .domid = 0, .path = sock };
    int rc = 0;
    for (unsigned i = 0; i < nl && !rc; i++) {
        l[i].fd = listen_on(l[i].path);
        if (l[i].fd < 0) {
            log_err("cannot listen on %s: %s", l[i].path, strerror(-l[i].fd));
            rc = 1;
        } else if (i) {
            log_notice("listening on %s as domain %u", l[i].path, l[i].domid);
        }
    }
    if (!rc && pidfile && (rc = write_pidfile(pidfile)) != 0) {
        log_err("cannot write pidfile %s: %s", pidfile, strerror(-rc));
        pidfile = NULL;
        rc = 1;
    }
    if (!rc) {
        log_notice("listening on %s", sock);
        rc = serve(s, l, nl, &waitmask);
    }
    if (stop_signal)
        log_notice("signal %d: exiting", (int)stop_signal);

    for (unsigned i = 0; i < s->nconns; i++)
        conn_free(s->conns[i]);
    s->nconns = 0;
    tree_free(&s->tree);
    for (unsigned i = 0; i < nl; i++) {
        if (l[i].fd >= 0) {
            close(l[i].fd);
            unlink(l[i].path);
        }
    }
    if (pidfile)
        unlink(pidfile);
    return rc ? 1 : 0;
}

