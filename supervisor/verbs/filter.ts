// `tendril filter [run options] GUEST`: what the guest would be allowed to do.
// It goes through the same preparation as `run` (image, devices, fds,
// compilation) and prints the result instead of launching, so what it shows
// is the filter `run` installs.

import { allowedSyscalls, disassemble, formatPolicyTable } from '../../filters/explain.js';
import { policyPfc } from '../../filters/compile.js';
import { GUEST_FD } from '../../loader/formats.js';
import { deviceFd } from '../../loader/plan.js';
import { compileLaunch, prepareLaunch, releaseLaunch } from '../launch.js';
import { parseRunArgs, runUsage } from '../options.js';
import { planJail, summaryLines } from '../isolate/jail.js';

export function filterVerb(argv: string[]): number {
  // --bpf is ours; the rest is `run`'s syntax.
  const guestAt = argv.findIndex((a) => !a.startsWith('-') || a === '--');
  const opts = guestAt < 0 ? argv : argv.slice(0, guestAt);
  const bpfListing = opts.includes('--bpf');
  const parsed = parseRunArgs(argv.filter((a, i) => !(a === '--bpf' && (guestAt < 0 || i < guestAt))));
  if (parsed.kind !== 'run') {
    process.stdout.write(`${runUsage('tendril filter [--bpf]').replace(/^usage: (.*)$/m, 'usage: $1\nShow the syscall filter `tendril run` would install for GUEST with these options.')}\n`);
    return parsed.kind === 'help' ? 0 : 1;
  }
  const p = prepareLaunch(parsed.options);
  try {
    const c = compileLaunch(p);
    const out: string[] = [];
    out.push(`guest: ${p.image.file} (spt ABI ${p.image.abi.version}), memory ${parsed.options.memMiB} MiB`);
    for (const d of p.devices) out.push(`device: ${d.summary}`);
    out.push(`guest fds: epoll set ${GUEST_FD.EPOLL}, timerfd ${GUEST_FD.TIMER}${p.devices.map((d, i) => `, ${d.name} ${deviceFd(i)}`).join('')}`);
    const iso = parsed.options.isolate;
    const jail = planJail(iso ?? { strict: false }, parsed.options.memMiB);
    out.push(`isolation: ${iso ? 'with these --isolate options' : 'what --isolate would add'} on this host, beneath the filter` +
      `${jail.missing.length ? ` (${jail.missing.length} missing; --isolate=strict would refuse)` : ''}:`);
    out.push(...summaryLines(jail));
    out.push('');
    out.push(formatPolicyTable(c.policy));
    out.push('');
    const calls = allowedSyscalls(c.policy);
    out.push(`${calls.length} system calls allowed (${calls.join(', ')}) by ${c.policy.rules.length} rules; ` +
      `everything else, and any non-x86_64 call, kills the process (SIGSYS)`);
    out.push(`${c.filter.instructions} BPF instructions`);
    out.push('');
    out.push('libseccomp pseudo filter code:');
    out.push(policyPfc(c.policy).trimEnd());
    if (bpfListing) {
      out.push('');
      out.push('BPF program (index: code jt jf k  meaning):');
      out.push(...disassemble(c.filter.bpf));
    }
    process.stdout.write(`${out.join('\n')}\n`);
    return 0;
  } finally {
    releaseLaunch(p);
  }
}
