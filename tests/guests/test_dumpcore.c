/*
 * test_dumpcore: abort on a tender that cannot write core files.
 *
 * Upstream uses this guest to make hvt dump a core file on abort; spt has
 * no core dumps, so solo5_abort() just logs "Solo5: solo5_abort() called"
 * and exits 255.
 */

#include "util.h"

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    puts("\n**** Solo5 standalone test_dumpcore ****\n\n");
    solo5_abort();
}
