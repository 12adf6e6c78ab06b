/*
 * engine.h - storage engines behind one versioned ops struct (cf. nbdkit
 * include/nbdkit-plugin.h, tcmu-runner).  The data plane never touches a file
 * descriptor of the backing store directly: it queues struct engine_io and
 * reaps completions.
 *
 * Units: every offset and length here is in BYTES.  The data plane converts
 * 512-byte blkif sectors (blkif.h) to bytes before calling an engine.
 *
 * Threading: an engine (the opened backing store) is shared by all queues of
 * a vbd; an engine_queue belongs to exactly one queue thread.
 */
#ifndef XBD_ENGINE_H
#define XBD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define ENGINE_OPS_VERSION 4      /* 2: get_size; 3: completions_ready; 4: queue_open_watch, wait */

enum engine_op {
    ENGINE_OP_READ,
    ENGINE_OP_WRITE,
    ENGINE_OP_FLUSH,            /* make every completed write durable (fdatasync) */
    ENGINE_OP_DISCARD,          /* punch hole / BLKDISCARD */
    ENGINE_OP_SECURE_DISCARD,   /* BLKSECDISCARD; only if caps.secure_discard */
};

struct engine_io {
    enum engine_op op;
    uint64_t offset;            /* bytes from the start of the backing store */
    uint64_t len;               /* bytes; READ/WRITE: sum of iov lengths */
    const struct iovec *iov;    /* READ/WRITE only; must stay valid until reaped */
    unsigned iovcnt;
    void *cookie;               /* the caller's; untouched by the engine */
    int64_t result;             /* set before the completion callback: bytes done or -errno */
};

struct engine_caps {
    bool flush;                 /* FLUSH is meaningful (a volatile cache may exist) */
    bool discard;               /* DISCARD really frees space */
    bool secure_discard;
    bool fua;
    uint32_t discard_granularity;  /* bytes, 0 = unknown */
    uint32_t discard_alignment;    /* bytes */
    /* When the process dies, the kernel waits for this engine's in-flight
     * I/O before it tears the process's memory down (libaio: fs/aio.c
     * exit_aio runs before exit_mmap; io_uring does not wait for ordinary
     * requests: io_uring/io_uring.c io_uring_cancel_generic).  Only then is
     * I/O straight into gntdev-mapped guest pages (grant modes map and
     * persistent) safe across a crash on a PV dom0: otherwise the kernel
     * cannot unmap the still-pinned pages ("BUG: Bad page map ... gntdev",
     * grants leaked for good; tests/xen/README.md, rootcause).  Also true
     * of an engine whose I/O never involves the kernel touching our pages
     * asynchronously (rbd: librbd memcpys and uses socket calls in its own
     * threads, src/engine/rbd.c).  Filters inherit it from their inner
     * engine. */
    bool exit_drains_io;
    /* Its queue I/O runs within the queue threads' seccomp allow-list
     * (include/confine.h): uring, aio (eng_store_open) and null; not nbd
     * and rbd (libnbd/librados calls and threads are not in the list), whose
     * queue threads run unconfined.  Filters inherit it. */
    bool seccomp_ok;
};

/* What the control plane hands to open (from xenstore params/mode). */
struct engine_params {
    const char *path;           /* backing store: file, block device, engine specific */
    bool readonly;              /* open O_RDONLY; writes are refused by the data plane */
    bool direct;                /* O_DIRECT wanted (default); fallback logged by the engine */
    const char *name;           /* device name for log lines, e.g. "vbd 5/51712" (when
                                 * dev is NULL; else unused) */
    const struct log_dev *dev;  /* optional (NULL: name, or path): the device whose
                                 * prefix and journal fields the engine's log lines
                                 * carry (log.h); copied at open */
    bool shared_write;          /* mode "w!": read-write, shared on purpose: no
                                 * exclusive claim (see engine_store_holder) */
    const struct engine *share_claim;   /* optional (NULL): open the store that this
                                 * open engine (uring or aio, same path, same
                                 * readonly) holds, on a dup of its fd: the claim
                                 * is shared and lives until both are closed
                                 * (migration to the same host, the caller's
                                 * same-VM rule: src/backend/vbd_connect.c) */
    char *why;                  /* optional (NULL): where open may explain a failure in
                                 * one line (why_len bytes, terminated), e.g. the NBD
                                 * server's answer; left alone when open succeeds */
    size_t why_len;
    bool have_store_fd;         /* optional (false): the file and block-device engines
                                 * (uring, aio) do their I/O on a dup of store_fd, an
                                 * open file description of path that another process
                                 * opened and claimed (engine_store_holder's claim is
                                 * that description's, so it is not taken again): an
                                 * isolation worker (src/backend/worker.c) gets it over
                                 * SCM_RIGHTS.  Other engines ignore it. */
    int store_fd;
};

