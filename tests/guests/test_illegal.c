/*
 * test_illegal: executes ud2, the instruction x86 defines to be invalid.
 * The CPU raises #UD, the kernel sends SIGILL (si_code ILL_ILLOPN, the
 * address of the instruction), and with no handler the guest dies: 132.
 * tendril's monitor must name the instruction's address. Surviving is a
 * failure.
 */

#include "util.h"

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    puts("\n**** Solo5 standalone test_illegal ****\n\n");
    __asm__ volatile("ud2");
    FAIL("ud2 did not trap");
}
