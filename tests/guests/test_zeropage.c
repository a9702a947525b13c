/*
 * test_zeropage: the first page(s) of the guest address space are unmapped.
 *
 * [0, 0x10000) is never mapped by the tender, so a NULL-ish pointer write
 * (address 8, like a field of a NULL struct pointer) must die with SIGSEGV
 * (139).
 */

#include "util.h"

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    volatile int *p = OPAQUE((volatile int *)8);

    puts("\n**** Solo5 standalone test_zeropage ****\n\n");
    *p = 1;
    FAIL("write to %p did not fault", (void *)p);
}
