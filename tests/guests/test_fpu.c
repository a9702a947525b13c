/*
 * test_fpu: SSE and floating point work in the guest.
 *
 * A packed multiply (mulps) through inline assembly on 16-byte aligned
 * vectors, then ordinary float arithmetic the compiler emits as SSE code.
 * Nothing in the tender or the bindings touches the FPU state, so this is
 * about the guest being allowed to use it at all.
 */

#include "util.h"

static float a[4] __attribute__((aligned(16))) = { 2.0f, 3.0f, 4.0f, 5.0f };
static float b[4] __attribute__((aligned(16))) = { 1.5f, -2.0f, 0.25f, 8.0f };
static float c[4] __attribute__((aligned(16)));

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    static const float want[4] = { 3.0f, -6.0f, 1.0f, 40.0f };

    puts("\n**** Solo5 standalone test_fpu ****\n\n");

    __asm__ __volatile__("movaps %1, %%xmm0\n\t"
                         "mulps  %2, %%xmm0\n\t"
                         "movaps %%xmm0, %0"
                         : "=m"(c)
                         : "m"(a), "m"(b)
                         : "xmm0");
    for (int i = 0; i < 4; i++) {
        if (c[i] != want[i])
            FAIL("mulps lane %d = %d/1000, expected %d/1000", i,
                 (int)(c[i] * 1000), (int)(want[i] * 1000));
    }

    /* Sum of 1/2^k for k = 1..20: 1 - 2^-20, exact in binary. */
    volatile float x = OPAQUE(0.5f);
    float sum = 0.0f;
    for (int k = 0; k < 20; k++) {
        sum += x;
        x = x / 2.0f;
    }
    if (sum != 1.0f - 1.0f / 1048576.0f)
        FAIL("float sum = %d/1e6", (int)(sum * 1e6f));

    double d = OPAQUE(3.0);
    if (d * d - 2.0 * d != 3.0)
        FAIL("double arithmetic");

    puts("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