struct engine;
struct engine_watch;            /* below */
struct log_dev;                 /* log.h */
struct engine_queue;
typedef void (*engine_done_fn)(struct engine_io *io, void *arg);

struct engine_ops {
    uint32_t size;              /* sizeof(struct engine_ops) */
    uint32_t version;           /* ENGINE_OPS_VERSION; only ever grows at the end */
    const char *name;           /* "uring", "aio", "null", ... */

    /* Required.  Open the backing store.  -ENOENT, -EACCES, -EROFS, ... */
    int  (*open)(const struct engine_params *p, struct engine **out);
    /* Required. */
    void (*close)(struct engine *e);
    /* Required.  A per-thread I/O context able to hold `depth` I/Os in flight. */
    int  (*queue_open)(struct engine *e, unsigned depth, struct engine_queue **out);
    void (*queue_close)(struct engine_queue *q);   /* Required; waits for in-flight I/O */
    /* Required.  Queue one I/O; it starts at the next submit.  -EBUSY when
     * `depth` I/Os are already queued or in flight. */
    int  (*queue_io)(struct engine_queue *q, struct engine_io *io);
    /* Required.  Start every queued I/O (one io_uring_submit).  Returns the
     * number started or -errno. */
    int  (*submit)(struct engine_queue *q);
    /* Required.  A pollable fd, readable when completions may be reaped. */
    int  (*completion_fd)(struct engine_queue *q);
    /* Required.  Call done() for each completed I/O; returns how many, or -errno. */
    int  (*reap)(struct engine_queue *q, engine_done_fn done, void *arg);

    /* ---- version 2 ---- */
    /* Optional (NULL: the size never changes, e.g. null:).  The store's size
     * now, in bytes (fstat st_size of a file, BLKGETSIZE64 of a block
     * device), for online resize (xen-blkbackd(8) RESIZE).  Cheap: one
     * syscall, no I/O; called from the control plane while queues run.
     * 0 or -errno of fstat/ioctl. */
    int  (*get_size)(struct engine *e, uint64_t *bytes);

    /* ---- version 3 ---- */
    /* Optional (NULL: the caller polls completion_fd instead).  Would reap
     * find completions (or enter the kernel once to post them) now?  Told by
     * memory loads only, never a system call: the polling queue thread
     * (xen-blkbackd(8) --poll-us) asks it in a loop while I/O is in flight.
     * uring: CQ entries, or task work pending in the SQ flags
     * (IORING_SQ_TASKRUN).  On the queue's own thread. */
    bool (*completions_ready)(struct engine_queue *q);

