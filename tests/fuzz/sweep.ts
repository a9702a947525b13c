// The system call sweep of the hostile tests: one guest launch per x86_64
// syscall number (hostile_syscall.c), each expected to die on its first call.
// Shared by tests/hostile.test.ts (a fixed sample, in `npm test`) and
// tests/hostile-sweep.test.ts (every number 0–600, `npm run test:security`).

import { release } from 'node:os';
import { guest, Pool } from '../helpers.js';
import { launchTendril, type WatchedResult } from './launch.js';

export const SYS_EXIT_GROUP = 231;
export const SYS_URETPROBE = 335;
export const SYS_UPROBE = 336;
const ENXIO = 6;

/** Every number of the full sweep: 0–600 except exit_group, the one call allowed with any argument. */
export const ALL_NUMBERS = Array.from({ length: 601 }, (_, i) => i).filter((n) => n !== SYS_EXIT_GROUP);

/**
 * The `npm test` sample: the calls a sandbox escape would need (memory, processes,
 * files, sockets, namespaces, tracing, BPF, io_uring…), the guest's own calls
 * (killed here for their forbidden arguments), the two seccomp pass-through calls,
 * and unassigned numbers.
 */
export const SAMPLE: Record<number, string> = {
  0: 'read', 1: 'write', 2: 'open', 3: 'close', 9: 'mmap', 10: 'mprotect', 11: 'munmap', 12: 'brk', 13: 'rt_sigaction',
  15: 'rt_sigreturn', 16: 'ioctl', 17: 'pread64', 18: 'pwrite64', 19: 'readv', 20: 'writev', 25: 'mremap', 28: 'madvise',
  32: 'dup', 33: 'dup2', 39: 'getpid', 40: 'sendfile', 41: 'socket', 42: 'connect', 49: 'bind', 56: 'clone', 57: 'fork',
  58: 'vfork', 59: 'execve', 60: 'exit', 62: 'kill', 72: 'fcntl', 101: 'ptrace', 105: 'setuid', 135: 'personality',
  157: 'prctl', 158: 'arch_prctl', 161: 'chroot', 165: 'mount', 200: 'tkill', 202: 'futex', 217: 'getdents64',
  228: 'clock_gettime', 230: 'clock_nanosleep', 234: 'tgkill', 257: 'openat', 272: 'unshare', 281: 'epoll_pwait',
  286: 'timerfd_settime', 295: 'preadv', 296: 'pwritev', 298: 'perf_event_open', 308: 'setns', 310: 'process_vm_readv',
  311: 'process_vm_writev', 317: 'seccomp', 319: 'memfd_create', 321: 'bpf', 322: 'execveat', 323: 'userfaultfd',
  326: 'copy_file_range', 334: 'rseq', 335: 'uretprobe', 336: 'uprobe', 337: '(unassigned)', 425: 'io_uring_setup',
  426: 'io_uring_enter', 434: 'pidfd_open', 435: 'clone3', 437: 'openat2', 438: 'pidfd_getfd', 440: 'process_madvise',
  447: 'memfd_secret', 462: 'mseal', 500: '(unassigned)', 600: '(unassigned)',
};

/** [major, minor] of the running kernel. */
export function kernelVersion(): [number, number] {
  const m = /^(\d+)\.(\d+)/.exec(release());
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

const atLeast = (major: number, minor: number) => {
  const [a, b] = kernelVersion();
  return a > major || (a === major && b >= minor);
};

/**
 * What a launch of `hostile_syscall N` must show.
 *
 * Every number but two is decided by the filter: SIGSYS (159) on the first
 * call. Linux 6.18 (the kernel these tests were written on) lets two calls
 * through seccomp without running the filter at all (kernel/seccomp.c,
 * seccomp_uprobe_exception), because only the kernel's own uprobe
 * trampolines may make them and the kernel checks that itself:
 *   - uretprobe (335): not called from the uretprobe trampoline, so the
 *     kernel sends SIGILL and the guest dies with status 132;
 *   - uprobe (336): not called from a uprobe trampoline, so it returns
 *     -ENXIO without doing anything; the guest then makes a forbidden
 *     getpid, which kills it (159): the filter is still in force.
 * Older kernels have no pass-through (or no such calls): the filter kills
 * both like any other number.
 */
export interface Expectation {
  status: number;
  /** Lines stdout must contain. */
  lines: string[];
  why: string;
}

export function expectationFor(nr: number): Expectation[] {
  const killed: Expectation = { status: 159, lines: [`ATTEMPT syscall ${nr}\n`], why: 'killed by the filter (SIGSYS)' };
  if (nr === SYS_URETPROBE) {
    const passThrough: Expectation = {
      status: 132, lines: [`ATTEMPT syscall ${nr}\n`],
      why: 'seccomp pass-through; the kernel raises SIGILL because the call does not come from the uretprobe trampoline',
    };
    return atLeast(6, 18) ? [passThrough] : [killed, passThrough];
  }
  if (nr === SYS_UPROBE) {
    const passThrough: Expectation = {
      status: 159, lines: [`ATTEMPT syscall ${nr}\n`, `RETURNED syscall ${nr} = -${ENXIO}\n`, 'ATTEMPT follow-up getpid\n'],
      why: 'seccomp pass-through; returns -ENXIO outside a uprobe trampoline, then the follow-up getpid is killed (SIGSYS)',
    };
    return atLeast(6, 18) ? [passThrough] : [killed, passThrough];
  }
  return [killed];
}

export interface SweepOutcome {
  nr: number;
  result: WatchedResult;
  /** The expectation it met, or undefined. */
  met?: Expectation;
}

export function check(nr: number, r: WatchedResult): SweepOutcome {
  const ok = (e: Expectation) => r.status === e.status && !r.timedOut && r.stderr === '' && !r.stdout.includes('ESCAPED') &&
    e.lines.every((l) => r.stdout.includes(l)) && (e.lines.some((l) => l.startsWith('RETURNED')) || !r.stdout.includes('RETURNED'));
  return { nr, result: r, met: expectationFor(nr).find(ok) };
}

/** Launches hostile_syscall once per number, `concurrency` at a time. */
export function sweep(numbers: number[], concurrency = 2): Promise<SweepOutcome[]> {
  const pool = new Pool(concurrency);
  return Promise.all(numbers.map((nr) => pool.run(async () =>
    check(nr, await launchTendril(['run', '--mem=2', guest('hostile_syscall'), '--solo5:quiet', String(nr)], { timeoutMs: 30_000 })))));
}

/** "598 × SIGSYS (159); 335 → 132 (…); …" for the test log and the report. */
export function describeOutcomes(outcomes: SweepOutcome[]): string {
  const by = new Map<string, number[]>();
  for (const o of outcomes) {
    const k = o.met ? `status ${o.result.status}: ${o.met.why}` : `UNEXPECTED status ${o.result.status}`;
    by.set(k, [...(by.get(k) ?? []), o.nr]);
  }
  return [...by.entries()].map(([k, nrs]) => `${nrs.length} number(s) → ${k}${nrs.length <= 4 ? ` [${nrs.join(', ')}]` : ''}`).join('\n');
}
