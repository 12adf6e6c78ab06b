/*
 * sim_host.c - the simulated Xen host's directory: host.ctl (the host lock,
 * id counters), atomic creation and mapping of host files, the reference-
 * counted mappings of event-channel tables (a table stays mapped while a
 * handle or a port of this process uses it, then is unmapped, so a daemon
 * does not keep one mapping per guest domain ever seen).  Layouts: sim_priv.h;
 * the owner slots in host.ctl: sim_owner.c.
 */
#include "sim_priv.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int mkdir_p(const char *dir)
{
    char *p = strdup(dir);
    if (!p)
        return -ENOMEM;
    int rc = 0;
    for (char *s = p + 1; ; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        *s = c;
        if (c == '\0')
            break;
    }
    free(p);
    return rc;
}

int sim_file_create(struct sim_host *h, const char *name, size_t len, bool excl,
                    int (*init)(void *base, void *arg), void *arg)
{
    char tmp[NAME_MAX + 1];
    int n = snprintf(tmp, sizeof(tmp), ".%s.tmp.%ld.%ld", name, (long)getpid(),
                     (long)syscall(SYS_gettid));
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = openat(h->dirfd, tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = 0;
    void *base = MAP_FAILED;
    if (ftruncate(fd, (off_t)len) < 0) {
        rc = -errno;
        goto out;
    }
    if (init) {
        base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (base == MAP_FAILED) {
            rc = -errno;
            goto out;
        }
        rc = init(base, arg);
        munmap(base, len);
        if (rc < 0)
            goto out;
    }
    if (excl) {
        if (linkat(h->dirfd, tmp, h->dirfd, name, 0) < 0)
            rc = -errno;
    } else if (renameat(h->dirfd, tmp, h->dirfd, name) < 0) {
        rc = -errno;
    }
out:
    close(fd);
    if (rc < 0 || excl)
        unlinkat(h->dirfd, tmp, 0);
    return rc;
}

int sim_file_map(struct sim_host *h, const char *name, size_t min_len, void **base,
                 size_t *len, int *fd_out)
{
    int fd = openat(h->dirfd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
    } else if ((size_t)st.st_size < min_len || st.st_size == 0) {
        rc = -EINVAL;
    } else {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            rc = -errno;
        } else {
            *base = p;
            *len = (size_t)st.st_size;
        }
    }
    if (rc == 0 && fd_out)
        *fd_out = fd;
    else
        close(fd);
    return rc;
}

static int ctl_init(void *base, void *arg)
{
    (void)arg;
    struct sim_ctl *c = base;
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(&c->lock, &a);
    pthread_mutexattr_destroy(&a);
    if (rc)
        return -rc;
    c->next_handle_id = 1;
    c->next_generation = 1;
    c->version = SIM_LAYOUT_VERSION;
    c->magic = SIM_CTL_MAGIC;
    return 0;
}

/* Open (creating it at first use) and map host.ctl. */
static int ctl_open(struct sim_host *h)
{
    for (int tries = 0; tries < 2; tries++) {
        void *base;
        size_t len;
        int rc = sim_file_map(h, "host.ctl", sizeof(struct sim_ctl), &base, &len, NULL);
        if (rc == 0) {
            struct sim_ctl *c = base;
            if (c->magic != SIM_CTL_MAGIC || c->version != SIM_LAYOUT_VERSION) {
                munmap(base, len);
                return -EPROTO;
            }
            h->ctl = c;
            h->ctl_len = len;
            return 0;
        }
        if (rc != -ENOENT)
            return rc;
        rc = sim_file_create(h, "host.ctl", sizeof(struct sim_ctl), true, ctl_init, NULL);
        if (rc < 0 && rc != -EEXIST)
            return rc;
    }
    return -ENOENT;
}

int sim_host_open(const char *dir, struct sim_host **out)
{
    if (!dir || !*dir)
        return -EINVAL;
    int rc = mkdir_p(dir);
    if (rc < 0)
        return rc;
    struct sim_host *h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->dirfd = -1;
    h->dir = strdup(dir);
    if (!h->dir) {
        rc = -ENOMEM;
        goto fail;
    }
    h->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (h->dirfd < 0) {
        rc = -errno;
        goto fail;
    }
    if (mkdirat(h->dirfd, "evq", 0700) < 0 && errno != EEXIST) {
        rc = -errno;
        goto fail;
    }
    rc = ctl_open(h);
    if (rc < 0)
        goto fail;
    pthread_mutex_init(&h->evt_lock, NULL);
    *out = h;
    return 0;
fail:
    if (h->dirfd >= 0)
        close(h->dirfd);
    free(h->dir);
    free(h);
    return rc;
}

