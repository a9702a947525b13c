/*
 * hostile_args: allowed system calls with arguments the policy refuses.
 *
 * Every core rule of abi.md §7 pins its first argument (fd 1, the epoll fd,
 * the timer fd, CLOCK_MONOTONIC/REALTIME, ARCH_SET_FS), and the filter
 * compares all 64 bits of it. Command line: one mode word (table below).
 * The epoll and timer fds come from the boot info at 0x11000; a legal call
 * on the right fd runs first and prints "OK control", proving the guest
 * aims at the real fds and only the wrong argument is refused.
 */

#include "hostile.h"

#define CLOCK_REALTIME 0
#define CLOCK_MONOTONIC 1
#define ARCH_SET_GS 0x1001
#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003
#define ARCH_GET_GS 0x1004
#define ARCH_SET_CPUID 0x1012
#define ARCH_MAP_VDSO_64 0x2003
#define HI (1L << 32)

static const char msg[] = "ESCAPED: written with a refused argument\n";

struct attack {
    const char *mode;
    long nr;
    long a, b, c, d;
};

int solo5_app_main(const struct solo5_start_info *si)
{
    char mode[40];
    long epfd = H_BOOT_INFO->epollfd, tfd = H_BOOT_INFO->timerfd;
    struct tnd_ts { int64_t sec, nsec; } ts[2] = { { 0, 0 }, { 0, 0 } };
    uint8_t ev[12 * 4];
    const long buf = (long)msg, len = sizeof msg - 1;
    const struct attack attacks[] = {
        /* write(2): only fd 1 (and tap fds) */
        { "write-fd0", H_SYS_write, 0, buf, len, 0 },
        { "write-fd2", H_SYS_write, 2, buf, len, 0 },
        { "write-fd3", H_SYS_write, 3, buf, len, 0 },
        { "write-fd1-high-bits", H_SYS_write, 1 | HI, buf, len, 0 },
        { "write-epollfd", H_SYS_write, epfd, buf, len, 0 },
        { "write-timerfd", H_SYS_write, tfd, buf, 8, 0 },
        /* read(2): no rule at all without a tap */
        { "read-fd0", H_SYS_read, 0, (long)ev, 1, 0 },
        { "read-timerfd", H_SYS_read, tfd, (long)ev, 8, 0 },
        /* clock_gettime: CLOCK_REALTIME and CLOCK_MONOTONIC only */
        { "clock-process-cputime", H_SYS_clock_gettime, 2, (long)ts, 0, 0 },
        { "clock-thread-cputime", H_SYS_clock_gettime, 3, (long)ts, 0, 0 },
        { "clock-monotonic-raw", H_SYS_clock_gettime, 4, (long)ts, 0, 0 },
        { "clock-realtime-coarse", H_SYS_clock_gettime, 5, (long)ts, 0, 0 },
        { "clock-boottime", H_SYS_clock_gettime, 7, (long)ts, 0, 0 },
        { "clock-tai", H_SYS_clock_gettime, 11, (long)ts, 0, 0 },
        { "clock-minus-one", H_SYS_clock_gettime, -1, (long)ts, 0, 0 },
        { "clock-monotonic-high-bits", H_SYS_clock_gettime,
          CLOCK_MONOTONIC | HI, (long)ts, 0, 0 },
        /* arch_prctl: ARCH_SET_FS only */
        { "arch_prctl-get-fs", H_SYS_arch_prctl, ARCH_GET_FS, (long)ts, 0, 0 },
        { "arch_prctl-set-gs", H_SYS_arch_prctl, ARCH_SET_GS, 0x100000, 0, 0 },
        { "arch_prctl-get-gs", H_SYS_arch_prctl, ARCH_GET_GS, (long)ts, 0, 0 },
        { "arch_prctl-set-cpuid", H_SYS_arch_prctl, ARCH_SET_CPUID, 0, 0, 0 },
        { "arch_prctl-map-vdso", H_SYS_arch_prctl, ARCH_MAP_VDSO_64,
          0x180000, 0, 0 },
        { "arch_prctl-set-fs-high-bits", H_SYS_arch_prctl, ARCH_SET_FS | HI, 0,
          0, 0 },
        /* epoll_pwait: the tender's epoll fd only */
        { "epoll_pwait-timerfd", H_SYS_epoll_pwait, tfd, (long)ev, 1, 0 },
        { "epoll_pwait-stdout", H_SYS_epoll_pwait, 1, (long)ev, 1, 0 },
        { "epoll_pwait-bad-fd", H_SYS_epoll_pwait, H_BAD_FD, (long)ev, 1, 0 },
        { "epoll_pwait-epollfd-high-bits", H_SYS_epoll_pwait, epfd | HI,
          (long)ev, 1, 0 },
        /* timerfd_settime: the tender's timer fd only */
        { "timerfd_settime-epollfd", H_SYS_timerfd_settime, epfd, 0, (long)ts,
          0 },
        { "timerfd_settime-bad-fd", H_SYS_timerfd_settime, H_BAD_FD, 0,
          (long)ts, 0 },
        { "timerfd_settime-timerfd-high-bits", H_SYS_timerfd_settime, tfd | HI,
          0, (long)ts, 0 },
        /* exit(2) is not exit_group(2) */
        { "exit", H_SYS_exit, 0, 0, 0, 0 },
    };

    puts("\n**** hostile_args ****\n");
    h_mode(si->cmdline, mode, sizeof mode);
    printf("epollfd %ld timerfd %ld\n", epfd, tfd);

    /* Controls: the right fds and ids work. */
    long r = h_syscall6(H_SYS_epoll_pwait, epfd, (long)ev, 1, 0, 0, 0);
    if (r < 0)
        FAIL("control epoll_pwait(epollfd) = %ld", r);
    r = h_syscall6(H_SYS_timerfd_settime, tfd, 0, (long)ts, 0, 0, 0);
    if (r < 0)
        FAIL("control timerfd_settime(timerfd) = %ld", r);
    r = h_syscall6(H_SYS_clock_gettime, CLOCK_REALTIME, (long)ts, 0, 0, 0, 0);
    if (r < 0)
        FAIL("control clock_gettime(CLOCK_REALTIME) = %ld", r);
    r = h_syscall6(H_SYS_arch_prctl, ARCH_SET_FS, 0, 0, 0, 0, 0);
    if (r < 0)
        FAIL("control arch_prctl(ARCH_SET_FS, 0) = %ld", r);
    puts("OK control\n");

    for (size_t i = 0; i < sizeof attacks / sizeof attacks[0]; i++) {
        const struct attack *x = &attacks[i];

        if (u_strcmp(mode, x->mode) == 0)
            H_TRY_SYSCALL(x->mode, x->nr, x->a, x->b, x->c, x->d, 0, 0);
    }
    H_UNKNOWN_MODE(mode);
}
