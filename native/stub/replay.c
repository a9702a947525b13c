/*
 * The replayer (tendril replay FILE): the guest runs from the recorded
 * image under the recorded filter, with no device attached; every call it
 * makes stops at its entry (SECCOMP_RET_TRACE) and is compared with the
 * next recorded event — the call, its arguments, and for a write the bytes
 * written — then answered from the recording (result in rax, data copied
 * into guest memory) and skipped. rdtsc, rdtscp and a faulted cpuid get
 * their recorded values. Nothing waits: a yield returns what the recording
 * says it returned, at once.
 *
 * Signals: a fault is the guest's own doing and must recur by itself, at
 * the same instruction with the same address; a fatal signal that came from
 * outside is sent again where it was delivered (right after the call it
 * followed when the registers match, else at the first moment the
 * instruction pointer and every register are as recorded, found with a
 * hardware breakpoint); one whose default action is to be ignored or to
 * stop changed nothing but the result of a wait, which is recorded, and is
 * not sent. Anything else is a divergence: the monitor kills the guest and
 * reports what the guest did and what the recording has (replay_status,
 * loader/formats.ts), and exits with REC_DIVERGED_STATUS.
 *
 * Included by stub.c after record.c.
 */

#define WIN_SIZE (4ul << 20)
#define TRAP_HWBKPT 4
#define SI_TKILL (-6)
#define USER_DEBUGREG 848 /* offsetof(struct user, u_debugreg) */
#define EFLAGS_RF (1ul << 16)

static u8 *win;
static u64 win_start, win_len, rpos, ev_index, stream_end;
static struct rec_trailer rtrailer;
static struct replay_status st;
static int replay_faulted_cpuid;
static long replay_child;
/* A recorded fatal signal waiting to be sent: 0, or the signal; with the registers it must meet. */
static int async_sig;
static int async_sent;
static int bp_armed;
static u32 bp_hits;
static u32 notes;
static struct uregs async_regs;

struct cur {
    struct rec_event h;
    u64 args[6];
    u64 data; /* stream offset of the data */
    u64 next;
};

static void win_fill(u64 off)
{
    u64 want = stream_end - off;
    if (want > WIN_SIZE)
        want = WIN_SIZE;
    u64 got = 0;
    while (got < want) {
        long n = syscall6(NR_pread64, rec_fd, (long)(win + got), (long)(want - got), (long)(plan_rep.stream_offset + off + got), 0, 0);
        if (n == -EINTR)
            continue;
        if (n <= 0)
            break;
        got += (u64)n;
    }
    win_start = off;
    win_len = got;
}

/* [off, off + len) of the stream (len <= WIN_SIZE), or 0 if it is not all there. */
static const u8 *stream_at(u64 off, u64 len)
{
    if (off > stream_end || len > stream_end - off || len > WIN_SIZE)
        return 0;
    if (off < win_start || off + len > win_start + win_len)
        win_fill(off);
    if (off + len > win_start + win_len)
        return 0;
    return win + (off - win_start);
}

__attribute__((noreturn)) static void replay_finish(u32 outcome, u32 why, u64 event, int exit_status);

static int is_input_call(u64 nr)
{
    return nr == NR_read || nr == NR_pread64 || nr == NR_clock_gettime || nr == NR_epoll_pwait;
}

