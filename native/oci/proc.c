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
    return seccomp_mode(st->pid) == 2 ? ST_RUNNING : ST_CREATED;
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
