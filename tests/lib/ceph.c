/* A single-node Ceph cluster (mon + memstore osd) for tests; see ceph.h. */
#include "ceph.h"
#include "util.h"
#include "../harness.h"
#include "e2e.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void t_ceph_need(void)
{
    const char *progs[] = { "ceph-mon", "ceph-osd", "ceph", "rbd", "ceph-authtool", "monmaptool" };
    for (unsigned i = 0; i < ARRAY_SIZE(progs); i++)
        T_SKIP_IF(e2e_sh(NULL, "command -v %s >/dev/null", progs[i]) != 0,
                  "%s not installed (scripts/deps.sh installs ceph-mon ceph-osd ceph-common)",
                  progs[i]);
}

/* A TCP port on 127.0.0.1 that was free a moment ago. */
static unsigned free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t l = sizeof(a);
    T_ASSERT(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
             getsockname(s, (struct sockaddr *)&a, &l) == 0, "free port: %s", strerror(errno));
    close(s);
    return ntohs(a.sin_port);
}

static pid_t spawn(struct t_ceph *c, const char *logname, const char *prog, const char *id)
{
    char log[400];
    snprintf(log, sizeof(log), "%s/log/%s.out", c->dir, logname);
    pid_t pid = fork();
    T_ASSERT(pid >= 0, "fork");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp(prog, prog, "-c", c->conf, "-i", id, "-f", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void dump_logs(struct t_ceph *c)
{
    char *out = NULL;
    e2e_sh(&out, "tail -n 15 %s/log/*", c->dir);
    T_LOG("ceph logs:\n%s", out ? out : "");
    free(out);
}

static int sh_logged(struct t_ceph *c, const char *what, const char *fmt, const char *arg)
{
    char *out = NULL;
    int rc = e2e_sh(&out, fmt, c->conf, arg);
    if (rc != 0)
        T_LOG("%s: exit %d: %s", what, rc, out ? out : "");
    free(out);
    return rc;
}

static bool wait_gone(pid_t pid, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        if (waitpid(pid, NULL, WNOHANG) == pid)
            return true;
        usleep(10000);
    }
    return false;
}

static void teardown(void *arg)
{
    struct t_ceph *c = arg;
    pid_t p[2] = { c->osd, c->mon };
    for (unsigned i = 0; i < 2; i++) {
        if (p[i] <= 0)
            continue;
        kill(p[i], SIGTERM);
        if (!wait_gone(p[i], 5000)) {
            kill(p[i], SIGKILL);
            waitpid(p[i], NULL, 0);
        }
    }
    c->osd = c->mon = 0;
}

void t_ceph_start(struct t_ceph *c)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    memset(c, 0, sizeof(*c));
    snprintf(c->dir, sizeof(c->dir), "%s", t_tmpdir(0));
    snprintf(c->conf, sizeof(c->conf), "%s/ceph.conf", c->dir);
    snprintf(c->pool, sizeof(c->pool), "rbd");
    c->port = free_port();
    char fsid[40] = "";
    FILE *f = fopen("/proc/sys/kernel/random/uuid", "r");
    T_ASSERT(f && fgets(fsid, sizeof(fsid), f), "uuid");
    fclose(f);
    fsid[strcspn(fsid, "\n")] = 0;
    f = fopen(c->conf, "w");
    T_ASSERT(f, "%s: %s", c->conf, strerror(errno));
    fprintf(f,
            "[global]\n"
            "fsid = %s\n"
            "mon host = 127.0.0.1:%u\n"
            "mon initial members = a\n"
            "public network = 127.0.0.1/32\n"
            "ms bind ipv6 = false\n"
            "auth cluster required = cephx\n"
            "auth service required = cephx\n"
            "auth client required = cephx\n"
            "keyring = %s/keyring\n"
            "run dir = %s/run\n"
            "admin socket = %s/run/$name.asok\n"
            "log file = %s/log/$name.log\n"
            "osd pool default size = 1\n"
            "osd pool default min size = 1\n"
            "mon allow pool size one = true\n"
            "osd pool default pg num = 8\n"
            "osd pool default pgp num = 8\n"
            "osd crush chooseleaf type = 0\n"
            "mon warn on pool no redundancy = false\n"
            "paxos propose interval = 0.05\n"
            "mon data = %s/mon\n"
            "osd data = %s/osd\n"
            "osd objectstore = memstore\n"
            "osd fast shutdown = false\n"        /* umount: memstore saves its objects */
            "memstore device bytes = 1073741824\n"
            "osd max object name len = 256\n"
            "osd max object namespace len = 64\n",
            fsid, c->port, c->dir, c->dir, c->dir, c->dir, c->dir, c->dir);
    fclose(f);

    char *out = NULL;
    int rc = e2e_sh(&out,
        "set -e; cd %s; mkdir -p run log mon osd;"
        "ceph-authtool --create-keyring keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null;"
        "ceph-authtool keyring --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *'"
        " --cap mgr 'allow *' >/dev/null;"
        "ceph-authtool keyring --gen-key -n osd.0 --cap mon 'allow profile osd' --cap osd 'allow *'"
        " >/dev/null;"
        "monmaptool --create --add a 127.0.0.1:%u --fsid %s monmap >/dev/null;"
        "ceph-mon -c ceph.conf --mkfs -i a --monmap monmap --keyring keyring",
        c->dir, c->port, fsid);
    T_ASSERT(rc == 0, "mon mkfs: %s", out ? out : "");
    free(out);
    t_atexit(teardown, c);
    c->mon = spawn(c, "mon", "ceph-mon", "a");
    char uuid[40] = "";
    f = fopen("/proc/sys/kernel/random/uuid", "r");
    T_ASSERT(f && fgets(uuid, sizeof(uuid), f), "uuid");
    fclose(f);
    uuid[strcspn(uuid, "\n")] = 0;
    if (sh_logged(c, "osd new", "timeout 60 ceph -c %s --connect-timeout 30 osd new %s 0 >/dev/null", uuid) ||
        sh_logged(c, "osd mkfs", "timeout 60 ceph-osd -c %s -i 0 --mkfs --osd-uuid %s 2>&1", uuid)) {
        dump_logs(c);
        T_ASSERT(0, "osd set-up failed");
    }
    c->osd = spawn(c, "osd", "ceph-osd", "0");
    if (sh_logged(c, "pool create", "timeout 60 ceph -c %s osd pool create %s 8 >/dev/null 2>&1", c->pool) ||
        sh_logged(c, "pool init", "timeout 60 rbd -c %s pool init %s", c->pool)) {
        dump_logs(c);
        T_ASSERT(0, "pool set-up failed");
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    T_LOG("ceph: mon on 127.0.0.1:%u, osd (memstore) up, pool %s ready after %.1f s (%s)",
          c->port, c->pool, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
          c->dir);
}

int t_ceph_image(struct t_ceph *c, const char *name, unsigned mib, unsigned order)
{
    char *out = NULL, ord[32] = "";
    if (order)
        snprintf(ord, sizeof(ord), " --order %u", order);
    int rc = e2e_sh(&out, "timeout 60 rbd -c %s create --size %uM%s %s/%s 2>&1", c->conf, mib, ord,
                    c->pool, name);
    if (rc != 0)
        T_LOG("rbd create %s: exit %d: %s", name, rc, out ? out : "");
    free(out);
    return rc;
}

int t_ceph_snap(struct t_ceph *c, const char *name, const char *snap)
{
    char *out = NULL;
    int rc = e2e_sh(&out, "timeout 60 rbd -c %s snap create %s/%s@%s 2>&1", c->conf, c->pool, name, snap);
    if (rc != 0)
        T_LOG("rbd snap create %s@%s: exit %d: %s", name, snap, rc, out ? out : "");
    free(out);
    return rc;
}

int t_ceph_osd_stop(struct t_ceph *c)
{
    if (c->osd <= 0)
        return -ESRCH;
    kill(c->osd, SIGTERM);
    if (!wait_gone(c->osd, 30000))
        return -ETIMEDOUT;
    c->osd = 0;
    return 0;
}

int t_ceph_osd_start(struct t_ceph *c)
{
    c->osd = spawn(c, "osd", "ceph-osd", "0");
    for (int i = 0; i < 120; i++) {
        char *out = NULL;
        int rc = e2e_sh(&out, "timeout 20 ceph -c %s osd dump 2>/dev/null | grep -q '^osd.0 up '",
                        c->conf);
        free(out);
        if (rc == 0)
            return 0;
        usleep(250000);
    }
    dump_logs(c);
    return -ETIMEDOUT;
}

void t_ceph_params(const struct t_ceph *c, const char *image, const char *extra, char *buf,
                   size_t len)
{
    snprintf(buf, len, "rbd:%s/%s:conf=%s%s", c->pool, image, c->conf, extra ? extra : "");
}
