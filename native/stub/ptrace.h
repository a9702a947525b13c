/*
 * ptrace for the monitors (monitor.c, record.c, replay.c) and snapshot
 * creation (snapshot_dump.c): the requests, options and events they use, the
 * registers, and the raw call.
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

/* struct user_regs_struct (x86_64). */
struct uregs {
    u64 r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rax, rcx, rdx, rsi, rdi, orig_rax, rip, cs, eflags, rsp, ss,
        fs_base, gs_base, ds, es, fs, gs;
};
_Static_assert(sizeof(struct uregs) == 216, "user_regs_struct");

static long t_getregs(long pid, struct uregs *r) { return sys_ptrace(PTRACE_GETREGS, pid, 0, (long)r); }

#endif
