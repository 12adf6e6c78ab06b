/*
 * peer.h - two test processes talking over a pair of pipes: the parent forks a
 * child that plays the other side (a guest, or a backend) and they exchange
 * values to step through a scenario.  Every helper fails the test (T_ASSERT)
 * when the other side went away.
 */
#ifndef XBD_TEST_PEER_H
#define XBD_TEST_PEER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct peer { pid_t pid; int rd, wr; };

/* Fork; the child runs fn(peer, arg) and exits 0 if none of its checks failed. */
void peer_fork(struct peer *p, void (*fn)(struct peer *, void *), void *arg);
/* Close our pipe ends and reap the child: its exit status, 128+signal, or -1. */
int  peer_wait(struct peer *p);
void peer_put(struct peer *p, const void *buf, size_t n);
void peer_get(struct peer *p, void *buf, size_t n);
void peer_put_u32(struct peer *p, uint32_t v);
uint32_t peer_get_u32(struct peer *p);

#endif
