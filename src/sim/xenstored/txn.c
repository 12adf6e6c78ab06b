/*
 * txn.c - transactions of xen-sim-xenstored.  A transaction works on a
 * private copy of the whole tree taken at TRANSACTION_START (xenstore.txt:
 * "When transaction is started whole db is copied").  It records every node
 * it read or wrote (listings included) with the node's change stamp as first
 * seen, and a log of its changes.  Commit fails with EAGAIN if any recorded
 * node changed in the main tree since; otherwise the log is replayed on the
 * main tree, which fires the watches (xenstore.txt: "Changes made in
 * transactions cause an event only if and when committed").
 */
#include "xenstored.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static unsigned hash_path(const char *p)
{
    unsigned h = 2166136261u;
    while (*p)
        h = (h ^ (unsigned char)*p++) * 16777619u;
    return h % XSD_ACC_BUCKETS;
}

int txn_start(struct xsd_conn *c, uint32_t *id)
{
    struct xsd_server *s = c->srv;
    if (c->ntxns >= s->max_txns)
        return -ENOSPC;         /* xenstored's per-connection quota error */
    if (s->ntxns_total >= XSD_MAX_TXNS_TOTAL)
        return -EAGAIN;
    struct xsd_txn *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    if (tree_copy(&x->snap, &s->tree)) {
        free(x);
        return -ENOMEM;
    }
    do {
        x->id = ++s->next_txn_id;
    } while (x->id == 0 || txn_find(c, x->id));
    x->log_tail = &x->log;
    x->next = c->txns;
    c->txns = x;
    c->ntxns++;
    s->ntxns_total++;
    *id = x->id;
    return 0;
}

struct xsd_txn *txn_find(struct xsd_conn *c, uint32_t id)
{
    for (struct xsd_txn *x = c->txns; x; x = x->next)
        if (x->id == id)
            return x;
    return NULL;
}

int txn_note(struct xsd_txn *x, const char *path)
{
    unsigned b = hash_path(path);
    for (struct xsd_access *a = x->acc[b]; a; a = a->next)
        if (strcmp(a->path, path) == 0)
            return 0;
    size_t l = strlen(path);
    struct xsd_access *a = malloc(sizeof(*a) + l + 1);
    if (!a)
        return -ENOMEM;
    memcpy(a->path, path, l + 1);
    const struct xsd_node *n = tree_lookup(&x->snap, path);
    a->gen = n ? n->gen : 0;
    a->next = x->acc[b];
    x->acc[b] = a;
    return 0;
}

int txn_log(struct xsd_txn *x, enum xsd_logop op, const char *path, const void *data, unsigned len)
{
    struct xsd_logent *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->op = op;
    e->path = strdup(path);
    e->data = malloc(len ? len : 1);
    if (!e->path || !e->data) {
        free(e->path);
        free(e->data);
        free(e);
        return -ENOMEM;
    }
    if (len)
        memcpy(e->data, data, len);
    e->len = len;
    *x->log_tail = e;
    x->log_tail = &e->next;
    return 0;
}

static void txn_destroy(struct xsd_server *s, struct xsd_txn *x)
{
    for (unsigned b = 0; b < XSD_ACC_BUCKETS; b++) {
        while (x->acc[b]) {
            struct xsd_access *a = x->acc[b];
            x->acc[b] = a->next;
            free(a);
        }
    }
    while (x->log) {
        struct xsd_logent *e = x->log;
        x->log = e->next;
        free(e->path);
        free(e->data);
        free(e);
    }
    tree_free(&x->snap);
    free(x);
    s->ntxns_total--;
}

static bool txn_conflicts(const struct xsd_server *s, const struct xsd_txn *x)
{
    for (unsigned b = 0; b < XSD_ACC_BUCKETS; b++) {
        for (const struct xsd_access *a = x->acc[b]; a; a = a->next) {
            const struct xsd_node *n = tree_lookup(&s->tree, a->path);
            if ((n ? n->gen : 0) != a->gen)
                return true;
        }
    }
    return false;
}

int txn_end(struct xsd_conn *c, struct xsd_txn *x, bool commit)
{
    struct xsd_server *s = c->srv;
    for (struct xsd_txn **pp = &c->txns; *pp; pp = &(*pp)->next) {
        if (*pp == x) {
            *pp = x->next;
            break;
        }
    }
    c->ntxns--;
    int rc = 0;
    if (commit) {
        if (txn_conflicts(s, x)) {
            rc = -EAGAIN;
        } else {
            for (struct xsd_logent *e = x->log; e; e = e->next) {
                int r = ops_apply(s, conn_owner(c), e->op, e->path, e->data, e->len);
                if (r)      /* cannot happen unless out of memory or nodes */
                    log_warn("conn %u: transaction %u: replay of %s failed: %s",
                             c->id, x->id, e->path, strerror(-r));
            }
        }
    }
    txn_destroy(s, x);
    return rc;
}

void txn_free_all(struct xsd_conn *c)
{
    while (c->txns) {
        struct xsd_txn *x = c->txns;
        c->txns = x->next;
        txn_destroy(c->srv, x);
    }
    c->ntxns = 0;
}
