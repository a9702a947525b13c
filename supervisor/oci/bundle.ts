// An OCI bundle (config.json + rootfs) as a tendril launch. Every field of
// config.json is either honoured, accepted because it cannot matter to a
// unikernel under tendril's filter (which allows nine system calls: the
// guest cannot open files, use capabilities, see mounts or namespaces), or
// rejected with an error naming the field. Nothing is dropped silently.
// docs/containerd.md has the table; the comments below say why per field.
// Unknown properties are ignored, as the runtime spec requires.
//
// process.args[0] is the unikernel inside the rootfs; the rest are its
// arguments. Devices and memory come from annotations:
//   org.tendril.mem=MiB
//   org.tendril.net.NAME=IFACE          org.tendril.net-mac.NAME=HWADDR
//   org.tendril.pod-net.NAME=IFACE      (the pod's interface, taken over: podnet.ts)
//   org.tendril.block.NAME=PATH         org.tendril.block-ro.NAME=PATH
//   org.tendril.block-sector-size.NAME=N
//   org.tendril.isolate=strict|false|off (the jail: create.ts, supervisor/isolate/oci.ts)
// where PATH is a file inside the rootfs: '..' is refused and so is any
// path whose symbolic links lead out of the rootfs.

import { readFileSync, realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { MAX_MEM_MIB } from '../../loader/abi.js';
import { DEVICE_NAME_RE } from '../../loader/manifest.js';
import { ociIsolation } from '../isolate/oci.js';
import { BundleError } from './errors.js';
import { checkPlaceholders } from './podargs.js';
import { RLIMITS } from './sys.js';

export const ANNOTATION_PREFIX = 'org.tendril.';
/** Every annotation tendril reads, for messages and `features`. */
export const ANNOTATION_SUMMARY = `${ANNOTATION_PREFIX}{mem, isolate, net.NAME, net-mac.NAME, pod-net.NAME, block.NAME, block-ro.NAME, block-sector-size.NAME}`;

export interface NetSpec {
  name: string;
  iface: string;
  mac?: string;
  /** The annotation that asked for it, for messages. */
  source: string;
}

/** A net device that takes over the pod's interface IFACE (podnet.ts). */
export interface PodNetSpec {
  name: string;
  iface: string;
  source: string;
}

export interface BlockSpec {
  name: string;
  /** Host path of the file, resolved inside the rootfs. */
  path: string;
  /** The path as written in the annotation. */
  inImage: string;
  readOnly: boolean;
  sectorSize?: string;
  /** The annotation that set the sector size. */
  sectorSource?: string;
  source: string;
}

export interface Rlimit {
  type: string;
  resource: number;
  soft: bigint;
  hard: bigint;
}

export interface BundlePlan {
  bundle: string;
  rootfs: string;
  /** Host path of the unikernel (inside the rootfs) and process.args[0] as written. */
  guest: string;
  guestInImage: string;
  guestArgs: string[];
  memMiB?: number;
  nets: NetSpec[];
  podNets: PodNetSpec[];
  blocks: BlockSpec[];
  terminal: boolean;
  consoleSize?: { height: number; width: number };
  rlimits: Rlimit[];
  oomScoreAdj?: number;
  /** linux.namespaces network path: the taps are looked up (and the guest runs) in it. */
  netns?: string;
  /** linux.namespaces as given: with any a jail has, the guest runs jailed (supervisor/isolate/oci.ts). */
  namespaces: { type: string; path?: string }[];
  /** The annotation org.tendril.isolate: on (the default: every layer the host has), strict (all or refuse), off. */
  isolate: 'on' | 'strict' | 'off';
  /** process.user (additionalGids: whether any other than 0 was asked for); ids other than 0 need the jail. */
  user: { uid: number; gid: number; additionalGids?: boolean };
  /** linux.resources.cpu quota and period (µs), a jailed guest's CPU quota. */
  cpu?: { quota: number; period: number };
  annotations: Record<string, string>;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const nonEmpty = (v: unknown) => v !== undefined && v !== null && v !== '' && !(Array.isArray(v) && v.length === 0) &&
  !(isObject(v) && Object.keys(v).length === 0);

function reject(field: string, why: string, hint?: string): never {
  throw new BundleError(`config.json: ${field}: ${why}`, hint);
}

/** Mount destinations every container runtime sets up (containerd's defaults, Kubernetes' managed files). */
const STANDARD_MOUNTS = new Set([
  '/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/sys/fs/cgroup', '/run',
  '/etc/hosts', '/etc/hostname', '/etc/resolv.conf', '/dev/termination-log', '/var/run/secrets/kubernetes.io/serviceaccount',
]);

/**
 * Namespaces the guest cannot observe: it has no system call that could see
 * another pid, host name, mount, IPC object or cgroup. Asking for any of
 * them (or a network one) jails the guest in new ones (supervisor/isolate/oci.ts).
 */
const INERT_NAMESPACES = new Set(['pid', 'ipc', 'uts', 'mount', 'cgroup']);

/**
 * A path from the bundle, resolved inside the rootfs. '..' is refused
 * outright; symbolic links are followed the host's way, so an absolute
 * link target (or one climbing out) ends outside the rootfs and is refused.
 */
export function resolveInRootfs(rootfs: string, path: string, what: string): string {
  if (path === '' || path.split('/').includes('..')) {
    throw new BundleError(`${what}: '${path}' must be a path inside the container's rootfs without '..'`);
  }
  let real: string;
  try {
    real = realpathSync(join(rootfs, path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new BundleError(`${what}: ${path} ${code === 'ENOENT' ? 'does not exist' : `cannot be resolved (${code})`} in the container's rootfs`);
  }
  if (!insideRootfs(rootfs, real)) {
    throw new BundleError(`${what}: ${path} leads outside the container's rootfs (through a symbolic link, to ${real})`);
  }
  return real;
}

export function insideRootfs(rootfs: string, real: string): boolean {
  return real.startsWith(rootfs.endsWith('/') ? rootfs : `${rootfs}/`);
}

function regularFile(path: string, what: string, shown: string): void {
  if (!statSync(path).isFile()) throw new BundleError(`${what}: ${shown} is not a regular file`);
}

function readConfig(bundle: string): Json {
  const file = join(bundle, 'config.json');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new BundleError(`bundle ${bundle}: cannot read config.json: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const v = JSON.parse(text);
    if (!isObject(v)) throw new Error('not an object');
    return v;
  } catch (e) {
    throw new BundleError(`bundle ${bundle}: config.json is not valid JSON: ${(e as Error).message}`);
  }
}

const RLIM_INFINITY = 0xffffffffffffffffn;

/** A uint64 limit from JSON (where 2^64-1, "unlimited", arrives rounded up to 2^64). */
function rlimitValue(where: string, v: unknown): bigint {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) reject(where, `${String(v)} is not a limit`);
  const b = BigInt(v);
  return b >= RLIM_INFINITY ? RLIM_INFINITY : b;
}

function checkProcess(p: unknown, plan: Partial<BundlePlan>): string[] {
  if (!isObject(p)) reject('process', 'missing: tendril needs process.args[0], the unikernel to run');
  const args = p.args;
  if (!Array.isArray(args) || args.length === 0 || !args.every((a) => typeof a === 'string')) {
    reject('process.args', 'must name the unikernel inside the rootfs, then its arguments', 'e.g. ["/hello.spt", "ARG"]');
  }
  if (nonEmpty(p.commandLine)) reject('process.commandLine', 'is for Windows; use process.args');
  plan.terminal = p.terminal === true;
  if (isObject(p.consoleSize)) {
    plan.consoleSize = { height: Number(p.consoleSize.height) || 0, width: Number(p.consoleSize.width) || 0 };
  }
  // The ids are the jail's (create.ts): only a jailed guest can run as another user; checkJailNeeds says so otherwise.
  const user = isObject(p.user) ? p.user : {};
  for (const k of ['uid', 'gid'] as const) {
    const v = user[k] ?? 0;
    if (!Number.isInteger(v) || (v as number) < 0 || (v as number) > 0xfffffffe) reject(`process.user.${k}`, `${String(v)}: must be an id from 0 to 4294967294`);
  }
  plan.user = { uid: (user.uid ?? 0) as number, gid: (user.gid ?? 0) as number };
  // additionalGids: a jailed guest is in no supplementary group at all (the jail drops them); unjailed it has root's.
  if (Array.isArray(user.additionalGids) && user.additionalGids.some((g) => g !== 0)) plan.user.additionalGids = true;
  // env: a unikernel has no environment (only its command line): ignored.
  if (p.cwd !== undefined && p.cwd !== '/') reject('process.cwd', `'${String(p.cwd)}': a unikernel has no working directory; only "/" is accepted`);
  // capabilities: ignored, the filter allows none of the calls that use one.
  // noNewPrivileges: tendril always sets it.
  if (nonEmpty(p.apparmorProfile)) reject('process.apparmorProfile', `'${String(p.apparmorProfile)}': tendril does not apply AppArmor profiles (the guest runs under tendril's own seccomp allowlist)`);
  if (nonEmpty(p.selinuxLabel)) reject('process.selinuxLabel', 'tendril does not apply SELinux labels');
  for (const f of ['ioPriority', 'scheduler', 'execCPUAffinity'] as const) {
    if (nonEmpty(p[f])) reject(`process.${f}`, 'not supported by tendril');
  }
  if (p.oomScoreAdj !== undefined) {
    if (!Number.isInteger(p.oomScoreAdj) || (p.oomScoreAdj as number) < -1000 || (p.oomScoreAdj as number) > 1000) {
      reject('process.oomScoreAdj', 'must be an integer between -1000 and 1000');
    }
    plan.oomScoreAdj = p.oomScoreAdj as number;
  }
  plan.rlimits = [];
  if (p.rlimits !== undefined) {
    if (!Array.isArray(p.rlimits)) reject('process.rlimits', 'must be a list');
    for (const [i, r] of (p.rlimits as unknown[]).entries()) {
      const where = `process.rlimits[${i}]`;
      if (!isObject(r) || typeof r.type !== 'string' || !(r.type in RLIMITS)) reject(where, `unknown resource ${isObject(r) ? String(r.type) : ''}`);
      const soft = rlimitValue(`${where}.soft`, r.soft);
      const hard = rlimitValue(`${where}.hard`, r.hard);
      if (soft > hard) reject(where, `soft limit ${soft} above hard limit ${hard}`);
      plan.rlimits.push({ type: r.type, resource: RLIMITS[r.type], soft, hard });
    }
  }
  return args as string[];
}

function checkMounts(mounts: unknown): void {
  if (mounts === undefined) return;
  if (!Array.isArray(mounts)) reject('mounts', 'must be a list');
  for (const [i, m] of mounts.entries()) {
    const dest = isObject(m) ? String(m.destination) : '?';
    if (STANDARD_MOUNTS.has(dest.replace(/\/+$/, ''))) continue; // nothing the guest can see: no open(2)
    const src = isObject(m) && m.source ? `, ${String(m.type ?? 'bind')} from ${String(m.source)}` : '';
    reject(`mounts[${i}]`, `${dest}${src}: a unikernel has no file system to mount into`,
      'give it data as a disk file instead: annotation org.tendril.block.NAME=/PATH (or block-ro)');
  }
}

function checkHooks(hooks: unknown): void {
  if (!isObject(hooks)) return;
  for (const [k, v] of Object.entries(hooks)) {
    if (nonEmpty(v)) reject(`hooks.${k}`, 'tendril does not run OCI hooks');
  }
}

function checkResources(r: unknown, plan: Partial<BundlePlan>): void {
  if (r === undefined) return;
  if (!isObject(r)) reject('linux.resources', 'must be an object');
  for (const [k, v] of Object.entries(r)) {
    if (!nonEmpty(v)) continue;
    switch (k) {
      case 'devices':
        // Device cgroup rules: the guest cannot open a device node at all, so any rule set holds.
        break;
      case 'memory': {
        const m = v as Json;
        for (const [mk, mv] of Object.entries(m)) {
          if (mk === 'limit' || mv === undefined || mv === null) continue;
          // swap equal to the limit means "no swap beyond memory": guest memory is at most the limit anyway.
          if (mk === 'swap' && (mv === m.limit || mv === 0)) continue;
          if (mk === 'disableOOMKiller' && mv === false) continue;
          reject(`linux.resources.memory.${mk}`, 'not supported: of the memory settings tendril keeps only memory.limit (as the guest memory size)');
        }
        if (typeof m.limit === 'number' && m.limit > 0) {
          const mib = Math.floor(m.limit / (1 << 20));
          if (mib < 2) reject('linux.resources.memory.limit', `${m.limit} bytes: a guest needs at least 2 MiB`);
          plan.memMiB = Math.min(mib, MAX_MEM_MIB);
        }
        break;
      }
      case 'cpu': {
        // shares is a relative weight under contention, never a limit, and the CRI always
        // sets it (2 for a BestEffort pod): accepted, not applied. quota/period become a
        // jailed guest's CPU quota (its own cgroup, checkJailNeeds); CPU sets and realtime
        // are limits tendril does not keep: rejected.
        const c = v as Json;
        for (const [ck, cv] of Object.entries(c)) {
          if (cv === undefined || cv === null || ck === 'shares') continue;
          if (ck === 'quota' || ck === 'period') {
            if (!Number.isInteger(cv)) reject(`linux.resources.cpu.${ck}`, `${String(cv)}: must be a whole number of microseconds`);
            continue;
          }
          reject(`linux.resources.cpu.${ck}`, 'not supported: tendril sets a CPU quota (quota, period), not CPU sets or realtime', 'remove the CPU set for tendril containers');
        }
        const quota = c.quota as number | undefined;
        const period = (c.period as number | undefined) ?? 100_000;
        if (quota !== undefined && quota > 0) {
          if (period <= 0) reject('linux.resources.cpu.period', `${period}: must be positive`);
          plan.cpu = { quota, period };
        }
        break;
      }
      default:
        reject(`linux.resources.${k}`, 'not supported: tendril keeps memory.limit (as the guest memory size) and a CPU quota, nothing else');
    }
  }
}

function checkLinux(l: unknown, plan: Partial<BundlePlan>): void {
  if (l === undefined) return;
  if (!isObject(l)) reject('linux', 'must be an object');
  if (l.namespaces !== undefined) {
    if (!Array.isArray(l.namespaces)) reject('linux.namespaces', 'must be a list');
    for (const [i, ns] of (l.namespaces as unknown[]).entries()) {
      const type = isObject(ns) ? String(ns.type) : '?';
      plan.namespaces!.push({ type, ...(isObject(ns) && typeof ns.path === 'string' && ns.path ? { path: ns.path } : {}) });
      if (INERT_NAMESPACES.has(type)) continue;
      if (type === 'network') {
        // A new empty network namespace: the guest has no network except its taps (which tendril attaches).
        // An existing one (a pod's): taps are looked up in it, and the guest runs in it.
        if (isObject(ns) && typeof ns.path === 'string' && ns.path) plan.netns = ns.path;
        continue;
      }
      reject(`linux.namespaces[${i}]`, `type ${type} is not supported (tendril cannot map users or offset clocks for the guest)`);
    }
  }
  for (const f of ['uidMappings', 'gidMappings', 'timeOffsets', 'devices', 'sysctl', 'intelRdt', 'personality', 'mountLabel'] as const) {
    if (nonEmpty(l[f])) reject(`linux.${f}`, 'not supported by tendril');
  }
  // cgroupsPath: accepted, not used (a jailed guest's cgroups are children of tendril-oci's own). seccomp: replaced by
  // tendril's own allowlist, narrower than any default profile. maskedPaths,
  // readonlyPaths, rootfsPropagation: nothing the guest can open or mount.
  checkResources(l.resources, plan);
}

const MEM_RE = /^[0-9]{1,6}$/;

function checkAnnotations(annotations: Record<string, string>, rootfs: string, rootReadonly: boolean, plan: Partial<BundlePlan>): void {
  const nets = new Map<string, NetSpec>();
  const podNets = new Map<string, PodNetSpec>();
  const macs = new Map<string, [string, string]>();
  const sectors = new Map<string, [string, string]>();
  const blocks = new Map<string, BlockSpec>();
  for (const [key, value] of Object.entries(annotations)) {
    if (!key.startsWith(ANNOTATION_PREFIX)) continue;
    const where = `annotation ${key}`;
    const rest = key.slice(ANNOTATION_PREFIX.length);
    if (rest === 'mem') {
      if (!MEM_RE.test(value) || Number(value) < 2 || Number(value) > MAX_MEM_MIB) {
        throw new BundleError(`${where}=${value}: guest memory must be a whole number of MiB between 2 and ${MAX_MEM_MIB}`);
      }
      if (plan.memMiB !== undefined && Number(value) > plan.memMiB) {
        throw new BundleError(`${where}=${value}: more than the container's memory limit (${plan.memMiB} MiB, linux.resources.memory.limit)`);
      }
      plan.memMiB = Number(value);
      continue;
    }
    if (rest === 'isolate') {
      if (value === 'strict') plan.isolate = 'strict';
      else if (value === 'false' || value === 'off') plan.isolate = 'off';
      else throw new BundleError(`${where}=${value}: not a jail setting`, 'use strict (every layer or refuse), or false or off (no jail); without it the guest is jailed with the layers the host has');
      continue;
    }
    const m = /^(net|net-mac|pod-net|block|block-ro|block-sector-size)\.(.*)$/.exec(rest);
    if (!m) {
      throw new BundleError(`${where}: unknown tendril annotation`,
        `tendril reads ${ANNOTATION_SUMMARY}`);
    }
    const [, kind, name] = m;
    if (!DEVICE_NAME_RE.test(name)) throw new BundleError(`${where}: device name '${name}' must be 1 to 67 letters or digits`);
    switch (kind) {
      case 'net':
        if (!/^[^\s/@]{1,15}$/.test(value) || value === '.' || value === '..') {
          throw new BundleError(`${where}=${value}: not a network interface name (1 to 15 characters, no '/', '@' or spaces)`);
        }
        nets.set(name, { name, iface: value, source: key });
        break;
      case 'net-mac':
        macs.set(name, [key, value]);
        break;
      case 'pod-net':
        if (!/^[^\s/@:]{1,15}$/.test(value) || value === '.' || value === '..') {
          throw new BundleError(`${where}=${value}: not a network interface name (1 to 15 characters, no '/', '@', ':' or spaces)`);
        }
        podNets.set(name, { name, iface: value, source: key });
        break;
      case 'block':
      case 'block-ro': {
        if (blocks.has(name)) throw new BundleError(`${where}: device '${name}' is also attached by ${blocks.get(name)!.source}`);
        const path = resolveInRootfs(rootfs, value, where);
        regularFile(path, where, value);
        const readOnly = kind === 'block-ro';
        if (!readOnly && rootReadonly) {
          throw new BundleError(`${where}: the rootfs is read-only (root.readonly) but the disk is attached read-write`,
            `use ${ANNOTATION_PREFIX}block-ro.${name}`);
        }
        blocks.set(name, { name, path, inImage: value, readOnly, source: key });
        break;
      }
      default:
        sectors.set(name, [key, value]);
    }
  }
  for (const [name, [key, mac]] of macs) {
    const net = nets.get(name);
    if (!net && podNets.has(name)) continue; // refused below, with the reason
    if (!net) throw new BundleError(`annotation ${key}: no ${ANNOTATION_PREFIX}net.${name} annotation to apply the MAC address to`);
    net.mac = mac;
  }
  for (const [name, [key, size]] of sectors) {
    const blk = blocks.get(name);
    if (!blk) throw new BundleError(`annotation ${key}: no ${ANNOTATION_PREFIX}block.${name} annotation to apply the sector size to`);
    blk.sectorSize = size;
    blk.sectorSource = key;
  }
  for (const name of nets.keys()) {
    if (blocks.has(name)) throw new BundleError(`annotation ${ANNOTATION_PREFIX}net.${name}: '${name}' is also attached as a block device`);
    if (podNets.has(name)) throw new BundleError(`annotation ${ANNOTATION_PREFIX}net.${name}: '${name}' is also attached to the pod's interface by ${podNets.get(name)!.source}`);
  }
  for (const p of podNets.values()) {
    if (blocks.has(p.name)) throw new BundleError(`annotation ${p.source}: '${p.name}' is also attached as a block device`);
    if (macs.has(p.name)) throw new BundleError(`annotation ${macs.get(p.name)![0]}: device '${p.name}' takes the MAC address of the pod's interface (${p.iface})`);
  }
  if (podNets.size > 1) {
    throw new BundleError(`annotations ${[...podNets.values()].map((p) => p.source).join(', ')}: a guest can take over one pod interface`);
  }
  if (podNets.size > 0 && !plan.netns) {
    const p = [...podNets.values()][0];
    throw new BundleError(`annotation ${p.source}: the container joins no existing network namespace (linux.namespaces has no network path), so there is no pod interface ${p.iface} to take over`,
      'run it in a pod (the CRI gives the pod\'s namespace), or attach a tap with org.tendril.net.NAME=TAP');
  }
  plan.podNets = [...podNets.values()];
  plan.nets = [...nets.values()];
  plan.blocks = [...blocks.values()];
}

/** Whether the guest runs jailed (create.ts makes the jail): namespaces asked for, and no org.tendril.isolate=false. */
export function jailed(plan: Pick<BundlePlan, 'isolate' | 'namespaces'>): boolean {
  return plan.isolate !== 'off' && ociIsolation({ namespaces: plan.namespaces }) !== undefined;
}

/** What only a jail can give: another user than root, a CPU quota. */
function checkJailNeeds(plan: Partial<BundlePlan>): void {
  if (jailed(plan as BundlePlan)) return;
  const why = plan.isolate === 'off' ? `the guest is not jailed (${ANNOTATION_PREFIX}isolate=${plan.annotations?.[`${ANNOTATION_PREFIX}isolate`]})` : 'the guest is not jailed (config.json asks for no namespace)';
  const hint = 'drop the setting, or let tendril jail the guest';
  const { uid, gid, additionalGids } = plan.user!;
  if (uid !== 0) reject('process.user.uid', `${uid}: ${why}, so it runs as the runtime's user, root`, `${hint} (runAsUser)`);
  if (gid !== 0) reject('process.user.gid', `${gid}: ${why}, so it runs as the runtime's group`, `${hint} (runAsGroup)`);
  if (additionalGids) reject('process.user.additionalGids', `${why}: it runs with no group but 0`, hint);
  if (plan.cpu) reject('linux.resources.cpu.quota', `${why}: a CPU quota needs the jail's cgroup`, `${hint} (a CPU limit)`);
}

export function loadBundle(bundleDir: string): BundlePlan {
  const bundle = resolve(bundleDir);
  const config = readConfig(bundle);
  const plan: Partial<BundlePlan> = { bundle, namespaces: [], isolate: 'on' };
  if (typeof config.ociVersion !== 'string' || !/^1\.[0-9]+\.[0-9]+/.test(config.ociVersion)) {
    reject('ociVersion', `${String(config.ociVersion)}: tendril-oci implements runtime spec 1.x`);
  }
  const root = config.root;
  if (!isObject(root) || typeof root.path !== 'string' || !root.path) reject('root.path', 'missing: the unikernel lives in the rootfs');
  const rootPath = isAbsolute(root.path) ? root.path : join(bundle, root.path);
  try {
    plan.rootfs = realpathSync(rootPath);
    if (!statSync(plan.rootfs).isDirectory()) throw new Error('not a directory');
  } catch (e) {
    reject('root.path', `${rootPath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const args = checkProcess(config.process, plan);
  checkMounts(config.mounts);
  checkHooks(config.hooks);
  checkLinux(config.linux, plan);
  // hostname, domainname: the guest has no system call that reads them. Accepted.
  const annotations = isObject(config.annotations) ? config.annotations as Record<string, string> : {};
  plan.annotations = annotations;
  checkAnnotations(annotations, plan.rootfs!, root.readonly === true, plan);
  checkJailNeeds(plan);

  plan.guestInImage = args[0];
  plan.guestArgs = args.slice(1);
  checkPlaceholders(plan.guestArgs, plan.podNets![0]?.name);
  // The state records these paths one per line (contract.ts).
  for (const [what, path] of [['bundle', bundle], ['root.path', plan.rootfs!], ['linux.namespaces network path', plan.netns ?? '']]) {
    if (/[\n\r]/.test(path)) reject(what, `${JSON.stringify(path)}: a path with a line break cannot be recorded in the container's state`);
  }
  try {
    plan.guest = resolveInRootfs(plan.rootfs!, args[0], 'process.args[0]');
  } catch (e) {
    if (args[0].startsWith('/')) throw e;
    // `ctr run IMAGE ID ARGS` replaces the image's Entrypoint with ARGS.
    throw new BundleError((e as BundleError).message,
      'process.args[0] must be the unikernel; with `ctr run IMAGE ID ARGS...` give its path first: ctr run IMAGE ID /GUEST.spt ARGS...');
  }
  regularFile(plan.guest, 'process.args[0]', args[0]);
  return plan as BundlePlan;
}