/* The next event at rpos: 1, or 0 at the end of the stream. A malformed one ends the replay. */
static int peek(struct cur *c)
{
    if (rpos == stream_end)
        return 0;
    const u8 *p = stream_at(rpos, sizeof c->h);
    if (!p)
        replay_finish(REPLAY_OUT_BAD_RECORDING, 0, ev_index + 1, 1);
    copy_bytes(&c->h, p, sizeof c->h);
    u64 argb = 8ul * c->h.nargs;
    if (c->h.kind < REC_EV_CPU || c->h.kind > REC_EV_SIGNAL || c->h.nargs > 6)
        replay_finish(REPLAY_OUT_BAD_RECORDING, 0, ev_index + 1, 1);
    p = stream_at(rpos + sizeof c->h, argb);
    if (!p && argb)
        replay_finish(REPLAY_OUT_BAD_RECORDING, 0, ev_index + 1, 1);
    zero_bytes(c->args, sizeof c->args);
    copy_bytes(c->args, p, argb);
    c->data = rpos + sizeof c->h + argb;
    u64 end = c->data + c->h.data_len;
    c->next = (end + 7) & ~7ul;
    int bad = c->next > stream_end;
    if (c->h.kind == REC_EV_SYSCALL && is_input_call(c->h.nr))
        bad |= c->h.data_len > REC_MAX_INPUT;
    if (c->h.kind == REC_EV_SYSCALL && c->h.nr == NR_timerfd_settime)
        bad |= c->h.data_len > 64;
    if (c->h.kind == REC_EV_SIGNAL)
        bad |= c->h.data_len != sizeof(struct uregs) || c->h.nargs != 3;
    if (c->h.kind == REC_EV_CPUID)
        bad |= c->h.data_len != 16 || c->h.nargs != 3;
    if (c->h.kind == REC_EV_RDTSC || c->h.kind == REC_EV_RDTSCP)
        bad |= c->h.nargs != 3;
    if (c->h.kind == REC_EV_CPU)
        bad |= c->h.data_len != sizeof(struct rec_cpu);
    if (bad)
        replay_finish(REPLAY_OUT_BAD_RECORDING, 0, ev_index + 1, 1);
    return 1;
}

static void consume(const struct cur *c)
{
    rpos = c->next;
    ev_index++;
}

/* The next event that matters: signals that neither end nor change the guest are passed over. */
static int peek_next(struct cur *c)
{
    while (peek(c)) {
        if (c->h.kind == REC_EV_SIGNAL && !(c->h.flags & REC_EVF_FATAL)) {
            consume(c);
            continue;
        }
        return 1;
    }
    return 0;
}

static void quote_guest(u64 addr, u64 len, u32 at)
{
    u64 n = len > at ? len - at : 0;
    if (n > REC_QUOTE)
        n = REC_QUOTE;
    zero_bytes(st.guest_quote, sizeof st.guest_quote);
    long got = vm_read(replay_child, addr + at, st.guest_quote, n);
    (void)got;
}

static void quote_recorded(const struct cur *c, u32 at)
{
    u64 n = c->h.data_len > at ? c->h.data_len - at : 0;
    if (n > REC_QUOTE)
        n = REC_QUOTE;
    zero_bytes(st.rec_quote, sizeof st.rec_quote);
    const u8 *p = stream_at(c->data + at, n);
    if (p)
        copy_bytes(st.rec_quote, p, n);
}

static void note_recorded(const struct cur *c)
{
    st.rec_kind = c->h.kind;
    st.rec_nargs = c->h.nargs;
    st.rec_nr = c->h.nr;
    st.rec_data_len = c->h.data_len;
    st.rec_flags = c->h.flags;
    st.rec_result = c->h.result;
    copy_bytes(st.rec_args, c->args, sizeof st.rec_args);
    quote_recorded(c, st.quote_offset);
}

/* What the guest is doing, kept for a verdict; its data is quoted only if it comes to one. */
static u64 quote_addr, quote_len;

static void note_guest_call(u64 kind, u64 nr, const u64 *a, u32 nargs)
{
    st.guest_kind = (uint16_t)kind;
    st.guest_nargs = (uint16_t)nargs;
    st.guest_nr = (uint32_t)nr;
    copy_bytes(st.guest_args, a, 8 * (nargs > 6 ? 6 : nargs));
    quote_len = 0;
    if (kind == REC_EV_SYSCALL && (nr == NR_write || nr == NR_pwrite64)) {
        st.guest_data_len = (uint32_t)a[2];
        quote_addr = a[1];
        quote_len = a[2];
    }
}

static void kill_and_reap(void)
{
    sys_kill(replay_child, SIGKILL);
    int status;
    for (;;) {
        long w = syscall6(NR_wait4, replay_child, (long)&status, WALL, 0, 0, 0);
        if (w == -EINTR)
            continue;
        if (w != replay_child || (status & 0xff) != 0x7f)
            break;
        sys_ptrace(PTRACE_CONT, replay_child, 0, 0);
    }
}