void sim_host_close(struct sim_host *h)
{
    if (!h)
        return;
    while (h->evt) {
        struct sim_evt_map *m = h->evt;
        h->evt = m->next;
        munmap(m->base, m->len);
        free(m);
    }
    pthread_mutex_destroy(&h->evt_lock);
    munmap(h->ctl, h->ctl_len);
    close(h->dirfd);
    free(h->dir);
    free(h);
}

DIR *sim_host_opendir(struct sim_host *h)
{
    int fd = openat(h->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    DIR *dir = fdopendir(fd);
    if (!dir)
        close(fd);
    return dir;
}

const char *sim_host_dir(const struct sim_host *h)
{
    return h->dir;
}

int sim_host_lock(struct sim_host *h)
{
    int rc = pthread_mutex_lock(&h->ctl->lock);
    if (rc == EOWNERDEAD) {
        /* A process died holding the lock: its update may be half done, but
         * every table field is validated by its readers. */
        pthread_mutex_consistent(&h->ctl->lock);
        rc = 0;
    }
    return -rc;
}

void sim_host_unlock(struct sim_host *h)
{
    pthread_mutex_unlock(&h->ctl->lock);
}

static int evt_init(void *base, void *arg)
{
    struct sim_evt_hdr *hdr = base;
    hdr->domid = *(xen_domid_t *)arg;
    hdr->nr_ports = SIM_EVT_NR_PORTS;
    hdr->version = SIM_LAYOUT_VERSION;
    hdr->magic = SIM_EVT_MAGIC;
    return 0;
}

#define SIM_EVT_FILE_LEN (sizeof(struct sim_evt_hdr) + SIM_EVT_NR_PORTS * sizeof(struct sim_evt_port))

int sim_evt_table(struct sim_host *h, xen_domid_t domid, bool create, struct sim_evt_port **out)
{
    pthread_mutex_lock(&h->evt_lock);
    for (struct sim_evt_map *m = h->evt; m; m = m->next) {
        if (m->domid == domid) {
            m->refs++;
            *out = m->ports;
            pthread_mutex_unlock(&h->evt_lock);
            return 0;
        }
    }
    char name[32];
    snprintf(name, sizeof(name), "dom%u.evtchn", domid);
    void *base = NULL;
    size_t len = 0;
    int rc = sim_file_map(h, name, SIM_EVT_FILE_LEN, &base, &len, NULL);
    if (rc == -ENOENT && create) {
        rc = sim_file_create(h, name, SIM_EVT_FILE_LEN, true, evt_init, &domid);
        if (rc == 0 || rc == -EEXIST)
            rc = sim_file_map(h, name, SIM_EVT_FILE_LEN, &base, &len, NULL);
    }
    if (rc == 0) {
        struct sim_evt_hdr *hdr = base;
        struct sim_evt_map *m = calloc(1, sizeof(*m));
        if (hdr->magic != SIM_EVT_MAGIC || hdr->version != SIM_LAYOUT_VERSION ||
            hdr->domid != domid || hdr->nr_ports != SIM_EVT_NR_PORTS)
            rc = -EPROTO;
        else if (!m)
            rc = -ENOMEM;
        if (rc < 0) {
            free(m);
            munmap(base, len);
        } else {
            m->domid = domid;
            m->refs = 1;
            m->base = base;
            m->len = len;
            m->ports = (struct sim_evt_port *)(hdr + 1);
            m->next = h->evt;
            h->evt = m;
            *out = m->ports;
        }
    }
    pthread_mutex_unlock(&h->evt_lock);
    return rc;
}

void sim_evt_table_put(struct sim_host *h, struct sim_evt_port *ports)
{
    if (!ports)
        return;
    pthread_mutex_lock(&h->evt_lock);
    for (struct sim_evt_map **pm = &h->evt; *pm; pm = &(*pm)->next) {
        struct sim_evt_map *m = *pm;
        if (m->ports != ports)
            continue;
        if (--m->refs == 0) {
            *pm = m->next;
            munmap(m->base, m->len);
            free(m);
        }
        break;
    }
    pthread_mutex_unlock(&h->evt_lock);
}
