// Hostile guests (docs/architecture.md, "Testing"): C guests that try to
// leave the sandbox, run for real under tendril. Each prints "ATTEMPT <what>"
// just before its attack and "ESCAPED" if the attack came back; each must die
// by SIGSYS (159, the seccomp filter) or SIGSEGV (139, the page protections),
// with the marker present (it got that far) and ESCAPED absent. The guests
// share tests/guests/hostile.h.
//
// The full 0–600 syscall sweep is `npm run test:security`
// (tests/hostile-sweep.test.ts); here a fixed sample of the numbers that
// matter runs in `npm test`.

import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guest, Pool } from './helpers.js';
import { launchTendril, type WatchedResult } from './fuzz/launch.js';
import { check, describeOutcomes, kernelVersion, SAMPLE, SYS_UPROBE, SYS_URETPROBE, type SweepOutcome } from './fuzz/sweep.js';

const SIGSYS = 159;
const SIGSEGV = 139;

// Two launches at a time per file: each is a Node start-up on a 2-core machine.
const pool = new Pool(2);

function run(name: string, args: string[], devices: string[] = []): Promise<WatchedResult> {
  return pool.run(() => launchTendril(['run', '--mem=2', ...devices, guest(name), '--solo5:quiet', ...args], { timeoutMs: 30_000 }));
}

/** The contract of a hostile guest: got to the attempt, died the expected way, never escaped. */
function contained(t: ExecutionContext, r: WatchedResult, marker: string, status: number): void {
  const seen = `status ${r.status}; stdout ${JSON.stringify(r.stdout)}; stderr ${JSON.stringify(r.stderr)}`;
  t.true(r.stdout.includes(`ATTEMPT ${marker}\n`), `marker missing: ${seen}`);
  t.false(r.stdout.includes('ESCAPED'), seen);
  t.is(r.status, status, seen);
  t.is(r.stderr, '', `tendril said something: ${seen}`);
}

// --- 1. The syscall sweep, sampled -----------------------------------------

const sampled: SweepOutcome[] = [];

for (const [nr, name] of Object.entries(SAMPLE).map(([n, s]) => [Number(n), s] as const)) {
  const what = nr === SYS_URETPROBE ? 'passes seccomp (Linux ≥ 6.18), then the kernel raises SIGILL (132)'
    : nr === SYS_UPROBE ? 'passes seccomp (Linux ≥ 6.18) and returns -ENXIO; the next forbidden call is killed (159)'
      : 'is killed by the filter (159)';
  test(`syscall ${nr} (${name}) with arguments no rule allows ${what}`, async (t) => {
    const r = await run('hostile_syscall', [String(nr)]);
    const o = check(nr, r);
    sampled.push(o);
    t.truthy(o.met, `status ${r.status}; stdout ${JSON.stringify(r.stdout)}; stderr ${JSON.stringify(r.stderr)}`);
    t.false(r.stdout.includes('ESCAPED'));
    if (nr === SYS_URETPROBE || nr === SYS_UPROBE) t.log(`kernel ${kernelVersion().join('.')}: ${o.met?.why}`);
  });
}

test.after('sweep sample summary', (t) => {
  if (sampled.length === 0) return;
  t.log(`sampled ${sampled.length} syscall numbers:\n${describeOutcomes(sampled.sort((a, b) => a.nr - b.nr))}`);
});

// --- 2. Other ways into the kernel: x32, int $0x80, sysenter, vsyscall -----

