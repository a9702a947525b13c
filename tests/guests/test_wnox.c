/*
 * test_wnox: writable data is not executable ("writable, not executable").
 *
 * `code` is initialised, so it lands in .data (RW, no X). Calling it must
 * die with SIGSEGV (139) on the instruction fetch. If the page were
 * executable, the single `ret` would return and the guest would report
 * FAILURE.
 */

#include "util.h"

uint8_t code[16] = { 0xc3 }; /* ret */

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    void (*fn)(void) = OPAQUE((void (*)(void))(uintptr_t)code);

    puts("\n**** Solo5 standalone test_wnox ****\n\n");
    fn();
    FAIL("executed .data at %p", (void *)code);
}
