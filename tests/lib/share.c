/* vbds sharing a backing store, for the t_e2e_lock* tests (see share.h). */
#include "share.h"
#include "../harness.h"
#include "sim.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <xen/io/xenbus.h>

void share_attach(const struct t_daemon *d, const char *host, struct sdev *s, unsigned domid,
                  const char *params, const char *mode)
{
    T_LOG("vbd %u/%u: attach '%s' mode %s", domid, SHARE_DEVID, params, mode);
    s->params = params;
    guest_init(&s->g, host, domid, BLKIF_ABI_X86_64, 1, 1, 256);
    const char *extra[] = { "mode", mode, NULL };
    hx_add(&s->v, domid, SHARE_DEVID, params, extra);
    T_ASSERT(hx_wait_be(d, &s->v, XenbusStateInitWait, 10000), "vbd %u InitWait", domid);
    hx_publish(&s->v, &s->g, "x86_64-abi", false);
    hx_fe_state(&s->v, XenbusStateInitialised);
}

void share_attach_ok(const struct t_daemon *d, const char *host, struct sdev *s, unsigned domid,
                     const char *params, const char *mode)
{
    share_attach(d, host, s, domid, params, mode);
    T_ASSERT(hx_wait_be(d, &s->v, XenbusStateConnected, 10000), "vbd %u Connected", domid);
    hx_fe_state(&s->v, XenbusStateConnected);
}

void share_attach_refused(const struct t_daemon *d, const char *host, struct sdev *s,
                          unsigned domid, const char *params, const char *mode,
                          const char *holder)
{
    char line[600];
    snprintf(line, sizeof(line), "vbd %u/%u: '%s' in use by", domid, SHARE_DEVID, params);
    long before = hx_log_count(d, line, NULL);
    share_attach(d, host, s, domid, params, mode);
    T_CHECK(hx_wait_be(d, &s->v, XenbusStateClosing, 10000), "vbd %u not Closing", domid);
    char *err = hx_read("%s/error", s->v.be);
    T_CHECK(err && atoi(err) == EBUSY, "vbd %u error node: %s", domid, err ? err : "(none)");
    if (err)
        T_LOG("  error node: %s", err);
    free(err);
    T_EQ(hx_log_count(d, line, NULL) - before, 1);
    T_CHECK(hx_log_count(d, line, holder) - before == 1, "no log line '%s ... %s'", line, holder);
    T_EQ(sim_gnt_mapped_count(s->g.dom), 0);
}

void share_write_read(struct sdev *s, uint64_t sector, uint64_t seed, const char *what)
{
    struct treq w, r;
    guest_rw_req(&s->g, &w, BLKIF_OP_WRITE, 1, sector, 1, seed);
    uint32_t wpfn = w.pfn[0];
    T_CHECK(guest_do_req(&s->g, 0, &w, BLKIF_RSP_OKAY, what) == BLKIF_RSP_OKAY);
    guest_rw_req(&s->g, &r, BLKIF_OP_READ, 2, sector, 1, 0);
    T_CHECK(guest_do_req(&s->g, 0, &r, BLKIF_RSP_OKAY, what) == BLKIF_RSP_OKAY);
    T_CHECK(!memcmp(sim_dom_page(s->g.dom, wpfn), sim_dom_page(s->g.dom, r.pfn[0]), GUEST_PG),
            "%s: data read back differs", what);
}

bool share_read_matches(struct sdev *s, uint64_t sector, const char *path, const void *want)
{
    struct treq r;
    guest_rw_req(&s->g, &r, BLKIF_OP_READ, 3, sector, 1, 0);
    if (guest_do_req(&s->g, 0, &r, BLKIF_RSP_OKAY, "READ") != BLKIF_RSP_OKAY)
        return false;
    static char file[GUEST_PG];
    if (!want) {
        int fd = open(path, O_RDONLY);
        T_ASSERT(fd >= 0, "%s: %s", path, strerror(errno));
        T_ASSERT(pread(fd, file, sizeof(file), (off_t)(sector * 512)) == (ssize_t)sizeof(file));
        close(fd);
        want = file;
    }
    return !memcmp(sim_dom_page(s->g.dom, r.pfn[0]), want, GUEST_PG);
}

void share_detach(const struct t_daemon *d, struct sdev *s)
{
    hx_fe_state(&s->v, XenbusStateClosed);
    char p[200];
    snprintf(p, sizeof(p), "%s/online", s->v.be);
    hx_write(p, "0");
    hx_remove(&s->v);
    T_CHECK(hx_wait_forgotten(d, s->v.domid, s->v.devid, 5000), "vbd %u not released",
            s->v.domid);
    T_EQ(sim_gnt_mapped_count(s->g.dom), 0);
    guest_fini(&s->g);
}