    /* ---- version 4 ---- */
    /* Optional, all four or none (NULL: the caller ppoll()s completion_fd
     * next to its own fds and calls submit).  queue_open, and also watch the
     * caller's pollable, non-blocking fds w[0..nw) (nw <= ENGINE_WATCH_MAX:
     * the queue's event channel and stop eventfd), which must stay open until
     * queue_close, so that wait sleeps on them and on the I/O in one system
     * call.  -EOPNOTSUPP: not on this kernel (the caller falls back to
     * queue_open); else the errors of queue_open.  uring: the fds become
     * registered files 1..nw of the ring (so each holds a reference to its
     * file until queue_close) and wait needs IORING_FEAT_EXT_ARG (5.11). */
    int  (*queue_open_watch)(struct engine *e, unsigned depth, const struct engine_watch *w,
                             unsigned nw, struct engine_queue **out);
    /* Submit every queued I/O and watch write, (re)arm the watches, and sleep
     * until an I/O completes, a watch fires or timeout_ns (nanoseconds; 0: do
     * not sleep, UINT64_MAX: no timeout) has passed: one io_uring_enter.  Then
     * *ready has bit i set for each watch i that fired: its fd was readable
     * (level-triggered: one that stays readable fires at every wait until
     * drained), or, with read_len, its read completed (watch_read has the
     * bytes).  Completions are left for reap.  0 (woken, timed out or
     * interrupted) or -errno of the submit. */
    int  (*wait)(struct engine_queue *q, uint64_t timeout_ns, unsigned *ready);
    /* Watch i (read_len > 0) fired at the last wait: copy the bytes its read
     * got to buf (at most len) and return their count, or the read's -errno.
     * Memory only.  -EAGAIN: it did not fire. */
    ssize_t (*watch_read)(struct engine_queue *q, unsigned i, void *buf, size_t len);
    /* Write len bytes (copied; at most ENGINE_WATCH_BUF) to watch i's fd at
     * the next wait, before its read or poll is armed again.  0, -EBUSY (the
     * last write of watch i is still in flight: the caller writes itself),
     * -EINVAL. */
    int  (*watch_write)(struct engine_queue *q, unsigned i, const void *buf, size_t len);
};

#define ENGINE_WATCH_MAX 4
#define ENGINE_WATCH_BUF 16u            /* bytes: watch_read, watch_write */

/* A caller's fd for queue_open_watch.  read_len 0: watch for readability
 * (the caller reads the fd itself); 1..ENGINE_WATCH_BUF: each time it is
 * readable, read up to read_len bytes in the engine (no system call of the
 * caller's; the bytes through watch_read). */
struct engine_watch {
    int fd;
    unsigned read_len;
};

/* The queue_open_watch, wait, watch_read and watch_write members of o where
 * the engine has them all (checked against o->size, as a struct of an older
 * version lacks them), else false. */
bool engine_has_wait(const struct engine_ops *o);

/* The members every engine_ops table has (the Required ones above, with the
 * size and version): `open_`/`close_` by name, the queue members from
 * prefix##_queue_open, _queue_close, _queue_io, _submit, _completion_fd and
 * _reap.  Use as the first initialiser of a table:
 *   const struct engine_ops engine_aio = {
 *       ENGINE_OPS_REQUIRED("aio", aio, aio_open, aio_close),
 *       .get_size = aio_get_size,
 *   };  */
#define ENGINE_OPS_REQUIRED(name_, prefix, open_, close_) \
    .size = sizeof(struct engine_ops), .version = ENGINE_OPS_VERSION, .name = name_, \
    .open = open_, .close = close_, \
    .queue_open = prefix##_queue_open, .queue_close = prefix##_queue_close, \
    .queue_io = prefix##_queue_io, .submit = prefix##_submit, \
    .completion_fd = prefix##_completion_fd, .reap = prefix##_reap

typedef bool (*engine_ready_fn)(struct engine_queue *q);

/* The opened store; engines embed this as their first member. */
struct engine {
    const struct engine_ops *ops;
    uint64_t size;              /* bytes, at open (engine_get_size: now) */
    uint32_t logical_block_size;   /* bytes (512 for files, BLKSSZGET for devices) */
    uint32_t physical_block_size;  /* bytes (BLKPBSZGET; 4096 or st_blksize for files) */
    bool readonly;
    bool is_blockdev;
    bool direct;                /* O_DIRECT in effect */
    bool store_fd_ok;           /* store_fd is set (engines opened by eng_store_open) */
    int store_fd;               /* the fd the engine does its I/O on and holds the
                                 * claim with (engine_params.share_claim) */
    struct engine_caps caps;
};