/* Ends the replay with a verdict; the guest is killed first unless it has already ended. */
__attribute__((noreturn)) static void replay_finish(u32 outcome, u32 why, u64 event, int exit_status)
{
    if (replay_child > 0 && exit_status >= 0)
        kill_and_reap();
    st.magic = REPLAY_STATUS_MAGIC;
    st.outcome = outcome;
    st.why = why;
    st.event = event;
    st.guest_pid = (int32_t)replay_child;
    send_report(&st, sizeof st, -1);
    sys_exit_group(exit_status >= 0 ? exit_status : 1);
}

__attribute__((noreturn)) static void diverge(u32 why, const struct cur *c)
{
    if (quote_len)
        quote_guest(quote_addr, quote_len, st.quote_offset);
    if (c)
        note_recorded(c);
    else
        st.rec_kind = 0;
    replay_finish(REPLAY_OUT_DIVERGED, why, ev_index + 1, REC_DIVERGED_STATUS);
}

/*
 * --until: the guest is stopped before event ev_index + 1. With GDB it is
 * put back just before the instruction that makes the event (a call's
 * `syscall`, the rdtsc), left in a SIGSTOP, detached, and awaited as an
 * ordinary child; otherwise it is ended (with a core of it as it is, if
 * asked).
 */
static int dumping;

static void stop_here(struct uregs *r, int at_syscall, const struct cur *c)
{
    if (at_syscall) {
        r->rip -= 2;
        r->rax = r->orig_rax;
        r->orig_rax = ~0ul;
        t_setregs(replay_child, r);
    }
    if (c)
        note_recorded(c);
    st.magic = REPLAY_STATUS_MAGIC;
    st.outcome = REPLAY_OUT_STOPPED;
    st.event = ev_index + 1;
    st.guest_pid = (int32_t)replay_child;
    if (trace_flags & REC_PLAN_F_GDB) {
        sys_tgkill(replay_child, SIGSTOP);
        sys_ptrace(PTRACE_DETACH, replay_child, 0, 0);
        send_report(&st, sizeof st, -1);
        int status = 0;
        for (;;) {
            long w = syscall6(NR_wait4, replay_child, (long)&status, 0, 0, 0, 0);
            if (w == -EINTR)
                continue;
            break;
        }
        mirror_status(status);
    }
    if (trace_flags & REC_PLAN_F_CORE_AT_UNTIL) {
        /* The core is written when this SIGABRT is delivered, before anything else runs. */
        dumping = 1;
        sys_tgkill(replay_child, SIGABRT);
        return;
    }
    replay_finish(REPLAY_OUT_STOPPED, 0, ev_index + 1, 0);
}

/*
 * The recording has no more events, and the guest ended by a signal from
 * outside (a SIGKILL leaves no signal event, and its stop at exit may not
 * come): it ends here, at its next call or trap, by that signal. Exactly
 * where it was killed if that was inside this very call; otherwise noted.
 */
static int ended_from_outside(const struct uregs *r, u64 nr)
{
    if (rtrailer.end != REC_END_SIGNALED || rtrailer.status == 31 || fault_signal(rtrailer.status))
        return 0;
    struct uregs end;
    copy_bytes(&end, rtrailer.regs, sizeof end);
    int exact = (rtrailer.flags & REC_ENDF_IN_SYSCALL) && (rtrailer.flags & REC_ENDF_REGS) && end.rip == r->rip && end.orig_rax == nr;
    if (!exact)
        notes |= REPLAY_NOTE_SIGNAL_MOMENT;
    sys_tgkill(replay_child, rtrailer.status);
    sys_ptrace(PTRACE_CONT, replay_child, 0, 0);
    return 1;
}

static int at_until(void)
{
    return plan_rep.until && ev_index + 1 >= plan_rep.until;
}

static int regs_equal(const struct uregs *a, const struct uregs *b)
{
    const u64 *x = (const u64 *)a, *y = (const u64 *)b;
    for (u32 i = 0; i < sizeof *a / 8; i++) {
        if (i == 15) /* orig_rax: a bookkeeping value of the kernel, not guest state */
            continue;
        u64 mask = i == 18 ? ~EFLAGS_RF : ~0ul;
        if ((x[i] & mask) != (y[i] & mask))
            return 0;
    }
    return 1;
}

