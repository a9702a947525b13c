/*
 * test_forever: runs until something ends it. Prints "ready", then yields
 * in one-second steps forever, printing "tick N" after each. Tests use it
 * for everything that must happen to a running guest: signals (SIGTERM,
 * SIGSTOP/SIGCONT), kills, timeouts, a dying supervisor.
 */

#include "util.h"

#define NSEC_PER_SEC 1000000000ULL

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    puts("ready\n");
    for (unsigned long n = 1;; n++) {
        solo5_yield(solo5_clock_monotonic() + NSEC_PER_SEC, NULL);
        printf("tick %lu\n", n);
    }
}
