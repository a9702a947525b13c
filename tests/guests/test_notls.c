/*
 * test_notls: the FS base is 0 at boot.
 *
 * _start sets the FS base to 0, so a TLS access made before the application
 * sets up TLS (here %fs:0x28, where glibc keeps its stack canary) reads
 * address 0x28, which is unmapped: SIGSEGV (139). Reading the tender's TLS
 * instead would be a leak from the tender into the guest.
 */

#include "util.h"

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    uint64_t v;

    puts("\n**** Solo5 standalone test_notls ****\n\n");
    __asm__ __volatile__("movq %%fs:0x28, %0" : "=r"(v) : : "memory");
    FAIL("read %%fs:0x28 = 0x%lx without faulting", (unsigned long)v);
}
