/*
 * tendril-zygote: keeps launch stubs spawned ahead of demand for `tendril
 * serve`, so that a launch pays no fork or exec, and keeps Node's main
 * thread out of process creation (a Node spawn costs ~1.8 ms of it).
 *
 * Node drives it over a unix stream socket at fd 3 with the frames of
 * loader/formats.ts (ZYGOTE_MSG, struct zygote_frame …): LAUNCH hands a plan
 * and the guest's fds to an idle stub; KILL, PAUSE and RESUME act on a
 * running instance; STARTED, OUTPUT, EXIT and FAILED come back. Mechanism
 * only: which guest, which fds and which plan is decided in TypeScript.
 *
 * It is built to stay up: a bad frame, a launch that cannot start or a stub
 * that dies is reported for that launch alone; only the end of the control
 * socket (Node gone) ends it, and then every instance and idle stub goes
 * with it. Every process it makes dies with its parent (PR_SET_PDEATHSIG,
 * checked against a parent that died first), so no guest outlives the
 * zygote or the server. Signals reach the guest itself, through a pidfd the
 * monitor hands over, never a pid that could be reused.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tendril_formats.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Console bytes queued for Node beyond which no instance's console is read
 * until Node has caught up: the guests then block on their writes. */
#define OUTQ_HIGH (16u << 20)
#define OUTQ_LOW (4u << 20)
#define REPORT_MAX 256

enum tag_kind { T_CONTROL, T_OUT, T_ERR, T_REPORT, T_PROC };

struct tag {
    enum tag_kind kind;
    void *obj;
};

struct stub {
    pid_t pid;
    int pidfd;     /* the stub process: readable when it has exited */
    int plan_fd;   /* our end of the plan socket (stub's fd 3) */
    int report_fd; /* our end of the monitor report socket (stub's fd 4) */
    int out_fd;    /* read end of the console pipe (stub's fd 1) */
    int err_fd;    /* read end of the stub's stderr (its own messages; the guest cannot write fd 2) */
};

struct instance {
    uint32_t id;
    struct stub s;
    int monitor;
    int quiet;   /* ZLAUNCH_F_QUIET_START: no STARTED frame */
    int hold;    /* ZLAUNCH_F_HOLD_OUTPUT: console kept for the EXIT frame */
    char *held;
    size_t held_len;
    struct timespec sent;
    int started;
    pid_t guest_pid;
    int guest_pidfd;
    int pending_signal;
    int out_open, err_open, report_open;
    int err_watched, report_watched;
    int paused;
    char report[REPORT_MAX];
    size_t report_len;
    char err[ZYGOTE_MAX_STUB_ERROR];
    size_t err_len;
    struct tag t_out, t_err, t_report, t_proc;
    struct instance *next;
};

static const char *stub_path;
static char **stub_args;
static int nstub_args;
static pid_t parent_pid;
static pid_t self_pid;
static int pool_size;
static struct stub pool[ZYGOTE_MAX_POOL];
static int idle;
static struct instance *instances;
static int epfd;
static struct tag control_tag = { T_CONTROL, NULL };

/* ------------------------------------------------------------------ output to Node */

static char *outq;
static size_t outq_len, outq_cap, outq_off;
static int outq_throttled;
/* Whether EPOLLOUT is asked for on the control socket (changed only when needed: one epoll_ctl less per frame). */
static int want_out;

static void fatal(const char *what)
{
    fprintf(stderr, "tendril-zygote: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void watch(int fd, struct tag *t, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = t };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        fatal("epoll_ctl");
}

static void rewatch(int fd, struct tag *t, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = t };
    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
}

static void set_console_reading(struct instance *i);

static void throttle(int on)
{
    if (outq_throttled == on)
        return;
    outq_throttled = on;
    for (struct instance *i = instances; i; i = i->next)
        set_console_reading(i);
}

/* Sends what is queued without blocking; the rest waits for EPOLLOUT. */
static void flush_out(void)
{
    while (outq_off < outq_len) {
        ssize_t n = send(ZYGOTE_CONTROL_FD, outq + outq_off, outq_len - outq_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            /* Node is gone: the control socket's EOF ends us in the loop. */
            outq_off = outq_len;
            break;
        }
        outq_off += (size_t)n;
    }
    if (outq_off == outq_len)
        outq_off = outq_len = 0;
    if (want_out != (outq_len != 0)) {
        want_out = outq_len != 0;
        rewatch(ZYGOTE_CONTROL_FD, &control_tag, EPOLLIN | (want_out ? EPOLLOUT : 0));
    }
    if (outq_len - outq_off < OUTQ_LOW)
        throttle(0);
}

