/*
 * util.h - the small helpers every part of the tree shares: ARRAY_SIZE, the
 * monotonic clock, the strict integer parser, and the name tables of the
 * xenbus states and the grant modes.  The daemon, the tools, the test
 * xenstored and the tests all use these, never a copy of their own.
 */
#ifndef XBD_UTIL_H
#define XBD_UTIL_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Elements of an array (not of a pointer: gcc's -Wsizeof-pointer-div warns). */
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* CLOCK_MONOTONIC (clock_gettime(2)) in nanoseconds, milliseconds. */
static inline uint64_t xbd_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t xbd_now_ms(void)
{
    return xbd_now_ns() / 1000000u;
}

/*
 * Strict unsigned integer in [lo, hi] (strtoull(3) with `base`: 10, or 0 for
 * C prefixes 0x/0): the whole string, no sign, no leading white space.
 * 0 and *out set, or -EINVAL (*out untouched); s NULL is -EINVAL.
 */
int xbd_parse_u64(const char *s, int base, uint64_t lo, uint64_t hi, uint64_t *out);

/* A message into err[errlen] (vsnprintf); nothing when err is NULL or
 * errlen 0.  For the (char *err, size_t errlen) out-parameters of parsers. */
void xbd_seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Read the socket fd (recv(2)) until end of file into *out: malloc'd and
 * NUL-terminated, its length without the NUL in *len (len may be NULL).
 * 0, or -ENOMEM or recv's -errno (*out and *len untouched, nothing kept). */
int xbd_recv_all(int fd, char **out, size_t *len);

/* One message of len bytes on the socket s (sendmsg, MSG_NOSIGNAL), with the
 * descriptor fd as SCM_RIGHTS ancillary data when fd >= 0 (unix(7)).  The
 * bytes sent, or -errno. */
ssize_t xbd_send_fd(int s, const void *buf, size_t len, int fd);

/* One message of at most len bytes from the socket s (recvmsg,
 * MSG_CMSG_CLOEXEC); *fd the descriptor it carried, -1 if none.  The bytes
 * received (0 at end of file), or -errno (EINTR included). */
ssize_t xbd_recv_fd(int s, void *buf, size_t len, int *fd);

/* Name of a xenbus state (enum xenbus_state, xen/io/xenbus.h: 0 Unknown ..
 * 8 Reconfigured); "missing" for s < 0 (no state key), "invalid" above 8. */
const char *xenbus_state_name(int s);

#endif
