/*
 * log.c - logging to stderr, syslog(3) (collected by journald) or a file that
 * SIGHUP reopens; plus a per-site rate limiter for guest-triggerable faults.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static struct {
    enum log_target target;
    int level;
    char ident[64];
    char path[4096];
    FILE *file;
    pthread_mutex_t lock;
} L = { LOG_TARGET_STDERR, LOG_INFO, "xen-blkbackd", "", NULL, PTHREAD_MUTEX_INITIALIZER };

static const char *level_name(int level)
{
    switch (level) {
    case LOG_EMERG: case LOG_ALERT: case LOG_CRIT: return "crit";
    case LOG_ERR: return "error";
    case LOG_WARNING: return "warning";
    case LOG_NOTICE: return "notice";
    case LOG_INFO: return "info";
    default: return "debug";
    }
}

int log_init(const char *ident, enum log_target target, const char *path, int max_level)
{
    pthread_mutex_lock(&L.lock);
    snprintf(L.ident, sizeof(L.ident), "%s", ident ? ident : "xen-blkbackd");
    L.level = max_level;
    L.target = target;
    if (L.file) {
        fclose(L.file);
        L.file = NULL;
    }
    int rc = 0;
    if (target == LOG_TARGET_SYSLOG) {
        openlog(L.ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
    } else if (target == LOG_TARGET_FILE) {
        snprintf(L.path, sizeof(L.path), "%s", path ? path : "");
        L.file = fopen(L.path, "ae");
        if (!L.file) {
            rc = -errno;
            L.target = LOG_TARGET_STDERR;
        } else {
            setvbuf(L.file, NULL, _IOLBF, 0);
        }
    }
    pthread_mutex_unlock(&L.lock);
    return rc;
}

int log_reopen(void)
{
    int rc = 0;
    pthread_mutex_lock(&L.lock);
    if (L.target == LOG_TARGET_FILE) {
        FILE *f = fopen(L.path, "ae");
        if (!f) {
            rc = -errno;            /* keep writing to the old file */
        } else {
            setvbuf(f, NULL, _IOLBF, 0);
            if (L.file)
                fclose(L.file);
            L.file = f;
        }
    }
    pthread_mutex_unlock(&L.lock);
    return rc;
}

void log_set_level(int level) { __atomic_store_n(&L.level, level, __ATOMIC_RELAXED); }
int  log_get_level(void) { return __atomic_load_n(&L.level, __ATOMIC_RELAXED); }

void log_vmsg(int level, const char *fmt, va_list ap)
{
    if (level > log_get_level())
        return;
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (L.target == LOG_TARGET_SYSLOG) {
        syslog(level, "%s", msg);
        return;
    }
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    pthread_mutex_lock(&L.lock);
    FILE *out = L.file ? L.file : stderr;
    fprintf(out, "%04d-%02d-%02d %02d:%02d:%02d.%03ld %s[%s]: %s\n",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, L.ident, level_name(level), msg);
    pthread_mutex_unlock(&L.lock);
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void log_rl(struct log_ratelimit *rl, int level, const char *fmt, ...)
{
    uint64_t now = now_ms();
    if (now - rl->window_start_ms >= rl->interval_ms) {
        if (rl->suppressed)
            log_msg(level, "(%llu similar messages suppressed)", (unsigned long long)rl->suppressed);
        rl->window_start_ms = now;
        rl->printed = 0;
        rl->suppressed = 0;
    }
    if (rl->printed >= rl->burst) {
        rl->suppressed++;
        return;
    }
    rl->printed++;
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}
