// The one place a Policy becomes a seccomp program.

import { SCMP_ACT_ALLOW, SCMP_ACT_TRACE, SeccompContext } from './libseccomp.js';
import { SYS, type Policy, type Rule } from './policy.js';

export interface CompiledFilter {
  /** struct sock_filter[] as the kernel takes it. */
  bpf: Buffer;
  instructions: number;
}

/**
 * What an allowed call does: `run`, it proceeds; `traced` (record and
 * replay, docs/record-replay.md), it stops in the guest's ptrace monitor,
 * which answers it. The argument conditions are the same in both, so a call
 * the filter refuses is killed exactly as in a live run. exit_group needs
 * no answer (the monitor sees the exit) and stays ALLOW.
 */
export type FilterMode = 'run' | 'traced';

function action(r: Rule, mode: FilterMode): number {
  return mode === 'traced' && r.syscall !== 'exit_group' ? SCMP_ACT_TRACE : SCMP_ACT_ALLOW;
}

function build(policy: Policy, mode: FilterMode = 'run'): SeccompContext {
  const ctx = new SeccompContext();
  try {
    for (const r of policy.rules) ctx.allow(SYS[r.syscall], r.when, `${r.syscall} for ${r.origin}`, action(r, mode));
  } catch (e) {
    ctx.release();
    throw e;
  }
  return ctx;
}

export function compilePolicy(policy: Policy, mode: FilterMode = 'run'): CompiledFilter {
  const ctx = build(policy, mode);
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
export function compilePolicyCached(policy: Policy, mode: FilterMode = 'run'): CompiledFilter {
  const key = JSON.stringify([mode, policy.rules.map((r) => [r.syscall, r.when.map((c) => [c.arg, c.op, c.value.toString()])])]);
  let hit = cache.get(key);
  if (!hit) {
    hit = compilePolicy(policy, mode);
    if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
    cache.set(key, hit);
  }
  return hit;
}
