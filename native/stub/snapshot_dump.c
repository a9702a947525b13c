/*
 * Snapshot creation (PLAN_F_SNAPSHOT, monitor mode only): the monitor stops
 * the guest at its snapshot point and writes it out.
 *
 * The point is the at-th epoll_pwait whose preceding timerfd_settime set a
 * deadline in the future: a guest blocking in solo5_yield, whichever
 * bindings it was built with (both the reference and tendril's arm the
 * timerfd, then wait on the epoll set). The filter is the guest's usual
 * allowlist with only the action of those two allowed calls turned into
 * SECCOMP_RET_TRACE (filters/compile.ts), so every call is still checked
 * exactly as for a fresh guest; the monitor, attached with
 * PTRACE_O_TRACESECCOMP, sees them before they run.
 *
 * At the point the guest is stopped before its epoll_pwait has started, so
 * its registers are those of a syscall entry: the restored guest re-issues
 * the call (the supervisor makes rip point back at the syscall instruction).
 * The monitor writes:
 *   - guest memory to mem_fd at file offset = guest address: every page the
 *     guest ever touched (present or swapped in /proc/PID/pagemap) or that
 *     comes from the image, except pages of zeros, which stay holes, so the
 *     file is sparse and a restore maps it copy-on-write;
 *   - to state_fd: a snapshot_dump, a snapshot_cpu (general registers, fs
 *     and gs base, this CPU's features and XSAVE layout), the XSAVE area
 *     (PTRACE_GETREGSET NT_X86_XSTATE, or the FXSAVE area without XSAVE)
 *     and the runs of stored pages.
 * Then it kills the guest. Policy (validation, the metadata file, the
 * resume registers) is the supervisor's.
 *
 * Included by stub.c (one translation unit, no libc).
 */

#define NR_pread64 17
#define NR_pwrite64 18
#define NR_munmap 11
#define NR_clock_gettime 228
#define NR_epoll_pwait 281
#define NR_timerfd_settime 286
#define TFD_TIMER_ABSTIME 1
#define PM_PRESENT (1ul << 63)
#define PM_SWAPPED (1ul << 62)
#define SNAP_CHUNK_PAGES 256ul
#define SNAP_RUN_BATCH 256u

static struct snapshot_request snap_req;
static int snap_mem_fd = -1;
static int snap_state_fd = -1;
/* The last timerfd_settime armed a deadline in the future (and which). */
static int snap_pending;
static u64 snap_deadline;
static int snap_taken;

static struct snapshot_dump snap_dump;
static struct snapshot_cpu snap_cpu;

static inline long sys_pread64(int fd, void *buf, u64 n, u64 off) { return syscall6(NR_pread64, fd, (long)buf, (long)n, (long)off, 0, 0); }
static inline long sys_pwrite64(int fd, const void *buf, u64 n, u64 off)
{
    return syscall6(NR_pwrite64, fd, (long)buf, (long)n, (long)off, 0, 0);
}

static int snapshotting(void)
{
    return (hdr.flags & PLAN_F_SNAPSHOT) != 0;
}

/* After read_sections: the request is complete and consistent with the flags. */
static void snapshot_check_request(void)
{
    int has = sections[PLAN_SECTION_SNAPSHOT].data != 0;
    if (has != snapshotting())
        malformed("snapshot flag and snapshot section disagree");
    if (!has)
        return;
    if (!(hdr.flags & PLAN_F_MONITOR))
        malformed("a snapshot needs monitor mode");
    if (sections[PLAN_SECTION_SNAPSHOT].len != sizeof snap_req)
        malformed("snapshot section size");
    const u8 *src = sections[PLAN_SECTION_SNAPSHOT].data;
    u8 *dst = (u8 *)&snap_req;
    for (u32 i = 0; i < sizeof snap_req; i++)
        dst[i] = src[i];
    if (snap_req.at == 0 || snap_req.reserved)
        malformed("snapshot point");
}

/* In place_fds, with the other received fds: the dump's two files. */
static void snapshot_resolve_fds(void)
{
    if (!snapshotting())
        return;
    snap_mem_fd = resolve(snap_req.mem_fd, "the snapshot memory file");
    snap_state_fd = resolve(snap_req.state_fd, "the snapshot state file");
}

