/*
 * test_tls: thread-local storage through the Solo5 TLS calls.
 *
 * Two TLS blocks are set up with solo5_tls_init() and made current in turn
 * with solo5_set_tls_base(). In each block the .tdata variable must start
 * at its initial value 0xC0FFEE and the .tbss variable at 0, values written
 * in one block must not show in the other, and the variables' addresses
 * must fall inside the current block. Prints SUCCESS, exits 0.
 *
 * The accessors are noinline: GCC assumes the thread pointer never changes
 * within a function and could otherwise reuse an address computed before
 * the switch.
 */

#include "util.h"

__thread volatile uint64_t tdata_var = 0xC0FFEE;
__thread volatile uint64_t tbss_var;

#define BLOCK_MAX 256

static uint8_t block_a[BLOCK_MAX] __attribute__((aligned(64)));
static uint8_t block_b[BLOCK_MAX] __attribute__((aligned(64)));

static __attribute__((noinline)) uint64_t get_tdata(void) { return tdata_var; }
static __attribute__((noinline)) uint64_t get_tbss(void) { return tbss_var; }
static __attribute__((noinline)) void set_tdata(uint64_t v) { tdata_var = v; }
static __attribute__((noinline)) void set_tbss(uint64_t v) { tbss_var = v; }

static __attribute__((noinline)) uintptr_t addr_tdata(void)
{
    return (uintptr_t)&tdata_var;
}

static __attribute__((noinline)) uintptr_t addr_tbss(void)
{
    return (uintptr_t)&tbss_var;
}

/* Make `block` current and check where the variables now live. */
static int use_block(const char *name, uint8_t *block)
{
    uintptr_t lo = (uintptr_t)block;
    uintptr_t hi = lo + solo5_tls_size();

    if (solo5_set_tls_base(solo5_tls_tp_offset(lo)) != SOLO5_R_OK) {
        printf("FAILURE: solo5_set_tls_base() for block %s\n", name);
        return -1;
    }
    if (addr_tdata() < lo || addr_tdata() + 8 > hi || addr_tbss() < lo
        || addr_tbss() + 8 > hi) {
        printf("FAILURE: block %s at %p: TLS variables at %p, %p\n", name,
               (void *)block, (void *)addr_tdata(), (void *)addr_tbss());
        return -1;
    }
    return 0;
}

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    puts("\n**** Solo5 standalone test_tls ****\n\n");

    size_t size = solo5_tls_size();
    printf("TLS block size %zu\n", size);
    if (size < 16 + sizeof(uintptr_t) || size > BLOCK_MAX)
        FAIL("solo5_tls_size() = %zu", size);
    if (solo5_tls_init(0) != SOLO5_R_EINVAL)
        FAIL("solo5_tls_init(0) did not return EINVAL");

    /* Dirty both blocks: tls_init must not rely on zeroed memory. */
    for (size_t i = 0; i < BLOCK_MAX; i++)
        block_a[i] = block_b[i] = 0xa5;
    if (solo5_tls_init((uintptr_t)block_a) != SOLO5_R_OK
        || solo5_tls_init((uintptr_t)block_b) != SOLO5_R_OK)
        FAIL("solo5_tls_init() failed");

    /* The TCB word at the thread pointer points to itself. */
    uintptr_t tp_a = solo5_tls_tp_offset((uintptr_t)block_a);
    if (*(uintptr_t *)tp_a != tp_a)
        FAIL("TCB self pointer is %p, expected %p",
             (void *)*(uintptr_t *)tp_a, (void *)tp_a);

    if (use_block("A", block_a) < 0)
        return SOLO5_EXIT_FAILURE;
    if (get_tdata() != 0xC0FFEE || get_tbss() != 0)
        FAIL("block A starts with 0x%lx, 0x%lx",
             (unsigned long)get_tdata(), (unsigned long)get_tbss());
    set_tdata(1);
    set_tbss(2);

    if (use_block("B", block_b) < 0)
        return SOLO5_EXIT_FAILURE;
    if (get_tdata() != 0xC0FFEE || get_tbss() != 0)
        FAIL("block B starts with 0x%lx, 0x%lx",
             (unsigned long)get_tdata(), (unsigned long)get_tbss());
    set_tdata(3);
    set_tbss(4);

    if (use_block("A", block_a) < 0)
        return SOLO5_EXIT_FAILURE;
    if (get_tdata() != 1 || get_tbss() != 2)
        FAIL("block A holds 0x%lx, 0x%lx, expected 1, 2",
             (unsigned long)get_tdata(), (unsigned long)get_tbss());

    if (use_block("B", block_b) < 0)
        return SOLO5_EXIT_FAILURE;
    if (get_tdata() != 3 || get_tbss() != 4)
        FAIL("block B holds 0x%lx, 0x%lx, expected 3, 4",
             (unsigned long)get_tdata(), (unsigned long)get_tbss());

    puts("SUCCESS\n");
    return SOLO5_EXIT_SUCCESS;
}
