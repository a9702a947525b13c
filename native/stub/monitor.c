/*
 * Monitor mode (supervised launches): the stub forks once its fds are in
 * place, before guest memory exists. The child becomes the guest as usual;
 * the parent stays behind as a tiny ptrace monitor that learns *why* the
 * guest ended, which a parent's wait status cannot tell (a SIGSYS from the
 * filter says nothing of the call; a SIGSEGV nothing of the address). It
 * sends a monitor_hello (the guest's pid, and with SEND_PIDFD a pidfd of
 * it) when the guest exists and a monitor_report when it has ended
 * (loader/formats.ts), then ends the way the guest did, so whoever started
 * the stub sees the guest's exact status.
 *
 * Ptrace costs nothing while the guest runs: no syscall tracing, only stops
 * on signals and at exit. The guest is attached with PTRACE_SEIZE, so a
 * SIGSTOP really stops it (group-stop, left in PTRACE_LISTEN) and SIGCONT
 * resumes it, as for an untraced process. Signals sent to the monitor
 * (a supervisor forwarding Ctrl-C or SIGTERM) are passed on to the guest.
 * PTRACE_O_EXITKILL kills the guest if the monitor dies.
 *
 * Included by stub.c (one translation unit, no libc).
 */

#define NR_wait4 61
#define NR_fork 57
#define NR_gettid 186
#define NR_tkill 200
#define NR_rt_sigreturn 15

#define WALL 0x40000000
#define SA_RESTORER 0x04000000
#define SA_RESTART 0x10000000
#define SIG_IGN_ ((void *)1)

static long guest_pid;

/* Signals a supervisor may send the monitor on the guest's behalf. */
static const int forwarded[] = { 1 /* HUP */, 2 /* INT */, 3 /* QUIT */, 10 /* USR1 */, 12 /* USR2 */, 14 /* ALRM */, 15 /* TERM */ };

static void forward_signal(int sig)
{
    sys_kill(guest_pid, sig);
}

/* No libc: the return from a handler needs its own rt_sigreturn stub. */
extern void monitor_sigreturn(void) __attribute__((visibility("hidden")));
__asm__(".text\n"
        "monitor_sigreturn:\n"
        "    mov $15, %eax\n"
        "    syscall\n"
        "    hlt\n");

