/*
 * Raw x86_64 Linux system calls and error reporting for the stub, which has
 * no libc. Each wrapper returns the kernel's value: >= 0 on success, -errno
 * on failure.
 */
#ifndef TENDRIL_STUB_SYS_H
#define TENDRIL_STUB_SYS_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;

#define EINTR 4
#define EBADF 9
#define EINVAL 22
#define EMFILE 24
#define ENOSYS 38
#define ENOTSOCK 88

#define PROT_READ 1
#define PROT_WRITE 2
#define PROT_EXEC 4
#define MAP_PRIVATE 0x02
#define MAP_FIXED 0x10
#define MAP_ANONYMOUS 0x20
#define MAP_FIXED_NOREPLACE 0x100000

#define RLIMIT_CORE 4
#define RLIMIT_NOFILE 7
#define RLIMIT_MEMLOCK 8
#define PR_SET_PDEATHSIG 1
#define PR_SET_DUMPABLE 4
#define F_GETFD 1
#define F_DUPFD_CLOEXEC 1030
#define SOL_SOCKET 1
#define SCM_RIGHTS 1
#define MSG_CTRUNC 0x8
#define MSG_NOSIGNAL 0x4000
#define MSG_CMSG_CLOEXEC 0x40000000
#define CLOCK_MONOTONIC 1
#define TFD_NONBLOCK 04000
#define EPOLL_CTL_ADD 1
#define EPOLLIN 1
#define SIG_SETMASK 2
#define SIGKILL 9
#define SIGSTOP 19
#define PR_SET_NO_NEW_PRIVS 38
#define SECCOMP_SET_MODE_FILTER 1
#define READ_IMPLIES_EXEC 0x0400000

#define NR_read 0
#define NR_write 1
#define NR_close 3
#define NR_fstat 5
#define NR_rt_sigaction 13
#define NR_rt_sigprocmask 14
#define NR_getpid 39
#define NR_sendmsg 46
#define NR_kill 62
#define NR_getppid 110
#define NR_timerfd_create 283
#define NR_epoll_ctl 233
#define NR_epoll_create1 291
#define NR_pipe2 293
#define NR_pidfd_open 434
#define NR_mmap 9
#define NR_mprotect 10
#define NR_open 2
#define NR_nanosleep 35
#define NR_recvmsg 47
#define NR_fcntl 72
#define NR_dup3 292
#define NR_personality 135
#define NR_setrlimit 160
#define NR_prctl 157
#define NR_exit_group 231
#define NR_seccomp 317
#define NR_close_range 436

