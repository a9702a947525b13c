/*
 * tendril-zygote: keeps launch stubs spawned ahead of demand for `tendril
 * serve`, so that a launch pays no fork or exec, and keeps Node's main
 * thread out of process creation (a Node spawn costs ~1.8 ms of it).
 *
 * Node drives it over a unix stream socket at fd 3 with framed messages:
 *   frame = u32 type, u32 id, u32 len, u32 reserved, then len bytes (LE)
 *   Node -> zygote
 *     LAUNCH  plan bytes; the guest's fds (tender fds, devices) ride on the
 *             frame header as SCM_RIGHTS and are passed on to the stub with
 *             the plan. The plan must be made for a pool stub: plan socket
 *             3, monitor report pipe 4, guest fds from 5 (supervisor/serve/zygote.ts).
 *     KILL    u32 signal, sent to the instance's stub (its monitor).
 *   zygote -> Node
 *     STARTED u32 pid of the instance's stub
 *     OUTPUT  console bytes (guest stdout and stderr, in order)
 *     EXIT    i32 wait status of the stub, then the monitor's report line
 *     FAILED  a one-line reason the launch could not be started
 * Mechanism only: which guest, which fds and which plan is decided in
 * TypeScript. If Node goes away, every instance and idle stub is killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum { LAUNCH = 1, KILL = 2, STARTED = 10, OUTPUT = 11, EXIT = 12, FAILED = 13 };
enum { CONTROL_FD = 3, MAX_FDS = 64, MAX_POOL = 64, MAX_PLAN = 64 << 20, REPORT_MAX = 1024 };

struct frame {
    uint32_t type, id, len, reserved;
};

struct stub {
    pid_t pid;
    int plan_fd;   /* our end of the plan socket (stub's fd 3) */
    int report_fd; /* read end of the monitor report pipe (stub's fd 4) */
    int out_fd;    /* read end of the console pipe (stub's fd 1 and 2) */
};

struct instance {
    uint32_t id;
    struct stub s;
    int out_open, report_open, dead;
    char report[REPORT_MAX];
    size_t report_len;
    struct instance *next;
};

static const char *stub_path;
static int pool_size;
static struct stub pool[MAX_POOL];
static int idle;
static struct instance *instances;
/* Finished instances are freed after the epoll batch that finished them,
 * which may still hold an event for them. */
static struct instance *graveyard;
static int epfd;

static void fatal(const char *what)
{
    fprintf(stderr, "tendril-zygote: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fatal("writing to the supervisor");
        p += n;
        len -= (size_t)n;
    }
}

static void send_frame(uint32_t type, uint32_t id, const void *a, size_t alen, const void *b, size_t blen)
{
    struct frame f = { type, id, (uint32_t)(alen + blen), 0 };
    write_all(CONTROL_FD, &f, sizeof f);
    if (alen)
        write_all(CONTROL_FD, a, alen);
    if (blen)
        write_all(CONTROL_FD, b, blen);
}

static int read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* fork + exec one stub waiting on its plan socket; -1 on failure. */
static int spawn_stub(struct stub *s)
{
    int plan[2], report[2], out[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, plan) < 0)
        return -1;
    if (pipe2(report, O_CLOEXEC) < 0) {
        close(plan[0]);
        close(plan[1]);
        return -1;
    }
    if (pipe2(out, O_CLOEXEC) < 0) {
        close(plan[0]);
        close(plan[1]);
        close(report[0]);
        close(report[1]);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        /* Move the child ends clear of 0..4 first, then into place. */
        int p = fcntl(plan[1], F_DUPFD, 10), r = fcntl(report[1], F_DUPFD, 10), o = fcntl(out[1], F_DUPFD, 10);
        if (devnull < 0 || p < 0 || r < 0 || o < 0 || dup2(devnull, 0) < 0 || dup2(o, 1) < 0 || dup2(o, 2) < 0 ||
            dup2(p, 3) < 0 || dup2(r, 4) < 0)
            _exit(127);
        syscall(SYS_close_range, 5, ~0u, 0);
        char *argv[] = { "tendril: pool", "3", NULL };
        char *envp[] = { NULL };
        execve(stub_path, argv, envp);
        _exit(127);
    }
    close(plan[1]);
    close(report[1]);
    close(out[1]);
    /* Our read ends are polled together: never block on the quiet one. */
    fcntl(report[0], F_SETFL, O_NONBLOCK);
    fcntl(out[0], F_SETFL, O_NONBLOCK);
    if (pid < 0) {
        close(plan[0]);
        close(report[0]);
        close(out[0]);
        return -1;
    }
    *s = (struct stub){ pid, plan[0], report[0], out[0] };
    return 0;
}

static void watch(int fd, struct instance *inst)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = inst };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        fatal("epoll_ctl");
}

