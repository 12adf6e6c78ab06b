/* t_citations: every citation in the source tree resolves (tests/check-citations.sh: a section of docs/protocol.md that exists, with its name; no path outside the tree; no Linux bb/bf line shorthand; public sources with a ref), and the checker reports each kind of bad citation planted in a scratch tree while passing the good ones beside them. */
#include "harness.h"
#include "lib/e2e.h"

#include <stdio.h>
#include <unistd.h>

/*
 * Planted citations, one bad kind per line, each with the text the checker must
 * print for it.  The strings are split ("/wo" "rk/", "\302\247" for the section
 * sign) so that this file itself does not hold what it plants.
 */
static const struct { const char *line, *report; } bad[] = {
    { "/* docs/protocol.md \302\247" "99 */",                  "no such section in docs/protocol.md" },
    { "/* docs/protocol.md \302\247" "4.6 (ring-loop) */",     "that section is named 'hostile'" },
    { "/* see proto" "col.md \302\247" "2 */",                 "cite docs/protocol.md" },
    { "/* docs/storage-" "gone.md */",                         "storage-gone.md: not in the tree" },
    { "/* from /wo" "rk/sha" "red/docs/notes.md */",               "points outside the tree" },
    { "/* see ../sha" "red/xen-in-qemu.md */",                  "points outside the tree" },
    { "/* Linux b" "b/blkback.c */",                           "Linux shorthand" },
    { "/* blkfront b" "f:2257 */",                             "Linux shorthand" },
    { "/* torvalds/linux:" "drivers/block/xen-blkfront.c */",  "public citation without @<tag or commit>" },
    { "/* ring.h" ":232 */",                                   "file:line citation" },
};

/* Lines the checker must accept (no report for src/good.c). */
static const char *const good[] = {
    "/* docs/protocol.md \302\247" "4.6 (hostile), \302\247" "1.2, \302\247" "5.1 */",
    "/* torvalds/linux:drivers/block/xen-blkback/blkback.c@v6.1 __do_block_io_op */",
    "/* NBD's doc/proto.md, docs/storage-notes.md */",
};

static void put_lines(const char *path, const char *const *lines, size_t n)
{
    FILE *f = fopen(path, "w");
    T_ASSERT(f, "%s: %s", path, strerror(errno));
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\n", lines[i]);
    T_ASSERT(fclose(f) == 0, "%s", path);
}

int main(void)
{
    const char *src = t_srcdir("tests/check-citations.sh");
    char *out = NULL;

    /* The tree as it is: every citation resolves. */
    int rc = e2e_sh(&out, "'%s/tests/check-citations.sh' '%s' 2>&1", src, src);
    T_LOG("source tree: exit %d: %s", rc, out ? out : "");
    T_EQ(rc, 0);
    free(out);

    /* A scratch tree with the real docs/protocol.md and storage notes, one file of
     * planted bad citations and one of good ones. */
    const char *d = t_tmpdir(0);
    rc = e2e_sh(NULL, "mkdir -p '%s/docs' '%s/src' && cp '%s/docs/protocol.md' '%s/docs/storage-notes.md' '%s/docs/'",
                d, d, src, src, d);
    T_ASSERT(rc == 0, "scratch tree");
    const char *lines[sizeof(bad) / sizeof(bad[0])];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        lines[i] = bad[i].line;
    char p[700];
    snprintf(p, sizeof(p), "%s/src/bad.c", d);
    put_lines(p, lines, sizeof(bad) / sizeof(bad[0]));
    snprintf(p, sizeof(p), "%s/src/good.c", d);
    put_lines(p, good, sizeof(good) / sizeof(good[0]));

    rc = e2e_sh(&out, "'%s/tests/check-citations.sh' '%s' 2>&1", src, d);
    T_LOG("planted tree: exit %d:\n%s", rc, out ? out : "");
    T_EQ(rc, 1);
    T_ASSERT(out, "no output");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char want[64];
        snprintf(want, sizeof(want), "src/bad.c:%zu:", i + 1);
        const char *at = strstr(out, want);
        int found = 0;
        for (; at && !found; at = strstr(at + 1, want)) {
            const char *eol = strchr(at, '\n');
            size_t len = eol ? (size_t)(eol - at) : strlen(at);
            char one[512];
            snprintf(one, sizeof(one), "%.*s", (int)(len < sizeof(one) ? len : sizeof(one) - 1), at);
            found = strstr(one, bad[i].report) != NULL;
        }
        T_CHECK(found, "line %zu (%s): no report containing \"%s\"", i + 1, bad[i].line, bad[i].report);
    }
    T_CHECK(!strstr(out, "src/good.c"), "a good citation was reported");
    free(out);

    /* Without docs/protocol.md there is nothing to check against: exit 2. */
    rc = e2e_sh(NULL, "rm '%s/docs/protocol.md' && '%s/tests/check-citations.sh' '%s' >/dev/null 2>&1", d, src, d);
    T_EQ(rc, 2);
    return t_done();
}