static void arm_breakpoint(u64 rip)
{
    bp_hits = 0;
    sys_ptrace(PTRACE_POKEUSER, replay_child, (void *)(USER_DEBUGREG + 0 * 8), (long)rip);
    sys_ptrace(PTRACE_POKEUSER, replay_child, (void *)(USER_DEBUGREG + 7 * 8), 1 /* L0, execute, 1 byte */);
    bp_armed = 1;
}

static void disarm_breakpoint(void)
{
    sys_ptrace(PTRACE_POKEUSER, replay_child, (void *)(USER_DEBUGREG + 7 * 8), 0);
    bp_armed = 0;
}

/*
 * After an event, with the registers the guest resumes with: if what comes
 * next in the recording is a fatal signal from outside (or the end by
 * SIGKILL, which leaves no signal event), make it happen where it did.
 */
static void after_event(const struct uregs *now)
{
    struct cur c;
    int sig = 0;
    struct uregs want;
    if (peek_next(&c)) {
        if (c.h.kind != REC_EV_SIGNAL || (c.h.flags & REC_EVF_SYNC))
            return;
        const u8 *p = stream_at(c.data, sizeof want);
        if (!p)
            replay_finish(REPLAY_OUT_BAD_RECORDING, 0, ev_index + 1, 1);
        copy_bytes(&want, p, sizeof want);
        sig = (int)c.h.nr;
    } else if (rtrailer.end == REC_END_SIGNALED && rtrailer.status == SIGKILL && (rtrailer.flags & REC_ENDF_REGS) &&
               !(rtrailer.flags & REC_ENDF_IN_SYSCALL)) {
        copy_bytes(&want, rtrailer.regs, sizeof want);
        sig = SIGKILL;
    } else {
        return;
    }
    async_sig = sig;
    async_regs = want;
    async_sent = 0;
    if (regs_equal(now, &want)) {
        async_sent = 1;
        sys_tgkill(replay_child, sig);
    } else {
        arm_breakpoint(want.rip);
    }
}

/* Compares len bytes of guest memory at addr with the recording at off; returns the first differing offset, or -1. */
static long compare_guest(u64 addr, u64 off, u64 len, int *unreadable)
{
    static u8 mine[65536];
    *unreadable = 0;
    for (u64 done = 0; done < len;) {
        u64 n = len - done > sizeof mine ? sizeof mine : len - done;
        const u8 *rec = stream_at(off + done, n);
        if (!rec)
            replay_finish(REPLAY_OUT_BAD_RECORDING, 0, ev_index + 1, 1);
        long got = vm_read(replay_child, addr + done, mine, n);
        for (u64 i = 0; i < (u64)(got > 0 ? got : 0); i++)
            if (mine[i] != rec[i])
                return (long)(done + i);
        if (got < (long)n) {
            *unreadable = 1;
            return (long)(done + (u64)(got > 0 ? got : 0));
        }
        done += n;
    }
    return -1;
}

/* The console output of a recorded write: what that write wrote (its result), not all it was asked to. */
static void reproduce_console(const struct cur *c)
{
    u64 len = c->h.result > 0 ? ((u64)c->h.result < c->h.data_len ? (u64)c->h.result : c->h.data_len) : 0;
    for (u64 done = 0; done < len;) {
        u64 n = len - done > WIN_SIZE / 2 ? WIN_SIZE / 2 : len - done;
        const u8 *p = stream_at(c->data + done, n);
        if (!p)
            return;
        for (u64 o = 0; o < n;) {
            long w = sys_write(1, p + o, n - o);
            if (w == -EINTR)
                continue;
            if (w <= 0)
                return; /* a reader that went away: the replay itself goes on */
            o += (u64)w;
        }
        done += n;
    }
}

