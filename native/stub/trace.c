/*
 * Record and replay, the part both share (docs/record-replay.md): the
 * guest's registers and memory as its ptrace monitor sees them, the
 * instructions the monitor answers for it (rdtsc, rdtscp, cpuid), the CPU's
 * identity, the event stream's CRC, and the guest-side set-up done just
 * before the jump.
 *
 * The mechanism: the guest runs under its usual filter, except that every
 * allowed call (but exit_group) returns SECCOMP_RET_TRACE instead of ALLOW,
 * with the same argument conditions; a call the filter refuses is killed
 * exactly as without recording. The monitor (monitor.c), already the
 * guest's tracer, sees each allowed call stopped at its entry, after the
 * filter has checked it, and answers it: by doing that very call itself
 * (record, on the same fds) or from the recording (replay), copying data
 * in and out of guest memory with process_vm_readv/writev, which honour
 * the guest's page protections as the kernel's own copies would. rdtsc and
 * rdtscp fault (PR_TSC_SIGSEGV) and so does cpuid where the CPU can
 * (ARCH_SET_CPUID); the monitor decodes the instruction and answers it.
 *
 * Included by stub.c after monitor.c (one translation unit, no libc).
 */

#define NR_pread64 17
#define NR_pwrite64 18
#define NR_arch_prctl 158
#define NR_sched_setaffinity 203
#define NR_tgkill 234
#define NR_clock_gettime 228
#define NR_epoll_pwait 281
#define NR_timerfd_settime 286
#define NR_getcpu 309
#define NR_process_vm_readv 310
#define NR_process_vm_writev 311

#define PTRACE_PEEKTEXT 1
#define PTRACE_POKEUSER 6
#define PTRACE_SETREGS 13
#define PTRACE_DETACH 17
#define PTRACE_SYSCALL 24
#define PTRACE_GETEVENTMSG 0x4201
#define PTRACE_O_TRACESYSGOOD 1
#define PTRACE_O_TRACESECCOMP 0x80
#define PTRACE_EVENT_SECCOMP 7
#define PR_SET_TSC 26
#define PR_TSC_SIGSEGV 2
#define ARCH_SET_CPUID 0x1012
#define ARCH_SET_FS 0x1002
#define SI_KERNEL 0x80
#define EFAULT 14
#define EPIPE 32
#define SIGPIPE 13
#define SIGSEGV 11
#define SIGABRT 6

/* The part of siginfo the monitor reads. */
struct ksiginfo {
    int signo, err, code, pad;
    u64 addr; /* si_addr for faults; si_pid (low 32 bits) and si_uid for kill/tkill */
    u8 rest[104];
};

static struct plan_record plan_rec;
static struct plan_replay plan_rep;

static long sys_tgkill(long pid, int sig) { return syscall6(NR_tgkill, pid, pid, sig, 0, 0, 0); }
static long t_setregs(long pid, const struct uregs *r) { return sys_ptrace(PTRACE_SETREGS, pid, 0, (long)r); }

/* Guest memory through process_vm_*: only what the guest itself may read or write. Returns the bytes moved. */
static long vm_move(int nr, long pid, u64 addr, void *local, u64 len)
{
    u64 done = 0;
    while (done < len) {
        struct k_iovec l = { (u8 *)local + done, len - done };
        struct k_iovec r = { (void *)(addr + done), len - done };
        long n = syscall6(nr, pid, (long)&l, 1, (long)&r, 1, 0);
        if (n <= 0)
            break;
        done += (u64)n;
    }
    return (long)done;
}

static long vm_read(long pid, u64 addr, void *dst, u64 len) { return vm_move(NR_process_vm_readv, pid, addr, dst, len); }
static long vm_write(long pid, u64 addr, const void *src, u64 len) { return vm_move(NR_process_vm_writev, pid, addr, (void *)src, len); }

/*
 * The instruction at rip, if it is one the monitor answers: returns its
 * kind (REC_EV_RDTSC, REC_EV_RDTSCP, REC_EV_CPUID) and length, else 0.
 * Read with PEEKTEXT, since text may be execute-only (protection keys),
 * which process_vm_readv cannot read. Legacy prefixes and a REX prefix may
 * come first; they change nothing for these three.
 */
static int decode_trap(long pid, u64 rip, u32 *len)
{
    u8 b[16];
    u64 w0, w1 = 0;
    /* The raw PEEKTEXT stores the word at *data. The second word may lie on an unmapped page: then it stays 0. */
    long r = syscall6(NR_ptrace, PTRACE_PEEKTEXT, pid, (long)rip, (long)&w0, 0, 0);
    if (r < 0)
        return 0;
    (void)syscall6(NR_ptrace, PTRACE_PEEKTEXT, pid, (long)(rip + 8), (long)&w1, 0, 0);
    for (int i = 0; i < 8; i++) {
        b[i] = (u8)(w0 >> (8 * i));
        b[8 + i] = (u8)(w1 >> (8 * i));
    }
    u32 i = 0;
    while (i < 14 && (b[i] == 0x66 || b[i] == 0x67 || b[i] == 0xf2 || b[i] == 0xf3 || b[i] == 0x2e || b[i] == 0x36 ||
                      b[i] == 0x3e || b[i] == 0x26 || b[i] == 0x64 || b[i] == 0x65))
        i++;
    if (i < 14 && (b[i] & 0xf0) == 0x40)
        i++;
    if (i + 1 < 16 && b[i] == 0x0f && b[i + 1] == 0x31) {
        *len = i + 2;
        return REC_EV_RDTSC;
    }
    if (i + 1 < 16 && b[i] == 0x0f && b[i + 1] == 0xa2) {
        *len = i + 2;
        return REC_EV_CPUID;
    }
    if (i + 2 < 16 && b[i] == 0x0f && b[i + 1] == 0x01 && b[i + 2] == 0xf9) {
        *len = i + 3;
        return REC_EV_RDTSCP;
    }
    return 0;
}

