/* t_deb: `make deb` (scripts/make-deb.sh: debhelper, lintian) builds the xen-blkbackd and xen-blkbackd-sim packages, or a build newer than the programs and the packaging is reused; unpacked into a scratch root (dpkg -x) the daemon, xen-blkbackctl and xen-blkbench run, and the unit (enabled by dh_installsystemd's postinst), the hotplug script, the modprobe snippet, the conffiles and the man pages are where Debian wants them. */
#include "harness.h"
#include "util.h"
#include "lib/e2e.h"
#include "lib/guest.h"

#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char top[512], debdir[600];

static time_t mtime_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_mtime : 0;
}

/* Newest mtime of the files directly in dir (0 if none). */
static time_t newest_in(const char *dir)
{
    time_t t = 0;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d));) {
        char p[1200];
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        time_t m = mtime_of(p);
        if (m > t)
            t = m;
    }
    closedir(d);
    return t;
}

/* The .deb of package `pkg` in debdir into out (len); false if none. */
static bool find_deb(const char *pkg, char *out, size_t len)
{
    char *o = NULL;
    int rc = e2e_sh(&o, "ls %s/%s_*_$(dpkg --print-architecture).deb 2>/dev/null | head -n1",
                    debdir, pkg);
    bool ok = rc == 0 && o && *o == '/';
    if (ok) {
        o[strcspn(o, "\n")] = 0;
        snprintf(out, len, "%s", o);
    }
    free(o);
    return ok;
}

/* Reuse the packages if they are newer than every program of the plain
 * build (make check runs `make all` first) and every packaging input. */
static bool up_to_date(const char *deb)
{
    static const char *const inputs[] = { "build/xen-blkbackd", "build/xen-blkbackctl",
        "build/xen-blkbench", "build/xen-sim-xenstored", "Makefile", "scripts/make-deb.sh" };
    static const char *const dirs[] = { "debian", "conf", "man" };
    time_t built = mtime_of(deb), newest = 0;
    for (size_t i = 0; i < ARRAY_SIZE(inputs); i++) {
        char p[700];
        snprintf(p, sizeof(p), "%s/%s", top, inputs[i]);
        time_t m = mtime_of(p);
        newest = m > newest ? m : newest;
    }
    for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
        char p[700];
        snprintf(p, sizeof(p), "%s/%s", top, dirs[i]);
        time_t m = newest_in(p);
        newest = m > newest ? m : newest;
    }
    return built && built >= newest;
}

static void check_file(const char *root, const char *rel, bool exec)
{
    char p[1200];
    snprintf(p, sizeof(p), "%s%s", root, rel);
    struct stat st;
    T_CHECK(stat(p, &st) == 0 && S_ISREG(st.st_mode), "%s missing from the package", rel);
    if (exec)
        T_CHECK(st.st_mode & 0111, "%s not executable", rel);
}

