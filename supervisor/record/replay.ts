// `tendril replay`: the guest of a recording, re-run from the recorded
// image and initial state under the recorded filter (traced), with no
// device at all: the stub's monitor answers every call from the recording
// and compares everything the guest does with it (native/stub/replay.c).
// The stub is a child (spawn hand-over) so that this process can turn the
// replayer's verdict (loader/formats.ts ReplayStatus) into one line.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { compilePolicyCached, TRACE_ALL } from '../../filters/compile.js';
import { blockPolicy, corePolicy, netPolicy, type Policy } from '../../filters/policy.js';
import { checkMemory, parseGuestImage, type GuestImage } from '../../loader/image.js';
import {
  decodeStruct, encodeStruct, GUEST_FD, MonitorHello, MonitorReport, PLAN_SECTION_REC, PlanReplay, REC_CPUID, REC_PLAN_FLAG, REPLAY_MAGIC, REPORT,
  ReplayStatus, type Values,
} from '../../loader/formats.js';
import { encodePlan, memoryImage, PlanFlags, type GuestPlan } from '../../loader/plan.js';
import { RecordingError, type Recording } from '../../loader/recording.js';
import { memoryFileFd, writePlanFd } from '../launch.js';
import { STUB_PATH } from '../paths.js';
import { decodeReport, guestEnd, type GuestEnd } from '../report.js';
import * as os from '../os.js';

export type ReplayStatusValues = Values<typeof ReplayStatus.fields>;

export interface ReplayOptions {
  /** REC_PLAN_FLAG bits: QUIET, GDB, CORE_AT_UNTIL. */
  flags: number;
  /** 1-based event to stop before (0: none). */
  until: number;
  /** Leave the guest dumpable (cores, --gdb). */
  dumpable: boolean;
}

export interface ReplayRun {
  child: ChildProcess;
  /** Called for each verdict as it comes (STOPPED arrives while the guest still lives). */
  onStatus(fn: (s: ReplayStatusValues) => void): void;
  /** The guest's end, and the last verdict. */
  done: Promise<{ end: GuestEnd; status?: ReplayStatusValues }>;
}

/** Whether this CPU can fault cpuid: the kernel's cpuid_fault flag. */
export function hostCanFaultCpuid(): boolean {
  const flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  return flags.split(/\s+/).includes('cpuid_fault');
}

/** The guest image and the filter the recording implies, checked again here (the file is untrusted input). */
function recordedGuest(rec: Recording): { image: GuestImage; policy: Policy } {
  const corrupt = (why: string) => new RecordingError(`${rec.file} is corrupt: ${why}`);
  let image: GuestImage;
  try {
    image = parseGuestImage(rec.meta.guest.name, rec.image);
  } catch (e) {
    throw corrupt(`the guest image it carries is not a valid guest (${(e as Error).message})`);
  }
  if (image.header.entry !== rec.header.entry_rip) throw corrupt('its entry point and its image disagree');
  const rules = [...corePolicy({ epollfd: GUEST_FD.EPOLL, timerfd: GUEST_FD.TIMER })];
  for (const d of rec.meta.devices) {
    const okFd = Number.isInteger(d.fd) && d.fd >= GUEST_FD.FIRST_DEVICE && d.fd < 1 << 16;
    if (!okFd || typeof d.name !== 'string') throw corrupt('a device it describes has no valid fd or name');
    if (d.kind === 'net') {
      rules.push(...netPolicy(d.name, d.fd));
    } else if (d.kind === 'block') {
      if (!Number.isInteger(d.blockSize) || !/^[0-9]{1,20}$/.test(d.capacity ?? '')) throw corrupt(`block device '${d.name}' has no valid geometry`);
      rules.push(...blockPolicy(d.name, d.fd, d.blockSize!, BigInt(d.capacity!), d.readOnly === true));
    } else {
      throw corrupt(`device '${d.name}' is of an unknown kind`);
    }
  }
  return { image, policy: { rules } };
}

