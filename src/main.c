/*
 * main.c - xen-blkbackd entry: options and config file, logging, signals
 * (blocked here, before any thread exists, and read through a signalfd by the
 * event loop), pidfile, then the control plane's event loop.  Always runs in
 * the foreground (systemd Type=notify: backend.c).  Exit: 0 after SIGTERM/
 * SIGINT, 1 on a runtime error (another daemon owns a backend kind
 * included), 2 on a usage or config error.  See xen-blkbackd(8).
 */
#include "backend/backend.h"
#include "backend/config.h"
#include "confine.h"
#include "log.h"
#include "opener.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_pidfile(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    int rc = write(fd, buf, (size_t)n) == n ? 0 : -EIO;
    close(fd);
    return rc;
}

/* --user: hand the state directory (restart state, control socket) to the
 * user, then become it for good (confine.h).  0 or -errno, logged. */
static int drop_user(const struct xbd_config *cfg, const char *user)
{
    uid_t uid;
    gid_t gid;
    char dir[256];
    int rc = confine_user_lookup(user, &uid, &gid);
    if (rc == 0 && chown(xbd_config_state_dir(cfg, dir, sizeof(dir)), uid, gid) < 0)
        rc = -errno;
    if (rc == 0)
        rc = confine_drop_user(uid, gid);
    if (rc)
        log_err("cannot run as user %s: %s", user, strerror(-rc));
    else
        log_notice("running as user %s (uid %u, gid %u), no capabilities", user,
                   (unsigned)uid, (unsigned)gid);
    return rc;
}

/* --seccomp: the control plane's allow-list onto every thread there is,
 * after start-up and before the first scan attaches a device (confine.h).
 * 0 or -errno. */
static int confine_control(const struct xbd_config *cfg)
{
    enum confine_role role = cfg->isolation == XBD_ISOLATION_DOMAIN
                                 ? CONFINE_ROLE_CONTROL_WORKERS : CONFINE_ROLE_CONTROL;
    int rc = confine_thread(role, cfg->seccomp, xbd_config_is_sim(cfg));
    if (rc == 0 && cfg->seccomp != CONFINE_OFF)
        log_info("seccomp %s: control plane confined", confine_mode_name(cfg->seccomp));
    return rc;
}

int main(int argc, char **argv)
{
    sigset_t set;
    backend_sigset(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);     /* inherited by every thread */
    signal(SIGPIPE, SIG_IGN);

    /* An isolation worker (src/backend/worker.c): exec'd by the daemon
     * with WORKER_ARG<domid> in front of the daemon's own arguments. */
    worker_set_args(argc, argv);
    long worker = -1;
    if (argc > 1 && !strncmp(argv[1], WORKER_ARG, strlen(WORKER_ARG))) {
        worker = strtol(argv[1] + strlen(WORKER_ARG), NULL, 10);
        argv[1] = argv[0];
        argc--;
        argv++;
    }

    struct xbd_config cfg;
    char err[512] = "";
    xbd_config_init(&cfg);
    int rc = xbd_config_parse_args(&cfg, argc, argv, stdout, err, sizeof(err));
    if (rc == 1) {
        xbd_config_free(&cfg);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "xen-blkbackd: %s\nTry 'xen-blkbackd --help'.\n", err);
        xbd_config_free(&cfg);
        return 2;
    }
    /* A worker runs under the filter the daemon loaded (inherited across
     * fork and exec); the exec dropped the trap mode's SIGSYS report. */
    if (worker >= 0)
        confine_inherited(cfg.seccomp);
    /* Under systemd (stderr is the journal's stream: JOURNAL_STREAM) log
     * to the journal with the device fields, unless a target was chosen. */
    if (!cfg.log_given && log_stderr_is_journal())
        cfg.log_target = LOG_TARGET_JOURNAL;
    rc = log_init("xen-blkbackd", cfg.log_target, cfg.log_path, cfg.log_level);
    if (rc) {
        fprintf(stderr, "xen-blkbackd: log file %s: %s\n", cfg.log_path, strerror(-rc));
        xbd_config_free(&cfg);
        return 2;
    }
    log_debug_set(cfg.debug_cats);
    if (worker >= 0) {
        rc = worker_run(&cfg, (xen_domid_t)worker);
        xbd_config_free(&cfg);
        return rc;
    }
    if (cfg.config_path)
        log_info("config %s", cfg.config_path);

    /* The pidfile only once we own our backend kinds: a second daemon must
     * not overwrite (or, exiting, remove) the first one's. */
    /* --user: the privileged opener, forked while this is the only thread
     * (opener.h): backing stores are opened as root, served as the user */
    const char *why, *user = xbd_config_user(&cfg, &why);
    if (why)
        log_notice("%s", why);
    if (user && (rc = opener_start(cfg.seccomp, xbd_config_is_sim(&cfg)))) {
        log_err("cannot start the privileged opener: %s", strerror(-rc));
        log_notice("exit 1");
        xbd_config_free(&cfg);
        return 1;
    }
    struct backend *b = NULL;
    bool pidfile = false;
    rc = backend_create(&cfg, &b);
    if (rc == 0 && cfg.pidfile && (rc = write_pidfile(cfg.pidfile)))
        log_err("pidfile %s: %s", cfg.pidfile, strerror(-rc));
    else if (rc == 0)
        pidfile = cfg.pidfile != NULL;
    if (rc == 0 && user)
        rc = drop_user(&cfg, user);
    if (rc == 0 && (rc = confine_control(&cfg)))
        log_err("cannot load the control plane's seccomp allow-list: %s", strerror(-rc));
    if (rc == 0)
        rc = backend_run(b);
    backend_destroy(b);
    opener_stop();
    if (pidfile)
        unlink(cfg.pidfile);
    log_notice("exit %d", rc ? 1 : 0);
    xbd_config_free(&cfg);
    return rc ? 1 : 0;
}
