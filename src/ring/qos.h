/*
 * qos.h - the QoS token buckets of one vbd, shared by its queue threads
 * (private to src/ring/; the limits are described in dataplane.h).
 */
#ifndef XBD_RING_QOS_H
#define XBD_RING_QOS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "dataplane.h"

struct dpqos {
    bool on;                    /* some limit set: read by the queues (atomic) */
    pthread_mutex_t lock;       /* the rest */
    struct dp_qos cfg;
    double level[DP_QOS_N];     /* tokens (requests or bytes) now; < 0: in debt */
    double size[DP_QOS_N];      /* bucket sizes (the burst, or its default) */
    uint64_t last_ns;           /* CLOCK_MONOTONIC of the last refill */
};

#define DPQOS_MIN_WAIT_NS 1000000ull    /* a held request waits at least this (or half a bucket) */

void dpqos_init(struct dpqos *b);
void dpqos_fini(struct dpqos *b);

/* Install limits q (ranges of dp_qos_parse) at now_ns.  0 or -EINVAL
 * (nothing changed). */
int  dpqos_set(struct dpqos *b, const struct dp_qos *q, uint64_t now_ns);
void dpqos_get(struct dpqos *b, struct dp_qos *out);

/*
 * Pay for one READ (write false) or WRITE of `bytes` bytes at now_ns
 * (CLOCK_MONOTONIC): 0 when the buckets had room (paid), else the ns to wait
 * before asking again (nothing paid).  Call only when b->on.
 */
uint64_t dpqos_take(struct dpqos *b, bool write, uint64_t bytes, uint64_t now_ns);

#endif
