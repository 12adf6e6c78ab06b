/*
 * ops.c - request handlers of xen-sim-xenstored, one per xs_wire.h type.
 * Payload formats and errors follow Xen docs/misc/xenstore.txt and
 * docs/protocol.md §5.1.  Main-socket clients are privileged dom0; a
 * --domain-socket client is checked as xenstored checks an unprivileged
 * domain (perms.c): reads need READ, writes WRITE, SET_PERMS ownership, the
 * domain requests and CONTROL are refused with EACCES (xenstored_core.c
 * wire_funcs XS_FLAG_PRIV).
 */
#include "xenstored.h"
#include "util.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_BUF (XENSTORE_ABS_PATH_MAX + 64)

static const char *const type_names[XS_TYPE_COUNT] = {
    [XS_CONTROL] = "CONTROL", [XS_DIRECTORY] = "DIRECTORY", [XS_READ] = "READ",
    [XS_GET_PERMS] = "GET_PERMS", [XS_WATCH] = "WATCH", [XS_UNWATCH] = "UNWATCH",
    [XS_TRANSACTION_START] = "TRANSACTION_START", [XS_TRANSACTION_END] = "TRANSACTION_END",
    [XS_INTRODUCE] = "INTRODUCE", [XS_RELEASE] = "RELEASE",
    [XS_GET_DOMAIN_PATH] = "GET_DOMAIN_PATH", [XS_WRITE] = "WRITE", [XS_MKDIR] = "MKDIR",
    [XS_RM] = "RM", [XS_SET_PERMS] = "SET_PERMS", [XS_WATCH_EVENT] = "WATCH_EVENT",
    [XS_ERROR] = "ERROR", [XS_IS_DOMAIN_INTRODUCED] = "IS_DOMAIN_INTRODUCED",
    [XS_RESUME] = "RESUME", [XS_SET_TARGET] = "SET_TARGET",
    [XS_RESET_WATCHES] = "RESET_WATCHES", [XS_DIRECTORY_PART] = "DIRECTORY_PART",
};

const char *ops_type_name(uint32_t type)
{
    if (type < XS_TYPE_COUNT && type_names[type])
        return type_names[type];
    return "UNKNOWN";
}

/* ---- replies ---------------------------------------------------------- */

void reply_err(struct xsd_req *r, int err)
{
    const char *name = "EIO";
    if (err < 0)
        err = -err;
    for (size_t i = 0; i < ARRAY_SIZE(xsd_errors); i++)
        if (xsd_errors[i].errnum == err)
            name = xsd_errors[i].errstring;
    conn_send(r->c, XS_ERROR, r->hdr->req_id, r->hdr->tx_id, name, (uint32_t)strlen(name) + 1, NULL, 0);
}

void reply(struct xsd_req *r, const void *data, uint32_t len)
{
    if (len > XENSTORE_PAYLOAD_MAX) {
        reply_err(r, E2BIG);
        return;
    }
    conn_send(r->c, r->hdr->type, r->hdr->req_id, r->hdr->tx_id, data, len, NULL, 0);
}

void reply_str(struct xsd_req *r, const char *s)
{
    reply(r, s, (uint32_t)strlen(s) + 1);
}

void reply_rc(struct xsd_req *r, int rc)
{
    if (rc)
        reply_err(r, rc);
    else
        reply_str(r, "OK");
}

/* ---- argument parsing ------------------------------------------------- */

/* Split the payload into NUL-terminated strings; returns how many whole
 * strings there are (up to max stored in v). */
unsigned get_strings(const struct xsd_req *r, const char **v, unsigned max)
{
    unsigned n = 0;
    const char *p = r->p, *end = r->p + r->len;
    while (p < end) {
        const char *z = memchr(p, '\0', (size_t)(end - p));
        if (!z)
            break;
        if (n < max)
            v[n] = p;
        n++;
        p = z + 1;
    }
    return n;
}

/* The whole payload is exactly one string (xenstored onearg). */
const char *onearg(const struct xsd_req *r)
{
    if (r->len == 0 || r->p[r->len - 1] != '\0' || memchr(r->p, '\0', r->len) != r->p + r->len - 1)
        return NULL;
    return r->p;
}

