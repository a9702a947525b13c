/*
 * hostile_syscall: call system calls the policy does not allow.
 *
 * Command line: "[yield-first] N" or "A-B" (decimal x86_64 syscall numbers; see
 * h_args in hostile.h for yield-first). Each number
 * is called through the 64-bit `syscall` instruction with arguments no rule
 * of any policy allows: fd-like argument 0x7fff, pointers into unmapped
 * memory. The first call must kill the guest (SIGSYS, 159), so the test
 * launches one guest per number.
 *
 * The one documented exception: since Linux 6.11/6.18 the seccomp code lets
 * uretprobe (335) and uprobe (336) through without consulting the filter,
 * because only the kernel's own uprobe trampolines may use them. Called from
 * anywhere else they fail (uprobe) or raise a signal (uretprobe) without
 * doing anything. If one of them returns, the guest prints
 * "RETURNED ... = <r>" (not ESCAPED), then proves the filter is still in
 * force with a follow-up getpid, which must kill it.
 */

#include "hostile.h"

#define SYS_uretprobe 335
#define SYS_uprobe 336

int solo5_app_main(const struct solo5_start_info *si)
{
    long long a, b;
    const char *end;

    puts("\n**** hostile_syscall ****\n");
    if (!u_parse_int(h_args(si->cmdline), &a, &end)) {
        puts("usage: hostile_syscall N|A-B\n");
        return 2;
    }
    b = a;
    if (*end == '-' && !u_parse_int(end + 1, &b, NULL)) {
        puts("usage: hostile_syscall N|A-B\n");
        return 2;
    }

    for (long long nr = a; nr <= b; nr++) {
        printf("ATTEMPT syscall %lld\n", nr);
        long r = h_syscall6((long)nr, H_BAD_FD, H_BAD_PTR, H_BAD_PTR + 0x1000,
                            H_BAD_FD, H_BAD_PTR + 0x2000, H_BAD_FD);
        if (nr == SYS_uretprobe || nr == SYS_uprobe) {
            printf("RETURNED syscall %lld = %ld\n", nr, r);
            continue;
        }
        printf("ESCAPED syscall %lld returned %ld\n", nr, r);
        return 42;
    }

    /* Only the seccomp pass-through calls get here. */
    H_TRY_SYSCALL("follow-up getpid", H_SYS_getpid, 0, 0, 0, 0, 0, 0);
}
