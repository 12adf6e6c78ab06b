/*
 * log.c - logging to stderr, syslog(3), a file that SIGHUP reopens, or the
 * systemd journal (sd_journal_sendv(3) with the device's identity as
 * fields; stderr when the journal cannot be reached); plus a per-site rate
 * limiter for guest-triggerable faults.
 */
#include "log.h"
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <time.h>

static struct {
    enum log_target target;
    int level;
    char ident[64];
    char path[4096];
    FILE *file;
    pthread_mutex_t lock;
} L = { LOG_TARGET_STDERR, LOG_INFO, "xen-blkbackd", "", NULL, PTHREAD_MUTEX_INITIALIZER };

static void debug_mask_update(void);

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
    debug_mask_update();
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

unsigned log_debug_mask;               /* LOG_DBG's: cats, or all at level debug */
static unsigned debug_cats;             /* --debug */

/* log_debug_mask from the level and the categories (either just changed). */
static void debug_mask_update(void)
{
    unsigned m = __atomic_load_n(&debug_cats, __ATOMIC_RELAXED);
    if (__atomic_load_n(&L.level, __ATOMIC_RELAXED) >= LOG_DEBUG)
        m |= LOG_CAT_LEVEL_DEBUG;
    __atomic_store_n(&log_debug_mask, m, __ATOMIC_RELAXED);
}

void log_set_level(int level)
{
    __atomic_store_n(&L.level, level, __ATOMIC_RELAXED);
    debug_mask_update();
}
int  log_get_level(void) { return __atomic_load_n(&L.level, __ATOMIC_RELAXED); }

void log_debug_set(unsigned cats)
{
    __atomic_store_n(&debug_cats, cats & LOG_CAT_ALL, __ATOMIC_RELAXED);
    debug_mask_update();
}
unsigned log_debug_get(void) { return __atomic_load_n(&debug_cats, __ATOMIC_RELAXED); }

/* The category names, bit i of enum log_cat at [i]. */
static const char *const cat_names[] = { "ring", "grant", "xenstore", "engine", "restart" };

static const char *cat_name(unsigned cat)
{
    for (unsigned i = 0; i < ARRAY_SIZE(cat_names); i++)
        if (cat == 1u << i)
            return cat_names[i];
    return "debug";
}

int log_debug_parse(const char *s, unsigned *out, const char **bad)
{
    unsigned m = 0;
    const char *p = s ? s : "";
    while (*p) {
        size_t n = strcspn(p, ",");
        unsigned bit = 0;
        if (n == 3 && !strncasecmp(p, "all", 3))
            bit = LOG_CAT_ALL;
        else if (n == 4 && !strncasecmp(p, "none", 4))
            bit = 0;
        else {
            for (unsigned i = 0; i < ARRAY_SIZE(cat_names); i++)
                if (strlen(cat_names[i]) == n && !strncasecmp(p, cat_names[i], n))
                    bit = 1u << i;
            if (!bit) {
                if (bad)
                    *bad = p;
                return -EINVAL;
            }
        }
        m |= bit;
        p += n;
        if (*p == ',' && *++p == '\0') {  /* "ring," */
            if (bad)
                *bad = p;
            return -EINVAL;
        }
    }
    *out = m;
    return 0;
}

const char *log_debug_format(unsigned cats, char *buf, size_t len)
{
    size_t o = 0;
    if (len)
        buf[0] = '\0';
    for (unsigned i = 0; i < ARRAY_SIZE(cat_names); i++)
        if (cats & (1u << i)) {
            int n = snprintf(buf + o, len > o ? len - o : 0, "%s%s", o ? "," : "", cat_names[i]);
            if (n > 0)
                o += (size_t)n;
        }
    if (!o)
        snprintf(buf, len, "none");
    return buf;
}

int log_level_parse(const char *s, int lo, int hi, int *out)
{
    static const struct { const char *n; int l; } t[] = {
        { "err", LOG_ERR }, { "error", LOG_ERR }, { "warning", LOG_WARNING },
        { "warn", LOG_WARNING }, { "notice", LOG_NOTICE }, { "info", LOG_INFO },
        { "debug", LOG_DEBUG },
    };
    uint64_t n;
    for (size_t i = 0; s && i < ARRAY_SIZE(t); i++)
        if (!strcasecmp(s, t[i].n)) {
            *out = t[i].l;
            return 0;
        }
    if (xbd_parse_u64(s, 10, (uint64_t)lo, (uint64_t)hi, &n))
        return -EINVAL;
    *out = (int)n;
    return 0;
}