int parse_domid(const char *s, uint32_t *out)
{
    uint64_t v;
    if (xbd_parse_u64(s, 10, 0, 65535, &v))
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

/* A path argument of r, relative ones against the caller's home. */
static int canon_arg(const struct xsd_req *r, const char *in, char *out)
{
    return path_canon(r->c->home, in, out, PATH_BUF);
}

int conn_owner(const struct xsd_conn *c)
{
    return c->unpriv ? (int)c->domid : -1;
}

/* ---- changes: on the main tree (firing watches) or in a transaction --- */

static int note_subtree(struct xsd_txn *x, const struct xsd_node *n, char *buf, size_t len)
{
    node_path(n, buf, len);
    int rc = txn_note(x, buf);
    for (unsigned i = 0; rc == 0 && i < n->nkids; i++)
        rc = note_subtree(x, n->kids[i], buf, len);
    return rc;
}

/* Record what a change at path will touch: the node, and when it must be
 * created, every missing node plus the deepest existing one (whose child
 * list changes); for a removal, the whole subtree and the parent. */
static int note_change(struct xsd_txn *x, struct xsd_tree *t, enum xsd_logop op, const char *path)
{
    char buf[PATH_BUF];
    int rc = txn_note(x, path);
    if (rc)
        return rc;
    struct xsd_node *n = tree_lookup(t, path);
    if (op == LOG_RM) {
        if (n)
            rc = note_subtree(x, n, buf, sizeof(buf));
        snprintf(buf, sizeof(buf), "%s", path);
        char *sl = strrchr(buf, '/');
        if (rc == 0 && sl) {
            if (sl == buf)
                sl[1] = '\0';
            else
                *sl = '\0';
            rc = txn_note(x, buf);
        }
        return rc;
    }
    if (n || op == LOG_PERMS)
        return 0;
    struct xsd_node *near = tree_nearest(t, path);
    size_t nl = node_path(near, buf, sizeof(buf));
    rc = txn_note(x, buf);
    snprintf(buf, sizeof(buf), "%s", path);
    for (size_t i = nl + 1; rc == 0 && buf[i]; i++) {
        if (buf[i] == '/') {
            buf[i] = '\0';
            rc = txn_note(x, buf);
            buf[i] = '/';
        }
    }
    return rc;
}

/* Apply one change to tree t.  live: t is the main tree, fire watches (for
 * a removal before the nodes go, while their perms can still be seen, as
 * xenstored's delnode_sub does). */
static int do_change(struct xsd_server *s, struct xsd_tree *t, bool live, int owner,
                     enum xsd_logop op, const char *path, const void *data, unsigned len)
{
    struct xsd_node *n = tree_lookup(t, path);
    struct xsd_perm *old = NULL;
    unsigned nold = 0;
    int rc = 0;
    switch (op) {
    case LOG_WRITE:
        rc = tree_create(t, path, owner, &n);
        if (!rc)
            rc = tree_set_value(t, n, data, len);
        break;
    case LOG_MKDIR:
        if (n)
            return 0;           /* exists: nothing changes, no event */
        rc = tree_create(t, path, owner, &n);
        break;
    case LOG_RM:
        if (!n)
            return 0;
        if (!n->parent)
            return -EINVAL;
        if (live)
            watch_fire(s, path, true, NULL, 0);
        tree_remove(t, n);
        return 0;
    case LOG_PERMS:
        if (!n)
            return -ENOENT;
        old = n->perms;         /* a watcher losing access still gets the event */
        nold = n->nperms;
        n->perms = NULL;
        rc = tree_set_perms(t, n, data, len / (unsigned)sizeof(struct xsd_perm));
        if (rc) {
            n->perms = old;
            return rc;
        }
        break;
    }
    if (rc == 0 && live)
        watch_fire(s, path, false, old, nold);
    free(old);
    return rc;
}

int ops_apply(struct xsd_server *s, int owner, enum xsd_logop op, const char *path,
              const void *data, unsigned len)
{
    return do_change(s, &s->tree, true, owner, op, path, data, len);
}

static int change(struct xsd_req *r, enum xsd_logop op, const char *path, const void *data, unsigned len)
{
    int owner = conn_owner(r->c);
    if (!r->x)
        return ops_apply(r->s, owner, op, path, data, len);
    int rc = note_change(r->x, r->t, op, path);
    if (!rc)
        rc = do_change(r->s, r->t, false, owner, op, path, data, len);
    if (!rc)
        rc = txn_log(r->x, op, path, data, len);
    return rc;
}

/* Look a node up for an access needing `want` (XSD_PERM_*; recorded in a
 * transaction, even if absent).  NULL and *err -ENOENT, -EACCES (node_access)
 * or a transaction's error. */
static struct xsd_node *get_node(struct xsd_req *r, const char *path, unsigned want, int *err)
{
    if (r->x && (*err = txn_note(r->x, path)) != 0)
        return NULL;
    struct xsd_node *n = NULL;
    *err = node_access(r->c, r->t, path, want, &n);
    return n;
}

/* The node named by a request's one path argument, looked up for reading
 * (get_node); NULL after replying EINVAL (no or bad path) or the lookup's
 * error (ENOENT, EACCES, a transaction's). */
static struct xsd_node *arg_node(struct xsd_req *r)
{
    char path[PATH_BUF];
    const char *a = onearg(r);
    int rc;
    if (!a || canon_arg(r, a, path)) {
        reply_err(r, EINVAL);
        return NULL;
    }
    struct xsd_node *n = get_node(r, path, XSD_PERM_READ, &rc);
    if (!n)
        reply_err(r, rc);
    return n;
}

/* ---- handlers --------------------------------------------------------- */

static void op_read(struct xsd_req *r)
{
    struct xsd_node *n = arg_node(r);
    if (!n)
        return;
    reply(r, n->value, n->vlen);
}

static void op_write(struct xsd_req *r)
{
    char path[PATH_BUF];
    int rc;
    const char *z = memchr(r->p, '\0', r->len);
    if (!z || canon_arg(r, r->p, path))
        return reply_err(r, EINVAL);
    if (!get_node(r, path, XSD_PERM_WRITE, &rc) && rc != -ENOENT)
        return reply_err(r, rc);        /* ENOENT: created (parent writable) */
    unsigned off = (unsigned)(z - r->p) + 1;
    reply_rc(r, change(r, LOG_WRITE, path, r->p + off, r->len - off));
}

static void op_mkdir(struct xsd_req *r)
{
    char path[PATH_BUF];
    int rc;
    const char *a = onearg(r);
    if (!a || canon_arg(r, a, path))
        return reply_err(r, EINVAL);
    if (get_node(r, path, XSD_PERM_WRITE, &rc))
        return reply_rc(r, 0);          /* exists: nothing changes, but it was read */
    if (rc != -ENOENT)
        return reply_err(r, rc);
    reply_rc(r, change(r, LOG_MKDIR, path, NULL, 0));
}

static void op_rm(struct xsd_req *r)
{
    char path[PATH_BUF], parent[PATH_BUF];
    const char *a = onearg(r);
    int rc;
    if (!a || canon_arg(r, a, path) || strcmp(path, "/") == 0)
        return reply_err(r, EINVAL);
    if (!get_node(r, path, XSD_PERM_WRITE, &rc)) {
        if (rc != -ENOENT)
            return reply_err(r, rc);
        /* Missing is fine if the parent exists (xenstored do_rm). */
        snprintf(parent, sizeof(parent), "%s", path);
        char *sl = strrchr(parent, '/');
        if (sl == parent)
            sl[1] = '\0';
        else
            *sl = '\0';
        if (r->x && (rc = txn_note(r->x, parent)) != 0)
            return reply_err(r, rc);
        return reply_rc(r, tree_lookup(r->t, parent) ? 0 : -ENOENT);
    }
    reply_rc(r, change(r, LOG_RM, path, NULL, 0));
}

static void op_directory(struct xsd_req *r)
{
    struct xsd_node *n = arg_node(r);
    if (!n)
        return;
    size_t total = 0;
    for (unsigned i = 0; i < n->nkids; i++)
        total += strlen(n->kids[i]->name) + 1;
    if (total > XENSTORE_PAYLOAD_MAX)
        return reply_err(r, E2BIG);     /* libxenstore then uses DIRECTORY_PART */
    char buf[XENSTORE_PAYLOAD_MAX + 1];
    size_t off = 0;
    for (unsigned i = 0; i < n->nkids; i++) {
        size_t l = strlen(n->kids[i]->name) + 1;
        memcpy(buf + off, n->kids[i]->name, l);
        off += l;
    }
    reply(r, buf, (uint32_t)off);
}

/* DIRECTORY_PART <path>|<offset>| -> <gencnt>|<child>|*, the last part ending
 * with an extra NUL (xenstore.txt; libxenstore xs_directory_part). */
static void op_directory_part(struct xsd_req *r)
{
    char path[PATH_BUF];
    const char *v[2];
    int rc;
    if (get_strings(r, v, 2) != 2 || r->p[r->len - 1] != '\0' || canon_arg(r, v[0], path))
        return reply_err(r, EINVAL);
    uint64_t off;
    if (xbd_parse_u64(v[1], 10, 0, UINT64_MAX, &off))
        return reply_err(r, EINVAL);
    struct xsd_node *n = get_node(r, path, XSD_PERM_READ, &rc);
    if (!n)
        return reply_err(r, rc);

    char buf[XENSTORE_PAYLOAD_MAX];
    int gl = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)n->gen) + 1;
    size_t pos = 0, used = (size_t)gl, maxlen = XENSTORE_PAYLOAD_MAX - (size_t)gl - 1;
    unsigned i = 0;
    /* Skip to the child at byte offset off of the full list. */
    for (; i < n->nkids && pos < off; i++)
        pos += strlen(n->kids[i]->name) + 1;
    size_t chunk = 0;
    for (; i < n->nkids; i++) {
        size_t l = strlen(n->kids[i]->name) + 1;
        if (chunk + l > maxlen)
            break;
        memcpy(buf + used, n->kids[i]->name, l);
        used += l;
        chunk += l;
    }
    if (i == n->nkids)
        buf[used++] = '\0';     /* end of list */
    reply(r, buf, (uint32_t)used);
}

