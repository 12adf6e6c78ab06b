/*
 * log.h - logging with identity (every device message names domid/devid) and
 * rate limiting for anything a guest can trigger.  Backed by stderr, syslog(3),
 * a file, or the systemd journal with structured fields (sd_journal_sendv:
 * DOMID=, DEVID=, VDEV=, QUEUE=); see src/common/log.c.
 */
#ifndef XBD_LOG_H
#define XBD_LOG_H
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <syslog.h>     /* LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG */

enum log_target { LOG_TARGET_STDERR, LOG_TARGET_SYSLOG, LOG_TARGET_FILE, LOG_TARGET_JOURNAL };

/* Set up logging.  ident: program name; path: only for LOG_TARGET_FILE.
 * Returns 0 or -errno (file could not be opened). */
int  log_init(const char *ident, enum log_target target, const char *path, int max_level);
/* SIGHUP: reopen the log file (no-op for other targets).  0 or -errno. */
int  log_reopen(void);
void log_set_level(int level);
int  log_get_level(void);
/* "err"/"error", "warning"/"warn", "notice", "info", "debug" (any case) or a
 * number lo..hi (syslog(3) levels) -> *out.  0 or -EINVAL. */
int  log_level_parse(const char *s, int lo, int hi, int *out);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap);

/* Is our stderr the systemd journal's stream?  JOURNAL_STREAM="<dev>:<ino>"
 * names it, and only counts when it matches fstat(2) of fd 2 (it is
 * inherited by children whose stderr went elsewhere: systemd.exec(5)). */
bool log_stderr_is_journal(void);

/*
 * The device a message is about.  Printed (stderr, syslog, file) as the
 * prefix "<name>: " or "<name> queue <q>: " (the one device prefix: grep
 * "vbd 5/51712[: ]" finds every line of the device, its rate-limit
 * summaries and debug lines included); in the journal also as the fields
 * DOMID=, DEVID=, VDEV= (when known) and QUEUE= (when given), so
 * `journalctl DOMID=5` finds them.  Self-contained (copies of the strings),
 * so engines and the data plane keep a copy of the vbd's.
 */
struct log_dev {
    char name[64];              /* "vbd 5/51712" */
    int domid;                  /* frontend domid; < 0: unknown */
    long long devid;            /* < 0: unknown */
    char vdev[16];              /* "xvdb" (backend `dev`); "": unknown */
};
#define LOG_NO_QUEUE (-1)
/* Fill d: name and vdev copied (truncated to the buffers; NULL: ""). */
void log_dev_init(struct log_dev *d, const char *name, int domid, long long devid,
                  const char *vdev);
