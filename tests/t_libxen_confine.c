/*
 * The real Xen seam under the control plane's seccomp list: opening a grant
 * table and an event channel handle through libxengnttab and libxenevtchn
 * (xen_ops "libxen") after confine_thread(CONFINE_ROLE_CONTROL, trap) must
 * not die of SIGSYS.  Given no logger, each open makes a stdio logger whose
 * isatty(2) is an ioctl TCGETS outside the list: a storage driver domain's
 * daemon died that way at its first vbd (check-xen driverdom,
 * --seccomp=trap: "forbidden syscall 16 ... arguments 0x2 0x5401").  On a
 * host without /dev/xen the opens fail (a negative errno), which is fine:
 * the point is the process survives them.
 */
#include "harness.h"
#include "confine.h"
#include "xen_ops.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static int child(void)
{
    const struct xen_ops *ops = xen_ops_find("libxen");
    if (!ops)
        return 3;
    if (confine_thread(CONFINE_ROLE_CONTROL, CONFINE_TRAP, false) < 0)
        return 4;
    /* No host_open: it checks for /dev/xen first, and libxen's opens do not
     * use the host (src/xen/xen_ops_libxen.c). */
    struct xen_host *h = NULL;
    struct xen_gnt *g = NULL;
    struct xen_evtchn *e = NULL;
    int rg = ops->gnt_open(h, &g), re = ops->evtchn_open(h, &e);
    fprintf(stderr, "# gnt_open %d, evtchn_open %d\n", rg, re);
    if (rg == 0)
        ops->gnt_close(g);
    if (re == 0)
        ops->evtchn_close(e);
    return 0;
}

int main(void)
{
    pid_t pid = fork();
    T_ASSERT(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0)
        _exit(child());
    int st = 0;
    T_ASSERT(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
    T_CHECK(!WIFSIGNALED(st), "the confined child died of signal %d (%s)",
            WIFSIGNALED(st) ? WTERMSIG(st) : 0, WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "");
    T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child exit status %d",
            WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    return t_failures ? 1 : 0;
}
