/*
 * blkio: the baseline for bench/block.ts.
 *
 * Does on the host, as a plain process, exactly the block work test_blk does
 * as a guest (tests/guests/test_blk.c, part 1): for every 10th block, and
 * the last one if the stride missed it, fill a buffer with the block's
 * pattern, pwrite it, dirty the read buffer, pread the block back and
 * compare. Same image, same block size, same number of pwrite/pread calls,
 * same per-block CPU work; only the sandbox is missing.
 *
 * usage: blkio IMAGE BLOCK_SIZE
 * Prints "N blocks written and verified" (N pairs = 2N calls) and exits 0;
 * exits 1 on any error, naming the call.
 */

#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void fill(uint8_t *buf, size_t n, uint64_t block)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(block * 7 + i * 13 + (i >> 8));
}

/* The guest's byte loop, not memcmp: the same CPU work on both sides. */
static int same(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i])
            return 0;
    }
    return 1;
}

static int write_read_verify(int fd, uint64_t blk, uint64_t bs, uint8_t *wbuf,
                             uint8_t *rbuf)
{
    fill(wbuf, bs, blk);
    if (pwrite(fd, wbuf, bs, (off_t)(blk * bs)) != (ssize_t)bs) {
        fprintf(stderr, "blkio: pwrite of block %lu failed\n", (unsigned long)blk);
        return -1;
    }
    for (uint64_t i = 0; i < bs; i++)
        rbuf[i] = (uint8_t)~wbuf[i];
    if (pread(fd, rbuf, bs, (off_t)(blk * bs)) != (ssize_t)bs) {
        fprintf(stderr, "blkio: pread of block %lu failed\n", (unsigned long)blk);
        return -1;
    }
    if (!same(wbuf, rbuf, bs)) {
        fprintf(stderr, "blkio: block %lu read back different data\n", (unsigned long)blk);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: blkio IMAGE BLOCK_SIZE\n");
        return 2;
    }
    uint64_t bs = strtoull(argv[2], NULL, 10);
    if (bs < 512 || (bs & (bs - 1)) != 0) {
        fprintf(stderr, "blkio: bad block size %s\n", argv[2]);
        return 2;
    }
    int fd = open(argv[1], O_RDWR);
    if (fd < 0) {
        perror("blkio: open");
        return 1;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        perror("blkio: fstat");
        return 1;
    }
    uint64_t nblocks = (uint64_t)st.st_size / bs;
    if (nblocks == 0) {
        fprintf(stderr, "blkio: %s is smaller than one block\n", argv[1]);
        return 1;
    }
    uint8_t *wbuf = aligned_alloc(4096, bs);
    uint8_t *rbuf = aligned_alloc(4096, bs);
    if (!wbuf || !rbuf) {
        perror("blkio: aligned_alloc");
        return 1;
    }

    uint64_t tested = 0;
    for (uint64_t blk = 0; blk < nblocks; blk += 10, tested++) {
        if (write_read_verify(fd, blk, bs, wbuf, rbuf) < 0)
            return 1;
    }
    if ((nblocks - 1) % 10 != 0) {
        if (write_read_verify(fd, nblocks - 1, bs, wbuf, rbuf) < 0)
            return 1;
        tested++;
    }
    printf("%lu blocks written and verified\n", (unsigned long)tested);
    return 0;
}
