/*
 * tendril-stub: turns itself into a Solo5 spt guest.
 *
 * Mechanism only. The TypeScript supervisor has already validated the guest
 * image, attached the devices, compiled the seccomp filter and laid out low
 * memory; it hands all of it over as one "launch plan" on a file descriptor
 * (layout: loader/plan.ts, encodePlan). The stub maps guest memory at its
 * identity addresses, copies the segments in, applies their protections,
 * closes every fd it was not told to keep, installs the filter and jumps to
 * the guest entry point. It never returns and never regains control.
 *
 * No libc: the stub is a static binary linked far above any guest memory
 * (see Makefile), so the only mappings besides the guest are its own few
 * pages, its stack and the kernel's vDSO.
 */

#include "sys.h"


#define PLAN_MAGIC 0x31504454u /* "TDP1" */
#define PLAN_VERSION 2u
#define PLAN_MAX_SEGMENTS 16u
#define PLAN_MAX_KEEP_FDS 256u
#define BPF_MAX_INSNS 4096u

#define PLAN_F_X_EXEC_HEAP (1u << 0)
#define PLAN_F_DUMPABLE (1u << 1)
#define PLAN_F_STOP_AT_ENTRY (1u << 2)
#define PLAN_F_MONITOR (1u << 3)
#define PLAN_F_WAIT_START (1u << 4)
#define PLAN_MAX_RECV_FDS 64u

/* abi.md §1 and abi.md §2: fixed by the ABI, not by the plan. */
#define SPT_HOST_MEM_BASE 0x10000ul
#define SPT_BOOT_INFO_BASE 0x11000ul
#define SPT_GUEST_MIN_BASE 0x100000ul
#define PAGE_SIZE 0x1000ul

struct plan_header {
    u32 magic;
    u32 version;
    u64 mem_size;
    u64 entry;
    u32 flags;
    u32 nsegs;
    u32 nkeep;
    u32 lowmem_size;
    u32 bpf_insns;
    u32 nrecv;
    int report_fd;
    int start_fd;
};

struct plan_segment {
    u64 vaddr;
    u64 filesz;
    u64 memsz;
    u64 start;
    u64 end;
    u32 prot;
    u32 reserved;
};

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
static struct plan_segment segs[PLAN_MAX_SEGMENTS];
static int keep[PLAN_MAX_KEEP_FDS];
static int recv_target[PLAN_MAX_RECV_FDS];
static int received[PLAN_MAX_RECV_FDS];
static u32 nreceived;
/* Monitor mode: written to just before the jump, so the monitor can tell a
 * guest's exit from a stub error. -1 otherwise. */
static int guest_ready_fd = -1;
static struct sock_filter bpf[BPF_MAX_INSNS];
static int plan_fd;

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
        u8 buf[24 + 4 * PLAN_MAX_RECV_FDS];
        u64 align;
    } control;
    struct iovec { void *base; u64 len; } iov = { &hdr, sizeof hdr };
    struct msghdr {
        void *name; u32 namelen; struct iovec *iov; u64 iovlen;
        void *control; u64 controllen; int flags;
    } msg = { 0, 0, &iov, 1, control.buf, sizeof control.buf, 0 };
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

/* Put the fds that came with the plan at the numbers the plan (and so the
 * filter) expects. Two steps, so a target that is another received fd's
 * current number is not clobbered. */
static void place_received_fds(void)
{
    if (nreceived != hdr.nrecv)
        die("launch plan is malformed", "the number of fds received does not match the plan");
    for (u32 i = 0; i < nreceived; i++) {
        long tmp = sys_fcntl(received[i], F_DUPFD_CLOEXEC, 1024);
        if (tmp < 0)
            die_errno("fcntl", "moving a received fd", tmp);
        sys_close(received[i]);
        received[i] = (int)tmp;
    }
    for (u32 i = 0; i < nreceived; i++) {
        long r = sys_dup3(received[i], recv_target[i], 0);
        if (r < 0)
            die_errno("dup3", "placing a received fd", r);
        sys_close(received[i]);
    }
}

static void skip_padding(u64 len)
{
    u8 pad[8];
    u64 rem = (8 - (len & 7)) & 7;
    if (rem)
        read_full(pad, rem, "padding");
}

