// Real `tendril` launches for the fuzzer and the hostile tests: a small
// concurrency limit (the machine has 2 cores and each launch starts a Node),
// bounded output capture, and a watchdog that, before killing a process at
// its deadline, looks at what the process has become. `tendril run` execs the
// native stub in place, so the same pid is first Node (the supervisor), then
// the stub, then — once Seccomp reads 2 — the guest. A guest that loops
// forever is the guest's business; a supervisor that never gets as far as
// exec is a hang of tendril.

import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, TENDRIL, shellStatus } from '../helpers.js';

export const STUB = join(ROOT, 'native/build/tendril-stub');

/** Runs at most `size` tasks at a time. */
export class Pool {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly size: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.size) await new Promise<void>((r) => this.waiting.push(r));
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}

/** What the process was when the deadline passed. */
export type TimeoutState =
  | 'guest' // the stub's image with the filter installed: the guest was running
  | 'stub' // the stub's image, no filter yet: the stub itself is stuck
  | 'supervisor' // still Node: tendril never handed over
  | 'gone'; // exited between the deadline and the look

export interface WatchedResult {
  status: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Set when the watchdog killed the process. */
  timedOut?: TimeoutState;
  ms: number;
}

function stateOf(pid: number): TimeoutState {
  try {
    const exe = readlinkSync(`/proc/${pid}/exe`);
    if (exe !== STUB) return 'supervisor';
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return /^Seccomp:\s+2$/m.test(status) ? 'guest' : 'stub';
  } catch {
    return 'gone';
  }
}

const CAPTURE_LIMIT = 256 << 10;

/** `node bin/tendril.js ARGS` with a deadline; output beyond 256 KiB is drained and dropped. */
export function launchTendril(args: string[], opts: { timeoutMs?: number; cwd?: string } = {}): Promise<WatchedResult> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TENDRIL, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    child.stdout.on('data', (d: Buffer) => {
      if (outLen < CAPTURE_LIMIT) out.push(d);
      outLen += d.length;
    });
    child.stderr.on('data', (d: Buffer) => {
      if (errLen < CAPTURE_LIMIT) err.push(d);
      errLen += d.length;
    });
    let timedOut: TimeoutState | undefined;
    const timer = setTimeout(() => {
      timedOut = child.pid ? stateOf(child.pid) : 'gone';
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 10_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({
        status: shellStatus(status, signal),
        signal,
        stdout: Buffer.concat(out).toString('latin1'),
        stderr: Buffer.concat(err).toString('latin1'),
        timedOut: timedOut === 'gone' ? undefined : timedOut,
        ms: Date.now() - t0,
      });
    });
  });
}

/** A Node stack frame, or tendril's own "internal error" report: never acceptable. */
export function looksLikeCrash(stderr: string): boolean {
  return /internal error|\n\s+at |node:internal|Uncaught|FATAL ERROR/.test(stderr);
}

/** stderr is exactly one line. */
export function isOneLine(stderr: string): boolean {
  return /^[^\n]+\n$/.test(stderr);
}

/**
 * launchTendril, run a second time (after a pause) if the first run looks like
 * a crash. A crash that does not come back is returned as `unstable`: it is
 * reported, not counted. In practice that is dist/ being rebuilt under the
 * campaign (a half-written module: "does not provide an export named …").
 */
export async function launchChecked(args: string[], opts: { timeoutMs?: number; cwd?: string } = {}): Promise<{ r: WatchedResult; unstable?: WatchedResult }> {
  const first = await launchTendril(args, opts);
  if (!looksLikeCrash(first.stderr)) return { r: first };
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const second = await launchTendril(args, opts);
  return looksLikeCrash(second.stderr) ? { r: second } : { r: second, unstable: first };
}
