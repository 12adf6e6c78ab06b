/*
 * perms.c - permission checks of xen-sim-xenstored for connections that act
 * as an unprivileged domain (--domain-socket), as xenstored makes them for a
 * domain's ring connection: xen-project/xen:tools/xenstore/xenstored_core.c@RELEASE-4.17.7
 * perm_for_conn, get_node, ask_parents, errno_from_parents, and
 * xen-project/xen:tools/xenstore/xenstored_watch.c@RELEASE-4.17.7 watch_permitted.
 * A privileged connection (the main socket, dom0) may do everything.
 */
#include "xenstored.h"

#include <errno.h>
#include <string.h>

#define PERM_ALL (XSD_PERM_READ | XSD_PERM_WRITE | XSD_PERM_OWNER)

static unsigned mode_bits(char mode)
{
    switch (mode) {
    case 'r': return XSD_PERM_READ;
    case 'w': return XSD_PERM_WRITE;
    case 'b': return XSD_PERM_READ | XSD_PERM_WRITE;
    default:  return 0;
    }
}

/* The domain c's domain was made the device model of (SET_TARGET), or
 * UINT32_MAX. */
static uint32_t conn_target(const struct xsd_conn *c)
{
    const struct xsd_server *s = c->srv;
    for (unsigned i = 0; i < s->ndomains; i++)
        if (s->domains[i].domid == c->domid && s->domains[i].introduced)
            return s->domains[i].target;
    return UINT32_MAX;
}

unsigned perm_for_conn(const struct xsd_conn *c, const struct xsd_perm *p, unsigned np)
{
    if (!c || !c->unpriv)
        return PERM_ALL;
    if (np == 0)
        return 0;
    uint32_t tg = conn_target(c);
    /* Owners and tools get it all... */
    if (p[0].domid == c->domid || (tg != UINT32_MAX && p[0].domid == tg))
        return PERM_ALL;
    for (unsigned i = 1; i < np; i++)
        if (p[i].domid == c->domid || (tg != UINT32_MAX && p[i].domid == tg))
            return mode_bits(p[i].mode);
    return mode_bits(p[0].mode);
}

static unsigned node_perm(const struct xsd_conn *c, const struct xsd_node *n)
{
    return perm_for_conn(c, n->perms, n->nperms);
}

int node_access(const struct xsd_conn *c, const struct xsd_tree *t, const char *path,
                unsigned want, struct xsd_node **out)
{
    struct xsd_node *n = tree_lookup(t, path);
    if (n) {
        if ((node_perm(c, n) & want) != want)
            return -EACCES;
        *out = n;
        return 0;
    }
    /* Missing: tell them only if the nearest existing ancestor would. */
    return (node_perm(c, tree_nearest(t, path)) & want) ? -ENOENT : -EACCES;
}

bool watch_permitted(const struct xsd_conn *c, const struct xsd_tree *t, const char *path,
                     const struct xsd_perm *old, unsigned nold)
{
    if (!c->unpriv)
        return true;
    if (path[0] == '@')
        return false;           /* special watches: dom0 only (default perms n0) */
    if (old && (perm_for_conn(c, old, nold) & XSD_PERM_READ))
        return true;
    const struct xsd_node *n = tree_lookup(t, path);
    if (!n)
        return false;
    if (node_perm(c, n) & XSD_PERM_READ)
        return true;
    return n->parent && (node_perm(c, n->parent) & XSD_PERM_READ);
}
