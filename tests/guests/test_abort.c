/*
 * test_abort: solo5_abort() stops the guest with status 255.
 *
 * The bindings log "Solo5: solo5_abort() called" (INFO level) and exit
 * with SOLO5_EXIT_ABORT.
 */

#include "util.h"

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    puts("\n**** Solo5 standalone test_abort ****\n\n");
    solo5_abort();
}
