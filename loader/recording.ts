// A recording file (docs/record-replay.md): its start, written here before
// the guest runs (header, what was run, the guest image, its initial low
// memory), and the whole file read back and checked before a replay or
// `replay --info`. The binary layouts are loader/formats.ts (REC, rec_*);
// the event stream and the trailer are written by the stub's monitor.
//
// A file is refused, with one line, when it is not a recording (foreign),
// is of another format version, was cut short (no trailer: the recorder
// did not finish), or does not match its checksums or its own structure
// (corrupt). Only then does a replay start.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { TendrilError } from './errors.js';
import {
  decodeStruct, encodeStruct, REC, REC_EV, RecCpu, RecEvent, RecFileHeader, RecTrailer, type Values,
} from './formats.js';

/** A recording that cannot be used, and why (one line). */
export class RecordingError extends TendrilError {}

export interface RecordedDevice {
  name: string;
  kind: 'net' | 'block';
  /** Manifest index (the guest's handle). */
  handle: number;
  /** The fd number the guest saw. */
  fd: number;
  mac?: string;
  mtu?: number;
  /** Bytes, as a decimal string (a u64). */
  capacity?: string;
  blockSize?: number;
  readOnly?: boolean;
  /** Where it came from when recorded (an interface or a path), for --info only. */
  source?: string;
}

/** What was run, as JSON in the file (for replay and for people). */
export interface RecordingMeta {
  tendril: string;
  created: string;
  host: string;
  guest: { name: string; sha256: string; size: number };
  cmdline: string;
  memMiB: number;
  devices: RecordedDevice[];
}

export interface RecordingStart {
  meta: RecordingMeta;
  image: Buffer;
  lowMemory: Buffer;
  memSize: bigint;
  entry: bigint;
  planFlags: number;
}

const pad8 = (n: number) => (n + 7) & ~7;

/** The bytes before the event stream. */
export function encodeRecordingStart(s: RecordingStart): Buffer {
  const meta = Buffer.from(JSON.stringify(s.meta), 'utf8');
  const headerLen = pad8(RecFileHeader.size + meta.length + s.image.length + s.lowMemory.length);
  const buf = Buffer.alloc(headerLen);
  encodeStruct(RecFileHeader, {
    magic: REC.MAGIC, version: REC.VERSION, header_len: headerLen, header_crc: 0,
    meta_len: meta.length, image_len: s.image.length, lowmem_len: s.lowMemory.length, plan_flags: s.planFlags,
    mem_size: s.memSize, entry_rip: s.entry, entry_rsp: s.memSize - 8n, entry_rdi: 0x11000n,
  }, buf, 0);
  let o = RecFileHeader.size;
  meta.copy(buf, o);
  o += meta.length;
  s.image.copy(buf, o);
  o += s.image.length;
  s.lowMemory.copy(buf, o);
  buf.writeUInt32LE(crc32(buf), RecFileHeader.offsets.header_crc);
  return buf;
}

export type RecEventValues = Values<typeof RecEvent.fields>;

/** One event as found in the stream. */
export interface StreamEvent {
  /** 1-based (the CPU record is 0). */
  index: number;
  /** Offset of the event in the file. */
  offset: number;
  kind: number;
  nr: number;
  flags: number;
  result: bigint;
  args: bigint[];
  /** File offset and length of its data. */
  dataOffset: number;
  dataLen: number;
}

export interface EventCounts {
  events: number;
  /** By syscall name (or number), then rdtsc, rdtscp, cpuid, signal:NAME. */
  byName: Record<string, number>;
  /** Bytes of data the guest wrote on each fd (console is fd 1), and calls. */
  writes: Record<string, { calls: number; bytes: number }>;
}

export interface Recording {
  file: string;
  size: number;
  header: Values<typeof RecFileHeader.fields>;
  meta: RecordingMeta;
  image: Buffer;
  lowMemory: Buffer;
  streamOffset: number;
  streamLength: number;
  trailer: Values<typeof RecTrailer.fields>;
  cpu: Values<typeof RecCpu.fields>;
  counts: EventCounts;
}

/** Reads a file through a bounded window, so a recording of any size is checked in constant memory. */
class Window {
  private buf = Buffer.alloc(0);
  private start = 0;
  constructor(private readonly fd: number, private readonly end: number, private readonly size = 4 << 20) {}

