// Supervised hand-over: the stub runs as a child in monitor mode (see
// native/stub/monitor.c), so when the guest ends we know how — exit status,
// or the signal with the forbidden system call or the faulting address — and
// reproduce the same status ourselves. `run --supervise` uses it; serve's
// pool reads the same report (report.ts).

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { PlanFlags, encodePlan } from '../loader/plan.js';
import { compileLaunch, memoryFileFd, releaseLaunch, writePlanFd, type PreparedLaunch } from './launch.js';
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
export function spawnSupervised(p: PreparedLaunch, argv0: string, makeJail?: () => StartedJail): Spawned {
  const c = compileLaunch(p);
  const n = p.devices.length;
  const memAt = 3 + n;
  const planAt = memAt + 1;
  const reportAt = planAt + 1;
  const memFd = memoryFileFd(c.memory);
  let planFd: number;
  let jail: StartedJail | undefined;
  try {
    jail = makeJail?.();
    planFd = writePlanFd(encodePlan(c.plan, c.filter.bpf, {
      deviceSrc: p.devices.map((_, i) => 3 + i), imageSrc: memAt, flags: PlanFlags.MONITOR | (jail?.flags ?? 0), reportFd: reportAt,
      sections: jail?.sections,
    }));
  } catch (e) {
    closeSync(memFd);
    jail?.cgroups.remove();
    throw e;
  }
  const started = process.hrtime.bigint();
  let child: ChildProcess;
  try {
    child = spawn(STUB_PATH, [String(planAt)], {
      argv0,
      env: {},
      stdio: ['inherit', 'inherit', 'inherit', ...p.devices.map((d) => d.hostfd), memFd, planFd, 'pipe'],
    });
  } finally {
    closeSync(planFd);
    closeSync(memFd);
    releaseLaunch(p);
  }
  const done = watchGuest(child, child.stdio[reportAt] as Readable, started);
  // The monitor removes the guest's cgroups; this covers a stub that died before it could.
  const removeLeft = () => {
    try {
      jail!.cgroups.remove();
    } catch {
      // the monitor has said why on stderr
    }
  };
  return { child, done: jail ? done.finally(removeLeft) : done };
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