extern const struct engine_ops engine_uring;
extern const struct engine_ops engine_aio;     /* libaio (src/engine/aio.c) */
extern const struct engine_ops engine_null;
extern const struct engine_ops engine_nbd;     /* libnbd client (src/engine/nbd.c) */
extern const struct engine_ops engine_rbd;     /* Ceph RBD via librbd (src/engine/rbd.c) */

/*
 * Open the backing store named by an xenstore `params` value.
 *   "[engine:]path"  engine one of uring (default), aio, null; "null:<bytes>"
 *                    is a store of that size that reads zeroes and drops writes.
 *                    Without a prefix, aio is used where io_uring is
 *                    unavailable (ENOSYS/EPERM; src/engine/default.c).
 *   "nbd://host[:port]/export", "nbd+unix:///export?socket=/path" (and the
 *                    other NBD URI schemes: nbds, +vsock), or "nbd:<URI>":
 *                    an NBD export through libnbd; query options timeout=
 *                    and reconnect= are ours (src/engine/nbd.c).
 *   "rbd:<pool>[/<namespace>]/<image>[@<snapshot>][:<key>=<value>]..."
 *                    a Ceph RBD image (src/engine/rbd.c; keys id, conf,
 *                    keyring and librados options; backslash escapes).
 * Filter engines wrap another engine when allow_filters (test builds and
 * --allow-test-engines only):
 *   "error:<start>-<end>[,r|w|rw]:<inner>"  fail I/O touching bytes [start,end) with -EIO
 *   "delay:[w]<usec>:<inner>"                delay every I/O completion (w: writes only)
 * Every prefix is a row of one table (src/engine/params.c, eng_kind_find).
 * Errors: -EINVAL (syntax), -EPERM (a filter without allow_filters), those
 * of the engine's open.
 */
int engine_open_params(const char *params, const struct engine_params *p,
                       bool allow_filters, struct engine **out);

/*
 * The current size of e's store in bytes: ops->get_size where the engine has
 * it (checked against ops->size, as a struct of an older version lacks the
 * field), else e->size.  0 or -errno of get_size.  *bytes is left alone on
 * failure.
 */
int engine_get_size(struct engine *e, uint64_t *bytes);

/* ops->completions_ready where the engine has it (checked against ops->size,
 * as a struct of an older version lacks the field), else NULL. */
engine_ready_fn engine_ready_op(const struct engine_ops *o);

/*
 * One writer per backing store (src/engine/lock.c; xen-blkbackd-engines(7)
 * SHARING).  The file and block-device engines claim the store when they
 * open it: a regular file gets an open-file-description lock on the whole
 * file (F_OFD_SETLK; F_WRLCK read-write, F_RDLCK read-only or
 * shared_write) and is refused read-write while it backs a loop device; a
 * block device opened read-write (not shared_write) is opened O_EXCL.  A
 * store someone else holds makes open fail with -EBUSY.  The claim lives as
 * long as the open file description, i.e. until the engine is closed AND
 * its last in-flight I/O has completed (which may be after the process that
 * submitted it died).
 */

/* Which store a params value names, for comparing two of them: regular
 * file: st_dev and st_ino; block device: its st_rdev (ino 0).  0, -errno of
 * stat(2), -EINVAL (no path, e.g. null:, or neither file nor device). */
struct engine_store_id { dev_t dev; ino_t ino; bool blockdev; };
int engine_store_id(const char *params, struct engine_store_id *id);

/*
 * Who holds the store named by params (after an open failed with -EBUSY),
 * as one line of text in buf (len bytes, always terminated): for a file the
 * loop device it backs ("loop device /dev/loop0"), for a block device its
 * mount points ("mounted on /mnt") and kernel holders ("claimed by dm-0"
 * from /sys/dev/block/M:m/holders), then every process with it open ("pid
 * 123 (qemu)", scanning /proc/<pid>/fd for the same st_dev/st_ino or
 * st_rdev); the first three, then "and N more".  Costs a walk of /proc:
 * for log lines, not for a retry loop.
 * 0, -ENOENT (nobody found; buf says so), -EINVAL, -errno of stat(2).
 */
int engine_store_holder(const char *params, char *buf, size_t len);

#endif
