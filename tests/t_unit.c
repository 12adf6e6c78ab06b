/* The systemd unit as `make install` writes it (conf/install-extra.sh, ExecStart = the built daemon) passes `systemd-analyze verify` without a single warning (man pages of Documentation= found in a MANPATH built from man/), and is Type=notify with a watchdog; skipped only without systemd-analyze. */
#include "harness.h"
#include "lib/e2e.h"

#include <stdio.h>
#include <unistd.h>

int main(void)
{
    T_SKIP_IF(e2e_sh(NULL, "command -v systemd-analyze") != 0, "no systemd-analyze");
    const char *src = t_srcdir("conf/install-extra.sh");
    const char *dest = t_tmpdir(0);
    char sbin[600];
    snprintf(sbin, sizeof(sbin), "%s", t_prog("xen-blkbackd"));
    *strrchr(sbin, '/') = 0;
    char *out = NULL;
    int rc = e2e_sh(&out, "cd '%s' && DESTDIR='%s' SBINDIR='%s' conf/install-extra.sh 2>&1", src, dest, sbin);
    T_ASSERT(rc == 0, "conf/install-extra.sh: exit %d: %s", rc, out ? out : "");
    free(out);

    char unit[700];
    snprintf(unit, sizeof(unit), "%s/lib/systemd/system/xen-blkbackd.service", dest);
    /* man pages where man(1) finds them: <MANPATH>/man<section>/<page> */
    rc = e2e_sh(NULL, "set -e; cd '%s'; for m in man/*.[0-9]; do s=${m##*.}; mkdir -p '%s/man/man'$s; "
                "cp $m '%s/man/man'$s/; done", src, dest, dest);
    T_ASSERT(rc == 0, "man tree");
    rc = e2e_sh(&out, "MANPATH='%s/man' SYSTEMD_LOG_COLOR=0 systemd-analyze verify '%s' 2>&1", dest, unit);
    T_LOG("systemd-analyze verify: exit %d%s%s", rc, out && *out ? ": " : "", out ? out : "");
    T_EQ(rc, 0);
    T_CHECK(out && !*out, "systemd-analyze verify warns: %s", out ? out : "");
    free(out);

    /* What the daemon relies on (notify.c): without these it would be killed or never ready. */
    const char *need[] = { "Type=notify", "WatchdogSec=", "NotifyAccess=main", "KillMode=mixed",
                           "Restart=on-failure", NULL };
    for (int i = 0; need[i]; i++)
        T_CHECK(e2e_sh(NULL, "grep -q '^%s' '%s'", need[i], unit) == 0, "%s missing", need[i]);
    rc = e2e_sh(NULL, "grep -q '^ExecStart=%s/xen-blkbackd ' '%s'", sbin, unit);
    T_CHECK(rc == 0, "ExecStart is not the daemon in %s", sbin);
    return t_done();
}
