/* Reconnect with a different ring order and queue count: the same vbd connects with 1 queue and a 1-page ring, closes, and reconnects with 4 queues of 16-page rings (and back), each time doing verified I/O on every queue, in both ABIs. */
#include "harness.h"
#include "lib/e2e.h"
#include "lib/hostile.h"

#include <xen/io/xenbus.h>

#include <stdio.h>

#define DEVID 51712

struct shape { unsigned nq, npages; enum blkif_abi abi; const char *proto; };

/* WRITE then READ back one page on every queue; data compared in the guest. */
static void io_all_queues(struct guest *g, unsigned round)
{
    for (unsigned qi = 0; qi < g->nq; qi++) {
        struct treq w, r;
        uint64_t sector = 8 * (round * 64 + qi);
        guest_rw_req(g, &w, BLKIF_OP_WRITE, 100 + qi, sector, 1, round * 1000 + qi + 1);
        uint32_t wpfn = w.pfn[0];
        T_CHECK(guest_do_req(g, qi, &w, BLKIF_RSP_OKAY, "WRITE") == BLKIF_RSP_OKAY);
        guest_rw_req(g, &r, BLKIF_OP_READ, 200 + qi, sector, 1, 0);
        T_CHECK(guest_do_req(g, qi, &r, BLKIF_RSP_OKAY, "READ") == BLKIF_RSP_OKAY);
        T_CHECK(!memcmp(sim_dom_page(g->dom, wpfn), sim_dom_page(g->dom, r.pfn[0]), GUEST_PG),
                "round %u queue %u: data read back differs", round, qi);
    }
}

int main(void)
{
    struct e2e e;
    const char *dargs[] = { "--max-queues=4", "--max-ring-page-order=4", NULL };
    e2e_start(&e, dargs);
    hx_open();
    const char *img = e2e_make_image(&e, "rc.img", 8);
    const struct shape shapes[] = {
        { 1, 1, BLKIF_ABI_X86_64, "x86_64-abi" },
        { 4, 16, BLKIF_ABI_X86_64, "x86_64-abi" },
        { 2, 4, BLKIF_ABI_X86_32, "x86_32-abi" },
        { 1, 1, BLKIF_ABI_X86_32, "x86_32-abi" },
    };
    struct hvbd v;
    hx_add(&v, 7, DEVID, img, NULL);
    T_ASSERT(hx_wait_be(&e.d, &v, XenbusStateInitWait, 10000), "InitWait");

    for (unsigned i = 0; i < ARRAY_SIZE(shapes); i++) {
        const struct shape *s = &shapes[i];
        T_LOG("connect %u: %u queue(s), %u ring page(s), %s", i, s->nq, s->npages, s->proto);
        struct guest g;
        guest_init(&g, e.sim, 7, s->abi, s->nq, s->npages, 512);
        hx_publish(&v, &g, s->proto, false);
        hx_fe_state(&v, XenbusStateInitialised);
        T_ASSERT(hx_wait_be(&e.d, &v, XenbusStateConnected, 10000), "Connected (%u)", i);
        hx_fe_state(&v, XenbusStateConnected);
        T_EQ(t_daemon_dev_int(&e.d, 7, DEVID, "connects"), i + 1);
        io_all_queues(&g, i);

        /* the frontend closes (as blkfront on reconfiguration) and starts over */
        hx_fe_state(&v, XenbusStateClosing);
        T_ASSERT(hx_wait_be(&e.d, &v, XenbusStateClosing, 10000), "Closing (%u)", i);
        hx_fe_state(&v, XenbusStateClosed);
        T_ASSERT(hx_wait_be(&e.d, &v, XenbusStateClosed, 10000), "Closed (%u)", i);
        guest_check_released(&g, "after Closed");
        /* old keys of a bigger shape must not confuse the next, smaller one */
        hx_rm("%s/ring-page-order", v.fe);
        hx_rm("%s/multi-queue-num-queues", v.fe);
        for (unsigned q = 0; q < s->nq; q++)
            hx_rm("%s/queue-%u", v.fe, q);
        guest_fini(&g);
        hx_fe_state(&v, XenbusStateInitialising);
        T_ASSERT(hx_wait_be(&e.d, &v, XenbusStateInitWait, 10000), "back to InitWait (%u)", i);
    }
    hx_remove(&v);
    T_CHECK(hx_wait_forgotten(&e.d, 7, DEVID, 10000), "device not released");
    T_EQ(e2e_stop(&e), 0);
    return t_done();
}
