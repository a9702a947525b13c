/*
 * A unikernel container's status, read from its process each time, never
 * stored, so it cannot go stale when the guest exits on its own: alive and
 * waiting in the stub (seccomp off) is created, under its filter (seccomp
 * mode 2) running, stopped by SIGSTOP paused, and gone, a zombie or
 * another process under the recorded pid (its start time in /proc/PID/stat
 * differs from the one recorded at create) stopped. After the guest exits
 * and is reaped its pid may be reused by anything: it is signalled only
 * while it is still the container's.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <unistd.h>

#include "oci.h"

const char *status_name(enum status s)
{
    static const char *names[] = { "created", "running", "paused", "stopped" };
    return names[s];
}

/* State letter (field 3) and start time (field 22) of /proc/PID/stat. */
static bool proc_stat(pid_t pid, char *state, char *start, size_t start_size)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name (field 2) is in parentheses and may hold spaces or ')'. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return false;
    p += 2;
    *state = *p;
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return false;
        p++;
    }
    size_t len = strcspn(p, " ");
    if (len >= start_size)
        return false;
    memcpy(start, p, len);
    start[len] = '\0';
    return true;
}

int seccomp_mode(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    int mode = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "Seccomp:", 8) == 0) {
            sscanf(line + 8, "%d", &mode);
            break;
        }
    }
    fclose(f);
    return mode;
}

bool still_ours(const struct state *st)
{
    char state, start[32];
    if (st->pid <= 0 || !proc_stat(st->pid, &state, start, sizeof start))
        return false;
    return strcmp(start, st->start_time) == 0 && state != 'Z' && state != 'X';
}

enum status status_of(const struct state *st)
{
    char state, start[32];
    if (st->pid <= 0 || !proc_stat(st->pid, &state, start, sizeof start) || strcmp(start, st->start_time) != 0 ||
        state == 'Z' || state == 'X')
        return ST_STOPPED;
    if (state == 'T')
        return ST_PAUSED;
    /* Jailed: the waiter never runs under the filter, its child the guest does (or has ended: it ran). */
    if (st->guest_pid > 0)
        return !guest_still_ours(st) || seccomp_mode(st->guest_pid) == 2 ? ST_RUNNING : ST_CREATED;
    return seccomp_mode(st->pid) == 2 ? ST_RUNNING : ST_CREATED;
}

bool guest_still_ours(const struct state *st)
{
    char state, start[32];
    if (st->guest_pid <= 0 || !proc_stat(st->guest_pid, &state, start, sizeof start))
        return false;
    return strcmp(start, st->guest_start_time) == 0 && state != 'Z' && state != 'X';
}

/*
 * A jailed guest's cgroups. Its waiter removes them when the guest ends; a
 * waiter killed by SIGKILL cannot, and the guest then dies of its parent's
 * death (PR_SET_PDEATHSIG) an instant later, so this waits for the guest
 * (bounded) and removes what is left. A cgroup still holding a process is
 * kept (rmdir refuses it) and named.
 */
void remove_cgroups(const struct state *st)
{
    struct timespec step = { 0, 500000 };
    for (int waited = 0; guest_still_ours(st) && waited < 20000; waited++)
        nanosleep(&step, NULL);
    char list[STATE_VALUE_MAX];
    snprintf(list, sizeof list, "%s", st->cgroups);
    for (char *save = NULL, *dir = strtok_r(list, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        const char *base = strrchr(dir, '/');
        /* Only what create made: an absolute cgroup directory named tendril-…, nothing a damaged record could point elsewhere. */
        if (dir[0] != '/' || strstr(dir, "/../") || !base || strncmp(base, "/tendril-", 9) != 0)
            continue;
        if (rmdir(dir) != 0 && errno != ENOENT)
            fprintf(stderr, "tendril-oci: cannot remove the guest's cgroup %s: %s\n", dir, strerror(errno));
    }
}

/* Until the process is gone or a zombie (the shim reaps it, not us), at most ms. */
bool wait_gone(const struct state *st, int ms)
{
    struct timespec step = { 0, 500000 };
    for (int waited = 0; still_ours(st); waited++) {
        if (waited >= ms * 2)
            return false;
        nanosleep(&step, NULL);
    }
    return true;
}
