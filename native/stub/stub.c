/*
 * tendril-stub: turns itself into a Solo5 spt guest.
 *
 * Mechanism only. The TypeScript supervisor has already validated the guest
 * image, attached the devices, compiled the seccomp filter and laid out low
 * memory; it hands all of it over as one "launch plan" on a file descriptor
 * (the layout is defined once, in loader/formats.ts; the build generates
 * tendril_formats.h from it). The stub puts the guest's fds at their
 * numbers, creates the tender's epoll set and timerfd, maps guest memory at
 * its identity addresses (the segments straight from a sealed memory file,
 * copy-on-write), closes every other fd, resets every signal, installs the
 * filter and jumps to the guest entry point. It never returns and never
 * regains control.
 *
 * No libc: the stub is a static binary linked far above any guest memory
 * (see Makefile), so the only mappings besides the guest are its own few
 * pages, its stack and the kernel's vDSO.
 */

#include "sys.h"
#include "tendril_formats.h"
#include "cpu.h"
#include "ptrace.h"

/* abi.md §1, §2 and §9: fixed by the ABI, not by the plan. */
#define SPT_HOST_MEM_BASE 0x10000ul
#define SPT_BOOT_INFO_BASE 0x11000ul
#define SPT_GUEST_MIN_BASE 0x100000ul
#define SPT_INTERNAL_TIMERFD 0xfffffffeul
#define PAGE_SIZE 0x1000ul

struct sock_filter {
    u16 code;
    u8 jt;
    u8 jf;
    u32 k;
};

struct sock_fprog {
    u16 len;
    struct sock_filter *filter;
};

/* Start of this binary's own image: guest memory must end below it. */
extern char __executable_start[];

static struct plan_header hdr;
static struct plan_region regions[PLAN_MAX_REGIONS];
static struct plan_fd_move moves[PLAN_MAX_MOVES];
static struct plan_poll polls[PLAN_MAX_POLL];
static int received[PLAN_MAX_RECV_FDS];
static u32 nreceived;
static struct sock_filter bpf[PLAN_MAX_BPF_INSNS];
/* The plan's typed sections (formats.ts PLAN_SECTION), found by type. */
static u8 extra[PLAN_MAX_EXTRA] __attribute__((aligned(64)));
static struct { const u8 *data; u32 len; } sections[PLAN_SECTION_LIMIT];

/* The stub's own fds (not the guest's): where each is once moved clear of
 * the guest's numbers; -1 when absent. */
static int plan_fd = -1;
static int image_fd = -1;
static int report_fd = -1;
static int start_fd = -1;
/* Monitor mode: written to just before the jump, so the monitor can tell a
 * guest's exit from a stub error. */
static int guest_ready_fd = -1;
/* Record and replay (trace.c, record.c, replay.c): the mode (0, PLAN_F_RECORD or
 * PLAN_F_REPLAY), its section, and the recording's fd (the monitor's alone). */
static int trace_mode;
static u32 trace_flags;
static int rec_fd = -1;
static int record_section_known(u32 type);
static void record_check_plan(void);
static void record_resolve_fd(void);
static char record_guest_setup(void);
static void pin_to_this_cpu(void);
static void replay_prepare(long child);
__attribute__((noreturn)) static void record_loop(long child, int ready_fd);
__attribute__((noreturn)) static void replay_loop(long child, int ready_fd);

__attribute__((noreturn)) static void malformed(const char *detail)
{
    die("launch plan is malformed", detail);
}

/* --isolate (isolate.c): set once the plan's isolation sections are read. */
static int isolated;

/* The plan section types this build implements (each capability adds its own). */
static int section_known(u32 type)
{
    return type == PLAN_SECTION_RESTORE || type == PLAN_SECTION_SNAPSHOT || record_section_known(type) ||
           type == ISOLATE_SECTION_JAIL || type == ISOLATE_SECTION_CGROUPS || type == ISOLATE_SECTION_CGROUP_LIMITS;
}

/* Snapshots: creation (snapshot_dump.c, run by the monitor) and restore (restore.c). */
static void snapshot_resolve_fds(void);
static void snapshot_lift_fds(const int *guest_src, u32 n, int top);

static void read_full(void *dst, u64 len, const char *what)
{
    u8 *p = dst;
    while (len > 0) {
        long n = sys_read(plan_fd, p, len > 0x40000000ul ? 0x40000000ul : len);
        if (n == -EINTR)
            continue;
        if (n < 0)
            die_errno("reading the launch plan", what, n);
        if (n == 0)
            die("launch plan truncated while reading", what);
        p += n;
        len -= (u64)n;
    }
}

