/* t_e2e_nbd: the daemon serves NBD exports end to end: xen-blkbench --verify on an nbdkit memory export in grant modes copy and persistent (flush and discard reach the server); the hotplug script's qcow2 path starts qemu-storage-daemon on a real qcow2 image, rewrites params to its NBD socket, the data read through the backend is the image's, a guest DISCARD leaves a hole in the qcow2, and remove stops it; an unknown export or a missing server sends the device to Closing with the server's reason in the error node and one log line, other devices unaffected; a server killed under a connected guest answers ERROR at once and the device works again once the server is back. */
#include "harness.h"
#include "util.h"
#include "lib/e2e.h"
#include "lib/nbdsrv.h"
#include "lib/share.h"
#include "sim.h"

#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xen/io/xenbus.h>

static struct e2e E;

/* ---- nbdkit memory, two grant modes ----------------------------------------- */

static struct nbdsrv mem;

static void memory_modes(void)
{
    char logf[300];
    snprintf(logf, sizeof(logf), "logfile=%s/mem.log", t_tmpdir(0));
    const char *args[] = { "--filter=log", "memory", "64M", logf, NULL };
    nbdsrv_nbdkit(&mem, "mem", NULL, args);
    static const struct { const char *mode, *abi; bool persistent; } runs[] = {
        { "copy", "x86_64", false },
        { "persistent", "x86_32", true },
    };
    for (unsigned i = 0; i < 2; i++) {
        T_LOG("---- nbdkit memory, grant mode %s, ABI %s", runs[i].mode, runs[i].abi);
        int flushes = nbdsrv_log_lines(logf + 8, " Flush id="), trims = nbdsrv_log_lines(logf + 8, " Trim id=");
        const char *a[] = { "--abi", runs[i].abi, "--grant-mode", runs[i].mode,
            runs[i].persistent ? "--persistent" : "--quiet",
            "--rw", "randrw", "--bs-range", "512-1020k", "--indirect-segs", "256",
            "--iodepth", "32", "--size", "48m", "--verify", "--page-offset", "rand",
            "--offset", "0", "--length", "50331648", "--flush", "--discard", "50331648:8388608",
            NULL };
        char *out = NULL;
        int rc = e2e_bench(&E, 10 + i, mem.uri, a, &out);
        e2e_check_run(out, rc, runs[i].mode);
        T_CHECK(out && strstr(out, "sectors=131072"), "device size is not 64 MiB");
        T_CHECK(nbdsrv_log_lines(logf + 8, " Flush id=") > flushes, "%s: no Flush reached nbdkit", runs[i].mode);
        T_CHECK(nbdsrv_log_lines(logf + 8, " Trim id=") > trims, "%s: no Trim reached nbdkit", runs[i].mode);
        free(out);
    }
}

/* ---- qcow2 through the hotplug script and qemu-storage-daemon -------------- */

/* qemu-img map: are all bytes of [off, off+len) without data? */
static bool qcow2_hole(const char *img, uint64_t off, uint64_t len)
{
    char *out = NULL;
    int rc = e2e_sh(&out, "qemu-img map -U --output=json -f qcow2 '%s'", img);
    T_ASSERT(rc == 0 && out, "qemu-img map: %d", rc);
    bool hole = true;
    for (char *p = out; (p = strstr(p, "{ \"start\": ")); p++) {
        unsigned long long s, l;
        if (sscanf(p, "{ \"start\": %llu, \"length\": %llu", &s, &l) != 2)
            continue;
        bool data = strstr(p, "\"data\": true") && strstr(p, "\"data\": true") < strchr(p, '}');
        if (s < off + len && off < s + l && data)
            hole = false;
    }
    free(out);
    return hole;
}

static long long blocks_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_blocks : -1;
}

/* At exit: the script's remove (stops a qemu-storage-daemon a failed
 * check left running; nothing when remove already ran). */
static void script_remove(void *cmd)
{
    if (system(cmd) != 0)
        fprintf(stderr, "# cleanup failed: %s\n", (char *)cmd);
}

