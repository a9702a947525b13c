// The LaunchPlan: everything the native stub needs to turn itself into the
// guest, decided here so the stub stays mechanism only. Its binary layout is
// defined once in formats.ts (the stub reads the generated C header).
//
// A plan has two halves. The guest half depends only on the image, the
// memory size, the devices and the command line: memory regions, low memory,
// the fd numbers the guest sees (formats.ts GUEST_FD, the same in every
// hand-over), the epoll members; it can be compiled once and reused. The
// hand-over half says where the stub finds those fds right now (its own
// numbers in exec mode, received with the plan in the pool), and whether a
// monitor runs or a start byte is awaited.

import {
  BOOT_INFO_SIZE, MFT_ENTRY, MFT_ENTRY_SIZE, MFT_HEADER_SIZE, PAGE_SIZE, SPT_BOOT_INFO_BASE, SPT_CMDLINE_SIZE,
} from './abi.js';
import { kernelEnd, type LoadSegment } from './elf.js';
import { PlanError } from './errors.js';
import {
  decodeStruct, encodeStruct, GUEST_FD, PLAN, PLAN_FLAG, PlanFdMove, PlanHeader, PlanPoll, PlanRegion, PlanSection, type Values,
} from './formats.js';
import { encodeManifest, type Manifest } from './manifest.js';

export const PlanFlags = PLAN_FLAG;

/** What a device module hands back once it has attached a device. */
export interface Attachment {
  /** Manifest index (= guest handle). */
  index: number;
  net?: { mac: Buffer; mtu: number };
  block?: { capacity: bigint; blockSize: number };
}

export type Region = Omit<Values<typeof PlanRegion.fields>, 'reserved'>;

/** Guest memory as a file: each loaded segment's page range at a page-aligned offset. */
export interface MemoryImage {
  bytes: Buffer;
  regions: Region[];
}

/**
 * The memory file of an image's segments, mapped copy-on-write by the stub:
 * nothing of the image is copied per launch, and every guest of an image
 * shares its pages until it writes them. The bytes outside [vaddr, vaddr +
 * filesz) within each page range are zero, as in a fresh anonymous mapping.
 */
export function memoryImage(segments: LoadSegment[]): MemoryImage {
  const total = segments.reduce((n, s) => n + Number(s.end - s.start), 0);
  const bytes = Buffer.alloc(total);
  const regions: Region[] = [];
  let off = 0;
  for (const s of segments) {
    s.data.copy(bytes, off + Number(s.vaddr - s.start));
    regions.push({ vaddr: s.start, length: s.end - s.start, file_offset: BigInt(off), prot: s.prot });
    off += Number(s.end - s.start);
  }
  if (off % Number(PAGE_SIZE) !== 0) throw new Error('segment ranges are page aligned');
  return { bytes, regions };
}

/** The guest half of a plan. */
export interface GuestPlan {
  memSize: bigint;
  entry: bigint;
  /** X_EXEC_HEAP, DUMPABLE, STOP_AT_ENTRY: what the run asked for. */
  flags: number;
  regions: Region[];
  /** Boot info + filled-in manifest copy + command line, to be written at 0x11000. */
  lowMemory: Buffer;
  /** The guest's fd number for each device, in attach order (GUEST_FD.FIRST_DEVICE, …). */
  deviceFds: number[];
  /** Taps join the epoll set, tagged with their handle (abi.md §9). */
  polls: { fd: number; data: bigint }[];
  /** Typed sections (formats.ts PLAN_SECTION) the guest half adds, e.g. a snapshot's register state. */
  sections?: PlanSectionData[];
}

export interface PlanSectionData { type: number; data: Buffer }

export interface PlanInput {
  memSize: bigint;
  entry: bigint;
  segments: LoadSegment[];
  regions: Region[];
  manifest: Manifest;
  /** In attach order; device i gets fd GUEST_FD.FIRST_DEVICE + i. */
  attachments: (Attachment & { pollable: boolean })[];
  cmdline: string;
  flags: number;
}

export function encodeCmdline(cmdline: string): Buffer {
  const bytes = Buffer.from(cmdline, 'utf8');
  if (bytes.length > SPT_CMDLINE_SIZE - 1) {
    throw new PlanError(`Guest command line too long (${bytes.length} bytes, max=${SPT_CMDLINE_SIZE - 1} characters)`,
      'pass fewer or shorter guest arguments');
  }
  return bytes;
}

