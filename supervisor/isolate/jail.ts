// --isolate: the policy of the jailer. Which layers an isolated guest gets
// on this host (every one it provides; --isolate=strict refuses to run
// without all of them), the ids it runs as, the limits of its cgroups, and
// the plan sections that carry all of it to the stub (formats.ts ISOLATE),
// whose native/stub/isolate.c only applies them. Each layer stops something
// on its own should the seccomp filter ever be bypassed (README, "Security
// model"); `tendril inspect` and `tendril filter` show the list.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeStruct, ISOLATE, ISOLATE_FLAG, PLAN_FLAG, PlanIsolate } from '../../loader/formats.js';
import type { PlanSectionData } from '../../loader/plan.js';
import { IsolationError } from '../errors.js';
import { createGuestCgroups, limitPairs, type GuestCgroups } from './cgroups.js';
import { detectHost, type Avail, type CgroupHome, type Controller, type HostIsolation } from './host.js';

/**
 * The default guest id (uid and gid): dedicated to tendril's guests, high
 * above any range distributions hand out (systemd: system < 1000, users up
 * to 60000, containers 524288–1879048191), below 2^31 (tools that keep ids
 * in a signed int), with no passwd or group entry, so it owns no file and
 * belongs to no group. Guests share it; their namespaces and Landlock
 * domains keep them from each other (and each is non-dumpable).
 */
export const DEFAULT_GUEST_ID = 2_000_000_000;

/** Memory the guest's process needs beyond guest memory: page tables (up to 1/512 of it), kernel stacks, the stub's pages. */
export function memoryMarginBytes(memBytes: bigint): bigint {
  return (2n << 20n) + memBytes / 256n;
}

export interface IsolateOptions {
  /** --isolate=strict: refuse unless every layer applies. */
  strict: boolean;
  uid?: number;
  gid?: number;
  /** --cpus: a CPU quota (CFS bandwidth), in CPUs. */
  cpus?: number;
  /** --mem-limit: the memory cgroup's limit in MiB, instead of guest memory plus the margin. */
  memLimitMiB?: number;
  /** --cgroup-parent: a delegated cgroup v2 directory for the per-guest cgroups. */
  cgroupParent?: string;
}

export interface Layer {
  /** Short name: "uid/gid", "pid namespace", "landlock", "cgroup memory"… */
  name: string;
  ok: boolean;
  /** What it is here (ok), or why the host cannot provide it. */
  detail: string;
  /** What it stops, for the summary. */
  stops: string;
}

/** A jail decided for one launch (before any cgroup exists). */
export interface JailPlan {
  layers: Layer[];
  missing: Layer[];
  flags: number;
  uid: number;
  gid: number;
  landlock: { fs: bigint; net: bigint; scoped: bigint };
  cgroupHomes: CgroupHome[];
  memoryBytes: bigint;
  cpus?: number;
}

/** Landlock rights per ABI version (the kernel's uapi/linux/landlock.h): every one this ABI can handle. */
export function landlockRights(abi: number): { fs: bigint; net: bigint; scoped: bigint } {
  let fs = (1n << 13n) - 1n; // ABI 1: EXECUTE … MAKE_SYM
  if (abi >= 2) fs |= 1n << 13n; // REFER
  if (abi >= 3) fs |= 1n << 14n; // TRUNCATE
  if (abi >= 5) fs |= 1n << 15n; // IOCTL_DEV
  const net = abi >= 4 ? 3n : 0n; // BIND_TCP, CONNECT_TCP
  const scoped = abi >= 6 ? 3n : 0n; // ABSTRACT_UNIX_SOCKET, SIGNAL
  return { fs, net, scoped };
}

/** uid or gid → the name that /etc/passwd or /etc/group gives it, if any (read once per process: a server asks per launch). */
const entries = new Map<string, string | undefined>();
function entryFor(file: string, id: number): string | undefined {
  const key = `${file}:${id}`;
  if (!entries.has(key)) entries.set(key, readEntry(file, id));
  return entries.get(key);
}

function readEntry(file: string, id: number): string | undefined {
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const f = line.split(':');
      if (f.length >= 3 && Number(f[2]) === id && f[2] !== '') return f[0];
    }
  } catch {
    // no such file: no entry
  }
  return undefined;
}

const mib = (b: bigint) => `${Math.round((Number(b) / (1 << 20)) * 100) / 100} MiB`;

function layer(name: string, a: Avail<unknown>, detail: string, stops: string): Layer {
  return a.ok ? { name, ok: true, detail, stops } : { name, ok: false, detail: a.why, stops };
}

