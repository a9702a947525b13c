/*
 * test_globals: initialised data is loaded and writable, bss is zeroed.
 *
 * `success` lives in .data with the text "RUCCESS"; incrementing its first
 * character at run time must give "SUCCESS", which proves the initial value
 * came from the image and that the data segment is mapped writable.
 */

#include "util.h"

char success[] = "RUCCESS\n";
unsigned long zeroed[64];

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    /* Through a pointer the compiler cannot see through, so the write and
     * the read really go to memory. */
    volatile char *s = OPAQUE((volatile char *)success);
    volatile unsigned long *z = OPAQUE((volatile unsigned long *)zeroed);

    puts("\n**** Solo5 standalone test_globals ****\n\n");

    for (int i = 0; i < 64; i++) {
        if (z[i] != 0)
            FAIL("bss word %d is not zero", i);
    }
    s[0]++;
    puts((const char *)success);
    return SOLO5_EXIT_SUCCESS;
}
