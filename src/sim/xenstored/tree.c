/*
 * tree.c - the xenstore node tree of xen-sim-xenstored: path rules, lookup,
 * creation with inherited permissions, removal, snapshots, perms strings.
 * Rules from Xen docs/misc/xenstore.txt ("Paths are /-separated...") and
 * xenstored_core.c (is_valid_nodename, construct_node).
 */
#include "xenstored.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char valid_chars[] = "-/_@";

int path_canon(const char *home, const char *in, char *out, size_t len)
{
    size_t n;
    if (in[0] != '/') {
        if (strlen(in) > XENSTORE_REL_PATH_MAX)
            return -EINVAL;
        n = (size_t)snprintf(out, len, "%s/%s", home, in);
    } else {
        n = (size_t)snprintf(out, len, "%s", in);
    }
    if (n >= len || n > XENSTORE_ABS_PATH_MAX)
        return -EINVAL;
    if (strcmp(out, "/") == 0)
        return 0;
    if (out[n - 1] == '/' || strstr(out, "//"))
        return -EINVAL;
    for (const char *p = out; *p; p++)
        if (!isalnum((unsigned char)*p) || (unsigned char)*p >= 0x80)
            if (!strchr(valid_chars, *p))
                return -EINVAL;
    return 0;
}

bool path_is_child(const char *child, const char *parent)
{
    size_t pl = strlen(parent);
    if (strcmp(parent, "/") == 0)
        return child[0] == '/';
    return strncmp(child, parent, pl) == 0 && (child[pl] == '\0' || child[pl] == '/');
}

static struct xsd_node *kid_find(const struct xsd_node *n, const char *name, size_t nlen)
{
    for (unsigned i = 0; i < n->nkids; i++)
        if (strncmp(n->kids[i]->name, name, nlen) == 0 && n->kids[i]->name[nlen] == '\0')
            return n->kids[i];
    return NULL;
}

/* Walk path as far as it exists; *rest points at the first missing part. */
static struct xsd_node *walk(const struct xsd_tree *t, const char *path, const char **rest)
{
    struct xsd_node *n = t->root;
    const char *p = path;
    while (*p == '/')
        p++;
    while (*p) {
        const char *e = strchrnul(p, '/');
        struct xsd_node *k = kid_find(n, p, (size_t)(e - p));
        if (!k)
            break;
        n = k;
        p = *e ? e + 1 : e;
    }
    *rest = p;
    return n;
}

struct xsd_node *tree_lookup(const struct xsd_tree *t, const char *path)
{
    const char *rest;
    struct xsd_node *n = walk(t, path, &rest);
    return *rest ? NULL : n;
}

struct xsd_node *tree_nearest(const struct xsd_tree *t, const char *path)
{
    const char *rest;
    return walk(t, path, &rest);
}

static struct xsd_node *node_new(const char *name, size_t nlen)
{
    struct xsd_node *n = calloc(1, sizeof(*n));
    if (!n)
        return NULL;
    n->name = strndup(name, nlen);
    if (!n->name) {
        free(n);
        return NULL;
    }
    return n;
}

static void node_free(struct xsd_node *n)
{
    for (unsigned i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n->name);
    free(n->value);
    free(n->perms);
    free(n);
}

static unsigned subtree_count(const struct xsd_node *n)
{
    unsigned c = 1;
    for (unsigned i = 0; i < n->nkids; i++)
        c += subtree_count(n->kids[i]);
    return c;
}

static int kid_add(struct xsd_node *p, struct xsd_node *k)
{
    if (p->nkids == p->kcap) {
        unsigned cap = p->kcap ? p->kcap * 2 : 4;
        struct xsd_node **nk = realloc(p->kids, cap * sizeof(*nk));
        if (!nk)
            return -ENOMEM;
        p->kids = nk;
        p->kcap = cap;
    }
    p->kids[p->nkids++] = k;
    k->parent = p;
    return 0;
}

int tree_set_perms(struct xsd_tree *t, struct xsd_node *n, const struct xsd_perm *p, unsigned np)
{
    struct xsd_perm *c = malloc(np * sizeof(*c));
    if (!c)
        return -ENOMEM;
    memcpy(c, p, np * sizeof(*c));
    free(n->perms);
    n->perms = c;
    n->nperms = np;
    n->gen = ++*t->gen_counter;
    return 0;
}

int tree_set_value(struct xsd_tree *t, struct xsd_node *n, const void *val, unsigned len)
{
    char *v = malloc(len ? len : 1);
    if (!v)
        return -ENOMEM;
    if (len)
        memcpy(v, val, len);
    free(n->value);
    n->value = v;
    n->vlen = len;
    n->gen = ++*t->gen_counter;
    return 0;
}

