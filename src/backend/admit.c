/*
 * admit.c - whether the daemon takes on a backend directory it finds under
 * <home>/backend/<kind>/<fe>/<devid> (xen-blkbackd(8) DRIVER DOMAIN):
 *
 *  - the directory must be ours: its owner (first permission entry) is our
 *    domid, as libxl makes it (xen-project/xen:tools/libs/light/libxl_device.c@RELEASE-4.17.7
 *    libxl__device_generic_add: backend_perms[0] is the backend domain, [1]
 *    read for the frontend).  A directory someone else owns could hold keys
 *    (params, mode) written by that domain: it is not touched.
 *  - an online device needs its frontend: the directory its `frontend` key
 *    names must be readable (libxl makes it readable to the backend domain;
 *    a domain that no longer exists has none, and a driver domain sees a
 *    missing node as EACCES or ENOENT alike).  Linux makes the same check
 *    (torvalds/linux:drivers/xen/xenbus/xenbus_probe.c@v6.1
 *    xenbus_read_otherend_details) but writes an error node; we write nothing.
 *    An offline one (online=0, the toolstack tearing it down, e.g. after
 *    `xl create` timed out waiting for a daemon that was not running) is
 *    taken on, so that it is closed and xl devd can remove it.
 *
 * A device of a kind the daemon does not serve (vbd3 without vbd3 in
 * --backend-types, backend.c watches it for this alone) is refused the same
 * way (backend_admit_unserved).
 *
 * A refused directory gets one log line per reason and is looked at again on
 * every change in it (a frontend that appears, an owner dom0 corrects); the
 * refusal is forgotten when the directory goes.  Nothing is written for it.
 */
#include "backend.h"
#include "log.h"
#include "xs_keys.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum refusal { R_NONE, R_UNREADABLE, R_NOT_OURS, R_NO_FRONTEND, R_KIND_NOT_SERVED };

struct admit_refusal {
    struct admit_refusal *next;
    char kind[8];
    xen_domid_t fe;
    unsigned devid;
    enum refusal why;
};

static struct admit_refusal **find(struct backend *b, const char *kind, xen_domid_t fe,
                                   unsigned devid)
{
    struct admit_refusal **pp = &b->refused;
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->fe == fe && (*pp)->devid == devid && !strcmp((*pp)->kind, kind))
            break;
    return pp;
}

void backend_admit_forget(struct backend *b, const char *kind, xen_domid_t fe, unsigned devid)
{
    struct admit_refusal **pp = find(b, kind, fe, devid), *r = *pp;
    if (r) {
        *pp = r->next;
        free(r);
    }
}

void backend_admit_prune(struct backend *b, const char *kind, int fe)
{
    struct admit_refusal **pp = &b->refused;
    while (*pp) {
        struct admit_refusal *r = *pp;
        char dir[256];
        xen_domid_t owner;
        snprintf(dir, sizeof(dir), "%s/%s/%s/%u/%u", b->home, XSK_BACKEND_DIR, kind, r->fe, r->devid);
        if ((fe < 0 || r->fe == (xen_domid_t)fe) && !strcmp(r->kind, kind) &&
            b->ops->xs_get_owner(b->xs, XEN_XS_NO_TX, dir, &owner) == -ENOENT) {
            *pp = r->next;
            free(r);
            continue;
        }
        pp = &r->next;
    }
}

void backend_admit_free(struct backend *b)
{
    while (b->refused) {
        struct admit_refusal *r = b->refused;
        b->refused = r->next;
        free(r);
    }
}

/* One line about device fe/devid (no struct vbd: we do not track it). */
static void say(int level, xen_domid_t fe, unsigned devid, const char *msg, const char *what)
{
    char name[48];
    struct log_dev id;
    snprintf(name, sizeof(name), "vbd %u/%u", fe, devid);
    log_dev_init(&id, name, (int)fe, devid, NULL);
    log_dev(level, &id, LOG_NO_QUEUE, "%s: %s", msg, what);
}

