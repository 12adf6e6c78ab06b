/*
 * watch.c - watches of xen-sim-xenstored.  A change at path fires every
 * watch whose path is path or above it; a removal also fires watches below
 * the removed node, with the watch's own path (xenstore.txt WATCH_EVENT;
 * xenstored_watch.c fire_watches).  "@..." watches fire only on the special
 * events of the same name (@introduceDomain, @releaseDomain).  A connection
 * acting as an unprivileged domain gets only the events it may see
 * (perms.c watch_permitted).
 */
#include "xenstored.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int watch_add(struct xsd_conn *c, const char *path, const char *token, bool relative)
{
    for (struct xsd_watch *w = c->watches; w; w = w->next)
        if (strcmp(w->path, path) == 0 && strcmp(w->token, token) == 0)
            return -EEXIST;
    if (c->nwatches >= c->srv->max_watches)
        return -E2BIG;          /* xenstored's watch quota error */
    struct xsd_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->path = strdup(path);
    w->token = strdup(token);
    if (!w->path || !w->token) {
        free(w->path);
        free(w->token);
        free(w);
        return -ENOMEM;
    }
    w->relative = relative;
    /* Keep creation order: append. */
    struct xsd_watch **pp = &c->watches;
    while (*pp)
        pp = &(*pp)->next;
    *pp = w;
    c->nwatches++;
    return 0;
}

static void watch_destroy(struct xsd_watch *w)
{
    free(w->path);
    free(w->token);
    free(w);
}

int watch_del(struct xsd_conn *c, const char *path, const char *token)
{
    for (struct xsd_watch **pp = &c->watches; *pp; pp = &(*pp)->next) {
        struct xsd_watch *w = *pp;
        if (strcmp(w->path, path) == 0 && strcmp(w->token, token) == 0) {
            *pp = w->next;
            watch_destroy(w);
            c->nwatches--;
            return 0;
        }
    }
    return -ENOENT;
}

void watch_free_all(struct xsd_conn *c)
{
    while (c->watches) {
        struct xsd_watch *w = c->watches;
        c->watches = w->next;
        watch_destroy(w);
    }
    c->nwatches = 0;
}

void watch_send(struct xsd_conn *c, const struct xsd_watch *w, const char *epath)
{
    size_t hl = strlen(c->home);
    if (w->relative && strncmp(epath, c->home, hl) == 0 && epath[hl] == '/')
        epath += hl + 1;
    conn_send(c, XS_WATCH_EVENT, 0, 0, epath, (uint32_t)strlen(epath) + 1,
              w->token, (uint32_t)strlen(w->token) + 1);
}

void watch_fire(struct xsd_server *s, const char *path, bool recursive,
                const struct xsd_perm *old, unsigned nold)
{
    bool special = path[0] == '@';
    for (unsigned i = 0; i < s->nconns; i++) {
        struct xsd_conn *c = s->conns[i];
        if (c->dead)
            continue;
        /* Asked once per connection for the node itself; a watch below a
         * removed node is checked against the node at its own path (which
         * must then exist, as in xenstored, where each removed node fires). */
        int seen = -1;
        for (struct xsd_watch *w = c->watches; w && !c->dead; w = w->next) {
            if (special || w->path[0] == '@') {
                if (strcmp(w->path, path) == 0 && watch_permitted(c, &s->tree, path, NULL, 0))
                    watch_send(c, w, path);
            } else if (path_is_child(path, w->path)) {
                if (seen < 0)
                    seen = watch_permitted(c, &s->tree, path, old, nold);
                if (seen)
                    watch_send(c, w, path);
            } else if (recursive && path_is_child(w->path, path)) {
                if (watch_permitted(c, &s->tree, w->path, NULL, 0))
                    watch_send(c, w, w->path);
            }
        }
    }
}
