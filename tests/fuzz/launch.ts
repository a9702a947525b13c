// Real `tendril` launches for the fuzzer and the hostile tests: a small
// concurrency limit (the machine has 2 cores and each launch starts a Node),
// bounded output capture, and a watchdog that, before killing a process at
// its deadline, looks at what the process has become. `tendril run` execs the
// native stub in place, so the same pid is first Node (the supervisor), then
// the stub, then — once Seccomp reads 2 — the guest. A guest that loops
// forever is the guest's business; a supervisor that never gets as far as
// exec is a hang of tendril.

import { readFileSync, readlinkSync } from 'node:fs';
import { runArgs, runCmdAsync, STUB, TENDRIL, type AsyncRunResult } from '../helpers.js';

/** What the process was when the deadline passed. */
export type TimeoutState =
  | 'guest' // the stub's image with the filter installed: the guest was running
  | 'stub' // the stub's image, no filter yet: the stub itself is stuck
  | 'supervisor' // still Node: tendril never handed over
  | 'gone'; // exited between the deadline and the look

export interface WatchedResult extends AsyncRunResult {
  /** Set when the watchdog killed the process. */
  timedOut?: TimeoutState;
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

/** `node bin/tendril.cjs ARGS` with a deadline; output beyond 256 KiB is drained and dropped. */
export async function launchTendril(args: string[], opts: { timeoutMs?: number; cwd?: string; until?: (pid: number) => Promise<unknown> } = {}): Promise<WatchedResult> {
  const r = await runCmdAsync(process.execPath, [TENDRIL, ...runArgs(args)],
    { timeoutMs: opts.timeoutMs ?? 10_000, cwd: opts.cwd, captureLimit: 256 << 10, atDeadline: stateOf, until: opts.until });
  return { ...r, timedOut: r.timedOut === 'gone' ? undefined : r.timedOut as TimeoutState | undefined };
}

/** A Node stack frame, or tendril's own "internal error" report: never acceptable. */
export function looksLikeCrash(stderr: string): boolean {
  return /internal error|\n\s+at |node:internal|Uncaught|FATAL ERROR/.test(stderr);
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