static void rp_syscall(void)
{
    struct uregs r;
    struct cur c;
    u64 a[6];
    if (t_getregs(replay_child, &r) < 0)
        return; /* killed from outside between its stop and now: its end comes next */
    regs_args(&r, a);
    u64 nr = r.orig_rax;
    u32 nargs = syscall_nargs(nr);
    note_guest_call(REC_EV_SYSCALL, nr, a, nargs);
    if (bp_armed)
        disarm_breakpoint();
    if (!peek_next(&c)) {
        if (ended_from_outside(&r, nr))
            return;
        diverge(REPLAY_WHY_NO_MORE, 0);
    }
    if (at_until()) {
        stop_here(&r, 1, &c);
        sys_ptrace(PTRACE_CONT, replay_child, 0, 0);
        return;
    }
    if (c.h.kind != REC_EV_SYSCALL)
        diverge(REPLAY_WHY_KIND, &c);
    if (c.h.nr != nr)
        diverge(REPLAY_WHY_SYSCALL, &c);
    if (c.h.nargs != nargs)
        replay_finish(REPLAY_OUT_BAD_RECORDING, 0, ev_index + 1, 1);
    for (u32 i = 0; i < nargs; i++)
        if (a[i] != c.args[i]) {
            st.detail = i;
            diverge(REPLAY_WHY_ARG, &c);
        }
    if (c.h.flags & REC_EVF_KILLED) {
        /* The guest died in this call: it dies here again, by the same signal. */
        consume(&c);
        sys_tgkill(replay_child, rtrailer.end == REC_END_SIGNALED ? rtrailer.status : SIGKILL);
        sys_ptrace(PTRACE_CONT, replay_child, 0, 0);
        return;
    }
    int unreadable = 0;
    long diff;
    switch (nr) {
    case NR_write:
    case NR_pwrite64:
        diff = compare_guest(a[1], c.data, c.h.data_len, &unreadable);
        if (diff >= 0) {
            st.detail = (u32)diff;
            st.quote_offset = (u32)(diff >= 16 ? (diff & ~15l) : 0);
            diverge(unreadable ? REPLAY_WHY_MEMORY : REPLAY_WHY_DATA, &c);
        }
        if (nr == NR_write && a[0] == 1 && !(trace_flags & REC_PLAN_F_QUIET))
            reproduce_console(&c);
        break;
    case NR_read:
    case NR_pread64:
    case NR_clock_gettime:
    case NR_epoll_pwait:
        if (c.h.data_len) {
            const u8 *p = stream_at(c.data, c.h.data_len);
            if (!p)
                replay_finish(REPLAY_OUT_BAD_RECORDING, 0, ev_index + 1, 1);
            if (vm_write(replay_child, a[1], p, c.h.data_len) != (long)c.h.data_len)
                diverge(REPLAY_WHY_MEMORY, &c);
        }
        break;
    case NR_timerfd_settime: {
        u64 newlen = c.h.data_len < 32 ? c.h.data_len : 32;
        diff = compare_guest(a[2], c.data, newlen, &unreadable);
        if (diff >= 0) {
            st.detail = (u32)diff;
            diverge(unreadable ? REPLAY_WHY_MEMORY : REPLAY_WHY_DATA, &c);
        }
        if (c.h.data_len > 32) {
            const u8 *p = stream_at(c.data + 32, c.h.data_len - 32);
            if (!p || vm_write(replay_child, a[3], p, c.h.data_len - 32) != (long)(c.h.data_len - 32))
                diverge(REPLAY_WHY_MEMORY, &c);
        }
        break;
    }
    case NR_arch_prctl:
        if (c.h.result == 0 && a[0] == ARCH_SET_FS)
            r.fs_base = a[1];
        break;
    default:
        break;
    }
    r.rax = (u64)c.h.result;
    r.orig_rax = ~0ul;
    if (t_setregs(replay_child, &r) < 0)
        diverge(REPLAY_WHY_MEMORY, &c);
    consume(&c);
    after_event(&r);
    sys_ptrace(PTRACE_CONT, replay_child, 0, 0);
}

