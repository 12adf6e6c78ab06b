/*
 * params.c - engine_open_params: the xenstore `params` value -> an opened
 * engine (syntax in engine.h and xen-blkbackd-engines(7)).
 *
 *   [uring:]path                       io_uring on a file or block device
 *                                      (no prefix: aio if io_uring is unavailable)
 *   aio:path                           libaio on a file or block device
 *   null:<bytes>                       zeroes, writes dropped
 *   nbd[s][+unix|+vsock]://...         an NBD URI (libnbd; src/engine/nbd.c)
 *   nbd:<URI>                          the same, with an explicit prefix
 *   rbd:<pool>[/<ns>]/<image>[@<snap>][:<key>=<value>]...   Ceph RBD (rbd.c)
 *   error:<start>-<end>[,r|w|rw]:<inner>   filter (allow_filters only)
 *   delay:[w]<usec>:<inner>                filter (allow_filters only; w: writes only)
 * Sizes accept k/M/G/T suffixes (powers of 1024).  A prefix that is not an
 * engine name is part of the path ("/srv/a:b.img" is a file).
 */
#include "engine.h"
#include "util.h"
#include "engine_priv.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

static bool has_prefix(const char *s, const char *pfx, const char **rest)
{
    size_t n = strlen(pfx);
    if (strncmp(s, pfx, n) != 0)
        return false;
    *rest = s + n;
    return true;
}

/* "<start>-<end>[,r|w|rw]:<inner>" */
static int open_error(const char *spec, const struct engine_params *p, struct engine **out)
{
    const char *dash = strchr(spec, '-');
    const char *colon = strchr(spec, ':');
    if (!dash || !colon || dash > colon)
        return -EINVAL;
    const char *comma = memchr(dash, ',', (size_t)(colon - dash));
    const char *end_end = comma ? comma : colon;
    uint64_t start, end;
    if (eng_parse_size(spec, dash, &start) < 0 || eng_parse_size(dash + 1, end_end, &end) < 0 ||
        end <= start)
        return -EINVAL;
    bool r = true, w = true;
    if (comma) {
        size_t n = (size_t)(colon - comma - 1);
        if (n == 1 && comma[1] == 'r')
            w = false;
        else if (n == 1 && comma[1] == 'w')
            r = false;
        else if (!(n == 2 && comma[1] == 'r' && comma[2] == 'w'))
            return -EINVAL;
    }
    struct engine *inner;
    int rc = engine_open_params(colon + 1, p, true, &inner);
    if (rc < 0)
        return rc;
    return engine_error_open(inner, start, end, r, w, out);
}

/* "[w]<usec>:<inner>" */
static int open_delay(const char *spec, const struct engine_params *p, struct engine **out)
{
    bool writes_only = *spec == 'w';
    spec += writes_only;
    const char *colon = strchr(spec, ':');
    uint64_t usec;
    if (!colon || eng_parse_size(spec, colon, &usec) < 0 || usec > 60ull * 1000 * 1000)
        return -EINVAL;
    struct engine *inner;
    int rc = engine_open_params(colon + 1, p, true, &inner);
    if (rc < 0)
        return rc;
    return engine_delay_open(inner, usec, writes_only, out);
}

/* An NBD URI (libnbd's schemes, docs/libnbd.pod "nbd_connect_uri"), or
 * "nbd:" followed by one: the URI in *uri. */
static bool is_nbd(const char *s, const char **uri)
{
    static const char *const schemes[] = { "nbd://", "nbds://", "nbd+unix://", "nbds+unix://",
                                           "nbd+vsock://", "nbds+vsock://" };
    const char *rest;
    if (has_prefix(s, "nbd:", &rest) && strncmp(rest, "//", 2) != 0)
        s = rest;
    for (size_t i = 0; i < ARRAY_SIZE(schemes); i++)
        if (has_prefix(s, schemes[i], &rest)) {
            *uri = s;
            return true;
        }
    return false;
}

int engine_open_params(const char *params, const struct engine_params *p,
                       bool allow_filters, struct engine **out)
{
    struct engine_params q = { 0 };
    const char *rest;

    if (!params || !*params)
        return -EINVAL;
    if (p)
        q = *p;
    if (has_prefix(params, "error:", &rest))
        return allow_filters ? open_error(rest, &q, out) : -EPERM;
    if (has_prefix(params, "delay:", &rest))
        return allow_filters ? open_delay(rest, &q, out) : -EPERM;
    if (has_prefix(params, "null:", &rest)) {
        q.path = rest;
        return engine_null.open(&q, out);
    }
    if (is_nbd(params, &rest)) {
        q.path = rest;
        return engine_nbd.open(&q, out);
    }
    if (has_prefix(params, "rbd:", &rest)) {
        q.path = rest;
        return engine_rbd.open(&q, out);
    }
    const struct engine_ops *ops = NULL;
    if (has_prefix(params, "uring:", &rest))
        ops = &engine_uring;
    else if (has_prefix(params, "aio:", &rest))
        ops = &engine_aio;
    else
        rest = params;
    if (!*rest)
        return -EINVAL;
    q.path = rest;
    if (!ops)
        ops = eng_default_ops(q.name ? q.name : rest);
    return ops->open(&q, out);
}

const char *eng_params_path(const char *params)
{
    const char *rest;
    while (params && *params) {
        if (has_prefix(params, "error:", &rest) || has_prefix(params, "delay:", &rest)) {
            const char *colon = strchr(rest, ':');
            params = colon ? colon + 1 : NULL;
        } else if (has_prefix(params, "null:", &rest) || is_nbd(params, &rest) ||
                   has_prefix(params, "rbd:", &rest)) {
            return NULL;
        } else if (has_prefix(params, "uring:", &rest) || has_prefix(params, "aio:", &rest)) {
            return *rest ? rest : NULL;
        } else {
            return params;
        }
    }
    return NULL;
}

int engine_get_size(struct engine *e, uint64_t *bytes)
{
    const struct engine_ops *o = e->ops;
    if (o->size < offsetof(struct engine_ops, get_size) + sizeof(o->get_size) || !o->get_size) {
        *bytes = e->size;
        return 0;
    }
    uint64_t b;
    int rc = o->get_size(e, &b);
    if (rc == 0)
        *bytes = b;
    return rc;
}