bool log_stderr_is_journal(void)
{
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* One iovec "NAME=value" in f->buf[n] (truncated to the buffer). */
static unsigned field(struct log_fields *f, unsigned n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static unsigned field(struct log_fields *f, unsigned n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->buf[n], sizeof(f->buf[n]), fmt, ap);
    va_end(ap);
    f->iov[n].iov_base = f->buf[n];
    f->iov[n].iov_len = strlen(f->buf[n]);
    return n + 1;
}

void log_dev_init(struct log_dev *d, const char *name, int domid, long long devid,
                  const char *vdev)
{
    snprintf(d->name, sizeof(d->name), "%s", name ? name : "");
    d->domid = domid;
    d->devid = devid;
    snprintf(d->vdev, sizeof(d->vdev), "%s", vdev ? vdev : "");
}

unsigned log_journal_fields(int level, const char *ident, const struct log_dev *d, int queue,
                            unsigned cat, const char *text, struct log_fields *f)
{
    unsigned n = 0;
    snprintf(f->message, sizeof(f->message), "MESSAGE=%s", text);
    f->iov[n].iov_base = f->message;
    f->iov[n++].iov_len = strlen(f->message);
    n = field(f, n, "PRIORITY=%d", level < LOG_EMERG ? LOG_EMERG : level > LOG_DEBUG ? LOG_DEBUG : level);
    n = field(f, n, "SYSLOG_IDENTIFIER=%s", ident ? ident : "xen-blkbackd");
    if (d && d->domid >= 0)
        n = field(f, n, "DOMID=%d", d->domid);
    if (d && d->devid >= 0)
        n = field(f, n, "DEVID=%lld", d->devid);
    if (d && *d->vdev)
        n = field(f, n, "VDEV=%s", d->vdev);
    if (queue >= 0)
        n = field(f, n, "QUEUE=%d", queue);
    if (cat)
        n = field(f, n, "DEBUG_CATEGORY=%s", cat_name(cat));
    return n;
}

static log_journal_sink_fn *journal_sink;
static void *journal_sink_arg;

void log_set_journal_sink(log_journal_sink_fn *fn, void *arg)
{
    journal_sink = fn;
    journal_sink_arg = arg;
}

/* Write one formatted message (its device prefix already in msg). */
static void emit(int level, const struct log_dev *d, int queue, unsigned cat, const char *msg)
{
    if (L.target == LOG_TARGET_JOURNAL) {
        struct log_fields f;
        unsigned n = log_journal_fields(level, L.ident, d, queue, cat, msg, &f);
        if (journal_sink) {
            journal_sink(&f, n, journal_sink_arg);
            return;
        }
        if (sd_journal_sendv(f.iov, (int)n) == 0)
            return;
        /* no journal (socket gone): stderr, as before the target existed */
    }
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

void log_vmsg(int level, const char *fmt, va_list ap)
{
    if (level > log_get_level())
        return;
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    emit(level, NULL, LOG_NO_QUEUE, 0, msg);
}

/* The device prefix "<name>: " or "<name> queue <q>: " (nothing for d NULL)
 * in msg[0..len); returns its length (at most len - 1). */
static size_t dev_prefix(char *msg, size_t len, const struct log_dev *d, int queue)
{
    int n = !d ? snprintf(msg, len, "%s", "")
            : queue >= 0 ? snprintf(msg, len, "%s queue %d: ", d->name, queue)
                         : snprintf(msg, len, "%s: ", d->name);
    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : len - 1;
}

/* prefix + tag ("[ring] " for a debug category) + fmt, then emit. */
static void log_vdev_cat(int level, const struct log_dev *d, int queue, unsigned cat,
                         const char *fmt, va_list ap)
{
    char msg[1024];
    size_t n = dev_prefix(msg, sizeof(msg), d, queue);
    if (cat) {
        int t = snprintf(msg + n, sizeof(msg) - n, "[%s] ", cat_name(cat));
        n = t < 0 ? n : n + (size_t)t < sizeof(msg) ? n + (size_t)t : sizeof(msg) - 1;
    }
    vsnprintf(msg + n, sizeof(msg) - n, fmt, ap);
    emit(level, d, d ? queue : LOG_NO_QUEUE, cat, msg);
}

static void log_vdev(int level, const struct log_dev *d, int queue, const char *fmt, va_list ap)
{
    if (level > log_get_level())
        return;
    log_vdev_cat(level, d, queue, 0, fmt, ap);
}

void log_dbg_dev(unsigned cat, const struct log_dev *d, int queue, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vdev_cat(LOG_DEBUG, d, queue, cat, fmt, ap);
    va_end(ap);
}

void log_dev(int level, const struct log_dev *d, int queue, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vdev(level, d, queue, fmt, ap);
    va_end(ap);
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

/* May this message through?  Opens a new window when the old one is over,
 * saying first how many messages it suppressed (about d, if not NULL). */
static bool rl_admit(struct log_ratelimit *rl, int level, const struct log_dev *d, int queue)
{
    uint64_t now = xbd_now_ms();
    if (now - rl->window_start_ms >= rl->interval_ms) {
        if (rl->suppressed && level <= log_get_level()) {
            char msg[128];
            size_t n = dev_prefix(msg, sizeof(msg), d, queue);
            snprintf(msg + n, sizeof(msg) - n, "(%llu similar messages suppressed)",
                     (unsigned long long)rl->suppressed);
            emit(level, d, d ? queue : LOG_NO_QUEUE, 0, msg);
        }
        rl->window_start_ms = now;
        rl->printed = 0;
        rl->suppressed = 0;
    }
    if (rl->printed >= rl->burst) {
        rl->suppressed++;
        return false;
    }
    rl->printed++;
    return true;
}

void log_rl(struct log_ratelimit *rl, int level, const char *fmt, ...)
{
    if (!rl_admit(rl, level, NULL, LOG_NO_QUEUE))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

void log_rl_dev(struct log_ratelimit *rl, int level, const struct log_dev *d, int queue,
                const char *fmt, ...)
{
    if (!rl_admit(rl, level, d, queue))
        return;
    va_list ap;
    va_start(ap, fmt);
    log_vdev(level, d, queue, fmt, ap);
    va_end(ap);
}
