// Supervised hand-over: the stub runs as a child in monitor mode (see
// native/stub/monitor.c), so when the guest ends we know how — exit status,
// or the signal with the forbidden system call or the faulting address — and
// reproduce the same status ourselves. `run --supervise` uses it; serve's
// pool reads the same report (report.ts).

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { PlanFlags, encodePlan } from '../loader/plan.js';
import { compileLaunch, memoryFileFd, releaseLaunch, writePlanFd, type PreparedLaunch, type TraceSetup } from './launch.js';
import { STUB_PATH } from './paths.js';
import { guestEnd, parseMonitorMessages, type GuestEnd } from './report.js';
import * as os from './os.js';

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
export function spawnSupervised(p: PreparedLaunch, argv0: string, trace?: TraceSetup): Spawned {
  const c = compileLaunch(p, undefined, trace ? 'traced' : 'run');
  trace?.onCompiled(c);
  const n = p.devices.length;
  const memAt = 3 + n;
  const planAt = memAt + 1;
  const reportAt = planAt + 1;
  const traceAt = reportAt + 1;
  const memFd = memoryFileFd(c.memory);
  let planFd: number;
  try {
    planFd = writePlanFd(encodePlan(c.plan, c.filter.bpf, {
      deviceSrc: p.devices.map((_, i) => 3 + i), imageSrc: memAt, flags: PlanFlags.MONITOR | (trace?.flags ?? 0), reportFd: reportAt,
      ...(trace ? { sections: [trace.section(traceAt)] } : {}),
    }));
  } catch (e) {
    closeSync(memFd);
    throw e;
  }
  const started = process.hrtime.bigint();
  let child: ChildProcess;
  try {
    child = spawn(STUB_PATH, [String(planAt)], {
      argv0,
      env: {},
      stdio: ['inherit', 'inherit', 'inherit', ...p.devices.map((d) => d.hostfd), memFd, planFd, 'pipe', ...(trace ? [trace.fd] : [])],
    });
  } finally {
    closeSync(planFd);
    closeSync(memFd);
    if (trace) closeSync(trace.fd);
    releaseLaunch(p);
  }
  return { child, done: watchGuest(child, child.stdio[reportAt] as Readable, started) };
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
