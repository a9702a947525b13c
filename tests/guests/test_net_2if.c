/*
 * test_net_2if: two network devices served at once.
 *
 * Devices: NET_BASIC "service0" (10.0.0.2, host 10.0.0.1/24) and
 * "service1" (10.1.0.2, host 10.1.0.1/24), test_net_2if.json. The host
 * runs a `ping -fq -c N` flood against each address at the same time. The
 * guest waits on both with one solo5_yield() and uses the ready set to
 * tell them apart; when each interface has sent N replies it prints
 * "Limit reached, exiting" and SUCCESS and exits 0.
 *
 * N is the first number on the command line, default 50000.
 */

#define UTIL_NET
#include "util.h"

int solo5_app_main(const struct solo5_start_info *si)
{
    static const uint8_t ip0[4] = { 10, 0, 0, 2 };
    static const uint8_t ip1[4] = { 10, 1, 0, 2 };
    uint64_t limit = (uint64_t)u_cmdline_number(si->cmdline, 50000);
    uintptr_t heap = si->heap_start;
    struct net_if nifs[2];

    puts("\n**** Solo5 standalone test_net_2if ****\n\n");
    if (limit == 0)
        limit = 50000;
    if (!net_if_open(&nifs[0], "service0", ip0, &heap)
        || !net_if_open(&nifs[1], "service1", ip1, &heap))
        return SOLO5_EXIT_FAILURE;
    if (nifs[0].h == nifs[1].h)
        FAIL("both devices have handle %lu", (unsigned long)nifs[0].h);
    if (!net_serve(nifs, 2, limit, NULL))
        FAIL("network device error");

    printf("service0: %lu replies, service1: %lu replies\n",
           (unsigned long)nifs[0].replies, (unsigned long)nifs[1].replies);
    puts("Limit reached, exiting\n");
    puts("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
