// `tendril run --restore=DIR`: a new guest process continues from a snapshot.
//
// The snapshot is validated in full before anything is opened
// (loader/snapshot.ts), the memory file must be exactly the guest memory's
// size, every device the manifest declares is attached again by name as in
// `run`, and what the guest has already read about a device (block capacity
// and sector size, net MTU) must be what it gets now. The filter is
// recomputed from the manifest and the devices exactly as for a fresh guest
// (launch.ts launchPolicy). The plan maps the memory file MAP_PRIVATE (the
// snapshot's regions, with their protections) and carries the register
// state, once this CPU is known to be able to resume it (cpu.ts); the stub
// resumes the guest (native/stub/restore.c).

import { closeSync, constants as fsc, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { BOOT_INFO_SIZE, MFT_ENTRY, MFT_ENTRY_SIZE, MFT_HEADER_SIZE, MFT_NAME_SIZE, SPT_BOOT_INFO_BASE } from '../../loader/abi.js';
import { SnapshotError } from '../../loader/errors.js';
import { encodeStruct, PLAN_FLAG, PLAN_SECTION, RestoreHeader, SnapshotCpu } from '../../loader/formats.js';
import { deviceFd, type GuestPlan } from '../../loader/plan.js';
import { parseSnapshotMeta, SNAPSHOT_MEMORY, SNAPSHOT_METADATA, type SnapshotMeta } from '../../loader/snapshot.js';
import { compilePolicyCached, type CompiledFilter } from '../../filters/compile.js';
import { attachDevices, matchRequests, releaseDevices, type AttachedDevice } from '../devices/index.js';
import { formatMac } from '../devices/net.js';
import { DeviceError } from '../errors.js';
import { launchPolicy } from '../launch.js';
import { restoreMask } from './cpu.js';
import { deviceLabel, type DeviceRequest, type RunOptions } from '../options.js';

export interface LoadedSnapshot {
  dir: string;
  meta: SnapshotMeta;
  /** DIR/memory, read-only. */
  memFd: number;
}

/** Metadata is a few KiB; anything much larger is not a snapshot's. */
const MAX_METADATA = 1 << 20;

/** Opens a snapshot's file: a regular file (never blocking on a FIFO put there), or a one-line refusal. */
function openSnapshotFile(dir: string, path: string, what: string): number {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new SnapshotError(`--restore=${dir}: ${code === 'ENOENT' ? `no ${what} there` : `cannot open ${path} (${code})`}`,
      code === 'ENOENT' ? 'name a directory made by `tendril snapshot create`' : undefined);
  }
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new SnapshotError(`${path} is not a regular file`, 'name a directory made by `tendril snapshot create`');
  }
  return fd;
}

