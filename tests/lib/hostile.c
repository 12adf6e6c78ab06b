/* The xenstore side of a hostile guest for the t_hostile_* tests (see hostile.h). */
#include "hostile.h"
#include "util.h"
#include "../harness.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xenstore.h>
#include <xen/io/xenbus.h>

static struct xs_handle *xsh;

void hx_open(void)
{
    if (xsh)
        return;
    xsh = xs_open(0);
    T_ASSERT(xsh, "xs_open: %s", strerror(errno));
}

struct xs_handle *hx_xs(void)
{
    return xsh;
}

static void put(xs_transaction_t t, const char *path, const char *val)
{
    T_ASSERT(xs_write(xsh, t, path, val, strlen(val)), "xs_write %s: %s", path, strerror(errno));
}

void hx_write(const char *path, const char *fmt, ...)
{
    char v[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    put(XBT_NULL, path, v);
}

void hx_write_in(const char *dir, const char *key, const char *fmt, ...)
{
    char p[256], v[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof(v), fmt, ap);
    va_end(ap);
    snprintf(p, sizeof(p), "%s/%s", dir, key);
    put(XBT_NULL, p, v);
}

static char *vread(const char *fmt, va_list ap)
{
    char p[512];
    vsnprintf(p, sizeof(p), fmt, ap);
    unsigned len;
    return xs_read(xsh, XBT_NULL, p, &len);
}

char *hx_read(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *v = vread(fmt, ap);
    va_end(ap);
    return v;
}

long long hx_read_int(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *v = vread(fmt, ap);
    va_end(ap);
    if (!v)
        return -1;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end)
        x = -2;
    free(v);
    return x;
}

void hx_rm(const char *fmt, ...)
{
    char p[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p, sizeof(p), fmt, ap);
    va_end(ap);
    xs_rm(xsh, XBT_NULL, p);            /* missing is fine */
}

long long hx_wait_int(const char *path, long long want, unsigned timeout_ms)
{
    uint64_t end = xbd_now_ms() + timeout_ms;
    for (;;) {
        long long v = hx_read_int("%s", path);
        if (v == want || xbd_now_ms() >= end)
            return v;
        usleep(5000);
    }
}

long long hx_be_state(const struct hvbd *v)
{
    return hx_read_int("%s/state", v->be);
}

bool hx_wait_be(const struct t_daemon *d, const struct hvbd *v, long long want, unsigned timeout_ms)
{
    char p[160];
    snprintf(p, sizeof(p), "%s/state", v->be);
    long long st = hx_wait_int(p, want, timeout_ms);
    if (st != want) {
        T_LOG("vbd %u/%u: backend state %lld, expected %lld", v->domid, v->devid, st, want);
        t_daemon_dump_log(d, 25);
    }
    return st == want;
}

void hx_add(struct hvbd *v, unsigned domid, unsigned devid, const char *params,
            const char *const *extra)
{
    memset(v, 0, sizeof(*v));
    v->domid = domid;
    v->devid = devid;
    snprintf(v->be, sizeof(v->be), "/local/domain/0/backend/vbd/%u/%u", domid, devid);
    snprintf(v->fe, sizeof(v->fe), "/local/domain/%u/device/vbd/%u", domid, devid);
    char p[256], val[64];
    for (unsigned tries = 0;; tries++) {
        T_ASSERT(tries < 16, "toolstack transaction keeps conflicting");
        xs_transaction_t t = xs_transaction_start(xsh);
        T_ASSERT(t, "xs_transaction_start: %s", strerror(errno));
#define B(k, val) do { snprintf(p, sizeof(p), "%s/%s", v->be, k); put(t, p, val); } while (0)
#define F(k, val) do { snprintf(p, sizeof(p), "%s/%s", v->fe, k); put(t, p, val); } while (0)
        B("frontend", v->fe);
        snprintf(val, sizeof(val), "%u", domid);
        B("frontend-id", val);
        B("online", "1");
        B("state", "1");
        B("params", params);
        B("type", "phy");
        B("mode", "w");
        B("device-type", "disk");
        B("removable", "0");
        B("bootable", "1");
        B("discard-enable", "1");
        B("specification", "xen");
        for (unsigned i = 0; extra && extra[i]; i += 2) {
            snprintf(p, sizeof(p), "%s/%s", v->be, extra[i]);
            if (extra[i + 1])
                put(t, p, extra[i + 1]);
            else
                xs_rm(xsh, t, p);
        }
        snprintf(val, sizeof(val), "%u", 0u);
        F("backend", v->be);
        F("backend-id", val);
        F("state", "1");
        snprintf(val, sizeof(val), "%u", devid);
        F("virtual-device", val);
        F("device-type", "disk");
#undef B
#undef F
        if (xs_transaction_end(xsh, t, false))
            return;
        T_ASSERT(errno == EAGAIN, "toolstack transaction: %s", strerror(errno));
    }
}

