/*
 * test_output: one large console write.
 *
 * Builds 72 lines, 4086 bytes in all, and hands them to the console in a
 * single solo5_console_write(), which the bindings turn into a single
 * write(1). Nothing else is printed by the guest, so with --solo5:quiet the
 * host sees exactly those 4086 bytes; without it, they appear between the
 * banner and the solo5_exit line. Upstream runs it with the argument
 * "Output_Solo5" and checks only the exit status (0).
 *
 * Lines 1..54 are 57 bytes and lines 55..72 are 56 bytes (newline
 * included): 54 * 57 + 18 * 56 = 4086.
 */

#include "util.h"

#define NLINES 72
#define TOTAL  4086

static char out[TOTAL];

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    static const char fill[] = "abcdefghijklmnopqrstuvwxyz"
                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    size_t pos = 0;

    for (int line = 1; line <= NLINES; line++) {
        size_t len = line <= 54 ? 57 : 56;
        size_t start = pos;

        /* "NN: " then filler, then the newline. */
        out[pos++] = (char)('0' + line / 10);
        out[pos++] = (char)('0' + line % 10);
        out[pos++] = ':';
        out[pos++] = ' ';
        for (size_t i = 0; pos < start + len - 1; i++)
            out[pos++] = fill[(i + (size_t)line) % (sizeof fill - 1)];
        out[pos++] = '\n';
    }
    if (pos != TOTAL)
        FAIL("built %u bytes, expected %u", (unsigned)pos, TOTAL);

    solo5_console_write(out, pos);
    return SOLO5_EXIT_SUCCESS;
}
