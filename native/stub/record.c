/*
 * The recorder (tendril run --record=FILE): the monitor answers every call
 * the filter lets through by making that same call itself, on the same fds
 * (it forked from the stub after they were placed, so its fd numbers are
 * the guest's), and writes the call, its result and its data to the
 * recording. One ptrace stop per call: the call is skipped in the guest
 * (orig_rax = -1) and its result put in rax. A call the monitor cannot make
 * exactly as the kernel would for the guest (a buffer it cannot fully read,
 * a sigmask, an oversized request) is left to the guest itself, and the
 * monitor records it at its exit stop instead.
 *
 * The stream format is loader/formats.ts (rec_event, rec_cpu, rec_trailer).
 * Included by stub.c after trace.c.
 */

#define NR_ppoll 271
#define OUT_SIZE (8ul << 20)
#define OUT_FLUSH (4ul << 20)
/* How often a monitor blocked in epoll for the guest looks for signals sent to the guest itself. */
#define SIGNAL_CHECK_NS 50000000l

static u8 *out;
static u64 out_used, cur_ev, cur_nargs;
static u64 stream_len;
static u32 stream_crc;
static int rec_broken;
static struct rec_trailer trailer;
static int guest_pidfd = -1;

static void rec_fail(const char *what, long err)
{
    if (rec_broken)
        return;
    rec_broken = 1;
    put_str("tendril: writing the recording failed (");
    put_str(what);
    put_str(": ");
    put_str(errno_text(err));
    put_str("); the guest goes on unrecorded and the file will be refused as truncated\n");
}

static void out_flush(void)
{
    stream_crc = crc_update(stream_crc, out, out_used);
    stream_len += out_used;
    u64 o = 0;
    while (o < out_used && !rec_broken) {
        long n = sys_write(rec_fd, out + o, out_used - o);
        if (n == -EINTR)
            continue;
        if (n <= 0)
            rec_fail("write", n < 0 ? n : -5);
        else
            o += (u64)n;
    }
    out_used = 0;
}

/* Starts an event with room for max_data bytes; returns where its data goes. */
static u8 *ev_begin(u32 kind, u64 nr, u32 nargs, const u64 *args, u32 flags, u64 max_data)
{
    u64 need = sizeof(struct rec_event) + 8 * nargs + max_data + 8;
    if (out_used + need > OUT_SIZE)
        out_flush();
    struct rec_event *e = (struct rec_event *)(out + out_used);
    e->kind = (uint16_t)kind;
    e->nargs = (uint16_t)nargs;
    e->nr = (uint32_t)nr;
    e->data_len = 0;
    e->flags = flags;
    e->result = 0;
    copy_bytes(e + 1, args, 8 * nargs);
    cur_ev = out_used;
    cur_nargs = nargs;
    return out + out_used + sizeof *e + 8 * nargs;
}

static void count_event(u32 kind)
{
    trailer.events++;
    if (kind == REC_EV_SYSCALL)
        trailer.syscalls++;
    else if (kind == REC_EV_RDTSC || kind == REC_EV_RDTSCP)
        trailer.tsc_reads++;
    else if (kind == REC_EV_CPUID)
        trailer.cpuids++;
    else if (kind == REC_EV_SIGNAL)
        trailer.signals++;
}

static void ev_end(u64 data_len, long result, u32 more_flags)
{
    struct rec_event *e = (struct rec_event *)(out + cur_ev);
    e->data_len = (uint32_t)data_len;
    e->result = result;
    e->flags |= more_flags;
    u64 end = cur_ev + sizeof *e + 8 * cur_nargs + data_len;
    u64 padded = (end + 7) & ~7ul;
    zero_bytes(out + end, padded - end);
    out_used = padded;
    count_event(e->kind);
}