/*
 * The header is read with recvmsg: a stub spawned ahead of demand (serve)
 * gets its plan on a unix socket, with the guest's fds attached to the first
 * bytes (SCM_RIGHTS). Anything else (a memfd in exec mode) is read plainly.
 */
static void read_header(void)
{
    union {
        u8 buf[16 + 4 * PLAN_MAX_RECV_FDS];
        u64 align;
    } control;
    struct k_iovec iov = { &hdr, sizeof hdr };
    struct k_msghdr msg = { 0, 0, &iov, 1, control.buf, sizeof control.buf, 0 };
    long n;
    do
        n = sys_recvmsg(plan_fd, &msg, MSG_CMSG_CLOEXEC);
    while (n == -EINTR);
    if (n == -ENOTSOCK) {
        read_full(&hdr, sizeof hdr, "header");
        return;
    }
    if (n < 0)
        die_errno("recvmsg", "reading the launch plan", n);
    if (n == 0)
        die("launch plan truncated while reading", "header");
    if (msg.flags & MSG_CTRUNC)
        malformed("more fds came with it than a plan may carry");
    if (msg.controllen >= 16) {
        /* struct cmsghdr { u64 len; int level; int type; } then the fds. */
        u64 clen = *(u64 *)control.buf;
        int level = *(int *)(control.buf + 8), type = *(int *)(control.buf + 12);
        if (level == SOL_SOCKET && type == SCM_RIGHTS && clen >= 16 && clen <= sizeof control.buf) {
            nreceived = (u32)((clen - 16) / 4);
            for (u32 i = 0; i < nreceived; i++)
                received[i] = *(int *)(control.buf + 16 + 4 * i);
        }
    }
    if ((u64)n < sizeof hdr)
        read_full((u8 *)&hdr + n, sizeof hdr - (u64)n, "header");
}

static void check_header(void)
{
    if (hdr.magic != PLAN_MAGIC || hdr.version != PLAN_VERSION)
        die("launch plan has the wrong magic or version", "the stub and the supervisor come from different builds; rebuild tendril");
    if (hdr.flags & ~(u32)(PLAN_F_X_EXEC_HEAP | PLAN_F_DUMPABLE | PLAN_F_STOP_AT_ENTRY | PLAN_F_MONITOR | PLAN_F_WAIT_START |
                           PLAN_F_SEND_PIDFD | PLAN_F_SNAPSHOT | PLAN_F_RECORD | PLAN_F_REPLAY | PLAN_F_ISOLATE))
        malformed("unknown flags");
    if (hdr.nregions > PLAN_MAX_REGIONS || hdr.nmoves > PLAN_MAX_MOVES || hdr.npoll > PLAN_MAX_POLL)
        malformed("region, fd or poll count out of range");
    if (hdr.bpf_insns == 0 || hdr.bpf_insns > PLAN_MAX_BPF_INSNS)
        malformed("seccomp program length out of range");
    if (hdr.extra_size > PLAN_MAX_EXTRA || (hdr.extra_size & 7))
        malformed("plan sections too large or misaligned");
    if (hdr.mem_size < SPT_GUEST_MIN_BASE + PAGE_SIZE || (hdr.mem_size & (PAGE_SIZE - 1)))
        malformed("guest memory size");
    /* Guest and stub must never overlap: the guest is mapped MAP_FIXED. */
    if (hdr.mem_size > (u64)(unsigned long)__executable_start)
        die("guest memory would overlap the stub", "use a smaller --mem");
    if (hdr.lowmem_size > SPT_GUEST_MIN_BASE - SPT_BOOT_INFO_BASE)
        malformed("low-memory image too large");
    if (hdr.entry < SPT_GUEST_MIN_BASE || hdr.entry >= hdr.mem_size)
        malformed("entry point outside guest memory");
    if ((hdr.flags & PLAN_F_WAIT_START) ? hdr.start_fd < 0 : hdr.start_fd != -1)
        malformed("start fd and wait-for-start disagree");
    /* A recording run may have nobody to report to (exec mode); a monitored run or a replay has. */
    if ((hdr.flags & (PLAN_F_MONITOR | PLAN_F_REPLAY)) ? hdr.report_fd < 0
        : (hdr.flags & PLAN_F_RECORD) ? hdr.report_fd < -1 : hdr.report_fd != -1)
        malformed("report fd and monitor mode disagree");
    if ((hdr.flags & PLAN_F_SEND_PIDFD) && !(hdr.flags & (PLAN_F_MONITOR | PLAN_F_RECORD | PLAN_F_REPLAY)))
        malformed("pidfd without a monitor");
    if ((hdr.flags & (PLAN_F_RECORD | PLAN_F_REPLAY)) && (hdr.flags & PLAN_F_STOP_AT_ENTRY))
        malformed("--gdb with record/replay: the guest has only one tracer");
}