/* Sends the plan (fds on its first bytes) to an idle stub and tracks it. */
static void launch(uint32_t id, int *fds, int nfds, const char *plan, size_t len)
{
    struct stub s;
    const char *why = NULL;
    if (idle > 0) {
        s = pool[--idle];
        /* An idle stub may have been killed from outside: take a fresh one. */
        if (waitpid(s.pid, NULL, WNOHANG) == s.pid) {
            close(s.plan_fd);
            close(s.report_fd);
            close(s.out_fd);
            if (spawn_stub(&s) < 0)
                why = "could not spawn a stub";
        }
    } else if (spawn_stub(&s) < 0) {
        why = "could not spawn a stub";
    }
    if (!why) {
        struct iovec iov = { (void *)plan, len < 64 ? len : 64 };
        union {
            char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
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
        ssize_t n = sendmsg(s.plan_fd, &msg, MSG_NOSIGNAL);
        /* The stub reads as we write, so a blocking write of the rest completes. */
        if (n < 0 || (size_t)n > len)
            why = "could not send the plan to the stub";
        else {
            const char *p = plan + n;
            size_t left = len - (size_t)n;
            while (left > 0) {
                ssize_t w = write(s.plan_fd, p, left);
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
    }
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    if (why) {
        send_frame(FAILED, id, why, strlen(why), NULL, 0);
        return;
    }
    struct instance *inst = calloc(1, sizeof *inst);
    if (!inst)
        fatal("calloc");
    *inst = (struct instance){ .id = id, .s = s, .out_open = 1, .report_open = 1, .next = instances };
    instances = inst;
    watch(s.out_fd, inst);
    watch(s.report_fd, inst);
    uint32_t pid = (uint32_t)s.pid;
    send_frame(STARTED, id, &pid, sizeof pid, NULL, 0);
}

static void finish(struct instance *inst)
{
    int status = 0;
    while (waitpid(inst->s.pid, &status, 0) < 0 && errno == EINTR)
        ;
    int32_t st = status;
    send_frame(EXIT, inst->id, &st, sizeof st, inst->report, inst->report_len);
    for (struct instance **pp = &instances; *pp; pp = &(*pp)->next) {
        if (*pp == inst) {
            *pp = inst->next;
            break;
        }
    }
    inst->dead = 1;
    inst->next = graveyard;
    graveyard = inst;
}

static void on_instance_io(struct instance *inst)
{
    char buf[65536];
    if (inst->dead)
        return;
    if (inst->out_open) {
        ssize_t n = read(inst->s.out_fd, buf, sizeof buf);
        if (n > 0) {
            send_frame(OUTPUT, inst->id, buf, (size_t)n, NULL, 0);
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            epoll_ctl(epfd, EPOLL_CTL_DEL, inst->s.out_fd, NULL);
            close(inst->s.out_fd);
            inst->out_open = 0;
        }
    }
    if (inst->report_open) {
        ssize_t n = read(inst->s.report_fd, buf, sizeof buf);
        if (n > 0) {
            size_t room = REPORT_MAX - inst->report_len;
            size_t take = (size_t)n < room ? (size_t)n : room;
            memcpy(inst->report + inst->report_len, buf, take);
            inst->report_len += take;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            epoll_ctl(epfd, EPOLL_CTL_DEL, inst->s.report_fd, NULL);
            close(inst->s.report_fd);
            inst->report_open = 0;
        }
    }
    if (!inst->out_open && !inst->report_open)
        finish(inst);
}

/* One control frame; returns -1 when the supervisor has gone. */
static int on_control(void)
{
    struct frame f;
    int fds[MAX_FDS], nfds = 0;
    union {
        char buf[CMSG_SPACE(sizeof(int) * MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct iovec iov = { &f, sizeof f };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf };
    ssize_t n;
    do
        n = recvmsg(CONTROL_FD, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n <= 0)
        return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < k && nfds < MAX_FDS; i++)
                memcpy(&fds[nfds++], CMSG_DATA(c) + sizeof(int) * (size_t)i, sizeof(int));
        }
    }
    if ((size_t)n < sizeof f && read_all(CONTROL_FD, (char *)&f + n, sizeof f - (size_t)n) < 0)
        return -1;
    if (f.len > MAX_PLAN)
        return -1;
    char *payload = malloc(f.len ? f.len : 1);
    if (!payload || read_all(CONTROL_FD, payload, f.len) < 0)
        return -1;
    if (f.type == LAUNCH) {
        launch(f.id, fds, nfds, payload, f.len);
    } else {
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        if (f.type == KILL && f.len >= 4) {
            uint32_t sig;
            memcpy(&sig, payload, 4);
            for (struct instance *i = instances; i; i = i->next)
                if (i->id == f.id)
                    kill(i->s.pid, (int)sig);
        }
    }
    free(payload);
    return 0;
}

static void shutdown_all(void)
{
    for (struct instance *i = instances; i; i = i->next)
        kill(i->s.pid, SIGKILL);
    for (int i = 0; i < idle; i++)
        kill(pool[i].pid, SIGKILL);
    while (wait(NULL) > 0 || errno == EINTR)
        ;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: tendril-zygote STUB POOL-SIZE (started by tendril serve)\n");
        return 2;
    }
    stub_path = argv[1];
    pool_size = atoi(argv[2]);
    if (pool_size < 0 || pool_size > MAX_POOL)
        pool_size = MAX_POOL;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGPIPE, SIG_IGN);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        fatal("epoll_create1");
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, CONTROL_FD, &ev) < 0)
        fatal("epoll_ctl(control)");

    for (;;) {
        /* Refill one stub per turn, and only when nothing is waiting, so a
         * launch or an exit is never queued behind a burst of forks. */
        int timeout = idle < pool_size ? 0 : -1;
        struct epoll_event evs[64];
        int n = epoll_wait(epfd, evs, 64, timeout);
        if (n < 0 && errno != EINTR)
            fatal("epoll_wait");
        if (n == 0 && idle < pool_size) {
            if (spawn_stub(&pool[idle]) == 0)
                idle++;
            else
                pool_size = idle; /* cannot spawn: stop trying, launches will say so */
            continue;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                if (on_control() < 0) {
                    shutdown_all();
                    return 0;
                }
            } else {
                on_instance_io(evs[i].data.ptr);
            }
        }
        while (graveyard) {
            struct instance *next = graveyard->next;
            free(graveyard);
            graveyard = next;
        }
    }
}
