/* t_persistent: the persistent-grant cache of the data plane (feature-persistent) on the simulated host: grefs mapped once and reused, at most persistent_cap pages kept (the rest mapped per request), LRU purge after an overflow, idle release, indirect pages cached, a gref in use by another in-flight request refused, everything unmapped by dp_stop. */
#include "harness.h"
#include "util.h"
#include "dataplane.h"
#include "engine.h"
#include "log.h"
#include "sim.h"
#include "lib/guest.h"

#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#define DOMID 11
#define MiB (1024ull * 1024)
#define CAP 8
#define NPOOL 32

static const struct xen_ops *ops = &xen_ops_sim;
static char *hostdir;
static struct xen_host *xh;
static char imgpath[512];

/* The guest's persistent pool: frame pfn0 + i granted read-write as ref[i]. */
static uint32_t pfn0, ref[NPOOL];

struct setup {
    struct guest g;
    struct engine *e;
    struct dp *dp;
};

static void start(struct setup *s, const char *engine, unsigned idle_ms)
{
    guest_init(&s->g, hostdir, DOMID, BLKIF_ABI_X86_64, 1, 1, 1024);
    pfn0 = s->g.data_pfn0;
    for (unsigned i = 0; i < NPOOL; i++)
        T_ASSERT(sim_gnt_grant(s->g.dom, 0, pfn0 + i, false, &ref[i]) == 0, "grant pool");
    struct engine_params ep = { .path = NULL, .readonly = false, .direct = true, .name = "t" };
    T_ASSERT(engine_open_params(engine, &ep, true, &s->e) == 0, "engine %s", engine);
    struct dp_config cfg;
    guest_dp_config(&cfg, &s->g, s->e);
    cfg.grant_mode = GRANT_MODE_PERSISTENT;
    cfg.persistent = true;
    cfg.persistent_cap = CAP;
    cfg.persistent_idle_ms = idle_ms;
    T_ASSERT(dp_create(ops, xh, &cfg, &s->dp) == 0, "dp_create");
    T_ASSERT(dp_start(s->dp) == 0, "dp_start");
}

/* dp_stop must unmap every persistent grant; then the guest ends them. */
static void stop(struct setup *s, const char *what)
{
    dp_stop(s->dp, 2000);
    struct vbd_stats st;
    dp_get_stats(s->dp, &st);
    T_CHECK(st.grants_mapped == 0 && st.gnt_map == st.gnt_unmap,
            "%s: after dp_stop grants_mapped %llu gnt_map %llu gnt_unmap %llu", what,
            (unsigned long long)st.grants_mapped, (unsigned long long)st.gnt_map,
            (unsigned long long)st.gnt_unmap);
    guest_check_released(&s->g, what);
    for (unsigned i = 0; i < NPOOL; i++)
        T_CHECK(sim_gnt_end(s->g.dom, ref[i]) == 0, "%s: ref %u still mapped after dp_stop", what, ref[i]);
    dp_destroy(s->dp);
    s->e->ops->close(s->e);
    guest_fini(&s->g);
}

static struct vbd_stats stats(struct setup *s)
{
    struct vbd_stats st;
    dp_get_stats(s->dp, &st);
    return st;
}

static uint32_t mapped(struct setup *s, unsigned i)
{
    return sim_gnt_ref_mapped(s->g.dom, ref[i]);
}

/* A direct request over pool pages idx[0..n-1] (full pages), not sent. */
static void mkreq(struct treq *r, uint8_t op, uint64_t id, uint64_t sector, const unsigned *idx,
                  unsigned n)
{
    guest_req_init(r, op, 0, id, sector, n);
    for (unsigned k = 0; k < n; k++)
        r->seg[k] = (struct blkif_request_segment){ .gref = ref[idx[k]], .first_sect = 0, .last_sect = 7 };
}

/* Send and wait for the answer (grants stay: persistent). */
static int16_t io(struct setup *s, uint8_t op, uint64_t id, uint64_t sector, const unsigned *idx,
                  unsigned n)
{
    struct treq r;
    mkreq(&r, op, id, sector, idx, n);
    return guest_do_req(&s->g, 0, &r, BLKIF_RSP_OKAY, op == BLKIF_OP_READ ? "read" : "write");
}

static bool wait_mapped(struct setup *s, uint64_t want, unsigned ms)
{
    uint64_t end = xbd_now_ms() + ms;
    while (stats(s).grants_mapped != want && xbd_now_ms() < end)
        usleep(10000);
    return stats(s).grants_mapped == want;
}

static void make_image(void)
{
    int fd = open(imgpath, O_CREAT | O_RDWR | O_TRUNC, 0600);
    T_ASSERT(fd >= 0 && ftruncate(fd, (off_t)(16 * MiB)) == 0, "image");
    close(fd);
}