static void check_tables(void)
{
    u64 prev_end = SPT_HOST_MEM_BASE;
    for (u32 i = 0; i < hdr.nregions; i++) {
        const struct plan_region *r = &regions[i];
        if ((r->vaddr | r->length | r->file_offset) & (PAGE_SIZE - 1))
            malformed("memory region not page aligned");
        if (r->length == 0 || r->vaddr < prev_end || r->vaddr + r->length < r->vaddr ||
            r->vaddr + r->length > hdr.mem_size || r->file_offset + r->length < r->file_offset)
            malformed("memory region out of range or out of order");
        if ((r->prot & ~7u) || r->reserved)
            malformed("memory region protection");
        /* W^X (abi.md §6): only --x-exec-heap may have memory both writable and executable. */
        if ((r->prot & PROT_WRITE) && (r->prot & PROT_EXEC) && !(hdr.flags & PLAN_F_X_EXEC_HEAP))
            malformed("memory region both writable and executable");
        prev_end = r->vaddr + r->length;
    }
    /* Guest fds: each target once, never stdio, never the tender's two. */
    for (u32 i = 0; i < hdr.nmoves; i++) {
        int d = moves[i].dst;
        if (d < GUEST_FD_FIRST_DEVICE || d >= GUEST_FD_FIRST_DEVICE + PLAN_MAX_MOVES)
            malformed("guest fd number out of range");
        for (u32 j = 0; j < i; j++)
            if (moves[j].dst == d || moves[j].src == moves[i].src)
                malformed("guest fd given twice");
    }
    for (u32 i = 0; i < hdr.npoll; i++) {
        int found = 0;
        for (u32 j = 0; j < hdr.nmoves; j++)
            found |= moves[j].dst == polls[i].fd;
        if (!found || polls[i].reserved || polls[i].data == SPT_INTERNAL_TIMERFD)
            malformed("poll entry is not one of the guest's fds");
    }
}

/*
 * The typed sections after the filter: each type at most once, every byte
 * accounted for. A type this stub does not implement is refused, never
 * skipped: a plan that asks for isolation or a restore must not run
 * without it.
 */
static void read_sections(void)
{
    read_full(extra, hdr.extra_size, "plan sections");
    u32 o = 0;
    while (o < hdr.extra_size) {
        if (hdr.extra_size - o < sizeof(struct plan_section))
            malformed("truncated plan section header");
        const struct plan_section *s = (const struct plan_section *)(extra + o);
        u32 body = o + (u32)sizeof *s;
        if (s->len > hdr.extra_size - body || ((s->len + 7) & ~7u) > hdr.extra_size - body)
            malformed("plan section longer than the plan");
        if (s->type == 0 || s->type >= PLAN_SECTION_LIMIT || sections[s->type].data)
            malformed("unknown or repeated plan section");
        sections[s->type].data = extra + body;
        sections[s->type].len = s->len;
        o = body + ((s->len + 7) & ~7u);
    }
    for (u32 t = 1; t < PLAN_SECTION_LIMIT; t++)
        if (sections[t].data && !section_known(t))
            malformed("a plan section this stub does not implement (rebuild tendril)");
}

static void close_span(unsigned int lo, unsigned int hi);

/* An fd the plan names: >= 0 an fd of ours, < 0 the (-1 - n)th fd received with the plan. */
static int resolve(int src, const char *what)
{
    if (src >= 0) {
        if (sys_fcntl(src, F_GETFD, 0) < 0)
            die(what, "the plan names an fd that is not open");
        return src;
    }
    u32 idx = (u32)(-1 - src);
    if (idx >= nreceived)
        die(what, "the plan names an fd that did not come with it");
    if (received[idx] < 0)
        die(what, "the plan names a received fd twice");
    int fd = received[idx];
    received[idx] = -1;
    return fd;
}

/* Moves fd to a number >= floor (so it cannot be clobbered by, or clobber, a guest fd). */
static int lift(int fd, int floor)
{
    if (fd < 0 || fd >= floor)
        return fd;
    long n = sys_fcntl(fd, F_DUPFD_CLOEXEC, floor);
    if (n == -EINVAL || n == -EMFILE)
        die("the open-file limit (RLIMIT_NOFILE) is too low for this guest's fds", "raise it (ulimit -n) or attach fewer devices");
    if (n < 0)
        die_errno("fcntl(F_DUPFD_CLOEXEC)", "moving an fd clear of the guest's", n);
    sys_close(fd);
    return (int)n;
}