static void queue(const void *p, size_t n)
{
    if (outq_off && outq_len + n > outq_cap) {
        memmove(outq, outq + outq_off, outq_len - outq_off);
        outq_len -= outq_off;
        outq_off = 0;
    }
    if (outq_len + n > outq_cap) {
        size_t cap = outq_cap ? outq_cap : 65536;
        while (cap < outq_len + n)
            cap *= 2;
        char *q = realloc(outq, cap);
        if (!q)
            fatal("realloc");
        outq = q;
        outq_cap = cap;
    }
    memcpy(outq + outq_len, p, n);
    outq_len += n;
}

static void send_frame(uint32_t type, uint32_t id, const void *a, size_t alen, const void *b, size_t blen, const void *c, size_t clen)
{
    struct zygote_frame f = { type, id, (uint32_t)(alen + blen + clen), 0 };
    queue(&f, sizeof f);
    if (alen)
        queue(a, alen);
    if (blen)
        queue(b, blen);
    if (clen)
        queue(c, clen);
    /* Sent at the end of the loop turn, so the frames of one turn go in one send. */
    if (outq_len - outq_off > OUTQ_HIGH) {
        flush_out();
        if (outq_len - outq_off > OUTQ_HIGH)
            throttle(1);
    }
}

static void send_failed(uint32_t id, const char *why)
{
    send_frame(ZMSG_FAILED, id, why, strlen(why), NULL, 0, NULL, 0);
}

/* ------------------------------------------------------------------ stubs */

static void close_stub(struct stub *s)
{
    int fds[] = { s->pidfd, s->plan_fd, s->report_fd, s->out_fd, s->err_fd };
    for (unsigned k = 0; k < sizeof fds / sizeof fds[0]; k++)
        if (fds[k] >= 0)
            close(fds[k]);
}

/* What the child of a spawn needs: its ends of the four channels. */
struct spawn_args {
    int plan, report, out, err;
};

static int devnull = -1;

/*
 * The child of a spawn, on its own stack, sharing our memory until it execs
 * (CLONE_VM|CLONE_VFORK: no page tables copied, the cheapest way to start a
 * process). It touches nothing of ours but its own locals, and only makes
 * system calls.
 */
static int stub_child(void *arg)
{
    const struct spawn_args *a = arg;
    /* The stub, and the guest it becomes, die with the zygote. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != self_pid)
        _exit(127);
    /* Move the child ends clear of 0..4 first, then into place. */
    int p = fcntl(a->plan, F_DUPFD, 10), r = fcntl(a->report, F_DUPFD, 10), o = fcntl(a->out, F_DUPFD, 10),
        x = fcntl(a->err, F_DUPFD, 10);
    if (p < 0 || r < 0 || o < 0 || x < 0 || dup2(devnull, 0) < 0 || dup2(o, 1) < 0 ||
        dup2(x, 2) < 0 || dup2(p, ZYGOTE_STUB_PLAN_FD) < 0 || dup2(r, ZYGOTE_STUB_REPORT_FD) < 0)
        _exit(127);
    syscall(SYS_close_range, ZYGOTE_STUB_REPORT_FD + 1, ~0u, 0);
    /* What we ignore is not the guest's to ignore (the stub resets it too; this spares it the work). */
    struct sigaction dfl = { .sa_handler = SIG_DFL };
    sigaction(SIGPIPE, &dfl, NULL);
    /* Extra words for each stub (serve --isolate: the jail it makes while it waits, see native/stub/isolate.c). */
    char *argv[3 + ZYGOTE_MAX_STUB_ARGS] = { "tendril: pool", "3" };
    for (int k = 0; k < nstub_args; k++)
        argv[2 + k] = stub_args[k];
    char *envp[] = { NULL };
    execve(stub_path, argv, envp);
    _exit(127);
}

