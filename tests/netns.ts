// Network namespaces for tests and benchmarks: every network test makes its
// own namespace with its own taps, runs both ends (the guest under tendril and
// the host-side peer, e.g. ping) inside it, and deletes it afterwards even when
// the test fails. Deleting the namespace also deletes every tap in it, so
// nothing is left in the host's namespace and no traffic ever leaves.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { ROOT, runArgs, shellStatus, TENDRIL, type RunResult } from './helpers.js';

export const TAP_FD = join(ROOT, 'tests/tools/tap-fd.js');

export interface TapSpec {
  /** Interface name inside the namespace, e.g. "tap100" (< 16 chars). */
  name: string;
  /** Host-side address with prefix, e.g. "10.0.0.1/24"; none if omitted. */
  addr?: string;
  /** MTU of the tap (default: the kernel's, 1500). */
  mtu?: number;
  /** Bring the link up (default true); false leaves it down. */
  up?: boolean;
}

export interface SpawnOptions {
  /** Killed with SIGKILL after this long (default 60 s). */
  timeoutMs?: number;
  /** stdio of the child, as for child_process.spawn (default: ignore, pipe, pipe). */
  stdio?: ('pipe' | 'ignore' | 'inherit' | number)[];
}

/** A command running inside a namespace, started by us (so we may kill it, by pid). */
export interface Running {
  pid: number;
  child: ChildProcess;
  /** Output so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when stdout matches `re`; rejects if the process ends first or after `timeoutMs`. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
  /** Resolves once the process has exited (never rejects). */
  done: Promise<RunResult>;
  /** SIGKILL to its process group if still running. */
  kill(): void;
}

let counter = 0;

/** A namespace name unique to this process and call: tendril-t-<pid>-<n>. */
export function uniqueNsName(): string {
  counter += 1;
  return `tendril-t-${process.pid}-${counter}`;
}

function ipSync(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${(r.stderr || r.stdout).trim() || `exit ${r.status}`}`);
}

/**
 * Starts CMD in a process group of its own, so that a kill reaches what it
 * started too (tap-fd.js spawns the guest as its child): every member of that
 * group is a process this helper started.
 */
function startProcess(cmd: string, args: string[], opts: SpawnOptions): Running {
  const child = spawn(cmd, args, { stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'], detached: true });
  const killGroup = () => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      child.kill('SIGKILL'); // the group is gone; the leader too, most likely
    }
  };
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let exited = false;
  const watchers = new Set<() => void>();
  child.stdout?.on('data', (d: Buffer) => {
    out.push(d);
    for (const w of watchers) w();
  });
  child.stderr?.on('data', (d: Buffer) => err.push(d));
  const timer = setTimeout(killGroup, opts.timeoutMs ?? 60_000);
  const text = (bufs: Buffer[]) => Buffer.concat(bufs).toString('latin1');
  const done = new Promise<RunResult>((resolveDone) => {
    const finish = (status: number, signal: NodeJS.Signals | null, extra = '') => {
      clearTimeout(timer);
      exited = true;
      for (const w of watchers) w();
      resolveDone({ status, signal, stdout: text(out), stderr: text(err) + extra });
    };
    child.on('error', (e) => finish(-1, null, `spawn ${cmd}: ${e.message}\n`));
    child.on('close', (status, signal) => finish(shellStatus(status, signal), signal));
  });
  return {
    pid: child.pid ?? -1,
    child,
    stdout: () => text(out),
    stderr: () => text(err),
    done,
    // 'close' comes only once every holder of the child's stdout/stderr has gone,
    // descendants included, so after it there is nothing of ours left to kill.
    kill() {
      if (!exited) killGroup();
    },
    waitFor(re: RegExp, timeoutMs = 30_000) {
      return new Promise<void>((resolveWait, rejectWait) => {
        const check = () => {
          if (re.test(text(out))) {
            cleanup();
            resolveWait();
          } else if (exited) {
            cleanup();
            rejectWait(new Error(`${cmd} exited before printing ${re}: stdout ${JSON.stringify(text(out).slice(-500))}, stderr ${JSON.stringify(text(err).slice(-500))}`));
          }
        };
        const t = setTimeout(() => {
          cleanup();
          rejectWait(new Error(`${cmd} did not print ${re} within ${timeoutMs} ms: stdout ${JSON.stringify(text(out).slice(-500))}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(t);
          watchers.delete(check);
        };
        watchers.add(check);
        check();
      });
    },
  };
}