/* In place_fds, once every fd is known: no fd in two roles; clear of the guest's numbers. */
static void snapshot_lift_fds(const int *guest_src, u32 n, int top)
{
    if (!snapshotting())
        return;
    int others[] = { plan_fd, image_fd, report_fd, start_fd, snap_state_fd };
    for (u32 i = 0; i < sizeof others / sizeof others[0]; i++)
        if (others[i] == snap_mem_fd || (i < 4 && others[i] == snap_state_fd))
            malformed("one fd given two roles");
    for (u32 i = 0; i < n; i++)
        if (guest_src[i] == snap_mem_fd || guest_src[i] == snap_state_fd)
            malformed("a guest fd is also one of the stub's");
    snap_mem_fd = lift(snap_mem_fd, top);
    snap_state_fd = lift(snap_state_fd, top);
}

/* The guest never holds the dump's files: only the monitor does. */
static void snapshot_close_fds(void)
{
    if (snap_mem_fd >= 0)
        sys_close(snap_mem_fd);
    if (snap_state_fd >= 0)
        sys_close(snap_state_fd);
    snap_mem_fd = snap_state_fd = -1;
}

static long snapshot_ptrace_options(void)
{
    return snapshotting() ? PTRACE_O_TRACESECCOMP : 0;
}

static u64 monotonic_ns(void)
{
    long ts[2] = { 0, 0 };
    syscall6(NR_clock_gettime, CLOCK_MONOTONIC, (long)ts, 0, 0, 0, 0);
    return (u64)ts[0] * 1000000000ul + (u64)ts[1];
}

static long peek_guest_word(long pid, u64 addr, u64 *out)
{
    return sys_ptrace(PTRACE_PEEKDATA, pid, (void *)addr, (long)out);
}