/* Starts one stub waiting on its plan socket; -errno on failure. */
static int spawn_stub(struct stub *s)
{
    int plan[2] = { -1, -1 }, report[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
    int e = 0;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, plan) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, report) < 0 ||
        pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
        e = -errno;
        goto fail;
    }
    static char stack[65536] __attribute__((aligned(16)));
    struct spawn_args args = { plan[1], report[1], out[1], err[1] };
    int pidfd = -1;
    pid_t pid = clone(stub_child, stack + sizeof stack, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &args, &pidfd);
    if (pid < 0) {
        e = -errno;
        goto fail;
    }
    close(plan[1]);
    close(report[1]);
    close(out[1]);
    close(err[1]);
    /* Our ends are polled together: never block on a quiet one. */
    fcntl(report[0], F_SETFL, O_NONBLOCK);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    fcntl(err[0], F_SETFL, O_NONBLOCK);
    *s = (struct stub){ pid, pidfd, plan[0], report[0], out[0], err[0] };
    return 0;
fail:
    for (int *fd = plan; fd < plan + 2; fd++)
        if (*fd >= 0)
            close(*fd);
    for (int *fd = report; fd < report + 2; fd++)
        if (*fd >= 0)
            close(*fd);
    for (int *fd = out; fd < out + 2; fd++)
        if (*fd >= 0)
            close(*fd);
    for (int *fd = err; fd < err + 2; fd++)
        if (*fd >= 0)
            close(*fd);
    return e;
}

/*
 * Idle stubs are not watched (two epoll_ctl less per launch): one that
 * ended while idle (killed from outside) is found, reaped and replaced when
 * it is taken.
 */
static int idle_alive(struct stub *s)
{
    siginfo_t si = { 0 };
    if (waitid(P_PIDFD, (id_t)s->pidfd, &si, WEXITED | WNOHANG) == 0 && si.si_pid == 0)
        return 1;
    close_stub(s);
    return 0;
}

/* ------------------------------------------------------------------ instances */

static void set_console_reading(struct instance *i)
{
    if (i->out_open)
        rewatch(i->s.out_fd, &i->t_out, (i->paused || outq_throttled) ? 0 : EPOLLIN);
}

static struct instance *find(uint32_t id)
{
    for (struct instance *i = instances; i; i = i->next)
        if (i->id == id)
            return i;
    return NULL;
}

static void send_signal(struct instance *i, int sig)
{
    if (i->guest_pidfd >= 0)
        syscall(SYS_pidfd_send_signal, i->guest_pidfd, sig, NULL, 0);
    else if (!i->monitor)
        kill(i->s.pid, sig); /* the stub is the guest, and our unreaped child */
    else
        i->pending_signal = sig; /* the monitor has not named the guest yet */
}

static void started(struct instance *i, pid_t guest)
{
    i->started = 1;
    i->guest_pid = guest;
    struct zygote_started st = { guest, i->s.pid };
    if (!i->quiet)
        send_frame(ZMSG_STARTED, i->id, &st, sizeof st, NULL, 0, NULL, 0);
    if (i->pending_signal) {
        send_signal(i, i->pending_signal);
        i->pending_signal = 0;
    }
}

static void close_stream(int *open, int fd, int watched)
{
    if (!*open)
        return;
    if (watched)
        epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    *open = 0;
}

/* Held console output goes out as it is now (the instance got a reader, or holds too much). */
static void release_held(struct instance *i)
{
    if (i->held_len)
        send_frame(ZMSG_OUTPUT, i->id, i->held, i->held_len, NULL, 0, NULL, 0);
    i->held_len = 0;
}

