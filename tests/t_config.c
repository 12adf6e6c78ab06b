/* t_config: xen-blkbackd options and config file parse as documented; bad values, unknown keys and missing -c files are refused; the shipped config file states the defaults. */
#include "harness.h"
#include "../src/backend/config.h"

#include <pwd.h>
#include <stdbool.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char err[512];

/* Parse a NULL-terminated argument list into a fresh config. */
static int parse(struct xbd_config *c, const char *const *args)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = "xen-blkbackd";
    for (int i = 0; args[i]; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    xbd_config_init(c);
    err[0] = 0;
    FILE *out = fopen("/dev/null", "w");
    int rc = xbd_config_parse_args(c, argc, argv, out, err, sizeof(err));
    fclose(out);
    return rc;
}

/* One option value must be refused with -EINVAL and a message naming it. */
static void refuse(const char *opt, const char *needle)
{
    struct xbd_config c;
    const char *args[] = { "--config=/dev/null", opt, NULL };
    int rc = parse(&c, args);
    T_CHECK(rc == -EINVAL, "%s: rc %d, expected -EINVAL", opt, rc);
    T_CHECK(strstr(err, needle) != NULL, "%s: message '%s' lacks '%s'", opt, err, needle);
    xbd_config_free(&c);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    T_ASSERT(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void check_same_as_defaults(const struct xbd_config *a, const char *what)
{
    struct xbd_config d;
    xbd_config_init(&d);
    T_EQ(a->log_target, d.log_target);
    T_EQ(a->log_level, d.log_level);
    T_EQ(a->type_vbd, d.type_vbd);
    T_EQ(a->type_vbd3, d.type_vbd3);
    T_EQ(a->domid, d.domid);
    T_EQ(a->wait_hotplug, d.wait_hotplug);
    T_EQ(a->allow_test_engines, d.allow_test_engines);
    T_EQ(a->grant_mode, d.grant_mode);
    T_EQ(a->max_ring_page_order, d.max_ring_page_order);
    T_EQ(a->max_queues, d.max_queues);
    T_EQ(a->max_indirect_segs, d.max_indirect_segs);
    T_EQ(a->persistent, d.persistent);
    T_EQ(a->persistent_cap, d.persistent_cap);
    T_EQ(a->poll_us, d.poll_us);
    T_EQ(a->feature_barrier, d.feature_barrier);
    T_EQ(a->direct_io, d.direct_io);
    T_EQ(a->stop_timeout_ms, d.stop_timeout_ms);
    T_EQ(a->resize_check_ms, d.resize_check_ms);
    T_EQ(a->on_exit, d.on_exit);
    T_CHECK(a->metrics_listen == NULL, "%s: metrics-listen %s", what, a->metrics_listen);
    T_CHECK(a->pidfile == NULL, "%s: pidfile %s", what, a->pidfile);
    T_CHECK(!a->xen || !strcmp(a->xen, "libxen"), "%s: xen %s", what, a->xen);
    T_CHECK(!a->control_path || !strcmp(a->control_path, XBD_DEFAULT_CONTROL),
            "%s: control %s", what, a->control_path);
    xbd_config_free(&d);
}

/* The shipped conf/xen-blkbackd.conf: every "#key = value" line uncommented
 * must give exactly the built-in defaults. */
static void check_shipped_conf(const char *dir)
{
    char src[512], dst[512], line[512];
    const char *b = getenv("XBD_BUILD");
    snprintf(src, sizeof(src), "conf/xen-blkbackd.conf");
    if (access(src, R_OK) && b)
        snprintf(src, sizeof(src), "%s/../../conf/xen-blkbackd.conf", b);
    FILE *in = fopen(src, "r");
    if (!in) {
        T_LOG("conf/xen-blkbackd.conf not found; not checked");
        return;
    }
    snprintf(dst, sizeof(dst), "%s/uncommented.conf", dir);
    FILE *out = fopen(dst, "w");
    T_ASSERT(out, "check");
    int keys = 0;
    while (fgets(line, sizeof(line), in)) {
        /* "#key = value" (no space after #) are the settings; "# text" is prose */
        if (line[0] == '#' && line[1] >= 'a' && line[1] <= 'z' && strchr(line, '=')) {
            fputs(line + 1, out);
            keys++;
        } else if (line[0] == '[') {
            fputs(line, out);
        }
    }
    fclose(in);
    fclose(out);
    T_CHECK(keys >= 20, "only %d commented settings in %s", keys, src);

    struct xbd_config c;
    xbd_config_init(&c);
    int rc = xbd_config_load_file(&c, dst, true, err, sizeof(err));
    T_CHECK(rc == 0, "uncommented shipped config: %d %s", rc, err);
    check_same_as_defaults(&c, "shipped config");
    xbd_config_free(&c);
}

/* The daemon binary: usage errors exit 2, --help lists every option. */
static void check_binary(void)
{
    const char *prog = t_prog("xen-blkbackd");
    if (access(prog, X_OK)) {
        T_LOG("%s not built; binary checks skipped", prog);
        return;
    }
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s --config=/dev/null --max-queues=99 2>/dev/null", prog);
    int st = system(cmd);
    T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2, "bad value: status 0x%x", st);
    snprintf(cmd, sizeof(cmd), "%s -c /nonexistent/xbd.conf 2>/dev/null", prog);
    st = system(cmd);
    T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2, "missing -c file: status 0x%x", st);
    snprintf(cmd, sizeof(cmd), "%s --version", prog);
    FILE *p = popen(cmd, "r");
    char buf[8192] = "";
    size_t n = fread(buf, 1, sizeof(buf) - 1, p);
    buf[n] = 0;
    st = pclose(p);
    T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(buf, XBD_VERSION), "--version: %s", buf);
    snprintf(cmd, sizeof(cmd), "%s --help", prog);
    p = popen(cmd, "r");
    n = fread(buf, 1, sizeof(buf) - 1, p);
    buf[n] = 0;
    st = pclose(p);
    T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "--help status 0x%x", st);
    static const char *const opts[] = {
        "--config", "--foreground", "--pidfile", "--xen", "--log=", "--log-level", "--control",
        "--backend-types", "--domid", "--wait-hotplug", "--allow-test-engines", "--grant-mode",
        "--max-ring-page-order", "--max-queues", "--max-indirect-segments", "--persistent",
        "--persistent-cap", "--poll-us", "--feature-barrier", "--direct-io", "--stop-timeout",
        "--resize-check", "--on-exit", "--version", "--help",
    };
    for (size_t i = 0; i < ARRAY_SIZE(opts); i++)
        T_CHECK(strstr(buf, opts[i]), "--help does not mention %s", opts[i]);
}

