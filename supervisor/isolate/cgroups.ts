// Per-guest cgroups: made and limited here, before the hand-over; the
// guest joins them itself (it must be alone in them: pids.max is 1) and
// its parent in the stub removes them when it has ended
// (native/stub/isolate.c), so they go even in exec mode, where no Node is
// left. Each guest's cgroup is a child of tendril's own cgroup (or of
// --cgroup-parent), so guests stay inside whatever limits contain tendril.
// Names carry the creator's pid and start time: a cgroup whose creator is
// gone and that holds no process is a leftover (a stub killed by SIGKILL
// before it could clean up) and the next launch in that parent removes it.

import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { EnvironmentError } from '../../loader/errors.js';
import type { CgroupHome } from './host.js';

export interface CgroupLimits {
  memoryBytes: bigint;
  /** pids.max: 2, the guest and its parent in the stub (see native/stub/isolate.c join_cgroups). */
  pids: number;
  /** CPU quota in CPUs (0.5 = half of one CPU per period); none if undefined. */
  cpus?: number;
}

export interface GuestCgroups {
  /** One directory per hierarchy, absolute. */
  dirs: string[];
  /** Removes what is still there (idempotent): the stub normally has already. */
  remove(): void;
}

export const CPU_PERIOD_US = 100_000;
const NAME_RE = /^tendril-(\d+)-(\d+)-\d+$/;
/** A prepared pool stub's own cgroup (tendril-stub … JAIL CGROUP-PARENT…): named for the stub's pid. */
const POOL_RE = /^tendril-(\d+)-pool$/;

function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

const me = `${process.pid}-${startTime(process.pid) ?? '0'}`;
let seq = 0;
const swept = new Set<string>();

/** Leftovers of dead creators, empty: removed (rmdir refuses a cgroup that still has a process). `again`: even if swept before. */
export function sweep(parent: string, again = false): void {
  if (swept.has(parent) && !again) return;
  swept.add(parent);
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const n of names) {
    const pool = POOL_RE.exec(n);
    const m = NAME_RE.exec(n);
    if (pool ? existsSync(`/proc/${pool[1]}`) : !m || `${m[1]}-${m[2]}` === me || startTime(Number(m[1])) === m[2]) continue;
    try {
      rmdirSync(join(parent, n));
    } catch {
      // still in use, or not ours to remove
    }
  }
}

function fail(what: string, e: unknown): EnvironmentError {
  const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  return new EnvironmentError(`--isolate: cannot ${what}: ${code}`, 'check the cgroup hierarchy tendril runs in, or pass --cgroup-parent=DIR');
}

/** One thing the supervisor does to make a guest's cgroups: the same list drives createGuestCgroups and the benchmark's C floor. */
export type CgroupStep = { op: 'mkdir'; path: string } | { op: 'write'; path: string; value: string; optional?: boolean };

/** cgroup v2: the parent must pass the controllers down to its children (a change of the parent, done once). */
function delegate(parent: string, ctls: string[]): void {
  const have = readFileSync(join(parent, 'cgroup.subtree_control'), 'utf8').split(/\s+/);
  const missing = ctls.filter((c) => !have.includes(c));
  if (missing.length) run({ op: 'write', path: join(parent, 'cgroup.subtree_control'), value: missing.map((c) => `+${c}`).join(' ') });
}

function limitSteps(dir: string, home: CgroupHome, l: CgroupLimits): CgroupStep[] {
  const w = (file: string, value: string, optional = false): CgroupStep => ({ op: 'write', path: join(dir, file), value, optional });
  const v2 = home.version === 2;
  // Optional: where swap is not accounted there is no swap.max (v2) or memsw (v1) file.
  switch (home.controller) {
    case 'memory':
      // No memory.oom.group: the guest's parent shares the cgroup, and the OOM killer's pick, the biggest task, is the guest.
      if (v2) return [w('memory.max', String(l.memoryBytes)), w('memory.swap.max', '0', true)];
      // RAM + swap, where swap is accounted: the limit is not dodged by swapping.
      return [w('memory.limit_in_bytes', String(l.memoryBytes)), w('memory.memsw.limit_in_bytes', String(l.memoryBytes), true)];
    case 'pids':
      return [w('pids.max', String(l.pids))];
    case 'cpu': {
      if (l.cpus === undefined) return [];
      const quota = Math.round(l.cpus * CPU_PERIOD_US);
      return v2 ? [w('cpu.max', `${quota} ${CPU_PERIOD_US}`)] : [w('cpu.cfs_period_us', String(CPU_PERIOD_US)), w('cpu.cfs_quota_us', String(quota))];
    }
    default:
      return [];
  }
}

