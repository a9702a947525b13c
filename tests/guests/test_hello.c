/*
 * test_hello: console output and command-line passing.
 *
 * Run with the argument "Hello_Solo5": the guest must see exactly that
 * string as its command line (the tender joins argv words with spaces and
 * the bindings strip nothing else). Prints SUCCESS only in that case, but
 * exits 0 either way: the output, not the status, is what is checked.
 */

#include "util.h"

int solo5_app_main(const struct solo5_start_info *si)
{
    puts("\n**** Solo5 standalone test_hello ****\n\n");
    puts("Hello, World\n");
    printf("Command line is: '%s'\n", si->cmdline);

    if (u_strcmp(si->cmdline, "Hello_Solo5") == 0)
        puts("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
