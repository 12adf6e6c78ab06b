/*
 * util.c - small helpers of the engines: a completed-I/O FIFO with an
 * eventfd, size parsing.
 */
#include "engine_priv.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

int eng_done_init(struct eng_done *d, unsigned cap, bool with_fd)
{
    d->v = calloc(cap ? cap : 1, sizeof(*d->v));
    if (!d->v)
        return -ENOMEM;
    d->cap = cap ? cap : 1;
    d->head = d->n = 0;
    d->efd = -1;
    if (with_fd) {
        d->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (d->efd < 0) {
            int e = -errno;
            free(d->v);
            d->v = NULL;
            return e;
        }
    }
    return 0;
}

void eng_done_fini(struct eng_done *d)
{
    if (d->efd >= 0)
        close(d->efd);
    d->efd = -1;
    free(d->v);
    d->v = NULL;
}

void eng_efd_drain(int efd)
{
    uint64_t v;
    if (efd >= 0 && read(efd, &v, sizeof(v)) < 0) {
        /* EAGAIN: nothing to drain */
    }
}

void eng_efd_signal(int efd)
{
    uint64_t one = 1;
    if (efd >= 0 && write(efd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the counter is saturated, so it is readable anyway */
    }
}

int eng_done_push(struct eng_done *d, struct engine_io *io)
{
    if (d->n >= d->cap)
        return -EBUSY;
    d->v[(d->head + d->n) % d->cap] = io;
    if (d->n++ == 0)
        eng_efd_signal(d->efd);
    return 0;
}

int eng_done_reap(struct eng_done *d, engine_done_fn done, void *arg)
{
    unsigned n = d->n;
    if (n == 0)
        return 0;               /* the eventfd is signalled only while n > 0 */
    if (d->efd >= 0)
        eng_efd_drain(d->efd);
    for (unsigned i = 0; i < n; i++) {
        struct engine_io *io = d->v[d->head];
        d->head = (d->head + 1) % d->cap;
        d->n--;
        done(io, arg);
    }
    /* ios pushed by done() keep the eventfd signalled for the next round */
    if (d->n)
        eng_efd_signal(d->efd);
    return (int)n;
}

int eng_parse_size(const char *s, const char *end, uint64_t *out)
{
    uint64_t v = 0, mul = 1;
    const char *p = s;

    if (!end)
        for (end = s; *end; end++)
            ;
    if (p == end || *p < '0' || *p > '9')
        return -EINVAL;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -EINVAL;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (p < end) {
        switch (*p) {
        case 'k': case 'K': mul = 1ull << 10; break;
        case 'm': case 'M': mul = 1ull << 20; break;
        case 'g': case 'G': mul = 1ull << 30; break;
        case 't': case 'T': mul = 1ull << 40; break;
        default: return -EINVAL;
        }
        p++;
    }
    if (p != end)
        return -EINVAL;
    if (v && mul > UINT64_MAX / v)
        return -EINVAL;
    *out = v * mul;
    return 0;
}

void eng_log_dev(struct log_dev *out, const struct engine_params *p)
{
    if (p->dev)
        *out = *p->dev;
    else
        log_dev_init(out, p->name ? p->name : p->path, -1, -1, NULL);
}
