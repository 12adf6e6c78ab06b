/* t_e2e_lock_loop: one writer per block device and loop-backed file (losetup): a loop device attached read-write twice is refused the second time (O_EXCL), and while another program holds it O_EXCL; read-only and w! beside a writer are allowed; a file that backs a loop device is refused read-write, naming /dev/loopN, and allowed read-only. */
#include "harness.h"
#include "lib/e2e.h"
#include "lib/share.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <xen/io/xenbus.h>

static struct e2e E;

int main(void)
{
    e2e_need_loop();
    e2e_start(&E, NULL);
    hx_open();
    const char *img = e2e_make_image(&E, "loop.img", 8);
    const char *dev = e2e_losetup(img);
    T_LOG("loop device %s on %s", dev, img);

    /* 1. the device read-write twice: the second open O_EXCL gets EBUSY */
    struct sdev a, b, r, s;
    share_attach_ok(&E.d, E.sim, &a, 71, dev, "w");
    share_write_read(&a, 0, 1, "loop writer");
    share_attach_refused(&E.d, E.sim, &b, 72, dev, "w", "vbd 71/51712 of this daemon");
    /* read-only beside it is allowed (no O_EXCL), and reads what a wrote */
    share_attach_ok(&E.d, E.sim, &r, 73, dev, "r");
    T_CHECK(share_read_matches(&r, 0, dev, NULL), "reader of the loop device");
    /* w! is read-write without O_EXCL */
    share_attach_ok(&E.d, E.sim, &s, 74, dev, "w!");
    share_write_read(&s, 8, 2, "w! writer beside an O_EXCL writer");
    share_write_read(&a, 16, 3, "the first writer after the refusal");
    share_detach(&E.d, &b);
    share_detach(&E.d, &r);
    share_detach(&E.d, &s);
    share_detach(&E.d, &a);

    /* 2. another program holds the device O_EXCL */
    int fd = open(dev, O_RDWR | O_EXCL | O_CLOEXEC);
    T_ASSERT(fd >= 0, "open %s O_EXCL: %s", dev, strerror(errno));
    char holder[64];
    snprintf(holder, sizeof(holder), "pid %d (t_e2e_lock_loo", (int)getpid());  /* comm: 15 chars */
    share_attach_refused(&E.d, E.sim, &b, 75, dev, "w", holder);
    share_detach(&E.d, &b);
    close(fd);
    share_attach_ok(&E.d, E.sim, &b, 75, dev, "w");
    share_write_read(&b, 24, 4, "after the other program closed it");
    share_detach(&E.d, &b);

    /* 3. the file behind the loop device: read-write refused, read-only allowed */
    char loopdev[64];
    snprintf(loopdev, sizeof(loopdev), "loop device %s", dev);
    share_attach_refused(&E.d, E.sim, &b, 76, img, "w", loopdev);
    share_detach(&E.d, &b);
    share_attach_ok(&E.d, E.sim, &r, 77, img, "r");
    T_CHECK(share_read_matches(&r, 40, img, NULL), "read-only on the loop-backed file");
    share_detach(&E.d, &r);

    T_CHECK(t_daemon_alive(&E.d), "daemon died");
    T_EQ(t_daemon_ndevices(&E.d), 0);
    T_EQ(e2e_stop(&E), 0);
    if (t_failures)
        t_daemon_dump_log(&E.d, 60);
    return t_done();
}