static inline void cpuid(u32 leaf, u32 sub, u32 out[4])
{
    __asm__ volatile("cpuid" : "=a"(out[0]), "=b"(out[1]), "=c"(out[2]), "=d"(out[3]) : "a"(leaf), "c"(sub));
}

static inline u64 rdtsc(void)
{
    u32 lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((u64)hi << 32) | lo;
}

static inline u64 rdtscp(u32 *aux)
{
    u32 lo, hi, c;
    __asm__ volatile("rdtscp" : "=a"(lo), "=d"(hi), "=c"(c));
    *aux = c;
    return ((u64)hi << 32) | lo;
}

/* Feature bits a faulted cpuid hides: instructions that cannot be trapped yet are not deterministic. */
#define LEAF1_ECX_RDRAND (1u << 30)
#define LEAF7_EBX_HLE (1u << 4)
#define LEAF7_EBX_RTM (1u << 11)
#define LEAF7_EBX_RDSEED (1u << 18)
#define LEAF7_ECX_RDPID (1u << 22)
#define LEAF1_ECX_OSXSAVE (1u << 27)

/* What a faulted cpuid answers the guest: the CPU's own answer, less the untrappable instructions. */
static void cpuid_for_guest(u32 leaf, u32 sub, u32 out[4])
{
    cpuid(leaf, sub, out);
    if (leaf == 1)
        out[2] &= ~LEAF1_ECX_RDRAND;
    if (leaf == 7 && sub == 0) {
        out[1] &= ~(LEAF7_EBX_HLE | LEAF7_EBX_RTM | LEAF7_EBX_RDSEED);
        out[2] &= ~LEAF7_ECX_RDPID;
    }
}

/* This CPU as a rec_cpu (mode left to the caller). The APIC id (leaf 1 ebx) differs per core and is left out. */
static void cpu_identity(struct rec_cpu *c)
{
    u32 r[4];
    u8 *z = (u8 *)c;
    for (u32 i = 0; i < sizeof *c; i++)
        z[i] = 0;
    cpuid(0, 0, r);
    c->max_leaf = r[0];
    u32 v[3] = { r[1], r[3], r[2] };
    for (int i = 0; i < 12; i++)
        c->vendor[i] = (u8)(v[i / 4] >> (8 * (i % 4)));
    cpuid(1, 0, r);
    c->signature = r[0];
    c->leaf1_ecx = r[2];
    c->leaf1_edx = r[3];
    if (c->max_leaf >= 7) {
        cpuid(7, 0, r);
        c->leaf7_ebx = r[1];
        c->leaf7_ecx = r[2];
        c->leaf7_edx = r[3];
    }
    cpuid(0x80000000u, 0, r);
    u32 ext = r[0];
    if (ext >= 0x80000001u) {
        cpuid(0x80000001u, 0, r);
        c->ext1_ecx = r[2];
        c->ext1_edx = r[3];
    }
    if (ext >= 0x80000004u)
        for (u32 l = 0; l < 3; l++) {
            cpuid(0x80000002u + l, 0, r);
            for (int i = 0; i < 16; i++)
                c->brand[16 * l + i] = (u8)(r[i / 4] >> (8 * (i % 4)));
        }
    if (c->leaf1_ecx & LEAF1_ECX_OSXSAVE) {
        u32 lo, hi;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        c->xcr0 = ((u64)hi << 32) | lo;
    }
}

/* Whether this thread can make cpuid fault (ARCH_SET_CPUID): tried, then undone. */
static int cpuid_faulting_possible(void)
{
    if (syscall6(NR_arch_prctl, ARCH_SET_CPUID, 0, 0, 0, 0, 0) < 0)
        return 0;
    syscall6(NR_arch_prctl, ARCH_SET_CPUID, 1, 0, 0, 0, 0);
    return 1;
}

/* CRC-32 (IEEE 802.3, reflected, as zlib's crc32), table-driven. */
static u32 crc_table[256];

