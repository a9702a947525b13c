/*
 * tendril bindings: thread-local storage (abi.md §4).
 *
 * x86_64 local-exec TLS, "variant II": the linker resolves a TLS variable
 * to a negative offset from the thread pointer (%fs base), and the thread
 * pointer sits just past the TLS data, where a one-word TCB holds its own
 * address (code such as `mov %fs:0, %rax` reads it to compute &var).
 *
 *    tls                                         tp = tls + tdata + tbss
 *    |  .tdata image (copied)  |  .tbss (zeroed)  | tp (self pointer) |
 *
 * The linker script exports the start of the .tdata image (_stdata) and
 * the two lengths (_ltdata, _ltbss, as absolute symbols whose addresses are
 * the values). _ltbss includes any alignment padding, so that tdata + tbss
 * is exactly the TLS block size the linker used to compute the offsets.
 */

#include "bindings.h"

/*
 * Empty .tdata and .tbss input sections, so that both output sections
 * always exist. Without them, a guest with no TLS of its own gets a .tdata
 * that ld leaves out of its PT_LOAD (which then sits at address 0), and
 * the linker script could not refer to ADDR(.tbss).
 */
__asm__(".section .tdata, \"awT\", @progbits\n\t.previous\n\t"
        ".section .tbss, \"awT\", @nobits\n\t.previous");

static size_t tdata_len(void)
{
    return (size_t)(uintptr_t)_ltdata;
}

static size_t tbss_len(void)
{
    return (size_t)(uintptr_t)_ltbss;
}

size_t solo5_tls_size(void)
{
    return tdata_len() + tbss_len() + sizeof(uintptr_t);
}

uintptr_t solo5_tls_tp_offset(uintptr_t tls)
{
    return tls + tdata_len() + tbss_len();
}

solo5_result_t solo5_tls_init(uintptr_t tls)
{
    if (tls == 0)
        return SOLO5_R_EINVAL;

    uintptr_t tp = solo5_tls_tp_offset(tls);

    memcpy((void *)tls, _stdata, tdata_len());
    /* .tbss variables start at zero; the block may be recycled memory. */
    memset((void *)(tls + tdata_len()), 0, tbss_len());
    *(uintptr_t *)tp = tp;
    return SOLO5_R_OK;
}

solo5_result_t solo5_set_tls_base(uintptr_t base)
{
    return tnd_sys_arch_prctl(TND_ARCH_SET_FS, base) == 0 ? SOLO5_R_OK
                                                          : SOLO5_R_EINVAL;
}