/* An event whose data (len bytes of guest memory at addr) may be larger than the buffer. */
static void ev_streamed(u64 nr, const u64 *args, u32 nargs, u32 flags, long result, long pid, u64 addr, u64 len)
{
    ev_begin(REC_EV_SYSCALL, nr, nargs, args, flags, 0);
    struct rec_event *e = (struct rec_event *)(out + cur_ev);
    e->data_len = (uint32_t)len;
    e->result = result;
    out_used = cur_ev + sizeof *e + 8 * nargs;
    for (u64 done = 0; done < len;) {
        if (out_used + 4096 > OUT_SIZE)
            out_flush();
        u64 chunk = len - done;
        if (chunk > OUT_SIZE - out_used - 8)
            chunk = OUT_SIZE - out_used - 8;
        long got = vm_read(pid, addr + done, out + out_used, chunk);
        /* The kernel has just read these bytes for the guest, so they are readable; never write garbage all the same. */
        if (got < (long)chunk)
            zero_bytes(out + out_used + (got > 0 ? got : 0), chunk - (u64)(got > 0 ? got : 0));
        out_used += chunk;
        done += chunk;
    }
    u64 padded = (out_used + 7) & ~7ul;
    zero_bytes(out + out_used, padded - out_used);
    out_used = padded;
    count_event(REC_EV_SYSCALL);
}

static void rec_cpu_record(int faulted)
{
    struct rec_cpu c;
    cpu_identity(&c);
    c.mode = faulted ? REC_CPUID_FAULTED : REC_CPUID_NATIVE;
    u8 *d = ev_begin(REC_EV_CPU, 0, 0, 0, 0, sizeof c);
    copy_bytes(d, &c, sizeof c);
    ev_end(sizeof c, 0, 0);
    trailer.events--; /* the CPU record describes the stream; it is not an event */
}

#define GUEST_GONE (~0ul)

/*
 * The signals waiting for the guest (SigPnd | ShdPnd of /proc/PID/status, bit
 * n-1 for signal n), or GUEST_GONE: the monitor, waiting on the guest's
 * behalf, must stop when the guest's own wait would have.
 */
static u64 guest_pending(long pid)
{
    char path[40];
    proc_path(path, pid, "/status");
    static char buf[4096];
    long fd = sys_open(path, 0);
    if (fd < 0)
        return GUEST_GONE;
    long len = sys_read((int)fd, buf, sizeof buf - 1);
    sys_close((int)fd);
    if (len <= 0)
        return GUEST_GONE;
    buf[len] = 0;
    u64 pending = 0;
    for (long i = 0; i < len; i++) {
        if (i > 0 && buf[i - 1] != '\n')
            continue;
        const char *keys[] = { "SigPnd:", "ShdPnd:", "State:" };
        for (int k = 0; k < 3; k++) {
            u64 kl = str_len(keys[k]), j = 0;
            while (j < kl && buf[i + (long)j] == keys[k][j])
                j++;
            if (j < kl)
                continue;
            long v = i + (long)kl;
            while (buf[v] == ' ' || buf[v] == '\t')
                v++;
            if (k == 2) {
                if (buf[v] == 'Z' || buf[v] == 'X')
                    return GUEST_GONE;
                continue;
            }
            u64 mask = 0;
            for (; (buf[v] >= '0' && buf[v] <= '9') || (buf[v] >= 'a' && buf[v] <= 'f'); v++)
                mask = (mask << 4) | (u64)(buf[v] <= '9' ? buf[v] - '0' : buf[v] - 'a' + 10);
            pending |= mask;
        }
    }
    return pending;
}

static int guest_wants_attention(long pid)
{
    return guest_pending(pid) != 0;
}

/* Signals whose default action ends the process (all a guest can have: it installs no handler). */
static int fatal_by_default(int sig);

static int fatal_pending(long pid)
{
    u64 p = guest_pending(pid);
    if (p == GUEST_GONE)
        return 1;
    for (int sig = 1; sig <= 64; sig++)
        if ((p >> (sig - 1) & 1) && fatal_by_default(sig))
            return 1;
    return 0;
}

#define F_GETFL 3
#define O_NONBLOCK 04000
#define POLLOUT 4

/*
 * write(fd) for the guest. On a blocking fd (a console pipe that may be
 * full) the monitor must not block where the guest could have been killed:
 * it writes in pieces that fit (a pipe takes PIPE_BUF bytes whole once it
 * polls writable), and gives up — with what it wrote, or -EINTR — when a
 * fatal signal is waiting for the guest, as the guest's own write would
 * have been cut short by it.
 */
