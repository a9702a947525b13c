/*
 * test_exception: a write far outside guest memory kills the guest.
 *
 * 16 GiB is above any guest memory size the tests use, so the address is
 * not mapped; the tender installs no signal handlers, so the fault kills
 * the process with SIGSEGV (host status 139). Surviving is a failure.
 */

#include "util.h"

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    volatile uint64_t *p = OPAQUE((volatile uint64_t *)(16ULL << 30));

    puts("\n**** Solo5 standalone test_exception ****\n\n");
    *p = 0xdeadbeef;
    FAIL("write to %p did not fault", (void *)p);
}
