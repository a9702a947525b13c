/*
 * tendril bindings: stack protector support.
 *
 * Everything is compiled with -mstack-protector-guard=global, so the canary
 * lives in __stack_chk_guard rather than at %fs:0x28: the guest owns %fs
 * (it is 0 at boot and the application may point it at its own TLS), so a
 * TLS-based canary would fault or be wrong. _start fills the guard from the
 * TSC before it calls anything that is protected.
 */

#include "bindings.h"

/*
 * A fixed, non-zero value until _start replaces it. Initialised, so it
 * lives in .data: that keeps it readable even when the image's .bss does
 * not fit in guest memory, which _start reports as "Not enough memory"
 * through protected (guard-reading) functions.
 */
uintptr_t __stack_chk_guard = 0x0a0dff00c0ffee00UL;

/* 40 characters and the terminating NUL: 41 bytes are written (abi.md §4). */
static const char ssp_message[] = "Solo5: ABORT: Stack corruption detected\n";

_Static_assert(sizeof ssp_message == 41, "SSP message is 41 bytes");

/*
 * Called by protected functions whose canary was overwritten. The stack is
 * not to be trusted any more, so no formatting, no logging machinery and no
 * level check: one write and out.
 */
__attribute__((noreturn, no_stack_protector)) void __stack_chk_fail(void)
{
    (void)tnd_sys_write(1, ssp_message, sizeof ssp_message);
    tnd_sys_exit_group(SOLO5_EXIT_ABORT);
}