/** The fd number the guest sees for the i-th attached device. */
export function deviceFd(i: number): number {
  return GUEST_FD.FIRST_DEVICE + i;
}

/** The manifest as the guest sees it: every attached entry filled in (abi.md §2). */
export function filledManifest(manifest: Manifest, attachments: Attachment[]): Buffer {
  const mft = encodeManifest(manifest);
  attachments.forEach((a, i) => {
    const e = MFT_HEADER_SIZE + a.index * MFT_ENTRY_SIZE;
    if (a.net) {
      a.net.mac.copy(mft, e + MFT_ENTRY.netMac, 0, 6);
      mft.writeUInt16LE(a.net.mtu, e + MFT_ENTRY.netMtu);
    }
    if (a.block) {
      mft.writeBigUInt64LE(a.block.capacity, e + MFT_ENTRY.blockCapacity);
      mft.writeUInt16LE(a.block.blockSize, e + MFT_ENTRY.blockSize);
    }
    mft.writeInt32LE(deviceFd(i), e + MFT_ENTRY.hostfd);
    mft[e + MFT_ENTRY.attached] = 1;
  });
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
  out.writeInt32LE(GUEST_FD.EPOLL, 32);
  out.writeInt32LE(GUEST_FD.TIMER, 36);
  mft.copy(out, BOOT_INFO_SIZE);
  cmd.copy(out, BOOT_INFO_SIZE + mft.length);
  return out;
}

export function makeGuestPlan(input: PlanInput): GuestPlan {
  if (input.regions.length > PLAN.MAX_REGIONS) {
    throw new PlanError(`guest has ${input.regions.length} loadable segments, tendril supports at most ${PLAN.MAX_REGIONS}`);
  }
  if (input.attachments.length > PLAN.MAX_MOVES) throw new PlanError(`too many devices (${input.attachments.length})`);
  return {
    memSize: input.memSize,
    entry: input.entry,
    flags: input.flags,
    regions: input.regions,
    lowMemory: buildLowMemory(input),
    deviceFds: input.attachments.map((_, i) => deviceFd(i)),
    polls: input.attachments.flatMap((a, i) => (a.pollable ? [{ fd: deviceFd(i), data: BigInt(a.index) }] : [])),
  };
}

/** Where the stub finds what the plan refers to, in the process that runs it. */
export interface Handover {
  /** Per device (GuestPlan.deviceFds order): an fd number, or receivedFd(n). */
  deviceSrc: number[];
  /** The memory file: an fd number, or receivedFd(n). */
  imageSrc: number;
  /** MONITOR, WAIT_START, SEND_PIDFD. */
  flags?: number;
  reportFd?: number;
  startFd?: number;
  /** Typed sections the hand-over adds (isolation, recording). */
  sections?: PlanSectionData[];
}

/** The source number for the n-th fd received with the plan (SCM_RIGHTS). */
export function receivedFd(n: number): number {
  return PLAN.RECEIVED_BASE - n;
}

const pad8 = (n: number) => (n + 7) & ~7;