/* One read of the console; returns 0 at end of file or error. */
static int read_console(struct instance *i)
{
    char buf[ZYGOTE_OUTPUT_CHUNK];
    ssize_t n = read(i->s.out_fd, buf, sizeof buf);
    if (n > 0 && i->hold && i->held_len + (size_t)n <= ZYGOTE_MAX_HELD_OUTPUT) {
        if (!i->held && !(i->held = malloc(ZYGOTE_MAX_HELD_OUTPUT)))
            fatal("malloc");
        memcpy(i->held + i->held_len, buf, (size_t)n);
        i->held_len += (size_t)n;
        return 1;
    }
    if (n > 0) {
        release_held(i);
        send_frame(ZMSG_OUTPUT, i->id, buf, (size_t)n, NULL, 0, NULL, 0);
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 1;
    close_stream(&i->out_open, i->s.out_fd, 1);
    return 0;
}

static int read_err(struct instance *i)
{
    char buf[4096];
    ssize_t n = read(i->s.err_fd, buf, sizeof buf);
    if (n > 0) {
        size_t take = (size_t)n < sizeof i->err - i->err_len ? (size_t)n : sizeof i->err - i->err_len;
        memcpy(i->err + i->err_len, buf, take);
        i->err_len += take;
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 1;
    close_stream(&i->err_open, i->s.err_fd, i->err_watched);
    return 0;
}

/* The monitor's messages: a hello (with a pidfd of the guest), later its report. */
static int read_report(struct instance *i)
{
    char buf[REPORT_MAX];
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = { buf, sizeof buf };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf };
    ssize_t n = recvmsg(i->s.report_fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 1;
    if (n <= 0) {
        close_stream(&i->report_open, i->s.report_fd, i->report_watched);
        return 0;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int fd;
            memcpy(&fd, CMSG_DATA(c), sizeof fd);
            if (i->guest_pidfd < 0)
                i->guest_pidfd = fd;
            else
                close(fd);
        }
    }
    size_t take = (size_t)n < sizeof i->report - i->report_len ? (size_t)n : sizeof i->report - i->report_len;
    memcpy(i->report + i->report_len, buf, take);
    i->report_len += take;
    if (!i->started && i->report_len >= sizeof(struct monitor_hello)) {
        struct monitor_hello h;
        memcpy(&h, i->report, sizeof h);
        if (h.magic == REPORT_HELLO_MAGIC)
            started(i, h.guest_pid);
    }
    return 1;
}

/* The stub has exited: drain what it left, report, forget it. */
static void finish(struct instance *i)
{
    siginfo_t si = { 0 };
    int status = 0;
    while (waitid(P_PIDFD, (id_t)i->s.pidfd, &si, WEXITED) < 0 && errno == EINTR)
        ;
    if (si.si_code == CLD_EXITED)
        status = (si.si_status & 0xff) << 8;
    else if (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED)
        status = (si.si_status & 0x7f) | (si.si_code == CLD_DUMPED ? 0x80 : 0);
    /* Every writer is gone: each stream ends after what is buffered. A
     * paused console is drained too: the instance is over. */
    while (i->out_open && read_console(i))
        ;
    while (i->err_open && read_err(i))
        ;
    while (i->report_open && read_report(i))
        ;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    /* Signed: the nanoseconds part of the difference is negative about half the time. */
    int64_t run_ns = (int64_t)(now.tv_sec - i->sent.tv_sec) * 1000000000 + (now.tv_nsec - i->sent.tv_nsec);
    uint64_t run_us = run_ns > 0 ? (uint64_t)run_ns / 1000 : 0;
    struct zygote_exit ex = { status, (uint32_t)i->err_len, i->started ? i->guest_pid : i->s.pid, (uint32_t)i->held_len, run_us, i->s.pid, 0 };
    /* One frame: the exit, the stub's error, the held console, the monitor's messages. */
    size_t tail = i->held_len + i->report_len;
    char *rest = tail ? malloc(tail) : NULL;
    if (tail && !rest)
        fatal("malloc");
    if (i->held_len)
        memcpy(rest, i->held, i->held_len);
    if (i->report_len)
        memcpy(rest + i->held_len, i->report, i->report_len);
    send_frame(ZMSG_EXIT, i->id, &ex, sizeof ex, i->err, i->err_len, rest, tail);
    free(rest);
    free(i->held);
    epoll_ctl(epfd, EPOLL_CTL_DEL, i->s.pidfd, NULL);
    close(i->s.pidfd);
    if (i->guest_pidfd >= 0)
        close(i->guest_pidfd);
    for (struct instance **pp = &instances; *pp; pp = &(*pp)->next) {
        if (*pp == i) {
            *pp = i->next;
            break;
        }
    }
    free(i);
}

/* Sends the plan (fds on its first bytes) to an idle stub and tracks it. */
static void launch(uint32_t id, int *fds, int nfds, const char *plan, size_t len, int monitor, uint32_t flags)
{
    struct stub s;
    const char *why = NULL;
    if (find(id)) {
        why = "an instance with this id is running";
        goto done;
    }
    while (idle > 0 && !idle_alive(&pool[idle - 1]))
        idle--;
    if (idle > 0) {
        s = pool[--idle];
    } else {
        int e = spawn_stub(&s);
        if (e < 0) {
            why = e == -EMFILE || e == -ENFILE ? "capacity: the stub pool is out of file descriptors"
                : e == -EAGAIN || e == -ENOMEM ? "capacity: no process could be created for the stub" : "could not spawn a stub";
            goto done;
        }
    }
    {
        struct iovec iov = { (void *)plan, len < 65536 ? len : 65536 };
        union {
            char buf[CMSG_SPACE(sizeof(int) * ZYGOTE_MAX_FDS)];
            struct cmsghdr align;
        } control;
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (nfds > 0) {
            msg.msg_control = control.buf;
            msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
            struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
            memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
        }
        ssize_t n;
        do
            n = sendmsg(s.plan_fd, &msg, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            why = "could not send the plan to the stub";
        } else {
            /* The stub reads as we write, so writing the rest completes. */
            const char *p = plan + n;
            size_t left = len - (size_t)n;
            while (left > 0) {
                ssize_t w = send(s.plan_fd, p, left, MSG_NOSIGNAL);
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0) {
                    why = "the stub stopped reading its plan";
                    break;
                }
                p += w;
                left -= (size_t)w;
            }
        }
        close(s.plan_fd);
        s.plan_fd = -1;
    }
    if (why) {
        kill(s.pid, SIGKILL);
        waitpid(s.pid, NULL, 0);
        close_stub(&s);
        goto done;
    }
    struct instance *inst = calloc(1, sizeof *inst);
    if (!inst)
        fatal("calloc");
    *inst = (struct instance){ .id = id, .s = s, .monitor = monitor, .quiet = (flags & ZLAUNCH_F_QUIET_START) != 0,
                               .hold = (flags & ZLAUNCH_F_HOLD_OUTPUT) != 0, .guest_pidfd = -1, .out_open = 1, .err_open = 1,
                               .report_open = 1, .next = instances };
    clock_gettime(CLOCK_MONOTONIC, &inst->sent);
    inst->t_out = (struct tag){ T_OUT, inst };
    inst->t_err = (struct tag){ T_ERR, inst };
    inst->t_report = (struct tag){ T_REPORT, inst };
    inst->t_proc = (struct tag){ T_PROC, inst };
    instances = inst;
    watch(s.out_fd, &inst->t_out, outq_throttled ? 0 : EPOLLIN);
    /* The stub's stderr matters only once it has ended (its error, if any),
     * and so does the report without a monitor: both are read then. With a
     * monitor, its hello (the guest's pid) is awaited. */
    inst->err_watched = 0;
    inst->report_watched = monitor;
    if (monitor)
        watch(s.report_fd, &inst->t_report, EPOLLIN);
    watch(s.pidfd, &inst->t_proc, EPOLLIN);
    if (!monitor)
        started(inst, s.pid);
done:
    for (int k = 0; k < nfds; k++)
        close(fds[k]);
    if (why)
        send_failed(id, why);
}

