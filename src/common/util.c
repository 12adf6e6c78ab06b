/* util.c - the shared integer parser and name tables (util.h). */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void xbd_seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int xbd_parse_u64(const char *s, int base, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, base);
    if (errno || *end || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

const char *xenbus_state_name(int s)
{
    static const char *const n[] = {
        "Unknown", "Initialising", "InitWait", "Initialised", "Connected",
        "Closing", "Closed", "Reconfiguring", "Reconfigured",
    };
    if (s < 0)
        return "missing";
    return s < (int)ARRAY_SIZE(n) ? n[s] : "invalid";
}
