/*
 * test_xnow: code is not writable ("executable, not writable").
 *
 * Writes one byte over the start of solo5_app_main. The text segment is
 * mapped R+X, so the write must die with SIGSEGV (139).
 */

#include "util.h"

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    volatile uint8_t *p = OPAQUE((volatile uint8_t *)(uintptr_t)solo5_app_main);

    puts("\n**** Solo5 standalone test_xnow ****\n\n");
    *p = 0xc3; /* ret */
    FAIL("write to .text at %p did not fault", (void *)p);
}
