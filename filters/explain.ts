// Explaining a policy to an operator: a table of what the guest may call and
// under which argument conditions, and a readable listing of the BPF program
// the kernel will run (classic BPF over struct seccomp_data).

import { Cmp, SYS, type Policy } from './policy.js';

const OPS: Record<Cmp, string> = { [Cmp.NE]: '!=', [Cmp.LT]: '<', [Cmp.LE]: '<=', [Cmp.EQ]: '==', [Cmp.GE]: '>=', [Cmp.GT]: '>' };

export interface PolicyRow {
  syscall: string;
  nr: number;
  condition: string;
  origin: string;
  purpose: string;
}

export function policyRows(policy: Policy): PolicyRow[] {
  return policy.rules.map((r) => ({
    syscall: r.syscall,
    nr: SYS[r.syscall],
    condition: r.when.length
      ? r.when.map((c) => `arg${c.arg} ${OPS[c.op]} ${c.value >= 0x1000n ? `0x${c.value.toString(16)}` : c.value}`).join(' && ')
      : 'any arguments',
    origin: r.origin,
    purpose: r.purpose,
  }));
}

export function allowedSyscalls(policy: Policy): string[] {
  return [...new Set(policy.rules.map((r) => r.syscall))].sort((a, b) => SYS[a as keyof typeof SYS] - SYS[b as keyof typeof SYS]);
}

export function formatPolicyTable(policy: Policy): string {
  const rows = policyRows(policy).map((r) => [`${r.syscall} (${r.nr})`, r.condition, r.origin, r.purpose]);
  const head = ['syscall', 'allowed when', 'added by', 'used for'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Names of the struct seccomp_data fields a BPF load can read. */
function field(k: number): string {
  if (k === 0) return 'nr';
  if (k === 4) return 'arch';
  if (k === 8) return 'ip.lo';
  if (k === 12) return 'ip.hi';
  if (k >= 16 && k < 64) return `arg${Math.floor((k - 16) / 8)}.${(k - 16) % 8 ? 'hi' : 'lo'}`;
  return `[${k}]`;
}

const RET: Record<number, string> = {
  0x80000000: 'KILL_PROCESS',
  0x00000000: 'KILL_THREAD',
  0x7fff0000: 'ALLOW',
  0x7ffc0000: 'LOG',
  0x00030000: 'TRAP',
};

/** One line per instruction: index, raw fields, meaning. */
export function disassemble(bpf: Buffer): string[] {
  const out: string[] = [];
  for (let i = 0; i < bpf.length / 8; i++) {
    const code = bpf.readUInt16LE(i * 8);
    const jt = bpf[i * 8 + 2];
    const jf = bpf[i * 8 + 3];
    const k = bpf.readUInt32LE(i * 8 + 4);
    const hex = `0x${k.toString(16).padStart(8, '0')}`;
    const to = (off: number) => String(i + 1 + off).padStart(4, '0');
    let text: string;
    switch (code) {
      case 0x20: text = `ld  ${field(k)}`; break;
      case 0x15: text = `jeq ${hex}  true:${to(jt)} false:${to(jf)}`; break;
      case 0x25: text = `jgt ${hex}  true:${to(jt)} false:${to(jf)}`; break;
      case 0x35: text = `jge ${hex}  true:${to(jt)} false:${to(jf)}`; break;
      case 0x45: text = `jset ${hex} true:${to(jt)} false:${to(jf)}`; break;
      case 0x05: text = `ja  ${to(k)}`; break;
      case 0x54: text = `and ${hex}`; break;
      case 0x06: text = `ret ${RET[k >>> 0] ?? hex}`; break;
      default: text = `op 0x${code.toString(16)} k=${hex}`;
    }
    out.push(`${String(i).padStart(4, '0')}: ${code.toString(16).padStart(4, '0')} ${String(jt).padStart(2)} ${String(jf).padStart(2)} ${hex}  ${text}`);
  }
  return out;
}
