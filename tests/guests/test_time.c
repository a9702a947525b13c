/*
 * test_time: clocks and solo5_yield() timing.
 *
 * - the monotonic clock advances;
 * - solo5_yield() with a deadline in the past (0, and "now - 1") returns;
 * - five solo5_yield(now + 1 s) calls each sleep 1 s +/- 200 ms, and with
 *   no network device the ready set comes back empty;
 * - the wall clock is past 2017-01-01.
 * Prints SUCCESS and exits 0 after about 5 seconds.
 */

#include "util.h"

#define NSEC_PER_SEC 1000000000ULL
#define NSEC_PER_MSEC 1000000ULL
#define WALL_2017 (1483228800ULL * NSEC_PER_SEC)

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    puts("\n**** Solo5 standalone test_time ****\n\n");

    solo5_time_t t0 = solo5_clock_monotonic();
    solo5_time_t t1 = t0;
    for (int i = 0; i < 1000000 && t1 == t0; i++)
        t1 = solo5_clock_monotonic();
    if (t1 <= t0)
        FAIL("monotonic clock does not advance (%lu)", (unsigned long)t0);

    solo5_handle_set_t ready = ~0ULL;
    solo5_yield(0, &ready);
    if (ready != 0)
        FAIL("yield(0) reported ready set 0x%lx", (unsigned long)ready);
    solo5_yield(solo5_clock_monotonic() - 1, NULL);

    for (int i = 0; i < 5; i++) {
        solo5_time_t start = solo5_clock_monotonic();
        ready = ~0ULL;
        solo5_yield(start + NSEC_PER_SEC, &ready);
        solo5_time_t ms = (solo5_clock_monotonic() - start) / NSEC_PER_MSEC;

        printf("yield %d: slept %lu ms\n", i + 1, (unsigned long)ms);
        if (ms < 800 || ms > 1200)
            FAIL("slept %lu ms, expected 1000 +/- 200", (unsigned long)ms);
        if (ready != 0)
            FAIL("ready set 0x%lx without devices", (unsigned long)ready);
    }

    solo5_time_t wall = solo5_clock_wall();
    if (wall < WALL_2017)
        FAIL("wall clock %lu s is before 2017", (unsigned long)(wall / NSEC_PER_SEC));

    puts("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
