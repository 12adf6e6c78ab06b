/*
 * xenstored.h - private header of xen-sim-xenstored, the project's test
 * xenstore server.  It speaks the real socket wire protocol (xs_wire.h;
 * Xen docs/misc/xenstore.txt; docs/protocol.md §5.1) so that the stock
 * libxenstore and xenstore-* tools work against it via XENSTORED_PATH.
 *
 * Layout: tree.c (nodes, paths, perms), txn.c (transactions), watch.c
 * (watches and events), ops.c (one handler per request type), conn.c
 * (framing, per-connection queues), main.c (options, sockets, poll loop),
 * perms.c (permission checks).  A connection on the main socket is
 * privileged dom0; one on a --domain-socket acts as that unprivileged domain
 * and has its permissions checked as xenstored checks a domain's ring
 * connection (xen-project/xen:tools/xenstore/xenstored_core.c@RELEASE-4.17.7
 * perm_for_conn, get_node, errno_from_parents; xenstored_watch.c
 * watch_permitted).
 */
#ifndef XSD_XENSTORED_H
#define XSD_XENSTORED_H

#include <errno.h>        /* before xs_wire.h: enables its xsd_errors table */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xen/io/xs_wire.h>

#define XSD_HDR_LEN       ((uint32_t)sizeof(struct xsd_sockmsg))   /* 16 B */

/* Default limits (each overridable on the command line; see main.c). */
#define XSD_DEF_MAX_WATCHES  128        /* per connection; more -> E2BIG   */
#define XSD_DEF_MAX_TXNS     16         /* per connection; more -> ENOSPC  */
#define XSD_DEF_MAX_OUTQ     (1u << 20) /* bytes queued to one client before it is dropped */
#define XSD_DEF_MAX_NODES    200000     /* nodes in one tree; more -> ENOSPC */
#define XSD_MAX_CONNS        1024
#define XSD_MAX_TXNS_TOTAL   256        /* over all connections -> EAGAIN */
#define XSD_MAX_DOMAINS      1024
#define XSD_MAX_LISTENERS    17         /* the main socket + 16 --domain-socket */
#define XSD_UNPRIV_MAX_PERMS 5          /* perms per node an unprivileged domain may set
                                         * (xenstored quota_nb_perms_per_node) -> ENOSPC */

/* ---- tree.c: the node store ---------------------------------------- */

struct xsd_perm {
    char mode;          /* 'n' none, 'r' read, 'w' write, 'b' both */
    uint32_t domid;
};

struct xsd_node {
    char *name;                 /* leaf name; "" for the root */
    struct xsd_node *parent;
    struct xsd_node **kids;     /* creation order, like xenstored */
    unsigned nkids, kcap;
    char *value;                /* not NUL-terminated; may hold NULs */
    unsigned vlen;
    struct xsd_perm *perms;     /* [0] is the owner (and default access) */
    unsigned nperms;
    uint64_t gen;               /* unique stamp of the last change */
};

struct xsd_tree {
    struct xsd_node *root;
    unsigned nnodes;
    unsigned max_nodes;
    uint64_t *gen_counter;      /* shared with the server: stamps are global */
};

/* Make the initial tree (/, /local, /local/domain, /local/domain/0 with
 * domid and name, /tool).  0 or -ENOMEM. */
int  tree_init(struct xsd_tree *t, uint64_t *gen_counter, unsigned max_nodes);
void tree_free(struct xsd_tree *t);
/* Deep copy of src into dst (a transaction snapshot).  0 or -ENOMEM. */
int  tree_copy(struct xsd_tree *dst, const struct xsd_tree *src);

/* Canonical absolute path of a request path: relative paths resolve against
 * home, the caller's /local/domain/<domid> (xenstored_core.c canonicalize).
 * Writes into out (size len).  0, or -EINVAL for a bad path (charset -/_@ +
 * alnum, no // or trailing /, <= XENSTORE_ABS_PATH_MAX, relative <=
 * XENSTORE_REL_PATH_MAX). */
int  path_canon(const char *home, const char *in, char *out, size_t len);
/* True if child is path or below it (xenstore.txt "child"). */
bool path_is_child(const char *child, const char *parent);

struct xsd_node *tree_lookup(const struct xsd_tree *t, const char *path);
/* Deepest existing node on the way to path (the root at least). */
struct xsd_node *tree_nearest(const struct xsd_tree *t, const char *path);
/* Create path and any missing parents; new nodes get an empty value and
 * their parent's perms, with owner (>= 0) in place of the first entry's domid
 * ("unpriv domains own what they create", xenstored construct_node); owner
 * -1 keeps the inherited owner.  Existing nodes are left alone.  *out: the
 * node.  0, -ENOSPC (node limit), -ENOMEM. */