/* rdtsc, rdtscp or a faulted cpuid, trapped: answered from the recording. */
static void rp_trap(struct uregs *r, int kind, u32 len)
{
    struct cur c;
    u64 a[3] = { r->rip, len, (u32)r->rcx };
    if (kind == REC_EV_CPUID) {
        a[1] = (u32)r->rax;
        a[2] = (u32)r->rcx;
    }
    note_guest_call((u64)kind, 0, a, 3);
    if (bp_armed)
        disarm_breakpoint();
    if (!peek_next(&c)) {
        if (ended_from_outside(r, ~0ul))
            return;
        diverge(REPLAY_WHY_NO_MORE, 0);
    }
    if (at_until()) {
        stop_here(r, 0, &c);
        sys_ptrace(PTRACE_CONT, replay_child, 0, 0);
        return;
    }
    if (c.h.kind != (u32)kind)
        diverge(REPLAY_WHY_KIND, &c);
    u32 check = kind == REC_EV_CPUID ? 3 : 2;
    for (u32 i = 0; i < check; i++)
        if (a[i] != c.args[i]) {
            st.detail = i;
            diverge(REPLAY_WHY_ARG, &c);
        }
    if (kind == REC_EV_CPUID) {
        u32 o[4];
        const u8 *p = stream_at(c.data, 16);
        if (!p)
            replay_finish(REPLAY_OUT_BAD_RECORDING, 0, ev_index + 1, 1);
        copy_bytes(o, p, 16);
        r->rax = o[0];
        r->rbx = o[1];
        r->rcx = o[2];
        r->rdx = o[3];
    } else {
        u64 t = (u64)c.h.result;
        r->rax = (u32)t;
        r->rdx = t >> 32;
        if (kind == REC_EV_RDTSCP)
            r->rcx = (u32)c.args[2];
    }
    r->rip += len;
    t_setregs(replay_child, r);
    consume(&c);
    after_event(r);
    sys_ptrace(PTRACE_CONT, replay_child, 0, 0);
}

static int interrupted;

static void rp_signal(int sig)
{
    struct ksiginfo si;
    struct uregs r;
    struct cur c;
    int have_si = sys_ptrace(PTRACE_GETSIGINFO, replay_child, 0, (long)&si) == 0;
    int from_us = have_si && si.code == SI_TKILL && (long)(u32)si.addr == sys_getpid();
    t_getregs(replay_child, &r);
    if (have_si && sig == SIGSEGV && si.code == SI_KERNEL) {
        u32 len = 0;
        int kind = decode_trap(replay_child, r.rip, &len);
        if (kind == REC_EV_RDTSC || kind == REC_EV_RDTSCP || (kind == REC_EV_CPUID && replay_faulted_cpuid)) {
            rp_trap(&r, kind, len);
            return;
        }
    }
    if (dumping && sig == SIGABRT && from_us) {
        sys_ptrace(PTRACE_CONT, replay_child, 0, sig);
        return;
    }
    if (async_sig && async_sent && sig == async_sig && from_us) {
        if (peek_next(&c) && c.h.kind == REC_EV_SIGNAL)
            consume(&c);
        async_sig = 0;
        sys_ptrace(PTRACE_CONT, replay_child, 0, sig);
        return;
    }
    if (bp_armed && sig == 5 && have_si && si.code == TRAP_HWBKPT) {
        /* Without a branch counter the moment is found by its registers; a hot loop can take too
         * many hits for that, and then the signal comes at this hit of the recorded instruction. */
        if (!regs_equal(&r, &async_regs)) {
            if (++bp_hits < REPLAY_NOTE_BP_BUDGET) {
                sys_ptrace(PTRACE_CONT, replay_child, 0, 0);
                return;
            }
            notes |= REPLAY_NOTE_SIGNAL_MOMENT;
        }
        disarm_breakpoint();
        int s = async_sig;
        async_sig = 0;
        if (peek_next(&c) && c.h.kind == REC_EV_SIGNAL)
            consume(&c);
        if (s == SIGKILL) {
            sys_kill(replay_child, SIGKILL);
            sys_ptrace(PTRACE_CONT, replay_child, 0, 0);
        } else {
            sys_ptrace(PTRACE_CONT, replay_child, 0, s); /* delivered here, at the recorded instruction */
        }
        return;
    }
    if (have_si && si.code > 0 && fault_signal(sig)) {
        u64 a[3] = { (u64)(long)si.code, si.addr, r.rip };
        note_guest_call(REC_EV_SIGNAL, (u64)sig, a, 3);
        if (!peek_next(&c))
            diverge(REPLAY_WHY_NO_MORE, 0);
        if (at_until()) {
            stop_here(&r, 0, &c);
            sys_ptrace(PTRACE_CONT, replay_child, 0, 0);
            return;
        }
        if (c.h.kind != REC_EV_SIGNAL || c.h.nr != (u32)sig || !(c.h.flags & REC_EVF_SYNC))
            diverge(REPLAY_WHY_SIGNAL, &c);
        for (u32 i = 0; i < 3; i++)
            if (a[i] != c.args[i]) {
                st.detail = i;
                diverge(REPLAY_WHY_SIGNAL, &c);
            }
        consume(&c);
        sys_ptrace(PTRACE_CONT, replay_child, 0, sig);
        return;
    }
    /* From outside the recording (a Ctrl-C, a kill): let it act, and say the replay was interrupted. */
    if (fatal_by_default(sig) && !is_stop_signal(sig))
        interrupted = sig;
    sys_ptrace(PTRACE_CONT, replay_child, 0, fatal_by_default(sig) || is_stop_signal(sig) ? sig : 0);
}