static void crc_init(void)
{
    for (u32 n = 0; n < 256; n++) {
        u32 c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

static u32 crc_update(u32 crc, const u8 *p, u64 n)
{
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static u64 now_ns(void)
{
    long ts[2] = { 0, 0 };
    syscall6(NR_clock_gettime, CLOCK_MONOTONIC, (long)ts, 0, 0, 0, 0);
    return (u64)ts[0] * 1000000000ul + (u64)ts[1];
}

static void *map_anon(u64 len, const char *what)
{
    long p = sys_mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p < 0)
        die_errno("mmap", what, p);
    return (void *)p;
}

static void copy_bytes(void *dst, const void *src, u64 n)
{
    u8 *d = dst;
    const u8 *s = src;
    while (n--)
        *d++ = *s++;
}

static void zero_bytes(void *dst, u64 n)
{
    u8 *d = dst;
    while (n--)
        *d++ = 0;
}

/* The number of arguments each answered call has (the rest of its registers mean nothing to the kernel). */
static u32 syscall_nargs(u64 nr)
{
    switch (nr) {
    case NR_read:
    case NR_write:
        return 3;
    case NR_pread64:
    case NR_pwrite64:
    case NR_timerfd_settime:
        return 4;
    case NR_clock_gettime:
    case NR_arch_prctl:
        return 2;
    case NR_epoll_pwait:
        return 6;
    default:
        return 6;
    }
}

static void regs_args(const struct uregs *r, u64 a[6])
{
    a[0] = r->rdi;
    a[1] = r->rsi;
    a[2] = r->rdx;
    a[3] = r->r10;
    a[4] = r->r8;
    a[5] = r->r9;
}

/*
 * Record and replay are sensitive to how long a ptrace stop takes, and a
 * stop is several times slower when the tracer and the guest sit on
 * different CPUs (every stop wakes an idle CPU). Both are kept on the CPU
 * the stub runs on, as rr does; the guest's own behaviour does not depend
 * on which CPU it has.
 */
static void pin_to_this_cpu(void)
{
    unsigned int cpu = 0;
    if (syscall6(NR_getcpu, (long)&cpu, 0, 0, 0, 0, 0) < 0 || cpu >= 1024)
        return;
    u64 mask[16] = { 0 };
    mask[cpu / 64] = 1ul << (cpu % 64);
    syscall6(NR_sched_setaffinity, 0, sizeof mask, (long)mask, 0, 0, 0);
}

/* Plan sections of the record/replay range this stub implements. */
static int record_section_known(u32 type)
{
    return type == PLAN_SECTION_REC_RECORD || type == PLAN_SECTION_REC_REPLAY;
}

/* After read_sections: the mode, its section, consistent with the flags. */
static void record_check_plan(void)
{
    int rec = (hdr.flags & PLAN_F_RECORD) != 0, rep = (hdr.flags & PLAN_F_REPLAY) != 0;
    if (rec != (sections[PLAN_SECTION_REC_RECORD].data != 0) || rep != (sections[PLAN_SECTION_REC_REPLAY].data != 0))
        malformed("record/replay flag and section disagree");
    if (rec && rep)
        malformed("record and replay at once");
    if (rec) {
        if (sections[PLAN_SECTION_REC_RECORD].len != sizeof plan_rec)
            malformed("record section size");
        copy_bytes(&plan_rec, sections[PLAN_SECTION_REC_RECORD].data, sizeof plan_rec);
        trace_mode = PLAN_F_RECORD;
        trace_flags = plan_rec.flags;
    }
    if (rep) {
        if (sections[PLAN_SECTION_REC_REPLAY].len != sizeof plan_rep)
            malformed("replay section size");
        copy_bytes(&plan_rep, sections[PLAN_SECTION_REC_REPLAY].data, sizeof plan_rep);
        if (hdr.nmoves || hdr.npoll)
            malformed("a replay attaches no device");
        trace_mode = PLAN_F_REPLAY;
        trace_flags = plan_rep.flags;
    }
    if (trace_flags & ~(u32)(REC_PLAN_F_FAULT_CPUID | REC_PLAN_F_QUIET | REC_PLAN_F_GDB | REC_PLAN_F_CORE_AT_UNTIL))
        malformed("unknown record/replay flags");
}

/* In place_fds: the recording's fd (place_fds lifts it clear of the guest's numbers). */
static void record_resolve_fd(void)
{
    if (trace_mode)
        rec_fd = resolve(trace_mode == PLAN_F_RECORD ? plan_rec.file_src : plan_rep.file_src, "the recording");
}

/*
 * The guest's side, just before the jump: rdtsc and rdtscp fault, and
 * cpuid too when asked and the CPU can. Returns the byte the monitor reads
 * on the ready pipe: 'F' with cpuid faulting, 'G' without.
 */
static char record_guest_setup(void)
{
    if (!trace_mode)
        return 'G';
    long r = sys_prctl(PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0);
    if (r < 0)
        die_errno("prctl(PR_SET_TSC)", "making rdtsc trap for record/replay", r);
    if (!(trace_flags & REC_PLAN_F_FAULT_CPUID))
        return 'G';
    r = syscall6(NR_arch_prctl, ARCH_SET_CPUID, 0, 0, 0, 0, 0);
    if (r == 0)
        return 'F';
    if (trace_mode == PLAN_F_REPLAY)
        die("replay", "this recording answered cpuid itself, and this CPU cannot fault cpuid (ARCH_SET_CPUID)");
    return 'G';
}
