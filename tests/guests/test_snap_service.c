/*
 * test_snap_service: a service whose start-up is worth snapshotting.
 *
 * Device: BLOCK_BASIC "storage" (test_snap_service.json). Argument: the
 * size of its state in MiB (default 32, 0 for none: an idle guest).
 *
 * 1. Start-up: builds a table of that many MiB of 32-bit entries, entry i
 *    being a 32-round integer hash of i (hash() below; tests recompute it),
 *    and prints "READY entries N checksum C init_ms T". 32 MiB takes a few
 *    hundred milliseconds.
 * 2. Waits for a request: solo5_yield() with a deadline 10 ms ahead (the
 *    point `tendril snapshot create` stops it at; short, so that a cold run
 *    to the answer is its start-up, not a sleep), then reads block 0. A
 *    request is "REQ <k>"; while block 0 holds none the guest yields again,
 *    for a second at a time: an idle instance.
 * 3. Answers "ANSWER <k> <entry k mod N> checksum C" on the console, writes
 *    the same line to block 1, and exits 0.
 * Restored from a snapshot taken at step 2, it answers without step 1.
 */

#include "util.h"

#define ROUNDS 32

static uint32_t hash(uint32_t i)
{
    uint32_t x = i;
    for (uint32_t r = 0; r < ROUNDS; r++) {
        x += r;
        x ^= x >> 16;
        x *= 0x7feb352du;
        x ^= x >> 15;
        x *= 0x846ca68bu;
        x ^= x >> 16;
    }
    return x;
}

static uint8_t block[4096] __attribute__((aligned(64)));

static size_t format(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = u_vformat(out, size, fmt, ap);
    va_end(ap);
    return n;
}

int solo5_app_main(const struct solo5_start_info *si)
{
    struct solo5_block_info info;
    solo5_handle_t h;

    puts("\n**** Solo5 standalone test_snap_service ****\n\n");
    long long mib = u_cmdline_number(si->cmdline, 32);
    if (mib < 0 || (uint64_t)mib << 20 > si->heap_size - 0x40000)
        FAIL("%lld MiB of state do not fit in %lu bytes of heap", mib, (unsigned long)si->heap_size);
    if (solo5_block_acquire("storage", &h, &info) != SOLO5_R_OK)
        FAIL("could not acquire block device 'storage'");
    if (info.block_size > sizeof block || info.capacity < 2 * info.block_size)
        FAIL("the disk needs two blocks of at most %lu bytes", (unsigned long)sizeof block);

    solo5_time_t t0 = solo5_clock_monotonic();
    uint32_t *table = (uint32_t *)si->heap_start;
    uint64_t n = (uint64_t)mib << 18, sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        table[i] = hash((uint32_t)i);
        sum += table[i];
    }
    printf("READY entries %lu checksum %lu init_ms %lu\n", (unsigned long)n, (unsigned long)sum,
           (unsigned long)((solo5_clock_monotonic() - t0) / 1000000));

    long long k;
    for (solo5_time_t wait = 10000000ULL;; wait = 1000000000ULL) {
        solo5_yield(solo5_clock_monotonic() + wait, NULL);
        if (solo5_block_read(h, 0, block, info.block_size) != SOLO5_R_OK)
            FAIL("reading the request");
        block[info.block_size - 1] = 0;
        if (block[0] == 'R' && block[1] == 'E' && block[2] == 'Q' && u_parse_int((const char *)block + 3, &k, NULL) && k >= 0)
            break;
    }

    uint32_t v = n ? table[(uint64_t)k % n] : 0;
    printf("ANSWER %lld %u checksum %lu\n", k, v, (unsigned long)sum);
    for (size_t i = 0; i < info.block_size; i++)
        block[i] = 0;
    format((char *)block, info.block_size, "ANSWER %lld %u checksum %lu\n", k, v, (unsigned long)sum);
    if (solo5_block_write(h, info.block_size, block, info.block_size) != SOLO5_R_OK)
        FAIL("writing the answer");
    return SOLO5_EXIT_SUCCESS;
}
