/*
 * tendril bindings: network devices (abi.md §10, abi.md §15.3).
 *
 * A tap is a non-blocking host fd carrying one Ethernet frame (header
 * included, no FCS) per read or write. The bindings pass sizes through
 * unchecked, as the reference does: the tap itself truncates or rejects.
 */

#include "bindings.h"

void tnd_net_init(const struct spt_boot_info *bi)
{
    /* Every NET_BASIC entry can produce one epoll event; the timer is one
     * more. solo5_yield() sizes its epoll_pwait call from this. */
    tnd_time_init(bi->epollfd, bi->timerfd,
                  tnd_mft_count(MFT_DEV_NET_BASIC));
}

solo5_result_t solo5_net_acquire(const char *name, solo5_handle_t *handle,
                                 struct solo5_net_info *info)
{
    const struct mft_entry *e;
    solo5_result_t r;

    if (info == NULL)
        return SOLO5_R_EINVAL;
    r = tnd_mft_acquire(name, MFT_DEV_NET_BASIC, handle, &e);
    if (r != SOLO5_R_OK)
        return r;
    memcpy(info->mac_address, e->u.net_basic.mac, SOLO5_NET_ALEN);
    info->mtu = e->u.net_basic.mtu;
    return SOLO5_R_OK;
}

solo5_result_t solo5_net_write(solo5_handle_t handle, const uint8_t *buf,
                               size_t size)
{
    const struct mft_entry *e = tnd_mft_get(handle, MFT_DEV_NET_BASIC);

    if (e == NULL)
        return SOLO5_R_EINVAL;

    long rc = tnd_sys_write(e->b.hostfd, buf, size);

    return rc >= 0 && (size_t)rc == size ? SOLO5_R_OK : SOLO5_R_EUNSPEC;
}

solo5_result_t solo5_net_read(solo5_handle_t handle, uint8_t *buf, size_t size,
                              size_t *read_size)
{
    const struct mft_entry *e = tnd_mft_get(handle, MFT_DEV_NET_BASIC);

    if (e == NULL || read_size == NULL)
        return SOLO5_R_EINVAL;

    long rc = tnd_sys_read(e->b.hostfd, buf, size);

    if (rc == -TND_EAGAIN)
        return SOLO5_R_AGAIN;
    if (rc < 0)
        return SOLO5_R_EUNSPEC;
    *read_size = (size_t)rc;
    return SOLO5_R_OK;
}
