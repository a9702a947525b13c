/*
 * test_blk_ro: a read-only block device.
 *
 * Device: BLOCK_BASIC "storage" (test_blk_ro.json), backed by a host file
 * or fd the tender could only open for reading. The write of block 0 is a
 * valid request, so the bindings pass it to pwrite64, the host refuses it
 * (EBADF) and the guest sees SOLO5_R_EUNSPEC. Reading block 0 still works.
 * Prints SUCCESS and exits 0.
 */

#include "util.h"

int solo5_app_main(const struct solo5_start_info *si)
{
    struct solo5_block_info info;
    solo5_handle_t h;

    puts("\n**** Solo5 standalone test_blk_ro ****\n\n");

    if (solo5_block_acquire("storage", &h, &info) != SOLO5_R_OK)
        FAIL("could not acquire block device 'storage'");
    if (info.block_size == 0 || info.block_size * 2 > si->heap_size / 2)
        FAIL("bad block size %lu", (unsigned long)info.block_size);

    uint8_t *buf = (uint8_t *)si->heap_start;
    for (uint64_t i = 0; i < info.block_size; i++)
        buf[i] = (uint8_t)i;

    solo5_result_t r = solo5_block_write(h, 0, buf, info.block_size);
    if (r != SOLO5_R_EUNSPEC)
        FAIL("write to a read-only device returned %d, expected EUNSPEC (%d)",
             (int)r, (int)SOLO5_R_EUNSPEC);
    r = solo5_block_read(h, 0, buf, info.block_size);
    if (r != SOLO5_R_OK)
        FAIL("read of block 0 returned %d", (int)r);

    puts("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
