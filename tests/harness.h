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

/* Non-fatal check: records a failure and goes on. */
#define T_CHECK(cond, ...) do { if (!(cond)) { t_failures++; \
    fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, " " __VA_ARGS__); fputc('\n', stderr); } } while (0)

/* Fatal check: fails the test now. */
#define T_ASSERT(cond, ...) do { if (!(cond)) { \
    fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, " " __VA_ARGS__); fputc('\n', stderr); t_exit(1); } } while (0)

#define T_EQ(a, b) T_CHECK((long long)(a) == (long long)(b), "%s = %lld, expected %lld", #a, (long long)(a), (long long)(b))

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
