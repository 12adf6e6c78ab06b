/*
 * engine_priv.h - helpers shared by the engines of src/engine/ (private).
 *
 * struct eng_done: a FIFO of I/Os already completed inside the engine (null
 * engine, synchronous BLKDISCARD, requests failed by a filter) with an
 * eventfd that is readable while the FIFO is not empty.  Capacity is the
 * queue depth, so a push never fails when the caller respects `depth`.
 */
#ifndef XBD_ENGINE_PRIV_H
#define XBD_ENGINE_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include "engine.h"
#include "log.h"

struct stat;

struct eng_done {
    struct engine_io **v;
    unsigned cap, head, n;
    int efd;                    /* eventfd, non-blocking; -1 if not wanted */
};

/* 0 or -ENOMEM / -errno of eventfd(). with_fd: create the eventfd. */
int  eng_done_init(struct eng_done *d, unsigned cap, bool with_fd);
void eng_done_fini(struct eng_done *d);
/* Append a completed io (result already set) and signal the eventfd.
 * -EBUSY if full. */
int  eng_done_push(struct eng_done *d, struct engine_io *io);
/* Call done() for every io queued before the call (ios pushed from inside
 * done() wait for the next reap).  Returns how many. */
int  eng_done_reap(struct eng_done *d, engine_done_fn done, void *arg);
/* Read the eventfd counter to zero (non-blocking). */
void eng_efd_drain(int efd);
/* Add 1 to the eventfd counter (non-blocking; efd < 0: nothing). */
void eng_efd_signal(int efd);

/* Parse an unsigned byte count with optional suffix k/K, m/M, g/G, t/T
 * (powers of 1024).  Parses up to `end` (NULL: whole string).
 * 0 or -EINVAL (syntax, overflow). */
int  eng_parse_size(const char *s, const char *end, uint64_t *out);

/* True when io (READ/WRITE/DISCARD) touches bytes [start, end). */
static inline bool eng_io_overlaps(const struct engine_io *io, uint64_t start, uint64_t end)
{
    return io->len && io->offset < end && start < io->offset + io->len;
}

/*
 * Filter engines: an engine stacked on another ("inner") one, src/engine/
 * filter.c.  A filter is a struct eng_filter of Optional callbacks: one it
 * leaves NULL is the inner engine's (queue_io, submit and reap go to the
 * inner queue; get_size is the inner store's), as with nbdkit filters
 * (include/nbdkit-filter.h, next_ops).  Its engine and queue structs start
 * with struct eng_filter_engine / eng_filter_queue; filter.c allocates them
 * (engine_size, queue_size bytes, zeroed), opens and closes the inner queue
 * around queue_init / queue_fini, and reports the inner queue's completion
 * fd, or an epoll fd over it and the fds given to eng_filter_watch.  The
 * filter engine starts as a copy of the inner struct engine (size, block
 * sizes, caps) with its own ops, named f->name.
 */
struct eng_filter;

struct eng_filter_engine {
    struct engine base;
    struct engine_ops ops;      /* filter.c's, .name = f->name */
    const struct eng_filter *f;
    struct engine *inner;       /* owned: closed with the filter */
};

struct eng_filter_queue {
    struct eng_filter_engine *e;
    struct engine_queue *inner;
    int epfd;                   /* -1 until eng_filter_watch */
};

struct eng_filter {
    const char *name;           /* engine_ops.name of the filter engines */
    size_t engine_size;         /* bytes of the filter's engine struct (0: the header only) */
    size_t queue_size;          /* bytes of the filter's queue struct (0: the header only) */
    /* After the inner queue is open: the filter's part of a queue of
     * `depth` I/Os.  0 or -errno; on failure queue_fini runs. */
    int  (*queue_init)(struct eng_filter_queue *q, unsigned depth);
    /* After the inner queue is closed (no inner completion comes any more);
     * also after a failed queue_init, so it copes with a partial one. */
    void (*queue_fini)(struct eng_filter_queue *q);
    int  (*queue_io)(struct eng_filter_queue *q, struct engine_io *io);
    int  (*submit)(struct eng_filter_queue *q);
    int  (*reap)(struct eng_filter_queue *q, engine_done_fn done, void *arg);
    int  (*get_size)(struct eng_filter_engine *e, uint64_t *bytes);
};

