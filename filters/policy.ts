// The guest's syscall allowlist as data (abi.md §7). A policy is built from the
// tender's own fds plus one contribution per attached device, then compiled
// in one place (compile.ts). Nothing here knows about CLI options: callers
// say which fds mean what.

/** x86_64 syscall numbers the guest bindings use (abi.md §8). */
export const SYS = {
  read: 0,
  write: 1,
  pread64: 17,
  pwrite64: 18,
  arch_prctl: 158,
  clock_gettime: 228,
  exit_group: 231,
  epoll_pwait: 281,
  timerfd_settime: 286,
} as const;

export type SyscallName = keyof typeof SYS;

export const ARCH_SET_FS = 0x1002;
export const CLOCK_REALTIME = 0;
export const CLOCK_MONOTONIC = 1;

/** Comparison operators, with libseccomp's numbering (enum scmp_compare). */
export enum Cmp {
  NE = 1,
  LT = 2,
  LE = 3,
  EQ = 4,
  GE = 5,
  GT = 6,
}

export interface ArgCondition {
  /** Argument index 0..5. */
  arg: number;
  op: Cmp;
  /** Full 64-bit value: the filter compares both 32-bit halves. */
  value: bigint;
}

export interface Rule {
  syscall: SyscallName;
  /** All must hold (AND). An empty list allows every call. */
  when: ArgCondition[];
  /** Who asked for it, for `tendril filter` (e.g. "core", "net:service0"). */
  origin: string;
  /** Why the guest needs it, in a few words. */
  purpose: string;
}

export interface Policy {
  rules: Rule[];
}

const eq = (arg: number, value: number | bigint): ArgCondition => ({ arg, op: Cmp.EQ, value: BigInt(value) });

/** The core rules every guest gets (abi.md §7, "core"). */
export function corePolicy(fds: { epollfd: number; timerfd: number }): Rule[] {
  const core = (syscall: SyscallName, when: ArgCondition[], purpose: string): Rule => ({ syscall, when, origin: 'core', purpose });
  return [
    core('write', [eq(0, 1)], 'console output (stdout only)'),
    core('exit_group', [], 'solo5_exit, solo5_abort'),
    core('epoll_pwait', [eq(0, fds.epollfd)], 'solo5_yield: wait on the tender epoll set'),
    core('timerfd_settime', [eq(0, fds.timerfd)], 'solo5_yield: arm the deadline timer'),
    core('clock_gettime', [eq(0, CLOCK_MONOTONIC)], 'solo5_clock_monotonic'),
    core('clock_gettime', [eq(0, CLOCK_REALTIME)], 'solo5_clock_wall'),
    core('arch_prctl', [eq(0, ARCH_SET_FS)], 'boot and solo5_set_tls_base'),
  ];
}

/** Rules for one attached tap (abi.md §7, "net"). */
export function netPolicy(name: string, fd: number): Rule[] {
  const origin = `net:${name}`;
  return [
    { syscall: 'read', when: [eq(0, fd)], origin, purpose: 'solo5_net_read' },
    { syscall: 'write', when: [eq(0, fd)], origin, purpose: 'solo5_net_write' },
  ];
}

/**
 * Rules for one attached disk (abi.md §7, "block"): whole blocks only, and never
 * past the last block. Alignment is left to the bindings, like the reference.
 * A read-only disk still gets its pwrite64 rule: without it a guest write would
 * die by SIGSYS instead of failing with EUNSPEC, which breaks the API contract.
 * Read-only is enforced by the kernel instead: the file is open O_RDONLY, so
 * the write fails with EBADF.
 */
export function blockPolicy(name: string, fd: number, blockSize: number, capacity: bigint, readOnly = false): Rule[] {
  const origin = `block:${name}`;
  const when = [eq(0, fd), eq(2, blockSize), { arg: 3, op: Cmp.LE, value: capacity - BigInt(blockSize) }];
  return [
    { syscall: 'pread64', when, origin, purpose: 'solo5_block_read' },
    {
      syscall: 'pwrite64', when, origin,
      purpose: readOnly ? 'solo5_block_write: the disk is open read-only, so the kernel refuses every write (EBADF: the guest gets SOLO5_R_EUNSPEC)'
        : 'solo5_block_write',
    },
  ];
}
