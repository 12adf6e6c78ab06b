/* t_harness: the check macros of tests/harness.h evaluate each argument exactly once, and a failing T_EQ prints the value it compared (not a second reading of a changing value), in a FAIL line naming file, line and both expressions. */
#include "harness.h"

#include <fcntl.h>
#include <unistd.h>

static int calls, first_line;    /* first_line: of the first failing check */

/* A changing value: 1, 2, 3, ... one more per call. */
static long long next_value(void)
{
    return ++calls;
}

/* Run the failing checks with stderr sent to `path`; returns the failures they recorded. */
static int failing_checks(const char *path)
{
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    T_ASSERT(saved >= 0 && fd >= 0, "%s: %s", path, strerror(errno));
    T_ASSERT(dup2(fd, 2) == 2);
    close(fd);
    int before = t_failures;
    calls = 0;
    first_line = __LINE__ + 1;
    T_EQ(next_value(), 7);                      /* compares 1, must print 1 */
    T_EQ(5, next_value());                      /* compares 2 */
    T_CHECK(next_value() == 0, "calls %d", calls);     /* compares 3 */
    int recorded = t_failures - before;
    t_failures = before;
    fflush(stderr);
    T_ASSERT(dup2(saved, 2) == 2);
    close(saved);
    return recorded;
}

int main(void)
{
    /* passing checks: one call each */
    calls = 0;
    T_EQ(next_value(), 1);
    T_EQ(calls, 1);
    T_EQ(2, next_value());
    T_EQ(calls, 2);
    T_CHECK(next_value() == 3, "third value");
    T_ASSERT(next_value() == 4, "fourth value");
    T_EQ(calls, 4);

    char path[600];
    snprintf(path, sizeof(path), "%s/failing.log", t_tmpdir(0));
    int recorded = failing_checks(path);
    T_EQ(recorded, 3);
    T_EQ(calls, 3);

    char out[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    T_ASSERT(fd >= 0, "%s: %s", path, strerror(errno));
    ssize_t n = read(fd, out, sizeof(out) - 1);
    close(fd);
    T_ASSERT(n > 0, "%s: empty", path);
    out[n] = 0;
    T_LOG("the failing checks printed:\n%s", out);
    char where[64];
    snprintf(where, sizeof(where), "t_harness.c:%d: next_value() == 7:  ", first_line);
    T_CHECK(strstr(out, where) != NULL, "no '%s' in the FAIL lines", where);
    T_CHECK(strstr(out, "next_value() == 7:  next_value() = 1, expected 7\n") != NULL,
            "T_EQ did not print the value it compared (1)");
    T_CHECK(strstr(out, "5 == next_value():  5 = 5, expected 2\n") != NULL,
            "T_EQ did not print the second value it compared (2)");
    T_CHECK(strstr(out, "next_value() == 0:  calls 3\n") != NULL, "T_CHECK message");
    return t_done();
}
