/*
 * test_net_ring: frames arrive intact under load.
 *
 * Device: NET_BASIC "service0" (test_net_ring.json), guest at 10.0.0.2.
 * The host floods it with `ping -fq -c N -p deadbeef 10.0.0.2`. iputils
 * ping fills the ICMP data with the pattern (phase 0 at the start of the
 * data) and then overwrites the first 16 bytes with its timestamp, so from
 * data byte 16 on every byte must follow de ad be ef. Each echo request is
 * checked before it is answered; a request whose data is too short to hold
 * any pattern counts as corrupted.
 *
 * When N requests have been seen (as many as the flood sends) the guest
 * prints "Verified G packets, M corrupted" (G good ones, G + M = N), then
 * SUCCESS and exit 0 if M is 0, FAILURE and exit 1 otherwise; so a
 * corrupted frame fails the test instead of leaving it waiting for
 * requests that never come. N is the first number on the command line,
 * default 10000.
 */

#define UTIL_NET
#include "util.h"

static uint64_t good, corrupted;

static void check_pattern(const uint8_t *icmp, size_t icmp_len)
{
    static const uint8_t pattern[4] = { 0xde, 0xad, 0xbe, 0xef };
    const uint8_t *data = icmp + 8;
    size_t len = icmp_len - 8;

    if (len <= 16) {
        corrupted++;
        return;
    }
    for (size_t i = 16; i < len; i++) {
        if (data[i] != pattern[i % 4]) {
            corrupted++;
            return;
        }
    }
    good++;
}

int solo5_app_main(const struct solo5_start_info *si)
{
    static const uint8_t ip[4] = { 10, 0, 0, 2 };
    uint64_t limit = (uint64_t)u_cmdline_number(si->cmdline, 10000);
    uintptr_t heap = si->heap_start;
    struct net_if nif;

    puts("\n**** Solo5 standalone test_net_ring ****\n\n");
    if (limit == 0)
        limit = 10000;
    if (!net_if_open(&nif, "service0", ip, &heap))
        return SOLO5_EXIT_FAILURE;

    while (good + corrupted < limit) {
        solo5_handle_set_t ready = 0;

        solo5_yield(solo5_clock_monotonic() + 1000000000ULL, &ready);
        if ((ready & (1ULL << nif.h)) && !net_if_drain(&nif, check_pattern))
            FAIL("network device error");
    }

    printf("Verified %lu packets, %lu corrupted\n", (unsigned long)good,
           (unsigned long)corrupted);
    if (corrupted != 0)
        FAIL("%lu corrupted packets", (unsigned long)corrupted);
    puts("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
