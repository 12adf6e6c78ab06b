/* t_e2e_lock: one writer per image file: a second read-write (or read-only) attach of an image in use read-write is refused (error node, Closing, one log line naming the holder) while the first keeps working, unless both frontends are domains of the same VM (migration to this host: the claim is shared and outlives the outgoing domain's vbd); read-only twice and w! twice are allowed; another program's OFD write lock refuses an attach; a restarted daemon that finds the lock held waits (still Connected, other devices served) and reattaches once it is released. */
#include "harness.h"
#include "util.h"
#include "lib/e2e.h"
#include "lib/share.h"
#include "sim.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <xen/io/xenbus.h>

static struct e2e E;
static char xen_arg[600];

/* Another program's lock on the whole file (F_OFD_SETLK, as the daemon's). */
static int hold_lock(const char *path, short type)
{
    int fd = open(path, (type == F_WRLCK ? O_RDWR : O_RDONLY) | O_CLOEXEC);   /* not into the daemon */
    T_ASSERT(fd >= 0, "%s: %s", path, strerror(errno));
    struct flock fl = { .l_type = type, .l_whence = SEEK_SET };
    T_ASSERT(fcntl(fd, F_OFD_SETLK, &fl) == 0, "F_OFD_SETLK %s: %s", path, strerror(errno));
    return fd;
}

static void rw_twice(const char *img, const char *other)
{
    T_LOG("---- the same image read-write twice");
    struct sdev a, b, c, n;
    share_attach_ok(&E.d, E.sim, &a, 21, img, "w");
    share_write_read(&a, 0, 1, "first writer");
    share_attach_refused(&E.d, E.sim, &b, 22, img, "w", "vbd 21/51712 of this daemon");
    /* read-only beside a writer is refused too (Xen's check_sharing) */
    share_attach_refused(&E.d, E.sim, &c, 23, img, "r", "vbd 21/51712");
    /* "rw" is read-write as well (any 'w') */
    share_detach(&E.d, &b);
    share_attach_refused(&E.d, E.sim, &b, 22, img, "rw", "vbd 21/51712");
    /* the first is unaffected, and so is a device on another image */
    share_write_read(&a, 64, 2, "first writer after the refusals");
    T_EQ(hx_be_state(&a.v), XenbusStateConnected);
    share_attach_ok(&E.d, E.sim, &n, 24, other, "w");
    share_write_read(&n, 8, 3, "device on another image");
    T_CHECK(t_daemon_alive(&E.d), "daemon died");
    share_detach(&E.d, &b);
    share_detach(&E.d, &c);
    share_detach(&E.d, &n);
    share_detach(&E.d, &a);
    /* released with the device: a new writer gets it */
    share_attach_ok(&E.d, E.sim, &b, 22, img, "w");
    share_write_read(&b, 16, 4, "writer after the first left");
    share_detach(&E.d, &b);
}

static void ro_twice(const char *img)
{
    T_LOG("---- the same image read-only twice");
    struct sdev a, b;
    share_attach_ok(&E.d, E.sim, &a, 31, img, "r");
    share_attach_ok(&E.d, E.sim, &b, 32, img, "r");
    T_CHECK(share_read_matches(&a, 40, img, NULL), "first reader: data differs from the file");
    T_CHECK(share_read_matches(&b, 40, img, NULL), "second reader: data differs from the file");
    /* and a writer is refused while they read */
    struct sdev w;
    share_attach_refused(&E.d, E.sim, &w, 33, img, "w", "of this daemon");
    share_detach(&E.d, &w);
    share_detach(&E.d, &a);
    share_detach(&E.d, &b);
}

static void foreign_lock(const char *img)
{
    T_LOG("---- another program holds a write lock on the image");
    int fd = hold_lock(img, F_WRLCK);
    char holder[64];
    snprintf(holder, sizeof(holder), "pid %d (t_e2e_lock)", (int)getpid());
    struct sdev a;
    share_attach_refused(&E.d, E.sim, &a, 41, img, "w", holder);
    share_detach(&E.d, &a);
    close(fd);                  /* that program is done: the attach works */
    share_attach_ok(&E.d, E.sim, &a, 41, img, "w");
    share_write_read(&a, 24, 5, "after the other program released its lock");
    /* and the daemon's own lock is there: another program cannot take one */
    int fd2 = open(img, O_RDONLY);
    T_ASSERT(fd2 >= 0);
    struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
    T_CHECK(fcntl(fd2, F_OFD_SETLK, &fl) < 0 && (errno == EAGAIN || errno == EACCES),
            "a read lock was granted beside the daemon's write lock");
    close(fd2);
    share_detach(&E.d, &a);
}