/*
 * Before the guest runs: the stream starts with the CPU it was recorded
 * on. Without cpuid faulting at record time the guest asked this CPU's
 * cpuid directly, so only an identical CPU replays it; with it, every
 * answer is in the recording, and this CPU must fault cpuid too and have
 * every feature the guest was told about.
 */
static void replay_prepare(long child)
{
    struct cur c;
    struct rec_cpu rc, mine;
    replay_child = child;
    win = map_anon(WIN_SIZE, "the replay window");
    stream_end = plan_rep.stream_len;
    u64 got = 0;
    while (got < sizeof rtrailer) {
        long n = syscall6(NR_pread64, rec_fd, (long)((u8 *)&rtrailer + got), (long)(sizeof rtrailer - got),
                          (long)(plan_rep.stream_offset + plan_rep.stream_len + got), 0, 0);
        if (n == -EINTR)
            continue;
        if (n <= 0)
            break;
        got += (u64)n;
    }
    if (got != sizeof rtrailer || rtrailer.magic != REC_TRAILER_MAGIC)
        replay_finish(REPLAY_OUT_BAD_RECORDING, 0, 0, 1);
    if (!peek(&c) || c.h.kind != REC_EV_CPU)
        replay_finish(REPLAY_OUT_BAD_RECORDING, 0, 0, 1);
    const u8 *p = stream_at(c.data, sizeof rc);
    if (!p)
        replay_finish(REPLAY_OUT_BAD_RECORDING, 0, 0, 1);
    copy_bytes(&rc, p, sizeof rc);
    rpos = c.next;
    cpu_identity(&mine);
    mine.mode = rc.mode;
    copy_bytes(st.cpu, &mine, sizeof mine);
    if (rc.mode == REC_CPUID_FAULTED) {
        replay_faulted_cpuid = 1;
        if (!(trace_flags & REC_PLAN_F_FAULT_CPUID) || !cpuid_faulting_possible())
            replay_finish(REPLAY_OUT_CPU_MISMATCH, REPLAY_WHY_CPUID_NEEDED, 0, 1);
        if ((rc.leaf1_ecx & ~mine.leaf1_ecx) || (rc.leaf1_edx & ~mine.leaf1_edx) || (rc.leaf7_ebx & ~mine.leaf7_ebx) ||
            (rc.leaf7_ecx & ~mine.leaf7_ecx) || (rc.leaf7_edx & ~mine.leaf7_edx) || (rc.ext1_ecx & ~mine.ext1_ecx) ||
            (rc.ext1_edx & ~mine.ext1_edx) || (rc.xcr0 & ~mine.xcr0))
            replay_finish(REPLAY_OUT_CPU_MISMATCH, 0, 0, 1);
    } else {
        const u8 *x = (const u8 *)&rc, *y = (const u8 *)&mine;
        for (u32 i = 0; i < sizeof rc; i++)
            if (x[i] != y[i])
                replay_finish(REPLAY_OUT_CPU_MISMATCH, 0, 0, 1);
    }
}

