/*
 * td3_stats.c - the statistics file of a vbd3 device, in the place and
 * format of tapdisk3's, so that libxenstat (xentop, and anything built on
 * it) shows the device's VBD_OO/RD/WR/RSECT/WSECT.
 *
 * What libxenstat does (xen-project/xen:tools/libs/stat/xenstat_linux.c@RELEASE-4.20.0
 * xenstat_collect_vbds, read_attributes_vbd3; first in 4.19): for each
 * /sys/bus/xen-backend/devices/vbd3-<domid>-<devid> it reads
 * /local/domain/0/backend/vbd3/<domid>/<devid>/kthread-pid (the vbd is left
 * out when that key is missing), opens /dev/shm/td3-<kthread-pid>/vbd-<domid>-<devid>
 * and fread()s one struct vbd3_stats (stats.h struct td3_stats) from its
 * start, on every sample; a missing file or a version other than 1 shows
 * the vbd as "-".  The directory is fixed in libxenstat, hence no config key.
 *
 * What tapdisk3 does (xapi-project/blktap:drivers/tapdisk-metrics.c@79774319a75a
 * td_metrics_start, td_metrics_vbd_start; tapdisk-utils.c shm_create;
 * tapback/backend.c writes kthread-pid = tapdisk's pid): mkdir
 * /dev/shm/td3-<pid> (0700; an existing one is emptied), create the file
 * O_EXCL 0600, ftruncate to one page, mmap it shared, version = 1, then
 * update the counters with plain stores from the I/O path; the file is
 * unlinked when the vbd stops, the directory when tapdisk exits.
 *
 * Ours: the same path with the daemon's pid, created when the vbd connects
 * and mapped into the data plane (dp_config.td3: the queue threads add
 * their counters, no syscall); kthread-pid is written with the device
 * properties (vbd_connect.c advertise).  Disconnect removes the file (and
 * the directory once empty) and the key.  A daemon exiting with its devices
 * left connected (on-exit=leave) keeps both: the next daemon, reattaching,
 * reads the counters of the previous daemon's file, removes it and starts
 * its own from them, so xentop's figures go on instead of dropping to 0
 * (xen-blkbackd(8) XENTOP).  Failing to create it is one warning per
 * device; the device is served all the same.
 */
#include "backend.h"
#include "log.h"
#include "util.h"
#include "xs_keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define TD3_FILE_SIZE 4096      /* tapdisk3: PAGE_SIZE */

/* <root>/td3-<pid> and <root>/td3-<pid>/vbd-<domid>-<devid>. */
static int td3_paths(const char *root, long pid, unsigned domid, unsigned devid, char *dir,
                     char *path, size_t len)
{
    if (snprintf(dir, len, "%s/td3-%ld", root, pid) >= (int)len ||
        snprintf(path, len, "%s/vbd-%u-%u", dir, domid, devid) >= (int)len)
        return -ENAMETOOLONG;
    return 0;
}

int td3_file_create(const char *root, long pid, unsigned domid, unsigned devid,
                    const struct td3_stats *init, struct td3_file *f)
{
    char dir[TD3_PATH_MAX], path[TD3_PATH_MAX];
    int rc = td3_paths(root, pid, domid, devid, dir, path, sizeof(path));
    if (rc)
        return rc;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return -errno;
    /* A file of this pid can only be a leftover of an earlier process
     * with our pid (after a reboot of the pid space, not of /dev/shm). */
    unlink(path);
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = -errno;
        rmdir(dir);             /* only if empty */
        return rc;
    }
    void *m = MAP_FAILED;
    if (ftruncate(fd, TD3_FILE_SIZE) == 0)
        m = mmap(NULL, TD3_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    rc = m == MAP_FAILED ? -errno : 0;
    close(fd);
    if (rc) {
        unlink(path);
        rmdir(dir);
        return rc;
    }
    struct td3_stats *t = m;
    *t = *init;
    t->version = TD3_STATS_VERSION;
    t->__pad = 0;
    t->flags = 0;
    f->mem = t;
    snprintf(f->path, sizeof(f->path), "%s", path);
    return 0;
}

/* unlink the file, then its directory if that is now empty. */
static void td3_unlink(const char *path)
{
    unlink(path);
    char dir[TD3_PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        rmdir(dir);             /* ENOTEMPTY: other devices' files are there */
    }
}

void td3_file_close(struct td3_file *f, bool remove)
{
    if (!f->mem)
        return;
    munmap(f->mem, TD3_FILE_SIZE);
    f->mem = NULL;
    if (remove)
        td3_unlink(f->path);
    f->path[0] = '\0';
}