static void op_get_perms(struct xsd_req *r)
{
    struct xsd_node *n = arg_node(r);
    if (!n)
        return;
    char buf[XENSTORE_PAYLOAD_MAX / 3 * 8 + 16];       /* every perm string fits */
    size_t off = 0;
    for (unsigned i = 0; i < n->nperms; i++)
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%c%u", n->perms[i].mode,
                                n->perms[i].domid) + 1;
    reply(r, buf, (uint32_t)off);       /* E2BIG if over the payload limit */
}

static void op_set_perms(struct xsd_req *r)
{
    char path[PATH_BUF];
    struct xsd_perm perms[XENSTORE_PAYLOAD_MAX / 3];
    unsigned np;
    const char *z = memchr(r->p, '\0', r->len);
    if (!z || canon_arg(r, r->p, path))
        return reply_err(r, EINVAL);
    unsigned off = (unsigned)(z - r->p) + 1;
    if (perms_parse(r->p + off, r->len - off, perms, ARRAY_SIZE(perms), &np))
        return reply_err(r, EINVAL);
    if (r->c->unpriv && np > XSD_UNPRIV_MAX_PERMS)
        return reply_err(r, ENOSPC);
    int rc;
    /* We must own the node (tools can do this too); an unprivileged
     * domain may not give it away (xenstored do_set_perms). */
    struct xsd_node *n = get_node(r, path, XSD_PERM_WRITE | XSD_PERM_OWNER, &rc);
    if (!n)
        return reply_err(r, rc);
    if (r->c->unpriv && perms[0].domid != n->perms[0].domid)
        return reply_err(r, EPERM);
    reply_rc(r, change(r, LOG_PERMS, path, perms, np * (unsigned)sizeof(perms[0])));
}