/** The layers --isolate gives a guest of `memMiB` on this host, and what the stub must do for them. */
export function planJail(opts: IsolateOptions, memMiB: number, host: HostIsolation = detectHost(opts.cgroupParent)): JailPlan {
  const uid = opts.uid ?? DEFAULT_GUEST_ID;
  const gid = opts.gid ?? DEFAULT_GUEST_ID;
  const memBytes = BigInt(memMiB) << 20n;
  const memoryBytes = opts.memLimitMiB !== undefined ? BigInt(opts.memLimitMiB) << 20n : memBytes + memoryMarginBytes(memBytes);
  const layers: Layer[] = [];
  let flags = 0;

  let ids: Avail<true> = host.privileged;
  if (ids.ok && opts.uid === undefined && opts.gid === undefined) {
    const user = entryFor('/etc/passwd', uid);
    const group = entryFor('/etc/group', gid);
    if (user || group) ids = { ok: false, why: `the default id ${uid} is taken here (${user ? `user ${user}` : `group ${group}`}); pass --uid and --gid` };
  }
  layers.push(layer('uid/gid', ids, `${uid}:${gid}, no supplementary groups${opts.uid === undefined ? ' (an id with no passwd or group entry)' : ''}`,
    'the host\'s files and processes: the guest owns none and may signal none'));
  layers.push(layer('capabilities', ids, 'none: effective, permitted, inheritable, ambient and bounding sets empty; securebits locked; no processes (RLIMIT_NPROC 0)',
    'every privileged operation'));
  if (ids.ok) flags |= ISOLATE_FLAG.CREDS;

  const ns = (name: string, a: Avail<true>, flag: number, detail: string, stops: string) => {
    layers.push(layer(name, a, detail, stops));
    if (a.ok) flags |= flag;
  };
  ns('pid namespace', host.namespaces.pid, ISOLATE_FLAG.NEWPID, 'new: an init is pid 1, the guest pid 2', 'seeing or signalling any other process');
  ns('mount namespace', host.emptyRoot, ISOLATE_FLAG.EMPTY_ROOT, 'new: the root is an empty read-only tmpfs (mode 0), the host\'s root unmounted',
    'reaching any file or device by path');
  ns('network namespace', host.namespaces.net, ISOLATE_FLAG.NEWNET, 'new and empty (its taps keep working through their fds)',
    'sockets onto the host\'s networks');
  ns('ipc namespace', host.namespaces.ipc, ISOLATE_FLAG.NEWIPC, 'new', 'System V and POSIX IPC objects of the host');
  ns('uts namespace', host.namespaces.uts, ISOLATE_FLAG.NEWUTS, 'new', 'changing the host\'s hostname');
  ns('cgroup namespace', host.namespaces.cgroup, ISOLATE_FLAG.NEWCGROUP, 'new, rooted at tendril\'s own cgroup (the guest sees only its own below it)', 'seeing the host\'s cgroup tree');

  const ll = host.landlock;
  layers.push(layer('landlock', ll, ll.ok ? `ABI ${ll.value}: a domain with no rule, denying every filesystem access${ll.value >= 4 ? ', TCP bind and connect' : ''}` +
    `${ll.value >= 6 ? ', abstract unix sockets and signals outside it' : ''}` : '', 'filesystem access through any fd it could open'));
  if (ll.ok) flags |= ISOLATE_FLAG.LANDLOCK;

  const homes: CgroupHome[] = [];
  const cg = (ctl: Controller, detail: (h: CgroupHome) => string, stops: string) => {
    const a = host.cgroups[ctl];
    layers.push(layer(`cgroup ${ctl}`, a, a.ok ? `v${a.value.version} under ${a.value.parent}: ${detail(a.value)}` : '', stops));
    if (a.ok) homes.push(a.value);
  };
  const swap = (h: CgroupHome) => (existsSync(join(h.parent, h.version === 2 ? 'memory.swap.max' : 'memory.memsw.limit_in_bytes'))
    ? 'no swap' : 'swap is not accounted here, so the limit holds RAM only');
  cg('memory', (h) => `limit ${mib(memoryBytes)}${opts.memLimitMiB === undefined ? ` (guest memory ${memMiB} MiB + ${mib(memoryMarginBytes(memBytes))})` : ''}, ${swap(h)}`,
    'taking more memory than it was given: its own OOM kill, not the host\'s');
  cg('pids', () => 'pids.max 2: the guest and its parent in the stub, born there (the guest cannot fork: RLIMIT_NPROC 0 too)', 'forking');
  if (opts.cpus !== undefined) cg('cpu', () => `quota ${opts.cpus} CPU`, 'taking more CPU time than its quota');
  layers.push({ name: 'seccomp', ok: true, detail: 'the guest\'s filter, last (tendril filter shows it)', stops: 'every system call it was not given' });

  const missing = layers.filter((l) => !l.ok);
  return { layers, missing, flags, uid, gid, landlock: ll.ok ? landlockRights(ll.value) : { fs: 0n, net: 0n, scoped: 0n }, cgroupHomes: homes, memoryBytes, cpus: opts.cpus };
}

