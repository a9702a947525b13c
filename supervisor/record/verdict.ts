// The replayer's verdict (ReplayStatus from native/stub/replay.c) as the
// one line a person reads: where the guest departed from its recording,
// what it did and what the recording has; why a CPU cannot replay it.

import { REC_END, REC_ENDF, REC_EV, REPLAY_WHY, type RecCpu, type Values } from '../../loader/formats.js';
import { decodeStruct, RecCpu as RecCpuDef } from '../../loader/formats.js';
import type { Recording } from '../../loader/recording.js';
import { describeEnd, describeEvent } from './describe.js';
import type { ReplayStatusValues } from './replay.js';

type Cpu = Values<typeof RecCpu.fields>;

function args(b: Buffer, n: number): bigint[] {
  const out: bigint[] = [];
  for (let i = 0; i < Math.min(n, 6); i++) out.push(b.readBigUInt64LE(8 * i));
  return out;
}

/** What the guest did, as a verb phrase. */
function guestAction(s: ReplayStatusValues): string {
  if (s.guest_kind === 0) {
    const exited = s.guest_result >= 0n;
    const status = Number(exited ? s.guest_result : -s.guest_result);
    return exited ? `called exit(${status})` : `died: ${describeEnd({ exited, status, rip: s.guest_flags ? s.guest_args.readBigUInt64LE(0) : undefined }).replace(/^death /, '')}`;
  }
  const e = describeEvent({
    kind: s.guest_kind, nr: s.guest_nr, args: args(s.guest_args, s.guest_nargs), quote: s.guest_quote, quoteAt: s.quote_offset,
    dataLen: s.guest_data_len,
  });
  if (s.guest_kind === REC_EV.SYSCALL) return `called ${e}`;
  if (s.guest_kind === REC_EV.SIGNAL) return `got ${e}`;
  return `executed ${e}`;
}

/** How the recording ends, from its trailer. */
export function recordedEnd(rec: Recording): string {
  const t = rec.trailer;
  if (t.end === REC_END.NOT_STARTED) return 'a guest that never started';
  const rip = t.flags & REC_ENDF.REGS ? t.regs.readBigUInt64LE(16 * 8) : undefined;
  return describeEnd({ exited: t.end === REC_END.EXITED, status: t.status, rip: t.end === REC_END.EXITED ? undefined : rip });
}

/** The recorded event of a verdict. */
export function recordedEvent(s: ReplayStatusValues, rec: Recording): string {
  if (s.rec_kind === 0) return recordedEnd(rec);
  return describeEvent({
    kind: s.rec_kind, nr: s.rec_nr, args: args(s.rec_args, s.rec_nargs), quote: s.rec_quote, quoteAt: s.quote_offset, dataLen: s.rec_data_len,
  });
}

export function divergenceLine(s: ReplayStatusValues, rec: Recording): string {
  const at = `replay diverged at event ${s.event}: the guest ${guestAction(s)}`;
  switch (s.why) {
    case REPLAY_WHY.NO_MORE: return `${at}, the recording has no more events (it ends with ${recordedEnd(rec)})`;
    case REPLAY_WHY.ARG: return `${at}, the recording has ${recordedEvent(s, rec)} (argument ${s.detail + 1} differs)`;
    case REPLAY_WHY.DATA: return `${at}, the recording has ${recordedEvent(s, rec)} (byte ${s.detail} of the data differs)`;
    case REPLAY_WHY.MEMORY: return `${at}, the recording has ${recordedEvent(s, rec)} (the guest's buffer cannot be read or written as recorded)`;
    case REPLAY_WHY.END:
      return s.rec_kind === 0 ? `${at}, the recording has ${recordedEnd(rec)}` : `${at}, the recording has ${recordedEvent(s, rec)} next`;
    default: return `${at}, the recording has ${recordedEvent(s, rec)}`;
  }
}

const hex = (v: number | bigint) => `0x${v.toString(16)}`;

function cpuName(c: Cpu): string {
  const vendor = c.vendor.toString('latin1');
  const brand = c.brand.toString('latin1').replace(/\0.*$/s, '').trim();
  const family = ((c.signature >> 8) & 0xf) + (((c.signature >> 8) & 0xf) === 0xf ? (c.signature >> 20) & 0xff : 0);
  const model = ((c.signature >> 4) & 0xf) | ((c.signature >> 12) & 0xf0);
  return `${brand || vendor} (${vendor}, family ${hex(family)} model ${hex(model)} stepping ${c.signature & 0xf})`;
}

const WORDS: [keyof Cpu, string][] = [
  ['vendor', 'vendor'], ['signature', 'family/model/stepping'], ['max_leaf', 'cpuid leaf count'], ['leaf1_ecx', 'features (cpuid 1 ecx)'],
  ['leaf1_edx', 'features (cpuid 1 edx)'], ['leaf7_ebx', 'features (cpuid 7 ebx)'], ['leaf7_ecx', 'features (cpuid 7 ecx)'],
  ['leaf7_edx', 'features (cpuid 7 edx)'], ['ext1_ecx', 'features (cpuid 0x80000001 ecx)'], ['ext1_edx', 'features (cpuid 0x80000001 edx)'],
  ['xcr0', 'enabled register state (XCR0)'], ['brand', 'brand string'],
];

function differs(a: Cpu, b: Cpu): string[] {
  return WORDS.filter(([k]) => {
    const x = a[k];
    const y = b[k];
    return Buffer.isBuffer(x) ? !x.equals(y as Buffer) : x !== y;
  }).map(([, name]) => name);
}

export function cpuMismatchLine(s: ReplayStatusValues, rec: Recording): string {
  const here = decodeStruct(RecCpuDef, s.cpu);
  if (s.why === REPLAY_WHY.CPUID_NEEDED) {
    return `${rec.file} was recorded with cpuid faulting (every cpuid answer is in the recording), and this CPU cannot fault cpuid; it cannot be replayed here`;
  }
  const diff = differs(rec.cpu, here).join(', ') || 'features';
  return `${rec.file} was recorded on ${cpuName(rec.cpu)}, this is ${cpuName(here)} (${diff} differ): ` +
    `${rec.cpu.mode === 2 ? 'this CPU lacks features the guest was told about' : 'the guest asked that CPU\'s cpuid itself (no cpuid faulting there), so only an identical CPU replays it'}`;
}