static void qcow2_script(void)
{
    T_LOG("---- qcow2: hotplug script + qemu-storage-daemon");
    nbdsrv_need("qemu-storage-daemon");
    nbdsrv_need("qemu-img");
    const char *raw = e2e_make_image(&E, "src.raw", 32);
    char img[400], sha[65], script[400], run[300];
    snprintf(img, sizeof(img), "%s/disk,1.qcow2", E.work);     /* a comma: QEMU's ",," */
    T_ASSERT(e2e_sh(NULL, "qemu-img convert -f raw -O qcow2 '%s' '%s'", raw, img) == 0);
    T_ASSERT(e2e_sha256_file(raw, sha) == 0);
    snprintf(script, sizeof(script), "%s/../../conf/block-xen-blkbackd", t_prog(""));
    if (access(script, X_OK) != 0)
        snprintf(script, sizeof(script), "conf/block-xen-blkbackd");
    snprintf(run, sizeof(run), "%s/run", t_tmpdir(0));

    /* the toolstack's nodes, as libxl writes them for target=qcow2:<img>;
     * XENBUS_PATH relative to dom0's home, as libxl passes it */
    const char *be = "backend/vbd/30/51712";
    char param0[450];
    snprintf(param0, sizeof(param0), "qcow2:%s", img);
    hx_open();
    hx_write("/local/domain/0/backend/vbd/30/51712/params", "%s", param0);
    hx_write("/local/domain/0/backend/vbd/30/51712/mode", "w");
    static char cleanup[1200];
    snprintf(cleanup, sizeof(cleanup), "XENBUS_PATH=%s XEN_BLKBACKD_RUNDIR=%s %s remove 2>/dev/null",
             be, run, script);
    t_atexit(script_remove, cleanup);
    char *out = NULL;
    int rc = e2e_sh(&out, "XENBUS_PATH=%s XEN_BLKBACKD_RUNDIR=%s %s add 2>&1", be, run, script);
    T_ASSERT(rc == 0, "script add: %d: %s", rc, out ? out : "");
    free(out);
    char *hs = hx_read("/local/domain/0/%s/hotplug-status", be);
    char *uri = hx_read("/local/domain/0/%s/params", be);
    T_CHECK(hs && !strcmp(hs, "connected"), "hotplug-status %s", hs ? hs : "(none)");
    T_ASSERT(uri && !strncmp(uri, "nbd+unix:///disk?socket=", 24), "params now %s", uri ? uri : "(none)");
    T_LOG("script wrote params = %s", uri);
    char pidf[400];
    snprintf(pidf, sizeof(pidf), "%s/backend-vbd-30-51712/qsd.pid", run);
    FILE *pf = fopen(pidf, "r");
    int qpid = 0;
    T_ASSERT(pf && fscanf(pf, "%d", &qpid) == 1 && qpid > 0, "no pidfile %s", pidf);
    fclose(pf);
    T_CHECK(kill(qpid, 0) == 0, "qemu-storage-daemon %d not running", qpid);

    /* fully written, then verified work in [0, 24 MiB) and a DISCARD of [24, 32) */
    const char *fill[] = { "--rw", "write", "--bs", "1m", "--indirect-segs", "256", "--iodepth", "4", "--sha256",
                           "--flush", "--quiet", NULL };
    rc = e2e_bench(&E, 31, uri, fill, &out);
    T_CHECK(rc == 0, "fill: exit %d", rc);
    e2e_check_sha256(out, sha, "qcow2 fill");
    free(out);
    T_CHECK(!qcow2_hole(img, 24u << 20, 8u << 20), "written range already a hole");
    long long b0 = blocks_of(img);
    const char *work[] = { "--rw", "randrw", "--bs-range", "512-256k", "--indirect-segs", "64", "--iodepth", "16",
        "--size", "16m", "--verify", "--offset", "0", "--length", "25165824", "--flush",
        "--discard", "25165824:8388608", NULL };
    rc = e2e_bench(&E, 32, uri, work, &out);
    e2e_check_run(out, rc, "qcow2");
    free(out);
    long long b1 = blocks_of(img);
    T_CHECK(b1 >= 0 && b0 - b1 >= (7ll << 20) / 512, "qcow2 file: %lld -> %lld blocks after an 8 MiB discard",
            b0, b1);
    T_LOG("qcow2 file: %lld -> %lld 512-byte blocks after the 8 MiB DISCARD", b0, b1);

    rc = e2e_sh(&out, "XENBUS_PATH=%s XEN_BLKBACKD_RUNDIR=%s %s remove 2>&1", be, run, script);
    T_CHECK(rc == 0, "script remove: %d: %s", rc, out ? out : "");
    free(out);
    T_CHECK(kill(qpid, 0) != 0, "qemu-storage-daemon %d still running after remove", qpid);
    T_CHECK(access(pidf, F_OK) != 0, "pidfile left behind");
    /* qemu-storage-daemon wrote its metadata back when it stopped: the
     * image is consistent and the discarded clusters are unallocated */
    T_EQ(e2e_sh(NULL, "qemu-img check -q '%s'", img), 0);
    T_CHECK(qcow2_hole(img, 24u << 20, 8u << 20), "discarded range still holds data (qemu-img map)");
    free(hs);
    free(uri);
    hx_rm("/local/domain/0/backend/vbd/30");
}