  /** [off, off + len) of the file, or undefined if past `end`. */
  at(off: number, len: number): Buffer | undefined {
    if (off < 0 || len < 0 || off + len > this.end) return undefined;
    if (off < this.start || off + len > this.start + this.buf.length) {
      const want = Math.min(Math.max(this.size, len), this.end - off);
      const b = Buffer.alloc(want);
      let got = 0;
      while (got < want) {
        const n = readSync(this.fd, b, got, want - got, off + got);
        if (n <= 0) break;
        got += n;
      }
      this.buf = b.subarray(0, got);
      this.start = off;
      if (off + len > this.start + this.buf.length) return undefined;
    }
    return this.buf.subarray(off - this.start, off - this.start + len);
  }
}

/** The syscalls the stream names, by number (abi.md §8). */
export const SYSCALL_NAMES: Record<number, string> = {
  0: 'read', 1: 'write', 17: 'pread64', 18: 'pwrite64', 158: 'arch_prctl', 228: 'clock_gettime', 231: 'exit_group',
  281: 'epoll_pwait', 286: 'timerfd_settime',
};
const INPUT_CALLS = new Set([0, 17, 228, 281]);
const NARGS: Record<number, number> = { 0: 3, 1: 3, 17: 4, 18: 4, 158: 2, 228: 2, 281: 6, 286: 4 };

function what(file: string, b: Buffer): string {
  if (b.length >= 4 && b.readUInt32BE(0) === 0x7f454c46) return `${file} is not a tendril recording: it is an ELF file (a guest image? replay takes the file --record wrote)`;
  if (b.length >= 4 && b.readUInt32LE(0) === 0x33504454) return `${file} is not a tendril recording: it is a launch plan`;
  const head = [...b.subarray(0, 4)].map((x) => x.toString(16).padStart(2, '0')).join(' ');
  return `${file} is not a tendril recording (it starts with ${head || 'nothing'}, not "TNDR")`;
}

/**
 * Walks the event stream between `start` and `end` (file offsets): every
 * event whole and well formed, the CPU record first. Calls `each` with
 * every event but the CPU record.
 */
export function walkEvents(fd: number, start: number, end: number, each?: (e: StreamEvent) => void,
  fail: (why: string) => never = (why) => { throw new RecordingError(why); }): Values<typeof RecCpu.fields> {
  const w = new Window(fd, end);
  let o = start;
  let index = 0;
  let cpu: Values<typeof RecCpu.fields> | undefined;
  while (o < end) {
    const h = w.at(o, RecEvent.size);
    if (!h) fail(`event ${index + 1} is cut short at byte ${o}`);
    const e = decodeStruct(RecEvent, h);
    const argb = 8 * e.nargs;
    if (e.kind < REC_EV.CPU || e.kind > REC_EV.SIGNAL || e.nargs > 6) fail(`event ${index + 1} at byte ${o} has an unknown kind (${e.kind}) or ${e.nargs} arguments`);
    const a = w.at(o + RecEvent.size, argb);
    if (!a) fail(`event ${index + 1} at byte ${o} is cut short`);
    const args: bigint[] = [];
    for (let i = 0; i < e.nargs; i++) args.push(a.readBigUInt64LE(8 * i));
    const dataOffset = o + RecEvent.size + argb;
    const next = pad8(dataOffset + e.data_len);
    if (next > end) fail(`event ${index + 1} at byte ${o} runs past the end of the stream`);
    const bad = (why: string) => fail(`event ${index + 1} at byte ${o}: ${why}`);
    if (e.kind === REC_EV.CPU) {
      if (o !== start || e.data_len !== RecCpu.size) bad('a CPU record that is not the first record, or of the wrong size');
      cpu = decodeStruct(RecCpu, w.at(dataOffset, RecCpu.size)!);
    } else {
      if (!cpu) bad('the stream does not start with its CPU record');
      index++;
      if (e.kind === REC_EV.SYSCALL) {
        if (NARGS[e.nr] !== undefined && NARGS[e.nr] !== e.nargs) bad(`${SYSCALL_NAMES[e.nr]} with ${e.nargs} arguments`);
        if (INPUT_CALLS.has(e.nr) && e.data_len > REC.MAX_INPUT) bad(`${SYSCALL_NAMES[e.nr]} with ${e.data_len} bytes of data (at most ${REC.MAX_INPUT})`);
        if (e.nr === 286 && e.data_len > 64) bad('timerfd_settime with more than 64 bytes of data');
      }
      if (e.kind === REC_EV.SIGNAL && (e.nargs !== 3 || e.data_len !== 216)) bad('a signal record of the wrong shape');
      if (e.kind === REC_EV.CPUID && (e.nargs !== 3 || e.data_len !== 16)) bad('a cpuid record of the wrong shape');
      if ((e.kind === REC_EV.RDTSC || e.kind === REC_EV.RDTSCP) && e.nargs !== 3) bad('an rdtsc record of the wrong shape');
      each?.({ index, offset: o, kind: e.kind, nr: e.nr, flags: e.flags, result: e.result, args, dataOffset, dataLen: e.data_len });
    }
    o = next;
  }
  if (!cpu) fail('the event stream is empty (not even its CPU record)');
  return cpu;
}

