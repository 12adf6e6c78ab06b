/*
 * engine_check.h - checks shared by the storage engine tests (t_engine for
 * uring, t_engine_aio for libaio): run I/Os through an engine queue and wait
 * for their completions, build fully allocated images, and the round trips
 * every engine doing its own I/O on a file or block device must pass (read,
 * write, flush, discard, read-only, ramfs without O_DIRECT, a loop device).
 * Offsets and lengths are bytes.  Failures are reported with T_CHECK/T_ASSERT
 * (tests/harness.h); `what` names the case in messages.
 */
#ifndef XBD_TEST_ENGINE_CHECK_H
#define XBD_TEST_ENGINE_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#include "engine.h"

#define MiB (1024ull * 1024)

/* Poll the completion fd and reap until n completions (10 s at most);
 * returns how many completed. */
unsigned ec_wait_n(struct engine *e, struct engine_queue *q, unsigned n);

/* Queue ios[0..n) (result preset to INT64_MIN), one submit, wait for all
 * (asserted); 0 or the queue_io/submit error (-errno). */
int ec_run_ios(struct engine *e, struct engine_queue *q, struct engine_io **ios, unsigned n);

/* One I/O through ec_run_ios: its result (bytes or -errno), or the
 * queue_io/submit error. */
int64_t ec_run1(struct engine *e, struct engine_queue *q, enum engine_op op, uint64_t off,
                uint64_t len, struct iovec *iov, unsigned iovcnt);

/* The next I/O shape of a pseudo-random sequence (state *x): a length of
 * 1..16 pages (bytes, 4 KiB each) in 1..4 segments (at most one per page). */
void ec_rand_shape(uint64_t *x, uint32_t *len, unsigned *nseg);

/* 4 KiB-aligned malloc'd buffer filled with `fill` (asserted). */
void *ec_abuf(size_t len, int fill);

/* Deterministic pseudo-random bytes for a seed. */
void ec_fill_pattern(uint8_t *b, size_t len, uint64_t seed);

/* Create dir/name, `size` bytes (a multiple of 1 MiB) fully written (so
 * SEEK_HOLE finds discards); malloc'd path. */
char *ec_make_image(const char *dir, const char *name, uint64_t size);

/* Properties of an engine opened read-write on the regular file `path`:
 * size, not a block device, block sizes, flush cap, discard cap ==
 * expect_discard, O_DIRECT in effect exactly when the filesystem takes it;
 * logged. */
void ec_check_file_props(const struct engine *e, const char *path, const char *what,
                         uint64_t size, bool expect_discard);

/* On a queue opened by the caller: a 3-iovec write of 12 KiB at 1 MiB + 4 KiB
 * (ec_fill_pattern seed 42), FLUSH, read back (2 iovecs) and a one-sector
 * read; with check_path the file content is checked with pread.  idle_poll:
 * also check the completion fd is not readable before the write and after
 * the flush completed. */
void ec_check_rw(struct engine *e, struct engine_queue *q, const char *what,
                 const char *check_path, bool idle_poll);

/* On a queue of depth >= 2: a read past the end of a file is -EIO (short);
 * with the discard cap, DISCARD of [2 MiB, 3 MiB) reads back as zeroes (and
 * is a hole in check_path) and SECURE_DISCARD is -EOPNOTSUPP without its
 * cap. */
void ec_check_eof_discard(struct engine *e, struct engine_queue *q, const char *what,
                          const char *check_path);

/* A test's own way of opening `path` with params p: asserts success. */
typedef struct engine *ec_open_fn(const char *path, const struct engine_params *p);

/* `path` opened with `open` and p made read-only: no discard cap, writes
 * fail, reads work. */
void ec_check_readonly(ec_open_fn *open, const char *path, const struct engine_params *p,
                       const char *what);

/* Write 4 KiB of `fill` at off, optionally FLUSH, read it back and compare
 * ("<what> read back"). */
void ec_check_roundtrip(struct engine *e, struct engine_queue *q, uint64_t off, int fill,
                        bool flush, const char *what);

/* An engine opened on a ramfs file: O_DIRECT not in effect; on a queue of
 * `depth`, ec_check_roundtrip at 8 KiB.  Closes e. */
void ec_check_ramfs_engine(struct engine *e, unsigned depth, bool flush);

/* Mount a ramfs (refuses O_DIRECT) at <t_tmpdir(0)>/ramfs (unmounted at
 * exit) and create a 4 MiB image in it: the malloc'd image path and *dir,
 * or NULL (logged: "<part> skipped") where mount fails. */
char *ec_ramfs_image(const char *part, char **dir);
/* Remove the image, unmount (lazily) the ramfs, free both. */
void ec_ramfs_done(char *dir, char *path);

/* Create <t_tmpdir(0)>/loop.raw (`size` bytes) and attach it to a free loop
 * device (detached at exit), written into dev[devlen]; the malloc'd image
 * path, or NULL (logged: "<part> skipped") where losetup does not work. */
char *ec_loop_image(uint64_t size, char *dev, size_t devlen, const char *part);

/* An engine opened on a loop device of `size` bytes: a block device of that
 * size; its properties are logged. */
void ec_check_blockdev_props(const struct engine *e, const char *dev, uint64_t size);

/* The first 4 KiB ec_check_rw wrote reached `img` (through a loop device). */
void ec_check_loop_image(const char *img);

#endif