void hx_publish(const struct hvbd *v, const struct guest *g, const char *protocol, bool persistent)
{
    char p[256], dir[200];
    unsigned npages = g->q[0].npages, order = 0;
    while ((1u << order) < npages)
        order++;
    if (npages > 1) {
        snprintf(p, sizeof(p), "%s/ring-page-order", v->fe);
        hx_write(p, "%u", order);
    }
    if (g->nq > 1) {
        snprintf(p, sizeof(p), "%s/multi-queue-num-queues", v->fe);
        hx_write(p, "%u", g->nq);
    }
    for (unsigned qi = 0; qi < g->nq; qi++) {
        if (g->nq > 1)
            snprintf(dir, sizeof(dir), "%s/queue-%u", v->fe, qi);
        else
            snprintf(dir, sizeof(dir), "%s", v->fe);
        if (npages == 1) {
            snprintf(p, sizeof(p), "%s/ring-ref", dir);
            hx_write(p, "%u", g->q[qi].ring_ref[0]);
        } else {
            for (unsigned i = 0; i < npages; i++) {
                snprintf(p, sizeof(p), "%s/ring-ref%u", dir, i);
                hx_write(p, "%u", g->q[qi].ring_ref[i]);
            }
        }
        snprintf(p, sizeof(p), "%s/event-channel", dir);
        hx_write(p, "%u", g->q[qi].port);
    }
    if (protocol) {
        snprintf(p, sizeof(p), "%s/protocol", v->fe);
        hx_write(p, "%s", protocol);
    }
    snprintf(p, sizeof(p), "%s/feature-persistent", v->fe);
    hx_write(p, "%d", persistent ? 1 : 0);
}

void hx_fe_state(const struct hvbd *v, int state)
{
    char p[200];
    snprintf(p, sizeof(p), "%s/state", v->fe);
    hx_write(p, "%d", state);
}

void hx_remove(const struct hvbd *v)
{
    xs_rm(xsh, XBT_NULL, v->fe);
    xs_rm(xsh, XBT_NULL, v->be);
}

bool hx_wait_forgotten(const struct t_daemon *d, unsigned domid, unsigned devid, unsigned timeout_ms)
{
    uint64_t end = xbd_now_ms() + timeout_ms;
    while (t_daemon_dev_int(d, domid, devid, "state") != -1) {
        if (xbd_now_ms() >= end)
            return false;
        usleep(10000);
    }
    return true;
}

long hx_log_count(const struct t_daemon *d, const char *needle, const char *needle2)
{
    FILE *f = fopen(d->log, "r");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    long n = 0;
    while (getline(&line, &cap, f) > 0)
        if (strstr(line, needle) && (!needle2 || strstr(line, needle2)))
            n++;
    free(line);
    fclose(f);
    return n;
}

void hx_connect(const struct t_daemon *d, struct hvbd *v, struct guest *g, const char *hostdir,
                unsigned domid, unsigned devid, const char *params)
{
    hx_connect_extra(d, v, g, hostdir, domid, devid, params, NULL);
}

void hx_connect_extra(const struct t_daemon *d, struct hvbd *v, struct guest *g,
                      const char *hostdir, unsigned domid, unsigned devid, const char *params,
                      const char *const *extra)
{
    hx_add(v, domid, devid, params, extra);
    T_ASSERT(hx_wait_be(d, v, XenbusStateInitWait, 10000), "vbd %u/%u: InitWait", domid, devid);
    guest_init(g, hostdir, (xen_domid_t)domid, BLKIF_ABI_X86_64, 1, 1, 512);
    hx_publish(v, g, "x86_64-abi", false);
    hx_fe_state(v, XenbusStateInitialised);
    T_ASSERT(hx_wait_be(d, v, XenbusStateConnected, 10000), "vbd %u/%u: Connected", domid, devid);
    hx_fe_state(v, XenbusStateConnected);
}

const char *hx_e2e_connected(struct e2e *e, const char *const *daemon_args, struct hvbd *v,
                             struct guest *g, unsigned domid, unsigned devid)
{
    e2e_start(e, daemon_args);
    hx_open();
    char name[32];
    snprintf(name, sizeof(name), "vbd-%u-%u.img", domid, devid);
    const char *img = e2e_make_image(e, name, 8);
    hx_connect(&e->d, v, g, e->sim, domid, devid, img);
    hx_rw_check(g, 0);
    return img;
}

void hx_close(const struct t_daemon *d, const struct hvbd *v)
{
    hx_fe_state(v, XenbusStateClosing);
    T_ASSERT(hx_wait_be(d, v, XenbusStateClosing, 10000), "Closing");
    hx_fe_state(v, XenbusStateClosed);
    T_ASSERT(hx_wait_be(d, v, XenbusStateClosed, 10000), "Closed");
}

void hx_rw_check(struct guest *g, unsigned round)
{
    struct treq w, r;
    guest_rw_req(g, &w, BLKIF_OP_WRITE, 10 + round, 8 * round, 1, round + 1);
    T_CHECK(guest_do_req(g, 0, &w, BLKIF_RSP_OKAY, "WRITE") == BLKIF_RSP_OKAY);
    guest_rw_req(g, &r, BLKIF_OP_READ, 20 + round, 8 * round, 1, 0);
    T_CHECK(guest_do_req(g, 0, &r, BLKIF_RSP_OKAY, "READ") == BLKIF_RSP_OKAY);
    T_CHECK(!memcmp(sim_dom_page(g->dom, w.pfn[0]), sim_dom_page(g->dom, r.pfn[0]), GUEST_PG),
            "round %u: data read back differs", round);
}
