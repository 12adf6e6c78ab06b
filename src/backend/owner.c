/*
 * owner.c - one owner per backend kind: the state directory, the owner lock
 * <state-dir>/<kind>.lock (flock), and the check that the kernel's
 * xen-blkback is not registered for backend/vbd.  Everything here runs in
 * backend_create before the daemon touches xenstore, arms a watch or creates
 * its control socket, so a daemon that loses leaves the winner alone.
 */
#include "backend.h"
#include "log.h"
#include "xs_keys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int owner_mkdir_p(const char *dir, mode_t mode)
{
    char tmp[256];
    if (snprintf(tmp, sizeof(tmp), "%s", dir) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    size_t len = strlen(tmp);
    while (len > 1 && tmp[len - 1] == '/')
        tmp[--len] = 0;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, mode) && errno != EEXIST)
        return -errno;
    struct stat st;
    if (stat(tmp, &st))
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* The pid in a lock file, or -1 (empty: the owner has not written it yet). */
static long read_owner_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *end;
    long pid = strtol(buf, &end, 10);
    return pid > 0 && (*end == '\n' || *end == 0) ? pid : -1;
}

int owner_lock(const char *state_dir, const char *kind, int *fd_out, long *owner_pid)
{
    char path[320];
    if (snprintf(path, sizeof(path), "%s/%s.lock", state_dir, kind) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            /* The owner writes its pid right after locking: give it 200 ms. */
            long pid = -1;
            for (int i = 0; i < 20 && (pid = read_owner_pid(fd)) < 0; i++)
                nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
            *owner_pid = pid;
            e = EBUSY;
        }
        close(fd);
        return -e;
    }
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) || pwrite(fd, buf, (size_t)n, 0) != n) {
        int e = errno ? errno : EIO;
        close(fd);
        return -e;
    }
    *fd_out = fd;
    return 0;
}

int owner_kernel_blkback(const char *sysfs_root, unsigned *bound)
{
    char path[320];
    if (snprintf(path, sizeof(path), "%s/bus/xen-backend/drivers/vbd", sysfs_root) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    unsigned n = 0;
    for (struct dirent *de; (de = readdir(d)); )
        if (!strncmp(de->d_name, "vbd-", 4))     /* a bound device: vbd-<domid>-<devid> */
            n++;
    closedir(d);
    *bound = n;
    return 1;
}

/* Refuse backend/vbd while the kernel's backend driver is registered. */
static int check_kernel(void)
{
    unsigned bound = 0;
    int rc = owner_kernel_blkback(OWNER_SYSFS_ROOT, &bound);
    if (rc < 0) {
        log_warn("cannot read " OWNER_SYSFS_ROOT "/bus/xen-backend/drivers/vbd: %s; "
                 "assuming the kernel's xen-blkback is not loaded", strerror(-rc));
        return 0;
    }
    if (rc == 0)
        return 0;
    log_err("backend/%s is served by the kernel's xen-blkback (" OWNER_SYSFS_ROOT
            "/bus/xen-backend/drivers/vbd exists, %u device(s) bound): unload it with "
            "`modprobe -r xen-blkback` (after detaching its disks) and keep it away with "
            "/etc/modprobe.d/xen-blkbackd.conf (conf/modprobe-xen-blkbackd.conf)",
            XSK_KIND_VBD, bound);
    return -EBUSY;
}

int owner_acquire(struct backend *b, const char *const *kinds, unsigned nkinds)
{
    char dir[256];
    xbd_config_state_dir(b->cfg, dir, sizeof(dir));
    int rc = owner_mkdir_p(dir, 0700);
    if (rc) {
        log_err("state directory %s: %s", dir, strerror(-rc));
        return rc;
    }
    for (unsigned i = 0; i < nkinds && i < OWNER_MAX_KINDS; i++) {
        if (!kinds[i])
            continue;
        if (!strcmp(kinds[i], XSK_KIND_VBD) && !xbd_config_is_sim(b->cfg) && (rc = check_kernel()))
            return rc;
        long pid = -1;
        rc = owner_lock(dir, kinds[i], &b->lock_fd[i], &pid);
        if (rc == -EBUSY) {
            char who[32] = "unknown";
            if (pid > 0)
                snprintf(who, sizeof(who), "%ld", pid);
            log_err("backend/%s is served by xen-blkbackd pid %s (lock %s/%s.lock)",
                    kinds[i], who, dir, kinds[i]);
            return rc;
        }
        if (rc) {
            log_err("lock %s/%s.lock: %s", dir, kinds[i], strerror(-rc));
            return rc;
        }
        log_info("owner of backend/%s (lock %s/%s.lock)", kinds[i], dir, kinds[i]);
    }
    return 0;
}

void owner_release(struct backend *b)
{
    for (unsigned i = 0; i < OWNER_MAX_KINDS; i++)
        if (b->lock_fd[i] >= 0) {
            close(b->lock_fd[i]);      /* the file stays: unlinking would race a new owner */
            b->lock_fd[i] = -1;
        }
}
