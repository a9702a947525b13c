/*
 * test_xnor: is code readable? ("executable, not readable")
 *
 * Reads the first byte of solo5_app_main. On a platform with execute-only
 * pages the read would fault (SIGSEGV, 139), which is the property upstream
 * tests on OpenBSD/hvt. x86_64 Linux page tables cannot express "execute
 * but not read" (without memory protection keys, which no tender here
 * uses), so on both tendril and the reference the read succeeds and the
 * guest prints FAILURE and exits 1. That status is the expected result:
 * the guest documents the limit of the platform. See README.md.
 */

#include "util.h"

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    volatile const uint8_t *p =
        OPAQUE((volatile const uint8_t *)(uintptr_t)solo5_app_main);

    puts("\n**** Solo5 standalone test_xnor ****\n\n");
    uint8_t v = *p;
    FAIL("read .text at %p (0x%x): code is readable", (void *)p,
         (unsigned)v);
}
