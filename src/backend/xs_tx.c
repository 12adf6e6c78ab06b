/*
 * xs_tx.c - small xenstore helpers of the control plane: typed reads and the
 * one transactional writer used for every state change (docs/protocol.md §2
 * (states), "Writing `state`").
 */
#include "backend.h"
#include "xs_keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XS_TX_RETRIES 16

void xs_kv_set(struct xs_kv *kv, const char *key, unsigned long long val)
{
    kv->key = key;
    kv->sval = NULL;
    snprintf(kv->val, sizeof(kv->val), "%llu", val);
    kv->rm = false;
}

void xs_kv_str(struct xs_kv *kv, const char *key, const char *val)
{
    kv->key = key;
    kv->sval = val;
    kv->val[0] = 0;
    kv->rm = false;
}

void xs_kv_rm(struct xs_kv *kv, const char *key)
{
    kv->key = key;
    kv->sval = NULL;
    kv->val[0] = 0;
    kv->rm = true;
}

static int join(char *buf, size_t len, const char *dir, const char *key)
{
    int n = snprintf(buf, len, "%s/%s", dir, key);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int xs_read_str(struct backend *b, const char *dir, const char *key, char **out)
{
    char path[512];
    int rc = join(path, sizeof(path), dir, key);
    if (rc)
        return rc;
    return b->ops->xs_read(b->xs, XEN_XS_NO_TX, path, out, NULL);
}

int xs_read_int(struct backend *b, const char *dir, const char *key, long long *out)
{
    char *v = NULL;
    int rc = xs_read_str(b, dir, key, &v);
    if (rc)
        return rc;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    rc = (end == v || *end || errno) ? -EINVAL : 0;
    free(v);
    if (!rc)
        *out = x;
    return rc;
}

int xs_tx_write(struct backend *b, const char *dir, const struct xs_kv *kv, unsigned n,
                int new_state)
{
    const struct xen_ops *ops = b->ops;
    char path[512], sv[16];
    int rc;

    if (join(path, sizeof(path), dir, XSK_STATE))
        return -ENAMETOOLONG;
    for (int attempt = 0; attempt < XS_TX_RETRIES; attempt++) {
        xen_tx_t t;
        rc = ops->xs_tx_start(b->xs, &t);
        if (rc)
            return rc;
        char *cur = NULL;
        rc = ops->xs_read(b->xs, t, path, &cur, NULL);
        free(cur);
        for (unsigned i = 0; !rc && i < n; i++) {
            char p[512];
            rc = join(p, sizeof(p), dir, kv[i].key);
            if (rc)
                break;
            if (kv[i].rm) {
                rc = ops->xs_rm(b->xs, t, p);
                if (rc == -ENOENT)
                    rc = 0;
            } else {
                rc = ops->xs_write(b->xs, t, p, kv[i].sval ? kv[i].sval : kv[i].val);
            }
        }
        if (!rc && new_state >= 0) {
            snprintf(sv, sizeof(sv), "%d", new_state);
            rc = ops->xs_write(b->xs, t, path, sv);
        }
        if (rc) {
            ops->xs_tx_end(b->xs, t, true);
            return rc;
        }
        rc = ops->xs_tx_end(b->xs, t, false);
        if (rc != -EAGAIN)
            return rc;
    }
    return -EAGAIN;
}
