/*
 * seccomp-dump PID: prints the seccomp filter installed in process PID, one
 * instruction per line as "code jt jf k" in hex, by asking the kernel
 * (PTRACE_SECCOMP_GET_FILTER). Lets tests compare what `tendril filter`
 * shows with what a running guest really has. Needs CAP_SYS_ADMIN.
 */
#include <errno.h>
#include <linux/filter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

#ifndef PTRACE_SECCOMP_GET_FILTER
#define PTRACE_SECCOMP_GET_FILTER 0x420c
#endif

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seccomp-dump PID\n");
        return 2;
    }
    pid_t pid = (pid_t)atoi(argv[1]);
    if (ptrace(PTRACE_SEIZE, pid, 0, 0) != 0 || ptrace(PTRACE_INTERRUPT, pid, 0, 0) != 0) {
        fprintf(stderr, "seccomp-dump: cannot trace %d: %s\n", pid, strerror(errno));
        return 1;
    }
    int status;
    if (waitpid(pid, &status, __WALL) != pid) {
        fprintf(stderr, "seccomp-dump: waitpid: %s\n", strerror(errno));
        return 1;
    }
    long n = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, 0, NULL);
    if (n <= 0) {
        fprintf(stderr, "seccomp-dump: no filter in %d: %s\n", pid, n < 0 ? strerror(errno) : "empty");
        return 1;
    }
    struct sock_filter *f = calloc((size_t)n, sizeof *f);
    if (!f || ptrace(PTRACE_SECCOMP_GET_FILTER, pid, 0, f) != n) {
        fprintf(stderr, "seccomp-dump: reading the filter failed: %s\n", strerror(errno));
        return 1;
    }
    for (long i = 0; i < n; i++)
        printf("%04x %02x %02x %08x\n", f[i].code, f[i].jt, f[i].jf, f[i].k);
    ptrace(PTRACE_DETACH, pid, 0, 0);
    return 0;
}