const SIGNALS: Record<number, string> = {
  1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL', 5: 'SIGTRAP', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE', 9: 'SIGKILL',
  10: 'SIGUSR1', 11: 'SIGSEGV', 12: 'SIGUSR2', 13: 'SIGPIPE', 14: 'SIGALRM', 15: 'SIGTERM', 17: 'SIGCHLD', 18: 'SIGCONT',
  19: 'SIGSTOP', 20: 'SIGTSTP', 21: 'SIGTTIN', 22: 'SIGTTOU', 23: 'SIGURG', 24: 'SIGXCPU', 25: 'SIGXFSZ', 28: 'SIGWINCH', 31: 'SIGSYS',
};

export function signalName(sig: number): string {
  return SIGNALS[sig] ?? `signal ${sig}`;
}

export function eventName(e: { kind: number; nr: number }): string {
  switch (e.kind) {
    case REC_EV.SYSCALL: return SYSCALL_NAMES[e.nr] ?? `syscall ${e.nr}`;
    case REC_EV.RDTSC: return 'rdtsc';
    case REC_EV.RDTSCP: return 'rdtscp';
    case REC_EV.CPUID: return 'cpuid';
    case REC_EV.SIGNAL: return `signal ${signalName(e.nr)}`;
    default: return `kind ${e.kind}`;
  }
}

