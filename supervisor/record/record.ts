// `tendril run --record=FILE`: the file is created here and starts with
// everything a replay needs besides the events (loader/recording.ts): what
// was run, the guest image, the guest's initial low memory. The stub's
// monitor then appends the events and, when the guest has ended, the
// trailer (native/stub/record.c). The guest runs for real, with its devices,
// under its usual filter in its traced form (filters/compile.ts).

import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, statSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, resolve } from 'node:path';
import { encodeStruct, PLAN_SECTION_REC, PlanRecord, REC_PLAN_FLAG } from '../../loader/formats.js';
import { deviceFd, PlanFlags } from '../../loader/plan.js';
import { encodeRecordingStart, type RecordedDevice, type RecordingMeta } from '../../loader/recording.js';
import { version } from '../cli.js';
import { LaunchError } from '../errors.js';
import type { PreparedLaunch, TraceSetup } from '../launch.js';
import type { RunOptions } from '../options.js';

function formatMac(mac: Buffer): string {
  return [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** The devices as the guest saw them (manifest copy, fd numbers), and where they came from. */
function recordedDevices(p: PreparedLaunch, opts: RunOptions): RecordedDevice[] {
  return p.devices.map((d, i) => {
    const req = opts.devices.find((r) => r.name === d.name);
    const a = d.attachment;
    const source = req?.kind === 'net' ? (req.iface ?? `fd ${req.fd}`) : req?.kind === 'block' ? (req.path ?? `fd ${req.fd}`) : undefined;
    return {
      name: d.name, kind: d.kind, handle: a.index, fd: deviceFd(i), source,
      ...(a.net ? { mac: formatMac(a.net.mac), mtu: a.net.mtu } : {}),
      ...(a.block ? { capacity: a.block.capacity.toString(), blockSize: a.block.blockSize, readOnly: req?.kind === 'block' && req.readOnly } : {}),
    };
  });
}

/** The same file (device and inode) as an fd or a path, if it exists. */
function sameInode(a: { dev: number; ino: number }, b: { dev: number; ino: number }): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/**
 * Refuses a recording path that is the guest or one of its disks (a slip
 * of the keyboard must not truncate the user's image), then creates the
 * file (0600: it holds everything the guest read).
 */
function openRecordingFile(path: string, p: PreparedLaunch): number {
  let existing: { dev: number; ino: number } | undefined;
  try {
    existing = statSync(path);
  } catch {
    existing = undefined;
  }
  if (existing) {
    if (sameInode(existing, statSync(p.image.file))) throw new LaunchError(`--record=${path} is the guest image itself`, 'name a new file for the recording');
    for (const d of p.devices) {
      if (d.kind === 'block' && sameInode(existing, fstatSync(d.hostfd))) {
        throw new LaunchError(`--record=${path} is the disk attached as '${d.name}'`, 'name a new file for the recording');
      }
    }
  }
  try {
    return openSync(path, 'w', 0o600);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new LaunchError(`--record=${path}: cannot create the recording: ${err.code ?? err.message}`, 'check that the directory exists and is writable');
  }
}

/** What the hand-over adds to record this run into `path`. */
export function recordingSetup(path: string, p: PreparedLaunch, opts: RunOptions): TraceSetup {
  const fd = openRecordingFile(resolve(path), p);
  const meta: RecordingMeta = {
    tendril: version(),
    created: new Date().toISOString(),
    host: hostname(),
    guest: { name: basename(p.image.file), sha256: createHash('sha256').update(p.image.bytes).digest('hex'), size: p.image.bytes.length },
    cmdline: p.cmdline,
    memMiB: opts.memMiB,
    devices: recordedDevices(p, opts),
  };
  return {
    flags: PlanFlags.RECORD,
    fd,
    section: (stubFd) => ({
      type: PLAN_SECTION_REC.RECORD,
      data: encodeStruct(PlanRecord, { file_src: stubFd, flags: REC_PLAN_FLAG.FAULT_CPUID }),
    }),
    onCompiled: (c) => {
      const start = encodeRecordingStart({
        meta, image: p.image.bytes, lowMemory: c.plan.lowMemory, memSize: p.memSize, entry: p.image.header.entry,
        planFlags: p.flags & PlanFlags.X_EXEC_HEAP,
      });
      try {
        let o = 0;
        while (o < start.length) o += writeSync(fd, start, o, start.length - o);
      } catch (e) {
        closeSync(fd);
        throw new LaunchError(`--record=${path}: cannot write the recording: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    },
  };
}