static inline long syscall6(long n, long a, long b, long c, long d, long e, long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

static inline long sys_read(int fd, void *buf, u64 n) { return syscall6(NR_read, fd, (long)buf, (long)n, 0, 0, 0); }
static inline long sys_write(int fd, const void *buf, u64 n) { return syscall6(NR_write, fd, (long)buf, (long)n, 0, 0, 0); }
static inline long sys_close(int fd) { return syscall6(NR_close, fd, 0, 0, 0, 0, 0); }
static inline long sys_close_range(unsigned int lo, unsigned int hi, unsigned int flags)
{
    return syscall6(NR_close_range, lo, hi, flags, 0, 0, 0);
}
static inline long sys_mmap(void *addr, u64 len, int prot, int flags, int fd, long off)
{
    return syscall6(NR_mmap, (long)addr, (long)len, prot, flags, fd, off);
}
static inline long sys_mprotect(void *addr, u64 len, int prot) { return syscall6(NR_mprotect, (long)addr, (long)len, prot, 0, 0, 0); }
static inline long sys_open(const char *path, int flags) { return syscall6(NR_open, (long)path, flags, 0, 0, 0, 0); }
static inline long sys_nanosleep(const long ts[2]) { return syscall6(NR_nanosleep, (long)ts, 0, 0, 0, 0, 0); }
static inline long sys_recvmsg(int fd, void *msg, int flags) { return syscall6(NR_recvmsg, fd, (long)msg, flags, 0, 0, 0); }
static inline long sys_fcntl(int fd, int cmd, long arg) { return syscall6(NR_fcntl, fd, cmd, arg, 0, 0, 0); }
static inline long sys_dup3(int a, int b, int flags) { return syscall6(NR_dup3, a, b, flags, 0, 0, 0); }
static inline long sys_setrlimit(int res, const u64 lim[2]) { return syscall6(NR_setrlimit, res, (long)lim, 0, 0, 0, 0); }
static inline long sys_fstat_size(int fd, u64 *size)
{
    /* struct stat on x86_64: st_size at offset 48, 144 bytes in all. */
    u64 st[18];
    long r = syscall6(NR_fstat, fd, (long)st, 0, 0, 0, 0);
    if (r == 0)
        *size = st[6];
    return r;
}
static inline long sys_epoll_create1(int flags) { return syscall6(NR_epoll_create1, flags, 0, 0, 0, 0, 0); }
static inline long sys_epoll_ctl(int ep, int op, int fd, void *ev) { return syscall6(NR_epoll_ctl, ep, op, fd, (long)ev, 0, 0); }
static inline long sys_timerfd_create(int clock, int flags) { return syscall6(NR_timerfd_create, clock, flags, 0, 0, 0, 0); }
static inline long sys_getpid(void) { return syscall6(NR_getpid, 0, 0, 0, 0, 0, 0); }
static inline long sys_getppid(void) { return syscall6(NR_getppid, 0, 0, 0, 0, 0, 0); }
static inline long sys_kill(long pid, int sig) { return syscall6(NR_kill, pid, sig, 0, 0, 0, 0); }
static inline long sys_pipe2(int fds[2], int flags) { return syscall6(NR_pipe2, (long)fds, flags, 0, 0, 0, 0); }
static inline long sys_sendmsg(int fd, const void *msg, int flags) { return syscall6(NR_sendmsg, fd, (long)msg, flags, 0, 0, 0); }
static inline long sys_pidfd_open(long pid) { return syscall6(NR_pidfd_open, pid, 0, 0, 0, 0, 0); }

/* The kernel's struct sigaction (not glibc's): handler, flags, restorer, 8-byte mask. */
struct k_sigaction {
    void *handler;
    u64 flags;
    void *restorer;
    u64 mask;
};
static inline long sys_rt_sigaction(int sig, const struct k_sigaction *act, struct k_sigaction *old)
{
    return syscall6(NR_rt_sigaction, sig, (long)act, (long)old, 8, 0, 0);
}
static inline long sys_rt_sigprocmask(int how, const u64 *set, u64 *old)
{
    return syscall6(NR_rt_sigprocmask, how, (long)set, (long)old, 8, 0, 0);
}

/* struct iovec and struct msghdr of the kernel's x86_64 ABI. */
struct k_iovec {
    void *base;
    u64 len;
};
struct k_msghdr {
    void *name;
    u32 namelen;
    struct k_iovec *iov;
    u64 iovlen;
    void *control;
    u64 controllen;
    int flags;
};

static inline long sys_personality(unsigned long p) { return syscall6(NR_personality, (long)p, 0, 0, 0, 0, 0); }
static inline long sys_prctl(int op, long a, long b, long c, long d) { return syscall6(NR_prctl, op, a, b, c, d, 0); }
static inline long sys_seccomp(unsigned int op, unsigned int flags, void *args)
{
    return syscall6(NR_seccomp, op, flags, (long)args, 0, 0, 0);
}
__attribute__((noreturn)) static inline void sys_exit_group(int status)
{
    for (;;)
        syscall6(NR_exit_group, status, 0, 0, 0, 0, 0);
}

static inline u64 str_len(const char *s)
{
    u64 n = 0;
    while (s[n])
        n++;
    return n;
}

static inline void put_str(const char *s) { sys_write(2, s, str_len(s)); }

static const char *errno_text(long err)
{
    switch (-err) {
    case 1: return "Operation not permitted (EPERM)";
    case 4: return "Interrupted system call (EINTR)";
    case 5: return "Input/output error (EIO)";
    case 9: return "Bad file descriptor (EBADF)";
    case 12: return "Cannot allocate memory (ENOMEM)";
    case 13: return "Permission denied (EACCES)";
    case 14: return "Bad address (EFAULT)";
    case 17: return "File exists (EEXIST): the range is already mapped";
    case 22: return "Invalid argument (EINVAL)";
    case 24: return "Too many open files (EMFILE)";
    case 38: return "Function not implemented (ENOSYS)";
    default: return "unexpected error";
    }
}

/* Messages go to stderr in the same shape as the supervisor's, then exit 1:
 * a stub failure is a tender error (abi.md §13), never a guest status. */
__attribute__((noreturn)) static void die(const char *what, const char *detail)
{
    put_str("tendril: ");
    put_str(what);
    put_str(": ");
    put_str(detail);
    put_str("\n");
    sys_exit_group(1);
}

__attribute__((noreturn)) static void die_errno(const char *call, const char *what, long err)
{
    put_str("tendril: ");
    put_str(what);
    put_str(": ");
    put_str(call);
    put_str(": ");
    put_str(errno_text(err));
    put_str("\n");
    sys_exit_group(1);
}

static int parse_fd(const char *s, int *out)
{
    long v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 1000000)
            return -1;
        v = v * 10 + (*s - '0');
    }
    *out = (int)v;
    return 0;
}

#endif
