/*
 * lock.c - one writer per backing store: the claim eng_store_open takes on
 * the store it opens, and, when a claim is refused, who holds the store.
 *
 * What is claimed (rules: xen-blkbackd-engines(7) SHARING; the sharing check
 * of Xen's hotplug script, xen-project/xen:tools/hotplug/Linux/block@RELEASE-4.17.7
 * check_sharing/check_file_sharing, with canonicalise_mode of
 * tools/hotplug/Linux/block-common.sh for "w!"; image locking as QEMU does
 * it, qemu/qemu:util/osdep.c@v7.2.0 qemu_lock_fd and block/file-posix.c):
 *
 *   regular file, read-write     an open-file-description lock (F_OFD_SETLK)
 *                                F_WRLCK on the whole file; refused when the
 *                                file backs a loop device (the loop driver
 *                                takes no lock, the Xen script refuses it)
 *   regular file, read-only      F_OFD_SETLK F_RDLCK on the whole file
 *   regular file, "w!"           F_RDLCK: shared on purpose with other "w!"
 *                                writers and readers, never with a plain
 *                                read-write user
 *   block device, read-write     O_EXCL at open (eng_store_open_flags): the
 *                                kernel answers EBUSY while the device is
 *                                mounted, claimed by dm/md or opened O_EXCL
 *   block device, read-only/"w!" no claim
 *
 * The lock and the O_EXCL claim are both taken on THE open file description
 * the engine does its I/O on (eng_store_open's fd; the uring engine registers
 * that fd as its fixed file, the aio engine submits on it; no engine reopens
 * the store per queue), and both go away only when the LAST reference to
 * that open file description is dropped.  In-flight I/O holds such a
 * reference: an io_uring request keeps the registered file (req->file) until
 * it completes, and an AIO iocb keeps its file the same way, even after the
 * process that submitted it was killed and its fd table is gone.  So a
 * restarted daemon that finds the lock (or the claim) still held knows the
 * previous daemon's I/O is still in the kernel, and it must wait for the lock
 * before it issues anything on the same ring: that is what the reattach of
 * src/backend/vbd_connect.c relies on.
 */
#include "engine.h"
#include "engine_priv.h"
#include "log.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static bool claims_exclusive(const struct engine_params *p)
{
    return !p->readonly && !p->shared_write;
}

int eng_store_open_flags(const struct engine_params *p)
{
    /* open(2): without O_CREAT, O_EXCL means "exclusive" for a block device
     * and is ignored for a regular file, so it can go in before we know
     * which one the path names (no stat/open race). */
    return claims_exclusive(p) ? O_EXCL : 0;
}

/* Read the first line of a small file (newline stripped).  0 or -errno. */
static int read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    int rc = fgets(buf, (int)len, f) ? 0 : -EIO;
    fclose(f);
    if (rc == 0)
        buf[strcspn(buf, "\n")] = 0;
    return rc;
}

/* Does loop device `name` (e.g. "loop3") use the file st as its backing
 * file?  From sysfs: /sys/block/<name>/loop/backing_file is the backing
 * file's path (present only while the device is bound), compared by device
 * and inode; a path that no longer resolves (a deleted or renamed file) is
 * not ours, since we just opened ours by its path. */
static bool loop_backs(const char *name, const struct stat *st)
{
    char p[300], back[4096];
    snprintf(p, sizeof(p), "/sys/block/%s/loop/backing_file", name);
    if (read_line(p, back, sizeof(back)))
        return false;
    struct stat bs;
    return stat(back, &bs) == 0 && bs.st_dev == st->st_dev && bs.st_ino == st->st_ino;
}

/* The first loop device backed by the file st: 0 and "/dev/loopN" in dev,
 * or -ENOENT. */
static int loop_backing(const struct stat *st, char *dev, size_t len)
{
    DIR *d = opendir("/sys/block");
    if (!d)
        return -ENOENT;
    int rc = -ENOENT;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "loop", 4) || !isdigit((unsigned char)de->d_name[4]))
            continue;
        if (loop_backs(de->d_name, st)) {
            snprintf(dev, len, "/dev/%s", de->d_name);
            rc = 0;
            break;
        }
    }
    closedir(d);
    return rc;
}

int eng_store_claim(int fd, const struct stat *st, const struct engine_params *p,
                    const struct log_dev *dev)
{
    if (!S_ISREG(st->st_mode))
        return 0;                   /* block devices: O_EXCL at open */
    char loop[300];
    if (claims_exclusive(p) && loop_backing(st, loop, sizeof(loop)) == 0)
        return -EBUSY;
    struct flock fl = {
        .l_type = claims_exclusive(p) ? F_WRLCK : F_RDLCK,
        .l_whence = SEEK_SET,
        .l_start = 0,
        .l_len = 0,                 /* the whole file, also past today's end */
    };
    if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
        return 0;
    int e = errno;
    if (e == EAGAIN || e == EACCES)
        return -EBUSY;
    if (e == ENOLCK) {
        /* A filesystem without locks (NFS without lockd): QEMU's
         * locking=auto goes on unlocked as well. */
        log_dev(LOG_WARNING, dev, LOG_NO_QUEUE,
                "%s cannot be locked (ENOLCK): nothing prevents a second writer", p->path);
        return 0;
    }
    return -e;
}

