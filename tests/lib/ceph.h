/*
 * ceph.h - a real single-node Ceph cluster for tests: one ceph-mon and one
 * ceph-osd (memstore, so images live in the OSD's RAM: keep them small) on
 * 127.0.0.1, cephx on, pool size 1, every file in one temp dir, both daemons
 * children of the test in the foreground (they die with it: PDEATHSIG) and
 * torn down at exit.  Settings from docs/storage-notes.md (ceph)
 * (paxos propose interval 0.05 s: about 2-3 s to the first image).  Start it
 * once per test program and reuse it across cases.
 */
#ifndef XBD_TEST_CEPH_H
#define XBD_TEST_CEPH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct t_ceph {
    char dir[256];              /* state: ceph.conf, keyring, mon/, osd/, log/ */
    char conf[300];             /* <dir>/ceph.conf (client.admin's keyring named in it) */
    unsigned port;              /* the monitor's port on 127.0.0.1 */
    pid_t mon, osd;
    char pool[32];              /* "rbd", initialised */
};

/* Skip the test (exit 77, reason printed) unless ceph-mon, ceph-osd, ceph
 * and rbd are installed (scripts/deps.sh installs them). */
void t_ceph_need(void);

/* Start mon + osd, create and init pool "rbd"; fails the test on error
 * (logs under <dir>/log are printed).  Teardown registered with t_atexit. */
void t_ceph_start(struct t_ceph *c);

/* rbd create <pool>/<name> --size <mib>M (default features, 4 MiB objects
 * unless order != 0); snapshot "<name>@<snap>" with t_ceph_snap.  0 or the
 * rbd command's exit status. */
int t_ceph_image(struct t_ceph *c, const char *name, unsigned mib, unsigned order);
int t_ceph_snap(struct t_ceph *c, const char *name, const char *snap);

/* Stop the OSD (SIGTERM: memstore saves its objects) and wait until it is
 * gone; start it again and wait until the monitor reports it up.  0 or
 * -ETIMEDOUT / -errno. */
int t_ceph_osd_stop(struct t_ceph *c);
int t_ceph_osd_start(struct t_ceph *c);

/* "rbd:<pool>/<image>:conf=<conf>" plus `extra` (":key=val..." or ""). */
void t_ceph_params(const struct t_ceph *c, const char *image, const char *extra, char *buf,
                   size_t len);

#endif
