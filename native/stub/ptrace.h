/*
 * ptrace for the monitor (monitor.c) and snapshot creation (snapshot_dump.c):
 * the requests, options and events they use, and the raw call.
 */
#ifndef TENDRIL_STUB_PTRACE_H
#define TENDRIL_STUB_PTRACE_H

#define NR_ptrace 101

#define PTRACE_PEEKDATA 2
#define PTRACE_CONT 7
#define PTRACE_GETREGS 12
#define PTRACE_GETFPREGS 14
#define PTRACE_GETSIGINFO 0x4202
#define PTRACE_GETREGSET 0x4204
#define PTRACE_SEIZE 0x4206
#define PTRACE_LISTEN 0x4208
#define PTRACE_O_TRACESECCOMP 0x80
#define PTRACE_O_TRACEEXIT 0x40
#define PTRACE_O_EXITKILL 0x100000
#define PTRACE_EVENT_EXIT 6
#define PTRACE_EVENT_SECCOMP 7
#define PTRACE_EVENT_STOP 128
#define NT_X86_XSTATE 0x202

static long sys_ptrace(long req, long pid, void *addr, long data)
{
    return syscall6(NR_ptrace, req, pid, (long)addr, data, 0, 0);
}

#endif
