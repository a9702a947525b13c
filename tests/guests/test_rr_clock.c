/*
 * test_rr_clock: the guest's nondeterministic inputs that are not device
 * data, read in a loop and printed, for record/replay.
 *
 * Args: [N] [quiet] [crash|spin]. N rounds (default 20) of: the monotonic
 * and the wall clock, rdtsc, rdtscp (its TSC_AUX too), cpuid leaf 0 and
 * leaf 1, and a solo5_yield() for 1 ms. Each round prints one line with
 * every value; with `quiet` only a final line with a checksum of them all.
 * It then checks what it can (the monotonic clock and the TSC never go
 * back) and prints SUCCESS. A replay must print exactly the same bytes.
 *
 * `crash`: instead of SUCCESS, a write to an unmapped address made from the
 * checksum (1 TiB + checksum % 1 GiB, 16-byte aligned): the fault address
 * depends on every value read, so only a faithful replay faults there.
 * `spin`: prints "spinning" and loops forever in guest code, making no call
 * at all (for a signal from outside to end it between two calls).
 */

#include "util.h"

static inline uint64_t rd_tsc(void)
{
    uint32_t lo, hi;

    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t rd_tscp(uint32_t *aux)
{
    uint32_t lo, hi, c;

    __asm__ __volatile__("rdtscp" : "=a"(lo), "=d"(hi), "=c"(c));
    *aux = c;
    return ((uint64_t)hi << 32) | lo;
}

static inline void cpu_id(uint32_t leaf, uint32_t r[4])
{
    __asm__ __volatile__("cpuid"
                         : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
                         : "a"(leaf), "c"(0));
}

int solo5_app_main(const struct solo5_start_info *si)
{
    long long n = u_cmdline_number(si->cmdline, 20);
    bool quiet = false;
    uint64_t sum = 0, last_mono = 0, last_tsc = 0;

    bool crash = false, spin = false;

    for (const char *p = si->cmdline; *p; p++) {
        if (p[0] == 'q' && p[1] == 'u' && p[2] == 'i')
            quiet = true;
        if (p[0] == 'c' && p[1] == 'r' && p[2] == 'a')
            crash = true;
        if (p[0] == 's' && p[1] == 'p' && p[2] == 'i')
            spin = true;
    }
    puts("\n**** Solo5 standalone test_rr_clock ****\n\n");
    for (long long i = 0; i < n; i++) {
        uint32_t aux, id0[4], id1[4];
        uint64_t mono = solo5_clock_monotonic();
        uint64_t wall = solo5_clock_wall();
        uint64_t tsc = rd_tsc();
        uint64_t tscp = rd_tscp(&aux);

        cpu_id(0, id0);
        cpu_id(1, id1);
        if (mono < last_mono || tsc < last_tsc || tscp < tsc)
            FAIL("a clock went back in round %lu", (unsigned long)i);
        last_mono = mono;
        last_tsc = tscp;
        sum = sum * 31 + mono + wall + tsc + tscp + aux + id0[0] + id0[1]
              + id1[0] + id1[2] + id1[3];
        if (!quiet)
            printf("round %lu: mono %lu wall %lu tsc %lu tscp %lu aux %u "
                   "cpuid0 %x %x cpuid1 %x %x %x\n",
                   (unsigned long)i, (unsigned long)mono,
                   (unsigned long)wall, (unsigned long)tsc,
                   (unsigned long)tscp, aux, id0[0], id0[1], id1[0], id1[2],
                   id1[3]);
        solo5_yield(solo5_clock_monotonic() + 1000000ULL, NULL);
    }
    printf("checksum %lx after %lu rounds\n", (unsigned long)sum,
           (unsigned long)n);
    if (crash) {
        volatile uint64_t *bad =
            (volatile uint64_t *)((1ULL << 40) + (sum % (1ULL << 30) & ~15ULL));
        printf("writing to %p\n", (void *)bad);
        *OPAQUE(bad) = sum;
        puts("FAILURE: the write did not fault\n");
        return SOLO5_EXIT_FAILURE;
    }
    if (spin) {
        volatile uint64_t counter = 0;
        puts("spinning\n");
        for (;;)
            counter = counter + 1;
    }
    puts("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
