/*
 * test_snap_cpu: the CPU state a guest can observe is the same on both
 * sides of a yield, and so on both sides of a snapshot taken there.
 *
 * Before the yield the guest sets up state that the ABI keeps across calls
 * or that it holds in registers across the system call itself:
 *   - a TLS block of its own (solo5_set_tls_base), with a .tdata variable
 *     set to a value of its own: after the yield %fs must still reach it;
 *   - MXCSR with round-toward-zero and flush-to-zero, and the x87 control
 *     word with a directed rounding: a division computed before must give the same
 *     bits after (and not the round-to-nearest bits);
 *   - xmm0..xmm15 (and, where the CPU and kernel have AVX, the upper halves
 *     of ymm0..ymm15) and rbx, r12..r15 loaded with patterns, live across
 *     the yield's own timerfd_settime + epoll_pwait, made here in inline
 *     assembly so that nothing between the loads and the stores can touch
 *     them. The snapshot point is that epoll_pwait.
 * After the yield everything is compared; prints "AVX: checked" or
 * "AVX: not available", then SUCCESS. Run fresh it must pass as well.
 */

#include "util.h"

__thread volatile uint64_t tls_var = 0x1111;

static uint8_t tls_block[256] __attribute__((aligned(64)));

/* struct spt_boot_info at 0x11000 (abi.md §2): the tender's two fds. */
struct boot_info {
    uint64_t mem_size, kernel_end;
    const char *cmdline;
    const void *mft;
    int epollfd, timerfd;
};
#define BOOT_INFO ((const struct boot_info *)0x11000UL)

#define NREG 16
static uint8_t pattern[NREG][32] __attribute__((aligned(32)));
static uint8_t seen[NREG][32] __attribute__((aligned(32)));
static uint64_t gp_in[5], gp_out[5];

static bool have_avx(void)
{
    uint32_t a, b, c, d;
    __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(1), "c"(0));
    if (!((c >> 27) & 1) || !((c >> 28) & 1)) /* OSXSAVE, AVX */
        return false;
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 6) == 6; /* SSE and AVX state enabled */
}

static uint32_t get_mxcsr(void)
{
    uint32_t m;
    __asm__ volatile("stmxcsr %0" : "=m"(m));
    return m;
}

static uint16_t get_fpucw(void)
{
    uint16_t cw;
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    return cw;
}

/* One float and one x87 division whose last bits depend on the rounding modes. */
static void divide(uint32_t *f, uint64_t *x)
{
    volatile float a = OPAQUE(1.0f), b = OPAQUE(3.0f);
    union { float f; uint32_t u; } q = { .f = a / b };
    *f = q.u;
    long double la = OPAQUE(2.0L), lb = OPAQUE(3.0L);
    union { long double ld; uint64_t significand; } lq;
    /* 2/3: in gas's AT&T syntax this fdivp is st(1) = st(0) / st(1). */
    __asm__ volatile("fldt %1\n\tfldt %2\n\tfdivp\n\tfstpt %0" : "=m"(lq.ld) : "m"(lb), "m"(la));
    *x = lq.significand;
}

/* Every operand is memory at a fixed address: the asm below needs all 14 general registers. */
#define LOADS(op)                                                                                 \
    op " 0+%[p], %%xmm0\n\t" op " 32+%[p], %%xmm1\n\t" op " 64+%[p], %%xmm2\n\t"                   \
    op " 96+%[p], %%xmm3\n\t" op " 128+%[p], %%xmm4\n\t" op " 160+%[p], %%xmm5\n\t"                \
    op " 192+%[p], %%xmm6\n\t" op " 224+%[p], %%xmm7\n\t" op " 256+%[p], %%xmm8\n\t"               \
    op " 288+%[p], %%xmm9\n\t" op " 320+%[p], %%xmm10\n\t" op " 352+%[p], %%xmm11\n\t"             \
    op " 384+%[p], %%xmm12\n\t" op " 416+%[p], %%xmm13\n\t" op " 448+%[p], %%xmm14\n\t"            \
    op " 480+%[p], %%xmm15\n\t"
