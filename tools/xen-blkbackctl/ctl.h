/*
 * ctl.h - shared pieces of xen-blkbackctl: the control socket request
 * (main.c) and the live views `top` and `stats --interval` (top.c).
 */
#ifndef XBD_CTL_H
#define XBD_CTL_H

#include <json-c/json.h>
#include <stdbool.h>

/* Send one request line to the daemon at `sock`; the parsed JSON reply, or
 * NULL (message printed).  A reply with "ok":false is returned as is. */
json_object *ctl_call(const char *sock, const char *req);
json_object *ctl_get(json_object *o, const char *k);
long long ctl_geti(json_object *o, const char *k);
const char *ctl_gets(json_object *o, const char *k);

/* The counters of the `stats` table (blkback's names). */
#define CTL_N_MAIN_COUNTERS 8
extern const char *const ctl_main_counters[CTL_N_MAIN_COUNTERS];

/* Live views.  argc/argv: the command's own arguments (argv[0] = "top" or
 * "stats").  Exit status: 0, 1 (daemon unreachable / error reply), 2 usage. */
int ctl_top(const char *sock, int argc, char **argv);
int ctl_stats_interval(const char *sock, double interval, long count, const char *dev_domid,
                       const char *dev_devid);

#endif
