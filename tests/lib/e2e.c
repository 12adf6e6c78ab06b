/* End-to-end fixture: test xenstored + daemon on a simulated host + xen-blkbench runs. */
#include "e2e.h"
#include "../harness.h"
#include "xsd.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

void e2e_start(struct e2e *e, const char *const *daemon_args)
{
    e2e_start_sim(e, NULL, daemon_args);
}

void e2e_start_sim(struct e2e *e, const char *sim_opts, const char *const *daemon_args)
{
    memset(e, 0, sizeof(*e));
    e->sim = t_tmpdir(1);
    const char *tmp = getenv("XBD_WORKDIR") ? getenv("XBD_WORKDIR") : "/var/tmp";
    setenv("TMPDIR", tmp, 0);
    e->work = t_tmpdir(0);
    int rc = t_xsd_start(e->sim, e->xs_sock, sizeof(e->xs_sock), &e->xsd_pid);
    T_ASSERT(rc == 0, "xenstored: %s", strerror(-rc));

    const char *args[32];
    unsigned n = 0;
    static char xen_arg[512];
    snprintf(xen_arg, sizeof(xen_arg), "--xen=sim:%s%s%s", e->sim, sim_opts ? "," : "",
             sim_opts ? sim_opts : "");
    args[n++] = xen_arg;
    for (unsigned i = 0; daemon_args && daemon_args[i] && n < 30; i++)
        args[n++] = daemon_args[i];
    args[n] = NULL;
    rc = t_daemon_start(&e->d, e->sim, args, 20000);
    T_ASSERT(rc == 0, "daemon: %s", strerror(-rc));
}

pid_t e2e_bench_bg(struct e2e *e, unsigned domid, const char *target, const char *const *args,
                   const char *out_path)
{
    pid_t child = fork();
    T_ASSERT(child >= 0);
    if (child)
        return child;
    char *out = NULL;
    int rc = e2e_bench(e, domid, target, args, &out);
    FILE *f = fopen(out_path, "w");
    if (f) {
        fputs(out ? out : "", f);
        fclose(f);
    }
    _exit(rc == 0 ? 0 : 1);
}

bool e2e_bench_join(struct e2e *e, pid_t child, const char *out_path, const char *what,
                    char **out)
{
    int wst;
    T_ASSERT(waitpid(child, &wst, 0) == child);
    *out = NULL;
    e2e_sh(out, "cat '%s'", out_path);
    bool ok = WIFEXITED(wst) && WEXITSTATUS(wst) == 0;
    T_CHECK(ok, "%s: the guest saw an error", what);
    if (!ok) {
        fprintf(stderr, "%s", *out ? *out : "");
        t_daemon_dump_log(&e->d, 60);
    }
    return ok;
}