// Intel CPUs execute sysenter in 64-bit mode and Linux takes it as an i386
// (compat) call, which the bad-arch action kills; AMD CPUs fault (#UD → SIGILL).
const SIGILL = 132;
const vendor = /vendor_id\s*:\s*(\S+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
const sysenterStatus = vendor === 'AuthenticAMD' ? SIGILL : SIGSYS;
// With vsyscall=xonly/emulate (the default) the kernel emulates the call and runs
// the filter on it; with vsyscall=none the page is not there at all.
const vsyscallStatus = /\[vsyscall\]/.test(readFileSync('/proc/self/maps', 'utf8')) ? SIGSYS : SIGSEGV;
const statusName = (s: number) => (s === SIGSYS ? 'SIGSYS' : s === SIGSEGV ? 'SIGSEGV' : 'SIGILL');

const foreign: [mode: string, what: string, status?: number][] = [
  ['x32-write', 'x32 write(1): an allowed call with the x32 bit set'],
  ['x32-exit_group', 'x32 exit_group: the unconditional rule with the x32 bit set'],
  ['x32-getpid', 'x32 getpid'],
  ['x32-rt_sigaction', 'an x32-only syscall number (512)'],
  ['int80-write', 'i386 write(1) through int $0x80 (bad-arch action)'],
  ['int80-exit', 'i386 exit through int $0x80 (bad-arch action)'],
  ['int80-exit_group', 'i386 exit_group through int $0x80 (bad-arch action)'],
  ['sysenter-write', `i386 write(1) through sysenter (${vendor}: ${vendor === 'AuthenticAMD' ? '#UD' : 'bad-arch action'})`, sysenterStatus],
  ['nr-high-bits', 'getpid with bit 32 of rax set: the filter sees the same low 32 bits as the kernel'],
  ['nr-minus-one', 'syscall number -1'],
  ['vsyscall-time', 'the legacy vsyscall page: the kernel emulates time() as syscall 201, through the filter', vsyscallStatus],
];
for (const [mode, what, status = SIGSYS] of foreign) {
  test(`foreign ABI: ${what} → ${statusName(status)}`, async (t) => {
    contained(t, await run('hostile_abi', [mode]), mode, status);
  });
}

test('foreign ABI control: write(1) with bit 32 of rax set is plain write(1), allowed like it; the next call dies', async (t) => {
  const r = await run('hostile_abi', ['nr-high-bits-write']);
  t.regex(r.stdout, /OK nr-high-bits-write reached stdout\n/);
  contained(t, r, 'getpid after nr-high-bits-write', SIGSYS);
});

// --- 3. Allowed calls, refused arguments --------------------------------------

for (const [mode, what] of [
  ['write-fd0', 'write to fd 0'],
  ['write-fd2', 'write to fd 2 (stderr is not the console)'],
  ['write-fd3', 'write to fd 3'],
  ['write-fd1-high-bits', 'write to fd 1|1<<32 (the kernel would truncate it to 1; the filter compares 64 bits)'],
  ['write-epollfd', 'write to the epoll fd'],
  ['write-timerfd', 'write to the timer fd'],
  ['read-fd0', 'read from stdin (no read rule without a tap)'],
  ['read-timerfd', 'read from the timer fd'],
  ['clock-process-cputime', 'clock_gettime(CLOCK_PROCESS_CPUTIME_ID)'],
  ['clock-thread-cputime', 'clock_gettime(CLOCK_THREAD_CPUTIME_ID)'],
  ['clock-monotonic-raw', 'clock_gettime(CLOCK_MONOTONIC_RAW)'],
  ['clock-realtime-coarse', 'clock_gettime(CLOCK_REALTIME_COARSE)'],
  ['clock-boottime', 'clock_gettime(CLOCK_BOOTTIME)'],
  ['clock-tai', 'clock_gettime(CLOCK_TAI)'],
  ['clock-minus-one', 'clock_gettime(-1)'],
  ['clock-monotonic-high-bits', 'clock_gettime(CLOCK_MONOTONIC|1<<32)'],
  ['arch_prctl-get-fs', 'arch_prctl(ARCH_GET_FS)'],
  ['arch_prctl-set-gs', 'arch_prctl(ARCH_SET_GS)'],
  ['arch_prctl-get-gs', 'arch_prctl(ARCH_GET_GS)'],
  ['arch_prctl-set-cpuid', 'arch_prctl(ARCH_SET_CPUID)'],
  ['arch_prctl-map-vdso', 'arch_prctl(ARCH_MAP_VDSO_64)'],
  ['arch_prctl-set-fs-high-bits', 'arch_prctl(ARCH_SET_FS|1<<32)'],
  ['epoll_pwait-timerfd', 'epoll_pwait on the timer fd'],
  ['epoll_pwait-stdout', 'epoll_pwait on fd 1'],
  ['epoll_pwait-bad-fd', 'epoll_pwait on fd 0x7fff'],
  ['epoll_pwait-epollfd-high-bits', 'epoll_pwait on the epoll fd|1<<32'],
  ['timerfd_settime-epollfd', 'timerfd_settime on the epoll fd'],
  ['timerfd_settime-bad-fd', 'timerfd_settime on fd 0x7fff'],
  ['timerfd_settime-timerfd-high-bits', 'timerfd_settime on the timer fd|1<<32'],
  ['exit', 'exit(2), which is not exit_group(2)'],
] as const) {
  test(`refused argument: ${what} → SIGSYS`, async (t) => {
    const r = await run('hostile_args', [mode]);
    t.regex(r.stdout, /OK control\n/, 'the legal calls on the boot-info fds work');
    contained(t, r, mode, SIGSYS);
  });
}

// --- 4. Block device rules ------------------------------------------------

// Made on first use, so a run that selects no block test leaves nothing behind.
let scratch: string | undefined;
const scratchDir = () => (scratch ??= mkdtempSync(join(tmpdir(), 'tendril-hostile-')));
test.after.always('remove the scratch disks', () => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

for (const [mode, what] of [
  ['pread-short', 'pread64 of block_size - 1 bytes'],
  ['pread-two-blocks', 'pread64 of two blocks'],
  ['pread-len-high-bits', 'pread64 of block_size|1<<32 bytes'],
  ['pread-at-capacity', 'pread64 at offset == capacity'],
  ['pread-past-last-block', 'pread64 at capacity - block_size + 1'],
  ['pread-far-past-end', 'pread64 at 1 TiB'],
  ['pread-negative-offset', 'pread64 at offset -block_size'],
  ['pread-offset-high-bits', 'pread64 at offset 1<<32'],
  ['pread-epollfd', 'pread64 on the epoll fd'],
  ['pread-timerfd', 'pread64 on the timer fd'],
  ['pread-stdin', 'pread64 on fd 0'],
  ['pread-next-fd', 'pread64 on the disk fd + 1'],
  ['pread-fd-high-bits', 'pread64 on the disk fd|1<<32'],
  ['pwrite-short', 'pwrite64 of block_size - 1 bytes'],
  ['pwrite-two-blocks', 'pwrite64 of two blocks'],
  ['pwrite-at-capacity', 'pwrite64 at offset == capacity'],
  ['pwrite-past-last-block', 'pwrite64 at capacity - block_size + 1'],
  ['pwrite-negative-offset', 'pwrite64 at offset -block_size'],
  ['pwrite-stdout', 'pwrite64 on fd 1'],
  ['pwrite-epollfd', 'pwrite64 on the epoll fd'],
  ['pwrite-fd-high-bits', 'pwrite64 on the disk fd|1<<32'],
  ['read-blkfd', 'read(2) on the disk fd'],
  ['write-blkfd', 'write(2) on the disk fd'],
] as const) {
  test(`block device: ${what} → SIGSYS, disk unchanged`, async (t) => {
    const disk = join(scratchDir(), `${mode}.img`);
    writeFileSync(disk, Buffer.alloc(64 << 10, 0x5a));
    const before = sha(disk);
    const r = await run('hostile_blk', [mode], [`--block:storage=${disk}`]);
    t.regex(r.stdout, /OK control\n/, 'legal whole-block I/O on the manifest fd works (control)');
    contained(t, r, mode, SIGSYS);
    // The control rewrites the last block with block 0's bytes: the image is as it was.
    t.is(sha(disk), before);
  });
}

// --- 5. The address space ---------------------------------------------------

for (const [mode, status, what] of [
  ['mmap', SIGSYS, 'mmap a new RWX page'],
  ['mprotect-text-rw', SIGSYS, 'mprotect .text to RW, then write it'],
  ['munmap-text', SIGSYS, 'munmap .text'],
  ['mremap-text', SIGSYS, 'mremap .text'],
  ['exec-data', SIGSEGV, 'write code into .data and jump there'],
  ['exec-heap', SIGSEGV, 'write code into the heap and jump there'],
  ['exec-stack', SIGSEGV, 'write code onto the stack and jump there'],
  ['exec-lowmem', SIGSEGV, 'write code into low memory (boot info area) and jump there'],
  ['write-text', SIGSEGV, 'write to .text'],
  ['write-rodata', SIGSEGV, 'write to .rodata'],
  ['read-stub', SIGSEGV, "read the stub's former image at 0x7e0000000000 (unmapped before the guest runs)"],
  ['exec-stub', SIGSEGV, "jump into the stub's former image"],
  ['write-trampoline', SIGSEGV, 'write to the launch trampoline page (R+X)'],
  ['exec-trampoline', SIGSYS, 'call the launch trampoline from its start: its munmap is refused by the filter'],
  ['read-null', SIGSEGV, 'read address 0'],
  ['read-zeropage-end', SIGSEGV, 'read just below 0x10000 (never mapped)'],
  ['read-past-mem', SIGSEGV, 'read at mem_size'],
  ['write-past-mem', SIGSEGV, 'write above mem_size'],
  ['read-kernel', SIGSEGV, 'read a kernel address'],
  ['open-file', SIGSYS, 'open("/etc/passwd")'],
  ['openat-file', SIGSYS, 'openat(AT_FDCWD, "/etc/passwd")'],
] as const) {
  test(`memory: ${what} → ${status === SIGSYS ? 'SIGSYS' : 'SIGSEGV'}`, async (t) => {
    contained(t, await run('hostile_mem', [mode]), mode, status);
  });
}

test('an unknown mode is reported, not mistaken for containment', async (t) => {
  const r = await run('hostile_mem', ['no-such-mode']);
  t.is(r.status, 2);
  t.regex(r.stdout, /UNKNOWN MODE 'no-such-mode'/);
});
