// The LaunchPlan: everything the native stub needs to turn itself into the
// guest, decided here so the stub stays mechanism only. Its binary encoding
// (below) is the one interface between TypeScript and native/stub/stub.c;
// keep the two in step (PLAN_VERSION).

import {
  BOOT_INFO_SIZE, MFT_ENTRY, MFT_ENTRY_SIZE, MFT_HEADER_SIZE, SPT_BOOT_INFO_BASE, SPT_CMDLINE_SIZE,
} from './abi.js';
import { kernelEnd, type LoadSegment } from './elf.js';
import { PlanError } from './errors.js';
import { encodeManifest, type Manifest } from './manifest.js';

export const PLAN_MAGIC = 0x31504454; // "TDP1"
export const PLAN_VERSION = 2;
export const PLAN_HEADER_SIZE = 56;
export const PLAN_MAX_RECV_FDS = 64;
export const PLAN_SEGMENT_SIZE = 48;
export const PLAN_MAX_SEGMENTS = 16;
export const PLAN_MAX_KEEP_FDS = 256;
export const BPF_MAX_INSNS = 4096;

export const PlanFlags = {
  /** --x-exec-heap: guest memory mapped RWX instead of RW. */
  X_EXEC_HEAP: 1 << 0,
  /** Leave the process dumpable (core dumps asked for); default is not dumpable. */
  DUMPABLE: 1 << 1,
  /** --gdb: stop (SIGSTOP) with the guest loaded, before its first instruction. */
  STOP_AT_ENTRY: 1 << 2,
  /** Supervised: the stub forks a ptrace monitor that reports how the guest ended (native/stub/monitor.c). */
  MONITOR: 1 << 3,
  /** OCI create/start: the loaded guest runs only when a byte arrives on the start fd. */
  WAIT_START: 1 << 4,
} as const;

/** What a device module hands back once it has attached a device. */
export interface Attachment {
  /** Manifest index (= guest handle). */
  index: number;
  hostfd: number;
  net?: { mac: Buffer; mtu: number };
  block?: { capacity: bigint; blockSize: number };
}

export interface LaunchPlan {
  memSize: bigint;
  entry: bigint;
  flags: number;
  segments: LoadSegment[];
  /** Boot info + filled-in manifest copy + command line, to be written at 0x11000. */
  lowMemory: Buffer;
  /** fds the guest keeps; the stub closes everything else. */
  keepFds: number[];
  /** Pool launches: the fds sent along with the plan (SCM_RIGHTS) go to these numbers, in order. */
  receiveAt: number[];
  /** Monitor mode: where the monitor writes its one-line report. */
  reportFd: number;
  /** WAIT_START: the fd to read the start byte from. */
  startFd: number;
}

export interface PlanInput {
  memSize: bigint;
  entry: bigint;
  segments: LoadSegment[];
  manifest: Manifest;
  attachments: Attachment[];
  cmdline: string;
  epollfd: number;
  timerfd: number;
  keepFds: number[];
  flags: number;
  receiveAt?: number[];
  reportFd?: number;
  startFd?: number;
}

export function encodeCmdline(cmdline: string): Buffer {
  const bytes = Buffer.from(cmdline, 'utf8');
  if (bytes.length > SPT_CMDLINE_SIZE - 1) {
    throw new PlanError(`Guest command line too long (${bytes.length} bytes, max=${SPT_CMDLINE_SIZE - 1} characters)`,
      'pass fewer or shorter guest arguments');
  }
  return bytes;
}

/** The manifest as the guest sees it: every attached entry filled in (abi.md §2). */
export function filledManifest(manifest: Manifest, attachments: Attachment[]): Buffer {
  const mft = encodeManifest(manifest);
  for (const a of attachments) {
    const e = MFT_HEADER_SIZE + a.index * MFT_ENTRY_SIZE;
    if (a.net) {
      a.net.mac.copy(mft, e + MFT_ENTRY.netMac, 0, 6);
      mft.writeUInt16LE(a.net.mtu, e + MFT_ENTRY.netMtu);
    }
    if (a.block) {
      mft.writeBigUInt64LE(a.block.capacity, e + MFT_ENTRY.blockCapacity);
      mft.writeUInt16LE(a.block.blockSize, e + MFT_ENTRY.blockSize);
    }
    mft.writeInt32LE(a.hostfd, e + MFT_ENTRY.hostfd);
    mft[e + MFT_ENTRY.attached] = 1;
  }
  return mft;
}

/** Boot info at 0x11000, the manifest copy right after it, then the command line (abi.md §2). */
export function buildLowMemory(input: PlanInput): Buffer {
  const cmd = encodeCmdline(input.cmdline);
  const mft = filledManifest(input.manifest, input.attachments);
  const mftAddr = SPT_BOOT_INFO_BASE + BigInt(BOOT_INFO_SIZE);
  const cmdAddr = mftAddr + BigInt(mft.length);
  const out = Buffer.alloc(BOOT_INFO_SIZE + mft.length + cmd.length + 1);
  out.writeBigUInt64LE(input.memSize, 0);
  out.writeBigUInt64LE(kernelEnd(input.segments), 8);
  out.writeBigUInt64LE(cmdAddr, 16);
  out.writeBigUInt64LE(mftAddr, 24);
  out.writeInt32LE(input.epollfd, 32);
  out.writeInt32LE(input.timerfd, 36);
  mft.copy(out, BOOT_INFO_SIZE);
  cmd.copy(out, BOOT_INFO_SIZE + mft.length);
  return out;
}

