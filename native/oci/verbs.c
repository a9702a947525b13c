/*
 * The lifecycle commands of a unikernel container after create: start,
 * state, kill, pause/resume, ps, delete. Messages follow runc's where the
 * shim reads them: a kill of an exited container must say "container not
 * running" (the shim then treats the container as already finished), a
 * missing one "does not exist".
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "oci.h"

static const struct { const char *name; int num; } SIGNALS[] = {
    { "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "ILL", SIGILL }, { "TRAP", SIGTRAP },
    { "ABRT", SIGABRT }, { "IOT", SIGIOT }, { "BUS", SIGBUS }, { "FPE", SIGFPE }, { "KILL", SIGKILL },
    { "USR1", SIGUSR1 }, { "SEGV", SIGSEGV }, { "USR2", SIGUSR2 }, { "PIPE", SIGPIPE }, { "ALRM", SIGALRM },
    { "TERM", SIGTERM }, { "STKFLT", SIGSTKFLT }, { "CHLD", SIGCHLD }, { "CONT", SIGCONT }, { "STOP", SIGSTOP },
    { "TSTP", SIGTSTP }, { "TTIN", SIGTTIN }, { "TTOU", SIGTTOU }, { "URG", SIGURG }, { "XCPU", SIGXCPU },
    { "XFSZ", SIGXFSZ }, { "VTALRM", SIGVTALRM }, { "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO },
    { "POLL", SIGPOLL }, { "PWR", SIGPWR }, { "SYS", SIGSYS },
};

/* SIGKILL, KILL, kill or 9; SIGTERM if absent. */
int parse_signal(const char *word)
{
    if (!word)
        return SIGTERM;
    if (*word >= '0' && *word <= '9') {
        char *end;
        long n = strtol(word, &end, 10);
        if (*end == '\0' && n >= 1 && n <= 64)
            return (int)n;
    } else {
        const char *name = strncasecmp(word, "SIG", 3) == 0 ? word + 3 : word;
        for (size_t i = 0; i < sizeof SIGNALS / sizeof SIGNALS[0]; i++) {
            if (strcasecmp(name, SIGNALS[i].name) == 0)
                return SIGNALS[i].num;
        }
    }
    fail("unknown signal '%s'; use a name (SIGTERM, KILL) or a number (1-64)", word);
}

/* Only a process that is still the container's is ever signalled. */
static void send(const char *id, const struct state *st, int sig)
{
    if (!still_ours(st) || kill(st->pid, sig) != 0)
        fail("cannot signal container %s: container not running", id);
}

int verb_start(const struct globals *g, const char *id, struct state *st)
{
    enum status s = status_of(st);
    if (s != ST_CREATED)
        fail("cannot start container %s: it is %s, not created", id, status_name(s));
    char fifo[4200];
    snprintf(fifo, sizeof fifo, "%s/%s/%s", g->root, id, START_FIFO);
    /* The stub holds the FIFO open for reading (O_RDWR), so this cannot block. */
    int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        fail("cannot start container %s: the guest is no longer waiting (%s)", id, strerror(errno));
    if (write(fd, "S", 1) != 1)
        fail("cannot start container %s: writing to %s: %s", id, fifo, strerror(errno));
    close(fd);
    /* Return once the guest runs under its filter (or has already ended), as runc returns after exec. */
    struct timespec step = { 0, 100000 };
    for (int i = 0; i < 50000 && still_ours(st) && seccomp_mode(st->pid) != 2; i++)
        nanosleep(&step, NULL);
    return 0;
}

/* The runtime spec's state, plus runc's rootfs, created and owner. */
int verb_state(const char *id, struct state *st)
{
    enum status s = status_of(st);
    printf("{\n  \"ociVersion\": ");
    json_fput_string(stdout, OCI_VERSION);
    printf(",\n  \"id\": ");
    json_fput_string(stdout, id);
    printf(",\n  \"pid\": %d,\n  \"status\": ", s == ST_STOPPED ? 0 : (int)st->pid);
    json_fput_string(stdout, status_name(s));
    printf(",\n  \"bundle\": ");
    json_fput_string(stdout, st->bundle);
    printf(",\n  \"rootfs\": ");
    json_fput_string(stdout, st->rootfs);
    printf(",\n  \"created\": ");
    json_fput_string(stdout, st->created);
    printf(",\n  \"owner\": \"\",\n  \"annotations\": %s\n}\n", st->annotations);
    return 0;
}

int verb_kill(const char *id, struct state *st, const char *sig, bool all)
{
    /* --all: every process of the container; a tendril container has exactly one. */
    (void)all;
    int n = parse_signal(sig);
    send(id, st, n);
    return 0;
}

/* pause is SIGSTOP, resume SIGCONT: there is no freezer cgroup. */
int verb_pause(const char *id, struct state *st, bool resume)
{
    enum status s = status_of(st);
    if (!resume && s != ST_RUNNING)
        fail("cannot pause container %s: it is %s, not running", id, status_name(s));
    if (resume && s != ST_PAUSED)
        fail("cannot resume container %s: it is %s, not paused", id, status_name(s));
    /* A jailed guest's waiter stops itself when the guest has stopped (and passes SIGCONT on), so the guest is stopped, not the waiter. */
    if (!resume && st->guest_pid > 0 && guest_still_ours(st))
        kill(st->guest_pid, SIGSTOP);
    else
        send(id, st, resume ? SIGCONT : SIGSTOP);
    return 0;
}

int verb_ps(const char *id, struct state *st, const char *format)
{
    (void)id;
    bool alive = status_of(st) != ST_STOPPED;
    if (format && strcmp(format, "json") == 0) {
        if (alive)
            printf("[%d]\n", (int)st->pid);
        else
            printf("[]\n");
    } else if (!format || strcmp(format, "table") == 0) {
        printf("PID\n");
        if (alive)
            printf("%d\n", (int)st->pid);
    } else {
        fail("ps: invalid format '%s': use table or json", format);
    }
    return 0;
}

int verb_delete(const struct globals *g, const char *id, struct state *st, bool force)
{
    enum status s = status_of(st);
    if ((s == ST_RUNNING || s == ST_PAUSED) && !force)
        fail("cannot delete container %s that is not stopped: %s; stop it first, or use delete --force", id, status_name(s));
    if (s != ST_STOPPED) {
        /* A created container never ran: deleting it ends the waiting stub, as runc does. */
        if (still_ours(st)) {
            kill(st->pid, SIGKILL);
            if (s == ST_PAUSED)
                kill(st->pid, SIGCONT);
        }
        if (!wait_gone(st, 10000))
            fail("container %s did not stop after SIGKILL", id);
    }
    if (st->cgroups[0])
        remove_cgroups(st);
    if (st->pod_iface[0])
        podnet_restore(st);
    char dir[4096];
    container_dir(dir, sizeof dir, g->root, id);
    remove_tree(dir);
    return 0;
}
