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