/* Every option is documented in xen-blkbackd(8) and every config key in
 * xen-blkbackd.conf(5) (roff escapes '-' as '\\-'). */
static void check_manpages(void)
{
    static const char *const keys[] = {
        "foreground", "pidfile", "xen", "log", "log-level", "debug", "control", "backend-types", "domid",
        "wait-hotplug", "allow-test-engines", "grant-mode", "max-ring-page-order", "max-queues",
        "max-indirect-segments", "persistent", "persistent-cap", "poll-us", "feature-barrier",
        "direct-io", "stop-timeout", "resize-check", "on-exit",
    };
    const char *pages[] = { "man/xen-blkbackd.8", "man/xen-blkbackd.conf.5" };
    const char *b = getenv("XBD_BUILD");
    for (int pg = 0; pg < 2; pg++) {
        char path[512];
        snprintf(path, sizeof(path), "%s", pages[pg]);
        if (access(path, R_OK) && b)
            snprintf(path, sizeof(path), "%s/../../%s", b, pages[pg]);
        FILE *f = fopen(path, "r");
        if (!f) {
            T_LOG("%s not found; not checked", pages[pg]);
            continue;
        }
        static char text[1 << 17];
        size_t n = fread(text, 1, sizeof(text) - 1, f);
        text[n] = 0;
        fclose(f);
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
            char want[96], *o = want;
            if (pg == 0)
                o += sprintf(o, "\\-\\-");
            for (const char *k = keys[i]; *k; k++)
                o += *k == '-' ? sprintf(o, "\\-") : sprintf(o, "%c", *k);
            T_CHECK(strstr(text, want), "%s does not document %s", pages[pg], keys[i]);
        }
    }
}

