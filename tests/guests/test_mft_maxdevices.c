/*
 * test_mft_maxdevices: a manifest with the most devices allowed.
 *
 * test_mft_maxdevices.json declares 63 BLOCK_BASIC devices, storage0 to
 * storage62: with the reserved entry 0 that fills all 64 manifest slots
 * (and all 64 bits of solo5_handle_set_t). The tender must attach all of
 * them (upstream uses 4 KiB images). The guest acquires the first and the
 * last, checks that their handles are their manifest indices (1 and 63)
 * and reads block 0 of each, which exercises the seccomp rules of both
 * ends of the list. Prints SUCCESS and exits 0.
 */

#include "util.h"

static int check(const char *name, solo5_handle_t want, uint8_t *buf)
{
    struct solo5_block_info info;
    solo5_handle_t h;

    if (solo5_block_acquire(name, &h, &info) != SOLO5_R_OK) {
        printf("FAILURE: could not acquire '%s'\n", name);
        return -1;
    }
    printf("%s: handle %lu, capacity %lu\n", name, (unsigned long)h,
           (unsigned long)info.capacity);
    if (h != want) {
        printf("FAILURE: '%s' has handle %lu, expected %lu\n", name,
               (unsigned long)h, (unsigned long)want);
        return -1;
    }
    if (solo5_block_read(h, 0, buf, info.block_size) != SOLO5_R_OK) {
        printf("FAILURE: read of block 0 of '%s'\n", name);
        return -1;
    }
    return 0;
}

int solo5_app_main(const struct solo5_start_info *si)
{
    uint8_t *buf = (uint8_t *)si->heap_start;

    puts("\n**** Solo5 standalone test_mft_maxdevices ****\n\n");

    if (check("storage0", 1, buf) < 0 || check("storage62", 63, buf) < 0)
        return SOLO5_EXIT_FAILURE;

    puts("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