/* ------------------------------------------------------------------ control input */

/*
 * Frames are read one at a time, the header first with recvmsg: the fds of
 * a launch ride on the same sendmsg as its header, and the kernel hands them
 * over with the first bytes read from that message. So fds always belong to
 * the frame being read, and a frame that claims fds it did not bring (or
 * brings fds it does not claim) cannot take another frame's.
 */
static struct zygote_frame cur;
static size_t cur_have;       /* header bytes read so far */
static char *payload;
static size_t payload_cap, payload_have;
static int cur_fds[ZYGOTE_MAX_FDS];
static int cur_nfds;
static int cur_fds_overflow;
static int skipping;          /* the payload of a refused frame is being discarded */

static int plan_flags(const char *plan, size_t len)
{
    struct plan_header h;
    if (len < sizeof h)
        return 0;
    memcpy(&h, plan, sizeof h);
    return (int)h.flags;
}

/* The frames Node sends; anything else is a peer that is not Node, or a stream out of step. */
static int known_type(uint32_t type)
{
    return type == ZMSG_LAUNCH || type == ZMSG_KILL || type == ZMSG_PAUSE || type == ZMSG_RESUME || type == ZMSG_STREAM;
}

static void drop_fds(void)
{
    for (int k = 0; k < cur_nfds; k++)
        close(cur_fds[k]);
    cur_nfds = 0;
}

