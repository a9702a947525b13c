/*
 * Monitor mode (supervised launches): the stub forks before loading the
 * guest. The child becomes the guest as usual; the parent stays behind as a
 * tiny ptrace monitor that learns *why* the guest ended, which a parent's
 * wait status cannot tell (a SIGSYS from the filter says nothing of the
 * call; a SIGSEGV nothing of the address). It writes one JSON line to the
 * report fd and then ends the way the guest did, so whoever started the
 * stub sees the guest's exact status.
 *
 * Ptrace costs nothing while the guest runs: no syscall tracing, only
 * stops on signals and at exit. PTRACE_O_EXITKILL kills the guest if the
 * monitor is killed, so killing the process the supervisor spawned ends
 * the instance.
 *
 * Included by stub.c (one translation unit, no libc).
 */

#define NR_wait4 61
#define NR_fork 57
#define NR_ptrace 101
#define NR_gettid 186
#define NR_tkill 200

#define PTRACE_TRACEME 0
#define PTRACE_CONT 7
#define PTRACE_GETREGS 12
#define PTRACE_SETOPTIONS 0x4200
#define PTRACE_GETEVENTMSG 0x4201
#define PTRACE_GETSIGINFO 0x4202
#define PTRACE_O_TRACEEXIT 0x40
#define PTRACE_O_EXITKILL 0x100000
#define PTRACE_EVENT_EXIT 6
#define WALL 0x40000000
#define SIGSTOP_ 19
#define SIGSEGV_ 11
#define SIGBUS_ 7
#define SIGSYS_ 31

static long sys_ptrace(long req, long pid, void *addr, long data)
{
    return syscall6(NR_ptrace, req, pid, (long)addr, data, 0, 0);
}

/* Small append-only formatter for the report line. */
struct out {
    char buf[512];
    u32 len;
};

static void out_str(struct out *o, const char *s)
{
    while (*s && o->len < sizeof o->buf - 2)
        o->buf[o->len++] = *s++;
}

static void out_num(struct out *o, u64 v, int base)
{
    char tmp[24];
    int n = 0;
    if (base == 16)
        out_str(o, "\"0x");
    do {
        tmp[n++] = "0123456789abcdef"[v % (u64)base];
        v /= (u64)base;
    } while (v);
    while (n && o->len < sizeof o->buf - 2)
        o->buf[o->len++] = tmp[--n];
    if (base == 16)
        out_str(o, "\"");
}

static void out_field(struct out *o, const char *key, u64 v, int base)
{
    out_str(o, ",\"");
    out_str(o, key);
    out_str(o, "\":");
    out_num(o, v, base);
}

struct exit_info {
    long hwm_kb;
    int have_regs;
    u64 orig_rax, rip;
    int have_fault;
    int fault_sig, fault_code;
    u64 fault_addr;
};

/*
 * Peak resident memory from /proc/PID/status (VmHWM, kB), read while the
 * guest is stopped at exit with its memory still there. wait4's ru_maxrss is
 * no substitute: the kernel's per-CPU RSS counters make it read 0 for a
 * guest as small as hello.
 */
static long read_hwm_kb(long pid)
{
    char path[32] = "/proc/";
    u32 n = 6;
    char digits[12];
    int d = 0;
    do {
        digits[d++] = (char)('0' + pid % 10);
        pid /= 10;
    } while (pid);
    while (d)
        path[n++] = digits[--d];
    const char *tail = "/status";
    while (*tail)
        path[n++] = *tail++;
    path[n] = 0;
    return proc_status_value(path, "VmHWM:");
}

/* Ends this process the way the guest ended. */
__attribute__((noreturn)) static void mirror_status(int status)
{
    if ((status & 0x7f) == 0)
        sys_exit_group((status >> 8) & 0xff);
    int sig = status & 0x7f;
    /* The monitor's own death must not leave a core of the monitor. */
    static const u64 zero[2] = { 0, 0 };
    sys_setrlimit(RLIMIT_CORE, zero);
    syscall6(NR_tkill, syscall6(NR_gettid, 0, 0, 0, 0, 0, 0), sig, 0, 0, 0, 0);
    sys_exit_group(128 + sig);
}

