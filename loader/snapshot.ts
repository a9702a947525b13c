// A snapshot's metadata (DIR/snapshot.json): everything a snapshot holds
// besides guest memory (DIR/memory), versioned and self-describing, and the
// rules a snapshot must follow to be restored. A snapshot is as trusted as a
// guest image and no more: every field is checked here, strictly (unknown
// keys, wrong types, values out of range are refused with the field's
// name), before a device is opened or the memory file mapped. The register
// state travels to the stub as a snapshot_cpu (formats.ts), and is stored
// here field by field from that one definition.

import {
  BOOT_INFO_SIZE, MAX_MEM_MIB, MFT_ENTRY_SIZE, MFT_HEADER_SIZE, MftType, PAGE_SIZE, SPT_CMDLINE_SIZE, SPT_GUEST_MIN_BASE, SPT_HOST_MEM_BASE,
} from './abi.js';
import { SnapshotError } from './errors.js';
import { PLAN, SNAPSHOT, SNAPSHOT_CPU_FLAG, SnapshotCpu, type Values } from './formats.js';
import { deviceTypeName, manifestToJson, parseManifestJson, type Manifest } from './manifest.js';

export const SNAPSHOT_FORMAT = 'tendril.snapshot';
export const SNAPSHOT_FORMAT_VERSION = 1;
export const SNAPSHOT_METADATA = 'snapshot.json';
export const SNAPSHOT_MEMORY = 'memory';
/** The system call a guest is stopped at: epoll_pwait, which returns 0 (no event) on restore. */
export const SNAPSHOT_POINT_SYSCALL = 281;

export type SnapshotCpuState = Values<typeof SnapshotCpu.fields>;

/** A device as the guest saw it when it was snapshotted: what a restore must attach again. */
export interface SnapshotDevice {
  name: string;
  kind: 'net' | 'block';
  net?: { mac: Buffer; mtu: number };
  block?: { capacity: bigint; blockSize: number };
}

/** Guest memory mapped from the memory file (at file offset = guest address) with its protection. */
export interface SnapshotRegion {
  vaddr: bigint;
  length: bigint;
  /** PROT_READ 1 | PROT_WRITE 2 | PROT_EXEC 4. */
  prot: number;
}

export interface SnapshotMeta {
  /** The tendril version that made it, and when. */
  tendril: string;
  created: string;
  /** The image it was booted from (for gdb and for people; a restore does not need it). */
  guest: { file: string; sha256: string };
  cmdline: string;
  memSize: bigint;
  xExecHeap: boolean;
  manifest: Manifest;
  /** In attach order: device i is the guest's fd GUEST_FD.FIRST_DEVICE + i. */
  devices: SnapshotDevice[];
  point: { yield: number; monotonicNs: bigint; deadlineNs: bigint; bootId: string };
  /** Bytes of boot info + manifest copy + command line at 0x11000 (inside guest memory). */
  lowMemorySize: number;
  memory: { pages: number; regions: SnapshotRegion[] };
  /** The state the guest resumes with: just after its epoll_pwait, which returns 0 (rax), no event. */
  cpu: SnapshotCpuState;
  xsave: Buffer;
}

const hex = (v: bigint) => `0x${v.toString(16)}`;
const PROT_NAMES = ['---', 'r--', '-w-', 'rw-', '--x', 'r-x', '-wx', 'rwx'];
/** Flags user code may hold: CF, reserved 1, PF, AF, ZF, SF, IF, DF, OF, AC, ID (native/stub/restore.c). */
export const RFLAGS_ALLOWED = 0x240ed7n;
const USER_ADDR_LIMIT = 0x800000000000n;

export function protName(prot: number): string {
  return PROT_NAMES[prot & 7];
}