/** The plan bytes the stub reads front to back (formats.ts describes the order). */
export function encodePlan(g: GuestPlan, bpf: Buffer, h: Handover): Buffer {
  if (bpf.length % 8 !== 0 || bpf.length === 0 || bpf.length / 8 > PLAN.MAX_BPF_INSNS) {
    throw new PlanError(`seccomp program of ${bpf.length} bytes is not a valid BPF program for the stub`);
  }
  if (h.deviceSrc.length !== g.deviceFds.length) throw new PlanError('a source is needed for every device fd');
  const flags = g.flags | (h.flags ?? 0);
  if ((flags & (PLAN_FLAG.MONITOR | PLAN_FLAG.REPLAY)) && (h.reportFd === undefined)) throw new PlanError('monitor mode needs a report fd');
  if ((flags & PLAN_FLAG.WAIT_START) && (h.startFd === undefined)) throw new PlanError('wait-for-start needs a start fd');
  const n = g.regions.length;
  const sections = [...(g.sections ?? []), ...(h.sections ?? [])];
  const types = new Set(sections.map((x) => x.type));
  if (types.size !== sections.length) throw new PlanError('a plan section type is given twice');
  const extra = sections.reduce((t, x) => t + PlanSection.size + pad8(x.data.length), 0);
  if (extra > PLAN.MAX_EXTRA) throw new PlanError(`plan sections of ${extra} bytes exceed the stub's limit of ${PLAN.MAX_EXTRA}`);
  const total = PlanHeader.size + n * PlanRegion.size + g.deviceFds.length * PlanFdMove.size + g.polls.length * PlanPoll.size +
    pad8(g.lowMemory.length) + bpf.length + extra;
  const buf = Buffer.alloc(total);
  encodeStruct(PlanHeader, {
    magic: PLAN.MAGIC, version: PLAN.VERSION, flags, nregions: n, mem_size: g.memSize, entry: g.entry,
    nmoves: g.deviceFds.length, npoll: g.polls.length, lowmem_size: g.lowMemory.length, bpf_insns: bpf.length / 8,
    image_src: n ? h.imageSrc : -1,
    report_fd: flags & (PLAN_FLAG.MONITOR | PLAN_FLAG.RECORD | PLAN_FLAG.REPLAY) ? (h.reportFd ?? -1) : -1,
    start_fd: flags & PLAN_FLAG.WAIT_START ? h.startFd : -1, extra_size: extra,
  }, buf, 0);
  let o = PlanHeader.size;
  for (const r of g.regions) {
    encodeStruct(PlanRegion, r, buf, o);
    o += PlanRegion.size;
  }
  g.deviceFds.forEach((dst, i) => {
    encodeStruct(PlanFdMove, { src: h.deviceSrc[i], dst }, buf, o);
    o += PlanFdMove.size;
  });
  for (const p of g.polls) {
    encodeStruct(PlanPoll, { fd: p.fd, data: p.data }, buf, o);
    o += PlanPoll.size;
  }
  for (const x of sections) {
    encodeStruct(PlanSection, { type: x.type, len: x.data.length }, buf, o);
    x.data.copy(buf, o + PlanSection.size);
    o += PlanSection.size + pad8(x.data.length);
  }
  g.lowMemory.copy(buf, o);
  o += pad8(g.lowMemory.length);
  bpf.copy(buf, o);
  return buf;
}

/** The plan read back (tests, and tools that show a plan). */
export interface DecodedPlan {
  header: Values<typeof PlanHeader.fields>;
  regions: Values<typeof PlanRegion.fields>[];
  moves: Values<typeof PlanFdMove.fields>[];
  polls: Values<typeof PlanPoll.fields>[];
  lowMemory: Buffer;
  bpf: Buffer;
  sections: PlanSectionData[];
}

export function decodePlan(buf: Buffer): DecodedPlan {
  const header = decodeStruct(PlanHeader, buf, 0);
  let o = PlanHeader.size;
  const take = <T>(count: number, size: number, f: (at: number) => T): T[] => {
    const out: T[] = [];
    for (let i = 0; i < count; i++, o += size) out.push(f(o));
    return out;
  };
  const regions = take(header.nregions, PlanRegion.size, (at) => decodeStruct(PlanRegion, buf, at));
  const moves = take(header.nmoves, PlanFdMove.size, (at) => decodeStruct(PlanFdMove, buf, at));
  const polls = take(header.npoll, PlanPoll.size, (at) => decodeStruct(PlanPoll, buf, at));
  const end = o + header.extra_size;
  const sections: PlanSectionData[] = [];
  while (o < end) {
    const h = decodeStruct(PlanSection, buf, o);
    sections.push({ type: h.type, data: Buffer.from(buf.subarray(o + PlanSection.size, o + PlanSection.size + h.len)) });
    o += PlanSection.size + pad8(h.len);
  }
  const lowMemory = Buffer.from(buf.subarray(o, o + header.lowmem_size));
  o += pad8(header.lowmem_size);
  const bpf = Buffer.from(buf.subarray(o, o + header.bpf_insns * 8));
  if (lowMemory.length !== header.lowmem_size || bpf.length !== header.bpf_insns * 8) throw new RangeError('plan truncated');
  return { header, regions, moves, polls, lowMemory, bpf, sections };
}