/* ---- the key table against its documentation --------------------------------- */

/* A file of the source tree (tests run from it, or XBD_BUILD is two below it),
 * whole, into a static buffer; NULL if absent. */
static char *read_doc(const char *rel, char *text, size_t len)
{
    char path[512];
    const char *b = getenv("XBD_BUILD");
    snprintf(path, sizeof(path), "%s", rel);
    if (access(path, R_OK) && b)
        snprintf(path, sizeof(path), "%s/../../%s", b, rel);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t n = fread(text, 1, len - 1, f);
    text[n] = 0;
    fclose(f);
    return text;
}

/* One roff source line as plain words: font macros (.B .BR .IR ...) lose
 * their name and, for the alternating ones, the spaces between arguments;
 * quotes, \fX, \- and \(xx escapes go. */
static void roff_plain(const char *line, char *out, size_t len)
{
    size_t o = 0;
    bool alt = false;
    if (line[0] == '.') {
        const char *sp = strchr(line, ' ');
        size_t ml = sp ? (size_t)(sp - line) : strlen(line);
        if (ml != 2 && ml != 3)
            return;                     /* .TP, .PP, ... carry no text here */
        alt = ml == 3;
        line = sp ? sp + 1 : line + ml;
    }
    bool quoted = false;
    for (const char *p = line; *p && o + 2 < len; p++) {
        if (*p == '"') {
            quoted = !quoted;
        } else if (*p == '\\' && p[1] == 'f' && p[2]) {
            p += 2;
        } else if (*p == '\\' && p[1] == '(' && p[2] && p[3]) {
            p += 3;
        } else if (*p == '\\' && p[1]) {
            out[o++] = *++p;
        } else if (*p == ' ' && alt && !quoted) {
            continue;
        } else {
            out[o++] = *p;
        }
    }
    out[o++] = ' ';
    out[o] = 0;
}

/* The value next to "default" in a paragraph: "default X", "default: X",
 * "(default X", "X (default)".  Each candidate into cand[]; count returned. */
static int default_candidates(char *para, char cand[][128], int max)
{
    char *words[512];
    int nw = 0, nc = 0;
    for (char *save = NULL, *w = strtok_r(para, " \n\t", &save); w && nw < 512;
         w = strtok_r(NULL, " \n\t", &save))
        words[nw++] = w;
    for (int i = 0; i < nw && nc < max; i++) {
        const char *w = words[i], *c = NULL;
        if (!strncasecmp(w, "(default)", 9) && i > 0)
            c = words[i - 1];
        else if ((!strcasecmp(w, "default") || !strcasecmp(w, "default:") ||
                  !strcasecmp(w, "(default")) && i + 1 < nw)
            c = words[i + 1];
        if (!c)
            continue;
        snprintf(cand[nc], sizeof(cand[nc]), "%s", c + (c[0] == '('));
        size_t l = strlen(cand[nc]);
        while (l && strchr(").,;:", cand[nc][l - 1]))
            cand[nc][--l] = 0;
        if (l)
            nc++;
    }
    return nc;
}

/* man/xen-blkbackd.8 OPTIONS: every .TP item names a key of the table, every
 * key has an item, and the item's "default" is the table's default. */
