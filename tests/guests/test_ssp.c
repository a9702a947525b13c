/*
 * test_ssp: the stack protector catches a smashed stack.
 *
 * smash() overruns its local buffer over the canary. On return the check
 * fails and __stack_chk_fail() prints "Solo5: ABORT: Stack corruption
 * detected" and exits 255. The overrun length comes through OPAQUE so the
 * compiler neither warns about it nor optimises it away.
 */

#include "util.h"

static __attribute__((noinline)) void smash(size_t n)
{
    char buf[16];
    volatile char *p = buf;

    for (size_t i = 0; i < n; i++)
        p[i] = 'A';
}

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    puts("\n**** Solo5 standalone test_ssp ****\n\n");
    smash(OPAQUE((size_t)32));
    FAIL("stack corruption was not detected");
}