/** DIR's metadata, checked, and its memory file, open. */
export function loadSnapshot(dir: string): LoadedSnapshot {
  const metaPath = join(dir, SNAPSHOT_METADATA);
  const metaFd = openSnapshotFile(dir, metaPath, SNAPSHOT_METADATA);
  let text: string;
  try {
    const size = fstatSync(metaFd).size;
    if (size > MAX_METADATA) throw new SnapshotError(`${metaPath} is ${size} bytes, too large for a snapshot's metadata`);
    const buf = Buffer.alloc(size);
    let got = 0;
    while (got < size) {
      const n = readSync(metaFd, buf, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    text = buf.subarray(0, got).toString('utf8');
  } finally {
    closeSync(metaFd);
  }
  const meta = parseSnapshotMeta(metaPath, text);
  const memPath = join(dir, SNAPSHOT_MEMORY);
  const memFd = openSnapshotFile(dir, memPath, SNAPSHOT_MEMORY);
  try {
    const st = fstatSync(memFd);
    if (BigInt(st.size) !== meta.memSize) {
      throw new SnapshotError(`${memPath} is ${st.size} bytes, but the snapshot's guest memory is ${meta.memSize} bytes: the memory file is ` +
        `${BigInt(st.size) < meta.memSize ? 'truncated' : 'not this snapshot\'s'}`, 'this snapshot cannot be restored: make it again with `tendril snapshot create`');
    }
  } catch (e) {
    closeSync(memFd);
    throw e;
  }
  return { dir, meta, memFd };
}

export interface PreparedRestore {
  snap: LoadedSnapshot;
  devices: AttachedDevice[];
  plan: GuestPlan;
  filter: CompiledFilter;
}

/**
 * The device requests as the snapshot needs them: the MAC is the snapshot's
 * unless --net-mac gave one, and a disk's sector size is the snapshot's
 * unless --block-sector-size gave one (then it must match).
 */
function withSnapshotDefaults(meta: SnapshotMeta, requests: DeviceRequest[]): DeviceRequest[] {
  return requests.map((r) => {
    const d = meta.devices.find((x) => x.name === r.name);
    if (r.kind === 'net' && d?.net && !r.mac) return { ...r, mac: d.net.mac };
    if (r.kind === 'block' && d?.block && r.sectorSize === undefined) return { ...r, sectorSize: d.block.blockSize };
    return r;
  });
}

/** What the guest has read about each device must be what it gets now. */
function checkDevices(meta: SnapshotMeta, devices: AttachedDevice[], requests: DeviceRequest[]): void {
  devices.forEach((a, i) => {
    const d = meta.devices[i];
    if (!d || d.name !== a.name || d.kind !== a.kind) throw new SnapshotError(`device ${i} is not '${d?.name}' as in the snapshot`, 'this is a bug in tendril; please report it');
    const req = requests.find((r) => r.name === a.name)!;
    const where = req.label ?? `${deviceLabel(req)}: device '${d.name}'`;
    const api = req.label !== undefined;
    if (d.net && a.attachment.net && d.net.mtu !== a.attachment.net.mtu) {
      throw new DeviceError(`${where}: the tap's MTU is ${a.attachment.net.mtu}, but the guest read MTU ${d.net.mtu} before the snapshot`,
        `attach a tap with MTU ${d.net.mtu} (ip link set TAP mtu ${d.net.mtu})`);
    }
    if (d.block && a.attachment.block) {
      const [want, got] = [d.block, a.attachment.block];
      if (want.blockSize !== got.blockSize) {
        throw new DeviceError(`${where}: sector size ${got.blockSize}, but the guest read ${want.blockSize} before the snapshot`,
          api ? `leave out "sectorSize" (the snapshot's ${want.blockSize} is the default) or give ${want.blockSize}`
            : `leave out --block-sector-size (the snapshot's ${want.blockSize} is the default) or give ${want.blockSize}`);
      }
      if (want.capacity !== got.capacity) {
        throw new DeviceError(`${where}: the disk holds ${got.capacity} bytes, but the guest read a capacity of ${want.capacity} bytes before the snapshot`,
          `attach a disk of exactly ${want.capacity} bytes (e.g. truncate -s ${want.capacity} DISK)`);
      }
    }
  });
}

/**
 * With --net-mac, the manifest copy in guest memory gets the new MAC (the
 * guest sees it when it next acquires the device; one it has already
 * acquired keeps the MAC it read). Low memory is then written whole by the
 * stub, from the snapshot's own bytes; otherwise it is left as the guest had it.
 */
function patchedLowMemory(snap: LoadedSnapshot, devices: AttachedDevice[]): Buffer {
  const { meta } = snap;
  const changed = devices.filter((a, i) => a.attachment.net && !a.attachment.net.mac.equals(meta.devices[i].net!.mac));
  if (changed.length === 0) return Buffer.alloc(0);
  const low = Buffer.alloc(meta.lowMemorySize);
  readSync(snap.memFd, low, 0, low.length, Number(SPT_BOOT_INFO_BASE));
  for (const a of changed) {
    const e = BOOT_INFO_SIZE + MFT_HEADER_SIZE + a.attachment.index * MFT_ENTRY_SIZE;
    const name = low.toString('latin1', e, e + MFT_NAME_SIZE).replace(/\0.*$/s, '');
    if (name !== a.name) {
      throw new SnapshotError(`${snap.dir}: the guest's manifest copy no longer names '${a.name}' at its entry, so its MAC cannot be changed`,
        'restore with the snapshot\'s MAC (leave out the MAC)');
    }
    a.attachment.net!.mac.copy(low, e + MFT_ENTRY.netMac);
  }
  return low;
}

export interface RestoreSettings {
  devices: DeviceRequest[];
  dumpable?: boolean;
  gdb?: boolean;
}

/**
 * A loaded snapshot's devices attached again and checked against what the
 * guest has read (the memory file stays the caller's).
 */
export function attachForRestore(snap: LoadedSnapshot, s: RestoreSettings): AttachedDevice[] {
  const requests = withSnapshotDefaults(snap.meta, s.devices);
  const devices = attachDevices(matchRequests(snap.meta.manifest, requests));
  try {
    checkDevices(snap.meta, devices, requests);
  } catch (e) {
    releaseDevices(devices);
    throw e;
  }
  return devices;
}

/**
 * The restored guest's plan and filter for checked devices. It depends on
 * the devices only through what the checks fixed (capacity, sector size,
 * MTU) and the MAC, so a server may reuse it for other disks and taps.
 * `where` prefixes the CPU refusals.
 */
export function restorePlanOf(snap: LoadedSnapshot, devices: AttachedDevice[], s: RestoreSettings, where: string): { plan: GuestPlan; filter: CompiledFilter } {
  const { meta } = snap;
  const rfbm = restoreMask(where, meta.cpu, meta.xsave);
  const filter = compilePolicyCached(launchPolicy(devices));
  const plan: GuestPlan = {
    memSize: meta.memSize,
    entry: meta.cpu.rip,
    flags: (meta.xExecHeap ? PLAN_FLAG.X_EXEC_HEAP : 0) | (s.dumpable ? PLAN_FLAG.DUMPABLE : 0) | (s.gdb ? PLAN_FLAG.STOP_AT_ENTRY : 0),
    regions: meta.memory.regions.map((r) => ({ vaddr: r.vaddr, length: r.length, file_offset: r.vaddr, prot: r.prot })),
    lowMemory: patchedLowMemory(snap, devices),
    deviceFds: devices.map((_, i) => deviceFd(i)),
    polls: devices.flatMap((d, i) => (d.pollable ? [{ fd: deviceFd(i), data: BigInt(d.attachment.index) }] : [])),
    sections: [{ type: PLAN_SECTION.RESTORE, data: Buffer.concat([encodeStruct(RestoreHeader, { rfbm, timer_ns: meta.point.deadlineNs }), encodeStruct(SnapshotCpu, meta.cpu), meta.xsave]) }],
  };
  return { plan, filter };
}

/** `run --restore=DIR`: validates the snapshot, attaches the devices, and makes the plan and filter of the restored guest. */
export function prepareRestore(opts: RunOptions): PreparedRestore {
  const dir = opts.restore!;
  const snap = loadSnapshot(dir);
  try {
    const where = `--restore=${dir}`;
    restoreMask(where, snap.meta.cpu, snap.meta.xsave); // refused before any device is opened
    const devices = attachForRestore(snap, opts);
    try {
      return { snap, devices, ...restorePlanOf(snap, devices, opts, where) };
    } catch (e) {
      releaseDevices(devices);
      throw e;
    }
  } catch (e) {
    closeSync(snap.memFd);
    throw e;
  }
}

export function describeRestore(p: PreparedRestore): Record<string, unknown> {
  return {
    snapshot: p.snap.dir, guest: p.snap.meta.guest.file, memMiB: Number(p.snap.meta.memSize >> 20n), pages: p.snap.meta.memory.pages,
    devices: p.devices.map((d) => (d.attachment.net ? `${d.name}: mac ${formatMac(d.attachment.net.mac)}` : d.name)),
  };
}
