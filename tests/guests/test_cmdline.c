/*
 * test_cmdline: reports the length and the last byte of the command line the
 * tender passed, so a test can check that an argument of the maximum length
 * (8191 bytes, abi.md §2) arrives whole, which printing it could not show.
 */
#include "util.h"

int solo5_app_main(const struct solo5_start_info *si)
{
    size_t n = u_strlen(si->cmdline);

    printf("cmdline length %u, last byte '%c'\n", (unsigned)n, n ? si->cmdline[n - 1] : '-');
    return 0;
}