/* Cap, reuse, overflow, LRU purge, one gref twice in a request, disconnect. */
static void scenario_cap_lru(void)
{
    T_LOG("scenario cap + LRU (cap %u)", CAP);
    make_image();
    struct setup s;
    start(&s, imgpath, 0);
    const unsigned all[11] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };

    /* 11 new grefs, cap 8: 8 kept, 3 mapped for this request only */
    for (unsigned i = 0; i < 11; i++)
        guest_fill(sim_dom_page(s.g.dom, pfn0 + i), GUEST_PG, 100 + i);
    io(&s, BLKIF_OP_WRITE, 1, 0, all, 11);
    struct vbd_stats st = stats(&s);
    T_EQ(st.gnt_map, 1 + 8 + 1);                /* ring, 8 single maps, 1 overflow map */
    for (unsigned i = 0; i < 8; i++)
        T_CHECK(mapped(&s, i) == 1, "ref #%u not kept", i);
    for (unsigned i = 8; i < 11; i++)
        T_CHECK(mapped(&s, i) == 0, "overflow ref #%u still mapped after the response", i);
    /* the overflow triggers one purge of 5% of the cap (>= 1): the LRU grant (#0) */
    T_CHECK(wait_mapped(&s, 1 + CAP - 1, 2000), "no purge after the overflow: %llu mapped",
            (unsigned long long)stats(&s).grants_mapped);
    T_CHECK(mapped(&s, 0) == 0, "purge did not take the least recently used grant");
    for (unsigned i = 1; i < 8; i++)
        T_CHECK(mapped(&s, i) == 1, "purge took ref #%u", i);

    /* reuse: READ the data back through the cached grants, no new map */
    for (unsigned i = 1; i < 8; i++)
        memset(sim_dom_page(s.g.dom, pfn0 + i), 0xEE, GUEST_PG);
    uint64_t maps = stats(&s).gnt_map;
    io(&s, BLKIF_OP_READ, 2, 8, all + 1, 7);
    T_EQ(stats(&s).gnt_map, maps);
    uint8_t *want = malloc(GUEST_PG);
    for (unsigned i = 1; i < 8; i++) {
        guest_fill(want, GUEST_PG, 100 + i);
        T_CHECK(!memcmp(sim_dom_page(s.g.dom, pfn0 + i), want, GUEST_PG), "page %u read back wrong", i);
    }

    /* LRU order: touch 7, 6, ..., 1 one by one: #7 is now the oldest */
    for (unsigned i = 7; i >= 1; i--)
        io(&s, BLKIF_OP_READ, 10 + i, 8 * i, &all[i], 1);
    T_EQ(stats(&s).gnt_map, maps);
    unsigned x = 11;                            /* a new gref: room for one more */
    io(&s, BLKIF_OP_READ, 20, 0, &x, 1);
    T_CHECK(mapped(&s, 11) == 1, "new gref under the cap not kept");
    T_EQ(stats(&s).grants_mapped, 1 + CAP);
    const unsigned two[2] = { 12, 13 };         /* cap full: per request */
    io(&s, BLKIF_OP_READ, 21, 0, two, 2);
    T_CHECK(mapped(&s, 12) == 0 && mapped(&s, 13) == 0, "grefs past the cap kept");
    T_CHECK(wait_mapped(&s, 1 + CAP - 1, 2000), "no purge after the second overflow");
    T_CHECK(mapped(&s, 7) == 0, "purge did not take the LRU grant #7");
    for (unsigned i = 1; i < 7; i++)
        T_CHECK(mapped(&s, i) == 1, "purge took ref #%u instead of the LRU", i);
    io(&s, BLKIF_OP_READ, 22, 0, &two[0], 1);   /* room again: kept */
    T_CHECK(mapped(&s, 12) == 1, "gref after purge not kept");

    /* the same gref twice in one request is fine: sectors 0-3 then 4-7 of page #2 */
    struct treq r;
    mkreq(&r, BLKIF_OP_WRITE, 30, 4096, &all[2], 2);
    r.seg[1].gref = ref[2];
    r.seg[0].last_sect = 3;
    r.seg[1].first_sect = 4;
    guest_fill(sim_dom_page(s.g.dom, pfn0 + 2), GUEST_PG, 7);
    guest_do_req(&s.g, 0, &r, BLKIF_RSP_OKAY, "same gref twice in one request");
    int fd = open(imgpath, O_RDONLY);
    uint8_t *img = malloc(GUEST_PG);
    T_CHECK(pread(fd, img, GUEST_PG, 4096 * 512) == GUEST_PG &&
            !memcmp(img, sim_dom_page(s.g.dom, pfn0 + 2), GUEST_PG), "same-gref write landed wrong");
    close(fd);
    free(img);
    free(want);

    st = stats(&s);
    T_EQ(st.errors, 0);
    T_LOG("cap/LRU: gnt_map %llu gnt_unmap %llu grants_mapped %llu", (unsigned long long)st.gnt_map,
          (unsigned long long)st.gnt_unmap, (unsigned long long)st.grants_mapped);
    stop(&s, "cap/LRU disconnect");
}