/*
 * Puts every fd the guest keeps at the number the plan (and so the filter
 * and the manifest copy) gives it, whatever number it came in at: first
 * everything the stub holds goes above the guest's range, then each guest
 * fd drops into place. Needs only as many fds as the guest has, so it works
 * under any open-file limit the guest itself fits in.
 */
static void place_fds(void)
{
    int top = GUEST_FD_TIMER + 1;
    for (u32 i = 0; i < hdr.nmoves; i++)
        if (moves[i].dst + 1 > top)
            top = moves[i].dst + 1;

    int src[PLAN_MAX_MOVES];
    for (u32 i = 0; i < hdr.nmoves; i++)
        src[i] = resolve(moves[i].src, "placing the guest's fds");
    if (hdr.nregions)
        image_fd = resolve(hdr.image_src, "the guest memory file");
    snapshot_resolve_fds();
    record_resolve_fd();
    for (u32 i = 0; i < nreceived; i++)
        if (received[i] >= 0)
            malformed("an fd came with it that it does not use");
    if (hdr.report_fd >= 0)
        report_fd = resolve(hdr.report_fd, "the monitor report fd");
    if (hdr.flags & PLAN_F_WAIT_START)
        start_fd = resolve(hdr.start_fd, "the start fd");
    if (plan_fd == image_fd || plan_fd == report_fd || plan_fd == start_fd ||
        (report_fd >= 0 && (report_fd == start_fd || report_fd == image_fd)) || (start_fd >= 0 && start_fd == image_fd) ||
        (rec_fd >= 0 && (rec_fd == plan_fd || rec_fd == image_fd || rec_fd == report_fd || rec_fd == start_fd)))
        malformed("one fd given two roles");
    for (u32 i = 0; i < hdr.nmoves; i++)
        if (src[i] == plan_fd || src[i] == image_fd || src[i] == report_fd || src[i] == start_fd || (rec_fd >= 0 && src[i] == rec_fd))
            malformed("a guest fd is also one of the stub's");
    snapshot_lift_fds(src, hdr.nmoves, top);

    plan_fd = lift(plan_fd, top);
    image_fd = lift(image_fd, top);
    report_fd = lift(report_fd, top);
    start_fd = lift(start_fd, top);
    rec_fd = lift(rec_fd, top);
    for (u32 i = 0; i < hdr.nmoves; i++)
        src[i] = lift(src[i], top);
    /* Whatever else sits on the guest's numbers is not the guest's. */
    close_span(3, (unsigned int)top);
    for (u32 i = 0; i < hdr.nmoves; i++) {
        long r = sys_dup3(src[i], moves[i].dst, 0);
        if (r < 0)
            die_errno("dup3", "placing the guest's fds", r);
        sys_close(src[i]);
    }
}

/* The tender's own fds (abi.md §9), made here so Node spends no system call on them. */
static void make_poll_set(void)
{
    long ep = sys_epoll_create1(0);
    if (ep < 0)
        die_errno("epoll_create1", "creating the guest's epoll set", ep);
    long tfd = sys_timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    if (tfd < 0)
        die_errno("timerfd_create", "creating the guest's timer", tfd);
    if ((ep != GUEST_FD_EPOLL && (sys_dup3((int)ep, GUEST_FD_EPOLL, 0) < 0 || sys_close((int)ep) < 0)) ||
        (tfd != GUEST_FD_TIMER && (sys_dup3((int)tfd, GUEST_FD_TIMER, 0) < 0 || sys_close((int)tfd) < 0)))
        die("placing the guest's epoll set and timer", "dup3 failed");
    /* struct epoll_event is packed on x86_64: u32 events, u64 data. */
    struct __attribute__((packed)) { u32 events; u64 data; } ev = { EPOLLIN, SPT_INTERNAL_TIMERFD };
    long r = sys_epoll_ctl(GUEST_FD_EPOLL, EPOLL_CTL_ADD, GUEST_FD_TIMER, &ev);
    if (r < 0)
        die_errno("epoll_ctl", "adding the timer to the epoll set", r);
    for (u32 i = 0; i < hdr.npoll; i++) {
        ev.data = polls[i].data;
        r = sys_epoll_ctl(GUEST_FD_EPOLL, EPOLL_CTL_ADD, polls[i].fd, &ev);
        if (r < 0)
            die_errno("epoll_ctl", "adding a device to the epoll set", r);
    }
}

