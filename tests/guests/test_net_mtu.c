/*
 * test_net_mtu: the guest sees the MTU of the host interface.
 *
 * Device: NET_BASIC "service0" (test_net_mtu.json). Upstream attaches a
 * tap with MTU 9000 and expects "MTU is 9000". Also checks that a second
 * acquire of the same name returns SOLO5_R_EINVAL, and that a block
 * acquire of a network device's name does too. Prints SUCCESS, exits 0.
 */

#include "util.h"

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    struct solo5_net_info info;
    struct solo5_block_info binfo;
    solo5_handle_t h, h2;

    puts("\n**** Solo5 standalone test_net_mtu ****\n\n");

    if (solo5_net_acquire("service0", &h, &info) != SOLO5_R_OK)
        FAIL("could not acquire network device 'service0'");
    printf("MTU is %zu\n", info.mtu);

    if (solo5_net_acquire("service0", &h2, &info) != SOLO5_R_EINVAL)
        FAIL("second acquire of 'service0' did not return EINVAL");
    if (solo5_block_acquire("service0", &h2, &binfo) != SOLO5_R_EINVAL)
        FAIL("block acquire of a network device did not return EINVAL");

    puts("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
