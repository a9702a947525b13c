// Supervised hand-over: the stub runs as a child in monitor mode (see
// native/stub/monitor.c), so when the guest ends we know how — exit status,
// or the signal with the forbidden system call or the faulting address — and
// reproduce the same status ourselves. `run --supervise` and `serve` use it.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { PlanFlags } from '../loader/plan.js';
import { syscallName } from '../filters/libseccomp.js';
import { compileLaunch, releaseLaunch, writePlanFd, type PreparedLaunch } from './launch.js';
import { STUB_PATH } from './paths.js';
import * as os from './os.js';

/** The monitor's one-line report (monitor.c). */
export interface GuestReport {
  pid: number;
  started: boolean;
  exit?: number;
  signal?: number;
  core?: boolean;
  syscall?: number;
  fault_addr?: string;
  fault_code?: number;
  ip?: string;
  utime_us: number;
  stime_us: number;
  maxrss_kb: number;
}

export interface GuestEnd {
  /** Shell-style status: exit code, or 128 + signal. */
  status: number;
  signal?: number;
  report?: GuestReport;
  /** One line for humans when the guest did not simply exit. */
  reason?: string;
  durationMs: number;
}

const SIGNAMES: Record<number, string> = { 4: 'SIGILL', 5: 'SIGTRAP', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE', 9: 'SIGKILL', 11: 'SIGSEGV', 15: 'SIGTERM', 31: 'SIGSYS' };
const SEGV_CODES: Record<number, string> = { 1: 'address not mapped', 2: 'access not permitted by the page protection' };

export function signalName(sig: number): string {
  return SIGNAMES[sig] ?? `signal ${sig}`;
}

/** Why the guest ended, in one line, or undefined for an ordinary exit. */
export function explain(r: GuestReport | undefined, signal: number | undefined): string | undefined {
  if (signal === undefined) return undefined;
  if (signal === 31 && r?.syscall !== undefined) {
    return `guest made a forbidden system call: ${syscallName(r.syscall) ?? 'unknown'} (${r.syscall})` +
      `${r.ip ? ` at ip ${r.ip}` : ''}; the sandbox killed it (SIGSYS)`;
  }
  if ((signal === 11 || signal === 7) && r?.fault_addr) {
    return `guest memory fault at ${r.fault_addr} (${SEGV_CODES[r.fault_code ?? 0] ?? `code ${r.fault_code}`})` +
      `${r.ip ? `, last system call at ip ${r.ip}` : ''}; killed by ${signalName(signal)}`;
  }
  if (signal === 9) return 'guest was killed (SIGKILL)';
  return `guest was killed by ${signalName(signal)}`;
}

export interface Spawned {
  child: ChildProcess;
  /** Resolves when the guest has ended and the report (if any) is in. */
  done: Promise<GuestEnd>;
}

/**
 * Starts the guest as a child sharing our stdio. The tender fds and devices
 * are placed at 3, 4, …, then the plan, then the report pipe. Our own copies
 * are closed once the child has its own.
 */
export function spawnSupervised(p: PreparedLaunch, argv0: string): Spawned {
  const n = p.devices.length + 2;
  const planAt = 3 + n;
  const reportAt = planAt + 1;
  const c = compileLaunch(p, { kind: 'place', base: 3 }, { extraFlags: PlanFlags.MONITOR, reportFd: reportAt });
  const planFd = writePlanFd(c);
  const started = process.hrtime.bigint();
  let child: ChildProcess;
  try {
    child = spawn(STUB_PATH, [String(planAt)], {
      argv0,
      env: {},
      stdio: ['inherit', 'inherit', 'inherit', ...c.passFds, planFd, 'pipe'],
    });
  } finally {
    closeSync(planFd);
    releaseLaunch(p);
  }
  return { child, done: watchGuest(child, child.stdio[reportAt] as Readable, started) };
}

/**
 * The guest's end from the monitor's report line and the wait status of the
 * process we started (the monitor, which ends the way the guest did).
 */
export function guestEnd(reportText: string, code: number | null, signal: number | undefined, started: bigint): GuestEnd {
  const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
  let report: GuestReport | undefined;
  try {
    report = reportText ? JSON.parse(reportText) as GuestReport : undefined;
  } catch {
    report = undefined;
  }
  const sig = report?.signal ?? signal;
  const status = sig !== undefined ? 128 + sig : (report?.exit ?? code ?? 1);
  return { status, signal: sig, report, reason: explain(report, sig), durationMs };
}

/** Collects the monitor's report and the child's end into a GuestEnd. */
export function watchGuest(child: ChildProcess, reportStream: Readable, started: bigint): Promise<GuestEnd> {
  let reportText = '';
  reportStream.setEncoding('utf8');
  reportStream.on('data', (d: string) => { reportText += d; });
  const reportDone = new Promise<void>((r) => reportStream.on('close', () => r()));
  return new Promise<GuestEnd>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', async (code, sig) => {
      await reportDone;
      resolve(guestEnd(reportText, code, sig ? os.signalNumber(sig) : undefined, started));
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
