/*
 * test_seccomp: a system call outside the policy kills the guest.
 *
 * dup(1) (x86_64 nr 32) is not in the tender's allow-list, so the seccomp
 * filter kills the process: SIGSYS, host status 159. If the call returns
 * at all, the sandbox is missing and the guest reports FAILURE.
 */

#include "util.h"

int solo5_app_main(const struct solo5_start_info *si UNUSED)
{
    long ret;

    puts("\n**** Solo5 standalone test_seccomp ****\n\n");
    __asm__ __volatile__("syscall"
                         : "=a"(ret)
                         : "a"(32L), "D"(1L)
                         : "rcx", "r11", "memory");
    FAIL("dup(1) returned %ld", ret);
}
