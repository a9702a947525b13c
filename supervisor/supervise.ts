// Supervised hand-over: the stub runs as a child in monitor mode (see
// native/stub/monitor.c), so when the guest ends we know how — exit status,
// or the signal with the forbidden system call or the faulting address — and
// reproduce the same status ourselves. `run --supervise` uses it; serve's
// pool reads the same report (report.ts).

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { PlanFlags, encodePlan, type GuestPlan, type PlanSectionData } from '../loader/plan.js';
import { TRACE_ALL } from '../filters/compile.js';
import { compileLaunch, memoryFileFd, releaseLaunch, writePlanFd, type PreparedLaunch, type TraceSetup } from './launch.js';
import { STUB_PATH } from './paths.js';
import { guestEnd, parseMonitorMessages, type GuestEnd } from './report.js';
import * as os from './os.js';
import type { StartedJail } from './isolate/jail.js';

export { explain, guestEnd, signalName, type GuestEnd, type GuestReport } from './report.js';

export interface Spawned {
  child: ChildProcess;
  /** Resolves when the guest has ended and the report (if any) is in. */
  done: Promise<GuestEnd>;
}

/**
 * Starts the guest as a child sharing our stdio: the devices at 3, 4, …,
 * then the memory file, the plan and the report pipe; the stub moves them
 * where the guest wants them. Our own copies are closed once the child has
 * its own.
 */
export function spawnSupervised(p: PreparedLaunch, argv0: string, trace?: TraceSetup, jail?: () => StartedJail): Spawned {
  const c = compileLaunch(p, undefined, trace ? TRACE_ALL : {});
  trace?.onCompiled(c);
  try {
    return spawnPlan({
      plan: c.plan, bpf: c.filter.bpf, deviceFds: p.devices.map((d) => d.hostfd), memFd: memoryFileFd(c.memory), argv0, jail,
      ...(trace ? { flags: trace.flags, extraFds: [trace.fd], sections: (at: number[]) => [trace.section(at[0])] } : {}),
    });
  } finally {
    if (trace) closeSync(trace.fd);
    releaseLaunch(p);
  }
}

export interface SpawnSpec {
  plan: GuestPlan;
  bpf: Buffer;
  /** Host fds of the devices, in the plan's order. */
  deviceFds: number[];
  /** The memory file; closed here once the child has it. */
  memFd: number;
  argv0: string;
  /** More plan flags (e.g. SNAPSHOT) besides MONITOR. */
  flags?: number;
  /** fds the stub needs besides the devices and the memory file (e.g. a snapshot's files), and the
   * hand-over sections that refer to them by the numbers the child gets. */
  extraFds?: number[];
  sections?: (extraAt: number[]) => PlanSectionData[];
  /** The guest's stdout and stderr: ours (default), or a pipe (child.stdout) for a server to collect. */
  console?: 'inherit' | 'pipe';
  /** --isolate: makes the guest's cgroups and the plan's isolation sections (supervisor/isolate/). */
  jail?: () => StartedJail;
}

/** The supervised hand-over of a guest plan: the stub as a child in monitor mode. */
export function spawnPlan(s: SpawnSpec): Spawned {
  const n = s.deviceFds.length;
  const memAt = 3 + n;
  const extra = s.extraFds ?? [];
  const extraAt = extra.map((_, i) => memAt + 1 + i);
  const planAt = memAt + 1 + extra.length;
  const reportAt = planAt + 1;
  let planFd: number;
  let jail: StartedJail | undefined;
  try {
    jail = s.jail?.();
    planFd = writePlanFd(encodePlan(s.plan, s.bpf, {
      deviceSrc: s.deviceFds.map((_, i) => 3 + i), imageSrc: memAt, flags: PlanFlags.MONITOR | (s.flags ?? 0) | (jail?.flags ?? 0), reportFd: reportAt,
      sections: [...(s.sections?.(extraAt) ?? []), ...(jail?.sections ?? [])],
    }));
  } catch (e) {
    closeSync(s.memFd);
    jail?.cgroups.remove();
    throw e;
  }
  const started = process.hrtime.bigint();
  let child: ChildProcess;
  try {
    child = spawn(STUB_PATH, [String(planAt)], {
      argv0: s.argv0,
      env: {},
      stdio: s.console === 'pipe' ? ['ignore', 'pipe', 'pipe', ...s.deviceFds, s.memFd, ...extra, planFd, 'pipe']
        : ['inherit', 'inherit', 'inherit', ...s.deviceFds, s.memFd, ...extra, planFd, 'pipe'],
    });
  } finally {
    closeSync(planFd);
    closeSync(s.memFd);
  }
  const done = watchGuest(child, child.stdio[reportAt] as Readable, started);
  if (!jail) return { child, done };
  // The monitor removes the guest's cgroups; this covers a stub that died before it could.
  const made = jail.cgroups;
  const removeLeft = () => {
    try {
      made.remove();
    } catch {
      // the monitor has said why on stderr
    }
  };
  return { child, done: done.finally(removeLeft) };
}

/** Collects the monitor's messages and the child's end into a GuestEnd. */
export function watchGuest(child: ChildProcess, reportStream: Readable, started: bigint): Promise<GuestEnd> {
  const chunks: Buffer[] = [];
  reportStream.on('data', (d: Buffer) => chunks.push(d));
  const reportDone = new Promise<void>((r) => reportStream.on('close', () => r()));
  return new Promise<GuestEnd>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', async (code, sig) => {
      await reportDone;
      const { report } = parseMonitorMessages(Buffer.concat(chunks));
      resolve(guestEnd(report, code, sig ? os.signalNumber(sig) : undefined, started));
    });
  });
}

/** Ends this process the way the guest ended: same exit code, or the same signal. */
export function mirrorExit(end: GuestEnd): never {
  if (end.signal !== undefined) {
    os.setrlimit(os.RLIMIT_CORE, Buffer.alloc(16)); // never a core of the supervisor itself
    os.resetSignal(end.signal);
    os.raise(end.signal);
  }
  process.exit(end.status);
}