/* a writes one page (pattern seed) at sector; b reads the same data there. */
static void write_seen(struct sdev *a, struct sdev *b, uint64_t sector, uint64_t seed,
                       const char *why)
{
    struct treq w;
    guest_rw_req(&a->g, &w, BLKIF_OP_WRITE, seed, sector, 1, 8);
    T_EQ(guest_do_req(&a->g, 0, &w, BLKIF_RSP_OKAY, "write"), BLKIF_RSP_OKAY);
    T_CHECK(share_read_matches(b, sector, NULL, sim_dom_page(a->g.dom, w.pfn[0])), "%s", why);
}

/* A plain writer of domain `domid` is refused, naming `holder`; detached again. */
static void refused_by(const char *img, struct sdev *c, unsigned domid, const char *holder)
{
    share_attach_refused(&E.d, E.sim, c, domid, img, "w", holder);
    share_detach(&E.d, c);
}

static void shared_writers(const char *img)
{
    T_LOG("---- mode w!: two writers on purpose");
    long notes = hx_log_count(&E.d, "mode w!", "shared on purpose");
    struct sdev a, b, c;
    share_attach_ok(&E.d, E.sim, &a, 51, img, "w!");
    share_attach_ok(&E.d, E.sim, &b, 52, img, "w!");
    T_EQ(hx_log_count(&E.d, "mode w!", "shared on purpose") - notes, 2);
    T_EQ(hx_read_int("%s/info", a.v.be) & 4, 0);         /* read-write, not VDISK_READONLY */
    T_EQ(hx_read_int("%s/info", b.v.be) & 4, 0);
    share_write_read(&a, 80, 6, "w! writer A");
    share_write_read(&b, 88, 7, "w! writer B");
    /* each sees the other's write (O_DIRECT, one file) */
    write_seen(&a, &b, 96, 9, "B does not read what A wrote");
    /* a plain writer still is refused beside them */
    refused_by(img, &c, 53, "of this daemon");
    share_detach(&E.d, &a);
    share_detach(&E.d, &b);
}

/* 0 when another program can take a write lock on the whole file (and drops it). */
static int try_lock(const char *path)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    T_ASSERT(fd >= 0, "%s: %s", path, strerror(errno));
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    int rc = fcntl(fd, F_OFD_SETLK, &fl) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

static void same_vm(const char *img)
{
    T_LOG("---- two domains of one VM (migration to this host): the claim is shared");
    hx_write("/local/domain/71/vm", "/vm/0b6e0a1c-aaaa");
    hx_write("/local/domain/72/vm", "/vm/0b6e0a1c-aaaa");
    hx_write("/local/domain/73/vm", "/vm/5d1f77e2-bbbb");
    long notes = hx_log_count(&E.d, "vbd 72/51712:", "a domain of the same VM");
    struct sdev a, b, c;
    share_attach_ok(&E.d, E.sim, &a, 71, img, "w");
    share_write_read(&a, 136, 12, "outgoing domain");
    share_attach_ok(&E.d, E.sim, &b, 72, img, "w");
    T_EQ(hx_log_count(&E.d, "vbd 72/51712:", "a domain of the same VM") - notes, 1);
    write_seen(&a, &b, 144, 13, "the incoming domain does not read what the outgoing one wrote");
    /* another VM is refused, naming the first holder */
    refused_by(img, &c, 73, "of this daemon");
    T_CHECK(try_lock(img) < 0, "the image is unlocked while two domains use it");
    /* the outgoing domain goes: the claim stays with the incoming one */
    share_detach(&E.d, &a);
    T_CHECK(try_lock(img) < 0, "the image is unlocked after the outgoing domain left");
    share_write_read(&b, 152, 14, "incoming domain alone");
    refused_by(img, &c, 73, "vbd 72/51712 of this daemon");
    share_detach(&E.d, &b);
    T_EQ(try_lock(img), 0);
    /* a read-only attach of the same VM beside a writer: still refused (one mode) */
    share_attach_ok(&E.d, E.sim, &a, 71, img, "w");
    share_attach_refused(&E.d, E.sim, &b, 72, img, "r", "vbd 71/51712");
    share_detach(&E.d, &b);
    share_detach(&E.d, &a);
}

