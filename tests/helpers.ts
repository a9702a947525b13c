// Shared test helpers: where things are, and how to run tendril for real.

import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (tests run from dist/tests). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const TENDRIL = join(ROOT, 'bin/tendril.js');
export const TENDRIL_SPT = join(ROOT, 'bin/tendril-spt.js');
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

const SIGNUM: Partial<Record<NodeJS.Signals, number>> = { SIGSEGV: 11, SIGSYS: 31, SIGABRT: 6, SIGKILL: 9, SIGILL: 4, SIGBUS: 7, SIGFPE: 8, SIGTRAP: 5 };

export function shellStatus(status: number | null, signal: NodeJS.Signals | null): number {
  if (signal) return 128 + (SIGNUM[signal] ?? 0);
  return status ?? -1;
}

/** Runs a command to completion; always bounded by a timeout. */
export function runCmd(cmd: string, args: string[], opts: SpawnSyncOptions = {}): RunResult {
  const r = spawnSync(cmd, args, { encoding: 'latin1', timeout: 60_000, maxBuffer: 64 << 20, ...opts });
  if (r.error) throw r.error;
  return { status: shellStatus(r.status, r.signal), signal: r.signal, stdout: String(r.stdout), stderr: String(r.stderr) };
}

export function tendril(args: string[], opts: SpawnSyncOptions = {}): RunResult {
  return runCmd(process.execPath, [TENDRIL, ...args], opts);
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

/** stderr must be exactly one line (a clear message, no stack trace). */
export function oneLine(stderr: string): boolean {
  return /^[^\n]+\n$/.test(stderr) && !/\n\s+at /.test(stderr);
}

import { spawn } from 'node:child_process';

/** Async variant of runCmd, so independent launches in one test file overlap. */
export function runCmdAsync(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; stdio?: ('pipe' | 'ignore' | 'inherit' | number)[] } = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { env: opts.env, stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (d: Buffer) => out.push(d));
    child.stderr?.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolvePromise({
        status: shellStatus(status, signal),
        signal,
        stdout: Buffer.concat(out).toString('latin1'),
        stderr: Buffer.concat(err).toString('latin1'),
      });
    });
  });
}

export function tendrilAsync(args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return runCmdAsync(process.execPath, [TENDRIL, ...args], opts);
}

/** Maps over items with at most `limit` running at once (launches are heavy on 2 cores). */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }));
  return out;
}

import { readFileSync as readFile, readlinkSync as readLink } from 'node:fs';
import { setTimeout as pause } from 'node:timers/promises';

/** Polls `probe` until it returns a value (not undefined/false); throws after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    let v: T | undefined | false;
    try {
      v = probe();
    } catch {
      v = undefined; // a /proc file not there yet, or gone
    }
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await pause(20);
  }
}

export const STUB = join(ROOT, 'native/build/tendril-stub');

/** /proc/PID/status once the guest runs (its seccomp filter is installed). */
export function waitForGuest(pid: number): Promise<string> {
  return waitFor(`pid ${pid} to run its guest`, () => {
    const status = readFile(`/proc/${pid}/status`, 'utf8');
    return /^Seccomp:\s+2$/m.test(status) && status;
  });
}

/** Until pid has exec'd the stub (it may still be waiting to start its guest). */
export function waitForStub(pid: number): Promise<true> {
  return waitFor(`pid ${pid} to exec the stub`, () => readLink(`/proc/${pid}/exe`) === STUB);
}

/** The children of pid (from /proc), [] if it is gone. */
export function childrenOf(pid: number): number[] {
  try {
    return readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