static long write_for_guest(long pid, int fd, const u8 *d, u64 n)
{
    long fl = sys_fcntl(fd, F_GETFL, 0);
    if (fl < 0 || (fl & O_NONBLOCK) || n == 0)
        return syscall6(NR_write, fd, (long)d, (long)n, 0, 0, 0);
    u64 done = 0;
    while (done < n) {
        struct { int fd; short events, revents; } p = { fd, POLLOUT, 0 };
        long ts[2] = { 0, SIGNAL_CHECK_NS };
        long q = syscall6(NR_ppoll, (long)&p, 1, (long)ts, 0, 8, 0);
        if (q == 0 || q == -EINTR) {
            if (fatal_pending(pid))
                return done ? (long)done : -EINTR;
            continue;
        }
        u64 chunk = n - done > 4096 ? 4096 : n - done;
        long w = syscall6(NR_write, fd, (long)(d + done), (long)chunk, 0, 0, 0);
        if (w == -EINTR)
            continue;
        if (w < 0)
            return done ? (long)done : w;
        done += (u64)w;
    }
    return (long)done;
}

/*
 * epoll_pwait for the guest, with its timeout. The monitor waits on the
 * guest's own epoll set (ppoll sees it readable when an event is ready) and
 * on the guest's pidfd; every SIGNAL_CHECK_NS it looks whether a signal is
 * pending for the guest, which then gets -EINTR, as its own wait would
 * have (a signal to the monitor is forwarded to the guest and ends the wait
 * at once).
 */
static long wait_for_guest_events(long pid, int ep, u8 *events, int maxev, int timeout_ms)
{
    u64 deadline = timeout_ms >= 0 ? now_ns() + (u64)timeout_ms * 1000000ul : 0;
    for (;;) {
        long r = syscall6(NR_epoll_pwait, ep, (long)events, maxev, 0, 0, 0);
        if (r != 0)
            return r;
        if (timeout_ms == 0)
            return 0;
        long slice = SIGNAL_CHECK_NS;
        if (timeout_ms > 0) {
            u64 now = now_ns();
            if (now >= deadline)
                return 0;
            if ((long)(deadline - now) < slice)
                slice = (long)(deadline - now);
        }
        struct { int fd; short events, revents; } pfd[2] = { { ep, 1 /* POLLIN */, 0 }, { guest_pidfd, 1, 0 } };
        long ts[2] = { slice / 1000000000l, slice % 1000000000l };
        long p = syscall6(NR_ppoll, (long)pfd, guest_pidfd >= 0 ? 2 : 1, (long)ts, 0, 8, 0);
        if (p > 0 && pfd[1].revents)
            return -EINTR; /* the guest is gone */
        if (p > 0)
            continue; /* an event is ready */
        if ((p == 0 || p == -EINTR) && !guest_wants_attention(pid))
            continue;
        return -EINTR;
    }
}

/*
 * Makes the guest's call (at its seccomp stop, registers in r) and records
 * it. Returns 1 with *res set if done, 0 if the guest must make it itself.
 */