/* A gref held by an in-flight request is refused for another one. */
static void scenario_in_use(void)
{
    T_LOG("scenario gref in use");
    make_image();
    char spec[600];
    snprintf(spec, sizeof(spec), "delay:300000:uring:%s", imgpath);
    struct setup s;
    start(&s, spec, 0);
    struct treq a, b;
    const unsigned ia[2] = { 0, 1 }, ib[2] = { 2, 1 };     /* #1 in both */
    mkreq(&a, BLKIF_OP_WRITE, 1, 0, ia, 2);
    mkreq(&b, BLKIF_OP_READ, 2, 64, ib, 2);
    guest_put_req(&s.g, 0, &a);
    guest_put_req(&s.g, 0, &b);
    guest_push(&s.g, 0);
    struct trsp rs[2];
    T_ASSERT(guest_wait_rsps(&s.g, 0, rs, 2, 5000), "answers");
    T_CHECK(rs[0].id == 2 && rs[0].status == BLKIF_RSP_ERROR && rs[0].op == BLKIF_OP_READ,
            "second user of a gref: id %llu status %d (expected id 2 ERROR first)",
            (unsigned long long)rs[0].id, rs[0].status);
    T_CHECK(rs[1].id == 1 && rs[1].status == BLKIF_RSP_OKAY, "first user: id %llu status %d",
            (unsigned long long)rs[1].id, rs[1].status);
    struct vbd_stats st = stats(&s);
    T_EQ(st.errors, 1);
    T_EQ(st.inflight, 0);
    /* the refused request left nothing held: #2 (mapped by it) is idle, reusable */
    T_EQ(io(&s, BLKIF_OP_READ, 3, 64, ib, 2), BLKIF_RSP_OKAY);
    stop(&s, "in use");
}

/* Idle grants are released after the idle time; recently used ones stay;
 * indirect pages are cached like data pages. */
static void scenario_idle(void)
{
    T_LOG("scenario idle release (400 ms)");
    make_image();
    struct setup s;
    start(&s, imgpath, 400);
    /* INDIRECT WRITE: descriptor page #20, data #0..#5: 7 grefs, all kept */
    struct treq r;
    memset(&r, 0, sizeof(r));
    r.op = BLKIF_OP_INDIRECT;
    r.indirect_op = BLKIF_OP_WRITE;
    r.id = 1;
    r.nr_segs = 6;
    r.indirect_grefs[0] = ref[20];
    struct blkif_request_segment *desc = sim_dom_page(s.g.dom, pfn0 + 20);
    for (unsigned i = 0; i < 6; i++)
        desc[i] = (struct blkif_request_segment){ .gref = ref[i], .first_sect = 0, .last_sect = 7 };
    guest_do_req(&s.g, 0, &r, BLKIF_RSP_OKAY, "indirect write");
    T_CHECK(mapped(&s, 20) == 1, "indirect page not kept");
    T_EQ(stats(&s).grants_mapped, 1 + 7);
    uint64_t maps = stats(&s).gnt_map;
    r.id = 2;
    guest_do_req(&s.g, 0, &r, BLKIF_RSP_OKAY, "indirect write again");
    T_EQ(stats(&s).gnt_map, maps);

    /* keep #3 busy every 100 ms for ~1 s: the others go, #3 stays */
    const unsigned three = 3;
    uint64_t t0 = xbd_now_ms();
    bool others_gone = false;
    for (unsigned k = 0; xbd_now_ms() - t0 < 1200 && !others_gone; k++) {
        io(&s, BLKIF_OP_READ, 100 + k, 0, &three, 1);
        usleep(100 * 1000);
        others_gone = mapped(&s, 0) == 0 && mapped(&s, 20) == 0;
    }
    T_CHECK(others_gone, "idle grants not released within 1.2 s");
    T_CHECK(mapped(&s, 3) == 1, "a grant in use every 100 ms was released as idle");
    T_CHECK(wait_mapped(&s, 1, 2000), "last grant not released when idle: %llu mapped",
            (unsigned long long)stats(&s).grants_mapped);
    T_CHECK(mapped(&s, 3) == 0, "ref #3 still mapped");
    stop(&s, "idle");
}

int main(void)
{
    log_init("t_persistent", LOG_TARGET_STDERR, NULL, LOG_INFO);
    guest_test_host(ops, &hostdir, imgpath, sizeof(imgpath), &xh);
    scenario_cap_lru();
    scenario_in_use();
    scenario_idle();
    ops->host_close(xh);
    free(hostdir);
    return t_done();
}
