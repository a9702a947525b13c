/*
 * hostile_mem: attacks on the guest's address space (abi.md §1, abi.md §6, abi.md §7).
 *
 * Guest memory is one RW mapping [0x10000, mem_size) with the ELF segments
 * mprotected to their flags (W^X); the stub image at 0x7e0000000000 is
 * unmapped before the guest runs; a one-page trampoline at 0x7dfffffff000
 * (R+X) that performed the last launch steps stays behind. Changing any
 * mapping needs a system call the filter forbids. Command line: one mode
 * word:
 *
 *   mmap, mprotect-text-rw, munmap-text, mremap-text    → SIGSYS (159)
 *   exec-data, exec-heap, exec-stack, exec-lowmem       code written there,
 *                                                       then called → SIGSEGV
 *   write-text, write-rodata                            → SIGSEGV
 *   read-stub, exec-stub       the stub's former image → SIGSEGV (unmapped)
 *   write-trampoline                                    → SIGSEGV (R+X)
 *   exec-trampoline   call it from the start: its first instruction is
 *                     munmap → SIGSYS
 *   read-null, read-zeropage-end, read-past-mem, write-past-mem,
 *   read-kernel                                         → SIGSEGV
 *   open-file, openat-file     read a host file          → SIGSYS
 */

#include "hostile.h"

#define STUB_BASE 0x7e0000000000UL
#define TRAMPOLINE 0x7dfffffff000UL
#define PROT_RWX 7
#define PROT_RW 3
#define MAP_PRIVATE_ANON_FIXED (0x02 | 0x20 | 0x10)
#define AT_FDCWD (-100L)

static uint8_t data_code[16] = { 0x90 }; /* initialised: lives in .data */
static const char rodata_text[] = "read-only";
static const char host_file[] = "/etc/passwd";

typedef void (*fn_t)(void);

/* Write "ret" at p and call it: returning means p was executable. */
static void plant_and_call(volatile uint8_t *p)
{
    p[0] = 0xc3;
    ((fn_t)OPAQUE((uintptr_t)p))();
}

static uint8_t peek(uintptr_t addr)
{
    return *(volatile uint8_t *)OPAQUE(addr);
}

static void poke(uintptr_t addr)
{
    *(volatile uint8_t *)OPAQUE(addr) = 0xcc;
}

int solo5_app_main(const struct solo5_start_info *si)
{
    char mode[32];
    const uint64_t mem = H_BOOT_INFO->mem_size;
    volatile uint8_t stack_code[16];
    uint8_t sink = 0;

    puts("\n**** hostile_mem ****\n");
    h_mode(si->cmdline, mode, sizeof mode);

    if (!u_strcmp(mode, "mmap"))
        H_TRY_SYSCALL(mode, H_SYS_mmap, 0x180000, 4096, PROT_RWX,
                      MAP_PRIVATE_ANON_FIXED, -1, 0);
    if (!u_strcmp(mode, "mprotect-text-rw")) {
        h_attempt(mode);
        long r = h_syscall6(H_SYS_mprotect, 0x100000, 4096, PROT_RW, 0, 0, 0);
        poke(0x100000);
        printf("ESCAPED %s returned %ld and .text was written\n", mode, r);
        return 42;
    }
    if (!u_strcmp(mode, "munmap-text"))
        H_TRY_SYSCALL(mode, H_SYS_munmap, 0x100000, 4096, 0, 0, 0, 0);
    if (!u_strcmp(mode, "mremap-text"))
        H_TRY_SYSCALL(mode, 25 /* mremap */, 0x100000, 4096, 8192, 0, 0, 0);

    if (!u_strcmp(mode, "exec-data"))
        H_TRY(mode, plant_and_call(data_code));
    if (!u_strcmp(mode, "exec-heap"))
        H_TRY(mode, plant_and_call((volatile uint8_t *)si->heap_start));
    if (!u_strcmp(mode, "exec-stack"))
        H_TRY(mode, plant_and_call(stack_code));
    if (!u_strcmp(mode, "exec-lowmem"))
        H_TRY(mode, plant_and_call((volatile uint8_t *)0x20000));

    if (!u_strcmp(mode, "write-text"))
        H_TRY(mode, poke((uintptr_t)solo5_app_main));
    if (!u_strcmp(mode, "write-rodata"))
        H_TRY(mode, poke((uintptr_t)rodata_text));

    if (!u_strcmp(mode, "read-stub"))
        H_TRY(mode, sink = peek(STUB_BASE));
    if (!u_strcmp(mode, "exec-stub"))
        H_TRY(mode, ((fn_t)OPAQUE(STUB_BASE))());
    if (!u_strcmp(mode, "write-trampoline"))
        H_TRY(mode, poke(TRAMPOLINE));
    if (!u_strcmp(mode, "exec-trampoline"))
        H_TRY(mode, ((fn_t)OPAQUE(TRAMPOLINE))());

    if (!u_strcmp(mode, "read-null"))
        H_TRY(mode, sink = peek(0));
    if (!u_strcmp(mode, "read-zeropage-end"))
        H_TRY(mode, sink = peek(0xfff8));
    if (!u_strcmp(mode, "read-past-mem"))
        H_TRY(mode, sink = peek(mem));
    if (!u_strcmp(mode, "write-past-mem"))
        H_TRY(mode, poke(mem + 0x1000));
    if (!u_strcmp(mode, "read-kernel"))
        H_TRY(mode, sink = peek(0xffffffff81000000UL));

    if (!u_strcmp(mode, "open-file"))
        H_TRY_SYSCALL(mode, H_SYS_open, host_file, 0, 0, 0, 0, 0);
    if (!u_strcmp(mode, "openat-file"))
        H_TRY_SYSCALL(mode, H_SYS_openat, AT_FDCWD, host_file, 0, 0, 0, 0);

    (void)sink;
    H_UNKNOWN_MODE(mode);
}