int  tree_create(struct xsd_tree *t, const char *path, int owner, struct xsd_node **out);
/* Replace a node's value and stamp it.  0 or -ENOMEM. */
int  tree_set_value(struct xsd_tree *t, struct xsd_node *n, const void *val, unsigned len);
/* Replace perms and stamp.  0 or -ENOMEM. */
int  tree_set_perms(struct xsd_tree *t, struct xsd_node *n, const struct xsd_perm *p, unsigned np);
/* Remove n and its subtree (n must not be the root). */
void tree_remove(struct xsd_tree *t, struct xsd_node *n);
/* Full path of n into buf.  Returns length. */
size_t node_path(const struct xsd_node *n, char *buf, size_t len);

/* Parse a perms list: count strings, each [nrwb]<domid>.  0 or -EINVAL. */
int  perms_parse(const char *buf, unsigned len, struct xsd_perm *out, unsigned max, unsigned *n);

/* ---- connections, watches, transactions ----------------------------- */

struct xsd_outbuf {
    struct xsd_outbuf *next;
    uint32_t len, off;
    char data[];
};

struct xsd_watch {
    struct xsd_watch *next;
    char *path;         /* canonical, or "@special" */
    char *token;
    bool relative;      /* events strip "/local/domain/0/" */
};

struct xsd_access {     /* one node a transaction read or wrote */
    struct xsd_access *next;
    uint64_t gen;       /* 0 = absent when first seen */
    char path[];
};

enum xsd_logop { LOG_WRITE, LOG_MKDIR, LOG_RM, LOG_PERMS };
struct xsd_logent {     /* replayed on the main tree at commit */
    struct xsd_logent *next;
    enum xsd_logop op;
    char *path;
    char *data;         /* value, or packed perms */
    unsigned len;
};

#define XSD_ACC_BUCKETS 64
struct xsd_txn {
    struct xsd_txn *next;
    uint32_t id;
    struct xsd_tree snap;
    struct xsd_access *acc[XSD_ACC_BUCKETS];
    struct xsd_logent *log, **log_tail;
};

struct xsd_server;

struct xsd_conn {
    struct xsd_server *srv;
    int fd;
    unsigned id;
    char in[2 * (16 + XENSTORE_PAYLOAD_MAX)];
    size_t inlen;
    struct xsd_outbuf *outq, *outq_tail;
    size_t outq_bytes;
    struct xsd_watch *watches;
    unsigned nwatches;
    struct xsd_txn *txns;
    unsigned ntxns;
    bool dead;          /* close at the end of this loop iteration */
    uint32_t domid;     /* the domain it acts as: 0 on the main socket */
    bool unpriv;        /* a --domain-socket connection: permissions are checked */
    char home[32];      /* /local/domain/<domid>: relative paths and watch events */
};

struct xsd_domain {
    uint32_t domid;
    bool introduced, shutdown;
    uint32_t target;    /* SET_TARGET; UINT32_MAX = none */
};

struct xsd_server {
    struct xsd_tree tree;
    uint64_t gen;
    struct xsd_conn *conns[XSD_MAX_CONNS];
    unsigned nconns;
    unsigned next_conn_id;
    uint32_t next_txn_id;
    unsigned ntxns_total;
    struct xsd_domain domains[XSD_MAX_DOMAINS];
    unsigned ndomains;
    /* limits */
    unsigned max_watches, max_txns;
    size_t max_outq;
    bool verbose;
};

/* conn.c */
/* A connection acting as domain domid (0: privileged, else unprivileged). */
struct xsd_conn *conn_new(struct xsd_server *s, int fd, uint32_t domid);
void conn_free(struct xsd_conn *c);
/* Read what the socket has and handle complete requests (at most a batch).
 * Marks the connection dead on EOF, error or protocol violation. */
void conn_input(struct xsd_conn *c);
/* True if buffered input holds a whole request and the queue has room. */
bool conn_has_work(const struct xsd_conn *c);
/* True if the connection may take more input (its queue is not too full). */
bool conn_may_read(const struct xsd_conn *c);
/* Write as much of the queue as the socket takes. */
void conn_flush(struct xsd_conn *c);
/* Queue a message (header + payload); drops the client past max_outq. */
void conn_send(struct xsd_conn *c, uint32_t type, uint32_t req_id, uint32_t tx_id,
               const void *p1, uint32_t l1, const void *p2, uint32_t l2);

