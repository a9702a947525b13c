/*
 * test_blk: block device I/O and its argument checks.
 *
 * Device: BLOCK_BASIC "storage" (test_blk.json). Upstream runs it on a
 * 4 MiB image, with the default 512-byte sectors and again with
 * --block-sector-size:storage=4096.
 *
 * 1. Every 10th block, and the last block, is written with a pattern that
 *    depends on the block number, read back and compared.
 * 2. Requests the API does not allow must return SOLO5_R_EINVAL, for both
 *    read and write, without touching the device: an offset past the end,
 *    an offset equal to the capacity, a misaligned offset, a short size, a
 *    two-block size, and handles that are not this block device.
 * 3. A second solo5_block_acquire("storage") returns SOLO5_R_EINVAL (the
 *    "once per name" rule of solo5.h, which tendril's bindings enforce),
 *    as do an unknown name and a NULL info pointer.
 * Prints SUCCESS and exits 0.
 */

#include "util.h"

static void fill(uint8_t *buf, size_t n, uint64_t block)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(block * 7 + i * 13 + (i >> 8));
}

static bool same(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i])
            return false;
    }
    return true;
}

/* Write a block with its pattern, read it back into a dirty buffer and
 * compare. */
static bool write_read_verify(solo5_handle_t h, uint64_t blk, uint64_t bs,
                              uint8_t *wbuf, uint8_t *rbuf)
{
    fill(wbuf, bs, blk);
    if (solo5_block_write(h, blk * bs, wbuf, bs) != SOLO5_R_OK) {
        printf("FAILURE: write of block %lu\n", (unsigned long)blk);
        return false;
    }
    for (uint64_t i = 0; i < bs; i++)
        rbuf[i] = (uint8_t)~wbuf[i];
    if (solo5_block_read(h, blk * bs, rbuf, bs) != SOLO5_R_OK) {
        printf("FAILURE: read of block %lu\n", (unsigned long)blk);
        return false;
    }
    if (!same(wbuf, rbuf, bs)) {
        printf("FAILURE: block %lu read back different data\n",
               (unsigned long)blk);
        return false;
    }
    return true;
}

/* Both directions of one bad request must give EINVAL. */
static bool rejected(solo5_handle_t h, solo5_off_t off, uint8_t *buf,
                     size_t size)
{
    return solo5_block_write(h, off, buf, size) == SOLO5_R_EINVAL
           && solo5_block_read(h, off, buf, size) == SOLO5_R_EINVAL;
}

int solo5_app_main(const struct solo5_start_info *si)
{
    struct solo5_block_info info;
    solo5_handle_t h;

    puts("\n**** Solo5 standalone test_blk ****\n\n");

    if (solo5_block_acquire("storage", &h, &info) != SOLO5_R_OK)
        FAIL("could not acquire block device 'storage'");
    uint64_t bs = info.block_size, cap = info.capacity;
    uint64_t nblocks = cap / bs;
    printf("storage: handle %lu, capacity %lu bytes, block size %lu\n",
           (unsigned long)h, (unsigned long)cap, (unsigned long)bs);
    if (bs == 0 || cap % bs != 0 || nblocks == 0)
        FAIL("bad geometry");

    /* Buffers on the heap: block sizes go up to 64 KiB in principle. */
    uint8_t *wbuf = (uint8_t *)si->heap_start;
    uint8_t *rbuf = wbuf + 2 * bs;
    if (4 * bs + 0x40000 > si->heap_size)
        FAIL("block size %lu too large for this memory size",
             (unsigned long)bs);

    /* 1. Every 10th block, then the last one if the stride missed it. */
    uint64_t tested = 0;
    for (uint64_t blk = 0; blk < nblocks; blk += 10, tested++) {
        if (!write_read_verify(h, blk, bs, wbuf, rbuf))
            return SOLO5_EXIT_FAILURE;
    }
    if ((nblocks - 1) % 10 != 0) {
        if (!write_read_verify(h, nblocks - 1, bs, wbuf, rbuf))
            return SOLO5_EXIT_FAILURE;
        tested++;
    }
    printf("%lu blocks written and verified\n", (unsigned long)tested);

    /* 2. Bad requests. */
    if (!rejected(h, cap + bs, wbuf, bs))
        FAIL("offset past the end accepted");
    if (!rejected(h, cap, wbuf, bs))
        FAIL("offset == capacity accepted");
    if (!rejected(h, bs / 2, wbuf, bs))
        FAIL("misaligned offset accepted");
    if (!rejected(h, 1, wbuf, bs))
        FAIL("offset 1 accepted");
    if (!rejected(h, 0, wbuf, bs - 1))
        FAIL("short size accepted");
    if (!rejected(h, 0, wbuf, bs / 2))
        FAIL("half-block size accepted");
    if (!rejected(h, 0, wbuf, 2 * bs))
        FAIL("two-block size accepted");
    if (!rejected(h, 0, wbuf, 0))
        FAIL("size 0 accepted");
    if (!rejected(h, ~0ULL - bs + 1, wbuf, bs))
        FAIL("offset near 2^64 accepted");
    if (!rejected(0, 0, wbuf, bs))
        FAIL("handle 0 (reserved manifest entry) accepted");
    if (!rejected(h + 1, 0, wbuf, bs))
        FAIL("handle %lu (no such device) accepted", (unsigned long)h + 1);
    if (!rejected(~0ULL, 0, wbuf, bs))
        FAIL("handle ~0 accepted");

    /* 3. Acquire rules. */
    solo5_handle_t h2;
    struct solo5_block_info info2;
    if (solo5_block_acquire("storage", &h2, &info2) != SOLO5_R_EINVAL)
        FAIL("second acquire of 'storage' did not return EINVAL");
    if (solo5_block_acquire("nosuchdevice", &h2, &info2) != SOLO5_R_EINVAL)
        FAIL("acquire of an unknown name did not return EINVAL");
    if (solo5_block_acquire("storage", &h2, NULL) != SOLO5_R_EINVAL)
        FAIL("acquire with NULL info did not return EINVAL");

    puts("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
