/*
 * hostile_abi: reach the kernel through another system call ABI.
 *
 * The filter's prologue (abi.md §7) kills any architecture other than
 * AUDIT_ARCH_X86_64 (bad-arch action KILL_PROCESS, D4) and any x86_64
 * number with the x32 bit (0x40000000) set. Command line: one mode word.
 *
 *   x32-write       x32 write(1, msg): an allowed call under the x32 bit
 *   x32-exit_group  x32 exit_group(0): the one unconditional rule, x32 bit set
 *   x32-getpid      x32 getpid
 *   x32-rt_sigaction  an x32-only number (512)
 *   int80-write     i386 write(1, msg) via int $0x80 (eax=4)
 *   int80-exit      i386 exit(0) via int $0x80 (eax=1)
 *   int80-exit_group  i386 exit_group(0) (eax=252)
 *   sysenter-write  i386 write(1, msg) via sysenter
 *   nr-high-bits    64-bit getpid with bit 32 of rax set (0x100000027):
 *                   the kernel uses the low 32 bits, and so must the filter
 *   nr-high-bits-write  write(1, msg) with bit 32 of rax set: allowed, like
 *                   write, since filter and kernel both see nr 1 (control)
 *   nr-minus-one    rax = -1
 *   vsyscall-time   call the legacy vsyscall page's time() entry; the kernel
 *                   emulates it as syscall 201, which the filter must see
 */

#include "hostile.h"

static const char msg[] = "ESCAPED: this line was written through a foreign ABI\n";

/* The low 4 GiB address of msg: guest memory is identity mapped below 4 GiB. */
#define MSG32 ((long)(uintptr_t)msg)
#define MSGLEN ((long)(sizeof msg - 1))

static long int80(long eax, long ebx, long ecx, long edx)
{
    long ret = eax;

    __asm__ __volatile__("int $0x80"
                         : "+a"(ret)
                         : "b"(ebx), "c"(ecx), "d"(edx)
                         : "memory");
    return ret;
}

static long sysenter(long eax, long ebx, long ecx, long edx)
{
    long ret = eax;

    /* The compat sysenter path takes the sixth argument from the user
     * stack at %ebp; point it at something readable. */
    __asm__ __volatile__("push %%rbp\n\t"
                         "mov %%rsp, %%rbp\n\t"
                         "sysenter\n\t"
                         "pop %%rbp"
                         : "+a"(ret)
                         : "b"(ebx), "c"(ecx), "d"(edx)
                         : "memory");
    return ret;
}

int solo5_app_main(const struct solo5_start_info *si)
{
    char mode[32];

    puts("\n**** hostile_abi ****\n");
    h_mode(si->cmdline, mode, sizeof mode);

    if (!u_strcmp(mode, "x32-write"))
        H_TRY_SYSCALL(mode, 0x40000000L | H_SYS_write, 1, msg, MSGLEN, 0, 0, 0);
    if (!u_strcmp(mode, "x32-exit_group"))
        H_TRY_SYSCALL(mode, 0x40000000L | H_SYS_exit_group, 0, 0, 0, 0, 0, 0);
    if (!u_strcmp(mode, "x32-getpid"))
        H_TRY_SYSCALL(mode, 0x40000000L | H_SYS_getpid, 0, 0, 0, 0, 0, 0);
    if (!u_strcmp(mode, "x32-rt_sigaction"))
        H_TRY_SYSCALL(mode, 0x40000000L | 512, 10, H_BAD_PTR, 0, 8, 0, 0);
    if (!u_strcmp(mode, "int80-write"))
        H_TRY(mode, int80(4, 1, MSG32, MSGLEN));
    if (!u_strcmp(mode, "int80-exit"))
        H_TRY(mode, int80(1, 0, 0, 0));
    if (!u_strcmp(mode, "int80-exit_group"))
        H_TRY(mode, int80(252, 0, 0, 0));
    if (!u_strcmp(mode, "sysenter-write"))
        H_TRY(mode, sysenter(4, 1, MSG32, MSGLEN));
    if (!u_strcmp(mode, "nr-high-bits"))
        H_TRY_SYSCALL(mode, 0x100000000L | H_SYS_getpid, 0, 0, 0, 0, 0, 0);
    if (!u_strcmp(mode, "nr-high-bits-write")) {
        /* Positive control: the same call as write(1), so it is allowed. */
        static const char ok[] = "OK nr-high-bits-write reached stdout\n";
        long r = h_syscall6(0x100000000L | H_SYS_write, 1, (long)ok,
                            sizeof ok - 1, 0, 0, 0);
        H_TRY_SYSCALL("getpid after nr-high-bits-write", H_SYS_getpid, r, 0,
                      0, 0, 0, 0);
    }
    if (!u_strcmp(mode, "nr-minus-one"))
        H_TRY_SYSCALL(mode, -1L, 0, 0, 0, 0, 0, 0);
    if (!u_strcmp(mode, "vsyscall-time")) {
        long (*vtime)(long *) = OPAQUE((long (*)(long *))0xffffffffff600400UL);
        H_TRY(mode, vtime(0));
    }
    H_UNKNOWN_MODE(mode);
}
