/*
 * test_rnox: read-only data is not executable.
 *
 * `code` is const, so it lives in .rodata. tendril's linker script maps
 * .rodata in its own R (not X) segment, so calling it must die with SIGSEGV
 * (139). The reference layout keeps .rodata in the R+X text segment
 * (defect D3): there the `ret` runs, the call returns, and the guest prints
 * FAILURE and exits 1.
 */

#include "util.h"

const uint8_t code[16] = { 0xc3 }; /* ret */

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    void (*fn)(void) = OPAQUE((void (*)(void))(uintptr_t)code);

    puts("\n**** Solo5 standalone test_rnox ****\n\n");
    fn();
    FAIL("executed .rodata at %p", (void *)code);
}