export function encodeSnapshotMeta(m: SnapshotMeta): string {
  const cpu: Record<string, unknown> = {};
  for (const [name, t] of Object.entries(SnapshotCpu.fields)) {
    const v = (m.cpu as Record<string, unknown>)[name];
    cpu[name] = t === 'u64' ? hex(v as bigint) : typeof t === 'string' ? v : (v as Buffer).toString('base64');
  }
  cpu.xsave = m.xsave.toString('base64');
  const doc = {
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_FORMAT_VERSION,
    tendril: m.tendril,
    created: m.created,
    guest: m.guest,
    cmdline: m.cmdline,
    memSize: hex(m.memSize),
    xExecHeap: m.xExecHeap,
    manifest: manifestToJson(m.manifest),
    devices: m.devices.map((d) => (d.net
      ? { name: d.name, type: 'NET_BASIC', mac: [...d.net.mac].map((b) => b.toString(16).padStart(2, '0')).join(':'), mtu: d.net.mtu }
      : { name: d.name, type: 'BLOCK_BASIC', capacity: String(d.block!.capacity), blockSize: d.block!.blockSize })),
    point: { yield: m.point.yield, syscall: 'epoll_pwait', monotonicNs: String(m.point.monotonicNs), deadlineNs: String(m.point.deadlineNs), bootId: m.point.bootId },
    lowMemorySize: m.lowMemorySize,
    memory: {
      file: SNAPSHOT_MEMORY, size: hex(m.memSize), pages: m.memory.pages,
      regions: m.memory.regions.map((r) => ({ vaddr: hex(r.vaddr), length: hex(r.length), prot: protName(r.prot) })),
    },
    cpu,
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** Typed access to a JSON object, every failure naming the field. */
class Fields {
  constructor(private readonly bad: (why: string) => SnapshotError, private readonly obj: Record<string, unknown>, private readonly path: string,
    keys: string[]) {
    for (const k of Object.keys(obj)) if (!keys.includes(k)) throw bad(`unknown field ${this.at(k)}`);
  }

  at(k: string): string {
    return this.path ? `${this.path}.${k}` : k;
  }

  private get(k: string): unknown {
    if (!(k in this.obj)) throw this.bad(`${this.at(k)} is missing`);
    return this.obj[k];
  }

  str(k: string, max = 1 << 16): string {
    const v = this.get(k);
    if (typeof v !== 'string' || v.length > max) throw this.bad(`${this.at(k)} must be a string`);
    return v;
  }

  bool(k: string): boolean {
    const v = this.get(k);
    if (typeof v !== 'boolean') throw this.bad(`${this.at(k)} must be true or false`);
    return v;
  }

  int(k: string, min: number, max: number): number {
    const v = this.get(k);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw this.bad(`${this.at(k)} must be a whole number from ${min} to ${max}`);
    return v;
  }

  /** A u64 written as "0x…" hex or a decimal string. */
  big(k: string): bigint {
    const v = this.get(k);
    if (typeof v !== 'string' || !/^(0x[0-9a-f]{1,16}|[0-9]{1,20})$/.test(v)) throw this.bad(`${this.at(k)} must be a 64-bit number as a string`);
    const n = BigInt(v);
    if (n >> 64n) throw this.bad(`${this.at(k)} does not fit in 64 bits`);
    return n;
  }

  bytes(k: string, max: number): Buffer {
    const v = this.get(k);
    if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length > ((max + 2) / 3) * 4 + 4) throw this.bad(`${this.at(k)} must be base64`);
    return Buffer.from(v, 'base64');
  }

  obj_(k: string, keys: string[]): Fields {
    const v = this.get(k);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw this.bad(`${this.at(k)} must be an object`);
    return new Fields(this.bad, v as Record<string, unknown>, this.at(k), keys);
  }

  raw(k: string): unknown {
    return this.get(k);
  }

  list(k: string, max: number): unknown[] {
    const v = this.get(k);
    if (!Array.isArray(v) || v.length > max) throw this.bad(`${this.at(k)} must be a list of at most ${max}`);
    return v;
  }

  item(k: string, i: number, v: unknown, keys: string[]): Fields {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw this.bad(`${this.at(k)}[${i}] must be an object`);
    return new Fields(this.bad, v as Record<string, unknown>, `${this.at(k)}[${i}]`, keys);
  }
}

/**
 * snapshot.json, parsed and checked. `source` names the file in messages.
 * A file from another snapshot format version is refused first, by name.
 */
export function parseSnapshotMeta(source: string, text: string): SnapshotMeta {
  const bad = (why: string) => new SnapshotError(`${source}: ${why}`, 'this snapshot cannot be restored: make it again with `tendril snapshot create`');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw bad(`not valid JSON (${(e as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('not a JSON object');
  const top = doc as Record<string, unknown>;
  if (top.format !== SNAPSHOT_FORMAT) throw bad(`not a tendril snapshot ("format" is not "${SNAPSHOT_FORMAT}")`);
  if (top.version !== SNAPSHOT_FORMAT_VERSION) {
    throw new SnapshotError(`${source}: snapshot format version ${JSON.stringify(top.version)}, but this tendril reads version ${SNAPSHOT_FORMAT_VERSION}`,
      'make the snapshot again with this tendril (`tendril snapshot create`)');
  }
  const f = new Fields(bad, top, '', ['format', 'version', 'tendril', 'created', 'guest', 'cmdline', 'memSize', 'xExecHeap', 'manifest',
    'devices', 'point', 'lowMemorySize', 'memory', 'cpu']);
  const guest = f.obj_('guest', ['file', 'sha256']);
  let manifest: Manifest;
  try {
    manifest = parseManifestJson(`${source}: manifest`, JSON.stringify(f.raw('manifest')));
  } catch (e) {
    throw new SnapshotError((e as Error).message, 'this snapshot cannot be restored: make it again with `tendril snapshot create`');
  }
  const devices = f.list('devices', 64).map((v, i) => {
    const type = (v as Record<string, unknown> | null)?.type;
    if (type === 'NET_BASIC') {
      const d = f.item('devices', i, v, ['name', 'type', 'mac', 'mtu']);
      const mac = d.str('mac', 17);
      if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac)) throw bad(`${d.at('mac')} must be a MAC address (six hex bytes)`);
      return { name: d.str('name', 67), kind: 'net' as const, net: { mac: Buffer.from(mac.split(':').map((h) => parseInt(h, 16))), mtu: d.int('mtu', 68, 65535) } };
    }
    if (type === 'BLOCK_BASIC') {
      const d = f.item('devices', i, v, ['name', 'type', 'capacity', 'blockSize']);
      return { name: d.str('name', 67), kind: 'block' as const, block: { capacity: d.big('capacity'), blockSize: d.int('blockSize', 512, 32768) } };
    }
    throw bad(`devices[${i}].type must be "NET_BASIC" or "BLOCK_BASIC"`);
  });
  const point = f.obj_('point', ['yield', 'syscall', 'monotonicNs', 'deadlineNs', 'bootId']);
  if (point.str('syscall') !== 'epoll_pwait') throw bad('point.syscall must be "epoll_pwait" (a guest is snapshotted at a yield)');
  const memory = f.obj_('memory', ['file', 'size', 'pages', 'regions']);
  if (memory.str('file') !== SNAPSHOT_MEMORY) throw bad(`memory.file must be "${SNAPSHOT_MEMORY}"`);
  const memSize = f.big('memSize');
  if (memory.big('size') !== memSize) throw bad('memory.size and memSize disagree');
  const regions = memory.list('regions', PLAN.MAX_REGIONS).map((v, i) => {
    const r = memory.item('regions', i, v, ['vaddr', 'length', 'prot']);
    const prot = PROT_NAMES.indexOf(r.str('prot', 3));
    if (prot < 0) throw bad(`${r.at('prot')} must be like "r-x" (r, w, x or -)`);
    return { vaddr: r.big('vaddr'), length: r.big('length'), prot };
  });
  const c = f.obj_('cpu', [...Object.keys(SnapshotCpu.fields), 'xsave']);
  const cpu: Record<string, unknown> = {};
  for (const [name, t] of Object.entries(SnapshotCpu.fields)) {
    if (t === 'u64') cpu[name] = c.big(name);
    else if (typeof t === 'string') cpu[name] = c.int(name, 0, 0xffffffff);
    else {
      const b = c.bytes(name, t[1]);
      if (b.length !== t[1]) throw bad(`cpu.${name} must be ${t[1]} bytes`);
      cpu[name] = b;
    }
  }
  const meta: SnapshotMeta = {
    tendril: f.str('tendril', 64),
    created: f.str('created', 64),
    guest: { file: guest.str('file', 4096), sha256: guest.str('sha256', 64) },
    cmdline: f.str('cmdline', SPT_CMDLINE_SIZE),
    memSize,
    xExecHeap: f.bool('xExecHeap'),
    manifest,
    devices,
    point: { yield: point.int('yield', 1, 0xffffffff), monotonicNs: point.big('monotonicNs'), deadlineNs: point.big('deadlineNs'), bootId: point.str('bootId', 64) },
    lowMemorySize: f.int('lowMemorySize', BOOT_INFO_SIZE, Number(SPT_GUEST_MIN_BASE)),
    memory: { pages: memory.int('pages', 0, 2 ** 32), regions },
    cpu: cpu as SnapshotCpuState,
    xsave: c.bytes('xsave', SNAPSHOT.MAX_XSAVE),
  };
  const problem = snapshotProblem(meta);
  if (problem) throw bad(problem);
  return meta;
}

/** The order attachDevices uses (supervisor/devices/index.ts): nets, then disks, each in manifest order. */
function attachOrder(m: Manifest): { name: string; kind: 'net' | 'block'; index: number }[] {
  const kind = (t: number) => (t === MftType.NET_BASIC ? 'net' as const : 'block' as const);
  return [...m.devices].sort((a, b) => (a.type === b.type ? a.index - b.index : a.type === MftType.NET_BASIC ? -1 : 1))
    .map((d) => ({ name: d.name, kind: kind(d.type), index: d.index }));
}

/** Why a parsed snapshot could not be restored as it is, or undefined. */
export function snapshotProblem(m: SnapshotMeta): string | undefined {
  const page = PAGE_SIZE;
  if (m.memSize % page !== 0n || m.memSize < SPT_GUEST_MIN_BASE + page || m.memSize > BigInt(MAX_MEM_MIB) << 20n) {
    return `memSize ${hex(m.memSize)} is not a guest memory size (page aligned, 1 MiB to ${MAX_MEM_MIB} MiB)`;
  }
  let prev = SPT_HOST_MEM_BASE;
  for (const r of m.memory.regions) {
    const end = r.vaddr + r.length;
    const where = `memory region ${hex(r.vaddr)}-${hex(end)}`;
    if (r.vaddr % page !== 0n || r.length % page !== 0n || r.length === 0n) return `${where} is not page aligned`;
    if (r.vaddr < SPT_HOST_MEM_BASE || end > m.memSize) return `${where} lies outside guest memory [${hex(SPT_HOST_MEM_BASE)}, ${hex(m.memSize)})`;
    if (r.vaddr < prev) return `${where} overlaps the region before it or is out of order`;
    if ((r.prot & 2) && (r.prot & 4) && !m.xExecHeap) return `${where} is writable and executable, but the snapshot was not made with --x-exec-heap`;
    prev = end;
  }
  const order = attachOrder(m.manifest);
  if (order.length !== m.devices.length) return `devices lists ${m.devices.length} devices, the manifest declares ${order.length}`;
  for (const [i, d] of m.devices.entries()) {
    const want = order[i];
    if (d.name !== want.name || d.kind !== want.kind) {
      return `devices[${i}] is ${d.kind} '${d.name}', but the manifest's device ${i} in attach order is ${want.kind} '${want.name}'`;
    }
    if (d.net && (d.net.mac[0] & 1)) return `devices[${i}].mac is a multicast address`;
    if (d.block) {
      const bs = BigInt(d.block.blockSize);
      if ((d.block.blockSize & (d.block.blockSize - 1)) !== 0 || d.block.capacity < bs || d.block.capacity % bs !== 0n) {
        return `devices[${i}]: capacity ${d.block.capacity} with ${d.block.blockSize}-byte blocks is not a disk geometry`;
      }
    }
  }
  const cmd = Buffer.byteLength(m.cmdline, 'utf8');
  if (cmd > SPT_CMDLINE_SIZE - 1) return 'cmdline is too long';
  if (m.lowMemorySize !== BOOT_INFO_SIZE + MFT_HEADER_SIZE + MFT_ENTRY_SIZE * m.manifest.entries + cmd + 1) {
    return 'lowMemorySize does not match the manifest and the command line';
  }
  return cpuProblem(m);
}