static void check_plan(void)
{
    if (hdr.magic != PLAN_MAGIC || hdr.version != PLAN_VERSION)
        die("launch plan has the wrong magic or version", "the stub and the supervisor come from different builds; rebuild tendril");
    if (hdr.nsegs == 0 || hdr.nsegs > PLAN_MAX_SEGMENTS || hdr.nkeep > PLAN_MAX_KEEP_FDS || hdr.nrecv > PLAN_MAX_RECV_FDS)
        die("launch plan is malformed", "segment or fd count out of range");
    if ((hdr.flags & PLAN_F_WAIT_START) && hdr.start_fd < 0)
        die("launch plan is malformed", "wait-for-start without a start fd");
    if ((hdr.flags & PLAN_F_MONITOR) && hdr.report_fd < 3)
        die("launch plan is malformed", "monitor mode without a report fd");
    if (hdr.bpf_insns == 0 || hdr.bpf_insns > BPF_MAX_INSNS)
        die("launch plan is malformed", "seccomp program length out of range");
    if (hdr.mem_size < SPT_GUEST_MIN_BASE + PAGE_SIZE || (hdr.mem_size & (PAGE_SIZE - 1)))
        die("launch plan is malformed", "guest memory size");
    /* Guest and stub must never overlap: the guest is mapped MAP_FIXED. */
    if (hdr.mem_size > (u64)(unsigned long)__executable_start)
        die("guest memory would overlap the stub", "use a smaller --mem");
    if (hdr.lowmem_size > SPT_GUEST_MIN_BASE - SPT_BOOT_INFO_BASE)
        die("launch plan is malformed", "low-memory image too large");
    if (hdr.entry < SPT_GUEST_MIN_BASE || hdr.entry >= hdr.mem_size)
        die("launch plan is malformed", "entry point outside guest memory");
}

