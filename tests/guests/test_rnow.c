/*
 * test_rnow: read-only data is not writable.
 *
 * `message` is const, so it lives in .rodata, which is mapped R on tendril
 * (its own segment) and R+X on the reference. Writing it must die with
 * SIGSEGV (139) on both.
 */

#include "util.h"

const char message[] = "read-only";

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    volatile char *p = OPAQUE((volatile char *)(uintptr_t)message);

    puts("\n**** Solo5 standalone test_rnow ****\n\n");
    p[0] = 'R';
    FAIL("write to .rodata at %p did not fault", (void *)p);
}