/* Refuse for `why`: log msg once per reason (a changed reason is logged). */
static bool refuse(struct backend *b, const char *kind, xen_domid_t fe, unsigned devid,
                   enum refusal why, int level, const char *msg)
{
    struct admit_refusal **pp = find(b, kind, fe, devid), *r = *pp;
    if (r && r->why == why)
        return false;
    if (!r && (r = calloc(1, sizeof(*r))) != NULL) {
        snprintf(r->kind, sizeof(r->kind), "%s", kind);
        r->fe = fe;
        r->devid = devid;
        *pp = r;
    }
    if (r)
        r->why = why;
    say(level, fe, devid, msg, "ignored, nothing written");
    return false;
}

/* Is the frontend path p of a device of domain fe there for us to read?
 * Paths not in the frontend's home are left to vbd.c (find_frontend). */
static bool frontend_missing(struct backend *b, xen_domid_t fe, const char *p)
{
    char pre[48];
    int n = snprintf(pre, sizeof(pre), "/local/domain/%u/", fe);
    if (strncmp(p, pre, (size_t)n) || !p[n])
        return false;
    char *v = NULL;
    int rc = b->ops->xs_read(b->xs, XEN_XS_NO_TX, p, &v, NULL);
    free(v);
    return rc == -ENOENT || rc == -EACCES;
}

bool backend_admit(struct backend *b, const char *kind, xen_domid_t fe, unsigned devid,
                   const char *dir)
{
    char msg[400];
    xen_domid_t owner;
    int rc = b->ops->xs_get_owner(b->xs, XEN_XS_NO_TX, dir, &owner);
    if (rc == -ENOENT) {
        backend_admit_forget(b, kind, fe, devid);
        return false;           /* gone, or never was */
    }
    if (rc == -EACCES) {
        snprintf(msg, sizeof(msg), "backend directory %s is not readable to us (domain %u)",
                 dir, b->self);
        return refuse(b, kind, fe, devid, R_UNREADABLE, LOG_WARNING, msg);
    }
    if (rc == 0 && owner != b->self) {
        snprintf(msg, sizeof(msg), "backend directory %s is owned by domain %u, not by us "
                 "(domain %u)", dir, owner, b->self);
        return refuse(b, kind, fe, devid, R_NOT_OURS, LOG_WARNING, msg);
    }
    /* (another error: left to the state machine, as before) */
    long long on;
    char *fp = NULL;
    if (!xs_read_int(b, dir, XSK_ONLINE, &on) && on == 1 &&
        !xs_read_str(b, dir, XSK_FRONTEND, &fp) && frontend_missing(b, fe, fp)) {
        snprintf(msg, sizeof(msg), "frontend %.256s does not exist (domain %u gone?)", fp, fe);
        free(fp);
        return refuse(b, kind, fe, devid, R_NO_FRONTEND, LOG_NOTICE, msg);
    }
    free(fp);
    struct admit_refusal **pp = find(b, kind, fe, devid);
    if (*pp) {
        say(LOG_NOTICE, fe, devid, dir, "no longer refused, taken on");
        backend_admit_forget(b, kind, fe, devid);
    }
    return true;
}

void backend_admit_unserved(struct backend *b, const char *kind, xen_domid_t fe, unsigned devid,
                            const char *dir)
{
    long long st;
    if (xs_read_int(b, dir, XSK_STATE, &st) == -ENOENT) {
        backend_admit_forget(b, kind, fe, devid);
        return;                 /* gone, or not (yet) a device */
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "%s device (Xen >= 4.19 backendtype=tap), and --backend-types "
             "does not include %s (--backend-types=vbd,%s serves it)", kind, kind, kind);
    refuse(b, kind, fe, devid, R_KIND_NOT_SERVED, LOG_NOTICE, msg);
}
