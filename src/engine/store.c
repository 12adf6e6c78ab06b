/*
 * store.c - opening a backing store (regular file or block device) for an
 * engine that does its own I/O on the fd: O_DIRECT with a buffered fallback,
 * size, block sizes and discard caps.  Used by the uring and aio engines
 * (src/engine/uring.c, aio.c); rules as in xen-blkbackd-engines(7).  The
 * store is claimed (lock or O_EXCL, src/engine/lock.c) on the very fd the
 * engine does its I/O on, before anything else touches it.
 */
#include "engine_priv.h"
#include "opener.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static uint64_t read_sysfs_u64(const char *dir, const char *leaf)
{
    char path[512], buf[64];
    snprintf(path, sizeof(path), "%s/%s", dir, leaf);
    FILE *f = fopen(path, "re");
    if (!f)
        return 0;
    unsigned long long v = 0;
    if (!fgets(buf, sizeof(buf), f) || sscanf(buf, "%llu", &v) != 1)
        v = 0;
    fclose(f);
    return v;
}

/* Block device: BLKGETSIZE64, BLKSSZGET/BLKPBSZGET, discard caps from sysfs
 * (queue/discard_max_bytes, queue/discard_granularity, discard_alignment; a
 * partition has no queue/ of its own: its parent directory has). */
static int probe_blockdev(int fd, const struct stat *st, struct engine *e)
{
    uint64_t size;
    int lbs = 512;
    unsigned int pbs = 512;

    if (ioctl(fd, BLKGETSIZE64, &size) < 0)
        return -errno;
    if (ioctl(fd, BLKSSZGET, &lbs) < 0 || lbs < 512)
        lbs = 512;
    if (ioctl(fd, BLKPBSZGET, &pbs) < 0 || pbs < (unsigned)lbs)
        pbs = (unsigned)lbs;
    e->size = size;
    e->logical_block_size = (uint32_t)lbs;
    e->physical_block_size = pbs;
    e->is_blockdev = true;

    char dir[128], qdir[160];
    snprintf(dir, sizeof(dir), "/sys/dev/block/%u:%u", major(st->st_rdev), minor(st->st_rdev));
    snprintf(qdir, sizeof(qdir), "%s/queue", dir);
    if (access(qdir, F_OK) != 0)
        snprintf(qdir, sizeof(qdir), "%s/../queue", dir);
    uint64_t dmax = read_sysfs_u64(qdir, "discard_max_bytes");
    uint64_t gran = read_sysfs_u64(qdir, "discard_granularity");
    uint64_t align = read_sysfs_u64(dir, "discard_alignment");
    if (!e->readonly && dmax > 0) {
        e->caps.discard = true;
        e->caps.discard_granularity = gran > UINT32_MAX ? 0 : (uint32_t)gran;
        e->caps.discard_alignment = align > UINT32_MAX ? 0 : (uint32_t)align;
        /* Since Linux 6.0 BLKSECDISCARD checks support before reading its
         * argument: EFAULT on a NULL argument means "supported". */
        if (ioctl(fd, BLKSECDISCARD, NULL) < 0 && errno == EFAULT)
            e->caps.secure_discard = true;
    }
    return 0;
}

/* Regular file: logical block 512 (or the O_DIRECT offset alignment statx
 * reports), physical st_blksize; discard when a hole can be punched (probed
 * past EOF with KEEP_SIZE: touches no data, EOPNOTSUPP where unsupported). */
static int probe_file(int fd, const struct stat *st, struct engine *e)
{
    e->size = (uint64_t)st->st_size;
    e->logical_block_size = 512;
    e->physical_block_size = st->st_blksize >= 512 ? (uint32_t)st->st_blksize : 512;
#ifdef STATX_DIOALIGN
    if (e->direct) {
        struct statx sx;
        if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
            (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align > 512 &&
            sx.stx_dio_offset_align <= 4096)
            e->logical_block_size = sx.stx_dio_offset_align;
    }
#endif
    if (!e->readonly) {
        off_t past = (off_t)((e->size + 4095) & ~4095ull) + 4096;
        if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, past, 4096) == 0) {
            e->caps.discard = true;
            e->caps.discard_granularity = e->physical_block_size;
            e->caps.discard_alignment = 0;
        }
    }
    return 0;
}

/* engine_params.share_claim: the same store on a dup of the holder's fd, so
 * the OFD lock or the O_EXCL claim (one open file description) stays held
 * until both engines are closed; the new engine's figures (size, block
 * sizes, O_DIRECT, caps) are the holder's.  -EBUSY when the holder has no
 * such fd, is another engine, is opened with another readonly, or is not
 * the store at p->path; -errno of stat/fstat/fcntl. */