/** Starts the replay. Throws RecordingError for a recording this host cannot replay. */
export function startReplay(rec: Recording, opts: ReplayOptions): ReplayRun {
  const { image, policy } = recordedGuest(rec);
  const faulted = rec.cpu.mode === REC_CPUID.FAULTED;
  if (faulted && !hostCanFaultCpuid()) throw cpuidNeeded(rec);
  const memSize = rec.header.mem_size;
  const segments = checkMemory(image, memSize, 'the recorded memory size', Number(memSize >> 20n));
  const memory = memoryImage(segments);
  const filter = compilePolicyCached(policy, TRACE_ALL);
  const plan: GuestPlan = {
    memSize, entry: rec.header.entry_rip, flags: (rec.header.plan_flags & PlanFlags.X_EXEC_HEAP) | (opts.dumpable ? PlanFlags.DUMPABLE : 0),
    regions: memory.regions, lowMemory: rec.lowMemory, deviceFds: [], polls: [],
  };
  // The stub finds: the memory file at 3, the plan at 4, the report pipe at 5, the recording at 6.
  const section = encodeStruct(PlanReplay, {
    file_src: 6, flags: opts.flags | (faulted ? REC_PLAN_FLAG.FAULT_CPUID : 0), stream_offset: BigInt(rec.streamOffset), stream_len: BigInt(rec.streamLength),
    until: BigInt(opts.until),
  });
  const memFd = memoryFileFd(memory);
  let planFd: number | undefined;
  let recFd: number | undefined;
  let child: ChildProcess;
  try {
    planFd = writePlanFd(encodePlan(plan, filter.bpf, {
      deviceSrc: [], imageSrc: 3, flags: PlanFlags.REPLAY, reportFd: 5, sections: [{ type: PLAN_SECTION_REC.REPLAY, data: section }],
    }));
    recFd = openSync(rec.file, 'r');
    child = spawn(STUB_PATH, ['4'], { argv0: `tendril: replay ${rec.meta.guest.name}`, env: {}, stdio: ['inherit', 'inherit', 'inherit', memFd, planFd, 'pipe', recFd] });
  } finally {
    closeSync(memFd);
    if (planFd !== undefined) closeSync(planFd);
    if (recFd !== undefined) closeSync(recFd);
  }
  const started = process.hrtime.bigint();
  const listeners: ((s: ReplayStatusValues) => void)[] = [];
  let last: ReplayStatusValues | undefined;
  let reportBuf: Buffer | undefined;
  let pending = Buffer.alloc(0);
  const pipe = (child.stdio as unknown as NodeJS.ReadableStream[])[5];
  pipe.on('data', (d: Buffer) => {
    pending = Buffer.concat([pending, d]);
    for (;;) {
      if (pending.length < 4) break;
      const magic = pending.readUInt32LE(0);
      const size = magic === REPORT.HELLO_MAGIC ? MonitorHello.size : magic === REPLAY_MAGIC.STATUS_MAGIC ? ReplayStatus.size
        : magic === REPORT.MAGIC ? MonitorReport.size : 0;
      if (size === 0) {
        pending = Buffer.alloc(0); // not a message of ours: stop reading rather than misparse
        break;
      }
      if (pending.length < size) break;
      const msg = pending.subarray(0, size);
      pending = pending.subarray(size);
      if (magic === REPLAY_MAGIC.STATUS_MAGIC) {
        last = decodeStruct(ReplayStatus, msg);
        for (const l of listeners) l(last);
      } else if (magic === REPORT.MAGIC) {
        reportBuf = Buffer.from(msg);
      }
    }
  });
  const closed = new Promise<void>((r) => pipe.on('close', () => r()));
  const done = new Promise<{ end: GuestEnd; status?: ReplayStatusValues }>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', async (code, sig) => {
      await closed;
      const report = reportBuf ? decodeReport(reportBuf) : undefined;
      resolve({ end: guestEnd(report, code, sig ? os.signalNumber(sig) : undefined, started), status: last });
    });
  });
  return { child, onStatus: (fn) => listeners.push(fn), done };
}

export function cpuidNeeded(rec: Recording): RecordingError {
  return new RecordingError(`${rec.file} was recorded with cpuid faulting (every cpuid answer is in the recording), and this CPU cannot fault cpuid (no cpuid_fault)`,
    'replay it on a machine whose CPU can (see docs/record-replay.md, "CPU requirements")');
}
