// `tendril replay --info FILE`: what a recording holds — the guest, its
// arguments and devices, the CPU, the events by kind, the duration and the
// outcome — as text or JSON.

import { REC_CPUID, REC_END, REC_ENDF } from '../../loader/formats.js';
import { signalName, type Recording } from '../../loader/recording.js';
import { recordedEnd } from './verdict.js';

const hex = (v: bigint | number) => `0x${v.toString(16)}`;

export function recordingInfo(rec: Recording): Record<string, unknown> {
  const t = rec.trailer;
  const cpu = rec.cpu;
  const outcome = t.end === REC_END.EXITED ? { exited: t.status }
    : t.end === REC_END.SIGNALED ? {
      signal: signalName(t.status), status: 128 + t.status,
      ...(t.flags & REC_ENDF.FAULT ? { faultAddress: hex(t.fault_addr), faultCode: t.fault_code } : {}),
      ...(t.flags & REC_ENDF.REGS ? { ip: hex(t.regs.readBigUInt64LE(128)) } : {}),
      ...(t.flags & REC_ENDF.IN_SYSCALL ? { inSyscall: true } : {}),
    } : { notStarted: true };
  return {
    file: rec.file,
    format: rec.header.version,
    bytes: rec.size,
    tendril: rec.meta.tendril,
    created: rec.meta.created,
    host: rec.meta.host,
    guest: { ...rec.meta.guest, entry: hex(rec.header.entry_rip), memMiB: Number(rec.header.mem_size >> 20n) },
    cmdline: rec.meta.cmdline,
    devices: rec.meta.devices,
    cpu: {
      brand: cpu.brand.toString('latin1').replace(/\0.*$/s, '').trim(),
      vendor: cpu.vendor.toString('latin1'),
      signature: hex(cpu.signature),
      cpuid: cpu.mode === REC_CPUID.FAULTED ? 'faulted: answered from the recording (rdrand, rdseed, rdpid, TSX hidden)'
        : 'native (this CPU has no cpuid faulting): replays only on an identical CPU',
    },
    events: {
      total: Number(t.events), syscalls: Number(t.syscalls), tscReads: Number(t.tsc_reads), cpuids: Number(t.cpuids), signals: Number(t.signals),
      byName: rec.counts.byName, writes: rec.counts.writes,
    },
    durationMs: Number(t.duration_ns) / 1e6,
    outcome,
  };
}

export function infoText(rec: Recording): string {
  const i = recordingInfo(rec) as {
    guest: { name: string; sha256: string; size: number; entry: string; memMiB: number };
    cpu: { brand: string; vendor: string; signature: string; cpuid: string };
    events: { total: number; byName: Record<string, number> };
    durationMs: number;
  };
  const devs = rec.meta.devices.map((d) => (d.kind === 'net'
    ? `${d.name}: net, handle ${d.handle}, fd ${d.fd}, MAC ${d.mac}, MTU ${d.mtu}${d.source ? `, was ${d.source}` : ''}`
    : `${d.name}: block, handle ${d.handle}, fd ${d.fd}, ${d.capacity} bytes in ${d.blockSize}-byte blocks${d.readOnly ? ', read-only' : ''}${d.source ? `, was ${d.source}` : ''}`));
  const kinds = Object.entries(i.events.byName).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
  return [
    `recording: ${rec.file} (format ${rec.header.version}, ${rec.size} bytes, made by tendril ${rec.meta.tendril} on ${rec.meta.host} at ${rec.meta.created})`,
    `guest:     ${i.guest.name} (${i.guest.size} bytes, sha256 ${i.guest.sha256}), entry ${i.guest.entry}, ${i.guest.memMiB} MiB`,
    `arguments: ${JSON.stringify(rec.meta.cmdline)}`,
    `devices:   ${devs.length ? devs.join('; ') : 'none'}`,
    `cpu:       ${i.cpu.brand || i.cpu.vendor} (${i.cpu.vendor}, signature ${i.cpu.signature}); cpuid ${i.cpu.cpuid}`,
    `events:    ${i.events.total}${kinds ? `: ${kinds}` : ''}`,
    `duration:  ${(i.durationMs / 1000).toFixed(3)} s`,
    `outcome:   ${recordedEnd(rec)}${rec.trailer.flags & REC_ENDF.FAULT ? ` (fault address ${hex(rec.trailer.fault_addr)})` : ''}`,
  ].join('\n');
}