static long pread_all(int fd, void *buf, u64 len, u64 off)
{
    u8 *p = buf;
    while (len > 0) {
        long n = sys_pread64(fd, p, len, off);
        if (n == -EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? n : -5 /* EIO: the range ended early */;
        p += n;
        off += (u64)n;
        len -= (u64)n;
    }
    return 0;
}

static long pwrite_all(int fd, const void *buf, u64 len, u64 off)
{
    const u8 *p = buf;
    while (len > 0) {
        long n = sys_pwrite64(fd, p, len, off);
        if (n == -EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? n : -5;
        p += n;
        off += (u64)n;
        len -= (u64)n;
    }
    return 0;
}

static int page_in_image(u64 addr)
{
    for (u32 i = 0; i < hdr.nregions; i++)
        if (addr >= regions[i].vaddr && addr < regions[i].vaddr + regions[i].length)
            return 1;
    return 0;
}

static int page_is_zero(const u8 *p)
{
    const u64 *w = (const u64 *)p;
    for (u64 i = 0; i < PAGE_SIZE / 8; i++)
        if (w[i])
            return 0;
    return 1;
}

/* Where the dump is, and what went wrong, if anything. */
static struct {
    int mem;      /* /proc/PID/mem */
    int pagemap;  /* /proc/PID/pagemap */
    u8 *buf;      /* SNAP_CHUNK_PAGES pages read from the guest */
    u64 *pm;      /* their pagemap entries */
    u64 state_off;
    struct snapshot_run runs[SNAP_RUN_BATCH];
    u32 nbatch;
    u64 run_start, run_pages;
    u64 w_addr, w_pages; /* pages waiting to be written, contiguous in buf */
    const u8 *w_ptr;
} dump;

static int dump_fail(u32 step, long err)
{
    if (!snap_dump.error) {
        snap_dump.error = (u32)-err;
        snap_dump.error_step = step;
    }
    return -1;
}

static int flush_runs(void)
{
    if (!dump.nbatch)
        return 0;
    long r = pwrite_all(snap_state_fd, dump.runs, dump.nbatch * sizeof dump.runs[0], dump.state_off);
    if (r < 0)
        return dump_fail(SNAPSHOT_STEP_WRITE_STATE, r);
    dump.state_off += dump.nbatch * sizeof dump.runs[0];
    dump.nbatch = 0;
    return 0;
}

static int end_run(void)
{
    if (!dump.run_pages)
        return 0;
    dump.runs[dump.nbatch].start = dump.run_start;
    dump.runs[dump.nbatch].pages = dump.run_pages;
    dump.nbatch++;
    snap_dump.nruns++;
    dump.run_pages = 0;
    return dump.nbatch == SNAP_RUN_BATCH ? flush_runs() : 0;
}

static int flush_write(void)
{
    if (!dump.w_pages)
        return 0;
    long r = pwrite_all(snap_mem_fd, dump.w_ptr, dump.w_pages * PAGE_SIZE, dump.w_addr);
    if (r < 0)
        return dump_fail(SNAPSHOT_STEP_WRITE_MEMORY, r);
    dump.w_pages = 0;
    return 0;
}

/* A page of the guest with something in it, at addr (its bytes at p, inside dump.buf). */
static int store_page(u64 addr, const u8 *p)
{
    if (dump.w_pages && dump.w_addr + dump.w_pages * PAGE_SIZE == addr) {
        dump.w_pages++;
    } else {
        if (flush_write() < 0)
            return -1;
        dump.w_addr = addr;
        dump.w_ptr = p;
        dump.w_pages = 1;
    }
    if (dump.run_pages && dump.run_start + dump.run_pages * PAGE_SIZE == addr) {
        dump.run_pages++;
    } else {
        if (end_run() < 0)
            return -1;
        dump.run_start = addr;
        dump.run_pages = 1;
    }
    snap_dump.pages++;
    return 0;
}

static int dump_memory(void)
{
    for (u64 base = SPT_HOST_MEM_BASE; base < hdr.mem_size; base += SNAP_CHUNK_PAGES * PAGE_SIZE) {
        u64 n = (hdr.mem_size - base) / PAGE_SIZE;
        if (n > SNAP_CHUNK_PAGES)
            n = SNAP_CHUNK_PAGES;
        long r = pread_all(dump.pagemap, dump.pm, n * 8, base / PAGE_SIZE * 8);
        if (r < 0)
            return dump_fail(SNAPSHOT_STEP_PAGEMAP, r);
        u64 i = 0;
        while (i < n) {
#define WANTED(k) ((dump.pm[k] & (PM_PRESENT | PM_SWAPPED)) || page_in_image(base + (k) * PAGE_SIZE))
            if (!WANTED(i)) {
                i++;
                continue;
            }
            u64 j = i + 1;
            while (j < n && WANTED(j))
                j++;
#undef WANTED
            r = pread_all(dump.mem, dump.buf + i * PAGE_SIZE, (j - i) * PAGE_SIZE, base + i * PAGE_SIZE);
            if (r < 0)
                return dump_fail(SNAPSHOT_STEP_READ_MEMORY, r);
            for (u64 k = i; k < j; k++)
                if (!page_is_zero(dump.buf + k * PAGE_SIZE) && store_page(base + k * PAGE_SIZE, dump.buf + k * PAGE_SIZE) < 0)
                    return -1;
            i = j;
        }
        /* dump.buf is reused for the next chunk. */
        if (flush_write() < 0)
            return -1;
    }
    if (end_run() < 0 || flush_runs() < 0)
        return -1;
    return 0;
}

static void fill_registers(const u64 *regs)
{
    /* struct user_regs_struct, x86_64. */
    struct snapshot_cpu *c = &snap_cpu;
    c->r15 = regs[0];
    c->r14 = regs[1];
    c->r13 = regs[2];
    c->r12 = regs[3];
    c->rbp = regs[4];
    c->rbx = regs[5];
    c->r11 = regs[6];
    c->r10 = regs[7];
    c->r9 = regs[8];
    c->r8 = regs[9];
    c->rax = regs[10];
    c->rcx = regs[11];
    c->rdx = regs[12];
    c->rsi = regs[13];
    c->rdi = regs[14];
    snap_dump.orig_rax = regs[15];
    c->rip = regs[16];
    snap_dump.cs = regs[17];
    c->rflags = regs[18];
    c->rsp = regs[19];
    snap_dump.ss = regs[20];
    c->fs_base = regs[21];
    c->gs_base = regs[22];
    snap_dump.ds = regs[23];
    snap_dump.es = regs[24];
    snap_dump.fs = regs[25];
    snap_dump.gs = regs[26];
}

/* Writes the whole snapshot of the stopped guest; the outcome is in snap_dump. */
static void snapshot_write(long pid, const u64 *regs)
{
    static u8 xsave[SNAPSHOT_MAX_XSAVE] __attribute__((aligned(64)));
    snap_dump.magic = SNAPSHOT_DUMP_MAGIC;
    snap_dump.monotonic_ns = monotonic_ns();
    snap_dump.deadline_ns = snap_deadline;
    snap_cpu.magic = SNAPSHOT_CPU_MAGIC;
    fill_registers(regs);
    cpu_identify(&snap_cpu);

    struct k_iovec iov = { xsave, sizeof xsave };
    long r = snap_cpu.xcr0 ? sys_ptrace(PTRACE_GETREGSET, pid, (void *)NT_X86_XSTATE, (long)&iov) : -EINVAL;
    if (r == 0) {
        snap_cpu.flags = SNAPSHOT_CPU_F_XSAVE;
        snap_cpu.xsave_size = (u32)iov.len;
    } else if ((r = sys_ptrace(PTRACE_GETFPREGS, pid, 0, (long)xsave)) == 0) {
        snap_cpu.flags = 0;
        snap_cpu.xsave_size = 512;
    } else {
        dump_fail(SNAPSHOT_STEP_FPU, r);
    }

    char path[40];
    proc_path(path, pid, "/mem");
    long mem = sys_open(path, 0);
    proc_path(path, pid, "/pagemap");
    long pm = sys_open(path, 0);
    long buf = sys_mmap(0, SNAP_CHUNK_PAGES * PAGE_SIZE + SNAP_CHUNK_PAGES * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem < 0 || pm < 0)
        dump_fail(SNAPSHOT_STEP_OPEN_PROC, mem < 0 ? mem : pm);
    else if (buf < 0)
        dump_fail(SNAPSHOT_STEP_BUFFER, buf);
    dump.state_off = sizeof snap_dump + sizeof snap_cpu + snap_cpu.xsave_size;
    if (!snap_dump.error) {
        dump.mem = (int)mem;
        dump.pagemap = (int)pm;
        dump.buf = (u8 *)buf;
        dump.pm = (u64 *)(dump.buf + SNAP_CHUNK_PAGES * PAGE_SIZE);
        dump_memory();
    }
    if (mem >= 0)
        sys_close((int)mem);
    if (pm >= 0)
        sys_close((int)pm);
    if (buf >= 0)
        syscall6(NR_munmap, buf, (long)(SNAP_CHUNK_PAGES * PAGE_SIZE + SNAP_CHUNK_PAGES * 8), 0, 0, 0, 0);

    /* The head last: a state file with a head describes a finished dump. */
    if ((r = pwrite_all(snap_state_fd, xsave, snap_cpu.xsave_size, sizeof snap_dump + sizeof snap_cpu)) < 0 ||
        (r = pwrite_all(snap_state_fd, &snap_cpu, sizeof snap_cpu, sizeof snap_dump)) < 0)
        dump_fail(SNAPSHOT_STEP_WRITE_STATE, r);
    if ((r = pwrite_all(snap_state_fd, &snap_dump, sizeof snap_dump, 0)) < 0)
        snap_dump.error = (u32)-r; /* the supervisor sees no head and says so */
}

/*
 * A seccomp stop of the guest (only the traced calls stop). Returns 1 once
 * the snapshot is written: the guest is then to be killed, never resumed.
 */
static int snapshot_stop(long pid)
{
    u64 regs[27];
    if (sys_ptrace(PTRACE_GETREGS, pid, 0, (long)regs) < 0)
        return 0;
    long nr = (long)regs[15];
    if (nr == NR_timerfd_settime) {
        /* timerfd_settime(fd, flags, new_value, old): it_value is at +16 (tv_sec) and +24 (tv_nsec). */
        u64 sec = 0, nsec = 0;
        snap_pending = 0;
        if (peek_guest_word(pid, regs[12] + 16, &sec) < 0 || peek_guest_word(pid, regs[12] + 24, &nsec) < 0)
            return 0;
        u64 value = sec > 18000000000ul ? ~0ul : sec * 1000000000ul + nsec;
        if (regs[13] & TFD_TIMER_ABSTIME) {
            snap_pending = value > monotonic_ns();
        } else {
            snap_pending = value != 0;
            value += monotonic_ns();
        }
        snap_deadline = value;
        return 0;
    }
    if (nr != NR_epoll_pwait || !snap_pending)
        return 0;
    snap_pending = 0;
    if (++snap_dump.yields < snap_req.at)
        return 0;
    snapshot_write(pid, regs);
    snap_taken = 1;
    return 1;
}