static int share_open(const struct engine_params *p, struct engine *e, int *fd_out)
{
    const struct engine *h = p->share_claim;
    struct stat want, got;
    if (!h->store_fd_ok || h->ops != e->ops || h->readonly != p->readonly)
        return -EBUSY;
    if (stat(p->path, &want) < 0)
        return -errno;
    if (fstat(h->store_fd, &got) < 0)
        return -errno;
    bool blk = S_ISBLK(want.st_mode);
    if (blk != S_ISBLK(got.st_mode) ||
        (blk ? want.st_rdev != got.st_rdev
             : (want.st_dev != got.st_dev || want.st_ino != got.st_ino)))
        return -EBUSY;
    int fd = fcntl(h->store_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct engine tmp = *h;
    tmp.ops = e->ops;
    tmp.store_fd = fd;
    *e = tmp;
    *fd_out = fd;
    return 0;
}

int eng_store_open(const struct engine_params *p, const struct log_dev *dev, struct engine *e,
                   int *fd_out)
{
    if (!p || !p->path || !*p->path)
        return -EINVAL;
    struct engine tmp = { .ops = e->ops, .readonly = p->readonly, .direct = p->direct };
    if (p->share_claim)
        return share_open(p, e, fd_out);
    int flags = (p->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | eng_store_open_flags(p);
    int fd;
    if (p->have_store_fd) {
        /* claimed by whoever opened it: the same open file description */
        fd = fcntl(p->store_fd, F_DUPFD_CLOEXEC, 0);
        int fl = fd < 0 ? -1 : fcntl(fd, F_GETFL);
        if (fl < 0 || (fl & O_ACCMODE) != (p->readonly ? O_RDONLY : O_RDWR)) {
            int rc = fd < 0 ? -errno : fl < 0 ? -errno : -EBADF;
            if (fd >= 0)
                close(fd);
            return rc;
        }
        tmp.direct = (fl & O_DIRECT) != 0;
    } else {
        /* as root, also after --user: the privileged opener (opener.h) */
        fd = opener_open(p->path, flags | (p->direct ? O_DIRECT : 0));
    }
    if (fd == -EINVAL && !p->have_store_fd && p->direct) {
        fd = opener_open(p->path, flags);
        if (fd >= 0) {
            tmp.direct = false;
            log_dev(LOG_WARNING, dev, LOG_NO_QUEUE, "O_DIRECT refused by %s (EINVAL), using "
                    "buffered I/O", p->path);
        }
    }
    if (fd < 0)
        return fd;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0)
        rc = -errno;
    else if (!S_ISBLK(st.st_mode) && !S_ISREG(st.st_mode))
        rc = -EINVAL;
    else if (!p->have_store_fd)
        rc = eng_store_claim(fd, &st, p, dev);     /* before anything touches it */
    if (rc == 0)
        rc = S_ISBLK(st.st_mode) ? probe_blockdev(fd, &st, &tmp) : probe_file(fd, &st, &tmp);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    tmp.caps.flush = true;
    tmp.caps.seccomp_ok = true;        /* read/write through io_uring or libaio */
    tmp.store_fd_ok = true;
    tmp.store_fd = fd;
    *e = tmp;
    *fd_out = fd;
    return 0;
}

int eng_store_size(int fd, uint64_t *bytes)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISBLK(st.st_mode)) {
        uint64_t size;
        if (ioctl(fd, BLKGETSIZE64, &size) < 0)
            return -errno;
        *bytes = size;
    } else {
        *bytes = (uint64_t)st.st_size;
    }
    return 0;
}

int eng_store_engine_open(const struct engine_params *p, const struct engine_ops *ops,
                          struct engine **out)
{
    if (!p || !p->path || !*p->path)
        return -EINVAL;
    struct eng_store_engine *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    eng_log_dev(&s->dev, p);
    s->base.ops = ops;
    int rc = eng_store_open(p, &s->dev, &s->base, &s->fd);
    if (rc < 0) {
        free(s);
        return rc;
    }
    *out = &s->base;
    return 0;
}

int eng_store_engine_size(struct engine *e, uint64_t *bytes)
{
    return eng_store_size(((struct eng_store_engine *)e)->fd, bytes);
}

void eng_store_engine_close(struct engine *e)
{
    struct eng_store_engine *s = (struct eng_store_engine *)e;
    if (!s)
        return;
    close(s->fd);
    free(s);
}
