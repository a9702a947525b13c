/*
 * tendril bindings: raw Linux x86_64 system calls.
 *
 * The guest runs inside the tender's process with no libc and no vDSO, so
 * every host service is one `syscall` instruction. The seccomp filter
 * installed by the tender decides which of these are allowed (abi.md §7); the
 * numbers below are the only ones the bindings ever use (abi.md §8).
 *
 * Every wrapper returns the raw kernel result: >= 0 on success, -errno on
 * failure. Nothing here touches errno (there is none).
 */

#ifndef TENDRIL_BINDINGS_SYSCALL_H
#define TENDRIL_BINDINGS_SYSCALL_H

#include <stddef.h>
#include <stdint.h>

#define TND_SYS_read            0
#define TND_SYS_write           1
#define TND_SYS_pread64         17
#define TND_SYS_pwrite64        18
#define TND_SYS_arch_prctl      158
#define TND_SYS_clock_gettime   228
#define TND_SYS_exit_group      231
#define TND_SYS_epoll_pwait     281
#define TND_SYS_timerfd_settime 286

#define TND_EINTR  4
#define TND_EAGAIN 11

#define TND_ARCH_SET_FS       0x1002
#define TND_CLOCK_REALTIME    0
#define TND_CLOCK_MONOTONIC   1
#define TND_TFD_TIMER_ABSTIME 1

struct tnd_timespec {
    int64_t tv_sec;
    int64_t tv_nsec;
};

struct tnd_itimerspec {
    struct tnd_timespec it_interval;
    struct tnd_timespec it_value;
};

/*
 * The kernel declares struct epoll_event packed on x86_64 (a 4-byte events
 * word followed directly by the 8-byte data word: 12 bytes, not 16).
 */
struct tnd_epoll_event {
    uint32_t events;
    uint64_t data;
} __attribute__((packed));

/*
 * The `syscall` instruction clobbers rcx (return rip) and r11 (rflags); the
 * "memory" clobber keeps the compiler from caching buffers across a call
 * that the kernel reads or writes.
 */
static inline long tnd_syscall1(long n, long a1)
{
    long ret;
    __asm__ __volatile__("syscall"
                         : "=a"(ret)
                         : "a"(n), "D"(a1)
                         : "rcx", "r11", "memory");
    return ret;
}

static inline long tnd_syscall2(long n, long a1, long a2)
{
    long ret;
    __asm__ __volatile__("syscall"
                         : "=a"(ret)
                         : "a"(n), "D"(a1), "S"(a2)
                         : "rcx", "r11", "memory");
    return ret;
}

static inline long tnd_syscall3(long n, long a1, long a2, long a3)
{
    long ret;
    __asm__ __volatile__("syscall"
                         : "=a"(ret)
                         : "a"(n), "D"(a1), "S"(a2), "d"(a3)
                         : "rcx", "r11", "memory");
    return ret;
}

static inline long tnd_syscall4(long n, long a1, long a2, long a3, long a4)
{
    long ret;
    register long r10 __asm__("r10") = a4;
    __asm__ __volatile__("syscall"
                         : "=a"(ret)
                         : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10)
                         : "rcx", "r11", "memory");
    return ret;
}

static inline long tnd_syscall6(long n, long a1, long a2, long a3, long a4,
                                long a5, long a6)
{
    long ret;
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    __asm__ __volatile__("syscall"
                         : "=a"(ret)
                         : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10),
                           "r"(r8), "r"(r9)
                         : "rcx", "r11", "memory");
    return ret;
}

static inline long tnd_sys_read(int fd, void *buf, size_t n)
{
    return tnd_syscall3(TND_SYS_read, fd, (long)buf, (long)n);
}

static inline long tnd_sys_write(int fd, const void *buf, size_t n)
{
    return tnd_syscall3(TND_SYS_write, fd, (long)buf, (long)n);
}

static inline long tnd_sys_pread64(int fd, void *buf, size_t n, uint64_t off)
{
    return tnd_syscall4(TND_SYS_pread64, fd, (long)buf, (long)n, (long)off);
}

static inline long tnd_sys_pwrite64(int fd, const void *buf, size_t n,
                                    uint64_t off)
{
    return tnd_syscall4(TND_SYS_pwrite64, fd, (long)buf, (long)n, (long)off);
}

static inline long tnd_sys_arch_prctl(int code, uintptr_t addr)
{
    return tnd_syscall2(TND_SYS_arch_prctl, code, (long)addr);
}

static inline long tnd_sys_clock_gettime(int clk, struct tnd_timespec *ts)
{
    return tnd_syscall2(TND_SYS_clock_gettime, clk, (long)ts);
}

static inline long tnd_sys_timerfd_settime(int fd, int flags,
                                           const struct tnd_itimerspec *new,
                                           struct tnd_itimerspec *old)
{
    return tnd_syscall4(TND_SYS_timerfd_settime, fd, flags, (long)new,
                        (long)old);
}

static inline long tnd_sys_epoll_pwait(int epfd, struct tnd_epoll_event *ev,
                                       int maxevents, int timeout)
{
    /* No signal mask: sigmask NULL, sigsetsize 0 (abi.md §8). */
    return tnd_syscall6(TND_SYS_epoll_pwait, epfd, (long)ev, maxevents,
                        timeout, 0, 0);
}

static inline __attribute__((noreturn)) void tnd_sys_exit_group(int status)
{
    for (;;)
        tnd_syscall1(TND_SYS_exit_group, status);
}

#endif /* TENDRIL_BINDINGS_SYSCALL_H */