static int rec_emulate(long pid, u64 nr, const u64 *a, long *res)
{
    u32 n3 = syscall_nargs(nr);
    switch (nr) {
    case NR_read: {
        u64 len = a[2] > REC_MAX_INPUT ? REC_MAX_INPUT : a[2];
        u8 *d = ev_begin(REC_EV_SYSCALL, nr, n3, a, 0, len);
        long r = syscall6(NR_read, (long)a[0], (long)d, (long)len, 0, 0, 0);
        u64 kept = r > 0 ? (u64)r : 0;
        if (r > 0) {
            long w = vm_write(pid, a[1], d, (u64)r);
            if (w != r) {
                r = -EFAULT; /* as the kernel's copy to a bad buffer; the bytes before the fault stay written */
                kept = (u64)w;
            }
        }
        ev_end(kept, r, 0);
        *res = r;
        return 1;
    }
    case NR_pread64: {
        if (a[2] > REC_MAX_INPUT)
            return 0;
        u8 *d = ev_begin(REC_EV_SYSCALL, nr, n3, a, 0, a[2]);
        long r = syscall6(NR_pread64, (long)a[0], (long)d, (long)a[2], (long)a[3], 0, 0);
        u64 kept = r > 0 ? (u64)r : 0;
        if (r > 0) {
            long w = vm_write(pid, a[1], d, (u64)r);
            if (w != r) {
                r = w > 0 ? w : -EFAULT; /* a file read stops at the fault and says how far it got */
                kept = (u64)(w > 0 ? w : 0);
            }
        }
        ev_end(kept, r, 0);
        *res = r;
        return 1;
    }
    case NR_write:
    case NR_pwrite64: {
        if (a[2] > REC_MAX_EMULATED_WRITE)
            return 0;
        u8 *d = ev_begin(REC_EV_SYSCALL, nr, n3, a, 0, a[2]);
        if (vm_read(pid, a[1], d, a[2]) != (long)a[2])
            return 0; /* a buffer the guest cannot fully read: the kernel decides what that does */
        long r = nr == NR_write ? write_for_guest(pid, (int)a[0], d, a[2])
                                : syscall6(NR_pwrite64, (long)a[0], (long)d, (long)a[2], (long)a[3], 0, 0);
        if (r == -EPIPE)
            sys_tgkill(pid, SIGPIPE); /* the writer gets SIGPIPE: the guest was the writer */
        ev_end(a[2], r, 0);
        *res = r;
        return 1;
    }
    case NR_clock_gettime: {
        u8 *d = ev_begin(REC_EV_SYSCALL, nr, n3, a, 0, 16);
        long r = syscall6(NR_clock_gettime, (long)a[0], (long)d, 0, 0, 0, 0);
        u64 kept = r == 0 ? 16 : 0;
        if (r == 0) {
            long w = vm_write(pid, a[1], d, 16);
            if (w != 16) {
                r = -EFAULT;
                kept = (u64)w;
            }
        }
        ev_end(kept, r, 0);
        *res = r;
        return 1;
    }
    case NR_timerfd_settime: {
        u8 *d = ev_begin(REC_EV_SYSCALL, nr, n3, a, 0, 64);
        long got = vm_read(pid, a[2], d, 32);
        long r;
        u64 kept = (u64)got;
        if (got != 32) {
            r = -EFAULT;
        } else {
            r = syscall6(NR_timerfd_settime, (long)a[0], (long)a[1], (long)d, a[3] ? (long)(d + 32) : 0, 0, 0);
            if (r == 0 && a[3]) {
                long w = vm_write(pid, a[3], d + 32, 32);
                kept = 32 + (u64)w;
                if (w != 32)
                    r = -EFAULT;
            }
        }
        ev_end(kept, r, 0);
        *res = r;
        return 1;
    }
    case NR_epoll_pwait: {
        int maxev = (int)(u32)a[2];
        if (a[4] != 0 || maxev <= 0 || maxev > REC_MAX_EPOLL_EVENTS)
            return 0; /* a signal mask, or a size the kernel alone decides on */
        u8 *d = ev_begin(REC_EV_SYSCALL, nr, n3, a, 0, (u64)maxev * 12);
        long r = wait_for_guest_events(pid, (int)a[0], d, maxev, (int)(u32)a[3]);
        u64 kept = r > 0 ? (u64)r * 12 : 0;
        if (r > 0) {
            long w = vm_write(pid, a[1], d, kept);
            if (w != (long)kept) {
                r = -EFAULT;
                kept = (u64)w;
            }
        }
        ev_end(kept, r, 0);
        *res = r;
        return 1;
    }
    default:
        return 0; /* arch_prctl (it sets the guest's own FS base), anything else: the guest makes it */
    }
}

/* A call the guest made itself, recorded at its exit stop from what it did. */
static void rec_native(long pid, u64 nr, const u64 *a, long r, u32 flags)
{
    u32 nargs = syscall_nargs(nr);
    flags |= REC_EVF_NATIVE;
    switch (nr) {
    case NR_read:
    case NR_pread64:
    case NR_write:
    case NR_pwrite64:
        ev_streamed(nr, a, nargs, flags, r, pid, a[1], r > 0 ? (u64)r : 0);
        return;
    case NR_epoll_pwait:
        ev_streamed(nr, a, nargs, flags, r, pid, a[1], r > 0 ? (u64)r * 12 : 0);
        return;
    case NR_clock_gettime:
        ev_streamed(nr, a, nargs, flags, r, pid, a[1], r == 0 ? 16 : 0);
        return;
    case NR_timerfd_settime:
        ev_streamed(nr, a, nargs, flags, r, pid, a[2], 32);
        return;
    default:
        ev_begin(REC_EV_SYSCALL, nr, nargs, a, flags, 0);
        ev_end(0, r, 0);
    }
}

static int fatal_by_default(int sig)
{
    return !(sig == 17 || sig == 18 || sig == 19 || sig == 20 || sig == 21 || sig == 22 || sig == 23 || sig == 28);
}

static int fault_signal(int sig)
{
    return sig == 11 || sig == 7 || sig == 4 || sig == 8 || sig == 5;
}

