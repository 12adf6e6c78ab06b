/*
 * domain.c - the domain requests of xen-sim-xenstored: GET_DOMAIN_PATH,
 * INTRODUCE, RELEASE, IS_DOMAIN_INTRODUCED, RESUME, SET_TARGET (bookkeeping
 * plus the @introduceDomain/@releaseDomain watches; no ring is mapped), and
 * CONTROL.  Formats: Xen docs/misc/xenstore.txt.  dom0 always counts as
 * introduced, as in xenstored.
 */
#include "xenstored.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void op_get_domain_path(struct xsd_req *r)
{
    const char *a = onearg(r);
    uint32_t domid;
    if (!a || parse_domid(a, &domid))
        return reply_err(r, EINVAL);
    char buf[64];
    snprintf(buf, sizeof(buf), "/local/domain/%u", domid);
    reply_str(r, buf);
}

static struct xsd_domain *domain_find(struct xsd_server *s, uint32_t domid)
{
    for (unsigned i = 0; i < s->ndomains; i++)
        if (s->domains[i].domid == domid)
            return &s->domains[i];
    return NULL;
}

static bool domain_introduced(struct xsd_server *s, uint32_t domid)
{
    struct xsd_domain *d = domain_find(s, domid);
    return domid == 0 || (d && d->introduced);
}

/* INTRODUCE <domid>|<mfn>|<evtchn>|?: bookkeeping and @introduceDomain. */
void op_introduce(struct xsd_req *r)
{
    const char *v[3];
    uint32_t domid;
    char *e;
    if (get_strings(r, v, 3) < 3 || parse_domid(v[0], &domid) || domid == 0 || domid >= 0x7FF0)
        return reply_err(r, EINVAL);
    strtol(v[1], &e, 10);
    if (!v[1][0] || *e)
        return reply_err(r, EINVAL);
    strtoul(v[2], &e, 10);
    if (!v[2][0] || *e)
        return reply_err(r, EINVAL);
    struct xsd_domain *d = domain_find(r->s, domid);
    if (!d) {
        if (r->s->ndomains >= XSD_MAX_DOMAINS)
            return reply_err(r, ENOSPC);
        d = &r->s->domains[r->s->ndomains++];
        *d = (struct xsd_domain){ .domid = domid, .target = UINT32_MAX };
    }
    bool fire = !d->introduced;
    d->introduced = true;
    d->shutdown = false;
    reply_str(r, "OK");
    if (fire)
        watch_fire(r->s, "@introduceDomain", false, NULL, 0);
}

void op_release(struct xsd_req *r)
{
    const char *a = onearg(r);
    uint32_t domid;
    if (!a || parse_domid(a, &domid) || domid == 0)
        return reply_err(r, EINVAL);
    struct xsd_domain *d = domain_find(r->s, domid);
    if (!d || !d->introduced)
        return reply_err(r, ENOENT);
    d->introduced = false;
    d->target = UINT32_MAX;
    reply_str(r, "OK");
    watch_fire(r->s, "@releaseDomain", false, NULL, 0);
}

void op_is_domain_introduced(struct xsd_req *r)
{
    const char *a = onearg(r);
    uint32_t domid;
    if (!a || parse_domid(a, &domid))
        return reply_err(r, EINVAL);
    reply_str(r, domain_introduced(r->s, domid) ? "T" : "F");
}

void op_resume(struct xsd_req *r)
{
    const char *a = onearg(r);
    uint32_t domid;
    if (!a || parse_domid(a, &domid))
        return reply_err(r, EINVAL);
    struct xsd_domain *d = domain_find(r->s, domid);
    if (!domain_introduced(r->s, domid))
        return reply_err(r, ENOENT);
    if (d)
        d->shutdown = false;
    reply_str(r, "OK");
}

void op_set_target(struct xsd_req *r)
{
    const char *v[2];
    uint32_t domid, tdomid;
    if (get_strings(r, v, 2) < 2 || parse_domid(v[0], &domid) || parse_domid(v[1], &tdomid))
        return reply_err(r, EINVAL);
    if (!domain_introduced(r->s, domid) || !domain_introduced(r->s, tdomid))
        return reply_err(r, ENOENT);
    struct xsd_domain *d = domain_find(r->s, domid);
    if (d)
        d->target = tdomid;
    reply_str(r, "OK");
}

/* CONTROL <command>|[<parameters>|]: a few of xenstored's commands. */
void op_control(struct xsd_req *r)
{
    const char *v[2];
    unsigned n = get_strings(r, v, 2);
    if (n < 1)
        return reply_err(r, EINVAL);
    const char *cmd = v[0];
    if (strcmp(cmd, "help") == 0) {
        reply_str(r, "check\nhelp\nlog [on|off]\nmemreport\nprint <string>\n");
    } else if (strcmp(cmd, "check") == 0) {
        reply_str(r, "OK");
    } else if (strcmp(cmd, "log") == 0) {
        if (n >= 2 && strcmp(v[1], "on") == 0) {
            r->s->verbose = true;
            if (log_get_level() < LOG_INFO)     /* the trace is logged at info, as --verbose */
                log_set_level(LOG_INFO);
        }
        else if (n >= 2 && strcmp(v[1], "off") == 0)
            r->s->verbose = false;
        else if (n >= 2)
            return reply_err(r, EINVAL);
        reply_str(r, "OK");
    } else if (strcmp(cmd, "memreport") == 0) {
        char buf[256];
        snprintf(buf, sizeof(buf), "nodes: %u\nconnections: %u\ntransactions: %u\n",
                 r->s->tree.nnodes, r->s->nconns, r->s->ntxns_total);
        reply_str(r, buf);
    } else if (strcmp(cmd, "print") == 0) {
        if (n < 2)
            return reply_err(r, EINVAL);
        log_notice("conn %u: %s", r->c->id, v[1]);
        reply_str(r, "OK");
    } else {
        reply_err(r, EINVAL);
    }
}