/* The first initialisers of a filter's table: its name and its private
 * state, struct prefix##_engine and struct prefix##_queue, set up and torn
 * down by prefix##_queue_init and prefix##_queue_fini.  The callbacks it
 * changes follow (.queue_io, .submit, .reap, .get_size). */
#define ENG_FILTER_STATE(name_, prefix) \
    .name = name_, \
    .engine_size = sizeof(struct prefix##_engine), .queue_size = sizeof(struct prefix##_queue), \
    .queue_init = prefix##_queue_init, .queue_fini = prefix##_queue_fini

/* Open filter f over inner: *out is zeroed past the header.  `inner` is
 * owned by the filter from then on (closed with it, also on failure).
 * 0 or -ENOMEM. */
int eng_filter_open(const struct eng_filter *f, struct engine *inner, struct eng_filter_engine **out);

/* Make q's completion fd also readable when fd is (the filter's own
 * completions: a timerfd, an eventfd).  0 or -errno of epoll_create1 /
 * epoll_ctl, -EINVAL for fd < 0. */
int eng_filter_watch(struct eng_filter_queue *q, int fd);

/* The filters (src/engine/error.c, delay.c); `inner` is owned by the
 * filter from then on (closed with it, also on failure). */
int engine_error_open(struct engine *inner, uint64_t start, uint64_t end,
                      bool on_read, bool on_write, struct engine **out);
int engine_delay_open(struct engine *inner, uint64_t usec, bool writes_only, struct engine **out);
/* The null engine of a given size (bytes). */
int engine_null_open_size(uint64_t size, const struct engine_params *p, struct engine **out);

/* Open p->path (regular file or block device) for an engine doing its own
 * I/O on the fd (src/engine/store.c): O_DIRECT if p->direct, reopened
 * buffered with one warning where refused (EINVAL); fills e->size (bytes),
 * logical/physical_block_size (bytes), readonly, is_blockdev, direct, caps
 * (flush; discard probed).  e->ops is kept.  The store is claimed on that
 * fd (eng_store_claim below), or with p->share_claim shared with the
 * engine named there (a dup of its fd, no claim of its own: store.c
 * share_open).  Sets e->store_fd(_ok).  0 and *fd_out, or -EBUSY (held by someone
 * else), -errno of open/fstat/ioctl, -EINVAL (empty path, neither file nor
 * block device);
 * *e is left alone on failure.  `name` is for log lines. */
int eng_store_open(const struct engine_params *p, const struct log_dev *dev, struct engine *e,
                   int *fd_out);

/* The size now of a store opened by eng_store_open, in bytes: BLKGETSIZE64
 * for a block device, st_size for a file (engine_ops.get_size of the uring
 * and aio engines).  0 or -errno of fstat/ioctl. */
int eng_store_size(int fd, uint64_t *bytes);

/* The engine of the store engines (uring, aio): the store's fd from
 * eng_store_open and the device its log lines are about. */
struct eng_store_engine {
    struct engine base;
    int fd;
    struct log_dev dev;         /* whose prefix and fields its log lines carry */
};

/* engine_ops.open, close and get_size of a store engine with `ops`: open is
 * eng_log_dev and eng_store_open into a new struct eng_store_engine (0,
 * -EINVAL for no path, -ENOMEM, or eng_store_open's -errno; *out is left
 * alone on failure); get_size is eng_store_size of its fd; close closes the
 * fd and frees it (e may be NULL). */
int  eng_store_engine_open(const struct engine_params *p, const struct engine_ops *ops,
                           struct engine **out);
int  eng_store_engine_size(struct engine *e, uint64_t *bytes);
void eng_store_engine_close(struct engine *e);

/* The claim on a store (src/engine/lock.c, rules there): the open(2) flags
 * to add (O_EXCL for an exclusive claim: block devices), and, once fd is
 * open and fstat'ed into st, the rest (regular files: the F_OFD_SETLK lock,
 * the loop-device check).  eng_store_claim: 0, -EBUSY (held by someone
 * else, or read-write on a file backing a loop device), -errno of fcntl
 * (ENOLCK is logged and accepted).  `name` is for log lines. */
int eng_store_open_flags(const struct engine_params *p);
int eng_store_claim(int fd, const struct stat *st, const struct engine_params *p,
                    const struct log_dev *dev);

/*
 * The one table of engine and filter names (src/engine/params.c): what a
 * params prefix "<name>:" selects.  Drives engine_open_params and
 * eng_params_path; xen-blkbackd-engines(7) lists every row.
 */
#define ENG_KIND_PATH 1u        /* the rest of params is a file or block device path */
struct eng_kind {
    const char *name;           /* the prefix without its ':'; = ops->name */
    const struct engine_ops *ops;   /* NULL for a filter */
    unsigned flags;             /* ENG_KIND_* */
    /* Optional: which params values are this engine's instead of those
     * starting "<name>:" (nbd: URIs with or without the prefix); *rest gets
     * what the engine's open sees as its path. */
    bool (*match)(const char *params, const char **rest);
    /* Filters: open the filter over the engine named after its arguments,
     * spec = what follows "<name>:" ("<args>:<inner>", no ':' in args). */
    int  (*open_filter)(const char *spec, const struct engine_params *p, struct engine **out);
};

/* The row of that name, or NULL. */
const struct eng_kind *eng_kind_find(const char *name);
/* Every row (*n of them), for listings and tests. */
const struct eng_kind *eng_kinds(unsigned *n);

/* The path of the backing store inside a params value (engine.h syntax:
 * after uring:/aio:, through the filters); NULL for null: and syntax errors
 * (src/engine/params.c). */
const char *eng_params_path(const char *params);

/* The engine of an unprefixed params value (src/engine/default.c): uring,
 * or aio when an io_uring probe ring fails with ENOSYS/EPERM (logged, the
 * first time as a warning).  p: whose device the log lines name
 * (eng_log_dev). */
const struct engine_ops *eng_default_ops(const struct engine_params *p);

/* The device an engine's log lines are about (log.h log_dev): a copy of
 * p->dev, or one named p->name (else p->path) with domid/devid unknown. */
void eng_log_dev(struct log_dev *out, const struct engine_params *p);

/* The io_uring of a queue of the uring engine (src/engine/uring.c) and
 * whether its restrictions took (ring_restrict there), for tests that
 * submit to the ring directly (tests/t_uring_restrict.c).  eq must come
 * from engine_uring's queue_open. */
struct io_uring;
struct io_uring *eng_uring_ring(struct engine_queue *eq, bool *restricted);

/* An rbd: params value without the prefix (src/engine/rbd.c has the syntax).
 * Names and values unescaped and NUL-terminated; cluster_key is the option
 * text after the image spec as written (images with equal text share one
 * RADOS connection); opts holds every key but id and conf. */
#define RBD_SPEC_NAME 256
#define RBD_SPEC_KEY 1024
#define RBD_SPEC_MAX_OPTS 16
struct rbd_spec_opt { char key[64], val[RBD_SPEC_NAME]; };
struct rbd_spec {
    char pool[RBD_SPEC_NAME], ns[RBD_SPEC_NAME], image[RBD_SPEC_NAME], snap[RBD_SPEC_NAME];
    char id[RBD_SPEC_NAME], conf[RBD_SPEC_NAME];
    char cluster_key[RBD_SPEC_KEY];
    struct rbd_spec_opt opts[RBD_SPEC_MAX_OPTS];
    unsigned nopts;
};
/* 0 or -EINVAL (syntax, a name longer than 255 bytes, more than 16 options);
 * *out is left alone on failure. */
int rbd_spec_parse(const char *spec, struct rbd_spec *out);
/* How many RADOS connections the rbd engine holds (for tests and logs). */
unsigned rbd_cluster_count(void);

#endif