int main(void)
{
    const char *b = getenv("XBD_BUILD");
    snprintf(top, sizeof(top), "%s/../..", b ? b : "build/san");
    snprintf(debdir, sizeof(debdir), "%s/build/deb", top);
    T_SKIP_IF(e2e_sh(NULL, "command -v dpkg-buildpackage && command -v dh") != 0,
              "dpkg-buildpackage or debhelper not installed (scripts/deps.sh installs them)");

    char deb[1000], simdeb[1000];
    if (find_deb("xen-blkbackd", deb, sizeof(deb)) && up_to_date(deb)) {
        T_LOG("reusing %s (newer than the build and the packaging)", deb);
    } else {
        char *out = NULL;
        uint64_t t0 = xbd_now_ms();
        int rc = e2e_sh(&out, "cd %s && scripts/make-deb.sh build/deb 2>&1", top);
        T_LOG("make deb: exit %d in %.1f s; last lines:\n%s", rc, (double)(xbd_now_ms() - t0) / 1000,
              out ? (strlen(out) > 3000 ? out + strlen(out) - 3000 : out) : "");
        free(out);
        T_ASSERT(rc == 0, "make deb failed (lintian errors or warnings fail it too)");
        T_ASSERT(find_deb("xen-blkbackd", deb, sizeof(deb)), "no xen-blkbackd .deb in %s", debdir);
    }
    T_ASSERT(find_deb("xen-blkbackd-sim", simdeb, sizeof(simdeb)), "no xen-blkbackd-sim .deb");

    char root[600];
    snprintf(root, sizeof(root), "%s/root", t_tmpdir(0));
    T_ASSERT(e2e_sh(NULL, "dpkg -x %s %s && dpkg -x %s %s", deb, root, simdeb, root) == 0,
             "dpkg -x");

    /* the programs run from the scratch root, and say the package's version */
    char *ver = NULL, *out = NULL;
    T_ASSERT(e2e_sh(&ver, "dpkg-deb -f %s Version", deb) == 0 && ver, "dpkg-deb -f Version");
    ver[strcspn(ver, "\n")] = 0;
    T_EQ(e2e_sh(&out, "%s/usr/sbin/xen-blkbackd --version", root), 0);
    T_CHECK(out && strstr(out, ver), "--version '%s' does not name the package version %s",
            out ? out : "", ver);
    free(out);
    T_EQ(e2e_sh(NULL, "%s/usr/bin/xen-blkbackctl --help", root), 0);
    T_EQ(e2e_sh(NULL, "%s/usr/bin/xen-blkbench --help", root), 0);
    T_EQ(e2e_sh(NULL, "%s/usr/libexec/xen-blkbackd/xen-sim-xenstored --help", root), 0);

    /* the unit, where this release's debhelper puts it, naming the installed daemon */
    char unit[800];
    snprintf(unit, sizeof(unit), "%s/lib/systemd/system/xen-blkbackd.service", root);
    if (access(unit, R_OK))
        snprintf(unit, sizeof(unit), "%s/usr/lib/systemd/system/xen-blkbackd.service", root);
    T_EQ(e2e_sh(NULL, "grep -qx 'ExecStart=/usr/sbin/xen-blkbackd --foreground --log=journal' %s",
                unit), 0);
    T_EQ(e2e_sh(NULL, "grep -q @SBINDIR@ %s", unit), 1);
    /* enabled the Debian way (dh_installsystemd's postinst) */
    T_EQ(e2e_sh(NULL, "dpkg-deb -I %s postinst | grep -q 'deb-systemd-helper.*enable.*xen-blkbackd.service'",
                deb), 0);

    static const struct { const char *path; bool exec; } files[] = {
        { "/etc/xen/scripts/block-xen-blkbackd", true },
        { "/etc/modprobe.d/xen-blkbackd.conf", false },
        { "/etc/xen/xen-blkbackd.conf", false },
        { "/usr/share/man/man8/xen-blkbackd.8.gz", false },
        { "/usr/share/man/man8/xen-blkbackctl.8.gz", false },
        { "/usr/share/man/man5/xen-blkbackd.conf.5.gz", false },
        { "/usr/share/man/man8/xen-blkbench.8.gz", false },
        { "/lib/udev/rules.d/60-xen-blkbackd.rules", false },
        { "/usr/lib/sysusers.d/xen-blkbackd.conf", false },
    };
    for (size_t i = 0; i < ARRAY_SIZE(files); i++)
        check_file(root, files[i].path, files[i].exec);
    /* the dedicated user of --user=xen-blkbackd, made before the unit starts, and
     * the udev rule applied to the Xen device nodes that exist already */
    T_EQ(e2e_sh(NULL, "dpkg-deb -I %s postinst | grep -n 'systemd-sysusers.*xen-blkbackd.conf\\|"
                "deb-systemd-invoke\\|udevadm trigger --subsystem-match=misc' | cut -d: -f2- | "
                "grep -o 'sysusers\\|invoke\\|udevadm' | tr '\\n' ' ' | "
                "grep -qx 'sysusers invoke udevadm '", deb), 0);
    T_EQ(e2e_sh(NULL, "grep -q '^u xen-blkbackd ' %s/usr/lib/sysusers.d/xen-blkbackd.conf", root), 0);
    T_EQ(e2e_sh(NULL, "grep -q 'GROUP=\"xen-blkbackd\", MODE=\"0660\"' "
                "%s/lib/udev/rules.d/60-xen-blkbackd.rules", root), 0);
    static const char *const conffiles[] = { "/etc/xen/xen-blkbackd.conf",
        "/etc/xen/scripts/block-xen-blkbackd", "/etc/modprobe.d/xen-blkbackd.conf" };
    for (size_t i = 0; i < ARRAY_SIZE(conffiles); i++)
        T_EQ(e2e_sh(NULL, "dpkg-deb -I %s conffiles | grep -qx %s", deb, conffiles[i]), 0);
    free(ver);
    return t_done();
}
