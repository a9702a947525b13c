// The one place a Policy becomes a seccomp program.

import { SCMP_ACT_ALLOW, SCMP_ACT_TRACE, SeccompContext } from './libseccomp.js';
import { SYS, type Policy, type SyscallName } from './policy.js';

export interface CompiledFilter {
  /** struct sock_filter[] as the kernel takes it. */
  bpf: Buffer;
  instructions: number;
}

export interface CompileOptions {
  /**
   * Allowed calls that stop for the guest's ptrace monitor before they run
   * (SECCOMP_RET_TRACE) instead of just running: snapshot creation watches
   * the yields (['epoll_pwait', 'timerfd_settime']); record and replay
   * ('all', docs/record-replay.md) answer every call but exit_group, whose
   * end the monitor sees anyway. The rules, and so what is allowed and what
   * is killed, stay exactly the same.
   */
  trace?: SyscallName[] | 'all';
}

/** The compile options of record and replay. */
export const TRACE_ALL: CompileOptions = { trace: 'all' };

function traces(opts: CompileOptions, name: SyscallName): boolean {
  return opts.trace === 'all' ? name !== 'exit_group' : (opts.trace ?? []).includes(name);
}

function build(policy: Policy, opts: CompileOptions = {}): SeccompContext {
  const ctx = new SeccompContext();
  try {
    for (const r of policy.rules) {
      ctx.allow(SYS[r.syscall], r.when, `${r.syscall} for ${r.origin}`, traces(opts, r.syscall) ? SCMP_ACT_TRACE(SYS[r.syscall]) : SCMP_ACT_ALLOW);
    }
  } catch (e) {
    ctx.release();
    throw e;
  }
  return ctx;
}

export function compilePolicy(policy: Policy, opts: CompileOptions = {}): CompiledFilter {
  const ctx = build(policy, opts);
  try {
    const bpf = ctx.exportBpf();
    return { bpf, instructions: bpf.length / 8 };
  } finally {
    ctx.release();
  }
}

/** libseccomp's pseudo-filter-code listing of the same program. */
export function policyPfc(policy: Policy): string {
  const ctx = build(policy);
  try {
    return ctx.exportPfc();
  } finally {
    ctx.release();
  }
}

const cache = new Map<string, CompiledFilter>();
const CACHE_LIMIT = 256;

/**
 * compilePolicy with memory: a warm supervisor launching the same image with
 * the same fd layout compiles its filter once (~0.1 ms saved per launch).
 */
export function compilePolicyCached(policy: Policy, opts: CompileOptions = {}): CompiledFilter {
  const key = JSON.stringify([opts.trace ?? [], policy.rules.map((r) => [r.syscall, r.when.map((c) => [c.arg, c.op, c.value.toString()])])]);
  let hit = cache.get(key);
  if (!hit) {
    hit = compilePolicy(policy, opts);
    if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
    cache.set(key, hit);
  }
  return hit;
}