function cpuProblem(m: SnapshotMeta): string | undefined {
  const c = m.cpu;
  if (c.magic !== SNAPSHOT.CPU_MAGIC || c.reserved !== 0) return 'cpu.magic or cpu.reserved is wrong';
  if (c.flags & ~SNAPSHOT_CPU_FLAG.XSAVE) return 'cpu.flags has unknown bits';
  if (c.xsave_size !== m.xsave.length) return `cpu.xsave is ${m.xsave.length} bytes, cpu.xsave_size says ${c.xsave_size}`;
  const xsave = (c.flags & SNAPSHOT_CPU_FLAG.XSAVE) !== 0;
  if (xsave ? c.xsave_size < 576 : c.xsave_size !== 512) return `cpu.xsave_size ${c.xsave_size} is not the size of an ${xsave ? 'XSAVE' : 'FXSAVE'} area`;
  if (xsave) {
    if ((c.xcr0 & 3n) !== 3n) return 'cpu.xcr0 lacks x87 and SSE state';
    const bv = m.xsave.readBigUInt64LE(512);
    if (bv & ~c.xcr0) return 'the XSAVE header names state components outside cpu.xcr0';
    if (m.xsave.subarray(520, 576).some((b) => b !== 0)) return 'the XSAVE header is not in standard form';
    for (let i = 2; i < SNAPSHOT.XSAVE_COMPONENTS; i++) {
      if (!((c.xcr0 >> BigInt(i)) & 1n)) continue;
      const off = c.xsave_layout.readUInt32LE(8 * i);
      const size = c.xsave_layout.readUInt32LE(8 * i + 4);
      if (off + size > c.xsave_size) return `XSAVE component ${i} lies beyond the XSAVE area`;
    }
  }
  // rip is just after the syscall instruction of the interrupted epoll_pwait.
  const exec = m.memory.regions.some((r) => (r.prot & 4) && c.rip - 2n >= r.vaddr && c.rip <= r.vaddr + r.length);
  if (!exec) return `the resume point ${hex(c.rip)} is not in executable memory`;
  if (c.rsp < SPT_HOST_MEM_BASE || c.rsp > m.memSize) return `the stack pointer ${hex(c.rsp)} is outside guest memory`;
  if (c.rflags & ~RFLAGS_ALLOWED) return `cpu.rflags ${hex(c.rflags)} has bits user code cannot set`;
  if (c.fs_base >= USER_ADDR_LIMIT || c.gs_base >= USER_ADDR_LIMIT) return 'cpu.fs_base or cpu.gs_base is not a user address';
  return undefined;
}

/** One line for a device's properties, as messages name them. */
export function describeSnapshotDevice(d: SnapshotDevice): string {
  return d.net ? `${deviceTypeName(MftType.NET_BASIC)} '${d.name}' (MTU ${d.net.mtu})`
    : `${deviceTypeName(MftType.BLOCK_BASIC)} '${d.name}' (${d.block!.capacity} bytes, ${d.block!.blockSize}-byte blocks)`;
}

/** "yield" or "yield:N" (N ≥ 1): which blocking yield a snapshot is taken at; undefined if not that. */
export function parseSnapshotPoint(value: string): number | undefined {
  const m = /^yield(?::([0-9]{1,9}))?$/.exec(value);
  const n = m ? Number(m[1] ?? 1) : 0;
  return n >= 1 ? n : undefined;
}