/* The arguments of WATCH and UNWATCH: the path, "@special" or a node path
 * (relative ones give relative events: *relative, unless NULL), into out
 * (PATH_BUF bytes), and the token.  0 or -EINVAL. */
static int watch_args(const struct xsd_req *r, char *out, const char **token, bool *relative)
{
    const char *v[2];
    if (get_strings(r, v, 2) < 2)
        return -EINVAL;
    const char *in = v[0];
    *token = v[1];
    if (relative)
        *relative = in[0] != '/' && in[0] != '@';
    if (in[0] == '@') {
        if (strlen(in) > XENSTORE_REL_PATH_MAX)
            return -EINVAL;
        snprintf(out, PATH_BUF, "%s", in);
        return 0;
    }
    return canon_arg(r, in, out) ? -EINVAL : 0;
}

static void op_watch(struct xsd_req *r)
{
    char path[PATH_BUF];
    const char *token;
    bool rel;
    if (watch_args(r, path, &token, &rel))
        return reply_err(r, EINVAL);
    int rc = watch_add(r->c, path, token, rel);
    reply_rc(r, rc);
    if (rc == 0) {
        /* The initial event, right after the OK (xenstored_watch.c do_watch). */
        for (struct xsd_watch *w = r->c->watches; w; w = w->next)
            if (!w->next)
                watch_send(r->c, w, path);
    }
}

static void op_unwatch(struct xsd_req *r)
{
    char path[PATH_BUF];
    const char *token;
    if (watch_args(r, path, &token, NULL))
        return reply_err(r, EINVAL);
    reply_rc(r, watch_del(r->c, path, token));
}

static void op_transaction_start(struct xsd_req *r)
{
    uint32_t id;
    if (r->hdr->tx_id)
        return reply_err(r, EBUSY);
    int rc = txn_start(r->c, &id);
    if (rc)
        return reply_err(r, rc);
    char buf[16];
    snprintf(buf, sizeof(buf), "%u", id);
    reply_str(r, buf);
}