static void check_table_man(const struct xbd_config_key *keys, size_t n)
{
    static char text[1 << 17];
    if (!read_doc("man/xen-blkbackd.8", text, sizeof(text))) {
        T_LOG("man/xen-blkbackd.8 not found; not checked");
        return;
    }
    char *opts = strstr(text, "\n.SH OPTIONS\n"), *end = opts ? strstr(opts + 1, "\n.SH ") : NULL;
    T_ASSERT(opts && end, "man/xen-blkbackd.8 has no OPTIONS section");
    *end = 0;
    bool seen[128] = { false };
    T_ASSERT(n <= ARRAY_SIZE(seen), "table of %zu keys", n);
    for (char *tp = strstr(opts, "\n.TP\n"); tp; tp = strstr(tp + 1, "\n.TP\n")) {
        char item[256], para[8192] = "", plain[1024];
        char *head = tp + 5, *nl = strchr(head, '\n');
        snprintf(item, sizeof(item), "%.*s", nl ? (int)(nl - head) : (int)strlen(head), head);
        roff_plain(item, plain, sizeof(plain));
        char *o = strstr(plain, "--");
        T_CHECK(o, "OPTIONS item without a long option: %s", item);
        if (!o)
            continue;
        size_t l = strspn(o + 2, "abcdefghijklmnopqrstuvwxyz0123456789-");
        const struct xbd_config_key *k = NULL;
        for (size_t i = 0; i < n; i++)
            if (strlen(keys[i].name) == l && !strncmp(keys[i].name, o + 2, l)) {
                k = &keys[i];
                seen[i] = true;
            }
        T_CHECK(k, "man/xen-blkbackd.8 documents --%.*s, which the key table lacks", (int)l, o + 2);
        if (!k || !k->def)
            continue;
        /* the paragraph: up to the next .TP */
        char *pe = strstr(head, "\n.TP\n");
        for (char *ln = nl ? nl + 1 : NULL; ln && (!pe || ln < pe); ln = strchr(ln, '\n'), ln = ln ? ln + 1 : NULL) {
            char one[1024], lbuf[1024];
            char *lnl = strchr(ln, '\n');
            snprintf(lbuf, sizeof(lbuf), "%.*s", lnl ? (int)(lnl - ln) : (int)strlen(ln), ln);
            roff_plain(lbuf, one, sizeof(one));
            strncat(para, one, sizeof(para) - strlen(para) - 1);
        }
        char cand[16][128];
        int nc = default_candidates(para, cand, 16), match = 0;
        for (int i = 0; i < nc; i++)
            match += !strcmp(cand[i], k->def);
        T_CHECK(match, "man/xen-blkbackd.8 --%s: default is %s in the table, the page says %s",
                k->name, k->def, nc ? cand[0] : "nothing");
    }
    for (size_t i = 0; i < n; i++)
        T_CHECK(seen[i], "man/xen-blkbackd.8 OPTIONS has no item for --%s", keys[i].name);
}

/* conf/xen-blkbackd.conf: every config key of the table stands there as
 * "#key = default" under its "# ---- section" heading, and every such line
 * is a key of the table. */
