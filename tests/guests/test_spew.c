/*
 * test_spew KIB: writes KIB kibibytes of console output (lines of letters,
 * in 4 KiB writes), then "done" and exits 0. It starts only once the first
 * byte of its disk "gate" is not zero (it polls the disk every 10 ms), so a
 * test can be ready to read before the first byte comes: that is how the
 * console backpressure test (a slow reader must block the guest, not grow a
 * buffer) knows the guest is writing to it. Tests that do not care pass a
 * disk that is open already.
 */

#include "util.h"

#define NSEC_PER_MSEC 1000000ULL

int solo5_app_main(const struct solo5_start_info *si)
{
    unsigned long kib = 0;
    for (const char *p = si->cmdline; *p >= '0' && *p <= '9'; p++)
        kib = kib * 10 + (unsigned long)(*p - '0');

    solo5_handle_t gate;
    struct solo5_block_info info;
    if (solo5_block_acquire("gate", &gate, &info) != SOLO5_R_OK)
        FAIL("no gate disk");
    static uint8_t sector[32768];
    for (;;) {
        if (solo5_block_read(gate, 0, sector, info.block_size) != SOLO5_R_OK)
            FAIL("reading the gate");
        if (sector[0] != 0)
            break;
        solo5_yield(solo5_clock_monotonic() + 10 * NSEC_PER_MSEC, NULL);
    }

    static char block[4096];
    for (unsigned long i = 0; i < kib / 4; i++) {
        for (int j = 0; j < 4096; j++)
            block[j] = (j % 64 == 63) ? '\n' : (char)('a' + (i + (unsigned long)j / 64) % 26);
        solo5_console_write(block, sizeof block);
    }
    puts("done\n");
    return SOLO5_EXIT_SUCCESS;
}
