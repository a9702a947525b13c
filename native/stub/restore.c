/*
 * Restore (PLAN_SECTION_RESTORE): the guest continues from a snapshot
 * instead of starting at its entry point.
 *
 * Everything else is the launch of a fresh guest: guest memory is the
 * plan's regions (the snapshot's memory file, mapped MAP_PRIVATE, so a
 * restore costs only what the guest touches and clones share the page
 * cache), the fds are at the same numbers, the filter is the one the
 * supervisor compiled from the manifest, the stub unmaps itself. What
 * differs is the jump (the supervisor has already refused a snapshot from a
 * CPU with features, XCR0 components or an XSAVE layout this one lacks, and
 * chosen the XRSTOR mask):
 *   - the guest resumes just after its epoll_pwait with rax = 0: the wait
 *     returned no event, so its yield returns as if its deadline had passed,
 *     with no device ready, at once (waiting for a timer to fire would cost
 *     a timer interrupt's latency); the tender's new timerfd is armed with
 *     the guest's deadline if that is still ahead;
 *   - fs and gs base are set with arch_prctl, the x87/SSE/AVX state is
 *     loaded with XRSTOR (FXRSTOR without XSAVE), all before the filter;
 *   - a trampoline page loads every general register and the flags and
 *     jumps to the saved rip, after munmap of the stub and seccomp.
 * PKRU is left as the kernel set it: it belongs to the execute-only key the
 * kernel allocated for this process's text, not to the snapshot.
 *
 * Included by stub.c (one translation unit, no libc).
 */

#define NR_arch_prctl 158
#define ARCH_SET_GS 0x1001
#define ARCH_SET_FS 0x1002
#define USER_ADDR_LIMIT 0x800000000000ul
/* Flags user code may hold and popfq may set: CF, reserved 1, PF, AF, ZF, SF, IF, DF, OF, AC, ID. */
#define RFLAGS_ALLOWED 0x240ed7ul

static struct snapshot_cpu restore_cpu;
static u8 restore_xsave[SNAPSHOT_MAX_XSAVE] __attribute__((aligned(64)));
static u64 restore_rfbm;
static u64 restore_timer_ns;
static int restoring;

static long sys_arch_prctl(int code, u64 addr) { return syscall6(NR_arch_prctl, code, (long)addr, 0, 0, 0, 0); }
static long sys_timerfd_settime(int fd, int flags, const long its[4]) { return syscall6(NR_timerfd_settime, fd, flags, (long)its, 0, 0, 0); }

/* MXCSR bits this CPU implements (FXSAVE's MXCSR_MASK; 0 means the architectural default). */
static u32 mxcsr_mask(void)
{
    static u8 area[512] __attribute__((aligned(16)));
    __asm__ volatile("fxsave64 %0" : "=m"(area));
    u32 m = get_u32(area + 28);
    return m ? m : 0xffbf;
}

/*
 * What would make XRSTOR (or FXRSTOR) fault, checked without cpuid: the
 * supervisor has matched the saved CPU against this one (features, XCR0,
 * layout) and chosen the mask; these checks keep a bad plan from crashing
 * the stub instead of being refused.
 */
static void check_xsave(void)
{
    const u8 *x = restore_xsave;
    if (get_u32(x + 24) & ~mxcsr_mask())
        die("restoring the guest", "its MXCSR has bits this CPU does not implement");
    if (!(restore_cpu.flags & SNAPSHOT_CPU_F_XSAVE)) {
        if (restore_cpu.xsave_size != 512 || restore_rfbm)
            malformed("FXSAVE area size or mask");
        return;
    }
    if ((restore_cpu.xcr0 & 3) != 3 || (restore_rfbm & ~restore_cpu.xcr0) || restore_cpu.xsave_size < 576)
        malformed("XSAVE state components or area size");
    if (restore_rfbm & ~xgetbv0())
        die("restoring the guest", "its XSAVE state has components this CPU does not enable");
    u64 xstate_bv = (u64)get_u32(x + 512) | (u64)get_u32(x + 516) << 32;
    for (u32 o = 520; o < 576; o++)
        if (x[o])
            malformed("XSAVE header not in standard form");
    if (xstate_bv & ~restore_cpu.xcr0)
        malformed("XSAVE header names components outside XCR0");
    for (u32 i = 2; i < SNAPSHOT_XSAVE_COMPONENTS; i++) {
        const u8 *c = restore_cpu.xsave_layout + 8 * i;
        if (((restore_rfbm >> i) & 1) && (u64)get_u32(c) + get_u32(c + 4) > restore_cpu.xsave_size)
            malformed("XSAVE component beyond the area");
    }
}