/* rdtsc, rdtscp or a faulted cpuid at regs->rip: answered and recorded. */
static void rec_trap(long pid, struct uregs *r, int kind, u32 len)
{
    u64 args[3] = { r->rip, len, 0 };
    if (kind == REC_EV_CPUID) {
        u32 o[4];
        u64 cargs[3] = { r->rip, (u32)r->rax, (u32)r->rcx };
        cpuid_for_guest((u32)r->rax, (u32)r->rcx, o);
        u8 *d = ev_begin(REC_EV_CPUID, 0, 3, cargs, 0, 16);
        copy_bytes(d, o, 16);
        ev_end(16, 0, 0);
        r->rax = o[0];
        r->rbx = o[1];
        r->rcx = o[2];
        r->rdx = o[3];
    } else {
        u32 aux = 0;
        u64 t = kind == REC_EV_RDTSCP ? rdtscp(&aux) : rdtsc();
        args[2] = aux;
        ev_begin((u32)kind, 0, 3, args, 0, 0);
        ev_end(0, (long)t, 0);
        r->rax = (u32)t;
        r->rdx = t >> 32;
        if (kind == REC_EV_RDTSCP)
            r->rcx = aux;
    }
    r->rip += len;
    t_setregs(pid, r);
}

__attribute__((noreturn)) static void record_loop(long child, int ready_fd)
{
    struct monitor_report rep = { .magic = REPORT_MAGIC, .guest_pid = (int32_t)child, .regs_syscall = -1 };
    struct uregs r, end_regs;
    struct ksiginfo si;
    u64 rusage[18] = { 0 };
    int status = 0, started = 0, faulted_cpuid = 0, pending = 0;
    u64 pend_nr = 0, pend_args[6], t_start = 0, t_end = 0;
    int have_end_regs = 0;

    out = map_anon(OUT_SIZE, "the recording buffer");
    crc_init();
    guest_pidfd = (int)sys_pidfd_open(child);
    trailer.magic = REC_TRAILER_MAGIC;
    trailer.version = REC_VERSION;

    for (;;) {
        /* Between stops, never inside an event: the last event can still be marked (KILLED). */
        if (out_used >= OUT_FLUSH)
            out_flush();
        /* Resource usage is only wanted (and only paid for) at the end. */
        long w = syscall6(NR_wait4, child, (long)&status, WALL, t_end ? (long)rusage : 0, 0, 0);
        if (w == -EINTR)
            continue;
        if (w != child)
            sys_exit_group(1);
        if ((status & 0xff) != 0x7f)
            break;
        if (!started) {
            char b = 0;
            if (sys_read(ready_fd, &b, 1) == 1) {
                started = 1;
                faulted_cpuid = b == 'F';
                rep.flags |= REPORT_F_STARTED;
                t_start = now_ns();
                rec_cpu_record(faulted_cpuid);
            }
        }
        int sig = (status >> 8) & 0xff;
        int event = (status >> 16) & 0xffff;
        if (event == PTRACE_EVENT_SECCOMP) {
            /* Killed (SIGKILL) between its stop and now: it is on its way out; its end says the rest. */
            if (t_getregs(child, &r) < 0)
                continue;
            u64 a[6];
            long res;
            regs_args(&r, a);
            if (rec_emulate(child, r.orig_rax, a, &res)) {
                r.orig_rax = ~0ul;
                r.rax = (u64)res;
                /* Killed (SIGKILL) while the monitor made its call: it never saw the result. */
                if (t_setregs(child, &r) < 0) {
                    ((struct rec_event *)(out + cur_ev))->flags |= REC_EVF_KILLED;
                    trailer.flags |= REC_ENDF_IN_SYSCALL;
                }
                sys_ptrace(PTRACE_CONT, child, 0, 0);
            } else {
                pending = 1;
                pend_nr = r.orig_rax;
                copy_bytes(pend_args, a, sizeof a);
                sys_ptrace(PTRACE_SYSCALL, child, 0, 0);
            }
            continue;
        }
        if (sig == (5 | 0x80)) {
            if (pending) {
                t_getregs(child, &r);
                rec_native(child, pend_nr, pend_args, (long)r.rax, 0);
                pending = 0;
            }
            sys_ptrace(PTRACE_CONT, child, 0, 0);
            continue;
        }
        if (event == PTRACE_EVENT_EXIT) {
            t_end = now_ns();
            have_end_regs = report_exit_stop(child, &rep, &end_regs);
            if (pending && started) {
                rec_native(child, pend_nr, pend_args, 0, REC_EVF_KILLED);
                trailer.flags |= REC_ENDF_IN_SYSCALL;
            }
            pending = 0;
            sys_ptrace(PTRACE_CONT, child, 0, 0);
            continue;
        }
        if (event == PTRACE_EVENT_STOP) {
            sys_ptrace(is_stop_signal(sig) ? PTRACE_LISTEN : PTRACE_CONT, child, 0, 0);
            continue;
        }
        /* A signal on its way to the guest. */
        int have_si = sys_ptrace(PTRACE_GETSIGINFO, child, 0, (long)&si) == 0;
        if (started && have_si && sig == SIGSEGV && si.code == SI_KERNEL && t_getregs(child, &r) == 0) {
            u32 len = 0;
            int kind = decode_trap(child, r.rip, &len);
            if (kind == REC_EV_RDTSC || kind == REC_EV_RDTSCP || (kind == REC_EV_CPUID && faulted_cpuid)) {
                rec_trap(child, &r, kind, len);
                sys_ptrace(PTRACE_CONT, child, 0, 0);
                continue;
            }
        }
        if (have_si && fault_signal(sig)) {
            rep.flags |= REPORT_F_FAULT;
            rep.fault_signal = sig;
            rep.fault_code = si.code;
            rep.fault_addr = si.addr;
        }
        if (started && t_getregs(child, &r) == 0) {
            u32 flags = (have_si && si.code > 0 && fault_signal(sig) ? REC_EVF_SYNC : 0) | (fatal_by_default(sig) ? REC_EVF_FATAL : 0);
            u64 args[3] = { (u64)(long)(have_si ? si.code : 0), have_si ? si.addr : 0, r.rip };
            u8 *d = ev_begin(REC_EV_SIGNAL, (u64)sig, 3, args, flags, sizeof r);
            copy_bytes(d, &r, sizeof r);
            ev_end(sizeof r, 0, 0);
        }
        sys_ptrace(PTRACE_CONT, child, 0, sig);
    }

    report_end(&rep, status, rusage);
    trailer.end = (rep.flags & REPORT_F_SIGNALED) ? REC_END_SIGNALED : REC_END_EXITED;
    trailer.status = rep.status;
    if (rep.flags & REPORT_F_CORE)
        trailer.flags |= REC_ENDF_CORE;
    if ((rep.flags & REPORT_F_SIGNALED) && (rep.flags & REPORT_F_FAULT)) {
        trailer.flags |= REC_ENDF_FAULT;
        trailer.fault_addr = rep.fault_addr;
        trailer.fault_code = rep.fault_code;
        trailer.fault_signal = rep.fault_signal;
    }
    if (!started) {
        trailer.end = REC_END_NOT_STARTED;
        rec_cpu_record(0);
    }
    if (have_end_regs) {
        trailer.flags |= REC_ENDF_REGS;
        copy_bytes(trailer.regs, &end_regs, sizeof end_regs);
        /* Killed from outside inside one of its answered calls (orig_rax says which; a forbidden call is the filter's own kill). */
        if (trailer.end == REC_END_SIGNALED && trailer.status != 31 && end_regs.orig_rax != 231 &&
            (end_regs.orig_rax == NR_read || end_regs.orig_rax == NR_write || end_regs.orig_rax == NR_pread64 ||
             end_regs.orig_rax == NR_pwrite64 || end_regs.orig_rax == NR_clock_gettime || end_regs.orig_rax == NR_epoll_pwait ||
             end_regs.orig_rax == NR_timerfd_settime || end_regs.orig_rax == NR_arch_prctl))
            trailer.flags |= REC_ENDF_IN_SYSCALL;
    }
    trailer.duration_ns = started && t_end > t_start ? t_end - t_start : 0;
    out_flush();
    trailer.stream_len = stream_len;
    trailer.stream_crc = stream_crc;
    if (!rec_broken) {
        const u8 *p = (const u8 *)&trailer;
        u64 o = 0;
        while (o < sizeof trailer) {
            long n = sys_write(rec_fd, p + o, sizeof trailer - o);
            if (n == -EINTR)
                continue;
            if (n <= 0) {
                rec_fail("write", n < 0 ? n : -5);
                break;
            }
            o += (u64)n;
        }
    }
    sys_close(rec_fd);
    if (report_fd >= 0)
        send_report(&rep, sizeof rep, -1);
    mirror_status(status);
}
