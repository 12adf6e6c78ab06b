/*
 * harness.h - the shared test harness.  A test is a small program: exit 0
 * pass, 1 fail, 77 skip (tests/run-tests.sh enforces a per-test timeout and
 * prints the summary).  Start each test file with a one-line comment saying
 * what it proves.
 */
#ifndef XBD_TEST_HARNESS_H
#define XBD_TEST_HARNESS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define T_SKIP 77

extern int t_failures;          /* defined in tests/lib/harness.c */

#define T_LOG(...) do { fprintf(stderr, "# " __VA_ARGS__); fputc('\n', stderr); } while (0)

/* The FAIL line of a failed check: where, what (a string), the message. */
#define T_FAIL_LINE_(what, ...) do { fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, what); \
    fprintf(stderr, " " __VA_ARGS__); fputc('\n', stderr); } while (0)

/* Non-fatal check: records a failure and goes on.  Every check macro
 * evaluates each argument once (the message's only when it fails). */
#define T_CHECK(cond, ...) do { if (!(cond)) { t_failures++; T_FAIL_LINE_(#cond, __VA_ARGS__); } } while (0)

/* Fatal check: fails the test now. */
#define T_ASSERT(cond, ...) do { if (!(cond)) { T_FAIL_LINE_(#cond, __VA_ARGS__); t_exit(1); } } while (0)

/* Integer check: a and b are read once each into long long locals, so a
 * failing check of a changing value (a control request, a counter) prints
 * the value that was compared, not a second reading. */
#define T_EQ(a, b) do { long long t_eq_a_ = (long long)(a), t_eq_b_ = (long long)(b); \
    if (t_eq_a_ != t_eq_b_) { t_failures++; \
        T_FAIL_LINE_(#a " == " #b, "%s = %lld, expected %lld", #a, t_eq_a_, t_eq_b_); } } while (0)

/* Skip the whole test with a reason (printed as the last line). */
#define T_SKIP_IF(cond, ...) do { if (cond) { fprintf(stderr, "skip: " __VA_ARGS__); fputc('\n', stderr); t_exit(T_SKIP); } } while (0)

/* Run the registered cleanups (reverse order), then exit with code. */
void t_exit(int code) __attribute__((noreturn));
/* Register a cleanup run by t_exit and at normal end (t_done). */
void t_atexit(void (*fn)(void *), void *arg);
/* End of main: exit 0 if no T_CHECK failed, else 1. */
int  t_done(void);

/* A fresh private temp dir (under $TMPDIR or /tmp), removed at exit unless
 * XBD_KEEP_TMP is set.  shm=1: under /dev/shm (for simulated hosts). */
const char *t_tmpdir(int shm);
/* Path of a built program: $XBD_BUILD/<name> (XBD_BUILD set by run-tests.sh). */
const char *t_prog(const char *name);
/* The source tree: "." when `probe` (a path relative to the tree's top, e.g.
 * "conf/install-extra.sh") is there, as under make check, else two levels
 * above $XBD_BUILD. */
const char *t_srcdir(const char *probe);

/* Entries of a directory other than . and ..; -1 if it cannot be read. */
int  t_count_dir(const char *path);
/* Count the open fds of a process (from /proc/<pid>/fd). */
int  t_count_fds_pid(int pid);
/* Count mappings in /proc/<pid>/maps whose line contains `needle` (NULL: all). */
int  t_count_maps_pid(int pid, const char *needle);
/* Threads of a process (/proc/<pid>/status Threads:). */
int  t_count_threads_pid(int pid);

#endif