static void check_table_conf(const struct xbd_config_key *keys, size_t n)
{
    static char text[1 << 16];
    if (!read_doc("conf/xen-blkbackd.conf", text, sizeof(text))) {
        T_LOG("conf/xen-blkbackd.conf not found; not checked");
        return;
    }
    int found[128] = { 0 };
    char section[128] = "";
    for (char *save = NULL, *ln = strtok_r(text, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
        if (!strncmp(ln, "# ---- ", 7)) {
            snprintf(section, sizeof(section), "%s", ln + 7);
            size_t l = strlen(section);
            while (l && (section[l - 1] == '-' || section[l - 1] == ' '))
                section[--l] = 0;
            continue;
        }
        if (ln[0] != '#' || ln[1] < 'a' || ln[1] > 'z' || !strchr(ln, '='))
            continue;
        char key[64], val[256];
        T_CHECK(sscanf(ln + 1, "%63[a-z0-9-] = %255[^\n]", key, val) == 2, "conf line '%s'", ln);
        size_t i;
        for (i = 0; i < n && strcmp(keys[i].name, key); i++)
            ;
        T_CHECK(i < n && keys[i].type != XBD_CFG_CLI,
                "conf/xen-blkbackd.conf sets '%s', which is no key of the table", key);
        if (i >= n)
            continue;
        found[i]++;
        T_CHECK(keys[i].def && !strcmp(val, keys[i].def),
                "conf/xen-blkbackd.conf: %s = %s, the table's default is %s", key, val, keys[i].def);
        T_CHECK(keys[i].section && !strcmp(section, keys[i].section),
                "conf/xen-blkbackd.conf: %s under '%s', the table says '%s'", key, section,
                keys[i].section);
    }
    for (size_t i = 0; i < n; i++)
        if (keys[i].type != XBD_CFG_CLI)
            T_CHECK(found[i] == 1, "conf/xen-blkbackd.conf has %d lines for %s", found[i], keys[i].name);
}

/* The table itself: defaults parse, ranges hold them, and the xenstore
 * override names a key the man page lists. */
static void check_table(void)
{
    size_t n;
    const struct xbd_config_key *keys = xbd_config_keys(&n);
    T_CHECK(n >= 25, "only %zu keys", n);
    for (size_t i = 0; i < n; i++) {
        const struct xbd_config_key *k = &keys[i];
        struct xbd_config c;
        xbd_config_init(&c);
        if (k->type == XBD_CFG_CLI) {
            T_CHECK(!k->def && !k->section, "%s: a command-line option has no default", k->name);
            T_EQ(xbd_config_set(&c, k->name, "x", err, sizeof(err)), -ENOENT);
        } else {
            T_CHECK(k->def && k->section && k->help, "%s: default, section and help", k->name);
            int rc = xbd_config_set(&c, k->name, k->def, err, sizeof(err));
            T_CHECK(rc == 0, "%s = %s: %d %s", k->name, k->def, rc, err);
        }
        if (k->type == XBD_CFG_UINT) {
            char v[32];
            snprintf(v, sizeof(v), "%lu", k->hi + 1);
            T_EQ(xbd_config_set(&c, k->name, v, err, sizeof(err)), -EINVAL);
            if (k->lo > 1 || (k->lo == 1 && !k->zero)) {
                snprintf(v, sizeof(v), "%lu", k->lo - 1);
                T_EQ(xbd_config_set(&c, k->name, v, err, sizeof(err)), -EINVAL);
            }
        }
        xbd_config_free(&c);
    }
    check_table_man(keys, n);
    check_table_conf(keys, n);
}

int main(void)
{
    const char *dir = t_tmpdir(0);
    struct xbd_config c;

    /* Defaults. */
    {
        const char *args[] = { "--config=/dev/null", NULL };
        T_ASSERT(parse(&c, args) == 0, "%s", err);
        check_same_as_defaults(&c, "defaults");
        T_EQ(c.max_ring_page_order, 4);
        T_EQ(c.max_indirect_segs, 256);
        T_EQ(c.feature_barrier, 0);
        T_EQ(c.resize_check_ms, 1000);
        T_CHECK(!c.log_given, "no log target chosen: main() may pick the journal");
        xbd_config_free(&c);
        const char *jargs[] = { "--config=/dev/null", "--log=journal", NULL };
        T_ASSERT(parse(&c, jargs) == 0, "%s", err);
        T_EQ(c.log_target, LOG_TARGET_JOURNAL);
        T_CHECK(c.log_given, "--log=journal given");
        T_CHECK(c.stop_timeout_ms < 10000, "stop timeout must fit libxl's 10 s");
        T_CHECK(xbd_config_wait_hotplug(&c), "hotplug gate defaults on under libxen");
        unsigned q = xbd_config_max_queues(&c);
        T_CHECK(q >= 1 && q <= XBD_MAX_QUEUES, "max queues %u", q);
        xbd_config_free(&c);
    }

    /* Every option on the command line. */
    {
        char pid[600], logp[600];
        snprintf(pid, sizeof(pid), "--pidfile=%s/x.pid", dir);
        snprintf(logp, sizeof(logp), "--log=file:%s/x.log", dir);
        const char *args[] = { "--config=/dev/null", "-F", pid, "--xen=sim:/dev/shm/h,domid=3",
            logp, "--log-level=debug", "--control=/tmp/x.sock", "--backend-types=vbd,vbd3",
            "--domid=7", "--wait-hotplug=yes", "--allow-test-engines", "--grant-mode=copy",
            "--max-ring-page-order=2", "--max-queues=3", "--max-indirect-segments=64",
            "--persistent=no", "--persistent-cap=77", "--poll-us=50", "--feature-barrier",
            "--direct-io=no", "--stop-timeout=2500", "--resize-check=250", "--on-exit=close", NULL };
        int rc = parse(&c, args);
        T_ASSERT(rc == 0, "rc %d: %s", rc, err);
        T_CHECK(c.pidfile && strstr(c.pidfile, "/x.pid"), "pidfile");
        T_CHECK(xbd_config_is_sim(&c), "check");
        T_CHECK(!strcmp(xbd_config_sim_arg(&c), "/dev/shm/h,domid=3"), "%s", xbd_config_sim_arg(&c));
        T_EQ(xbd_config_sim_domid(&c), 3);
        T_EQ(c.log_target, LOG_TARGET_FILE);
        T_CHECK(c.log_path && strstr(c.log_path, "/x.log"), "log path");
        T_EQ(c.log_level, LOG_DEBUG);
        T_CHECK(!strcmp(c.control_path, "/tmp/x.sock"), "control");
        T_CHECK(c.type_vbd && c.type_vbd3, "check");
        T_EQ(c.domid, 7);
        T_EQ(c.wait_hotplug, 1);
        T_EQ(c.allow_test_engines, 1);
        T_EQ(c.grant_mode, GRANT_MODE_COPY);
        T_EQ(c.max_ring_page_order, 2);
        T_EQ(c.max_queues, 3);
        T_EQ(xbd_config_max_queues(&c), 3);
        T_EQ(c.max_indirect_segs, 64);
        T_EQ(c.persistent, 0);
        T_EQ(c.persistent_cap, 77);
        T_EQ(c.poll_us, 50);
        T_EQ(c.feature_barrier, 1);
        T_EQ(c.direct_io, 0);
        T_EQ(c.stop_timeout_ms, 2500);
        T_EQ(c.resize_check_ms, 250);
        T_EQ(c.on_exit, XBD_ON_EXIT_CLOSE);
        xbd_config_free(&c);
    }

    /* metrics-listen: a port alone, an address, IPv6 in brackets; none */
    {
        const char *ok[] = { "9477", "127.0.0.1:9477", "[::1]:0", "0.0.0.0:9100", "none" };
        for (unsigned i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
            char opt[64];
            snprintf(opt, sizeof(opt), "--metrics-listen=%s", ok[i]);
            const char *args[] = { "--config=/dev/null", opt, NULL };
            T_CHECK(parse(&c, args) == 0, "%s: %s", opt, err);
            T_CHECK(i == 4 ? c.metrics_listen == NULL
                           : c.metrics_listen && !strcmp(c.metrics_listen, ok[i]), "%s", opt);
            xbd_config_free(&c);
        }
    }

    /* sim defaults: no hotplug gate; vbd3 alone; control none. */
    {
        const char *args[] = { "--config=/dev/null", "--xen=sim:/dev/shm/x", "--backend-types=vbd3",
                               "--control=none", "--max-indirect-segments=0", NULL };
        T_ASSERT(parse(&c, args) == 0, "%s", err);
        T_CHECK(!xbd_config_wait_hotplug(&c), "check");
        T_EQ(xbd_config_sim_domid(&c), -1);
        T_CHECK(!c.type_vbd && c.type_vbd3, "check");
        T_CHECK(c.control_path && !c.control_path[0], "control=none");
        T_EQ(c.max_indirect_segs, 0);
        xbd_config_free(&c);
    }

    /* Bad values are refused, each with a message naming the option. */
    refuse("--max-ring-page-order=6", "max-ring-page-order");
    refuse("--max-ring-page-order=-1", "max-ring-page-order");
    refuse("--max-ring-page-order=2x", "max-ring-page-order");
    refuse("--max-queues=17", "max-queues");
    refuse("--max-indirect-segments=5", "max-indirect-segments");
    refuse("--max-indirect-segments=1025", "max-indirect-segments");
    refuse("--xen=qemu", "xen");
    refuse("--xen=sim:", "xen");
    refuse("--xen=sim:/d,domid=x", "xen");
    refuse("--log=file:relative.log", "log");
    refuse("--log=journald", "log");
    refuse("--log-level=chatty", "log-level");
    refuse("--control=relative.sock", "control");
    refuse("--backend-types=vbd,qdisk", "backend-types");
    refuse("--backend-types=", "backend-types");
    refuse("--domid=-1", "domid");
    refuse("--domid=40000", "domid");
    refuse("--wait-hotplug=maybe", "wait-hotplug");
    refuse("--allow-test-engines=sometimes", "allow-test-engines");
    refuse("--grant-mode=steal", "grant-mode");
    refuse("--persistent=2", "persistent");
    refuse("--persistent-cap=65537", "persistent-cap");
    refuse("--stop-timeout=20000", "stop-timeout");
    refuse("--stop-timeout=", "stop-timeout");
    refuse("--resize-check=50", "resize-check");
    refuse("--resize-check=soon", "resize-check");
    refuse("--on-exit=explode", "on-exit");
    refuse("--metrics-listen=", "metrics-listen");
    refuse("--metrics-listen=65536", "metrics-listen");
    refuse("--metrics-listen=127.0.0.1:http", "metrics-listen");
    refuse("--metrics-listen=::1:9477", "brackets");
    refuse("--metrics-listen=[::1:9477", "metrics-listen");
    refuse("--no-such-option", "unknown option");
    refuse("stray-argument", "unexpected argument");

    /* Config file: values, sections, CLI overrides the file, bad lines named. */
    {
        char path[600], arg[620];
        snprintf(path, sizeof(path), "%s/a.conf", dir);
        write_file(path,
                   "# comment\n"
                   "max-queues = 2\n"
                   "[xen-blkbackd]\n"
                   "grant-mode = persistent ; inline comment\n"
                   "feature-barrier = yes\n"
                   "backend-types = vbd3\n"
                   "wait-hotplug = no\n"
                   "log-level = warning\n");
        snprintf(arg, sizeof(arg), "--config=%s", path);
        const char *args[] = { arg, "--max-queues=5", NULL };
        int rc = parse(&c, args);
        T_ASSERT(rc == 0, "rc %d: %s", rc, err);
        T_EQ(c.max_queues, 5);              /* command line wins */
        T_EQ(c.grant_mode, GRANT_MODE_PERSISTENT);
        T_EQ(c.feature_barrier, 1);
        T_CHECK(!c.type_vbd && c.type_vbd3, "check");
        T_EQ(c.wait_hotplug, 0);
        T_EQ(c.log_level, LOG_WARNING);
        T_CHECK(c.config_path && !strcmp(c.config_path, path), "check");
        xbd_config_free(&c);

        const char *args2[] = { "-c", path, NULL };
        T_ASSERT(parse(&c, args2) == 0, "-c PATH: %s", err);
        T_EQ(c.max_queues, 2);
        xbd_config_free(&c);

        /* files refused with -EINVAL, the message naming what (and where) */
        static const struct { const char *text, *what, *where; } bad[] = {
            { "max-queues = 2\nmax-ring-page-order = 9\n", "max-ring-page-order", ":2:" },
            { "frobnicate = 1\n", "frobnicate", NULL },                /* unknown key */
            { "[other]\nmax-queues = 2\n", "other", NULL },           /* unknown section */
            { "foreground = no\n", "foreground", NULL },
            { "config = /etc/other.conf\n", NULL, NULL },              /* config key in a config file */
            { "this line has no equals sign\n", ":1:", NULL },          /* syntax error */
        };
        for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
            write_file(path, bad[i].text);
            rc = parse(&c, args);
            T_CHECK(rc == -EINVAL && (!bad[i].what || strstr(err, bad[i].what)) &&
                    (!bad[i].where || strstr(err, bad[i].where)),
                    "file '%s': rc %d %s", bad[i].text, rc, err);
            xbd_config_free(&c);
        }
    }

    /* A missing -c file is an error; a missing default file is not. */
    {
        const char *args[] = { "-c", "/nonexistent/dir/xbd.conf", NULL };
        int rc = parse(&c, args);
        T_CHECK(rc == -ENOENT, "missing -c file: rc %d", rc);
        T_CHECK(strstr(err, "/nonexistent/dir/xbd.conf"), "message: %s", err);
        xbd_config_free(&c);
        xbd_config_init(&c);
        T_EQ(xbd_config_load_file(&c, "/nonexistent/dir/xbd.conf", false, err, sizeof(err)), 0);
        xbd_config_free(&c);
        if (access(XBD_DEFAULT_CONFIG, F_OK) != 0) {
            const char *none[] = { NULL };
            T_EQ(parse(&c, none), 0);
            xbd_config_free(&c);
        }
    }

    /* --user: auto (the default) is xen-blkbackd only against real Xen, as root, and
     * when that user exists; otherwise root, with a notice where the user is missing. */
    {
        const char *a[] = { "--config=/dev/null", NULL };
        T_ASSERT(parse(&c, a) == 0, "%s", err);
        T_CHECK(c.user && !strcmp(c.user, "auto"), "default user %s", c.user ? c.user : "none");
        const char *why = "x", *u = xbd_config_user(&c, &why);
        bool have = getpwnam(XBD_USER) != NULL;
        if (geteuid() == 0) {
            T_CHECK(have ? u && !strcmp(u, XBD_USER) && !why : !u && why && strstr(why, "no user"),
                    "auto, libxen, user %s: got %s, notice %s", have ? "present" : "absent",
                    u ? u : "none", why ? why : "none");
        }
        xbd_config_free(&c);
        const char *sim[] = { "--config=/dev/null", "--xen=sim:/nonexistent", NULL };
        T_ASSERT(parse(&c, sim) == 0, "%s", err);
        u = xbd_config_user(&c, &why);
        T_CHECK(!u && !why, "auto under the simulated host: %s, notice %s", u ? u : "none",
                why ? why : "none");
        xbd_config_free(&c);
        const char *none[] = { "--config=/dev/null", "--user=none", NULL };
        T_ASSERT(parse(&c, none) == 0, "%s", err);
        T_CHECK(!xbd_config_user(&c, &why) && !why, "--user=none");
        xbd_config_free(&c);
        const char *num[] = { "--config=/dev/null", "--xen=sim:/nonexistent", "--user=65534", NULL };
        T_ASSERT(parse(&c, num) == 0, "%s", err);
        u = xbd_config_user(&c, &why);
        T_CHECK(u && !strcmp(u, "65534"), "--user=65534 under the sim: %s", u ? u : "none");
        xbd_config_free(&c);
        refuse("--user=0", "user: a user name or a uid other than 0");
    }

    /* --help and --version are answered (1 = printed, exit 0). */
    {
        const char *h[] = { "--config=/dev/null", "--help", NULL };
        T_EQ(parse(&c, h), 1);
        xbd_config_free(&c);
        const char *v[] = { "--config=/dev/null", "-V", NULL };
        T_EQ(parse(&c, v), 1);
        xbd_config_free(&c);
    }

    check_shipped_conf(dir);
    check_manpages();
    check_table();
    check_binary();
    return t_done();
}