static void monitor_signals(void)
{
    struct k_sigaction act = { (void *)forward_signal, SA_RESTORER | SA_RESTART, (void *)monitor_sigreturn, 0 };
    for (u32 i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
        sys_rt_sigaction(forwarded[i], &act, 0);
    /* A reader that went away must not kill the monitor before it mirrors the guest. */
    struct k_sigaction ign = { SIG_IGN_, 0, 0, 0 };
    sys_rt_sigaction(13 /* PIPE */, &ign, 0);
}

/* Sends len bytes of msg on report_fd, with fd attached if fd >= 0 (a unix socket), or plainly. */
static void send_report(const void *msg, u64 len, int fd)
{
    union {
        u8 buf[24];
        u64 align;
    } control = { { 0 } };
    struct k_iovec iov = { (void *)msg, len };
    struct k_msghdr m = { 0, 0, &iov, 1, 0, 0, 0 };
    if (fd >= 0) {
        *(u64 *)control.buf = 20; /* cmsg_len: header 16 + one int */
        *(int *)(control.buf + 8) = SOL_SOCKET;
        *(int *)(control.buf + 12) = SCM_RIGHTS;
        *(int *)(control.buf + 16) = fd;
        m.control = control.buf;
        m.controllen = sizeof control.buf;
    }
    long n = sys_sendmsg(report_fd, &m, MSG_NOSIGNAL);
    if (n == -ENOTSOCK)
        sys_write(report_fd, msg, len);
}

/*
 * Peak resident memory from /proc/PID/status (VmHWM, kB), read while the
 * guest is stopped at exit with its memory still there. wait4's ru_maxrss is
 * no substitute: the kernel's per-CPU RSS counters make it read 0 for a
 * guest as small as hello.
 */
static long read_hwm_kb(long pid)
{
    char path[40];
    proc_path(path, pid, "/status");
    return proc_status_value(path, "VmHWM:");
}

/*
 * At the guest's exit stop (PTRACE_EVENT_EXIT), for every monitor: its peak
 * memory and its registers as of its end into the report (for a seccomp
 * kill the kernel has rolled them back to the forbidden call). Returns
 * whether END was read.
 */
static int report_exit_stop(long child, struct monitor_report *rep, struct uregs *end)
{
    long hwm = read_hwm_kb(child);
    rep->maxrss_kb = hwm > 0 ? (u64)hwm : 0;
    if (t_getregs(child, end) != 0)
        return 0;
    rep->flags |= REPORT_F_REGS;
    rep->regs_syscall = (int64_t)end->orig_rax;
    rep->regs_ip = end->rip;
    rep->regs_sp = end->rsp;
    return 1;
}

/* How the guest ended (its wait status) and its CPU time, into the report. A fault noted on the way is kept only if its signal is what killed the guest. */
static void report_end(struct monitor_report *rep, int status, const u64 *rusage)
{
    if ((status & 0x7f) == 0) {
        rep->status = (status >> 8) & 0xff;
    } else {
        rep->flags |= REPORT_F_SIGNALED | ((status & 0x80) ? REPORT_F_CORE : 0);
        rep->status = status & 0x7f;
        if (!(rep->flags & REPORT_F_FAULT) || rep->fault_signal != rep->status)
            rep->flags &= ~(u32)REPORT_F_FAULT;
    }
    rep->utime_us = rusage[0] * 1000000 + rusage[1];
    rep->stime_us = rusage[2] * 1000000 + rusage[3];
}

/* Ends this process the way the guest ended. */
__attribute__((noreturn)) static void mirror_status(int status)
{
    if ((status & 0x7f) == 0)
        sys_exit_group((status >> 8) & 0xff);
    int sig = status & 0x7f;
    /* The monitor's own death must not leave a core of the monitor, nor be caught by a forwarding handler. */
    static const u64 zero[2] = { 0, 0 };
    sys_setrlimit(RLIMIT_CORE, zero);
    static const struct k_sigaction dfl = { 0, 0, 0, 0 };
    sys_rt_sigaction(sig, &dfl, 0);
    static const u64 none = 0;
    sys_rt_sigprocmask(SIG_SETMASK, &none, 0);
    syscall6(NR_tkill, syscall6(NR_gettid, 0, 0, 0, 0, 0, 0), sig, 0, 0, 0, 0);
    sys_exit_group(128 + sig);
}

static int is_stop_signal(int sig)
{
    return sig == 19 /* STOP */ || sig == 20 /* TSTP */ || sig == 21 /* TTIN */ || sig == 22 /* TTOU */;
}

__attribute__((noreturn)) static void monitor_loop(long child, int ready_fd)
{
    struct monitor_report rep = { .magic = REPORT_MAGIC, .guest_pid = (int32_t)child, .regs_syscall = -1 };
    struct uregs end_regs;
    u8 siginfo[128];
    u64 rusage[18] = { 0 };
    int status = 0;

    for (;;) {
        long r = syscall6(NR_wait4, child, (long)&status, WALL, (long)rusage, 0, 0);
        if (r == -EINTR)
            continue;
        if (r != child)
            sys_exit_group(1);
        if ((status & 0xff) != 0x7f)
            break; /* exited or killed */
        int sig = (status >> 8) & 0xff;
        int event = (status >> 16) & 0xffff;
        if (event == PTRACE_EVENT_EXIT) {
            report_exit_stop(child, &rep, &end_regs);
            sys_ptrace(PTRACE_CONT, child, 0, 0);
            continue;
        }
        if (event == PTRACE_EVENT_SECCOMP) {
            /* Snapshot creation: a traced yield call. At the point the guest is dumped and
             * killed; it never makes that call. */
            if (snapshot_stop(child))
                sys_kill(child, SIGKILL);
            else
                sys_ptrace(PTRACE_CONT, child, 0, 0);
            continue;
        }
        if (event == PTRACE_EVENT_STOP) {
            /* Group-stop: stay stopped, as an untraced process would, until SIGCONT. */
            sys_ptrace(is_stop_signal(sig) ? PTRACE_LISTEN : PTRACE_CONT, child, 0, 0);
            continue;
        }
        /* A signal on its way to the guest: note a fault, then deliver it. */
        if ((sig == 11 /* SEGV */ || sig == 7 /* BUS */ || sig == 4 /* ILL */ || sig == 8 /* FPE */ || sig == 5 /* TRAP */) &&
            sys_ptrace(PTRACE_GETSIGINFO, child, 0, (long)siginfo) == 0) {
            rep.flags |= REPORT_F_FAULT;
            rep.fault_signal = sig;
            rep.fault_code = *(int *)(siginfo + 8);
            rep.fault_addr = *(u64 *)(siginfo + 16);
        }
        sys_ptrace(PTRACE_CONT, child, 0, sig);
    }

    char started = 0;
    if (sys_read(ready_fd, &started, 1) == 1)
        rep.flags |= REPORT_F_STARTED;
    report_end(&rep, status, rusage);
    rep.flags |= isolate_end(status);
    if (snap_taken)
        rep.flags |= REPORT_F_SNAPSHOT;
    send_report(&rep, sizeof rep, -1);
    isolate_remove_cgroups();
    /* A snapshot ends the guest on purpose: that is success, not the guest's SIGKILL. */
    if (snap_taken)
        sys_exit_group(0);
    mirror_status(status);
}

/*
 * Forks the monitor. Returns in the child (the future guest) only; the parent
 * never returns. report_fd belongs to the monitor alone: the child closes it.
 */
static void monitor_fork(void)
{
    int ready[2], sync[2];
    long r = sys_pipe2(ready, 02000000 /* O_CLOEXEC */ | 04000 /* O_NONBLOCK */);
    if (r < 0 || (r = sys_pipe2(sync, 02000000)) < 0)
        die_errno("pipe2", "starting the monitor", r);
    long monitor = sys_getpid();
    jail_parent = monitor;
    /* Isolated: a pid namespace and its init first, so the guest is pid 2 (isolate.c). */
    isolate_fork_init();
    long child = syscall6(NR_fork, 0, 0, 0, 0, 0, 0);
    if (child < 0)
        die_errno("fork", "starting the monitor", child);
    if (child == 0) {
        sys_close(ready[0]);
        sys_close(sync[1]);
        sys_close(report_fd);
        report_fd = -1;
        snapshot_close_fds();
        /* The guest dies with its monitor (EXITKILL covers the monitor's
         * death once attached; this covers the moment before). */
        sys_prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (!isolate_parent_alive())
            sys_exit_group(1);
        /* Run on only once the monitor has attached. */
        char go = 0;
        long n;
        do
            n = sys_read(sync[0], &go, 1);
        while (n == -EINTR);
        if (n != 1)
            sys_exit_group(1);
        sys_close(sync[0]);
        guest_ready_fd = ready[1];
        return;
    }
    long parent = sys_getppid();
    sys_close(ready[1]);
    sys_close(sync[0]);
    /* The monitor keeps stdio, the report fd and its pipes; the devices,
     * the plan and the memory file are the guest's. It dies with whoever
     * started the stub, and the guest with it (EXITKILL). */
    /* Recording, it also keeps the guest's epoll set, timer and devices, to make the guest's calls on them. */
    int keep[9 + PLAN_MAX_MOVES] = { 0, 1, 2, report_fd, ready[0], sync[1], snap_mem_fd, snap_state_fd, rec_fd };
    u32 nkeep = 9;
    if (trace_mode == PLAN_F_RECORD) {
        keep[nkeep++] = GUEST_FD_EPOLL;
        keep[nkeep++] = GUEST_FD_TIMER;
        for (u32 i = 0; i < hdr.nmoves; i++)
            keep[nkeep++] = moves[i].dst;
    }
    close_all_but(keep, nkeep);
    plan_fd = image_fd = start_fd = -1;
    if (sys_prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || sys_getppid() != parent)
        sys_exit_group(1);
    guest_pid = child;
    /* Record/replay also stop the guest at every call its filter traces (0x80: TRACESECCOMP) and tell a
     * syscall stop by SIGTRAP|0x80 (1: TRACESYSGOOD). */
    r = sys_ptrace(PTRACE_SEIZE, child, 0, PTRACE_O_TRACEEXIT | PTRACE_O_EXITKILL | snapshot_ptrace_options() | (trace_mode ? 0x80 | 1 : 0));
    if (r < 0) {
        sys_kill(child, SIGKILL);
        die_errno("ptrace(PTRACE_SEIZE)", "attaching the monitor to the guest", r);
    }
    monitor_signals();
    struct monitor_hello hello = { .magic = REPORT_HELLO_MAGIC, .guest_pid = (int32_t)child };
    long pidfd = (hdr.flags & PLAN_F_SEND_PIDFD) ? sys_pidfd_open(child) : -1;
    send_report(&hello, sizeof hello, (int)pidfd);
    if (pidfd >= 0)
        sys_close((int)pidfd);
    if (trace_mode == PLAN_F_REPLAY)
        replay_prepare(child);
    sys_write(sync[1], "S", 1);
    sys_close(sync[1]);
    if (trace_mode == PLAN_F_RECORD)
        record_loop(child, ready[0]);
    if (trace_mode == PLAN_F_REPLAY)
        replay_loop(child, ready[0]);
    monitor_loop(child, ready[0]);
}
