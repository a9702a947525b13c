/*
 * test_net: an ARP + ICMP echo responder.
 *
 * Device: NET_BASIC "service0" (test_net.json), host side at 10.0.0.1/24;
 * the guest answers as 10.0.0.2. The host floods it with
 * `ping -fq -c N 10.0.0.2`. After N echo replies the guest prints
 * "Limit reached, exiting" and SUCCESS and exits 0.
 *
 * N is the first number on the command line, default 100000 (upstream
 * passes the word "limit", which selects the default).
 *
 * The loop is the canonical Solo5 one: solo5_yield() until the device is
 * in the ready set, then solo5_net_read() until it says SOLO5_R_AGAIN.
 */

#define UTIL_NET
#include "util.h"

int solo5_app_main(const struct solo5_start_info *si)
{
    static const uint8_t ip[4] = { 10, 0, 0, 2 };
    uint64_t limit = (uint64_t)u_cmdline_number(si->cmdline, 100000);
    uintptr_t heap = si->heap_start;
    struct net_if nif;

    puts("\n**** Solo5 standalone test_net ****\n\n");
    if (limit == 0)
        limit = 100000;
    if (!net_if_open(&nif, "service0", ip, &heap))
        return SOLO5_EXIT_FAILURE;
    if (!net_serve(&nif, 1, limit, NULL))
        FAIL("network device error");

    puts("Limit reached, exiting\n");
    puts("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