void e2e_daemon_start(struct e2e *e, const char *const *extra)
{
    static char xen_arg[512];
    const char *args[16];
    unsigned n = 0;
    snprintf(xen_arg, sizeof(xen_arg), "--xen=sim:%s", e->sim);
    args[n++] = xen_arg;
    for (unsigned i = 0; extra && extra[i] && n < 15; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    int rc = t_daemon_start(&e->d, e->sim, args, 20000);
    T_ASSERT(rc == 0, "daemon start: %s", strerror(-rc));
}

int e2e_stop(struct e2e *e)
{
    return t_daemon_stop(&e->d, 15000);
}

static int run_capture(char *const argv[], char **out)
{
    int pfd[2];
    if (pipe(pfd) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        close(pfd[0]);
        close(pfd[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while (buf && (r = read(pfd[0], buf + len, cap - len - 1)) > 0) {
        len += (size_t)r;
        if (cap - len < 1024) {
            char *nb = realloc(buf, cap * 2);
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
    }
    close(pfd[0]);
    if (buf)
        buf[len] = 0;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int e2e_bench(struct e2e *e, unsigned domid, const char *target, const char *const *args, char **out)
{
    char *argv[64];
    char dom[16];
    unsigned n = 0;
    snprintf(dom, sizeof(dom), "%u", domid);
    argv[n++] = (char *)t_prog("xen-blkbench");
    argv[n++] = "--sim";
    argv[n++] = (char *)e->sim;
    argv[n++] = "--domid";
    argv[n++] = dom;
    argv[n++] = "--target";
    argv[n++] = (char *)target;
    for (unsigned i = 0; args && args[i] && n < 62; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    char *o = NULL;
    int rc = run_capture(argv, &o);
    T_LOG("xen-blkbench (domid %u) exit %d", domid, rc);
    if (o && (rc != 0 || getenv("XBD_VERBOSE")))
        fprintf(stderr, "%s", o);
    if (out)
        *out = o;
    else
        free(o);
    return rc;
}

/* Where the value of `key=` on the line starting with `section` starts; NULL. */
static const char *field_at(const char *out, const char *section, const char *key)
{
    size_t sl = strlen(section), kl = strlen(key);
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, section, sl) || l[sl] != ' ')
            continue;
        const char *end = strchr(l, '\n');
        for (const char *p = l + sl; p && (!end || p < end); p = strchr(p + 1, ' ')) {
            if (!strncmp(p + 1, key, kl) && p[1 + kl] == '=')
                return p + 2 + kl;
        }
    }
    return NULL;
}

long long e2e_field(const char *out, const char *section, const char *key)
{
    const char *v = field_at(out, section, key);
    return v ? strtoll(v, NULL, 10) : -1;
}

double e2e_field_double(const char *out, const char *section, const char *key)
{
    const char *v = field_at(out, section, key);
    return v ? strtod(v, NULL) : -1;
}

const char *e2e_make_image(struct e2e *e, const char *name, unsigned mib)
{
    char *path = NULL;
    T_ASSERT(asprintf(&path, "%s/%s", e->work, name) > 0);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    T_ASSERT(fd >= 0, "%s: %s", path, strerror(errno));
    static uint64_t buf[1 << 17];       /* 1 MiB */
    uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)mib;
    for (unsigned m = 0; m < mib; m++) {
        for (size_t i = 0; i < sizeof(buf) / 8; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            buf[i] = x;
        }
        T_ASSERT(write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf));
    }
    close(fd);
    t_atexit(free, path);
    return path;
}

int e2e_sha256_file(const char *path, char hex[65])
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -errno;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    static unsigned char buf[1 << 20];
    ssize_t r;
    while ((r = read(fd, buf, sizeof(buf))) > 0)
        EVP_DigestUpdate(ctx, buf, (size_t)r);
    close(fd);
    unsigned char md[32];
    unsigned mdlen = 0;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    for (unsigned i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", md[i]);
    return r < 0 ? -EIO : 0;
}

bool e2e_is_hole(const char *path, uint64_t off, uint64_t len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    off_t h = lseek(fd, (off_t)off, SEEK_HOLE);
    off_t d = lseek(fd, (off_t)off, SEEK_DATA);
    close(fd);
    return h == (off_t)off && (d < 0 || (uint64_t)d >= off + len);
}

void e2e_check_sha256(const char *out, const char *sha, const char *what)
{
    const char *p = out ? strstr(out, "\nsha256 ") : NULL;
    T_CHECK(p && !strncmp(p + 8, sha, 64), "%s: sha256 through the backend differs from the image",
            what);
}

void e2e_check_run(const char *out, int rc, const char *what)
{
    T_CHECK(rc == 0, "%s: xen-blkbench exit %d", what, rc);
    T_ASSERT(out, "%s: no output", what);
    T_EQ(e2e_field(out, "verify", "mismatches"), 0);
    T_CHECK(e2e_field(out, "verify", "sectors") > 0, "%s: nothing verified", what);
    T_EQ(e2e_field(out, "status", "error"), 0);
    T_EQ(e2e_field(out, "status", "unexpected"), 0);
    T_CHECK(strstr(out, "flush op=flush-cache status=okay") != NULL, "%s: flush not OKAY", what);
    T_EQ(e2e_field(out, "discard", "failed"), 0);
    T_EQ(e2e_field(out, "detach", "grants-leaked"), 0);
}

struct e2e_counts e2e_counts(const struct e2e *e)
{
    return (struct e2e_counts){ t_count_fds_pid(e->d.pid), t_count_maps_pid(e->d.pid, e->sim),
                                t_count_threads_pid(e->d.pid), t_count_maps_pid(e->d.pid, ".evtchn") };
}

void e2e_log_sim_maps(const struct e2e *e)
{
    char *m = NULL;
    e2e_sh(&m, "grep '%s' /proc/%d/maps", e->sim, (int)e->d.pid);
    T_LOG("daemon's mappings of the simulated host:\n%s", m ? m : "");
    free(m);
}

int e2e_sh(char **out, const char *fmt, ...)
{
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&cmd, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    int rc = run_capture(argv, out);
    free(cmd);
    return rc;
}

void e2e_need_loop(void)
{
    T_SKIP_IF(geteuid() != 0, "loop devices need root");
    char *out = NULL;
    int rc = e2e_sh(&out, "losetup -f");
    T_SKIP_IF(rc != 0, "no free loop device: %s", out ? out : "");
    free(out);
}

static void detach_loop(void *arg)
{
    if (e2e_sh(NULL, "losetup -d %s", (char *)arg) != 0)
        T_LOG("losetup -d %s failed", (char *)arg);
    free(arg);
}

const char *e2e_losetup(const char *img)
{
    char *out = NULL;
    int rc = e2e_sh(&out, "losetup -f --show %s", img);
    T_SKIP_IF(rc != 0 || !out, "losetup failed: %s", out ? out : "");
    out[strcspn(out, "\n")] = 0;
    t_atexit(detach_loop, out);
    return out;
}
