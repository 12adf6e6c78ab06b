/* One owner per backend kind: a second daemon on the same host exits 1 naming the owner's pid and touches neither xenstore, the guest's I/O nor the first daemon's control socket; a regular file or a live socket given as --control is never removed; the lock is free again after the owner exits (SIGTERM or SIGKILL); the kernel-blkback check and the lock, unit-tested on fake directories. */
#include "harness.h"
#include "lib/e2e.h"
#include "lib/hostile.h"
#include "../src/backend/backend.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xen/io/xenbus.h>

#define DEVID 51712

static char *slurp(const char *path)
{
    char *out = NULL;
    e2e_sh(&out, "cat '%s'", path);
    return out;
}

/* owner.c on fake directories, in this process. */
static void unit(const char *dir)
{
    char root[512], p[600];
    unsigned bound = 99;
    snprintf(root, sizeof(root), "%s/sys", dir);
    T_EQ(owner_kernel_blkback(root, &bound), 0);            /* no sysfs at all */
    snprintf(p, sizeof(p), "%s/bus/xen-backend/drivers/vbd", root);
    T_EQ(owner_mkdir_p(p, 0755), 0);
    T_EQ(owner_kernel_blkback(root, &bound), 1);            /* registered, nothing bound */
    T_EQ(bound, 0);
    snprintf(p, sizeof(p), "%s/bus/xen-backend/drivers/vbd/vbd-5-51712", root);
    T_EQ(owner_mkdir_p(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/bus/xen-backend/drivers/vbd/uevent", root);
    T_EQ(e2e_sh(NULL, "touch '%s'", p), 0);
    T_EQ(owner_kernel_blkback(root, &bound), 1);
    T_EQ(bound, 1);

    /* state dir: parents made, last component 0700, a file in the way refused */
    char sd[512];
    snprintf(sd, sizeof(sd), "%s/a/b/state", dir);
    T_EQ(owner_mkdir_p(sd, 0700), 0);
    struct stat st;
    T_ASSERT(stat(sd, &st) == 0);
    T_EQ(st.st_mode & 07777, 0700);
    T_EQ(owner_mkdir_p(sd, 0700), 0);                       /* exists: fine */
    snprintf(p, sizeof(p), "%s/vbd.lock", sd);
    T_EQ(owner_mkdir_p(p, 0700), 0);                        /* (a directory now) */
    rmdir(p);
    snprintf(p, sizeof(p), "%s/file", dir);
    T_EQ(e2e_sh(NULL, "touch '%s'", p), 0);
    T_EQ(owner_mkdir_p(p, 0700), -ENOTDIR);

    /* flock is per open file: a second lock in this process conflicts */
    int fd = -1, fd2 = -1;
    long pid = 0;
    T_EQ(owner_lock(sd, "vbd", &fd, &pid), 0);
    T_CHECK(fd >= 0, "no lock fd");
    snprintf(p, sizeof(p), "%s/vbd.lock", sd);
    char *txt = slurp(p);
    T_CHECK(txt && atol(txt) == (long)getpid(), "lock file holds '%s'", txt ? txt : "(null)");
    free(txt);
    T_EQ(owner_lock(sd, "vbd", &fd2, &pid), -EBUSY);
    T_EQ(pid, getpid());
    T_EQ(fd2, -1);
    T_EQ(owner_lock(sd, "vbd3", &fd2, &pid), 0);            /* another kind: its own lock */
    close(fd2);
    close(fd);
    fd = -1;
    T_EQ(owner_lock(sd, "vbd", &fd, &pid), 0);              /* released with the fd */
    close(fd);
}

/* Run the daemon once in the foreground; its exit status, output in *out. */
static int run_daemon(struct e2e *e, char **out, const char *args)
{
    return e2e_sh(out, "exec '%s' --xen=sim:%s --config=/dev/null --log=stderr %s 2>&1 </dev/null",
                  t_prog("xen-blkbackd"), e->sim, args);
}

static bool answers(const struct t_daemon *d)
{
    char *r = t_daemon_request(d, "version");
    bool ok = r && strstr(r, "\"ok\":true");
    free(r);
    return ok;
}

int main(void)
{
    unit(t_tmpdir(0));

    struct e2e e;
    struct hvbd v;
    struct guest g;
    hx_e2e_connected(&e, NULL, &v, &g, 3, DEVID);

    char lockp[600];
    snprintf(lockp, sizeof(lockp), "%s/run/vbd.lock", e.sim);
    struct stat st;
    T_CHECK(stat(lockp, &st) == 0, "no lock file %s", lockp);
    char rundir[600];
    snprintf(rundir, sizeof(rundir), "%s/run", e.sim);
    T_CHECK(stat(rundir, &st) == 0 && (st.st_mode & 07777) == 0700, "state dir mode %o",
            st.st_mode & 07777);

    /* 1. A second daemon for backend/vbd with its own control socket. */
    T_LOG("1. second daemon, same kind");
    char *out = NULL, want[700], sock2[600];
    snprintf(sock2, sizeof(sock2), "%s/second.sock", e.sim);
    char args[800];
    snprintf(args, sizeof(args), "--control=%s", sock2);
    int rc = run_daemon(&e, &out, args);
    T_LOG("second daemon: exit %d: %s", rc, out ? out : "");
    T_EQ(rc, 1);
    snprintf(want, sizeof(want), "backend/vbd is served by xen-blkbackd pid %d (lock %s)",
             (int)e.d.pid, lockp);
    T_CHECK(out && strstr(out, want), "no '%s' in its output", want);
    free(out);
    T_CHECK(stat(sock2, &st) != 0, "the loser created its control socket");
    T_EQ(hx_be_state(&v), XenbusStateConnected);
    char *err = hx_read("%s/error", v.be);
    T_CHECK(err == NULL, "error node written: %s", err);
    free(err);
    err = hx_read("/local/domain/0/error/backend/vbd/3/%u/error", DEVID);
    T_CHECK(err == NULL, "Linux-style error node written: %s", err);
    free(err);
    T_CHECK(answers(&e.d), "the owner's control socket does not answer");
    T_EQ(t_daemon_dev_int(&e.d, 3, DEVID, "connected"), 1);
    hx_rw_check(&g, 1);
    char *lk = slurp(lockp);
    T_CHECK(lk && atol(lk) == e.d.pid, "lock file rewritten: '%s'", lk ? lk : "(null)");
    free(lk);

    /* 2. vbd3 is free, but the control socket is live: refused, not replaced. */
    T_LOG("2. --control = the owner's live socket");
    snprintf(args, sizeof(args), "--backend-types=vbd3 --control=%s", e.d.sock);
    rc = run_daemon(&e, &out, args);
    T_LOG("exit %d: %s", rc, out ? out : "");
    T_EQ(rc, 1);
    T_CHECK(out && strstr(out, "another process answers on it"), "no clear message");
    free(out);
    T_CHECK(answers(&e.d), "the owner's control socket was replaced");

    /* 3. --control = a regular file: refused, file intact. */
    T_LOG("3. --control = a regular file");
    char reg[600];
    snprintf(reg, sizeof(reg), "%s/precious.txt", e.work);
    T_EQ(e2e_sh(NULL, "printf 'keep me\\n' > '%s'", reg), 0);
    snprintf(args, sizeof(args), "--backend-types=vbd3 --control=%s", reg);
    rc = run_daemon(&e, &out, args);
    T_LOG("exit %d: %s", rc, out ? out : "");
    T_EQ(rc, 1);
    snprintf(want, sizeof(want), "control socket %s: exists and is not a socket", reg);
    T_CHECK(out && strstr(out, want), "no '%s'", want);
    free(out);
    char *txt = slurp(reg);
    T_CHECK(txt && !strcmp(txt, "keep me\n"), "file changed: '%s'", txt ? txt : "(gone)");
    free(txt);
    hx_rw_check(&g, 2);

    /* 4. The owner exits (SIGTERM, devices left): a new daemon takes the lock
     *    and the device. */
    T_LOG("4. after SIGTERM");
    T_EQ(e2e_stop(&e), 0);
    const char *xen_arg[] = { NULL, NULL };
    char xa[600];
    snprintf(xa, sizeof(xa), "--xen=sim:%s", e.sim);
    xen_arg[0] = xa;
    T_ASSERT(t_daemon_start(&e.d, e.sim, xen_arg, 20000) == 0, "new owner after SIGTERM");
    lk = slurp(lockp);
    T_CHECK(lk && atol(lk) == e.d.pid, "lock file: '%s', new owner %d", lk ? lk : "", (int)e.d.pid);
    free(lk);
    for (int i = 0; i < 250 && t_daemon_dev_int(&e.d, 3, DEVID, "connected") != 1; i++)
        usleep(20000);
    T_EQ(t_daemon_dev_int(&e.d, 3, DEVID, "connected"), 1);
    hx_rw_check(&g, 3);

    hx_close(&e.d, &v);
    guest_check_released(&g, "after close");

    /* 5. SIGKILL: a stale lock file (dead pid) and a stale socket are no
     *    obstacle (the sim cannot release a killed process's ring, so this
     *    owner has no device connected). */
    T_LOG("5. after SIGKILL");
    pid_t dead = e.d.pid;
    T_ASSERT(kill(dead, SIGKILL) == 0);
    T_ASSERT(waitpid(dead, NULL, 0) == dead);
    e.d.pid = 0;
    T_CHECK(lstat(e.d.sock, &st) == 0 && S_ISSOCK(st.st_mode), "no stale socket left by SIGKILL");
    T_ASSERT(t_daemon_start(&e.d, e.sim, xen_arg, 20000) == 0, "new owner after SIGKILL");
    lk = slurp(lockp);
    T_CHECK(lk && atol(lk) == e.d.pid, "lock file: '%s'", lk ? lk : "");
    free(lk);
    T_EQ(e2e_stop(&e), 0);
    guest_fini(&g);
    if (t_failures)
        t_daemon_dump_log(&e.d, 60);
    return t_done();
}