export class Netns {
  readonly name: string;
  private readonly started = new Set<Running>();
  private deleted = false;

  private constructor(name: string) {
    this.name = name;
  }

  /**
   * Creates the namespace (loopback up) and its taps. If any step fails the
   * namespace is deleted before the error is thrown.
   */
  static create(taps: TapSpec[] = [], name = uniqueNsName()): Netns {
    ipSync(['netns', 'add', name]);
    const ns = new Netns(name);
    try {
      ipSync(['-n', name, 'link', 'set', 'lo', 'up']);
      for (const tap of taps) ns.addTap(tap);
    } catch (e) {
      ns.destroySync();
      throw e;
    }
    return ns;
  }

  addTap(tap: TapSpec): void {
    ipSync(['-n', this.name, 'tuntap', 'add', tap.name, 'mode', 'tap']);
    if (tap.mtu !== undefined) ipSync(['-n', this.name, 'link', 'set', tap.name, 'mtu', String(tap.mtu)]);
    if (tap.up ?? true) ipSync(['-n', this.name, 'link', 'set', tap.name, 'up']);
    if (tap.addr) ipSync(['-n', this.name, 'addr', 'add', tap.addr, 'dev', tap.name]);
  }

  /** argv that runs CMD ARGS inside the namespace. */
  argv(cmd: string, args: string[]): [string, string[]] {
    return ['ip', ['netns', 'exec', this.name, cmd, ...args]];
  }

  /** Starts CMD ARGS inside the namespace. `ip netns exec` execs CMD, so the pid is CMD's. */
  spawn(cmd: string, args: string[], opts: SpawnOptions = {}): Running {
    if (this.deleted) throw new Error(`namespace ${this.name} is already deleted`);
    const [c, a] = this.argv(cmd, args);
    const r = startProcess(c, a, opts);
    this.started.add(r);
    void r.done.then(() => this.started.delete(r));
    return r;
  }

  /** Runs CMD ARGS inside the namespace to completion, bounded by opts.timeoutMs. */
  run(cmd: string, args: string[], opts: SpawnOptions = {}): Promise<RunResult> {
    return this.spawn(cmd, args, opts).done;
  }

  /** Starts `tendril ARGS` inside the namespace (exec hand-over: the pid becomes the guest's). */
  tendril(args: string[], opts: SpawnOptions = {}): Running {
    return this.spawn(process.execPath, [TENDRIL, ...runArgs(args)], opts);
  }

  /** Starts CMD ARGS inside the namespace with TAP opened and attached as its fd 3 (tests/tools/tap-fd.js). */
  withTapFd(tap: string, cmd: string, args: string[], opts: SpawnOptions = {}, tapFdOptions: ('--pi' | '--vnet-hdr')[] = []): Running {
    return this.spawn(process.execPath, [TAP_FD, ...tapFdOptions, tap, '--', cmd, ...args], opts);
  }

  /** Kills what we started that still runs, then deletes the namespace and its taps. Idempotent. */
  async destroy(): Promise<void> {
    const waits = [...this.started].map((r) => {
      r.kill();
      return r.done;
    });
    await Promise.all(waits);
    this.destroySync();
  }

  private destroySync(): void {
    if (this.deleted) return;
    for (const r of this.started) r.kill();
    const r = spawnSync('ip', ['netns', 'del', this.name], { encoding: 'utf8', timeout: 10_000 });
    // Already gone is fine; anything else is worth a line but must not mask the test's own failure.
    if (r.status !== 0 && !/No such file/.test(r.stderr ?? '')) {
      process.stderr.write(`netns: ip netns del ${this.name}: ${(r.stderr ?? '').trim()}\n`);
    }
    this.deleted = true;
  }
}

/**
 * Runs fn with a fresh namespace holding `taps`; the namespace is deleted when
 * fn settles and, as a second line of defence, in the test's teardown.
 */
export async function withNetns<T>(t: ExecutionContext | undefined, taps: TapSpec[], fn: (ns: Netns) => Promise<T>): Promise<T> {
  const ns = Netns.create(taps);
  t?.teardown(() => ns.destroy());
  try {
    return await fn(ns);
  } finally {
    await ns.destroy();
  }
}

// ---------------------------------------------------------------------------
// ping