int tree_create(struct xsd_tree *t, const char *path, int owner, struct xsd_node **out)
{
    const char *rest;
    struct xsd_node *n = walk(t, path, &rest);
    while (*rest) {
        if (t->nnodes >= t->max_nodes)
            return -ENOSPC;
        const char *e = strchrnul(rest, '/');
        struct xsd_node *k = node_new(rest, (size_t)(e - rest));
        if (!k || tree_set_perms(t, k, n->perms, n->nperms) || kid_add(n, k)) {
            if (k)
                node_free(k);
            return -ENOMEM;
        }
        if (owner >= 0)
            k->perms[0].domid = (uint32_t)owner;
        t->nnodes++;
        n->gen = ++*t->gen_counter;     /* its child list changed */
        k->gen = ++*t->gen_counter;
        n = k;
        rest = *e ? e + 1 : e;
    }
    *out = n;
    return 0;
}

void tree_remove(struct xsd_tree *t, struct xsd_node *n)
{
    struct xsd_node *p = n->parent;
    for (unsigned i = 0; i < p->nkids; i++) {
        if (p->kids[i] == n) {
            memmove(&p->kids[i], &p->kids[i + 1], (p->nkids - i - 1) * sizeof(*p->kids));
            p->nkids--;
            break;
        }
    }
    p->gen = ++*t->gen_counter;
    t->nnodes -= subtree_count(n);
    node_free(n);
}

size_t node_path(const struct xsd_node *n, char *buf, size_t len)
{
    if (!n->parent) {
        snprintf(buf, len, "/");
        return 1;
    }
    size_t pl = node_path(n->parent, buf, len);
    if (pl == 1)
        pl = 0;         /* the root contributes only the separator */
    int r = snprintf(buf + (pl < len ? pl : len), pl < len ? len - pl : 0, "/%s", n->name);
    return pl + (size_t)r;
}

static struct xsd_node *node_copy(const struct xsd_node *s)
{
    struct xsd_node *d = node_new(s->name, strlen(s->name));
    if (!d)
        return NULL;
    d->gen = s->gen;
    d->vlen = s->vlen;
    d->value = malloc(s->vlen ? s->vlen : 1);
    d->perms = malloc(s->nperms * sizeof(*d->perms));
    d->kids = s->nkids ? malloc(s->nkids * sizeof(*d->kids)) : NULL;
    if (!d->value || !d->perms || (s->nkids && !d->kids))
        goto fail;
    if (s->vlen)
        memcpy(d->value, s->value, s->vlen);
    memcpy(d->perms, s->perms, s->nperms * sizeof(*d->perms));
    d->nperms = s->nperms;
    d->kcap = s->nkids;
    for (unsigned i = 0; i < s->nkids; i++) {
        struct xsd_node *k = node_copy(s->kids[i]);
        if (!k)
            goto fail;
        k->parent = d;
        d->kids[d->nkids++] = k;
    }
    return d;
fail:
    node_free(d);
    return NULL;
}

int tree_copy(struct xsd_tree *dst, const struct xsd_tree *src)
{
    struct xsd_node *r = node_copy(src->root);
    if (!r)
        return -ENOMEM;
    dst->root = r;
    dst->nnodes = src->nnodes;
    dst->max_nodes = src->max_nodes;
    dst->gen_counter = src->gen_counter;
    return 0;
}

void tree_free(struct xsd_tree *t)
{
    if (t->root)
        node_free(t->root);
    t->root = NULL;
    t->nnodes = 0;
}

int tree_init(struct xsd_tree *t, uint64_t *gen_counter, unsigned max_nodes)
{
    static const struct xsd_perm dom0_none = { 'n', 0 };
    struct xsd_node *n;
    t->gen_counter = gen_counter;
    t->max_nodes = max_nodes;
    t->nnodes = 1;
    t->root = node_new("", 0);
    if (!t->root || tree_set_perms(t, t->root, &dom0_none, 1) || tree_set_value(t, t->root, "", 0))
        goto fail;
    if (tree_create(t, "/local/domain/0/domid", -1, &n) || tree_set_value(t, n, "0", 1))
        goto fail;
    if (tree_create(t, "/local/domain/0/name", -1, &n) || tree_set_value(t, n, "Domain-0", 8))
        goto fail;
    if (tree_create(t, "/tool", -1, &n))
        goto fail;
    return 0;
fail:
    tree_free(t);
    return -ENOMEM;
}

int perms_parse(const char *buf, unsigned len, struct xsd_perm *out, unsigned max, unsigned *n)
{
    unsigned cnt = 0;
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *z = memchr(p, '\0', (size_t)(end - p));
        if (!z || cnt >= max)
            return -EINVAL;
        if (!strchr("nrwb", p[0]) || p[0] == '\0' || !isdigit((unsigned char)p[1]))
            return -EINVAL;
        uint64_t d;
        if (xbd_parse_u64(p + 1, 10, 0, 65535, &d))
            return -EINVAL;
        out[cnt].mode = p[0];
        out[cnt].domid = (uint32_t)d;
        cnt++;
        p = z + 1;
    }
    if (cnt == 0)
        return -EINVAL;
    *n = cnt;
    return 0;
}