static void reattach_wait(const char *img, const char *other)
{
    T_LOG("---- restart while the image is still locked");
    struct sdev a, n;
    share_attach_ok(&E.d, E.sim, &a, 61, img, "w");
    share_write_read(&a, 120, 9, "before the restart");
    T_EQ(t_daemon_stop(&E.d, 15000), 0);
    T_EQ(hx_be_state(&a.v), XenbusStateConnected);            /* on-exit=leave */
    /* the daemon is gone: its lock too.  Another OFD now holds the image, as
     * the previous daemon's I/O still in the kernel would. */
    int fd = hold_lock(img, F_WRLCK);
    long waits = hx_log_count(&E.d, "vbd 61/51712: reattach: waiting for", img);
    const char *args[] = { xen_arg, NULL };
    T_ASSERT(t_daemon_start(&E.d, E.sim, args, 20000) == 0, "daemon restart");
    uint64_t end = xbd_now_ms() + 5000;
    while (hx_log_count(&E.d, "vbd 61/51712: reattach: waiting for", img) == waits &&
           xbd_now_ms() < end)
        usleep(10000);
    T_EQ(hx_log_count(&E.d, "vbd 61/51712: reattach: waiting for", img) - waits, 1);
    T_CHECK(hx_log_count(&E.d, "reattach: waiting for", "t_e2e_lock") >= 1,
            "the waiting line does not name the holder");
    /* waiting: still Connected, not attached; the main loop serves others */
    share_attach_ok(&E.d, E.sim, &n, 62, other, "w");
    share_write_read(&n, 32, 10, "another device while one waits");
    usleep(300000);
    T_EQ(hx_be_state(&a.v), XenbusStateConnected);
    T_EQ(t_daemon_dev_int(&E.d, 61, SHARE_DEVID, "connected"), 0);
    T_EQ(hx_log_count(&E.d, "vbd 61/51712: reattach: waiting for", img) - waits, 1);  /* once */
    char *err = hx_read("%s/error", a.v.be);
    T_CHECK(!err, "error node while waiting: %s", err);
    free(err);

    uint64_t t0 = xbd_now_ms();
    close(fd);
    end = t0 + 1000;
    while (t_daemon_dev_int(&E.d, 61, SHARE_DEVID, "connected") != 1 && xbd_now_ms() < end)
        usleep(5000);
    T_EQ(t_daemon_dev_int(&E.d, 61, SHARE_DEVID, "connected"), 1);
    T_LOG("reattached %llu ms after the lock was released", (unsigned long long)(xbd_now_ms() - t0));
    T_EQ(hx_log_count(&E.d, "vbd 61/51712: reattach:", "free after"), 1);
    T_EQ(hx_be_state(&a.v), XenbusStateConnected);
    T_CHECK(share_read_matches(&a, 120, img, NULL), "data written before the restart");
    share_write_read(&a, 128, 11, "after the reattach");
    share_detach(&E.d, &n);
    share_detach(&E.d, &a);
}

int main(void)
{
    e2e_start(&E, NULL);
    snprintf(xen_arg, sizeof(xen_arg), "--xen=sim:%s", E.sim);
    hx_open();
    const char *img = e2e_make_image(&E, "lock.img", 4);
    const char *other = e2e_make_image(&E, "other.img", 4);

    rw_twice(img, other);
    ro_twice(img);
    foreign_lock(img);
    shared_writers(img);
    same_vm(img);
    reattach_wait(img, other);

    T_EQ(t_daemon_ndevices(&E.d), 0);
    T_EQ(e2e_stop(&E), 0);
    if (t_failures)
        t_daemon_dump_log(&E.d, 60);
    return t_done();
}
