/*
 * tendril bindings: block devices (abi.md §11, abi.md §15.3).
 *
 * I/O is one whole block per call at a block-aligned offset inside the
 * device. The checks below are the guest-side half of the contract; the
 * tender's seccomp rule for pread64/pwrite64 re-checks fd, size and the
 * upper bound of the offset (not its alignment), so a request that got
 * past these checks with a bad offset would kill the guest with SIGSYS
 * instead of returning EINVAL.
 */

#include "bindings.h"

void tnd_block_init(const struct spt_boot_info *bi)
{
    /* Nothing to set up beyond the manifest pointer mft.c already has:
     * block fds are not in the epoll set and need no per-boot state. */
    (void)bi;
}

solo5_result_t solo5_block_acquire(const char *name, solo5_handle_t *handle,
                                   struct solo5_block_info *info)
{
    const struct mft_entry *e;
    solo5_result_t r;

    if (info == NULL)
        return SOLO5_R_EINVAL;
    r = tnd_mft_acquire(name, MFT_DEV_BLOCK_BASIC, handle, &e);
    if (r != SOLO5_R_OK)
        return r;
    info->capacity = e->u.block_basic.capacity;
    info->block_size = e->u.block_basic.block_size;
    return SOLO5_R_OK;
}

/* The device entry if (offset, size) is one block inside it, else NULL. */
static const struct mft_entry *check(solo5_handle_t handle, solo5_off_t offset,
                                     size_t size)
{
    const struct mft_entry *e = tnd_mft_get(handle, MFT_DEV_BLOCK_BASIC);

    if (e == NULL)
        return NULL;

    uint64_t bs = e->u.block_basic.block_size;
    uint64_t cap = e->u.block_basic.capacity;

    if (bs == 0 || cap < bs)
        return NULL;
    if (size != bs || offset % bs != 0 || offset > cap - bs)
        return NULL;
    return e;
}

solo5_result_t solo5_block_write(solo5_handle_t handle, solo5_off_t offset,
                                 const uint8_t *buf, size_t size)
{
    const struct mft_entry *e = check(handle, offset, size);

    if (e == NULL)
        return SOLO5_R_EINVAL;

    long rc = tnd_sys_pwrite64(e->b.hostfd, buf, size, offset);

    return rc >= 0 && (size_t)rc == size ? SOLO5_R_OK : SOLO5_R_EUNSPEC;
}

solo5_result_t solo5_block_read(solo5_handle_t handle, solo5_off_t offset,
                                uint8_t *buf, size_t size)
{
    const struct mft_entry *e = check(handle, offset, size);

    if (e == NULL)
        return SOLO5_R_EINVAL;

    long rc = tnd_sys_pread64(e->b.hostfd, buf, size, offset);

    return rc >= 0 && (size_t)rc == size ? SOLO5_R_OK : SOLO5_R_EUNSPEC;
}
