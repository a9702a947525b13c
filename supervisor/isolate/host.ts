// What this host can give an isolated guest, layer by layer: read from the
// kernel's own files (/proc/self/status, /proc/self/ns, /proc/sys/user,
// /proc/self/mountinfo, /proc/self/cgroup, the cgroup trees) and one
// harmless system call (the Landlock ABI probe). Nothing is changed here;
// each layer the host lacks comes with the reason, in a few words.

import { accessSync, constants as fsc, existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { landlockAbi } from '../os.js';

export type Controller = 'memory' | 'pids' | 'cpu';
export const CONTROLLERS: readonly Controller[] = ['memory', 'pids', 'cpu'];

/** Where per-guest cgroups for one controller go. */
export interface CgroupHome {
  controller: Controller;
  version: 1 | 2;
  /** The hierarchy's mount point, e.g. /sys/fs/cgroup/memory. */
  mount: string;
  /** The directory per-guest cgroups are made in (tendril's own cgroup, or --cgroup-parent). */
  parent: string;
}

export type NsKind = 'pid' | 'mnt' | 'net' | 'ipc' | 'uts' | 'cgroup';
export const NAMESPACES: readonly NsKind[] = ['pid', 'mnt', 'net', 'ipc', 'uts', 'cgroup'];

/** A layer is there (value) or not, and then why not (a few words). */
export type Avail<T> = { ok: true; value: T } | { ok: false; why: string };

export interface HostIsolation {
  /** The capabilities a jailer needs (root): setuid, setgid, setpcap, sys_admin. */
  privileged: Avail<true>;
  namespaces: Record<NsKind, Avail<true>>;
  /** pivot_root into a detached tmpfs (fsopen/fsmount, Linux 5.2). */
  emptyRoot: Avail<true>;
  landlock: Avail<number>;
  cgroups: Record<Controller, Avail<CgroupHome>>;
}

const CAP = { SETGID: 6, SETUID: 7, SETPCAP: 8, SYS_ADMIN: 21 };

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function effectiveCaps(): bigint {
  const m = /^CapEff:\s+([0-9a-f]+)$/m.exec(read('/proc/self/status') ?? '');
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

function kernelAtLeast(major: number, minor: number): boolean {
  const [a, b] = release().split(/[.-]/).map(Number);
  return a > major || (a === major && b >= minor);
}

interface Mount { root: string; point: string; fstype: string; readOnly: boolean; superOpts: string[] }

/** /proc/self/mountinfo: "ID PARENT MAJ:MIN ROOT POINT OPTS [TAGS] - FSTYPE SOURCE SUPEROPTS". */
function mounts(): Mount[] {
  const out: Mount[] = [];
  for (const line of (read('/proc/self/mountinfo') ?? '').split('\n')) {
    const [left, right] = line.split(' - ');
    if (!right) continue;
    const f = left.split(' ');
    const [fstype, , superOpts = ''] = right.split(' ');
    const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
    out.push({ root: unescape(f[3]), point: unescape(f[4]), fstype, readOnly: f[5].split(',').includes('ro'), superOpts: superOpts.split(',') });
  }
  return out;
}

/** /proc/self/cgroup: hierarchy id → {controllers, path}; "0::PATH" is cgroup v2. */
function ownCgroups(): { id: string; controllers: string[]; path: string }[] {
  return (read('/proc/self/cgroup') ?? '').split('\n').filter(Boolean).map((l) => {
    const [id, ctl, ...path] = l.split(':');
    return { id, controllers: ctl ? ctl.split(',') : [], path: path.join(':') };
  });
}

/** Our cgroup inside a mount of its hierarchy, or undefined if the mount does not reach it. */
function dirIn(m: Mount, path: string): string | undefined {
  const strip = (p: string) => (p.length > 1 ? p.replace(/\/+$/, '') : p);
  if (m.root === '/') return strip(join(m.point, path));
  if (path === m.root || path.startsWith(`${m.root}/`)) return strip(join(m.point, path.slice(m.root.length)));
  return undefined;
}

function words(path: string): string[] {
  return (read(path) ?? '').split(/\s+/).filter(Boolean);
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, fsc.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether cgroup v2 directory `parent` can hold per-guest cgroups with
 * `ctl`: the controller reaches it, and it may pass controllers down (the
 * kernel's "no internal processes" rule: only the real root, or a cgroup
 * with no processes of its own, or one already delegating them).
 */
function v2Home(mount: Mount, parent: string, ctl: Controller, explicit: boolean): Avail<CgroupHome> {
  const where = explicit ? `--cgroup-parent=${parent}` : `tendril's cgroup ${parent}`;
  if (!existsSync(join(parent, 'cgroup.controllers'))) return { ok: false, why: `${where} is not a cgroup v2 directory` };
  const offered = words(join(parent, 'cgroup.controllers'));
  if (!offered.includes(ctl)) {
    return { ok: false, why: `cgroup v2 at ${mount.point} does not offer ${ctl} at ${parent} (it offers ${offered.join(', ') || 'no controller'})` };
  }
  if (mount.readOnly || !writable(parent)) return { ok: false, why: `${where} is not writable` };
  const isRoot = !existsSync(join(parent, 'cgroup.type'));
  const delegating = words(join(parent, 'cgroup.subtree_control')).includes(ctl);
  const empty = (read(join(parent, 'cgroup.procs')) ?? 'x').trim() === '';
  if (!isRoot && !delegating && !empty) {
    return { ok: false, why: `${where} has processes of its own, so it cannot give ${ctl} to per-guest cgroups; pass --cgroup-parent=DIR, a delegated cgroup` };
  }
  return { ok: true, value: { controller: ctl, version: 2, mount: mount.point, parent } };
}

function v1Home(all: Mount[], own: ReturnType<typeof ownCgroups>, ctl: Controller): Avail<CgroupHome> | undefined {
  const m = all.find((x) => x.fstype === 'cgroup' && x.superOpts.includes(ctl));
  if (!m) return undefined;
  const mine = own.find((c) => c.controllers.includes(ctl));
  const dir = mine && dirIn(m, mine.path);
  if (!dir || !existsSync(dir)) return { ok: false, why: `tendril's ${ctl} cgroup is not inside the v1 hierarchy mounted at ${m.point}` };
  if (m.readOnly || !writable(dir)) return { ok: false, why: `the v1 ${ctl} hierarchy at ${m.point} is not writable` };
  return { ok: true, value: { controller: ctl, version: 1, mount: m.point, parent: dir } };
}

function cgroupHomes(parentOverride: string | undefined): Record<Controller, Avail<CgroupHome>> {
  const all = mounts();
  const own = ownCgroups();
  const v2 = all.find((m) => m.fstype === 'cgroup2');
  const v2Path = own.find((c) => c.id === '0')?.path;
  const v2Parent = parentOverride ?? (v2 && v2Path !== undefined ? dirIn(v2, v2Path) : undefined);
  const out = {} as Record<Controller, Avail<CgroupHome>>;
  for (const ctl of CONTROLLERS) {
    const two = v2 && v2Parent ? v2Home(v2, v2Parent, ctl, parentOverride !== undefined) : undefined;
    if (two?.ok || parentOverride !== undefined) {
      out[ctl] = two ?? { ok: false, why: 'no cgroup v2 hierarchy is mounted' };
      continue;
    }
    const one = v1Home(all, own, ctl);
    if (one) out[ctl] = one;
    else if (two) out[ctl] = { ok: false, why: `${two.why}, and no v1 ${ctl} hierarchy is mounted` };
    else out[ctl] = { ok: false, why: `no cgroup hierarchy (v2 or v1) with ${ctl} is mounted` };
  }
  return out;
}

function landlock(): Avail<number> {
  const abi = landlockAbi();
  if (abi > 0) return { ok: true, value: abi };
  if (abi === -38) return { ok: false, why: 'the kernel has no Landlock (ENOSYS)' };
  if (abi === -95) return { ok: false, why: 'Landlock is built in but not enabled (add landlock to the kernel\'s lsm= list)' };
  return { ok: false, why: `landlock_create_ruleset failed (errno ${-abi})` };
}

const NS_SYSCTL: Record<NsKind, string> = {
  pid: 'max_pid_namespaces', mnt: 'max_mnt_namespaces', net: 'max_net_namespaces', ipc: 'max_ipc_namespaces',
  uts: 'max_uts_namespaces', cgroup: 'max_cgroup_namespaces',
};

function namespace(kind: NsKind, admin: boolean): Avail<true> {
  if (!existsSync(`/proc/self/ns/${kind}`)) return { ok: false, why: `the kernel has no ${kind} namespaces` };
  const max = read(`/proc/sys/user/${NS_SYSCTL[kind]}`);
  if (max !== undefined && Number(max) === 0) return { ok: false, why: `user.${NS_SYSCTL[kind]} is 0` };
  if (!admin) return { ok: false, why: 'tendril lacks CAP_SYS_ADMIN (run it as root)' };
  return { ok: true, value: true };
}

let cached: { key: string; host: HostIsolation } | undefined;

/** The host's layers (cached per cgroup parent: detection reads a dozen small files). */
export function detectHost(cgroupParent?: string): HostIsolation {
  const key = cgroupParent ?? '';
  if (cached?.key === key) return cached.host;
  const caps = effectiveCaps();
  const has = (c: number) => (caps & (1n << BigInt(c))) !== 0n;
  const admin = has(CAP.SYS_ADMIN);
  const namespaces = Object.fromEntries(NAMESPACES.map((k) => [k, namespace(k, admin)])) as Record<NsKind, Avail<true>>;
  const host: HostIsolation = {
    privileged: has(CAP.SETUID) && has(CAP.SETGID) && has(CAP.SETPCAP)
      ? { ok: true, value: true } : { ok: false, why: 'tendril lacks CAP_SETUID, CAP_SETGID or CAP_SETPCAP (run it as root)' },
    namespaces,
    emptyRoot: !namespaces.mnt.ok ? { ok: false, why: `no mount namespace: ${namespaces.mnt.why}` }
      : kernelAtLeast(5, 2) ? { ok: true, value: true } : { ok: false, why: `Linux ${release()} has no fsopen/fsmount (5.2)` },
    landlock: landlock(),
    cgroups: cgroupHomes(cgroupParent),
  };
  cached = { key, host };
  return host;
}
