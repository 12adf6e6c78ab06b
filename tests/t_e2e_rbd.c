/* t_e2e_rbd: the daemon on the simulated host serves RBD images of a real single-node Ceph cluster: a verified guest workload with flush and discard in every grant mode (map, copy, persistent) and two queues, the whole disk read back equal to what rbd export sees; an unknown pool, an unknown image and an unreachable cluster each send only their device to Closing with an error node naming the cause and one log line, while another device keeps being served; the OSD stopped mid-I/O and restarted: the guest's verified workload completes without an error. */
#include "harness.h"
#include "lib/ceph.h"
#include "lib/e2e.h"

#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static struct t_ceph C;
static struct e2e E;

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 1 << 20, n = 0;
    char *b = malloc(cap + 1);
    if (b)
        n = fread(b, 1, cap, f);
    fclose(f);
    if (b)
        b[n] = 0;
    return b;
}

/* A verified randrw workload with flush and discard, then a whole-disk read
 * (sha256) compared with `rbd export` of the image after detach. */
static void one_mode(const char *mode, unsigned domid)
{
    char img[64], params[600], disc[64];
    snprintf(img, sizeof(img), "e2e-%s", mode);
    T_ASSERT(t_ceph_image(&C, img, 32, 0) == 0, "rbd create %s", img);
    t_ceph_params(&C, img, "", params, sizeof(params));
    snprintf(disc, sizeof(disc), "%u:%u", 28u << 20, 4u << 20);
    const char *args[] = { "--grant-mode", mode, "--mode", "w", "--queues", "2",
        "--rw", "randrw", "--bs-range", "512-252k", "--indirect-segs", "64", "--iodepth", "16",
        "--size", "24m", "--verify", "--page-offset", "rand", "--offset", "0", "--length", "25165824",
        "--flush", "--discard", disc, NULL };
    char *out = NULL;
    int rc = e2e_bench(&E, domid, params, args, &out);
    e2e_check_run(out, rc, mode);
    long long verified = e2e_field(out, "verify", "sectors");
    free(out);
    /* the whole disk as a second guest reads it == what librbd's CLI exports */
    const char *rargs[] = { "--grant-mode", mode, "--sha256", "--rw", "read", "--size", "1m", NULL };
    out = NULL;
    T_CHECK(e2e_bench(&E, domid + 100, params, rargs, &out) == 0, "%s: read-back run", mode);
    T_ASSERT(out);
    char *p = strstr(out, "\nsha256 ");
    char *exp = NULL;
    T_CHECK(e2e_sh(&exp, "rbd -c %s export %s/%s - 2>/dev/null | sha256sum", C.conf, C.pool, img) == 0,
            "rbd export");
    T_CHECK(p && exp && !strncmp(p + 8, exp, 64), "%s: sha256 through the backend differs from rbd "
            "export", mode);
    T_LOG("%s: verified %lld sectors, whole disk equal to rbd export", mode, verified);
    free(exp);
    free(out);
}

/* A device whose open fails: bench fails, the error node names the cause,
 * the daemon logs exactly one error line for it. */
static void open_fault(const char *params, unsigned domid, const char *expect)
{
    const char *args[] = { "--timeout", "20", "--size", "1m", NULL };
    char *out = NULL;
    int rc = e2e_bench(&E, domid, params, args, &out);
    T_CHECK(rc != 0, "domid %u: '%s' attached", domid, params);
    T_CHECK(out && strstr(out, "backend error") && strstr(out, expect),
            "domid %u: no backend error naming '%s':\n%s", domid, expect, out ? out : "");
    const char *e = out ? strstr(out, "backend error") : NULL;
    T_LOG("domid %u: %.*s", domid, e ? (int)strcspn(e, "\n") : 0, e ? e : "");
    free(out);
    char *log = read_file(E.d.log), pat[64];
    snprintf(pat, sizeof(pat), "vbd %u/", domid);
    unsigned errs = 0;
    for (char *l = log; l && *l;) {
        char *nl = strchr(l, '\n');
        if (nl)
            *nl = 0;
        errs += strstr(l, pat) && strstr(l, "[error]") ? 1 : 0;
        l = nl ? nl + 1 : l + strlen(l);
    }
    T_CHECK(errs == 1, "domid %u: %u error lines in the daemon log", domid, errs);
    free(log);
}