static void op_transaction_end(struct xsd_req *r)
{
    const char *a = onearg(r);
    if (!r->x)
        return reply_err(r, ENOENT);
    if (!a || (strcmp(a, "T") && strcmp(a, "F")))
        return reply_err(r, EINVAL);
    reply_rc(r, txn_end(r->c, r->x, a[0] == 'T'));
}

static void op_reset_watches(struct xsd_req *r)
{
    watch_free_all(r->c);
    txn_free_all(r->c);
    reply_str(r, "OK");
}

/* Requests for privileged connections only (xenstored wire_funcs XS_FLAG_PRIV). */
static bool priv_only(uint32_t type)
{
    switch (type) {
    case XS_CONTROL: case XS_INTRODUCE: case XS_RELEASE: case XS_IS_DOMAIN_INTRODUCED:
    case XS_RESUME: case XS_SET_TARGET:
        return true;
    default:
        return false;
    }
}

/* Requests that may carry a transaction id (the rest ignore it). */
static bool uses_txn(uint32_t type)
{
    switch (type) {
    case XS_READ: case XS_WRITE: case XS_MKDIR: case XS_RM: case XS_DIRECTORY:
    case XS_DIRECTORY_PART: case XS_GET_PERMS: case XS_SET_PERMS: case XS_TRANSACTION_END:
        return true;
    default:
        return false;
    }
}

static void trace_payload(char *out, size_t olen, const char *p, uint32_t len)
{
    size_t o = 0;
    for (uint32_t i = 0; i < len && o + 5 < olen; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == 0)
            out[o++] = '|';
        else if (ch < 0x20 || ch >= 0x7f)
            o += (size_t)snprintf(out + o, olen - o, "\\x%02x", ch);
        else
            out[o++] = (char)ch;
    }
    if (o + 5 >= olen)
        o += (size_t)snprintf(out + o, olen - o, "...");
    out[o < olen ? o : olen - 1] = '\0';
}

void ops_trace(struct xsd_conn *c, const char *dir, uint32_t type, uint32_t tx, const char *p, uint32_t len)
{
    char buf[200];
    trace_payload(buf, sizeof(buf), p, len);
    log_info("conn %u %s %s tx=%u len=%u \"%s\"", c->id, dir, ops_type_name(type), tx, len, buf);
}

void ops_dispatch(struct xsd_conn *c, const struct xsd_sockmsg *hdr, const char *payload)
{
    struct xsd_req r = { .c = c, .s = c->srv, .hdr = hdr, .p = payload, .len = hdr->len,
                     .t = &c->srv->tree };
    if (c->srv->verbose)
        ops_trace(c, ">", hdr->type, hdr->tx_id, payload, hdr->len);
    if (c->unpriv && priv_only(hdr->type))
        return reply_err(&r, EACCES);
    if (hdr->tx_id && uses_txn(hdr->type)) {
        r.x = txn_find(c, hdr->tx_id);
        if (!r.x)
            return reply_err(&r, ENOENT);
        r.t = &r.x->snap;
    }
    switch (hdr->type) {
    case XS_CONTROL:              op_control(&r); break;
    case XS_DIRECTORY:            op_directory(&r); break;
    case XS_READ:                 op_read(&r); break;
    case XS_GET_PERMS:            op_get_perms(&r); break;
    case XS_WATCH:                op_watch(&r); break;
    case XS_UNWATCH:              op_unwatch(&r); break;
    case XS_TRANSACTION_START:    op_transaction_start(&r); break;
    case XS_TRANSACTION_END:      op_transaction_end(&r); break;
    case XS_INTRODUCE:            op_introduce(&r); break;
    case XS_RELEASE:              op_release(&r); break;
    case XS_GET_DOMAIN_PATH:      op_get_domain_path(&r); break;
    case XS_WRITE:                op_write(&r); break;
    case XS_MKDIR:                op_mkdir(&r); break;
    case XS_RM:                   op_rm(&r); break;
    case XS_SET_PERMS:            op_set_perms(&r); break;
    case XS_IS_DOMAIN_INTRODUCED: op_is_domain_introduced(&r); break;
    case XS_RESUME:               op_resume(&r); break;
    case XS_SET_TARGET:           op_set_target(&r); break;
    case XS_RESET_WATCHES:        op_reset_watches(&r); break;
    case XS_DIRECTORY_PART:       op_directory_part(&r); break;
    default:                      reply_err(&r, ENOSYS); break;   /* incl. WATCH_EVENT, ERROR */
    }
}