/* After read_sections: a restore section is complete and loadable; else nothing runs. */
static void restore_check(void)
{
    if (!sections[PLAN_SECTION_RESTORE].data)
        return;
    u32 len = sections[PLAN_SECTION_RESTORE].len;
    const u8 *src = sections[PLAN_SECTION_RESTORE].data;
    struct restore_header head;
    if (len < sizeof head + sizeof restore_cpu)
        malformed("restore section too short");
    u8 *dst = (u8 *)&head;
    for (u32 i = 0; i < sizeof head; i++)
        dst[i] = src[i];
    src += sizeof head;
    restore_rfbm = head.rfbm;
    restore_timer_ns = head.timer_ns;
    dst = (u8 *)&restore_cpu;
    for (u32 i = 0; i < sizeof restore_cpu; i++)
        dst[i] = src[i];
    if (restore_cpu.magic != SNAPSHOT_CPU_MAGIC || restore_cpu.reserved || (restore_cpu.flags & ~(u32)SNAPSHOT_CPU_F_XSAVE))
        malformed("restore section header");
    if (restore_cpu.xsave_size > SNAPSHOT_MAX_XSAVE || len != sizeof head + sizeof restore_cpu + restore_cpu.xsave_size)
        malformed("restore section size");
    if (restore_cpu.rip != hdr.entry)
        malformed("restore point and entry point disagree");
    if (restore_cpu.rflags & ~RFLAGS_ALLOWED)
        malformed("restored flags hold bits user code cannot set");
    if (restore_cpu.fs_base >= USER_ADDR_LIMIT || restore_cpu.gs_base >= USER_ADDR_LIMIT)
        malformed("restored fs or gs base outside user space");
    for (u32 i = 0; i < restore_cpu.xsave_size; i++)
        restore_xsave[i] = src[sizeof restore_cpu + i];
    check_xsave();
    restoring = 1;
}

/*
 * The last steps with the stub still mapped: the tender's timer, the
 * segment bases and the FPU/SSE/AVX state. The stub itself never touches
 * that state (-mgeneral-regs-only) and system calls preserve it, so it is
 * intact when the guest resumes.
 */
static void restore_prepare(void)
{
    /*
     * The timer as the guest armed it, if its deadline is still ahead. A
     * deadline already past (the usual case) leaves the new timer disarmed:
     * the guest cannot tell (every yield arms the timer before it waits), and
     * arming a timer costs a VM exit under virtualization.
     */
    long now[2] = { 0, 0 };
    syscall6(NR_clock_gettime, CLOCK_MONOTONIC, (long)now, 0, 0, 0, 0);
    if (restore_timer_ns > (u64)now[0] * 1000000000ul + (u64)now[1]) {
        const long its[4] = { 0, 0, (long)(restore_timer_ns / 1000000000ul), (long)(restore_timer_ns % 1000000000ul) };
        long r = sys_timerfd_settime(GUEST_FD_TIMER, TFD_TIMER_ABSTIME, its);
        if (r < 0)
            die_errno("timerfd_settime", "arming the restored guest's timer", r);
    }
    long r;
    if ((r = sys_arch_prctl(ARCH_SET_GS, restore_cpu.gs_base)) < 0 || (r = sys_arch_prctl(ARCH_SET_FS, restore_cpu.fs_base)) < 0)
        die_errno("arch_prctl", "restoring the guest's fs and gs base", r);
    if (restore_cpu.flags & SNAPSHOT_CPU_F_XSAVE)
        __asm__ volatile("xrstor64 %0" : : "m"(restore_xsave), "a"((u32)restore_rfbm), "d"((u32)(restore_rfbm >> 32)) : "memory");
    else
        __asm__ volatile("fxrstor64 %0" : : "m"(restore_xsave) : "memory");
}

