// Device modules, one file per kind (net.ts, block.ts), registered here. Each
// module checks its requests against the manifest entry, attaches the device
// (opens the host resource) and says which syscalls the guest then needs on it.
// The order of modules is the reference's (core, net, block); the order of the
// user's options never matters.

import { closeSync } from 'node:fs';
import { MftType } from '../../loader/abi.js';
import { deviceTypeName, findDevice, type Manifest, type ManifestDevice } from '../../loader/manifest.js';
import type { Attachment } from '../../loader/plan.js';
import type { Rule } from '../../filters/policy.js';
import { UsageError } from '../errors.js';
import type { DeviceRequest } from '../options.js';
import { attachBlock } from './block.js';
import { attachNet } from './net.js';

export interface AttachedDevice {
  name: string;
  kind: 'net' | 'block';
  hostfd: number;
  attachment: Attachment;
  /** The syscalls the guest needs on this device, given the fd number it will see. */
  rules: (guestFd: number) => Rule[];
  /** Taps join the yield wait set; disks never do (abi.md §9). */
  pollable: boolean;
  /** One line for logs and `tendril inspect`. */
  summary: string;
}

const KIND_TYPE = { net: MftType.NET_BASIC, block: MftType.BLOCK_BASIC } as const;

/** Every request names a declared device of its type; every declared device is requested (abi.md §14). */
export function matchRequests(manifest: Manifest, requests: DeviceRequest[], api = false): Map<DeviceRequest, ManifestDevice> {
  const out = new Map<DeviceRequest, ManifestDevice>();
  for (const req of requests) {
    const dev = findDevice(manifest, req.name);
    if (!dev || dev.type !== KIND_TYPE[req.kind]) {
      const declared = manifest.devices.map((d) => `${d.name} (${deviceTypeName(d.type)})`).join(', ') || 'none';
      const why = dev ? `it is declared as ${deviceTypeName(dev.type)}` : 'not declared';
      throw new UsageError(`Resource not declared in manifest: '${req.name}' as ${deviceTypeName(KIND_TYPE[req.kind])} (${why})`,
        `the guest declares: ${declared}`);
    }
    out.set(req, dev);
  }
  const attached = new Set([...out.values()].map((d) => d.index));
  for (const dev of manifest.devices) {
    if (!attached.has(dev.index)) {
      const net = dev.type === MftType.NET_BASIC;
      const opt = api ? `"${dev.name}": {"${net ? 'net' : 'block'}": ${net ? 'TAP' : 'PATH'}} to "devices"` : net ? `--net:${dev.name}=TAP` : `--block:${dev.name}=PATH`;
      throw new UsageError(`Device '${dev.name}' of type ${deviceTypeName(dev.type)} declared but not attached`,
        `all declared devices must be attached: add ${opt}`);
    }
  }
  return out;
}

/** Attach in module order: net first, then block, each in manifest order. */
export function attachDevices(matched: Map<DeviceRequest, ManifestDevice>): AttachedDevice[] {
  const sorted = [...matched.entries()].sort(([ra, da], [rb, db]) =>
    (ra.kind === rb.kind ? da.index - db.index : ra.kind === 'net' ? -1 : 1));
  const done: AttachedDevice[] = [];
  try {
    for (const [req, dev] of sorted) {
      done.push(req.kind === 'net' ? attachNet(req, dev) : attachBlock(req, dev));
    }
  } catch (e) {
    releaseDevices(done);
    throw e;
  }
  return done;
}

/** Closes what attachDevices opened, when the launch is abandoned. */
export function releaseDevices(devs: AttachedDevice[]): void {
  for (const d of devs) {
    try {
      closeSync(d.hostfd);
    } catch {
      // already closed: nothing to release
    }
  }
}
