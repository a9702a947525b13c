// Events as people read them: `write(1, "SUCCESS\n", 8)`, `rdtsc at
// 0x100234`, `SIGSEGV at 0x10076d (fault address 0x400000000)` — for the
// divergence line, the --until line and `replay --info`.

import { REC_EV } from '../../loader/formats.js';
import { signalName, SYSCALL_NAMES } from '../../loader/recording.js';

const hex = (v: bigint | number) => `0x${v.toString(16)}`;

/** Printable text with escapes, or undefined if the bytes are not mostly text. */
function asText(b: Buffer): string | undefined {
  let printable = 0;
  for (const c of b) if ((c >= 0x20 && c < 0x7f) || c === 10 || c === 13 || c === 9) printable++;
  if (b.length && printable < b.length * 0.9) return undefined;
  return JSON.stringify(b.toString('latin1')).slice(1, -1);
}

/** A data argument: its quoted start (from `at`) and its length. */
export function quoteData(quote: Buffer, len: number, at = 0): string {
  const shown = quote.subarray(0, Math.max(0, Math.min(quote.length, len - at)));
  const more = at + shown.length < len ? '…' : '';
  const text = at === 0 ? asText(shown) : undefined;
  if (text !== undefined) return `"${text}"${more}`;
  const bytes = [...shown.subarray(0, 16)].map((x) => x.toString(16).padStart(2, '0')).join(' ');
  return `<${len} bytes${at ? `, from byte ${at}` : ''}: ${bytes}${shown.length > 16 || more ? ' …' : ''}>`;
}

const CLOCKS: Record<string, string> = { 0: 'CLOCK_REALTIME', 1: 'CLOCK_MONOTONIC' };

export interface CallView {
  kind: number;
  nr: number;
  args: bigint[];
  /** The start of what it wrote (writes) from `quoteAt`, when known. */
  quote?: Buffer;
  quoteAt?: number;
  dataLen?: number;
}

const int = (v: bigint) => BigInt.asIntN(32, v).toString();

/** `name(args…)` for a call, with the data of a write quoted. */
export function describeEvent(e: CallView): string {
  const a = e.args.map((v) => v ?? 0n);
  switch (e.kind) {
    case REC_EV.RDTSC: return `rdtsc at ${hex(a[0])}`;
    case REC_EV.RDTSCP: return `rdtscp at ${hex(a[0])}`;
    case REC_EV.CPUID: return `cpuid(eax=${hex(a[1])}, ecx=${hex(a[2])}) at ${hex(a[0])}`;
    case REC_EV.SIGNAL: return `${signalName(e.nr)} at ${hex(a[2])}${a[1] ? ` (fault address ${hex(a[1])})` : ''}`;
    case REC_EV.SYSCALL: break;
    default: return `an event of kind ${e.kind}`;
  }
  const name = SYSCALL_NAMES[e.nr] ?? `syscall ${e.nr}`;
  const data = () => (e.quote ? quoteData(e.quote, e.dataLen ?? Number(a[2]), e.quoteAt ?? 0) : hex(a[1]));
  switch (e.nr) {
    case 0: return `read(${int(a[0])}, ${hex(a[1])}, ${a[2]})`;
    case 1: return `write(${int(a[0])}, ${data()}, ${a[2]})`;
    case 17: return `pread64(${int(a[0])}, ${hex(a[1])}, ${a[2]}, ${a[3]})`;
    case 18: return `pwrite64(${int(a[0])}, ${data()}, ${a[2]}, ${a[3]})`;
    case 228: return `clock_gettime(${CLOCKS[String(a[0])] ?? int(a[0])}, ${hex(a[1])})`;
    case 281: return `epoll_pwait(${int(a[0])}, ${hex(a[1])}, ${int(a[2])}, ${int(a[3])}, ${hex(a[4])}, ${a[5]})`;
    case 286: return `timerfd_settime(${int(a[0])}, ${a[1] === 1n ? 'TFD_TIMER_ABSTIME' : int(a[1])}, ${hex(a[2])}, ${a[3] ? hex(a[3]) : 'NULL'})`;
    case 158: return `arch_prctl(${a[0] === 0x1002n ? 'ARCH_SET_FS' : hex(a[0])}, ${hex(a[1])})`;
    default: return `${name}(${a.map(hex).join(', ')})`;
  }
}

/** How a guest ended, as a call-like phrase: `exit(3)`, `death by SIGSEGV at 0x…`. */
export function describeEnd(end: { exited: boolean; status: number; rip?: bigint }): string {
  return end.exited ? `exit(${end.status})` : `death by ${signalName(end.status)}${end.rip !== undefined ? ` at ${hex(end.rip)}` : ''}`;
}