/* ops.c: one request being handled. */
struct xsd_req {
    struct xsd_conn *c;
    struct xsd_server *s;
    const struct xsd_sockmsg *hdr;
    const char *p;              /* payload, hdr->len bytes, not NUL-terminated */
    uint32_t len;
    struct xsd_txn *x;          /* NULL outside a transaction */
    struct xsd_tree *t;         /* the main tree, or the transaction's copy */
};
/* Replies echo type, req_id and tx_id; errors are xs_wire.h errno names. */
void reply(struct xsd_req *r, const void *data, uint32_t len);   /* E2BIG if > payload max */
void reply_str(struct xsd_req *r, const char *s);                 /* with its NUL */
void reply_err(struct xsd_req *r, int err);                       /* +-errno */
void reply_rc(struct xsd_req *r, int rc);                         /* 0: "OK" */
/* Count the whole NUL-terminated strings of the payload (first max into v). */
unsigned get_strings(const struct xsd_req *r, const char **v, unsigned max);
/* The payload is exactly one string: it, else NULL (xenstored onearg). */
const char *onearg(const struct xsd_req *r);
/* Decimal domid 0..65535: 0 or -EINVAL. */
int parse_domid(const char *s, uint32_t *out);

/* domain.c: domain and control requests. */
void op_get_domain_path(struct xsd_req *r);
void op_introduce(struct xsd_req *r);
void op_release(struct xsd_req *r);
void op_is_domain_introduced(struct xsd_req *r);
void op_resume(struct xsd_req *r);
void op_set_target(struct xsd_req *r);
void op_control(struct xsd_req *r);

/* ops.c: handle one request (payload is hdr->len bytes). */
void ops_dispatch(struct xsd_conn *c, const struct xsd_sockmsg *hdr, const char *payload);
const char *ops_type_name(uint32_t type);
/* --verbose: one line per message, dir ">" in or "<" out. */
void ops_trace(struct xsd_conn *c, const char *dir, uint32_t type, uint32_t tx,
               const char *p, uint32_t len);

/* perms.c: permission bits of a connection on a node (xenstored XS_PERM_*). */
#define XSD_PERM_READ   1u
#define XSD_PERM_WRITE  2u
#define XSD_PERM_OWNER  4u
/* What c may do on a node with perms p[np]: everything for a privileged
 * connection, the owner (p[0]) and its SET_TARGET target; else the first
 * entry naming c's domain, else p[0]'s mode (xenstored perm_for_conn). */
unsigned perm_for_conn(const struct xsd_conn *c, const struct xsd_perm *p, unsigned np);
/* Look path up in t for an access needing all of `want`: 0 and *out, or
 * -EACCES (present but not allowed), or for a missing node -ENOENT if its
 * nearest existing ancestor grants c some of `want`, else -EACCES, so that
 * a domain learns nothing about nodes it may not see (xenstored get_node,
 * errno_from_parents). */
int  node_access(const struct xsd_conn *c, const struct xsd_tree *t, const char *path,
                 unsigned want, struct xsd_node **out);
/* May c see an event for the node at path in t (old: its perms before a
 * SET_PERMS, may be NULL)?  Privileged: always; else if the old perms, the
 * node's or its parent's let c read (xenstored_watch.c watch_permitted);
 * never for @special events. */
bool watch_permitted(const struct xsd_conn *c, const struct xsd_tree *t, const char *path,
                     const struct xsd_perm *old, unsigned nold);

/* watch.c */
int  watch_add(struct xsd_conn *c, const char *path, const char *token, bool relative);
int  watch_del(struct xsd_conn *c, const char *path, const char *token);
void watch_free_all(struct xsd_conn *c);
/* Fire watches for a change at path (recursive: a removal, called before the
 * node goes, so watches below path fire too, with their own path), to the
 * connections that may see it (watch_permitted; old: the node's perms
 * before a SET_PERMS, else NULL). */
void watch_fire(struct xsd_server *s, const char *path, bool recursive,
                const struct xsd_perm *old, unsigned nold);
void watch_send(struct xsd_conn *c, const struct xsd_watch *w, const char *epath);

/* txn.c */
int  txn_start(struct xsd_conn *c, uint32_t *id);
struct xsd_txn *txn_find(struct xsd_conn *c, uint32_t id);
/* Note that the transaction read or wrote path; gen as seen in the snapshot. */
int  txn_note(struct xsd_txn *x, const char *path);
int  txn_log(struct xsd_txn *x, enum xsd_logop op, const char *path, const void *data, unsigned len);
/* End: commit (0, or -EAGAIN on conflict) or abort; frees x either way. */
int  txn_end(struct xsd_conn *c, struct xsd_txn *x, bool commit);
void txn_free_all(struct xsd_conn *c);

/* ops.c: apply a change on the main tree (used live and by commit replay),
 * firing watches; owner: the domain that owns nodes it creates (-1: they
 * inherit their parent's owner, as for dom0).  0 or -errno. */
int  ops_apply(struct xsd_server *s, int owner, enum xsd_logop op, const char *path,
               const void *data, unsigned len);
/* The owner argument of ops_apply for changes made by c. */
int  conn_owner(const struct xsd_conn *c);

#endif
