/* Shared test harness: failures, cleanups, temp dirs, /proc counters. */
#include "../harness.h"
#include <dirent.h>
#include <limits.h>
#include <unistd.h>

int t_failures;

#define T_MAX_CLEANUPS 64
static struct { void (*fn)(void *); void *arg; } cleanups[T_MAX_CLEANUPS];
static int n_cleanups;
static int in_exit;

void t_atexit(void (*fn)(void *), void *arg)
{
    if (n_cleanups < T_MAX_CLEANUPS) {
        cleanups[n_cleanups].fn = fn;
        cleanups[n_cleanups].arg = arg;
        n_cleanups++;
    }
}

static void run_cleanups(void)
{
    if (in_exit++)
        return;
    while (n_cleanups > 0) {
        n_cleanups--;
        cleanups[n_cleanups].fn(cleanups[n_cleanups].arg);
    }
}

void t_exit(int code)
{
    run_cleanups();
    fflush(NULL);
    exit(code);
}

int t_done(void)
{
    if (t_failures)
        fprintf(stderr, "%d check(s) failed\n", t_failures);
    t_exit(t_failures ? 1 : 0);
}

static void rm_tree(void *arg)
{
    char cmd[PATH_MAX + 16];
    if (getenv("XBD_KEEP_TMP")) {
        fprintf(stderr, "# kept %s\n", (char *)arg);
    } else {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", (char *)arg);
        if (system(cmd) != 0)
            fprintf(stderr, "# could not remove %s\n", (char *)arg);
    }
    free(arg);
}

const char *t_tmpdir(int shm)
{
    const char *base = shm ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    char *p = NULL;
    if (asprintf(&p, "%s/xbd-test-XXXXXX", base) < 0 || !mkdtemp(p)) {
        perror("mkdtemp");
        t_exit(1);
    }
    t_atexit(rm_tree, p);
    return p;
}

const char *t_prog(const char *name)
{
    static char buf[8][PATH_MAX];
    static int slot;
    const char *b = getenv("XBD_BUILD");
    char *out = buf[slot++ % 8];
    snprintf(out, PATH_MAX, "%s/%s", b ? b : "build/san", name);
    return out;
}

const char *t_srcdir(const char *probe)
{
    static char p[PATH_MAX];
    if (access(probe, F_OK) == 0)
        return ".";
    snprintf(p, sizeof(p), "%s/../..", getenv("XBD_BUILD") ? getenv("XBD_BUILD") : ".");
    return p;
}

int t_count_dir(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

int t_count_fds_pid(int pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    int n = t_count_dir(path);
    return n >= 0 && pid == getpid() ? n - 1 : n;    /* minus the DIR's own fd */
}

int t_count_maps_pid(int pid, const char *needle)
{
    char path[64], line[1024];
    snprintf(path, sizeof(path), "/proc/%d/maps", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0;
    while (fgets(line, sizeof(line), f))
        if (!needle || strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

int t_count_threads_pid(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}
