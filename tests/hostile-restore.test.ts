// The hostile suite (tests/hostile.test.ts) on the restore path: each
// hostile guest, given a leading "yield-first", blocks once in solo5_yield()
// before its attack; `tendril snapshot create` stops it there, and the
// attack runs in the guest `tendril run --restore` continues. A restored
// guest must be contained exactly as a fresh one: the same marker, the same
// death (SIGSYS 159 or SIGSEGV 139), nothing escaped, the disk untouched.

import test, { type ExecutionContext } from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { guest, Pool, withTempDir } from './helpers.js';
import { launchTendril, type WatchedResult } from './fuzz/launch.js';

const SIGSYS = 159;
const SIGSEGV = 139;
const pool = new Pool(2);
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

function contained(t: ExecutionContext, r: WatchedResult, marker: string, status: number): void {
  const seen = `status ${r.status}; stdout ${JSON.stringify(r.stdout)}; stderr ${JSON.stringify(r.stderr)}`;
  t.regex(r.stdout, /^RESUMED after yield\n/, `the restored guest went on from the yield, with no second boot: ${seen}`);
  t.true(r.stdout.includes(`ATTEMPT ${marker}\n`), `marker missing: ${seen}`);
  t.false(r.stdout.includes('ESCAPED'), seen);
  t.is(r.status, status, seen);
  t.is(r.stderr, '', `tendril said something: ${seen}`);
}

const CASES: [name: string, mode: string, marker: string, status: number, what: string][] = [
  ['hostile_syscall', '32', 'syscall 32', SIGSYS, 'dup'],
  ['hostile_syscall', '9', 'syscall 9', SIGSYS, 'mmap'],
  ['hostile_syscall', '57', 'syscall 57', SIGSYS, 'fork'],
  ['hostile_syscall', '59', 'syscall 59', SIGSYS, 'execve'],
  ['hostile_syscall', '101', 'syscall 101', SIGSYS, 'ptrace'],
  ['hostile_abi', 'x32-write', 'x32-write', SIGSYS, 'x32 write(1)'],
  ['hostile_abi', 'int80-write', 'int80-write', SIGSYS, 'i386 write(1) through int $0x80'],
  ['hostile_args', 'write-fd2', 'write-fd2', SIGSYS, 'write to fd 2'],
  ['hostile_args', 'arch_prctl-set-gs', 'arch_prctl-set-gs', SIGSYS, 'arch_prctl(ARCH_SET_GS), which only the stub may use before the filter'],
  ['hostile_args', 'epoll_pwait-timerfd', 'epoll_pwait-timerfd', SIGSYS, 'epoll_pwait on the timer fd'],
  ['hostile_args', 'timerfd_settime-epollfd', 'timerfd_settime-epollfd', SIGSYS, 'timerfd_settime on the epoll fd'],
  ['hostile_args', 'clock-boottime', 'clock-boottime', SIGSYS, 'clock_gettime(CLOCK_BOOTTIME)'],
  ['hostile_mem', 'mmap', 'mmap', SIGSYS, 'mmap a new RWX page'],
  ['hostile_mem', 'mprotect-text-rw', 'mprotect-text-rw', SIGSYS, 'mprotect .text to RW'],
  ['hostile_mem', 'exec-heap', 'exec-heap', SIGSEGV, 'write code into the heap and jump there'],
  ['hostile_mem', 'exec-data', 'exec-data', SIGSEGV, 'write code into .data and jump there'],
  ['hostile_mem', 'write-text', 'write-text', SIGSEGV, 'write to .text'],
  ['hostile_mem', 'write-rodata', 'write-rodata', SIGSEGV, 'write to .rodata'],
  ['hostile_mem', 'read-stub', 'read-stub', SIGSEGV, "read the stub's former image"],
  ['hostile_mem', 'write-trampoline', 'write-trampoline', SIGSEGV, 'write to the restore trampoline page (R+X, holds the restored registers)'],
  ['hostile_mem', 'exec-trampoline', 'exec-trampoline', SIGSYS, 'call the restore trampoline from its start: its munmap is refused'],
  ['hostile_mem', 'read-past-mem', 'read-past-mem', SIGSEGV, 'read at mem_size'],
  ['hostile_mem', 'open-file', 'open-file', SIGSYS, 'open("/etc/passwd")'],
];

for (const [name, mode, marker, status, what] of CASES) {
  test(`restored ${name}: ${what} → ${status === SIGSYS ? 'SIGSYS' : 'SIGSEGV'}, as fresh`, async (t) => {
    await withTempDir(async (dir) => {
      const snap = join(dir, 'snap');
      const c = await pool.run(() => launchTendril(['snapshot', 'create', '-o', snap, '--mem=2', guest(name), '--solo5:quiet', 'yield-first', mode],
        { timeoutMs: 30_000 }));
      t.is(c.status, 0, c.stdout + c.stderr);
      t.false(c.stdout.includes('ATTEMPT'), 'stopped at the yield, before the attack');
      contained(t, await pool.run(() => launchTendril(['run', `--restore=${snap}`], { timeoutMs: 30_000 })), marker, status);
    });
  });
}

for (const mode of ['pread-past-last-block', 'pwrite-at-capacity', 'pwrite-two-blocks']) {
  test(`restored hostile_blk: ${mode} → SIGSYS, as fresh; the restored guest's disk unchanged`, async (t) => {
    await withTempDir(async (dir) => {
      const boot = join(dir, 'boot.img');
      const disk = join(dir, 'disk.img');
      writeFileSync(boot, Buffer.alloc(64 << 10, 0x5a));
      writeFileSync(disk, Buffer.alloc(64 << 10, 0x5a));
      const before = sha(disk);
      const snap = join(dir, 'snap');
      const c = await pool.run(() => launchTendril(['snapshot', 'create', '-o', snap, '--mem=2', `--block:storage=${boot}`, guest('hostile_blk'),
        '--solo5:quiet', 'yield-first', mode], { timeoutMs: 30_000 }));
      t.is(c.status, 0, c.stdout + c.stderr);
      const r = await pool.run(() => launchTendril(['run', `--restore=${snap}`, `--block:storage=${disk}`], { timeoutMs: 30_000 }));
      t.regex(r.stdout, /OK control\n/, 'legal whole-block I/O on the restored guest\'s disk works (control)');
      contained(t, r, mode, SIGSYS);
      t.is(sha(disk), before);
    });
  });
}

test('a restored guest killed by the filter under --supervise gets the same reason line as a fresh one', async (t) => {
  await withTempDir(async (dir) => {
    const snap = join(dir, 'snap');
    const c = await pool.run(() => launchTendril(['snapshot', 'create', '-o', snap, '--mem=2', guest('hostile_syscall'), '--solo5:quiet', 'yield-first', '32'],
      { timeoutMs: 30_000 }));
    t.is(c.status, 0, c.stdout + c.stderr);
    const fresh = await pool.run(() => launchTendril(['run', '--supervise', '--mem=2', guest('hostile_syscall'), '--solo5:quiet', '32'], { timeoutMs: 30_000 }));
    const restored = await pool.run(() => launchTendril(['run', '--supervise', `--restore=${snap}`], { timeoutMs: 30_000 }));
    t.is(restored.status, SIGSYS);
    t.regex(restored.stderr, /^tendril: guest made a forbidden system call: dup \(32\) at 0x[0-9a-f]+; the sandbox killed it \(SIGSYS\)\n$/);
    t.is(restored.stderr, fresh.stderr, 'the same code at the same address makes the same call');
  });
});
