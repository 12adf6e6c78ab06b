/* t_log: device log lines (log_dev, log_rl_dev) print exactly the text of the old "%s: " / "%s queue %u: " formats; the journal target's fields (MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, DOMID, DEVID, VDEV, QUEUE) are formatted right; JOURNAL_STREAM is trusted only when it names our stderr; with a journald socket, journalctl DOMID=... finds the message. */
#include "harness.h"
#include "log.h"
#include "lib/e2e.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* The fields as "NAME=value" strings, for comparing. */
static unsigned fields_cat(int level, const struct log_dev *d, int queue, unsigned cat,
                           const char *text, char out[][1100])
{
    struct log_fields f;
    unsigned n = log_journal_fields(level, "xen-blkbackd", d, queue, cat, text, &f);
    for (unsigned i = 0; i < n; i++)
        snprintf(out[i], 1100, "%.*s", (int)f.iov[i].iov_len, (const char *)f.iov[i].iov_base);
    return n;
}

static unsigned fields(int level, const struct log_dev *d, int queue, const char *text,
                       char out[][1100])
{
    return fields_cat(level, d, queue, 0, text, out);
}

static void test_fields(void)
{
    char f[LOG_JOURNAL_MAX_FIELDS][1100];
    const struct log_dev d = { "vbd 5/51712", 5, 51712, "xvdb" };
    T_EQ(fields(LOG_WARNING, &d, 2, "vbd 5/51712 queue 2: refused", f), 7);
    T_CHECK(!strcmp(f[0], "MESSAGE=vbd 5/51712 queue 2: refused"), "%s", f[0]);
    T_CHECK(!strcmp(f[1], "PRIORITY=4"), "%s", f[1]);
    T_CHECK(!strcmp(f[2], "SYSLOG_IDENTIFIER=xen-blkbackd"), "%s", f[2]);
    T_CHECK(!strcmp(f[3], "DOMID=5"), "%s", f[3]);
    T_CHECK(!strcmp(f[4], "DEVID=51712"), "%s", f[4]);
    T_CHECK(!strcmp(f[5], "VDEV=xvdb"), "%s", f[5]);
    T_CHECK(!strcmp(f[6], "QUEUE=2"), "%s", f[6]);

    /* no queue, no vdev: those fields are left out */
    const struct log_dev nov = { "vbd 7/768", 7, 768, "" };
    T_EQ(fields(LOG_ERR, &nov, LOG_NO_QUEUE, "vbd 7/768: x", f), 5);
    T_CHECK(!strcmp(f[1], "PRIORITY=3") && !strcmp(f[3], "DOMID=7") && !strcmp(f[4], "DEVID=768"),
            "%s %s %s", f[1], f[3], f[4]);
    /* no device at all */
    T_EQ(fields(LOG_DEBUG, NULL, LOG_NO_QUEUE, "plain", f), 3);
    T_CHECK(!strcmp(f[0], "MESSAGE=plain") && !strcmp(f[1], "PRIORITY=7"), "%s %s", f[0], f[1]);
    /* a long message is cut, never overflows */
    char big[2000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    T_EQ(fields(LOG_INFO, &d, 0, big, f), 7);
    T_CHECK(strlen(f[0]) < 1100 && !strncmp(f[0], "MESSAGE=xxx", 11), "long message");
}

/* The file target prints device lines exactly as the old formats did. */
static void test_printed_text(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/log.txt", t_tmpdir(0));
    T_ASSERT(log_init("t_log", LOG_TARGET_FILE, path, LOG_DEBUG) == 0, "log_init file");
    const struct log_dev d = { "vbd 5/51712", 5, 51712, "xvdb" };
    log_dev(LOG_NOTICE, &d, LOG_NO_QUEUE, "connected '%s'", "/srv/a.img");
    log_dev(LOG_WARNING, &d, 3, "WRITE request id %d refused: %s", 9, "beyond the end");
    struct log_ratelimit rl = { 60000, 2, 0, 0, 0 };
    for (int i = 0; i < 5; i++)
        log_rl_dev(&rl, LOG_WARNING, &d, 1, "fault %d", i);
    rl.window_start_ms = 0;                 /* the window is over */
    log_rl_dev(&rl, LOG_WARNING, &d, 1, "fault again");
    log_init("t_log", LOG_TARGET_STDERR, NULL, LOG_DEBUG);

    static const char *const want[] = {
        "t_log[notice]: vbd 5/51712: connected '/srv/a.img'",
        "t_log[warning]: vbd 5/51712 queue 3: WRITE request id 9 refused: beyond the end",
        "t_log[warning]: vbd 5/51712 queue 1: fault 0",
        "t_log[warning]: vbd 5/51712 queue 1: fault 1",
        "t_log[warning]: vbd 5/51712 queue 1: (3 similar messages suppressed)",
        "t_log[warning]: vbd 5/51712 queue 1: fault again",
    };
    FILE *f = fopen(path, "r");
    T_ASSERT(f, "%s", path);
    char line[1200];
    unsigned n = 0;
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = 0;
        const char *p = strstr(line, " t_log[");  /* after the timestamp */
        T_ASSERT(n < ARRAY_SIZE(want), "extra line: %s", line);
        T_CHECK(p && !strcmp(p + 1, want[n]), "line %u: '%s', expected '%s'", n, p ? p + 1 : line,
                want[n]);
        n++;
    }
    fclose(f);
    T_EQ(n, ARRAY_SIZE(want));
}

