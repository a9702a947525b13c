/*
 * What it costs to intercept one system call, by each mechanism a recorder
 * could use (bench/record.ts, docs/record-replay.md): the calling process
 * makes N getppid() calls, each answered (value 42) by
 *
 *   plain         nobody: the kernel (the baseline)
 *   ptrace1       a ptrace tracer at the SECCOMP_RET_TRACE stop, which skips
 *                 the call and sets its result (tendril's recorder and replayer)
 *   ptrace2       the same, letting the call run and reading the result at its
 *                 exit stop (two stops)
 *   unotify       a supervisor on a seccomp user-notification fd
 *   unotify-sync  the same with SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux 6.6+)
 *   sigsys        SECCOMP_RET_TRAP and a SIGSYS handler in the process itself
 *   rdtsc         not a call: rdtsc made to fault (PR_TSC_SIGSEGV), answered by
 *                 a ptrace tracer that emulates it
 *
 * Both processes are pinned to one CPU (as tendril pins a guest and its
 * monitor). Prints "MODE NS" (nanoseconds per intercepted call).
 */
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1UL
#endif

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void install(unsigned action, unsigned flags, int *listener)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, action),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog p = { 4, f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        exit(2);
    long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &p);
    if (r < 0) {
        perror("seccomp");
        exit(2);
    }
    if (listener)
        *listener = (int)r;
}

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    ((ucontext_t *)uc)->uc_mcontext.gregs[REG_RAX] = 42;
}

static void send_fd(int sock, int fd)
{
    char cb[CMSG_SPACE(sizeof(int))] = { 0 };
    char x = 'x';
    struct iovec io = { &x, 1 };
    struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = cb, .msg_controllen = sizeof cb };
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof fd);
    sendmsg(sock, &m, 0);
}

static int recv_fd(int sock)
{
    char cb[CMSG_SPACE(sizeof(int))];
    char x;
    struct iovec io = { &x, 1 };
    struct msghdr m = { .msg_iov = &io, .msg_iovlen = 1, .msg_control = cb, .msg_controllen = sizeof cb };
    if (recvmsg(sock, &m, 0) <= 0)
        exit(2);
    int fd;
    memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof fd);
    return fd;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: intercept MODE [N]\n");
        return 2;
    }
    const char *mode = argv[1];
    long n = argc > 2 ? atol(argv[2]) : 20000;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    sched_setaffinity(0, sizeof one, &one);
    int traced = !strcmp(mode, "ptrace1") || !strcmp(mode, "ptrace2") || !strcmp(mode, "rdtsc");
    int unotify = !strncmp(mode, "unotify", 7);
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    int out[2];
    if (pipe(out) < 0)
        return 2;

    pid_t c = fork();
    if (c == 0) {
        if (traced)
            raise(SIGSTOP);
        if (!strcmp(mode, "ptrace1") || !strcmp(mode, "ptrace2"))
            install(SECCOMP_RET_TRACE, 0, 0);
        if (!strcmp(mode, "sigsys")) {
            struct sigaction sa = { 0 };
            sa.sa_sigaction = on_sigsys;
            sa.sa_flags = SA_SIGINFO | SA_NODEFER;
            sigaction(SIGSYS, &sa, 0);
            install(SECCOMP_RET_TRAP, 0, 0);
        }
        if (unotify) {
            int l;
            install(SECCOMP_RET_USER_NOTIF, SECCOMP_FILTER_FLAG_NEW_LISTENER, &l);
            send_fd(sv[1], l);
            close(l);
            char go;
            if (read(sv[1], &go, 1) != 1)
                _exit(2);
        }
        if (!strcmp(mode, "rdtsc"))
            prctl(PR_SET_TSC, PR_TSC_SIGSEGV);
        long got = 0;
        double t0 = now();
        for (long i = 0; i < n; i++) {
            if (!strcmp(mode, "rdtsc")) {
                unsigned lo, hi;
                __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
                got += lo;
            } else {
                got += syscall(SYS_getppid);
            }
        }
        double ns = (now() - t0) / (double)n * 1e9;
        if (write(out[1], &ns, sizeof ns) != sizeof ns)
            _exit(2);
        _exit(got ? 0 : 1);
    }
    if (unotify) {
        int l = recv_fd(sv[0]);
        if (!strcmp(mode, "unotify-sync") && ioctl(l, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, 0) < 0) {
            printf("%s unsupported\n", mode);
            kill(c, SIGKILL);
            return 0;
        }
        if (write(sv[0], "g", 1) != 1)
            return 2;
        struct seccomp_notif req;
        struct seccomp_notif_resp resp;
        for (long i = 0; i < n; i++) {
            memset(&req, 0, sizeof req);
            if (ioctl(l, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
                break;
            resp.id = req.id;
            resp.val = 42;
            resp.error = 0;
            resp.flags = 0;
            ioctl(l, SECCOMP_IOCTL_NOTIF_SEND, &resp);
        }
    }
    int st = 0;
    if (traced) {
        ptrace(PTRACE_SEIZE, c, 0, PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL | PTRACE_O_TRACESYSGOOD);
        for (;;) {
            if (waitpid(c, &st, __WALL) < 0 || !WIFSTOPPED(st))
                break;
            int sig = WSTOPSIG(st), ev = st >> 16;
            struct user_regs_struct r;
            if (ev == PTRACE_EVENT_SECCOMP) {
                ptrace(PTRACE_GETREGS, c, 0, &r);
                if (!strcmp(mode, "ptrace1")) {
                    char buf[16] = { 0 };
                    struct iovec lo = { buf, 16 }, re = { (void *)(r.rsp - 256), 16 };
                    process_vm_writev(c, &lo, 1, &re, 1, 0); /* the data a recorded read would copy */
                    r.orig_rax = -1;
                    r.rax = 42;
                    ptrace(PTRACE_SETREGS, c, 0, &r);
                    ptrace(PTRACE_CONT, c, 0, 0);
                } else {
                    ptrace(PTRACE_SYSCALL, c, 0, 0);
                }
            } else if (sig == (SIGTRAP | 0x80)) {
                ptrace(PTRACE_GETREGS, c, 0, &r);
                ptrace(PTRACE_CONT, c, 0, 0);
            } else if (sig == SIGSEGV) {
                ptrace(PTRACE_GETREGS, c, 0, &r);
                r.rip += 2;
                r.rax = 1;
                r.rdx = 0;
                ptrace(PTRACE_SETREGS, c, 0, &r);
                ptrace(PTRACE_CONT, c, 0, 0);
            } else {
                ptrace(PTRACE_CONT, c, 0, ev || sig == SIGSTOP ? 0 : sig);
            }
        }
    } else {
        waitpid(c, &st, 0);
    }
    double ns = 0;
    if (read(out[0], &ns, sizeof ns) != sizeof ns || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        printf("%s failed\n", mode);
        return 1;
    }
    printf("%s %.0f\n", mode, ns);
    return 0;
}