/* ---- who holds a store ------------------------------------------------------------- */

struct holders {
    char *buf;
    size_t len, used;
    unsigned n;
};

static void add_holder(struct holders *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_holder(struct holders *h, const char *fmt, ...)
{
    h->n++;
    if (h->n > 3)
        return;                     /* counted, named as "and N more" */
    if (h->used && h->used + 2 < h->len) {
        memcpy(h->buf + h->used, ", ", 3);
        h->used += 2;
    }
    if (h->used >= h->len)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(h->buf + h->used, h->len - h->used, fmt, ap);
    va_end(ap);
    if (n > 0)
        h->used += (size_t)n < h->len - h->used ? (size_t)n : h->len - h->used - 1;
}

static bool same_store(const struct stat *a, const struct stat *b)
{
    if (S_ISBLK(a->st_mode))
        return S_ISBLK(b->st_mode) && a->st_rdev == b->st_rdev;
    return S_ISREG(b->st_mode) && a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* Does process `pid` (a /proc entry) have the store st open? */
static bool proc_has_open(const char *pid, const struct stat *st)
{
    char p[300];
    snprintf(p, sizeof(p), "/proc/%s/fd", pid);
    DIR *d = opendir(p);
    if (!d)
        return false;
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        struct stat fs;
        if (de->d_name[0] != '.' && fstatat(dirfd(d), de->d_name, &fs, 0) == 0)
            found = same_store(st, &fs);
    }
    closedir(d);
    return found;
}

/* Every process with the store open, from /proc/<pid>/fd: "pid N (comm)". */
static void scan_processes(const struct stat *st, struct holders *h)
{
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!isdigit((unsigned char)de->d_name[0]) || !proc_has_open(de->d_name, st))
            continue;
        char p[300], comm[32] = "?";
        snprintf(p, sizeof(p), "/proc/%s/comm", de->d_name);
        read_line(p, comm, sizeof(comm));
        add_holder(h, "pid %s (%s)", de->d_name, comm);
    }
    closedir(d);
}

/* Mount points of block device st, from /proc/self/mountinfo (field 3 is
 * major:minor, field 5 the mount point; octal escapes left as they are). */
static void scan_mounts(const struct stat *st, struct holders *h)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return;
    char line[4096];
    while (fgets(line, sizeof(line), f)) {
        unsigned ma, mi;
        char mnt[2048];
        if (sscanf(line, "%*u %*u %u:%u %*s %2047s", &ma, &mi, mnt) == 3 &&
            ma == major(st->st_rdev) && mi == minor(st->st_rdev))
            add_holder(h, "mounted on %s", mnt);
    }
    fclose(f);
}

/* Kernel holders (device mapper, md, bcache) of block device st, from
 * /sys/dev/block/M:m/holders. */
static void scan_kernel_holders(const struct stat *st, struct holders *h)
{
    char p[96];
    snprintf(p, sizeof(p), "/sys/dev/block/%u:%u/holders", major(st->st_rdev), minor(st->st_rdev));
    DIR *d = opendir(p);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.')
            add_holder(h, "claimed by %s", de->d_name);
    closedir(d);
}

int engine_store_id(const char *params, struct engine_store_id *id)
{
    const char *path = eng_params_path(params);
    struct stat st;
    if (!path)
        return -EINVAL;
    if (stat(path, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
        return -EINVAL;
    id->blockdev = S_ISBLK(st.st_mode);
    id->dev = id->blockdev ? st.st_rdev : st.st_dev;
    id->ino = id->blockdev ? 0 : st.st_ino;
    return 0;
}

int engine_store_holder(const char *params, char *buf, size_t len)
{
    const char *path = eng_params_path(params);
    struct stat st;
    if (!len)
        return -EINVAL;
    buf[0] = 0;
    if (!path)
        return -EINVAL;
    if (stat(path, &st) < 0)
        return -errno;
    struct holders h = { .buf = buf, .len = len };
    if (S_ISBLK(st.st_mode)) {
        scan_mounts(&st, &h);
        scan_kernel_holders(&st, &h);
    } else if (S_ISREG(st.st_mode)) {
        char loop[300];
        if (loop_backing(&st, loop, sizeof(loop)) == 0)
            add_holder(&h, "loop device %s", loop);
    } else {
        return -EINVAL;
    }
    scan_processes(&st, &h);
    if (h.n > 3 && h.used < len)
        snprintf(buf + h.used, len - h.used, " and %u more", h.n - 3);
    if (!h.n)
        snprintf(buf, len, "no process (I/O of an exited one may still be in the kernel)");
    return h.n ? 0 : -ENOENT;
}