__attribute__((noreturn)) static void monitor_loop(long child, int report_fd, int ready_fd)
{
    struct exit_info info = { 0 };
    u64 regs[27];
    u8 siginfo[128];
    u64 rusage[18];
    int status = 0;

    /* The child stops itself right after PTRACE_TRACEME. */
    if (syscall6(NR_wait4, child, (long)&status, WALL, 0, 0, 0) != child)
        sys_exit_group(1);
    sys_ptrace(PTRACE_SETOPTIONS, child, 0, PTRACE_O_TRACEEXIT | PTRACE_O_EXITKILL);
    sys_ptrace(PTRACE_CONT, child, 0, 0);

    for (;;) {
        long r = syscall6(NR_wait4, child, (long)&status, WALL, (long)rusage, 0, 0);
        if (r == -EINTR)
            continue;
        if (r != child)
            sys_exit_group(1);
        if ((status & 0xff) != 0x7f)
            break; /* exited or killed */
        int sig = (status >> 8) & 0xff;
        if (sig == 5 /* SIGTRAP */ && (status >> 16) == PTRACE_EVENT_EXIT) {
            /* Registers as of the last syscall; for a seccomp kill the
             * kernel has rolled them back to the forbidden call. */
            info.hwm_kb = read_hwm_kb(child);
            if (sys_ptrace(PTRACE_GETREGS, child, 0, (long)regs) == 0) {
                info.have_regs = 1;
                info.orig_rax = regs[15];
                info.rip = regs[16];
            }
            sys_ptrace(PTRACE_CONT, child, 0, 0);
            continue;
        }
        /* A signal on its way to the guest: note a fault, then deliver it. */
        if (sys_ptrace(PTRACE_GETSIGINFO, child, 0, (long)siginfo) == 0 &&
            (sig == SIGSEGV_ || sig == SIGBUS_ || sig == 4 /* SIGILL */ || sig == 8 /* SIGFPE */)) {
            info.have_fault = 1;
            info.fault_sig = sig;
            info.fault_code = *(int *)(siginfo + 8);
            info.fault_addr = *(u64 *)(siginfo + 16);
        }
        sys_ptrace(PTRACE_CONT, child, 0, sig == SIGSTOP_ ? 0 : sig);
    }

    char started = 0;
    long n = sys_read(ready_fd, &started, 1);
    struct out o = { .len = 0 };
    out_str(&o, "{\"pid\":");
    out_num(&o, (u64)child, 10);
    out_str(&o, ",\"started\":");
    out_str(&o, n == 1 ? "true" : "false");
    if ((status & 0x7f) == 0) {
        out_field(&o, "exit", (u64)((status >> 8) & 0xff), 10);
    } else {
        int sig = status & 0x7f;
        out_field(&o, "signal", (u64)sig, 10);
        if (status & 0x80)
            out_str(&o, ",\"core\":true");
        if (sig == SIGSYS_ && info.have_regs)
            out_field(&o, "syscall", info.orig_rax, 10);
        if (info.have_fault && info.fault_sig == sig) {
            out_field(&o, "fault_addr", info.fault_addr, 16);
            out_field(&o, "fault_code", (u64)info.fault_code, 10);
        }
        if (info.have_regs)
            out_field(&o, "ip", info.rip, 16);
    }
    out_field(&o, "utime_us", rusage[0] * 1000000 + rusage[1], 10);
    out_field(&o, "stime_us", rusage[2] * 1000000 + rusage[3], 10);
    out_field(&o, "maxrss_kb", info.hwm_kb > 0 ? (u64)info.hwm_kb : rusage[4], 10);
    out_str(&o, "}\n");
    sys_write(report_fd, o.buf, o.len);
    mirror_status(status);
}

/*
 * Forks the monitor. Returns in the child (the future guest) only; the parent
 * never returns. `report_fd` belongs to the monitor alone: the child closes it.
 */
static void monitor_fork(int report_fd)
{
    int ready[2];
    long r = syscall6(293 /* pipe2 */, (long)ready, 02000000 /* O_CLOEXEC */ | 04000 /* O_NONBLOCK */, 0, 0, 0, 0);
    if (r < 0)
        die_errno("pipe2", "starting the monitor", r);
    long child = syscall6(NR_fork, 0, 0, 0, 0, 0, 0);
    if (child < 0)
        die_errno("fork", "starting the monitor", child);
    if (child > 0) {
        sys_close(ready[1]);
        /* The monitor keeps stdio, the report fd and the ready pipe; the
         * devices and the plan are the guest's. It dies with its parent
         * (the supervisor), and the guest with it (EXITKILL). */
        int a = report_fd < ready[0] ? report_fd : ready[0];
        int b = report_fd < ready[0] ? ready[0] : report_fd;
        close_span(3, (unsigned int)a);
        close_span((unsigned int)a + 1, (unsigned int)b);
        close_span((unsigned int)b + 1, ~0u);
        sys_prctl(PR_SET_PDEATHSIG, 9 /* SIGKILL */, 0, 0, 0);
        monitor_loop(child, report_fd, ready[0]);
    }
    sys_close(ready[0]);
    sys_close(report_fd);
    guest_ready_fd = ready[1];
    if (sys_ptrace(PTRACE_TRACEME, 0, 0, 0) < 0)
        die("ptrace", "PTRACE_TRACEME failed");
    syscall6(NR_tkill, syscall6(NR_gettid, 0, 0, 0, 0, 0, 0), SIGSTOP_, 0, 0, 0, 0);
}
