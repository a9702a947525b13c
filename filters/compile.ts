// The one place a Policy becomes a seccomp program.

import { SeccompContext } from './libseccomp.js';
import { SYS, type Policy } from './policy.js';

export interface CompiledFilter {
  /** struct sock_filter[] as the kernel takes it. */
  bpf: Buffer;
  instructions: number;
}

function build(policy: Policy): SeccompContext {
  const ctx = new SeccompContext();
  try {
    for (const r of policy.rules) ctx.allow(SYS[r.syscall], r.when, `${r.syscall} for ${r.origin}`);
  } catch (e) {
    ctx.release();
    throw e;
  }
  return ctx;
}

export function compilePolicy(policy: Policy): CompiledFilter {
  const ctx = build(policy);
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
export function compilePolicyCached(policy: Policy): CompiledFilter {
  const key = JSON.stringify(policy.rules.map((r) => [r.syscall, r.when.map((c) => [c.arg, c.op, c.value.toString()])]));
  let hit = cache.get(key);
  if (!hit) {
    hit = compilePolicy(policy);
    if (cache.size >= CACHE_LIMIT) cache.delete(cache.keys().next().value!);
    cache.set(key, hit);
  }
  return hit;
}
