/*
 * sim_owner.c - owner slots of the simulated host (host.ctl) and reclaiming
 * what a dead process held, as the kernel does when a process exits on a
 * real host: its /dev/xen/evtchn handles are released
 * (torvalds/linux:drivers/xen/evtchn.c@v6.1 evtchn_release ->
 * evtchn_unbind_from_user -> EVTCHNOP_close, whose
 * xen-project/xen:xen/common/event_channel.c@RELEASE-4.17.7 evtchn_close puts the
 * remote end of an interdomain channel back to ECS_UNBOUND), and its gntdev
 * mappings are unmapped at mm teardown (torvalds/linux:drivers/xen/gntdev.c@v6.1
 * gntdev_release / unmap_grant_pages: the grant's map counts drop, so the
 * guest's gnttab_end_foreign_access succeeds again).  Model and limits:
 * sim_priv.h.
 *
 * Every event-channel and grant handle owns one slot {pid, start time}; a
 * slot is dead when /proc/<pid>/stat is gone, names a zombie, or shows
 * another start time (pid reuse).  Reclaiming runs under the host lock, so
 * one process reclaims a slot and the slot is freed only afterwards.
 */
#include "sim_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Start time (field 22) and state (field 3) of /proc/<pid>/stat.
 * 0, -ENOENT (no such process), or another -errno / -EPROTO. */
static int proc_stat(pid_t pid, uint64_t *start, char *state)
{
    char path[48], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ESRCH ? -ENOENT : -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int err = errno;
    close(fd);
    if (n < 0)
        return err == ESRCH ? -ENOENT : -err;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');        /* comm may hold spaces and ')' */
    if (!p || p[1] != ' ')
        return -EPROTO;
    p += 2;
    *state = *p;
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -EPROTO;
        p++;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno || end == p)
        return -EPROTO;
    *start = v;
    return 0;
}

/* Is the owner of slot o gone?  Unknown (no /proc) counts as alive. */
static bool owner_dead(const struct sim_owner *o, pid_t self, uint64_t self_start)
{
    pid_t pid = (pid_t)o->pid;
    if (pid == self)
        return o->start != self_start;  /* an older process that had our pid */
    uint64_t start = 0;
    char state = '?';
    int rc = proc_stat(pid, &start, &state);
    if (rc == -ENOENT)
        return true;
    if (rc < 0)
        return false;
    /* A zombie has released its files and mm already (do_exit). */
    return state == 'Z' || state == 'X' || (o->start && start != o->start);
}

static uint64_t self_start(void)
{
    uint64_t start = 0;
    char state;
    if (proc_stat(getpid(), &start, &state) < 0)
        start = 0;
    return start;
}

static void reclaim_locked(struct sim_host *h, uint32_t slot)
{
    struct sim_owner *o = &h->ctl->owners[slot];
    if (o->kind == SIM_OWN_EVTCHN)
        sim_evt_reclaim_locked(h, slot, o->handle_id);
    else if (o->kind == SIM_OWN_GNTTAB)
        sim_gnt_reclaim_locked(h, slot);
    sim_owner_release_locked(h, slot);
}

int sim_reclaim_dead_locked(struct sim_host *h)
{
    pid_t self = getpid();
    uint64_t start = self_start();
    int n = 0;
    for (uint32_t s = 1; s < SIM_MAX_OWNERS; s++) {
        struct sim_owner *o = &h->ctl->owners[s];
        if (SIM_LOAD(&o->state) != SIM_OWN_LIVE || !owner_dead(o, self, start))
            continue;
        reclaim_locked(h, s);
        n++;
    }
    return n;
}

int sim_reclaim_dead(struct sim_host *h)
{
    if (sim_host_lock(h) < 0)
        return 0;
    int n = sim_reclaim_dead_locked(h);
    sim_host_unlock(h);
    return n;
}

bool sim_reclaim_slot(struct sim_host *h, uint32_t slot)
{
    if (slot == 0 || slot >= SIM_MAX_OWNERS || sim_host_lock(h) < 0)
        return false;
    struct sim_owner *o = &h->ctl->owners[slot];
    bool dead = SIM_LOAD(&o->state) == SIM_OWN_LIVE && owner_dead(o, getpid(), self_start());
    if (dead)
        reclaim_locked(h, slot);
    sim_host_unlock(h);
    return dead;
}

int sim_owner_claim_locked(struct sim_host *h, uint32_t kind, uint32_t handle_id, uint32_t *slot)
{
    sim_reclaim_dead_locked(h);
    for (uint32_t s = 1; s < SIM_MAX_OWNERS; s++) {
        struct sim_owner *o = &h->ctl->owners[s];
        if (SIM_LOAD(&o->state) != SIM_OWN_FREE)
            continue;
        o->kind = kind;
        o->pid = (uint32_t)getpid();
        o->handle_id = handle_id;
        o->start = self_start();
        SIM_STORE(&o->state, SIM_OWN_LIVE);
        *slot = s;
        return 0;
    }
    return -ENOSPC;
}

void sim_owner_release_locked(struct sim_host *h, uint32_t slot)
{
    if (slot == 0 || slot >= SIM_MAX_OWNERS)
        return;
    SIM_STORE(&h->ctl->owners[slot].state, SIM_OWN_FREE);
}
