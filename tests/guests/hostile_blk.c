/*
 * hostile_blk: the block rules of abi.md §7 with arguments they refuse.
 *
 * Device: BLOCK_BASIC "storage" (hostile_blk.json); run with
 * --block:storage=IMG. pread64/pwrite64 are allowed only on the disk's fd,
 * with length == block_size and offset <= capacity - block_size (unsigned
 * 64-bit); read/write are never allowed on it. The guest takes the disk's
 * host fd and geometry from the manifest copy (hostfd at +88 of its entry,
 * abi.md §5.2) and first makes legal calls ("OK control ..."), so each attack
 * below differs from an allowed call in exactly one argument.
 * Command line: one mode word (table below).
 */

#include "hostile.h"

#define HI (1L << 32)

static uint8_t buf[2 * 4096];

struct attack {
    const char *mode;
    long nr;
    long fd, len, off;
};

int solo5_app_main(const struct solo5_start_info *si)
{
    char mode[40];
    struct h_device d;

    puts("\n**** hostile_blk ****\n");
    h_mode(si->cmdline, mode, sizeof mode);
    if (!h_find_device("storage", &d))
        FAIL("no attached device 'storage' in the manifest");

    const long fd = d.hostfd, bs = (long)d.block_size;
    const long last = (long)(d.capacity - d.block_size);
    const long epfd = H_BOOT_INFO->epollfd, tfd = H_BOOT_INFO->timerfd;
    printf("storage: fd %ld capacity %lu block %ld\n", fd,
           (unsigned long)d.capacity, bs);

    /* Controls: whole blocks at 0 and at the last block are allowed; so is
     * a misaligned offset, because alignment is the bindings' job (abi.md §7). */
    long r = h_syscall6(H_SYS_pread64, fd, (long)buf, bs, 0, 0, 0);
    if (r != bs)
        FAIL("control pread64 block 0 = %ld", r);
    r = h_syscall6(H_SYS_pwrite64, fd, (long)buf, bs, last, 0, 0);
    if (r != bs)
        FAIL("control pwrite64 last block = %ld", r);
    r = h_syscall6(H_SYS_pread64, fd, (long)buf, bs, 7, 0, 0);
    if (r != bs)
        FAIL("control pread64 at offset 7 = %ld", r);
    puts("OK control\n");

    const struct attack attacks[] = {
        { "pread-short", H_SYS_pread64, fd, bs - 1, 0 },
        { "pread-two-blocks", H_SYS_pread64, fd, 2 * bs, 0 },
        { "pread-len-high-bits", H_SYS_pread64, fd, bs | HI, 0 },
        { "pread-at-capacity", H_SYS_pread64, fd, bs, last + bs },
        { "pread-past-last-block", H_SYS_pread64, fd, bs, last + 1 },
        { "pread-far-past-end", H_SYS_pread64, fd, bs, 1L << 40 },
        { "pread-negative-offset", H_SYS_pread64, fd, bs, -bs },
        { "pread-offset-high-bits", H_SYS_pread64, fd, bs, HI },
        { "pread-epollfd", H_SYS_pread64, epfd, bs, 0 },
        { "pread-timerfd", H_SYS_pread64, tfd, bs, 0 },
        { "pread-stdin", H_SYS_pread64, 0, bs, 0 },
        { "pread-next-fd", H_SYS_pread64, fd + 1, bs, 0 },
        { "pread-fd-high-bits", H_SYS_pread64, fd | HI, bs, 0 },
        { "pwrite-short", H_SYS_pwrite64, fd, bs - 1, 0 },
        { "pwrite-two-blocks", H_SYS_pwrite64, fd, 2 * bs, 0 },
        { "pwrite-at-capacity", H_SYS_pwrite64, fd, bs, last + bs },
        { "pwrite-past-last-block", H_SYS_pwrite64, fd, bs, last + 1 },
        { "pwrite-negative-offset", H_SYS_pwrite64, fd, bs, -bs },
        { "pwrite-stdout", H_SYS_pwrite64, 1, bs, 0 },
        { "pwrite-epollfd", H_SYS_pwrite64, epfd, bs, 0 },
        { "pwrite-fd-high-bits", H_SYS_pwrite64, fd | HI, bs, 0 },
        { "read-blkfd", H_SYS_read, fd, bs, 0 },
        { "write-blkfd", H_SYS_write, fd, bs, 0 },
    };

    for (size_t i = 0; i < sizeof attacks / sizeof attacks[0]; i++) {
        const struct attack *x = &attacks[i];

        if (u_strcmp(mode, x->mode) != 0)
            continue;
        if (x->nr == H_SYS_read || x->nr == H_SYS_write)
            H_TRY_SYSCALL(x->mode, x->nr, x->fd, buf, x->len, 0, 0, 0);
        H_TRY_SYSCALL(x->mode, x->nr, x->fd, buf, x->len, x->off, 0, 0);
    }
    H_UNKNOWN_MODE(mode);
}