/* Guest memory: one anonymous mapping, then each region of the memory file over it. */
static void map_memory(void)
{
    int prot = PROT_READ | PROT_WRITE | ((hdr.flags & PLAN_F_X_EXEC_HEAP) ? PROT_EXEC : 0);
    long mem = sys_mmap((void *)SPT_HOST_MEM_BASE, hdr.mem_size - SPT_HOST_MEM_BASE, prot,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (mem < 0)
        die_errno("mmap", "Error allocating guest memory", mem);
    if ((u64)mem != SPT_HOST_MEM_BASE)
        die("mmap", "guest memory could not be placed at 0x10000");
    if (!hdr.nregions)
        return;
    u64 size = 0;
    long r = sys_fstat_size(image_fd, &size);
    if (r < 0)
        die_errno("fstat", "the guest memory file", r);
    for (u32 i = 0; i < hdr.nregions; i++) {
        const struct plan_region *g = &regions[i];
        /* A region past the end of the file would fault (SIGBUS) when touched. */
        if (g->file_offset + g->length > size)
            malformed("memory region beyond the end of the memory file");
        long m = sys_mmap((void *)g->vaddr, g->length, (int)g->prot, MAP_PRIVATE | MAP_FIXED, image_fd, (long)g->file_offset);
        if (m < 0)
            die_errno("mmap", "mapping guest memory from the memory file", m);
    }
    sys_close(image_fd);
    image_fd = -1;
}

/* Close [lo, hi). */
static void close_span(unsigned int lo, unsigned int hi)
{
    if (hi <= lo)
        return;
    long r = sys_close_range(lo, hi - 1, 0);
    if (r == -ENOSYS) {
        /* Kernels before 5.9: walk the fd table up to a sane bound. */
        for (unsigned int fd = lo; fd < hi && fd < 65536; fd++)
            sys_close((int)fd);
    } else if (r < 0) {
        die_errno("close_range", "closing inherited file descriptors", r);
    }
}

/* Closes every fd but those in keep[0..n) (any order, -1 entries ignored). */
static void close_all_but(int *keep, u32 n)
{
    for (u32 i = 1; i < n; i++)
        for (u32 j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    unsigned int lo = 0;
    for (u32 i = 0; i < n; i++) {
        if (keep[i] < 0 || (unsigned int)keep[i] < lo)
            continue;
        close_span(lo, (unsigned int)keep[i]);
        lo = (unsigned int)keep[i] + 1;
    }
    close_span(lo, ~0u);
}

/*
 * The guest keeps stdio, its epoll set, its timer and its devices; until
 * the jump the stub also still needs the monitor's ready pipe and the start
 * fd. Launchers mark their own fds close-on-exec, but this covers any that
 * did not, so the guest never inherits anything by accident.
 */
static void close_unkept(void)
{
    int keep[5 + PLAN_MAX_MOVES + 2];
    u32 n = 0;
    for (int fd = 0; fd <= GUEST_FD_TIMER; fd++)
        keep[n++] = fd;
    for (u32 i = 0; i < hdr.nmoves; i++)
        keep[n++] = moves[i].dst;
    keep[n++] = guest_ready_fd;
    keep[n++] = start_fd;
    close_all_but(keep, n);
}

/*
 * Resource limits as defence in depth: the filter already forbids every
 * call they govern (no fd can be opened, no memory mapped, no process made),
 * so they only bound what a kernel bug past the filter could reach. No core
 * unless core dumps were asked for; no fd numbers above the guest's highest;
 * no locked memory. RLIMIT_FSIZE is left alone: a disk write past the limit
 * would fail even inside the disk.
 */
static void set_limits(void)
{
    u64 none[2] = { 0, 0 };
    int top = GUEST_FD_TIMER;
    for (u32 i = 0; i < hdr.nmoves; i++)
        if (moves[i].dst > top)
            top = moves[i].dst;
    u64 nofile[2] = { (u64)top + 1, (u64)top + 1 };
    long r;
    if (!(hdr.flags & PLAN_F_DUMPABLE) && (r = sys_setrlimit(RLIMIT_CORE, none)) < 0)
        die_errno("setrlimit", "RLIMIT_CORE", r);
    if ((r = sys_setrlimit(RLIMIT_NOFILE, nofile)) < 0)
        die_errno("setrlimit", "RLIMIT_NOFILE", r);
    if ((r = sys_setrlimit(RLIMIT_MEMLOCK, none)) < 0)
        die_errno("setrlimit", "RLIMIT_MEMLOCK", r);
}

/*
 * A hex mask from a /proc status file ("SigIgn:"), or all ones if it cannot
 * be read (then every signal is reset, which is always right, only slower).
 */
static u64 proc_status_mask(const char *path, const char *key);

/* The signals ignored, when known before /proc is out of reach (a prepared isolated stub); else read at the reset. */
static u64 ignored_signals;
static int ignored_known;

/*
 * Every signal back to its default action, none blocked: the guest starts as
 * a process started by solo5-spt from a shell does, whatever its launcher
 * ignored or blocked (Node ignores SIGPIPE and SIGXFSZ). So `tendril run
 * GUEST | head -c1` ends the guest by SIGPIPE (141). After execve only
 * ignored signals keep a disposition (caught ones are reset by the kernel),
 * so only those need a call: usually none or two, not 62.
 */
static void reset_signals(void)
{
    static const struct k_sigaction dfl = { 0, 0, 0, 0 };
    u64 ignored = ignored_known ? ignored_signals : proc_status_mask("/proc/self/status", "SigIgn:");
    for (int sig = 1; sig <= 64; sig++)
        if (sig != SIGKILL && sig != SIGSTOP && (ignored >> (sig - 1)) & 1)
            sys_rt_sigaction(sig, &dfl, 0);
    static const u64 none = 0;
    long r = sys_rt_sigprocmask(SIG_SETMASK, &none, 0);
    if (r < 0)
        die_errno("rt_sigprocmask", "unblocking signals", r);
}

/* OUT = "/proc/PID" TAIL; the callers give 40 bytes, room for any pid and their tails. */
static void proc_path(char *out, long pid, const char *tail)
{
    const char *head = "/proc/";
    u32 n = 0;
    while (*head)
        out[n++] = *head++;
    char digits[20];
    int d = 0;
    do {
        digits[d++] = (char)('0' + pid % 10);
        pid /= 10;
    } while (pid);
    while (d)
        out[n++] = digits[--d];
    while (*tail)
        out[n++] = *tail++;
    out[n] = 0;
}

/*
 * The text after `key` on its line of a /proc status file ("TracerPid:",
 * "VmHWM:", "SigIgn:"), or NULL if it cannot be read. Used by --gdb's wait,
 * the signal reset and the monitor.
 */
static const char *proc_status_field(const char *path, const char *key)
{
    static char buf[4096];
    long fd = sys_open(path, 0);
    if (fd < 0)
        return 0;
    long n = sys_read((int)fd, buf, sizeof buf - 1);
    sys_close((int)fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    u64 klen = str_len(key);
    for (long i = 0; i + (long)klen < n; i++) {
        if (i > 0 && buf[i - 1] != '\n')
            continue;
        u64 j = 0;
        while (j < klen && buf[i + (long)j] == key[j])
            j++;
        if (j < klen)
            continue;
        for (i += (long)klen; buf[i] == ' ' || buf[i] == '\t'; i++)
            ;
        return buf + i;
    }
    return 0;
}

/* A decimal number from a /proc status file, or -1. */
static long proc_status_value(const char *path, const char *key)
{
    const char *p = proc_status_field(path, key);
    if (!p)
        return -1;
    long v = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        v = v * 10 + (*p - '0');
    return v;
}

static u64 proc_status_mask(const char *path, const char *key)
{
    const char *p = proc_status_field(path, key);
    if (!p)
        return ~0ul;
    u64 v = 0;
    for (;; p++) {
        int d = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
        if (d < 0)
            break;
        v = (v << 4) | (u64)d;
    }
    return v;
}

static long tracer_pid(void)
{
    return proc_status_value("/proc/self/status", "TracerPid:");
}

/*
 * --gdb: wait, with the guest fully loaded but not one instruction run, until
 * a debugger attaches. Attaching stops us; the guest starts when the
 * debugger continues. (Raising SIGSTOP instead would make the debugger see
 * and re-deliver a stale stop.) A debugger's ptrace is not subject to the
 * guest's filter, so breakpoints work as usual.
 */
static void wait_for_tracer(void)
{
    static const long tick[2] = { 0, 20 * 1000 * 1000 };
    long t;
    while ((t = tracer_pid()) == 0)
        sys_nanosleep(tick);
    if (t < 0)
        die("--gdb", "cannot read TracerPid from /proc/self/status to wait for the debugger");
}

/*
 * Wait-for-start (OCI create/start): the guest is loaded, its fds are in
 * place and its filter is ready, but it runs only when one byte arrives on
 * the start fd. End of file (the container was deleted unstarted) exits 1.
 */
static void wait_for_start(void)
{
    char c;
    long n;
    do
        n = sys_read(start_fd, &c, 1);
    while (n == -EINTR);
    if (n != 1)
        sys_exit_group(1);
    sys_close(start_fd);
    start_fd = -1;
}

/*
 * The last steps run from a one-page trampoline outside the stub image, so
 * the stub can unmap itself: once the guest runs, none of the tender's code
 * or data is left to read or to reuse as gadgets. munmap must come before
 * seccomp (the filter forbids it), and the filter program must then live
 * outside the stub image (it is on the stack). The trampoline:
 *   munmap(rdi = stub base, rsi = stub length)
 *   seccomp(SECCOMP_SET_MODE_FILTER, 0, r12 = &prog)
 *   rsp = r14 (mem_size - 8), rdi = 0x11000, other registers cleared,
 *   jmp r13 (entry)                                           (abi.md §3)
 * Any failure exits 1 without a message: the code that could print it is gone.
 */
#define TRAMPOLINE_ADDR 0x7dfffffff000ul
extern const char trampoline_start[], trampoline_end[];
__asm__(
    ".section .rodata\n"
    ".globl trampoline_start, trampoline_end\n"
    "trampoline_start:\n"
    "    mov $11, %eax\n"              /* munmap */
    "    syscall\n"
    "    test %rax, %rax\n"
    "    jnz 1f\n"
    "    mov $317, %eax\n"             /* seccomp */
    "    mov $1, %edi\n"
    "    xor %esi, %esi\n"
    "    mov %r12, %rdx\n"
    "    syscall\n"
    "    test %rax, %rax\n"
    "    jnz 1f\n"
    "    mov %r14, %rsp\n"
    "    mov %r13, %rax\n"
    "    mov $0x11000, %edi\n"
    "    xor %ebx, %ebx\n"
    "    xor %ecx, %ecx\n"
    "    xor %edx, %edx\n"
    "    xor %esi, %esi\n"
    "    xor %ebp, %ebp\n"
    "    xor %r8d, %r8d\n"
    "    xor %r9d, %r9d\n"
    "    xor %r10d, %r10d\n"
    "    xor %r11d, %r11d\n"
    "    xor %r12d, %r12d\n"
    "    xor %r13d, %r13d\n"
    "    xor %r14d, %r14d\n"
    "    xor %r15d, %r15d\n"
    "    jmp *%rax\n"
    "1:  mov $231, %eax\n"            /* exit_group(1) */
    "    mov $1, %edi\n"
    "    syscall\n"
    "    hlt\n"
    "trampoline_end:\n"
    ".text\n");

extern char _end[];

__attribute__((noreturn)) static void enter_guest(u64 entry, u64 stack, struct sock_fprog *prog)
{
    u64 len = (u64)(trampoline_end - trampoline_start);
    long t = sys_mmap((void *)TRAMPOLINE_ADDR, PAGE_SIZE, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (t < 0)
        die_errno("mmap", "mapping the launch trampoline", t);
    for (u64 i = 0; i < len; i++)
        ((u8 *)TRAMPOLINE_ADDR)[i] = (u8)trampoline_start[i];
    long r = sys_mprotect((void *)TRAMPOLINE_ADDR, PAGE_SIZE, PROT_READ | PROT_EXEC);
    if (r < 0)
        die_errno("mprotect", "protecting the launch trampoline", r);

    u64 base = (u64)(unsigned long)__executable_start;
    u64 end = ((u64)(unsigned long)_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    register u64 r12 __asm__("r12") = (u64)(unsigned long)prog;
    register u64 r13 __asm__("r13") = entry;
    register u64 r14 __asm__("r14") = stack;
    __asm__ volatile("jmp *%3"
                     :
                     : "D"(base), "S"(end - base), "r"(r12), "r"((u64)TRAMPOLINE_ADDR), "r"(r13), "r"(r14)
                     : "memory");
    __builtin_unreachable();
}

/* Isolation hooks (isolate.c, included after monitor.c, which uses them). */
static void isolate_fork_init(void);
static int isolate_parent_alive(void);
static u32 isolate_end(int status);
static void isolate_remove_cgroups(void);
/* The process that forks the guest (monitor or waiter), for the guest's check that it is still there. */
static long jail_parent = -1;

#include "snapshot_dump.c"
#include "monitor.c"
#include "isolate.c"
#include "restore.c"
#include "trace.c"
#include "record.c"
#include "replay.c"

__attribute__((noreturn, used)) void stub_main(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);

    if (argc == 2 && argv[1][0] == '-' && argv[1][1] == '-' && argv[1][2] == 'c' && argv[1][3] == 'p' && argv[1][4] == 'u' && !argv[1][5])
        cpu_probe();

    if (argc < 2 || argc > 3 + ISOLATE_MAX_CGROUPS || parse_fd(argv[1], &plan_fd) != 0)
        die("usage: tendril-stub PLAN-FD [JAIL [CGROUP-PARENT...]]", "the stub is started by the tendril supervisor, not by hand");

    /* A READ_IMPLIES_EXEC personality would make every readable page
     * executable and void the W^X protections below. */
    long pers = sys_personality(0xffffffffu);
    if (pers >= 0 && (pers & READ_IMPLIES_EXEC))
        die("refusing to run with a READ_IMPLIES_EXEC personality", "run tendril without `setarch -X`");

    /* A pool stub of `serve --isolate` makes its jail's namespaces while it waits (isolate.c). */
    if (argc >= 3)
        isolate_prepare(argv[2], argv + 3, (u32)(argc - 3));
    read_header();
    check_header();
    read_full(regions, sizeof regions[0] * hdr.nregions, "memory regions");
    read_full(moves, sizeof moves[0] * hdr.nmoves, "fd table");
    read_full(polls, sizeof polls[0] * hdr.npoll, "poll table");
    read_sections();
    isolate_read();
    snapshot_check_request();
    restore_check();
    record_check_plan();
    /* The record/replay loop owns the ptrace stops the snapshot monitor would need, and a
     * recording replays from the entry point, which a restored guest never ran. */
    if ((restoring || snapshotting()) && (hdr.flags & (PLAN_F_RECORD | PLAN_F_REPLAY)))
        malformed("record/replay with a snapshot or a restore");
    /* Their monitors and setups read /proc and files the jail takes away, and none of them knows the jail's parent. */
    if (isolated && (restoring || snapshotting() || (hdr.flags & (PLAN_F_RECORD | PLAN_F_REPLAY))))
        malformed("isolation with a snapshot, a restore, a recording or a replay");
    check_tables();
    place_fds();
    make_poll_set();

    /* Fork the monitor (or the isolated guest's waiter) before guest memory exists, so it stays tiny. */
    if (trace_mode)
        pin_to_this_cpu();
    if (hdr.flags & (PLAN_F_MONITOR | PLAN_F_RECORD | PLAN_F_REPLAY))
        monitor_fork();
    else if (isolated)
        waiter_fork();
    /* The jail, before guest memory exists, so its memory cgroup is charged for all of it. */
    if (isolated)
        isolate_guest();

    map_memory();
    read_full((void *)SPT_BOOT_INFO_BASE, hdr.lowmem_size, "low memory");
    u8 pad[8];
    if (hdr.lowmem_size & 7)
        read_full(pad, 8 - (hdr.lowmem_size & 7), "padding");
    read_full(bpf, sizeof bpf[0] * hdr.bpf_insns, "seccomp program");
    sys_close(plan_fd);
    plan_fd = -1;

    close_unkept();
    if (!(hdr.flags & PLAN_F_DUMPABLE)) {
        long r = sys_prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        if (r < 0)
            die_errno("prctl", "PR_SET_DUMPABLE", r);
    }
    long r = sys_prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (r < 0)
        die_errno("prctl", "PR_SET_NO_NEW_PRIVS", r);

    if (hdr.flags & PLAN_F_STOP_AT_ENTRY)
        wait_for_tracer();
    if (start_fd >= 0)
        wait_for_start();
    /* After the waits, and after the signal reset: both read /proc files, which the fd limit would forbid. */
    reset_signals();
    set_limits();
    if (restoring)
        restore_prepare();
    char ready = record_guest_setup();
    if (guest_ready_fd >= 0) {
        sys_write(guest_ready_fd, &ready, 1);
        sys_close(guest_ready_fd);
    }

    /* The filter program moves to the stack, which outlives the stub image. */
    struct sock_filter filter[hdr.bpf_insns];
    for (u32 i = 0; i < hdr.bpf_insns; i++)
        filter[i] = bpf[i];
    struct sock_fprog prog = { .len = (u16)hdr.bpf_insns, .filter = filter };
    if (restoring)
        enter_restored(&prog);
    enter_guest(hdr.entry, hdr.mem_size - 8, &prog);
}

/* The kernel starts us with rsp pointing at argc; realign for the C ABI. */
__asm__(
    ".text\n"
    ".globl _start\n"
    "_start:\n"
    "    mov %rsp, %rdi\n"
    "    and $-16, %rsp\n"
    "    call stub_main\n"
    "    hlt\n");