#define STORES(op)                                                                                \
    op " %%xmm0, 0+%[s]\n\t" op " %%xmm1, 32+%[s]\n\t" op " %%xmm2, 64+%[s]\n\t"                   \
    op " %%xmm3, 96+%[s]\n\t" op " %%xmm4, 128+%[s]\n\t" op " %%xmm5, 160+%[s]\n\t"                \
    op " %%xmm6, 192+%[s]\n\t" op " %%xmm7, 224+%[s]\n\t" op " %%xmm8, 256+%[s]\n\t"               \
    op " %%xmm9, 288+%[s]\n\t" op " %%xmm10, 320+%[s]\n\t" op " %%xmm11, 352+%[s]\n\t"             \
    op " %%xmm12, 384+%[s]\n\t" op " %%xmm13, 416+%[s]\n\t" op " %%xmm14, 448+%[s]\n\t"            \
    op " %%xmm15, 480+%[s]\n\t"
#define YLOAD(n) "vinsertf128 $1, " #n "*32+16+%[p], %%ymm" #n ", %%ymm" #n "\n\t"
#define YSTORE(n) "vextractf128 $1, %%ymm" #n ", " #n "*32+16+%[s]\n\t"
#define Y16(m) m(0) m(1) m(2) m(3) m(4) m(5) m(6) m(7) m(8) m(9) m(10) m(11) m(12) m(13) m(14) m(15)

static int64_t its[4];
static uint8_t events[12 * 2];
static long use_avx;
static long yield_rc;

/*
 * The yield with every register of interest live: timerfd_settime(timerfd,
 * TFD_TIMER_ABSTIME, its) then epoll_pwait(epollfd, events, 1, -1) until it
 * is not EINTR, exactly the calls of solo5_yield().
 */