/* ---- faults -------------------------------------------------------------------- */

static void refused(unsigned domid, const char *params, int want_errno, const char *reason)
{
    char line[600];
    snprintf(line, sizeof(line), "vbd %u/%u: opening '", domid, SHARE_DEVID);
    long before = hx_log_count(&E.d, line, reason);
    struct sdev s;
    share_attach(&E.d, E.sim, &s, domid, params, "w");
    T_CHECK(hx_wait_be(&E.d, &s.v, XenbusStateClosing, 15000), "vbd %u not Closing", domid);
    char *err = hx_read("%s/error", s.v.be);
    T_CHECK(err && atoi(err) == want_errno && strstr(err, reason), "vbd %u error node: %s", domid,
            err ? err : "(none)");
    T_LOG("error node: %s", err ? err : "(none)");
    free(err);
    T_EQ(hx_log_count(&E.d, line, reason) - before, 1);
    share_detach(&E.d, &s);
}

static void faults(void)
{
    T_LOG("---- open faults: unknown export, no server; another device keeps working");
    struct sdev good;
    share_attach_ok(&E.d, E.sim, &good, 40, mem.uri, "w");
    share_write_read(&good, 0, 1, "good device");
    static struct nbdsrv strict;
    const char *args[] = { "--filter=exportname", "memory", "1M", "exportname-strict=true",
                           "exportname=disk1", NULL };
    nbdsrv_nbdkit(&strict, "strict", "disk1", args);
    char bad[300];
    snprintf(bad, sizeof(bad), "nbd+unix:///nosuch?socket=%s", strict.sock);
    refused(41, bad, ENOENT, "no export named");
    snprintf(bad, sizeof(bad), "nbd+unix:///?socket=%s/none.sock", t_tmpdir(0));
    refused(42, bad, ENOENT, "connect");
    share_write_read(&good, 8, 2, "good device after the refusals");
    share_detach(&E.d, &good);

    T_LOG("---- server killed under a connected guest; back again");
    static struct nbdsrv k;
    const char *kargs[] = { "memory", "16M", NULL };
    nbdsrv_nbdkit(&k, "kill", NULL, kargs);
    char uri[300];
    snprintf(uri, sizeof(uri), "%s&reconnect=50", k.uri);
    struct sdev s;
    share_attach_ok(&E.d, E.sim, &s, 43, uri, "w");
    share_write_read(&s, 16, 3, "before the kill");
    nbdsrv_kill(&k, SIGKILL);
    struct treq r;
    guest_rw_req(&s.g, &r, BLKIF_OP_READ, 7, 16, 1, 0);
    uint64_t t0 = xbd_now_ms();
    T_EQ(guest_do_req(&s.g, 0, &r, BLKIF_RSP_ERROR, "read, server dead"), BLKIF_RSP_ERROR);
    T_CHECK(xbd_now_ms() - t0 < 2000, "ERROR after %llu ms", (unsigned long long)(xbd_now_ms() - t0));
    nbdsrv_restart(&k);
    usleep(200000);                     /* > the 50 ms backoff after the failed attempt */
    share_write_read(&s, 24, 4, "after the server came back");
    T_EQ(hx_be_state(&s.v), XenbusStateConnected);
    share_detach(&E.d, &s);
}

int main(void)
{
    nbdsrv_need("nbdkit");
    e2e_start(&E, NULL);
    memory_modes();
    qcow2_script();
    faults();
    T_EQ(t_daemon_ndevices(&E.d), 0);
    T_EQ(e2e_stop(&E), 0);
    return t_done();
}