static void take_fds(struct msghdr *msg)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int j = 0; j < k; j++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + sizeof(int) * (size_t)j, sizeof fd);
            if (cur_nfds < ZYGOTE_MAX_FDS) {
                cur_fds[cur_nfds++] = fd;
            } else {
                close(fd);
                cur_fds_overflow = 1;
            }
        }
    }
    if (msg->msg_flags & MSG_CTRUNC)
        cur_fds_overflow = 1;
}

static void on_frame(void)
{
    switch (cur.type) {
    case ZMSG_LAUNCH:
        if ((int)cur.nfds != cur_nfds || cur_fds_overflow) {
            drop_fds();
            send_failed(cur.id, "the launch frame came without its fds (or with others than it said)");
            return;
        }
        if (cur.len < sizeof(struct zygote_launch)) {
            drop_fds();
            send_failed(cur.id, "the launch frame is too short for its header");
            return;
        }
        {
            struct zygote_launch zl;
            memcpy(&zl, payload, sizeof zl);
            const char *plan = payload + sizeof zl;
            size_t plen = cur.len - sizeof zl;
            launch(cur.id, cur_fds, cur_nfds, plan, plen, (plan_flags(plan, plen) & PLAN_F_MONITOR) != 0, zl.flags);
        }
        cur_nfds = 0;
        return;
    case ZMSG_KILL:
    case ZMSG_PAUSE:
    case ZMSG_RESUME:
    case ZMSG_STREAM: {
        drop_fds();
        struct instance *i = find(cur.id);
        if (!i)
            return; /* ended meanwhile: its EXIT is on its way */
        if (cur.type == ZMSG_KILL && cur.len >= 4) {
            uint32_t sig;
            memcpy(&sig, payload, 4);
            if (sig >= 1 && sig <= 64)
                send_signal(i, (int)sig);
        } else if (cur.type == ZMSG_STREAM) {
            i->hold = 0;
            release_held(i);
        } else if (cur.type != ZMSG_KILL) {
            i->paused = cur.type == ZMSG_PAUSE;
            set_console_reading(i);
        }
        return;
    }
    default:
        drop_fds(); /* unknown frame: ignored, the stream stays in step */
    }
}