/** The guest's cgroups named `name`, one per hierarchy among `homes`: their directories and the steps that make them. */
export function cgroupSteps(homes: CgroupHome[], limits: CgroupLimits, name: string): { dirs: string[]; steps: CgroupStep[]; v2Parents: Map<string, string[]> } {
  const byParent = new Map<string, CgroupHome[]>();
  for (const h of homes) byParent.set(h.parent, [...(byParent.get(h.parent) ?? []), h]);
  const dirs: string[] = [];
  const steps: CgroupStep[] = [];
  const v2Parents = new Map<string, string[]>();
  for (const [parent, group] of byParent) {
    const dir = join(parent, name);
    dirs.push(dir);
    steps.push({ op: 'mkdir', path: dir });
    for (const h of group) steps.push(...limitSteps(dir, h, limits));
    if (group[0].version === 2) v2Parents.set(parent, group.map((h) => h.controller));
  }
  return { dirs, steps, v2Parents };
}

/**
 * The limits of a prepared stub's own cgroups, as the FILE\0VALUE\0 pairs of
 * ISOLATE.SECTION_CGROUP_LIMITS (the stub set pids.max itself).
 */
export function limitPairs(homes: CgroupHome[], limits: CgroupLimits): Buffer {
  const pairs = homes.flatMap((h) => limitSteps('', h, limits)).filter((s): s is Extract<CgroupStep, { op: 'write' }> => s.op === 'write' && s.path !== 'pids.max');
  return Buffer.from(pairs.map((p) => `${p.path}\0${p.value}\0`).join(''));
}

/** A prepared pool stub's own cgroups, by its pid: the supervisor removes them once the stub has ended. */
export function poolCgroups(parents: string[], stubPid: number): GuestCgroups {
  const dirs = parents.map((p) => join(p, `tendril-${stubPid}-pool`));
  return {
    dirs,
    remove() {
      for (const d of dirs) {
        try {
          rmdirSync(d);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fail(`remove the guest's cgroup ${d}`, e);
        }
      }
    },
  };
}

/** Makes the parents ready (sweeping leftovers, v2 delegation). */
export function prepareParents(plan: ReturnType<typeof cgroupSteps>): void {
  for (const d of plan.dirs) sweep(dirname(d));
  for (const [parent, ctls] of plan.v2Parents) delegate(parent, ctls);
}

/** The parents of a jail's cgroups, one per hierarchy, made ready: what a prepared pool stub is given. */
export function cgroupParents(homes: CgroupHome[]): string[] {
  const plan = cgroupSteps(homes, { memoryBytes: 0n, pids: 2 }, 'x');
  for (const d of plan.dirs) sweep(dirname(d));
  for (const [parent, ctls] of plan.v2Parents) delegate(parent, ctls);
  return plan.dirs.map((d) => dirname(d));
}

function run(s: CgroupStep): void {
  if (s.op === 'write' && s.optional && !existsSync(s.path)) return;
  try {
    if (s.op === 'mkdir') mkdirSync(s.path);
    else writeFileSync(s.path, s.value);
  } catch (e) {
    throw fail(s.op === 'mkdir' ? `create the guest's cgroup ${s.path}` : `set ${s.path} to ${s.value}`, e);
  }
}

/** Makes the guest's cgroups (one per hierarchy among `homes`) and sets their limits. */
export function createGuestCgroups(homes: CgroupHome[], limits: CgroupLimits): GuestCgroups {
  const plan = cgroupSteps(homes, limits, `tendril-${me}-${++seq}`);
  const made: string[] = [];
  const remove = () => {
    for (const d of made.splice(0).reverse()) {
      try {
        rmdirSync(d);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw fail(`remove the guest's cgroup ${d}`, e);
      }
    }
  };
  try {
    prepareParents(plan);
    for (const s of plan.steps) {
      run(s);
      if (s.op === 'mkdir') made.push(s.path);
    }
  } catch (e) {
    try {
      remove();
    } catch {
      // the first error is the one to report
    }
    throw e;
  }
  return { dirs: plan.dirs, remove };
}
