// Snapshots made by a running server (POST /snapshots). Each is a snapshot
// directory (supervisor/snapshot/create.ts) under the server's own private
// directory, kept loaded: its metadata checked and its memory file open, so
// a restore (POST /instances {"snapshot": ID}) reads nothing from disk and
// every clone maps the same page cache. Bounded: snapshots kept, and
// creations at once (each boots a guest to its point).

import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MftType } from '../../loader/abi.js';
import { parseSnapshotPoint } from '../../loader/snapshot.js';
import { deviceTypeName } from '../../loader/manifest.js';
import { createSnapshot } from '../snapshot/create.js';
import { hostCpu } from '../snapshot/cpu.js';
import { loadSnapshot, type LoadedSnapshot } from '../snapshot/restore.js';
import { formatMac } from '../devices/net.js';
import { log } from '../log.js';
import { BusyError, NotFoundError, RequestError } from './errors.js';
import { toRunOptions, type DeviceSpec } from './instances.js';
import type { ImageRegistry } from './registry.js';

export interface SnapshotRequest {
  image: string;
  args?: string[];
  memMiB?: number;
  devices?: Record<string, DeviceSpec>;
  /** "yield" (default) or "yield:N". */
  at?: string;
  xExecHeap?: boolean;
  /** How long the guest may take to reach the point (default and bound: the server's --max-timeout). */
  timeoutMs?: number;
}

export interface SnapshotEntry {
  id: string;
  /** The image it was booted from (its id in the registry, which it no longer needs). */
  image: string;
  createdAt: string;
  snap: LoadedSnapshot;
  storedBytes: number;
  allocatedBytes: number;
  timings: { runMs: number; dumpMs: number };
  output: string;
  restores: number;
}

export interface SnapshotLimits {
  maxSnapshots: number;
  maxCreating: number;
  outputLimit: number;
  maxTimeoutMs: number;
}

export function describeSnapshot(e: SnapshotEntry, withOutput = false): Record<string, unknown> {
  const m = e.snap.meta;
  return {
    id: e.id, image: e.image, createdAt: e.createdAt, memMiB: Number(m.memSize >> 20n), args: m.cmdline, at: `yield:${m.point.yield}`,
    xExecHeap: m.xExecHeap, pages: m.memory.pages, storedBytes: e.storedBytes, allocatedBytes: e.allocatedBytes, timings: e.timings,
    devices: m.devices.map((d) => (d.net ? { name: d.name, type: deviceTypeName(MftType.NET_BASIC), mac: formatMac(d.net.mac), mtu: d.net.mtu }
      : { name: d.name, type: deviceTypeName(MftType.BLOCK_BASIC), capacity: Number(d.block!.capacity), blockSize: d.block!.blockSize })),
    restores: e.restores,
    ...(withOutput ? { output: e.output } : {}),
  };
}

export class SnapshotStore {
  private entries = new Map<string, SnapshotEntry>();
  private creating = 0;
  /** Made at the first snapshot, so a server that never makes one (or is killed) leaves no directory. */
  private dir?: string;

  constructor(private readonly registry: ImageRegistry, readonly limits: SnapshotLimits) {
    hostCpu(); // asked once, now: a restore must not wait for it
  }

  get count(): number {
    return this.entries.size;
  }

  async create(req: SnapshotRequest): Promise<SnapshotEntry> {
    const at = req.at === undefined ? 1 : parseSnapshotPoint(req.at);
    if (at === undefined) throw new RequestError(`"at": ${JSON.stringify(req.at)} is not a snapshot point`, 'use "yield" or "yield:N" (the Nth yield with a deadline in the future)');
    if (req.timeoutMs !== undefined && req.timeoutMs > this.limits.maxTimeoutMs) {
      throw new RequestError(`"timeoutMs" ${req.timeoutMs} is more than this server allows (${this.limits.maxTimeoutMs})`);
    }
    if (this.entries.size + this.creating >= this.limits.maxSnapshots) {
      throw new BusyError(`this server keeps at most ${this.limits.maxSnapshots} snapshots`, 'DELETE /snapshots/ID those no longer needed');
    }
    if (this.creating >= this.limits.maxCreating) {
      throw new BusyError(`${this.creating} snapshots are being made already, the most this server makes at once`, 'retry in a moment');
    }
    const entry = this.registry.get(req.image);
    const id = randomBytes(8).toString('hex');
    this.dir ??= mkdtempSync(join(tmpdir(), 'tendril-serve-snapshots-'));
    const out = join(this.dir, id);
    this.creating++;
    try {
      const r = await createSnapshot({
        out, at, run: toRunOptions(req), image: entry.image, collectOutput: this.limits.outputLimit,
        timeoutMs: req.timeoutMs ?? this.limits.maxTimeoutMs, forwardSignals: false,
      });
      const e: SnapshotEntry = {
        id, image: entry.id, createdAt: r.meta.created, snap: loadSnapshot(r.dir), storedBytes: r.storedBytes, allocatedBytes: r.allocatedBytes,
        timings: { runMs: r.runMs, dumpMs: r.dumpMs }, output: (r.output ?? Buffer.alloc(0)).toString('utf8'), restores: 0,
      };
      this.entries.set(id, e);
      log.info({ snapshot: id, image: entry.id, pages: r.meta.memory.pages, runMs: r.runMs, dumpMs: r.dumpMs }, 'snapshot made');
      return e;
    } catch (e) {
      rmSync(out, { recursive: true, force: true });
      throw e;
    } finally {
      this.creating--;
    }
  }

  get(id: string): SnapshotEntry {
    const e = this.entries.get(id);
    if (!e) throw new NotFoundError(`no snapshot ${id}`, 'make one first: POST /snapshots');
    return e;
  }

  list(): SnapshotEntry[] {
    return [...this.entries.values()];
  }

  /** Forgets a snapshot; guests restored from it keep their own mappings of its memory. */
  remove(id: string): void {
    const e = this.get(id);
    this.entries.delete(id);
    closeSync(e.snap.memFd);
    rmSync(e.snap.dir, { recursive: true, force: true });
  }

  close(): void {
    for (const id of [...this.entries.keys()]) this.remove(id);
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
