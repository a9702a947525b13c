/*
 * test_quiet: the --solo5:quiet option.
 *
 * Run with the argument "--solo5:quiet". The bindings consume it, so the
 * guest's command line is empty, and lower their log level to ERROR: the
 * boot banner and the "Solo5: solo5_exit(0) called" line must not appear.
 * The checker looks for SUCCESS and for the absence of any "Solo5:" line.
 * (The title says test_verbose, as upstream's does.)
 */

#include "util.h"

int solo5_app_main(const struct solo5_start_info *si)
{
    puts("\n**** Solo5 standalone test_verbose ****\n\n");

    /* The option is for the bindings; the application must not see it. */
    if (si->cmdline[0] != '\0')
        FAIL("command line is '%s', expected ''", si->cmdline);

    puts("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
