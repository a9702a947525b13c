/*
 * tendril hostile guests: the one shared "try this and report if it
 * survived" helper (in the spirit of bubblewrap's test helper).
 *
 * A hostile guest is a Solo5 spt guest that tries to leave its sandbox. The
 * protocol with tests/hostile.test.ts is plain text on the console:
 *
 *   ATTEMPT <what>          printed just before the attempt, so the test can
 *                           prove the guest got that far;
 *   ESCAPED <what> ...      printed if the attempt came back: the sandbox
 *                           failed, the test fails;
 *   RETURNED <what> = <r>   printed (instead of ESCAPED) for a system call the
 *                           test expects to come back with a kernel error
 *                           (the uprobe syscalls, see hostile_syscall.c);
 *   OK <what> ...           a positive control that must work (e.g. a legal
 *                           pread64), proving the guest found the right fds.
 *
 * Every attempt must end the process: SIGSYS (shell status 159) from the
 * seccomp filter, or SIGSEGV (139) from the page protections.
 *
 * Guests call the kernel directly with the `syscall` instruction, like the
 * bindings do, so the filter sees exactly the numbers and arguments written
 * here. They read the boot info at its fixed address (abi.md §2) instead of
 * trusting anything the bindings pass, because the bindings hand the
 * application only struct solo5_start_info.
 */

#ifndef TENDRIL_TEST_HOSTILE_H
#define TENDRIL_TEST_HOSTILE_H

#include "util.h"

/* x86_64 system call numbers used by more than one hostile guest. */
#define H_SYS_read 0
#define H_SYS_write 1
#define H_SYS_open 2
#define H_SYS_mmap 9
#define H_SYS_mprotect 10
#define H_SYS_munmap 11
#define H_SYS_pread64 17
#define H_SYS_pwrite64 18
#define H_SYS_dup 32
#define H_SYS_getpid 39
#define H_SYS_exit 60
#define H_SYS_arch_prctl 158
#define H_SYS_clock_gettime 228
#define H_SYS_exit_group 231
#define H_SYS_epoll_pwait 281
#define H_SYS_timerfd_settime 286
#define H_SYS_openat 257

/* An fd number no rule of any policy names. */
#define H_BAD_FD 0x7fffL
/* A pointer into nothing: below guest memory, above the zero page. */
#define H_BAD_PTR 0xdead000L

/* Raw 64-bit system call: rax = n, args in rdi rsi rdx r10 r8 r9. */
static inline long h_syscall6(long n, long a, long b, long c, long d, long e,
                              long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;

    __asm__ __volatile__("syscall"
                         : "=a"(ret)
                         : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8),
                           "r"(r9)
                         : "rcx", "r11", "memory");
    return ret;
}

/* struct spt_boot_info at SPT_BOOT_INFO_BASE (abi.md §2). */
struct h_boot_info {
    uint64_t mem_size;
    uint64_t kernel_end;
    const char *cmdline;
    const void *mft;
    int epollfd;
    int timerfd;
};

#define H_BOOT_INFO ((const volatile struct h_boot_info *)0x11000UL)

/* struct mft / struct mft_entry offsets (abi.md §5.2). */
#define H_MFT_HEADER 8
#define H_MFT_ENTRY 104
#define H_MFT_TYPE 68
#define H_MFT_CAPACITY 72
#define H_MFT_BLOCK_SIZE 80
#define H_MFT_HOSTFD 88
#define H_MFT_ATTACHED 96

struct h_device {
    int hostfd;
    uint64_t capacity;
    uint64_t block_size;
};

/* Host fd and geometry of the attached manifest entry `name`; false if none. */
static inline bool h_find_device(const char *name, struct h_device *out)
{
    const uint8_t *mft = (const uint8_t *)H_BOOT_INFO->mft;
    uint32_t entries = *(const uint32_t *)(mft + 4);

    for (uint32_t i = 1; i < entries && i < 64; i++) {
        const uint8_t *e = mft + H_MFT_HEADER + i * H_MFT_ENTRY;

        if (u_strcmp((const char *)e, name) != 0 || !e[H_MFT_ATTACHED])
            continue;
        out->hostfd = *(const int *)(e + H_MFT_HOSTFD);
        out->capacity = *(const uint64_t *)(e + H_MFT_CAPACITY);
        out->block_size = *(const uint16_t *)(e + H_MFT_BLOCK_SIZE);
        return true;
    }
    return false;
}

/*
 * The arguments after an optional leading "yield-first": with it the guest
 * first blocks once in solo5_yield() with a deadline in the future, the
 * point `tendril snapshot create` stops a guest at, so the attack runs in
 * the restored guest (tests/hostile-restore.test.ts).
 */
static inline const char *h_args(const char *cmdline)
{
    static const char word[] = "yield-first";

    while (*cmdline == ' ')
        cmdline++;
    for (size_t i = 0; i < sizeof word - 1; i++)
        if (cmdline[i] != word[i])
            return cmdline;
    if (cmdline[sizeof word - 1] != ' ' && cmdline[sizeof word - 1] != '\0')
        return cmdline;
    solo5_yield(solo5_clock_monotonic() + 1000000000ULL, NULL);
    puts("RESUMED after yield\n");
    cmdline += sizeof word - 1;
    while (*cmdline == ' ')
        cmdline++;
    return cmdline;
}

/* The first word of the command line (the attack to run), copied. */
static inline const char *h_mode(const char *cmdline, char *buf, size_t size)
{
    size_t n = 0;

    cmdline = h_args(cmdline);
    while (cmdline[n] && cmdline[n] != ' ' && n + 1 < size) {
        buf[n] = cmdline[n];
        n++;
    }
    buf[n] = '\0';
    return buf;
}

static inline void h_attempt(const char *what)
{
    printf("ATTEMPT %s\n", what);
}

/*
 * Try one system call that the sandbox must refuse. If it comes back, the
 * guest says so and stops with an exit status the test never accepts.
 */
#define H_TRY_SYSCALL(what, n, a, b, c, d, e, f)                              \
    do {                                                                      \
        h_attempt(what);                                                      \
        long h_r_ = h_syscall6((long)(n), (long)(a), (long)(b), (long)(c),   \
                               (long)(d), (long)(e), (long)(f));              \
        printf("ESCAPED %s returned %ld\n", what, h_r_);                      \
        return 42;                                                            \
    } while (0)

/* Try one memory access or jump that the page protections must refuse. */
#define H_TRY(what, stmt)                                                     \
    do {                                                                      \
        h_attempt(what);                                                      \
        stmt;                                                                 \
        printf("ESCAPED %s\n", what);                                         \
        return 42;                                                            \
    } while (0)

#define H_UNKNOWN_MODE(mode)                                                  \
    do {                                                                      \
        printf("UNKNOWN MODE '%s'\n", mode);                                  \
        return 2;                                                             \
    } while (0)

#endif
