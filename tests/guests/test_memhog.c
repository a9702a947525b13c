/*
 * test_memhog: touches its memory one page at a time, from the heap up to
 * just below the stack, and says how far it got every MiB. With guest
 * memory larger than its memory cgroup allows (tendril run --isolate
 * --mem-limit), the cgroup's OOM killer ends it (SIGKILL, 137) part way;
 * with enough memory it touches everything and prints SUCCESS.
 * Args: `N` stops after N MiB (default: all of the heap); `hold` then
 * waits (solo5_yield) until killed instead of exiting, for tests that look
 * at a live guest.
 */

#include "util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
/* Left to the stack, which grows down from the top of guest memory. */
#define STACK_RESERVE (64UL << 10)

int solo5_app_main(const struct solo5_start_info *si)
{
    puts("\n**** Solo5 standalone test_memhog ****\n\n");
    unsigned long start = (si->heap_start + PAGE - 1) & ~(PAGE - 1);
    unsigned long end = (si->heap_start + si->heap_size - STACK_RESERVE) & ~(PAGE - 1);
    long long limit = u_cmdline_number(si->cmdline, -1);
    if (limit >= 0 && start + (unsigned long)limit * MIB < end)
        end = start + (unsigned long)limit * MIB;
    printf("touching 0x%lx..0x%lx (%lu MiB)\n", start, end, (end - start) / MIB);
    unsigned long n = 0;
    for (unsigned long p = start; p < end; p += PAGE) {
        *(volatile unsigned char *)p = 0xa5;
        if (((p + PAGE - start) & (MIB - 1)) == 0)
            printf("touched %lu MiB\n", ++n);
    }
    puts("SUCCESS\n");
    for (const char *c = si->cmdline; *c; c++)
        if (c[0] == 'h' && c[1] == 'o' && c[2] == 'l' && c[3] == 'd') {
            puts("holding\n");
            for (;;)
                solo5_yield(solo5_clock_monotonic() + 1000000000ULL, NULL);
        }
    return 0;
}