/** Opens, checks and summarises a recording; throws RecordingError (one line) for anything unusable. */
export function openRecording(file: string): Recording {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new RecordingError(`${file}: cannot open the recording: ${err.code === 'ENOENT' ? 'No such file or directory' : err.code ?? err.message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new RecordingError(`${file} is not a tendril recording: not a regular file`);
    const size = st.size;
    const w = new Window(fd, size);
    const first = w.at(0, Math.min(size, RecFileHeader.size)) ?? Buffer.alloc(0);
    if (size < 4 || first.readUInt32LE(0) !== REC.MAGIC) throw new RecordingError(what(file, first));
    if (size < RecFileHeader.size) throw new RecordingError(`${file} is truncated: it ends inside its header (${size} bytes)`);
    const header = decodeStruct(RecFileHeader, first);
    if (header.version !== REC.VERSION) {
      throw new RecordingError(`${file} is a tendril recording of format version ${header.version}; this tendril reads version ${REC.VERSION}`,
        header.version > REC.VERSION ? 'replay it with the tendril that made it (or a newer one)' : undefined);
    }
    const corrupt = (why: string, hint?: string): never => { throw new RecordingError(`${file} is corrupt: ${why}`, hint); };
    const parts = RecFileHeader.size + header.meta_len + header.image_len + header.lowmem_len;
    if (header.header_len % 8 !== 0 || header.header_len < parts || header.header_len > parts + 7) corrupt('its header gives impossible lengths');
    if (header.header_len > size) throw new RecordingError(`${file} is truncated: it ends inside its header (${size} of ${header.header_len} bytes)`);
    const head = Buffer.from(w.at(0, header.header_len)!);
    const want = head.readUInt32LE(RecFileHeader.offsets.header_crc);
    head.writeUInt32LE(0, RecFileHeader.offsets.header_crc);
    if (crc32(head) !== want) corrupt('its header does not match its checksum');
    let meta: RecordingMeta;
    let o = RecFileHeader.size;
    try {
      meta = JSON.parse(head.subarray(o, o + header.meta_len).toString('utf8')) as RecordingMeta;
    } catch {
      return corrupt('its description is not valid JSON');
    }
    if (!meta || typeof meta.cmdline !== 'string' || !Array.isArray(meta.devices) || typeof meta.guest?.name !== 'string') corrupt('its description lacks the guest, its arguments or its devices');
    o += header.meta_len;
    const image = Buffer.from(head.subarray(o, o + header.image_len));
    o += header.image_len;
    const lowMemory = Buffer.from(head.subarray(o, o + header.lowmem_len));

    const truncated = () => new RecordingError(`${file} is truncated: the recording was not finished (the recorder stopped before the guest ended, or the file was cut)`,
      'it cannot be replayed');
    if (size < header.header_len + RecTrailer.size) throw truncated();
    const tb = w.at(size - RecTrailer.size, RecTrailer.size)!;
    const trailer = decodeStruct(RecTrailer, tb);
    if (trailer.magic !== REC.TRAILER_MAGIC) throw truncated();
    const streamOffset = header.header_len;
    const streamLength = size - RecTrailer.size - streamOffset;
    if (trailer.version !== REC.VERSION || trailer.stream_len !== BigInt(streamLength)) {
      corrupt(`its trailer says the events take ${trailer.stream_len} bytes, the file holds ${streamLength}`);
    }
    let crc = 0;
    for (let p = streamOffset; p < streamOffset + streamLength; p += 4 << 20) {
      crc = crc32(w.at(p, Math.min(4 << 20, streamOffset + streamLength - p))!, crc);
    }
    if (crc !== trailer.stream_crc) corrupt('its event stream does not match its checksum', 'the file was changed or damaged after it was written');

    const counts: EventCounts = { events: 0, byName: {}, writes: {} };
    const cpu = walkEvents(fd, streamOffset, streamOffset + streamLength, (e) => {
      counts.events++;
      const n = eventName(e);
      counts.byName[n] = (counts.byName[n] ?? 0) + 1;
      if (e.kind === REC_EV.SYSCALL && (e.nr === 1 || e.nr === 18)) {
        const k = `${SYSCALL_NAMES[e.nr]}:${e.args[0]}`;
        const c = (counts.writes[k] ??= { calls: 0, bytes: 0 });
        c.calls++;
        c.bytes += e.dataLen;
      }
    }, (why) => corrupt(why));
    if (BigInt(counts.events) !== trailer.events) corrupt(`its trailer counts ${trailer.events} events, the stream holds ${counts.events}`);
    return { file, size, header, meta, image, lowMemory, streamOffset, streamLength, trailer, cpu, counts };
  } finally {
    closeSync(fd);
  }
}

/** The events of a recording (tools and tests), each with its data read on demand. */
export function recordingEvents(rec: Recording): (StreamEvent & { data: () => Buffer })[] {
  const list: StreamEvent[] = [];
  const fd = openSync(rec.file, 'r');
  try {
    walkEvents(fd, rec.streamOffset, rec.streamOffset + rec.streamLength, (e) => list.push(e));
  } finally {
    closeSync(fd);
  }
  return list.map((e) => ({
    ...e,
    data: () => {
      const b = Buffer.alloc(e.dataLen);
      const f = openSync(rec.file, 'r');
      try {
        if (e.dataLen) readSync(f, b, 0, e.dataLen, e.dataOffset);
      } finally {
        closeSync(f);
      }
      return b;
    },
  }));
}

/**
 * Recomputes both checksums of a recording held in memory, after a
 * deliberate change (a test that alters one byte of an event, a tool that
 * rewrites the description): the result is well formed, and replaying it
 * shows whether the guest still does what it recorded.
 */
export function reseal(buf: Buffer): Buffer {
  const header = decodeStruct(RecFileHeader, buf);
  buf.writeUInt32LE(0, RecFileHeader.offsets.header_crc);
  buf.writeUInt32LE(crc32(buf.subarray(0, header.header_len)), RecFileHeader.offsets.header_crc);
  const t = buf.length - RecTrailer.size;
  buf.writeUInt32LE(crc32(buf.subarray(header.header_len, t)), t + RecTrailer.offsets.stream_crc);
  return buf;
}
