// Shared test helpers: where things are, and how to run tendril for real.

import { spawn, spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as pause } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

/** Repository root (tests run from dist/tests). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** Put in front of a command that must not outlive the test run (tests/tools/with-pdeathsig.c). */
export const WITH_PDEATHSIG = join(ROOT, 'tests/tools/build/with-pdeathsig');
export const TENDRIL = join(ROOT, 'bin/tendril.cjs');
export const TENDRIL_SPT = join(ROOT, 'bin/tendril-spt.cjs');
export const GUESTS = join(ROOT, 'tests/guests/build');

export function guest(name: string): string {
  return join(GUESTS, `${name}.spt`);
}

export interface RunResult {
  /** Shell-style status: exit code, or 128 + signal number. */
  status: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function shellStatus(status: number | null, signal: NodeJS.Signals | null): number {
  if (signal) return 128 + (osConstants.signals[signal] ?? 0);
  return status ?? -1;
}

/** Runs a command to completion; always bounded by a timeout. */
export function runCmd(cmd: string, args: string[], opts: SpawnSyncOptions = {}): RunResult {
  const r = spawnSync(cmd, args, { encoding: 'latin1', timeout: 60_000, maxBuffer: 64 << 20, ...opts });
  if (r.error) throw r.error;
  return { status: shellStatus(r.status, r.signal), signal: r.signal, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/**
 * With TENDRIL_TEST_ISOLATE set (`npm run test:isolate`), every `tendril run`
 * these helpers start gets --isolate: whole suites (the reference and
 * hostile guests, the disks) then run jailed, and must give the same results.
 */
export function runArgs(args: string[]): string[] {
  return process.env.TENDRIL_TEST_ISOLATE && args[0] === 'run' ? ['run', '--isolate', ...args.slice(1)] : args;
}

export function tendril(args: string[], opts: SpawnSyncOptions = {}): RunResult {
  return runCmd(process.execPath, [TENDRIL, ...runArgs(args)], opts);
}

export function tendrilSpt(args: string[], opts: SpawnSyncOptions = {}): RunResult {
  return runCmd(process.execPath, [TENDRIL_SPT, ...args], opts);
}

/** A temp dir removed after `fn`, even when it throws. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T> | T): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-test-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** stderr is exactly one line (a clear message, so no stack trace either). */
export function oneLine(stderr: string): boolean {
  return /^[^\n]+\n$/.test(stderr);
}


export interface AsyncRunOptions {
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  stdio?: ('pipe' | 'ignore' | 'inherit' | number)[];
  /** Bytes kept of each of stdout and stderr; the rest is drained and dropped. */
  captureLimit?: number;
  /** Called with the pid just before the deadline kill: what had the process become? */
  atDeadline?: (pid: number) => string;
  /** An event that ends the run early, as the deadline would (atDeadline is asked, then SIGKILL). */
  until?: (pid: number) => Promise<unknown>;
}

export interface AsyncRunResult extends RunResult {
  /** Set when the deadline killed the process: atDeadline's answer, or 'deadline'. */
  timedOut?: string;
  ms: number;
}

/** Async variant of runCmd, so independent launches overlap; always bounded by a deadline. */
export function runCmdAsync(cmd: string, args: string[], opts: AsyncRunOptions = {}): Promise<AsyncRunResult> {
  const t0 = Date.now();
  const limit = opts.captureLimit ?? Infinity;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'] });
    const capture = () => {
      const chunks: Buffer[] = [];
      let len = 0;
      return { chunks, add: (d: Buffer) => { if (len < limit) chunks.push(d); len += d.length; } };
    };
    const out = capture();
    const err = capture();
    child.stdout?.on('data', out.add);
    child.stderr?.on('data', err.add);
    let timedOut: string | undefined;
    let ended = false;
    const stop = () => {
      if (ended || timedOut !== undefined) return;
      timedOut = opts.atDeadline && child.pid ? opts.atDeadline(child.pid) : 'deadline';
      child.kill('SIGKILL');
    };
    const timer = setTimeout(stop, opts.timeoutMs ?? 60_000);
    if (opts.until && child.pid) opts.until(child.pid).then(stop, () => undefined);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (status, signal) => {
      ended = true;
      clearTimeout(timer);
      resolvePromise({
        status: shellStatus(status, signal),
        signal,
        stdout: Buffer.concat(out.chunks).toString('latin1'),
        stderr: Buffer.concat(err.chunks).toString('latin1'),
        timedOut,
        ms: Date.now() - t0,
      });
    });
  });
}

export function tendrilAsync(args: string[], opts: AsyncRunOptions = {}): Promise<AsyncRunResult> {
  return runCmdAsync(process.execPath, [TENDRIL, ...runArgs(args)], opts);
}

/** Runs at most `size` tasks at a time (each launch starts a Node; the machine has 2 cores). */
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

/** Polls `probe` (which may be async) until it gives a value (not undefined/false); throws after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    let v: T | undefined | false;
    try {
      v = await probe();
    } catch {
      v = undefined; // a /proc file not there yet, or gone
    }
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await pause(20);
  }
}

export const STUB = join(ROOT, 'native/build/tendril-stub');

const cpuFlags = new Set((/^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '').trim().split(/\s+/));

/**
 * What this host's CPU can do, where the expected outcome depends on it.
 * Protection keys (pku, enabled by the kernel: ospke) make PROT_EXEC-only
 * pages really execute-only, so reading or writing guest text faults with
 * SEGV_PKUERR (si_code 4) instead of SEGV_ACCERR (2), and test_xnor faults.
 */
export const HOST = {
  pku: cpuFlags.has('pku') && cpuFlags.has('ospke'),
  cpuidFault: cpuFlags.has('cpuid_fault'),
};

/** /proc/PID/status once the guest runs (its seccomp filter is installed). */
export function waitForGuest(pid: number): Promise<string> {
  return waitFor(`pid ${pid} to run its guest`, () => {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return /^Seccomp:\s+2$/m.test(status) && status;
  });
}

/**
 * Until pid is blocked in system call `nr` (from /proc/PID/syscall): the
 * event "the stub is waiting" (nanosleep for --gdb, read for a start byte),
 * without guessing how long that takes.
 */
export function waitForSyscall(pid: number, nr: number): Promise<true> {
  return waitFor(`pid ${pid} to block in system call ${nr}`, () => readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0] === String(nr));
}

/** Until pid has exec'd the stub (it may still be waiting to start its guest). */
export function waitForStub(pid: number): Promise<true> {
  return waitFor(`pid ${pid} to exec the stub`, () => readlinkSync(`/proc/${pid}/exe`) === STUB);
}

/** The children of pid (from /proc), [] if it is gone. */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