/* Reads what Node sent; returns -1 when Node has gone. */
static int on_control(void)
{
    for (;;) {
        ssize_t n;
        if (cur_have < sizeof cur) {
            union {
                char buf[CMSG_SPACE(sizeof(int) * ZYGOTE_MAX_FDS)];
                struct cmsghdr align;
            } control;
            struct iovec iov = { (char *)&cur + cur_have, sizeof cur - cur_have };
            struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf };
            n = recvmsg(ZYGOTE_CONTROL_FD, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
            if (n > 0) {
                take_fds(&msg);
                cur_have += (size_t)n;
                if (cur_have < sizeof cur)
                    continue;
                payload_have = 0;
                if (!known_type(cur.type)) {
                    char why[128];
                    snprintf(why, sizeof why, "a frame of unknown type %u (id %u, %u bytes, %u fds)", cur.type, cur.id, cur.len, cur.nfds);
                    send_frame(ZMSG_OUT_OF_STEP, cur.id, why, strlen(why), NULL, 0, NULL, 0);
                }
                skipping = cur.len > ZYGOTE_MAX_PAYLOAD;
                if (skipping) {
                    /* Refused, not trusted: its payload is read and dropped, its fds closed. */
                    drop_fds();
                    if (cur.type == ZMSG_LAUNCH)
                        send_failed(cur.id, "the plan is larger than the stub pool accepts");
                } else if (cur.len > payload_cap) {
                    char *p = realloc(payload, cur.len);
                    if (!p)
                        fatal("realloc");
                    payload = p;
                    payload_cap = cur.len;
                }
            }
        } else {
            char sink[65536];
            size_t want = cur.len - payload_have;
            if (want == 0) {
                n = 1;
            } else if (skipping) {
                n = recv(ZYGOTE_CONTROL_FD, sink, want < sizeof sink ? want : sizeof sink, MSG_DONTWAIT);
            } else {
                /* No fds belong here: any that come make the frame untrusted, and are closed with it. */
                union {
                    char buf[CMSG_SPACE(sizeof(int) * ZYGOTE_MAX_FDS)];
                    struct cmsghdr align;
                } control;
                struct iovec iov = { payload + payload_have, want };
                struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf };
                n = recvmsg(ZYGOTE_CONTROL_FD, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
                if (n > 0 && msg.msg_controllen > 0)
                    take_fds(&msg), cur_fds_overflow = 1; /* fds not on a header: the frame is not to be trusted */
            }
            if (n > 0 && want > 0)
                payload_have += (size_t)n;
            if (n > 0 && payload_have == cur.len) {
                if (!skipping)
                    on_frame();
                drop_fds();
                cur_have = 0;
                cur_fds_overflow = 0;
                skipping = 0;
                continue;
            }
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return -1;
    }
}

/* ------------------------------------------------------------------ main */

static void shutdown_all(void)
{
    for (struct instance *i = instances; i; i = i->next) {
        if (i->guest_pidfd >= 0)
            syscall(SYS_pidfd_send_signal, i->guest_pidfd, SIGKILL, NULL, 0);
        kill(i->s.pid, SIGKILL);
    }
    for (int k = 0; k < idle; k++)
        kill(pool[k].pid, SIGKILL);
    while (wait(NULL) > 0 || errno == EINTR)
        ;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 4 + ZYGOTE_MAX_STUB_ARGS) {
        fprintf(stderr, "usage: tendril-zygote STUB POOL-SIZE PARENT-PID [STUB-ARG...] (started by tendril serve)\n");
        return 2;
    }
    stub_args = argv + 4;
    nstub_args = argc - 4;
    stub_path = argv[1];
    pool_size = atoi(argv[2]);
    parent_pid = (pid_t)atoi(argv[3]);
    if (pool_size < 0 || pool_size > ZYGOTE_MAX_POOL)
        pool_size = ZYGOTE_MAX_POOL;
    /* Die with the server; if it died before this line, now. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        fatal("prctl(PR_SET_PDEATHSIG)");
    if (getppid() != parent_pid)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    /* Every instance holds a few fds here: take all the kernel allows us. */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    fcntl(ZYGOTE_CONTROL_FD, F_SETFL, O_NONBLOCK);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        fatal("epoll_create1");
    watch(ZYGOTE_CONTROL_FD, &control_tag, EPOLLIN);
    self_pid = getpid();
    devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0)
        fatal("open /dev/null");
    struct zygote_hello hello = { self_pid, (uint32_t)(nofile.rlim_cur > 0xffffffffu ? 0xffffffffu : nofile.rlim_cur) };
    send_frame(ZMSG_HELLO, 0, &hello, sizeof hello, NULL, 0, NULL, 0);

    int refill_failures = 0;
    for (;;) {
        /* What this turn queued for Node goes out before the next wait. */
        if (outq_len)
            flush_out();
        /* Refill one stub per turn, and only when nothing is waiting, so a
         * launch or an exit is never queued behind a burst of forks. A
         * failing refill (no fds, no processes) backs off rather than spin. */
        int timeout = idle < pool_size ? (refill_failures ? 100 : 0) : -1;
        struct epoll_event evs[64];
        int n = epoll_wait(epfd, evs, 64, timeout);
        if (n < 0 && errno != EINTR)
            fatal("epoll_wait");
        if (n == 0 && idle < pool_size) {
            if (spawn_stub(&pool[idle]) == 0) {
                idle++;
                refill_failures = 0;
            } else {
                refill_failures++;
            }
            continue;
        }
        for (int k = 0; k < n; k++) {
            struct tag *t = evs[k].data.ptr;
            struct instance *i = t->obj;
            switch (t->kind) {
            case T_CONTROL:
                if (evs[k].events & EPOLLOUT)
                    flush_out();
                if ((evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && on_control() < 0) {
                    shutdown_all();
                    return 0;
                }
                break;
            case T_OUT:
                read_console(i);
                break;
            case T_ERR:
                read_err(i);
                break;
            case T_REPORT:
                read_report(i);
                break;
            case T_PROC:
                finish(i);
                /* Later events of this batch may name the freed instance. */
                for (int j = k + 1; j < n; j++) {
                    struct tag *u = evs[j].data.ptr;
                    if (u->kind != T_CONTROL && u->obj == i)
                        evs[j].data.ptr = &control_tag, evs[j].events = 0;
                }
                break;
            }
        }
    }
}