export interface PingSpec {
  /** Destination inside the namespace, e.g. "10.0.0.2". */
  addr: string;
  /** Packets to send (`-c`). */
  count: number;
  /** Hard deadline in seconds (`-w`): ping stops by then whatever happened. */
  deadlineS: number;
  /** Payload pattern (`-p`), e.g. "deadbeef". */
  pattern?: string;
  /** Flood (`-f`, the default) or one packet every `intervalS` seconds. */
  flood?: boolean;
  intervalS?: number;
  /** Pin ping to this CPU (taskset), e.g. for benchmarks. */
  cpu?: number;
}

export function pingArgs(p: PingSpec): string[] {
  const args = p.flood === false ? ['-q'] : ['-fq'];
  if (p.flood === false && p.intervalS !== undefined) args.push('-i', String(p.intervalS));
  args.push('-c', String(p.count), '-w', String(p.deadlineS));
  if (p.pattern) args.push('-p', p.pattern);
  args.push(p.addr);
  return args;
}

export interface PingSummary {
  transmitted: number;
  received: number;
  timeMs: number;
  /** The two summary lines, for t.log. */
  summary: string;
  rtt: string;
}

/** Parses ping's "N packets transmitted, M received, … time Tms" and "rtt …" lines. */
export function parsePing(stdout: string): PingSummary | undefined {
  const m = /^(\d+) packets transmitted, (\d+) received.*?(?:time (\d+)ms)?$/m.exec(stdout);
  if (!m) return undefined;
  const rtt = /^rtt .*$/m.exec(stdout)?.[0] ?? '';
  return { transmitted: Number(m[1]), received: Number(m[2]), timeMs: Number(m[3] ?? 0), summary: m[0], rtt };
}

export interface FloodRun {
  guest: RunResult;
  pings: RunResult[];
  parsed: (PingSummary | undefined)[];
}

export interface FloodOptions {
  /** Arguments of `tendril` (e.g. ['run', '--mem=2', '--net:service0=tap100', GUEST, '100000']). */
  tendrilArgs: string[];
  /** Run tendril through tests/tools/tap-fd.js with this tap as fd 3. */
  tapFd?: string;
  /** What the guest prints once it serves (default: every "Serving ping on"). */
  ready?: RegExp;
  floods: PingSpec[];
  /** Bound for the guest (default: the longest ping deadline + 30 s). */
  timeoutMs?: number;
  /** Pin the guest to this CPU (taskset execs tendril, so the pid is still the guest's). */
  guestCpu?: number;
  /** Called with the guest's pid once it is ready, before the floods start. */
  onReady?: (guest: Running) => Promise<void> | void;
}

/**
 * Starts the guest in the namespace, waits until it serves, then runs the
 * ping floods concurrently; waits for all of them and the guest, and returns
 * every result. A guest that does not get ready is killed, and its output
 * is returned with no ping results.
 */
export async function guestWithFlood(ns: Netns, o: FloodOptions): Promise<FloodRun> {
  const longest = Math.max(0, ...o.floods.map((f) => f.deadlineS));
  const timeoutMs = o.timeoutMs ?? (longest + 30) * 1000;
  const pin = (cpu: number | undefined, cmd: string, args: string[]): [string, string[]] =>
    (cpu === undefined ? [cmd, args] : ['taskset', ['-c', String(cpu), cmd, ...args]]);
  const g = o.tapFd
    ? ns.spawn(...pin(o.guestCpu, process.execPath, [TAP_FD, o.tapFd, '--', process.execPath, TENDRIL, ...runArgs(o.tendrilArgs)]), { timeoutMs })
    : ns.spawn(...pin(o.guestCpu, process.execPath, [TENDRIL, ...runArgs(o.tendrilArgs)]), { timeoutMs });
  try {
    await g.waitFor(o.ready ?? /Serving ping on/, 30_000);
  } catch {
    g.kill();
    return { guest: await g.done, pings: [], parsed: [] };
  }
  if (o.onReady) await o.onReady(g);
  const pings = await Promise.all(o.floods.map((f) =>
    ns.run(...pin(f.cpu, 'ping', pingArgs(f)), { timeoutMs: (f.deadlineS + 10) * 1000 })));
  const guest = await g.done;
  return { guest, pings, parsed: pings.map((p) => parsePing(p.stdout)) };
}