export function makeLaunchPlan(input: PlanInput): LaunchPlan {
  if (input.segments.length > PLAN_MAX_SEGMENTS) {
    throw new PlanError(`guest has ${input.segments.length} loadable segments, tendril supports at most ${PLAN_MAX_SEGMENTS}`);
  }
  const keepFds = [...new Set(input.keepFds)].sort((a, b) => a - b);
  if (keepFds.length > PLAN_MAX_KEEP_FDS) throw new PlanError(`too many file descriptors to keep (${keepFds.length})`);
  const receiveAt = input.receiveAt ?? [];
  if (receiveAt.length > PLAN_MAX_RECV_FDS) throw new PlanError(`too many file descriptors to pass (${receiveAt.length})`);
  if ((input.flags & PlanFlags.WAIT_START) && (input.startFd === undefined || input.startFd < 0)) {
    throw new PlanError('wait-for-start needs a start fd');
  }
  if ((input.flags & PlanFlags.MONITOR) && (input.reportFd === undefined || input.reportFd < 3)) {
    throw new PlanError('monitor mode needs a report fd');
  }
  return {
    memSize: input.memSize,
    entry: input.entry,
    flags: input.flags,
    segments: input.segments,
    lowMemory: buildLowMemory(input),
    keepFds,
    receiveAt,
    reportFd: input.reportFd ?? -1,
    startFd: input.startFd ?? -1,
  };
}

const pad8 = (n: number) => (n + 7) & ~7;

/**
 * Binary layout read by native/stub/stub.c, little endian, every part 8-aligned:
 *   header (56): magic u32, version u32, mem_size u64, entry u64, flags u32,
 *                nsegs u32, nkeep u32, lowmem_size u32, bpf_insns u32, nrecv u32,
 *                report_fd i32, start_fd i32
 *   nsegs × segment (48): vaddr u64, filesz u64, memsz u64, start u64, end u64, prot u32, reserved u32
 *   nkeep × fd i32, padded to 8
 *   nrecv × fd i32 (where the fds sent with the plan go), padded to 8
 *   each segment's file bytes in order, each padded to 8
 *   low-memory image, padded to 8
 *   bpf_insns × struct sock_filter (8 bytes)
 * The stub reads it front to back with read(2), so it may come from a pipe.
 */
export function encodePlan(plan: LaunchPlan, bpf: Buffer): Buffer {
  if (bpf.length % 8 !== 0 || bpf.length === 0 || bpf.length / 8 > BPF_MAX_INSNS) {
    throw new PlanError(`seccomp program of ${bpf.length} bytes is not a valid BPF program for the stub`);
  }
  const fixed = PLAN_HEADER_SIZE + PLAN_SEGMENT_SIZE * plan.segments.length + pad8(4 * plan.keepFds.length) +
    pad8(4 * plan.receiveAt.length);
  const total = fixed + plan.segments.reduce((n, s) => n + pad8(s.data.length), 0) + pad8(plan.lowMemory.length) + bpf.length;
  const buf = Buffer.alloc(total);
  buf.writeUInt32LE(PLAN_MAGIC, 0);
  buf.writeUInt32LE(PLAN_VERSION, 4);
  buf.writeBigUInt64LE(plan.memSize, 8);
  buf.writeBigUInt64LE(plan.entry, 16);
  buf.writeUInt32LE(plan.flags, 24);
  buf.writeUInt32LE(plan.segments.length, 28);
  buf.writeUInt32LE(plan.keepFds.length, 32);
  buf.writeUInt32LE(plan.lowMemory.length, 36);
  buf.writeUInt32LE(bpf.length / 8, 40);
  buf.writeUInt32LE(plan.receiveAt.length, 44);
  buf.writeInt32LE(plan.reportFd, 48);
  buf.writeInt32LE(plan.startFd, 52);
  let o = PLAN_HEADER_SIZE;
  for (const s of plan.segments) {
    buf.writeBigUInt64LE(s.vaddr, o);
    buf.writeBigUInt64LE(s.filesz, o + 8);
    buf.writeBigUInt64LE(s.memsz, o + 16);
    buf.writeBigUInt64LE(s.start, o + 24);
    buf.writeBigUInt64LE(s.end, o + 32);
    buf.writeUInt32LE(s.prot, o + 40);
    o += PLAN_SEGMENT_SIZE;
  }
  for (const fd of plan.keepFds) {
    buf.writeInt32LE(fd, o);
    o += 4;
  }
  o = PLAN_HEADER_SIZE + PLAN_SEGMENT_SIZE * plan.segments.length + pad8(4 * plan.keepFds.length);
  for (const fd of plan.receiveAt) {
    buf.writeInt32LE(fd, o);
    o += 4;
  }
  o = fixed;
  for (const s of plan.segments) {
    s.data.copy(buf, o);
    o += pad8(s.data.length);
  }
  plan.lowMemory.copy(buf, o);
  o += pad8(plan.lowMemory.length);
  bpf.copy(buf, o);
  return buf;
}
