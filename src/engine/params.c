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
 * engine name is part of the path ("/srv/a:b.img" is a file).  Every engine
 * and filter name is a row of one table (kinds[] below, eng_kind_find);
 * xen-blkbackd-engines(7) documents each row (checked by t_engine).
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

static const struct eng_kind kinds[] = {
    { "uring", &engine_uring, ENG_KIND_PATH, NULL, NULL },
    { "aio", &engine_aio, ENG_KIND_PATH, NULL, NULL },
    { "null", &engine_null, 0, NULL, NULL },
    { "nbd", &engine_nbd, 0, is_nbd, NULL },
    { "rbd", &engine_rbd, 0, NULL, NULL },
    { "error", NULL, 0, NULL, open_error },
    { "delay", NULL, 0, NULL, open_delay },
};

const struct eng_kind *eng_kinds(unsigned *n)
{
    *n = sizeof(kinds) / sizeof(kinds[0]);
    return kinds;
}

const struct eng_kind *eng_kind_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (!strcmp(kinds[i].name, name))
            return &kinds[i];
    return NULL;
}

/* The row whose prefix params starts with ("<name>:", or its own match),
 * *rest what follows; NULL: no prefix, params is a path. */
static const struct eng_kind *kind_of(const char *params, const char **rest)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        const struct eng_kind *k = &kinds[i];
        size_t n = strlen(k->name);
        if (k->match) {
            if (k->match(params, rest))
                return k;
        } else if (!strncmp(params, k->name, n) && params[n] == ':') {
            *rest = params + n + 1;
            return k;
        }
    }
    return NULL;
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
    const struct eng_kind *k = kind_of(params, &rest);
    if (k && k->open_filter)
        return allow_filters ? k->open_filter(rest, &q, out) : -EPERM;
    if (k && !(k->flags & ENG_KIND_PATH)) {
        q.path = rest;
        return k->ops->open(&q, out);
    }
    if (!k)
        rest = params;
    if (!*rest)
        return -EINVAL;
    q.path = rest;
    const struct engine_ops *ops = k ? k->ops : eng_default_ops(&q);
    return ops->open(&q, out);
}

const char *eng_params_path(const char *params)
{
    const char *rest;
    while (params && *params) {
        const struct eng_kind *k = kind_of(params, &rest);
        if (!k)
            return params;
        if (k->open_filter) {
            const char *colon = strchr(rest, ':');      /* "<args>:<inner>" */
            params = colon ? colon + 1 : NULL;
        } else {
            return (k->flags & ENG_KIND_PATH) && *rest ? rest : NULL;
        }
    }
    return NULL;
}

engine_ready_fn engine_ready_op(const struct engine_ops *o)
{
    if (o->size < offsetof(struct engine_ops, completions_ready) + sizeof(o->completions_ready))
        return NULL;
    return o->completions_ready;
}

bool engine_has_wait(const struct engine_ops *o)
{
    if (o->size < offsetof(struct engine_ops, watch_write) + sizeof(o->watch_write))
        return false;
    return o->queue_open_watch && o->wait && o->watch_read && o->watch_write;
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