__attribute__((noreturn)) static void replay_loop(long child, int ready_fd)
{
    struct monitor_report rep = { .magic = REPORT_MAGIC, .guest_pid = (int32_t)child, .regs_syscall = -1 };
    struct uregs end_regs;
    struct ksiginfo si;
    u64 rusage[18] = { 0 };
    int status = 0, have_end_regs = 0;
    (void)ready_fd;
    replay_child = child;

    int exiting = 0;
    for (;;) {
        /* Resource usage is only wanted (and only paid for) at the end. */
        long w = syscall6(NR_wait4, child, (long)&status, WALL, exiting ? (long)rusage : 0, 0, 0);
        if (w == -EINTR)
            continue;
        if (w != child)
            sys_exit_group(1);
        if ((status & 0xff) != 0x7f)
            break;
        if (!(rep.flags & REPORT_F_STARTED)) {
            char b = 0;
            if (sys_read(ready_fd, &b, 1) == 1)
                rep.flags |= REPORT_F_STARTED;
        }
        int sig = (status >> 8) & 0xff;
        int event = (status >> 16) & 0xffff;
        if (event == PTRACE_EVENT_SECCOMP) {
            rp_syscall();
            continue;
        }
        if (event == PTRACE_EVENT_EXIT) {
            exiting = 1;
            have_end_regs = report_exit_stop(child, &rep, &end_regs);
            sys_ptrace(PTRACE_CONT, child, 0, 0);
            continue;
        }
        if (event == PTRACE_EVENT_STOP) {
            sys_ptrace(is_stop_signal(sig) ? PTRACE_LISTEN : PTRACE_CONT, child, 0, 0);
            continue;
        }
        if (sig == (5 | 0x80) || event) {
            sys_ptrace(PTRACE_CONT, child, 0, 0);
            continue;
        }
        if (fault_signal(sig) && sys_ptrace(PTRACE_GETSIGINFO, child, 0, (long)&si) == 0 && si.code > 0) {
            rep.flags |= REPORT_F_FAULT;
            rep.fault_signal = sig;
            rep.fault_code = si.code;
            rep.fault_addr = si.addr;
        }
        rp_signal(sig);
    }

    report_end(&rep, status, rusage);
    replay_child = -1; /* ended: nothing to kill */

    u32 outcome = REPLAY_OUT_FAITHFUL, why = 0;
    struct cur c;
    st.guest_kind = 0;
    st.detail = notes;
    if (dumping) {
        outcome = REPLAY_OUT_STOPPED;
    } else if (interrupted) {
        outcome = REPLAY_OUT_INTERRUPTED;
        st.detail = (u32)interrupted;
    } else {
        int exited = (status & 0x7f) == 0;
        int same = exited ? rtrailer.end == REC_END_EXITED && rtrailer.status == ((status >> 8) & 0xff)
                          : rtrailer.end == REC_END_SIGNALED && rtrailer.status == (status & 0x7f);
        if (same && !exited && have_end_regs && (rtrailer.flags & REC_ENDF_REGS) && !(notes & REPLAY_NOTE_SIGNAL_MOMENT)) {
            struct uregs rec_end;
            copy_bytes(&rec_end, rtrailer.regs, sizeof rec_end);
            same = rec_end.rip == end_regs.rip;
        }
        if (peek_next(&c)) {
            outcome = REPLAY_OUT_DIVERGED;
            why = REPLAY_WHY_END;
            note_recorded(&c);
        } else if (!same) {
            outcome = REPLAY_OUT_DIVERGED;
            why = REPLAY_WHY_END;
            st.rec_kind = 0;
        }
        st.guest_result = exited ? ((status >> 8) & 0xff) : -(long)(status & 0x7f);
        st.guest_flags = have_end_regs ? 1 : 0;
        if (have_end_regs)
            copy_bytes(st.guest_args, &end_regs.rip, 8);
    }
    st.magic = REPLAY_STATUS_MAGIC;
    st.outcome = outcome;
    st.why = why;
    st.event = ev_index + 1;
    st.guest_pid = (int32_t)child;
    send_report(&st, sizeof st, -1);
    send_report(&rep, sizeof rep, -1);
    if (outcome == REPLAY_OUT_DIVERGED)
        sys_exit_group(REC_DIVERGED_STATUS);
    if (outcome == REPLAY_OUT_STOPPED)
        sys_exit_group(0);
    mirror_status(status);
}
