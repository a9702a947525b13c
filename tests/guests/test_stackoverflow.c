/*
 * test_stackoverflow: unbounded recursion. The spt stack starts at the top
 * of guest memory and grows down through the heap with no guard page
 * (abi.md §1), so the overflow runs silently over the heap and the image's
 * writable data until it reaches a read-only page (.tdata, .rodata) and
 * faults there, with the stack pointer right at the fault. tendril's
 * monitor must say it was the stack. Surviving is a failure.
 */

#include "util.h"

/* The recursion is the point. */
#pragma GCC diagnostic ignored "-Winfinite-recursion"

static unsigned long depth(volatile char *prev)
{
    volatile char frame[4096];
    frame[0] = prev ? prev[0] + 1 : 1;
    frame[4095] = frame[0];
    /* Used after the call, so the recursion cannot become a loop. */
    return depth(frame) + frame[4095];
}

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    puts("\n**** Solo5 standalone test_stackoverflow ****\n\n");
    unsigned long d = depth(0);
    FAIL("recursion returned %lu", d);
}
