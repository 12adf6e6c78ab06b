/* t_e2e_debug: the daemon's debug categories: --debug=engine at log level info prints the engine's "[engine]" line of each device with its "vbd D/51712: " prefix and no ring lines; `xen-blkbackctl debug ring` switches them at run time (a guest's I/O then logs "[ring]" lines, each with the device and queue prefix), `debug` reads them back, an unknown category is refused and changes nothing, `debug none` turns them off. */
#include "harness.h"
#include "lib/e2e.h"
#include "lib/hostile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* xen-blkbackctl debug [cats]: exit status, output in *out. */
static int ctl_debug(struct e2e *e, const char *cats, char **out)
{
    return e2e_sh(out, "%s -s %s debug %s 2>&1", t_prog("xen-blkbackctl"), e->d.sock,
                  cats ? cats : "");
}

/* A short verified run as domid on a fresh image. */
static void io(struct e2e *e, unsigned domid)
{
    char name[32];
    snprintf(name, sizeof(name), "d%u.img", domid);
    const char *img = e2e_make_image(e, name, 4);
    const char *args[] = { "--rw", "randrw", "--size", "256k", "--verify", NULL };
    char *out = NULL;
    T_CHECK(e2e_bench(e, domid, img, args, &out) == 0, "xen-blkbench as domid %u failed:\n%s",
            domid, out ? out : "");
    free(out);
}

/* Every line of the daemon log with "[cat] " starts, after the level,
 * with "vbd <domid>/51712" and a ": " or " queue N: " prefix. */
static long tagged_lines(const struct e2e *e, const char *tag, unsigned domid, long *unprefixed)
{
    FILE *f = fopen(e->d.log, "r");
    T_ASSERT(f, "%s", e->d.log);
    char *line = NULL, want[64];
    size_t cap = 0;
    long n = 0;
    *unprefixed = 0;
    snprintf(want, sizeof(want), "[debug]: vbd %u/51712", domid);
    while (getline(&line, &cap, f) > 0) {
        char *t = strstr(line, tag);
        if (!t)
            continue;
        char *p = strstr(line, want);
        if (!p)
            continue;           /* another device's */
        p += strlen(want);
        unsigned q;
        int k = 0;
        bool ok = (p[0] == ':' && p[1] == ' ' && p + 2 == t) ||
                  (sscanf(p, " queue %u: %n", &q, &k) == 1 && k > 0 && p + k == t);
        n++;
        *unprefixed += !ok;
    }
    free(line);
    fclose(f);
    return n;
}

int main(void)
{
    struct e2e e;
    const char *const dargs[] = { "--log-level=info", "--debug=engine", NULL };
    e2e_start(&e, dargs);
    char *out = NULL;

    T_EQ(ctl_debug(&e, NULL, &out), 0);
    T_CHECK(out && strstr(out, "debug categories: engine\n"), "debug: %s", out ? out : "");
    free(out);

    io(&e, 1);
    long bad;
    T_CHECK(tagged_lines(&e, "[engine] opened '", 1, &bad) == 1 && bad == 0,
            "one prefixed [engine] open line of vbd 1/51712 (%ld unprefixed)", bad);
    T_EQ(tagged_lines(&e, "[ring] ", 1, &bad), 0);
    T_EQ(hx_log_count(&e.d, "[debug]: watch ", NULL), 0);   /* xenstore is off */

    T_EQ(ctl_debug(&e, "ring", &out), 0);
    T_CHECK(out && strstr(out, "debug categories: ring (were engine)"), "set: %s", out ? out : "");
    free(out);
    T_EQ(hx_log_count(&e.d, "control: debug categories ring (were engine)", NULL), 1);

    /* bad input: one clear message, nothing changed */
    T_EQ(ctl_debug(&e, "ring,bogus", &out), 1);
    T_CHECK(out && strstr(out, "unknown category 'bogus'"), "refusal: %s", out ? out : "");
    free(out);
    T_EQ(ctl_debug(&e, NULL, &out), 0);
    T_CHECK(out && strstr(out, "debug categories: ring\n"), "after refusal: %s", out ? out : "");
    free(out);

    io(&e, 2);
    long ring = tagged_lines(&e, "[ring] ", 2, &bad);
    T_CHECK(ring >= 2 && bad == 0, "vbd 2/51712: %ld [ring] lines, %ld without the prefix", ring,
            bad);
    T_CHECK(hx_log_count(&e.d, "vbd 2/51712 queue 0: [ring] READ id ", NULL) > 0,
            "no '[ring] READ' line of vbd 2/51712 queue 0");
    T_EQ(tagged_lines(&e, "[engine] ", 2, &bad), 0);         /* engine now off */

    T_EQ(ctl_debug(&e, "none", &out), 0);
    free(out);
    io(&e, 3);
    T_EQ(tagged_lines(&e, "[ring] ", 3, &bad), 0);
    T_EQ(e2e_stop(&e), 0);
    return t_done();
}