/* A message about device d (queue >= 0: about that queue of it). */
void log_dev(int level, const struct log_dev *d, int queue, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * Debug categories (xen-blkbackd(8) --debug): LOG_DEBUG lines about one
 * part of the daemon, each tagged "[<category>] " after the device prefix
 * and with the journal field DEBUG_CATEGORY=.  A category's lines print
 * when it is on, or when the log level is debug and it is one of
 * LOG_CAT_LEVEL_DEBUG, whatever the level otherwise.  ring and grant log
 * every request (not rate limited): only asked for by name.  Off, LOG_DBG costs one load and one predictable
 * branch: no call, no formatting (tcmu-runner's per-subsystem debug,
 * ublksrv ublk_dbg; ublk-org/ublksrv:include/ublksrv_utils.h).
 */
enum log_cat {
    LOG_CAT_RING     = 1u << 0,     /* requests taken off / answered on the ring */
    LOG_CAT_GRANT    = 1u << 1,     /* grant map/unmap/copy, persistent cache */
    LOG_CAT_XENSTORE = 1u << 2,     /* watch events, xenbus state reads */
    LOG_CAT_ENGINE   = 1u << 3,     /* storage engine open, connect, queues */
    LOG_CAT_RESTART  = 1u << 4,     /* restart state: slots saved and re-issued */
};
#define LOG_CAT_ALL 0x1fu
/* What level debug turns on: the categories of few lines (before the
 * categories, these were the plain debug lines). */
#define LOG_CAT_LEVEL_DEBUG (LOG_CAT_XENSTORE | LOG_CAT_ENGINE | LOG_CAT_RESTART)
/* The effective mask (categories on, | LOG_CAT_LEVEL_DEBUG at level debug); read by
 * LOG_DBG only.  Set through log_debug_set and log_set_level. */
extern unsigned log_debug_mask;
/* "ring,grant,..." (names of enum log_cat, "all", "none"; any case) -> *out
 * (a mask of LOG_CAT_*).  0, or -EINVAL (an unknown name: *bad, when not
 * NULL, points at it; *out untouched). */
int  log_debug_parse(const char *s, unsigned *out, const char **bad);
/* The category list as log_debug_parse reads it ("none" when empty) in buf
 * (truncated to len); returns buf. */
const char *log_debug_format(unsigned cats, char *buf, size_t len);
void log_debug_set(unsigned cats);      /* the --debug categories */
unsigned log_debug_get(void);           /* the --debug categories (not the level's) */
/* A debug line of category cat (one LOG_CAT_*) about d (NULL: none) and
 * queue; printed whatever the level (LOG_DBG has checked the category). */
void log_dbg_dev(unsigned cat, const struct log_dev *d, int queue, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define LOG_DBG(cat, d, queue, ...)                                                         \
    do {                                                                                    \
        if (__builtin_expect(__atomic_load_n(&log_debug_mask, __ATOMIC_RELAXED) & (cat), 0)) \
            log_dbg_dev(cat, d, queue, __VA_ARGS__);                                        \
    } while (0)

/*
 * The journal fields of one message, as sd_journal_sendv(3) takes them:
 * MESSAGE= (the text as printed, prefix included), PRIORITY= (syslog level
 * 0..7), SYSLOG_IDENTIFIER=, then DOMID=, DEVID=, VDEV=, QUEUE= for what d
 * and queue know, and DEBUG_CATEGORY= for cat (one LOG_CAT_*; 0: none).
 * d may be NULL.  Fills iov[0..n) pointing into f->buf; returns n (3..8).
 * Exposed for tests/t_log.c.
 */
#define LOG_JOURNAL_MAX_FIELDS 8
struct log_fields {
    struct iovec iov[LOG_JOURNAL_MAX_FIELDS];
    char buf[LOG_JOURNAL_MAX_FIELDS][128];
    char message[1100];
};
unsigned log_journal_fields(int level, const char *ident, const struct log_dev *d, int queue,
                            unsigned cat, const char *text, struct log_fields *f);
/* Tests only (tests/t_log.c): with LOG_TARGET_JOURNAL, hand each message's
 * fields (f->iov[0..n)) to fn instead of sd_journal_sendv(3).  NULL: the
 * journal again.  Set before the logging threads start. */
typedef void log_journal_sink_fn(const struct log_fields *f, unsigned n, void *arg);
void log_set_journal_sink(log_journal_sink_fn *fn, void *arg);

/*
 * Rate limiter: at most `burst` messages per `interval_ms`; the next message
 * after a suppressed run says how many were dropped.  One per fault site per
 * device (or per queue).  Thread-compatible (one owner thread).
 */
struct log_ratelimit {
    uint32_t interval_ms, burst;
    uint64_t window_start_ms;
    uint32_t printed;
    uint64_t suppressed;
};
#define LOG_RATELIMIT_INIT { 5000, 10, 0, 0, 0 }
void log_rl(struct log_ratelimit *rl, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* log_rl about device d (and queue), as log_dev; the "(N similar messages
 * suppressed)" line carries d's prefix and its journal fields too. */
void log_rl_dev(struct log_ratelimit *rl, int level, const struct log_dev *d, int queue,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define log_err(...)    log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)  do { if (log_get_level() >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