static void yield_with_live_registers(void)
{
    __asm__ volatile(
        "mov 0+%[g], %%rbx\n\t"
        "mov 8+%[g], %%r12\n\t"
        "mov 16+%[g], %%r13\n\t"
        "mov 24+%[g], %%r14\n\t"
        "mov 32+%[g], %%r15\n\t"
        LOADS("movdqa")
        "cmpq $0, %[avx]\n\t"
        "je 1f\n\t"
        Y16(YLOAD)
        "1:\n\t"
        "mov $286, %%eax\n\t" /* timerfd_settime */
        "movslq %[tfd], %%rdi\n\t"
        "mov $1, %%esi\n\t"
        "lea %[its], %%rdx\n\t"
        "xor %%r10d, %%r10d\n\t"
        "syscall\n\t"
        "test %%rax, %%rax\n\t"
        "jnz 3f\n\t"
        "2:\n\t"
        "mov $281, %%eax\n\t" /* epoll_pwait */
        "movslq %[epfd], %%rdi\n\t"
        "lea %[ev], %%rsi\n\t"
        "mov $1, %%edx\n\t"
        "mov $-1, %%r10\n\t"
        "xor %%r8d, %%r8d\n\t"
        "mov $8, %%r9d\n\t"
        "syscall\n\t"
        "cmp $-4, %%rax\n\t"
        "je 2b\n\t"
        "3:\n\t"
        "mov %%rax, %[rc]\n\t"
        STORES("movdqa")
        "cmpq $0, %[avx]\n\t"
        "je 4f\n\t"
        Y16(YSTORE)
        "vzeroupper\n\t"
        "4:\n\t"
        "mov %%rbx, 0+%[o]\n\t"
        "mov %%r12, 8+%[o]\n\t"
        "mov %%r13, 16+%[o]\n\t"
        "mov %%r14, 24+%[o]\n\t"
        "mov %%r15, 32+%[o]\n\t"
        : [rc] "=m"(yield_rc), [s] "=m"(seen), [o] "=m"(gp_out), [ev] "=m"(events)
        : [g] "m"(gp_in), [p] "m"(pattern), [avx] "m"(use_avx), [tfd] "m"(BOOT_INFO->timerfd), [epfd] "m"(BOOT_INFO->epollfd), [its] "m"(its)
        : "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "memory", "xmm0", "xmm1",
          "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    puts("\n**** Solo5 standalone test_snap_cpu ****\n\n");
    bool avx = have_avx();

    /* TLS: our own block, our own value. */
    if (solo5_tls_init((uintptr_t)tls_block) != SOLO5_R_OK || solo5_set_tls_base(solo5_tls_tp_offset((uintptr_t)tls_block)) != SOLO5_R_OK)
        FAIL("TLS setup");
    tls_var = 0x5eedf00dcafe1234ULL;

    /* Rounding modes that change the result of 1/3 and 2/3. */
    uint32_t f_nearest;
    uint64_t x_nearest;
    divide(&f_nearest, &x_nearest);
    uint32_t mxcsr = (get_mxcsr() & ~0x6000u) | 0x6000u | 0x8000u; /* RC = toward zero, FTZ */
    __asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
    /* x87 RC = down, or up if down happens to round 2/3 as nearest does. */
    uint16_t cw = (uint16_t)((get_fpucw() & ~0x0c00u) | 0x0400u);
    __asm__ volatile("fldcw %0" : : "m"(cw));
    uint32_t f_before;
    uint64_t x_before;
    divide(&f_before, &x_before);
    if (x_before == x_nearest) {
        cw = (uint16_t)((cw & ~0x0c00u) | 0x0800u);
        __asm__ volatile("fldcw %0" : : "m"(cw));
        divide(&f_before, &x_before);
    }
    if (f_before == f_nearest || x_before == x_nearest)
        FAIL("the rounding modes did not change the results (%x %x, %lx %lx)", f_before, f_nearest, (unsigned long)x_before, (unsigned long)x_nearest);

    for (int r = 0; r < NREG; r++)
        for (int b = 0; b < 32; b++)
            pattern[r][b] = (uint8_t)(0x5a ^ (r * 37 + b * 11 + (b >> 4) * 101));
    for (int i = 0; i < 5; i++)
        gp_in[i] = 0x0123456789abcdefULL * (uint64_t)(i + 3) ^ 0xfedcba9876543210ULL;

    int64_t deadline = (int64_t)(solo5_clock_monotonic() + 1000000000ULL);
    its[2] = deadline / 1000000000LL;
    its[3] = (deadline % 1000000000LL) | 1;
    use_avx = avx;
    yield_with_live_registers();
    if (yield_rc < 0)
        FAIL("yield returned %ld", yield_rc);

    for (int r = 0; r < NREG; r++)
        for (int b = 0; b < (avx ? 32 : 16); b++)
            if (seen[r][b] != pattern[r][b])
                FAIL("%smm%d byte %d is 0x%x, expected 0x%x", b < 16 ? "x" : "y", r, b, seen[r][b], pattern[r][b]);
    for (int i = 0; i < 5; i++)
        if (gp_out[i] != gp_in[i])
            FAIL("callee-saved register %d changed", i);
    if (tls_var != 0x5eedf00dcafe1234ULL)
        FAIL("TLS variable is 0x%lx", (unsigned long)tls_var);
    if ((uintptr_t)&tls_var < (uintptr_t)tls_block || (uintptr_t)&tls_var >= (uintptr_t)tls_block + sizeof tls_block)
        FAIL("%%fs no longer points at our TLS block");
    if (get_mxcsr() != mxcsr || get_fpucw() != cw)
        FAIL("MXCSR 0x%x (expected 0x%x), x87 control word 0x%x (expected 0x%x)", get_mxcsr(), mxcsr, get_fpucw(), cw);
    uint32_t f_after;
    uint64_t x_after;
    divide(&f_after, &x_after);
    if (f_after != f_before || x_after != x_before)
        FAIL("divisions after the yield differ from before (%x vs %x)", f_after, f_before);

    printf("AVX: %s\n", avx ? "checked" : "not available");
    puts("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