int td3_file_take(const char *root, const char *pid, unsigned domid, unsigned devid,
                  struct td3_stats *out)
{
    uint64_t p;
    /* only a plain number names a file (no path in it) */
    if (!pid || xbd_parse_u64(pid, 10, 1, 0x7fffffff, &p))
        return -EINVAL;
    char dir[TD3_PATH_MAX], path[TD3_PATH_MAX];
    int rc = td3_paths(root, (long)p, domid, devid, dir, path, sizeof(path));
    if (rc)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    struct td3_stats t;
    ssize_t n = pread(fd, &t, sizeof(t), 0);
    rc = n < 0 ? -errno : 0;
    close(fd);
    if (rc)
        return rc;
    if (n != (ssize_t)sizeof(t) || t.version != TD3_STATS_VERSION)
        rc = -EINVAL;           /* as libxenstat: not a record we know; removed all the same */
    else
        *out = t;
    td3_unlink(path);
    return rc;
}

/* ---- a vbd's file -------------------------------------------------------------- */

static uint64_t hist_count(const struct vbd_hist *h)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < VBD_LAT_BUCKETS; i++)
        n += h->bucket[i];
    return n;
}

/* The record of counters s (struct vbd_stats: earlier connections) plus c
 * (carried over from the previous daemon). */
static void td3_from_stats(const struct vbd_stats *s, const struct td3_stats *c,
                           struct td3_stats *out)
{
    *out = (struct td3_stats){
        .oo_reqs = c->oo_reqs + s->oo_req,
        .read_reqs_submitted = c->read_reqs_submitted + s->rd_req,
        .read_reqs_completed = c->read_reqs_completed + hist_count(&s->lat[VBD_OP_READ].total),
        .read_sectors = c->read_sectors + s->rd_sect,
        .read_total_ticks = c->read_total_ticks + s->lat[VBD_OP_READ].total.sum_ns / 1000,
        .write_reqs_submitted = c->write_reqs_submitted + s->wr_req,
        .write_reqs_completed = c->write_reqs_completed + hist_count(&s->lat[VBD_OP_WRITE].total),
        .write_sectors = c->write_sectors + s->wr_sect,
        .write_total_ticks = c->write_total_ticks + s->lat[VBD_OP_WRITE].total.sum_ns / 1000,
        .io_errors = c->io_errors + s->io_errors,
    };
}

bool vbd_td3_wanted(const struct vbd *v)
{
    return !strcmp(v->kind, XSK_KIND_VBD3);
}

struct td3_stats *vbd_td3_open(struct vbd *v)
{
    struct backend *b = v->be;
    if (!vbd_td3_wanted(v))
        return NULL;
    v->td3_keep = false;
    if (v->td3.mem)
        return v->td3.mem;
    if (!v->td3_taken) {
        /* once per vbd: a previous daemon's file, left for us */
        v->td3_taken = true;
        char *old = NULL;
        if (!xs_read_str(b, v->be_path, XSK_KTHREAD_PID, &old) && atol(old) != (long)getpid()) {
            int rc = td3_file_take(TD3_SHM_ROOT, old, v->fe_domid, v->devid, &v->td3_carry);
            if (rc == 0)
                VLOG(v, LOG_INFO, "xentop statistics: going on from the previous daemon's "
                     "(pid %s): %llu reads, %llu writes", old,
                     (unsigned long long)v->td3_carry.read_reqs_submitted,
                     (unsigned long long)v->td3_carry.write_reqs_submitted);
            else if (rc != -ENOENT)
                VLOG(v, LOG_WARNING, "xentop statistics: the previous daemon's file (pid "
                     "%.16s) is not usable: %s; starting from this daemon's", old, strerror(-rc));
        }
        free(old);
    }
    struct td3_stats init;
    td3_from_stats(&v->stats_base, &v->td3_carry, &init);
    int rc = td3_file_create(TD3_SHM_ROOT, (long)getpid(), v->fe_domid, v->devid, &init, &v->td3);
    if (rc) {
        if (!v->td3_warned)
            VLOG(v, LOG_WARNING, "xentop statistics: cannot create %s/td3-%ld/vbd-%u-%u: %s; "
                 "xentop shows no I/O figures for this device", TD3_SHM_ROOT, (long)getpid(),
                 v->fe_domid, v->devid, strerror(-rc));
        v->td3_warned = true;
        return NULL;
    }
    VLOG(v, LOG_DEBUG, "xentop statistics in %s", v->td3.path);
    return v->td3.mem;
}

void vbd_td3_close(struct vbd *v)
{
    if (!v->td3.mem)
        return;
    bool keep = v->td3_keep;
    if (v->td3_leaked) {
        /* a queue thread left behind may still add to it: leave it mapped */
        v->td3.mem = NULL;
        if (!keep)
            td3_unlink(v->td3.path);
    } else {
        td3_file_close(&v->td3, !keep);
    }
    v->td3_leaked = false;
    if (!keep) {
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", v->be_path, XSK_KTHREAD_PID);
        v->be->ops->xs_rm(v->be->xs, XEN_XS_NO_TX, p);     /* -ENOENT: directory gone */
    }
}
