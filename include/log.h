/*
 * log.h - logging with identity (every device message names domid/devid) and
 * rate limiting for anything a guest can trigger.  Backed by syslog(3) (which
 * journald collects) or stderr; see src/common/log.c.
 */
#ifndef XBD_LOG_H
#define XBD_LOG_H
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>     /* LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG */

enum log_target { LOG_TARGET_STDERR, LOG_TARGET_SYSLOG, LOG_TARGET_FILE };

/* Set up logging.  ident: program name; path: only for LOG_TARGET_FILE.
 * Returns 0 or -errno (file could not be opened). */
int  log_init(const char *ident, enum log_target target, const char *path, int max_level);
/* SIGHUP: reopen the log file (no-op for other targets).  0 or -errno. */
int  log_reopen(void);
void log_set_level(int level);
int  log_get_level(void);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *fmt, va_list ap);

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

#define log_err(...)    log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)  do { if (log_get_level() >= LOG_DEBUG) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
