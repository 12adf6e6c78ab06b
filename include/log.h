/*
 * log.h - logging with identity (every device message names domid/devid) and
 * rate limiting for anything a guest can trigger.  Backed by stderr, syslog(3),
 * a file, or the systemd journal with structured fields (sd_journal_sendv:
 * DOMID=, DEVID=, VDEV=, QUEUE=); see src/common/log.c.
 */
#ifndef XBD_LOG_H
#define XBD_LOG_H
#include <stdarg.h>
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
 * prefix "<name>: " or "<name> queue <q>: "; in the journal also as the
 * fields DOMID=, DEVID=, VDEV= (when known) and QUEUE= (when given).
 */
struct log_dev {
    const char *name;           /* "vbd 5/51712" */
    int domid;                  /* frontend domid; < 0: unknown */
    long long devid;            /* < 0: unknown */
    const char *vdev;           /* "xvdb" (backend `dev`); NULL or "": unknown */
};
#define LOG_NO_QUEUE (-1)
/* A message about device d (queue >= 0: about that queue of it). */
void log_dev(int level, const struct log_dev *d, int queue, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * The journal fields of one message, as sd_journal_sendv(3) takes them:
 * MESSAGE= (the text as printed, prefix included), PRIORITY= (syslog level
 * 0..7), SYSLOG_IDENTIFIER=, then DOMID=, DEVID=, VDEV=, QUEUE= for what d
 * and queue know.  d may be NULL.  Fills iov[0..n) pointing into f->buf;
 * returns n (3..7).  Exposed for tests/t_log.c.
 */
#define LOG_JOURNAL_MAX_FIELDS 7
struct log_fields {
    struct iovec iov[LOG_JOURNAL_MAX_FIELDS];
    char buf[LOG_JOURNAL_MAX_FIELDS][128];
    char message[1100];
};
unsigned log_journal_fields(int level, const char *ident, const struct log_dev *d, int queue,
                            const char *text, struct log_fields *f);

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
 * suppressed)" line carries d's fields in the journal too. */
void log_rl_dev(struct log_ratelimit *rl, int level, const struct log_dev *d, int queue,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define log_err(...)    log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)  do { if (log_get_level() >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