static void test_journal_stream(void)
{
    struct stat st;
    T_ASSERT(fstat(2, &st) == 0, "fstat 2");
    char v[64];
    unsetenv("JOURNAL_STREAM");
    T_CHECK(!log_stderr_is_journal(), "no JOURNAL_STREAM");
    snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    setenv("JOURNAL_STREAM", v, 1);
    T_CHECK(log_stderr_is_journal(), "JOURNAL_STREAM=%s names fd 2", v);
    snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + 1);
    setenv("JOURNAL_STREAM", v, 1);
    T_CHECK(!log_stderr_is_journal(), "inherited JOURNAL_STREAM of another stream");
    setenv("JOURNAL_STREAM", "garbage", 1);
    T_CHECK(!log_stderr_is_journal(), "malformed JOURNAL_STREAM");
    unsetenv("JOURNAL_STREAM");
}

/* Through journald itself, where there is one. */
static void test_journald(void)
{
    if (access("/run/systemd/journal/socket", W_OK) != 0 || system("journalctl --version >/dev/null 2>&1")) {
        printf("journald socket test skipped: no /run/systemd/journal/socket (or journalctl); "
               "fields checked through the formatter only\n");
        T_LOG("journald socket test skipped: no /run/systemd/journal/socket");
        return;
    }
    unsigned domid = 30000 + (unsigned)getpid() % 30000;
    log_init("t_log", LOG_TARGET_JOURNAL, NULL, LOG_DEBUG);
    const struct log_dev d = { "vbd", (int)domid, 51728, "xvdc" };
    log_dev(LOG_NOTICE, &d, 1, "t_log journal probe %u", domid);
    log_init("t_log", LOG_TARGET_STDERR, NULL, LOG_DEBUG);
    char *out = NULL;
    int rc = 1;
    for (int tries = 0; tries < 50 && rc; tries++) {
        free(out);
        out = NULL;
        rc = e2e_sh(&out, "journalctl --no-pager -o json DOMID=%u SYSLOG_IDENTIFIER=t_log | "
                    "grep -F 't_log journal probe %u'", domid, domid);
        if (rc)
            usleep(100 * 1000);
    }
    T_CHECK(rc == 0, "journalctl DOMID=%u found nothing", domid);
    T_CHECK(out && strstr(out, "\"DEVID\":\"51728\"") && strstr(out, "\"VDEV\":\"xvdc\"") &&
            strstr(out, "\"QUEUE\":\"1\"") && strstr(out, "\"PRIORITY\":\"5\""),
            "fields: %s", out ? out : "");
    free(out);
    printf("journald socket test: passed\n");
}

int main(void)
{
    test_fields();
    test_printed_text();
    test_journal_stream();
    test_journald();
    return t_done();
}