/*
 * The restore trampoline: like the launch trampoline (munmap of the stub,
 * then seccomp), then every general register and the flags from the slots
 * at its end, and a jump to the saved rip. Flags are popped from their
 * slot (rsp points there for the popfq), so nothing is written below the
 * guest's stack pointer, where its red zone may hold data.
 */
extern const char restore_trampoline_start[], restore_trampoline_slots[], restore_trampoline_end[];
__asm__(
    ".section .rodata\n"
    ".globl restore_trampoline_start, restore_trampoline_slots, restore_trampoline_end\n"
    "restore_trampoline_start:\n"
    "    mov $11, %eax\n" /* munmap */
    "    syscall\n"
    "    test %rax, %rax\n"
    "    jnz 1f\n"
    "    mov $317, %eax\n" /* seccomp */
    "    mov $1, %edi\n"
    "    xor %esi, %esi\n"
    "    mov %r12, %rdx\n"
    "    syscall\n"
    "    test %rax, %rax\n"
    "    jnz 1f\n"
    "    lea 2f(%rip), %rsp\n"
    "    popfq\n"
    "    mov 2f+8(%rip), %rax\n"
    "    mov 2f+16(%rip), %rbx\n"
    "    mov 2f+24(%rip), %rcx\n"
    "    mov 2f+32(%rip), %rdx\n"
    "    mov 2f+40(%rip), %rsi\n"
    "    mov 2f+48(%rip), %rdi\n"
    "    mov 2f+56(%rip), %rbp\n"
    "    mov 2f+64(%rip), %r8\n"
    "    mov 2f+72(%rip), %r9\n"
    "    mov 2f+80(%rip), %r10\n"
    "    mov 2f+88(%rip), %r11\n"
    "    mov 2f+96(%rip), %r12\n"
    "    mov 2f+104(%rip), %r13\n"
    "    mov 2f+112(%rip), %r14\n"
    "    mov 2f+120(%rip), %r15\n"
    "    mov 2f+128(%rip), %rsp\n"
    "    jmp *2f+136(%rip)\n"
    "1:  mov $231, %eax\n" /* exit_group(1) */
    "    mov $1, %edi\n"
    "    syscall\n"
    "    hlt\n"
    "    .balign 8\n"
    "restore_trampoline_slots:\n"
    "2:  .fill 18, 8, 0\n"
    "restore_trampoline_end:\n"
    ".text\n");

__attribute__((noreturn)) static void enter_restored(struct sock_fprog *prog)
{
    u64 len = (u64)(restore_trampoline_end - restore_trampoline_start);
    u64 slots = (u64)(restore_trampoline_slots - restore_trampoline_start);
    const struct snapshot_cpu *c = &restore_cpu;
    const u64 values[18] = {
        c->rflags, c->rax, c->rbx, c->rcx, c->rdx, c->rsi, c->rdi, c->rbp, c->r8, c->r9, c->r10, c->r11,
        c->r12, c->r13, c->r14, c->r15, c->rsp, c->rip,
    };
    long t = sys_mmap((void *)TRAMPOLINE_ADDR, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (t < 0)
        die_errno("mmap", "mapping the restore trampoline", t);
    u8 *page = (u8 *)TRAMPOLINE_ADDR;
    for (u64 i = 0; i < len; i++)
        page[i] = (u8)restore_trampoline_start[i];
    for (u32 i = 0; i < 18; i++)
        for (u32 b = 0; b < 8; b++)
            page[slots + 8 * i + b] = (u8)(values[i] >> (8 * b));
    long r = sys_mprotect((void *)TRAMPOLINE_ADDR, PAGE_SIZE, PROT_READ | PROT_EXEC);
    if (r < 0)
        die_errno("mprotect", "protecting the restore trampoline", r);

    u64 base = (u64)(unsigned long)__executable_start;
    u64 end = ((u64)(unsigned long)_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    register u64 r12 __asm__("r12") = (u64)(unsigned long)prog;
    __asm__ volatile("jmp *%3" : : "D"(base), "S"(end - base), "r"(r12), "r"((u64)TRAMPOLINE_ADDR) : "memory");
    __builtin_unreachable();
}