struct bg { const char *params; unsigned domid, runtime; int rc; char *out; };
static void *bg_bench(void *arg)
{
    struct bg *b = arg;
    char rt[16];
    snprintf(rt, sizeof(rt), "%u", b->runtime);
    const char *args[] = { "--rw", "randrw", "--bs-range", "4k-128k", "--iodepth", "16",
        "--runtime", rt, "--verify", "--flush", "--timeout", "60", NULL };
    b->rc = e2e_bench(&E, b->domid, b->params, args, &b->out);
    return NULL;
}

/* Wait until device domid/51712 has served requests (10 s at most). */
static bool wait_io(unsigned domid)
{
    for (int i = 0; i < 200; i++) {
        if (t_daemon_stat(&E.d, domid, 51712, "wr_req") > 0)
            return true;
        usleep(50000);
    }
    return false;
}

static void bg_check(struct bg *b, const char *what)
{
    T_CHECK(b->rc == 0, "%s: exit %d:\n%s", what, b->rc, b->out ? b->out : "");
    T_EQ(b->out ? e2e_field(b->out, "verify", "mismatches") : -1, 0);
    T_EQ(b->out ? e2e_field(b->out, "status", "error") : -1, 0);
    T_CHECK(b->out && e2e_field(b->out, "verify", "sectors") > 0, "%s: nothing verified", what);
}

int main(void)
{
    t_ceph_need();
    t_ceph_start(&C);
    e2e_start(&E, NULL);

    const char *modes[] = { "map", "copy", "persistent" };
    for (unsigned i = 0; i < 3; i++)
        one_mode(modes[i], 1 + i);

    /* faults: each device fails alone while device B is served */
    T_ASSERT(t_ceph_image(&C, "b", 16, 0) == 0, "rbd create b");
    char pb[600], p[1200];
    t_ceph_params(&C, "b", "", pb, sizeof(pb));
    struct bg b = { .params = pb, .domid = 20, .runtime = 15 };  /* outlives the three faults on a loaded host */
    pthread_t th;
    T_ASSERT(pthread_create(&th, NULL, bg_bench, &b) == 0);
    T_CHECK(wait_io(20), "device B serves no writes");
    snprintf(p, sizeof(p), "rbd:nopool/b:conf=%s", C.conf);
    open_fault(p, 11, "pool 'nopool'");
    t_ceph_params(&C, "noimage", "", p, sizeof(p));
    open_fault(p, 12, "image 'noimage'");
    t_ceph_params(&C, "b", ":mon_host=127.0.0.1\\:1:client_mount_timeout=2", p, sizeof(p));
    open_fault(p, 13, "client_mount_timeout=2");
    T_CHECK(t_daemon_dev_int(&E.d, 20, 51712, "connected") == 1, "device B not connected");
    pthread_join(th, NULL);
    bg_check(&b, "device B beside the failed devices");
    free(b.out);

    /* the OSD stops under device B's verified workload and comes back */
    b = (struct bg){ .params = pb, .domid = 21, .runtime = 10 };
    T_ASSERT(pthread_create(&th, NULL, bg_bench, &b) == 0);
    T_CHECK(wait_io(21), "device B serves no writes");
    T_ASSERT(t_ceph_osd_stop(&C) == 0, "osd stop");
    sleep(3);
    T_ASSERT(t_ceph_osd_start(&C) == 0, "osd start");
    pthread_join(th, NULL);
    bg_check(&b, "device B across the OSD restart");
    /* some request waited for the OSD: at least the 3 s it was down */
    const char *lat = b.out ? strstr(b.out, "latency-us ") : NULL;
    const char *mx = lat ? strstr(lat, "max=") : NULL;
    double max_us = mx ? atof(mx + 4) : 0;
    T_CHECK(max_us >= 3e6, "max latency %.0f us: no request was in flight across the outage", max_us);
    T_LOG("device B across the OSD restart: %lld sectors verified, max latency %.1f s",
          b.out ? e2e_field(b.out, "verify", "sectors") : -1, max_us / 1e6);
    free(b.out);

    T_CHECK(t_daemon_alive(&E.d), "daemon died");
    T_EQ(e2e_stop(&E), 0);
    return t_done();
}
