/* End to end faults: read-only vbd refuses writes and stays unchanged; an injected EIO is answered ERROR while another device keeps being served. */
#include "harness.h"
#include "lib/e2e.h"

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
    struct e2e e;
    const char *dargs[] = { "--allow-test-engines", NULL };
    e2e_start(&e, dargs);

    /* 1. read-only: reads work, WRITE/FLUSH/DISCARD answered ERROR, file unchanged */
    const char *ro = e2e_make_image(&e, "ro.img", 16);
    char sha0[65], sha1[65];
    T_ASSERT(e2e_sha256_file(ro, sha0) == 0);
    {
        const char *args[] = { "--mode", "r", "--rw", "randrw", "--bs-range", "512-44k",
            "--iodepth", "8", "--size", "4m", "--flush", "--force", "--discard", "0:1048576",
            "--expect-readonly", NULL };
        char *out = NULL;
        int rc = e2e_bench(&e, 1, ro, args, &out);
        T_CHECK(rc == 0, "read-only run: exit %d", rc);
        T_CHECK(out && e2e_field(out, "device", "info") == 4, "info should have VDISK_READONLY (4)");
        free(out);
    }
    T_ASSERT(e2e_sha256_file(ro, sha1) == 0);
    T_CHECK(!strcmp(sha0, sha1), "read-only image changed");

    /* 2. EIO injected on bytes [8 MiB, 9 MiB) of device A; device B serves meanwhile */
    const char *a = e2e_make_image(&e, "a.img", 16);
    const char *b = e2e_make_image(&e, "b.img", 16);
    char params[512];
    snprintf(params, sizeof(params), "error:%u-%u,rw:%s", 8u << 20, 9u << 20, a);

    pid_t child = fork();
    T_ASSERT(child >= 0);
    if (child == 0) {
        const char *args[] = { "--rw", "randrw", "--bs-range", "512-44k", "--iodepth", "16",
            "--runtime", "3", "--verify", NULL };
        _exit(e2e_bench(&e, 3, b, args, NULL) == 0 ? 0 : 1);
    }
    {
        const char *args[] = { "--rw", "randrw", "--bs", "4k", "--iodepth", "8",
            "--offset", "8388608", "--length", "1048576", "--size", "2m",
            "--expect-error=error", NULL };
        char *out = NULL;
        int rc = e2e_bench(&e, 2, params, args, &out);
        T_CHECK(rc == 0, "EIO run: exit %d", rc);
        T_CHECK(out && e2e_field(out, "status", "error") > 0, "no ERROR responses");
        T_EQ(out ? e2e_field(out, "status", "okay") : -1, 0);
        free(out);
    }
    {   /* the same device outside the bad range still works */
        const char *args[] = { "--rw", "randrw", "--bs-range", "512-44k", "--iodepth", "8",
            "--offset", "0", "--length", "8388608", "--size", "4m", "--verify", NULL };
        T_CHECK(e2e_bench(&e, 2, params, args, NULL) == 0, "device A outside the EIO range");
    }
    int st;
    T_ASSERT(waitpid(child, &st, 0) == child);
    T_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "device B failed while A had EIO");
    T_CHECK(t_daemon_alive(&e.d), "daemon died");

    /* 3. filter engines are refused unless --allow-test-engines: a fresh daemon */
    T_EQ(e2e_stop(&e), 0);
    struct e2e e2;
    e2e_start(&e2, NULL);
    {
        const char *args[] = { "--timeout", "5", NULL };
        char *out = NULL;
        int rc = e2e_bench(&e2, 4, params, args, &out);
        T_CHECK(rc != 0, "filter engine accepted without --allow-test-engines");
        free(out);
    }
    T_CHECK(t_daemon_alive(&e2.d), "daemon died");
    T_EQ(e2e_stop(&e2), 0);
    return t_done();
}