/** One line per layer the host cannot provide. */
export function missingLines(plan: JailPlan): string[] {
  return plan.missing.map((l) => `isolate: no ${l.name}: ${l.detail}`);
}

/** Refuses (strict) a jail with missing layers. */
export function requireAll(plan: JailPlan): void {
  if (plan.missing.length === 0) return;
  throw new IsolationError(`--isolate=strict: this host cannot provide ${plan.missing.length === 1 ? 'a layer' : `${plan.missing.length} layers`}: ` +
    plan.missing.map((l) => l.name).join(', '), 'each is reported with its reason; without strict the guest runs with the others');
}

/** The summary `inspect` and `filter` print: one line per layer. */
export function summaryLines(plan: JailPlan): string[] {
  const w = Math.max(...plan.layers.map((l) => l.name.length));
  return plan.layers.map((l) => `  ${l.name.padEnd(w)}  ${l.ok ? l.detail : `MISSING: ${l.detail}`}`);
}

/** What a hand-over adds to the plan for a jail: its flag, its sections, the cgroups it made (to remove if the hand-over fails). */
export interface StartedJail {
  flags: number;
  sections: PlanSectionData[];
  cgroups: GuestCgroups;
}

/** The plan_isolate of a jail (flags as given). */
function jailStruct(plan: JailPlan, flags: number): Buffer {
  return encodeStruct(PlanIsolate, {
    flags, uid: plan.uid, gid: plan.gid, landlock_fs: plan.landlock.fs, landlock_net: plan.landlock.net, landlock_scoped: plan.landlock.scoped,
  });
}

/**
 * The argument a pool stub is started with to make this jail's namespaces
 * while it waits for its plan (`tendril-stub PLAN-FD JAIL`, formats.ts ISOLATE).
 */
export function preparedStubArg(plan: JailPlan): string {
  return jailStruct(plan, plan.flags).toString('hex');
}

/** The limits of a jail's cgroups: pids 2 is the guest and its parent in the stub, which joins first so the guest is born inside. */
export function cgroupLimits(plan: JailPlan): { memoryBytes: bigint; pids: number; cpus?: number } {
  return { memoryBytes: plan.memoryBytes, pids: 2, cpus: plan.cpus };
}

export interface StartOptions {
  /** The supervisor removes the cgroups once the stub has ended (serve: after the launch, not in it). */
  keep?: boolean;
  /** A prepared pool stub (isolate.c isolate_prepare): it has its own cgroups; the plan sets their limits. */
  prepared?: boolean;
}

/** Makes the guest's cgroups (none for a prepared stub, which has its own) and the plan's isolation sections. */
export function startJail(plan: JailPlan, o: StartOptions = {}): StartedJail {
  for (const h of plan.cgroupHomes) {
    if (Buffer.byteLength(h.parent) > ISOLATE.MAX_PATH - 64) throw new IsolationError(`--isolate: the cgroup directory ${h.parent} is too long a path for the stub`);
  }
  const cgroups: GuestCgroups = o.prepared ? { dirs: [], remove: () => undefined } : createGuestCgroups(plan.cgroupHomes, cgroupLimits(plan));
  const jail = jailStruct(plan, plan.flags | (o.keep || o.prepared ? ISOLATE_FLAG.KEEP_CGROUPS : 0));
  const sections: PlanSectionData[] = [{ type: ISOLATE.SECTION_JAIL, data: jail }];
  if (cgroups.dirs.length) sections.push({ type: ISOLATE.SECTION_CGROUPS, data: Buffer.from(cgroups.dirs.map((d) => `${d}\0`).join('')) });
  if (o.prepared && plan.cgroupHomes.length) {
    sections.push({ type: ISOLATE.SECTION_CGROUP_LIMITS, data: limitPairs(plan.cgroupHomes, cgroupLimits(plan)) });
  }
  return { flags: PLAN_FLAG.ISOLATE, sections, cgroups };
}