static void check_segment(const struct plan_segment *s, u64 prev_end)
{
    if (s->start < SPT_GUEST_MIN_BASE || s->start < prev_end || s->vaddr < s->start ||
        s->filesz > s->memsz || s->vaddr + s->memsz < s->vaddr ||
        s->vaddr + s->memsz > s->end || s->end > hdr.mem_size ||
        (s->start & (PAGE_SIZE - 1)) || (s->end & (PAGE_SIZE - 1)) ||
        (s->prot & ~7u) || ((s->prot & PROT_WRITE) && (s->prot & PROT_EXEC)))
        die("launch plan is malformed", "segment out of range");
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

/*
 * Close every fd not on the keep list (which arrives sorted). In exec mode
 * Node has marked its own fds close-on-exec already; this covers launchers
 * that did not, so the guest never inherits anything by accident. The
 * monitor's ready pipe survives until the jump.
 */
static void close_span_sparing(unsigned int lo, unsigned int hi, int spare)
{
    unsigned int r = (unsigned int)spare;
    if (spare >= 0 && r >= lo && r < hi) {
        close_span(lo, r);
        close_span(r + 1, hi);
    } else {
        close_span(lo, hi);
    }
}

/* The fds the stub itself still needs until the jump. */
static int start_fd = -1;

static void close_unkept(void)
{
    unsigned int lo = 0;
    int a = guest_ready_fd < start_fd ? guest_ready_fd : start_fd;
    int b = guest_ready_fd < start_fd ? start_fd : guest_ready_fd;
    for (u32 i = 0; i <= hdr.nkeep; i++) {
        unsigned int hi = i < hdr.nkeep ? (unsigned int)keep[i] : ~0u;
        /* Spare a and b (either may be -1) inside [lo, hi). */
        if (a >= 0 && (unsigned int)a >= lo && (unsigned int)a < hi) {
            close_span(lo, (unsigned int)a);
            close_span_sparing((unsigned int)a + 1, hi, b);
        } else {
            close_span_sparing(lo, hi, b);
        }
        if (i < hdr.nkeep)
            lo = (unsigned int)keep[i] + 1;
    }
}

/*
 * Resource limits as defence in depth: the filter already forbids every
 * call they govern (no fd can be opened, no memory mapped, no process made),
 * so they only bound what a kernel bug past the filter could reach. No core
 * unless core dumps were asked for; no fd numbers above the highest one
 * kept; no locked memory. RLIMIT_FSIZE is left alone: a disk write past the
 * limit would fail even inside the disk.
 */
static void set_limits(void)
{
    u64 none[2] = { 0, 0 };
    int top = 2;
    for (u32 i = 0; i < hdr.nkeep; i++)
        if (keep[i] > top)
            top = keep[i];
    if (guest_ready_fd > top)
        top = guest_ready_fd;
    if (start_fd > top)
        top = start_fd;
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
 * A number from a /proc status file ("TracerPid:", "VmHWM:"), or -1 if it
 * cannot be read. Used by --gdb's wait and by the monitor.
 */
static long proc_status_value(const char *path, const char *key)
{
    static char buf[4096];
    long fd = sys_open(path, 0);
    if (fd < 0)
        return -1;
    long n = sys_read((int)fd, buf, sizeof buf - 1);
    sys_close((int)fd);
    if (n <= 0)
        return -1;
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
        long v = 0;
        for (i += (long)klen; buf[i] == ' ' || buf[i] == '\t'; i++)
            ;
        for (; buf[i] >= '0' && buf[i] <= '9'; i++)
            v = v * 10 + (buf[i] - '0');
        return v;
    }
    return -1;
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
    while (tracer_pid() == 0)
        sys_nanosleep(tick);
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

#include "monitor.c"

__attribute__((noreturn, used)) void stub_main(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);

    if (argc != 2 || parse_fd(argv[1], &plan_fd) != 0)
        die("usage: tendril-stub PLAN-FD", "the stub is started by the tendril supervisor, not by hand");

    /* A READ_IMPLIES_EXEC personality would make every readable page
     * executable and void the W^X protections below. */
    long pers = sys_personality(0xffffffffu);
    if (pers >= 0 && (pers & READ_IMPLIES_EXEC))
        die("refusing to run with a READ_IMPLIES_EXEC personality", "run tendril without `setarch -X`");

    read_header();
    check_plan();
    if (hdr.flags & PLAN_F_WAIT_START)
        start_fd = hdr.start_fd;
    read_full(segs, sizeof segs[0] * hdr.nsegs, "segment table");
    read_full(keep, sizeof keep[0] * hdr.nkeep, "fd list");
    skip_padding(sizeof keep[0] * hdr.nkeep);
    read_full(recv_target, sizeof recv_target[0] * hdr.nrecv, "received fd list");
    skip_padding(sizeof recv_target[0] * hdr.nrecv);

    /* Fork the monitor before guest memory exists, so it stays tiny. */
    if (hdr.flags & PLAN_F_MONITOR)
        monitor_fork(hdr.report_fd);

    int prot = PROT_READ | PROT_WRITE | ((hdr.flags & PLAN_F_X_EXEC_HEAP) ? PROT_EXEC : 0);
    long mem = sys_mmap((void *)SPT_HOST_MEM_BASE, hdr.mem_size - SPT_HOST_MEM_BASE, prot,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (mem < 0)
        die_errno("mmap", "Error allocating guest memory", mem);
    if ((u64)mem != SPT_HOST_MEM_BASE)
        die("mmap", "guest memory could not be placed at 0x10000");

    u64 prev_end = 0;
    for (u32 i = 0; i < hdr.nsegs; i++) {
        check_segment(&segs[i], prev_end);
        read_full((void *)segs[i].vaddr, segs[i].filesz, "segment data");
        skip_padding(segs[i].filesz);
        prev_end = segs[i].end;
    }
    read_full((void *)SPT_BOOT_INFO_BASE, hdr.lowmem_size, "low memory");
    skip_padding(hdr.lowmem_size);
    read_full(bpf, sizeof bpf[0] * hdr.bpf_insns, "seccomp program");
    if (hdr.nrecv)
        place_received_fds();

    for (u32 i = 0; i < hdr.nsegs; i++) {
        long r = sys_mprotect((void *)segs[i].start, segs[i].end - segs[i].start, (int)segs[i].prot);
        if (r < 0)
            die_errno("mprotect", "applying segment protections", r);
    }

    close_unkept();

    if (!(hdr.flags & PLAN_F_DUMPABLE)) {
        long r = sys_prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        if (r < 0)
            die_errno("prctl", "PR_SET_DUMPABLE", r);
    }
    set_limits();
    long r = sys_prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    if (r < 0)
        die_errno("prctl", "PR_SET_NO_NEW_PRIVS", r);

    if (hdr.flags & PLAN_F_STOP_AT_ENTRY)
        wait_for_tracer();
    if (start_fd >= 0)
        wait_for_start();
    if (guest_ready_fd >= 0) {
        sys_write(guest_ready_fd, "G", 1);
        sys_close(guest_ready_fd);
    }

    /* The filter program moves to the stack, which outlives the stub image. */
    struct sock_filter filter[hdr.bpf_insns];
    for (u32 i = 0; i < hdr.bpf_insns; i++)
        filter[i] = bpf[i];
    struct sock_fprog prog = { .len = (u16)hdr.bpf_insns, .filter = filter };
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
