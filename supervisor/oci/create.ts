// `create` of a unikernel container, in the one Node process the native
// front starts for it (create-main.ts): check the bundle and the guest, open
// its devices (in the pod's network namespace, taking over the pod's
// interface if asked), compile the launch plan, then start the stub itself
// (spawn.ts), in its own session, with the container's stdio (what the shim
// handed over: FIFOs, pipes or /dev/null) or a new pty, its fds placed at
// 3, 4, ... Return once the stub has loaded the guest and blocks reading the
// start FIFO (state and pid file written), or has failed (the error goes to
// the caller). The shim, a subreaper, adopts the stub when we exit, reaps it
// and sees the guest's real exit status: the container's pid is the guest.
//
// Jailed (any namespace in config.json, i.e. every container containerd
// makes, unless org.tendril.isolate=false): the jail of `run --isolate`
// (supervisor/isolate/), decided before any device is opened. The stub then
// stays outside as the guest's waiter (native/stub/isolate.c): the
// container's pid is the waiter, which passes signals on and ends the way
// the guest ended; the guest, its child and pid 2 of its own pid namespace,
// is the process that reads the start FIFO, takes the rlimits, and whose
// pid the state records for `state` (seccomp mode) and `pause`.

import { closeSync, constants as fsc, openSync, readFileSync, readlinkSync, renameSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { basename, dirname, join } from 'node:path';
import { DEFAULT_MEM_MIB, MftType } from '../../loader/abi.js';
import { isTendrilError } from '../../loader/errors.js';
import { loadGuestImage, type GuestImage } from '../../loader/image.js';
import { deviceTypeName, findDevice } from '../../loader/manifest.js';
import { encodePlan, PlanFlags } from '../../loader/plan.js';
import { jailFor, ociIsolation, type StartedJail } from '../isolate/index.js';
import { IsolationError } from '../errors.js';
import { compileLaunch, memoryFileFd, openStartFifo, prepareLaunch, releaseLaunch, writePlanFd, type PreparedLaunch } from '../launch.js';
import { parseMac, parseSectorSize, type DeviceRequest, type RunOptions } from '../options.js';
import * as os from '../os.js';
import { STUB_PATH } from '../paths.js';
import { ANNOTATION_PREFIX, insideRootfs, jailed, loadBundle, type BundlePlan } from './bundle.js';
import type { Pty } from './console.js';
import { RUNTIME_TENDRIL } from './contract.js';
import { BundleError, ContainerError } from './errors.js';
import { substitute } from './podargs.js';
import type { PodNet } from './podnet.js';
import { childrenOf, exePath, fdOfFile, procStat, readingFd } from './proc.js';
import { exited, pause, pipe, spawnWithFds, waitReadable } from './spawn.js';
import { checkId, createContainerDir, removeContainerDir, saveState, startFifo } from './state.js';
import * as sys from './sys.js';

export interface CreateOptions {
  root: string;
  id: string;
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
}

/** Loading a guest takes milliseconds; a stub that is not ready by then is stuck, or the machine starved. */
const READY_TIMEOUT_MS = 30_000;
/** The stub's fds: 0-2 stdio, then the devices from 3 on (the stub places them at the guest's numbers itself). */
const FIRST_FD = 3;

/** Devices named by annotations against the guest's manifest, in OCI terms (annotations, not options). */
function checkDevices(image: GuestImage, plan: BundlePlan): void {
  const manifest = image.manifest;
  const declared = manifest.devices.map((d) => `${d.name} (${deviceTypeName(d.type)})`).join(', ') || 'no devices';
  const wanted = [
    ...plan.nets.map((n) => ({ name: n.name, type: MftType.NET_BASIC, source: n.source })),
    ...plan.podNets.map((n) => ({ name: n.name, type: MftType.NET_BASIC, source: n.source })),
    ...plan.blocks.map((b) => ({ name: b.name, type: MftType.BLOCK_BASIC, source: b.source })),
  ];
  for (const w of wanted) {
    const dev = findDevice(manifest, w.name);
    if (!dev || dev.type !== w.type) {
      throw new BundleError(`annotation ${w.source}: the guest ${plan.guestInImage} has no ${deviceTypeName(w.type as never)} device '${w.name}'` +
        `${dev ? ` (it is ${deviceTypeName(dev.type)})` : ''}`, `the guest declares ${declared}`);
    }
  }
  for (const dev of manifest.devices) {
    if (wanted.some((w) => w.name === dev.name)) continue;
    const hint = dev.type === MftType.NET_BASIC
      ? `${ANNOTATION_PREFIX}pod-net.${dev.name}=eth0 (in a pod) or ${ANNOTATION_PREFIX}net.${dev.name}=TAP`
      : `${ANNOTATION_PREFIX}block.${dev.name}=/PATH-IN-IMAGE`;
    throw new BundleError(`the guest ${plan.guestInImage} declares ${deviceTypeName(dev.type)} device '${dev.name}' but no annotation attaches it`,
      `add the annotation ${hint}`);
  }
}

/** Opens each disk inside the rootfs and checks the opened file is still there (no symlink swapped in since the check). */
function openDisks(plan: BundlePlan): number[] {
  const fds: number[] = [];
  try {
    for (const b of plan.blocks) {
      const fd = openSync(b.path, (b.readOnly ? fsc.O_RDONLY : fsc.O_RDWR) | fsc.O_NOFOLLOW);
      fds.push(fd);
      const real = readlinkSync(`/proc/self/fd/${fd}`);
      if (!insideRootfs(plan.rootfs, real)) throw new BundleError(`annotation ${b.source}: ${b.inImage} is no longer inside the rootfs (now ${real})`);
    }
  } catch (e) {
    for (const fd of fds) closeSync(fd);
    if (isTendrilError(e)) throw e;
    throw new BundleError(`cannot open a disk in the rootfs: ${(e as Error).message}`);
  }
  return fds;
}

/** The guest joins the pod's network namespace: this thread enters it, so the taps are found (or made) there and the stub starts in it. */
function enterNetns(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY);
  } catch (e) {
    throw new BundleError(`config.json: linux.namespaces network path ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    if (os.setns(fd, os.CLONE_NEWNET) < 0) {
      throw new ContainerError(`cannot join the network namespace ${path}: ${os.strerror(os.errno())}`, 'tendril-oci needs CAP_SYS_ADMIN');
    }
  } finally {
    closeSync(fd);
  }
}

const F_DUPFD_CLOEXEC = 1030;

/**
 * The launch gets its own copies of the fds we opened: it closes what it
 * holds (after the hand-over, or when it fails half-way), we close ours.
 */
function dupFd(fd: number): number {
  const d = os.fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (d < 0) throw new ContainerError(`fcntl(F_DUPFD_CLOEXEC) failed: ${os.strerror(os.errno())}`);
  return d;
}

function runOptions(plan: BundlePlan, disks: number[], pod: PodNet | undefined, podnet?: typeof import('./podnet.js')): RunOptions {
  // Requests are checked before any fd is duplicated, so a refusal leaks nothing.
  const macs = new Map(plan.nets.filter((n) => n.mac).map((n) => [n.name, macBytes(n.mac!, n.source)]));
  const podMac = pod ? macBytes(pod.mac, plan.podNets[0].source) : undefined;
  const sectors = plan.blocks.map((b) => (b.sectorSize ? sectorSize(b.sectorSize, b.sectorSource!) : undefined));
  const devices: DeviceRequest[] = [
    ...plan.nets.map((n): DeviceRequest => ({ kind: 'net', name: n.name, iface: n.iface, mac: macs.get(n.name) })),
    ...plan.podNets.map((n): DeviceRequest => ({ kind: 'net', name: n.name, fd: dupFd(pod!.tapFd), mac: podMac })),
    ...plan.blocks.map((b, i): DeviceRequest => ({ kind: 'block', name: b.name, fd: dupFd(disks[i]), readOnly: b.readOnly, sectorSize: sectors[i] })),
  ];
  return {
    memMiB: plan.memMiB ?? DEFAULT_MEM_MIB, xExecHeap: false, guest: plan.guest,
    guestArgs: pod ? substitute(plan.guestArgs, podnet!.podValues(pod)) : plan.guestArgs,
    devices, dumpable: false, gdb: false, supervise: false,
  };
}

/** The option parsers' own checks (one definition), reported against the annotation. */
function fromAnnotation<T>(source: string, value: string, parse: (word: string, value: string) => T): T {
  try {
    return parse(`${source}=${value}`, value);
  } catch (e) {
    if (!isTendrilError(e)) throw e;
    throw new BundleError(`annotation ${source}=${value}: ${e.message.replace(/^Invalid option: `[^']*': /, '')}`, e.hint);
  }
}

const macBytes = (mac: string, source: string) => fromAnnotation(source, mac, parseMac);
const sectorSize = (v: string, source: string) => fromAnnotation(source, v, parseSectorSize);

/**
 * config.json's rlimits, applied to the loaded guest. The stub has already
 * lowered its own limits (no core, no fd above those it holds, no locked
 * memory); a bundle may lower them further but never raise them again.
 */
function applyLimits(pid: number, plan: BundlePlan, waiter?: number): void {
  const min = (a: bigint, b: bigint) => (a < b ? a : b);
  for (const r of plan.rlimits) {
    const current = Buffer.alloc(16);
    if (sys.prlimit(pid, r.resource, null, current) < 0) {
      // A jailed guest is another user's process: without CAP_SYS_RESOURCE only a process of its own ids may change its limits.
      if (waiter !== undefined && os.errno() === EPERM) {
        limitsAsGuest(pid, plan);
        break;
      }
      throw new BundleError(`config.json: process.rlimits ${r.type}: cannot read the guest's limit: ${os.strerror(os.errno())}`);
    }
    const hard = min(r.hard, current.readBigUInt64LE(8));
    const buf = Buffer.alloc(16);
    buf.writeBigUInt64LE(min(r.soft, hard), 0);
    buf.writeBigUInt64LE(hard, 8);
    if (sys.prlimit(pid, r.resource, buf, null) < 0) {
      throw new BundleError(`config.json: process.rlimits ${r.type}: cannot apply: ${os.strerror(os.errno())}`);
    }
  }
  if (plan.oomScoreAdj !== undefined) {
    writeFileSync(`/proc/${pid}/oom_score_adj`, String(plan.oomScoreAdj));
    if (waiter !== undefined) writeFileSync(`/proc/${waiter}/oom_score_adj`, String(plan.oomScoreAdj));
  }
}

const EPERM = 1;
const INFINITY = (1n << 64n) - 1n;

/**
 * applyLimits for a jailed guest where tendril-oci lacks CAP_SYS_RESOURCE:
 * prlimit(1) run with the guest's own uid and gid (which the kernel lets
 * lower a process's limits), reading the current ones first.
 */
function limitsAsGuest(pid: number, plan: BundlePlan): void {
  const status = readFileSync(`/proc/${pid}/status`, 'latin1');
  const id = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1]);
  const as = { uid: id('Uid'), gid: id('Gid') };
  const prlimit = (args: string[]) => {
    const r = spawnSync('prlimit', ['--pid', String(pid), ...args], { ...as, encoding: 'utf8' });
    if (r.status !== 0) {
      throw new BundleError(`config.json: process.rlimits: cannot apply to the jailed guest: prlimit ${r.error?.message ?? r.stderr.trim()}`,
        'tendril-oci needs CAP_SYS_RESOURCE, or util-linux\'s prlimit');
    }
    return r.stdout;
  };
  const hardOf = new Map(prlimit(['--raw', '--noheadings', '--output=RESOURCE,HARD']).trim().split('\n')
    .map((l) => l.trim().split(/\s+/)).map(([res, v]) => [res, v === 'unlimited' ? INFINITY : BigInt(v)]));
  const word = (v: bigint) => (v === INFINITY ? 'unlimited' : String(v));
  const min = (a: bigint, b: bigint) => (a < b ? a : b);
  const args = plan.rlimits.map((r) => {
    const name = r.type.replace(/^RLIMIT_/, '');
    const hard = min(r.hard, hardOf.get(name) ?? INFINITY);
    return `--${name.toLowerCase()}=${word(min(r.soft, hard))}:${word(hard)}`;
  });
  prlimit(args);
}

/**
 * The jail config.json asks for (undefined: none, or opted out), decided
 * for this host now: each missing layer is one line on the container's
 * stderr; strict refuses a host that lacks one.
 */
function decideJail(plan: BundlePlan, memMiB: number): (() => StartedJail) | undefined {
  if (!jailed(plan)) return undefined;
  const iso = ociIsolation({ namespaces: plan.namespaces, user: plan.user, resources: plan.cpu && { cpu: plan.cpu }, strict: plan.isolate === 'strict' })!;
  try {
    return jailFor(iso.options, memMiB, 'tendril-oci');
  } catch (e) {
    if (!(e instanceof IsolationError)) throw e;
    throw new ContainerError(`annotation ${ANNOTATION_PREFIX}isolate=strict: ${e.message.replace(/^--isolate=strict: /, '')}`,
      `the reasons are on the container's stderr; without ${ANNOTATION_PREFIX}isolate=strict the guest runs with the layers this host has`);
  }
}

/** The cgroups a jail made, for the state (delete removes them if the waiter could not): ':' separates them. */
function cgroupList(jail: StartedJail): string {
  for (const d of jail.cgroups.dirs) {
    if (/[:\n\r]/.test(d)) throw new ContainerError(`the guest's cgroup ${JSON.stringify(d)} has a ':' or a line break, which the container's state cannot record`);
  }
  return jail.cgroups.dirs.join(':');
}

/**
 * A failed create's jail: its processes are killed (the waiter's death ends
 * the guest and the init, PR_SET_PDEATHSIG, an instant later), then its
 * cgroups are removed once empty.
 */
function removeJail(jail: StartedJail): void {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (const dir of [...jail.cgroups.dirs].reverse()) {
    for (;;) {
      try {
        rmdirSync(dir);
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') break;
        if (code !== 'EBUSY' || Date.now() > deadline) throw new ContainerError(`cannot remove the guest's cgroup ${dir}: ${code ?? (e as Error).message}`);
        pause(5);
      }
    }
  }
}

/**
 * The stub, started directly: stdio, the devices at 3, 4, ..., the guest's
 * memory file, the plan, the start FIFO, and a pipe it closes with every fd
 * it does not keep, after loading the guest and before waiting for start.
 * Returns its pid and the pipe's read end.
 */
function startStub(p: PreparedLaunch, plan: BundlePlan, startFd: number, stdio: number[], jailer?: () => StartedJail): Started {
  const n = p.devices.length;
  const memAt = FIRST_FD + n;
  const planAt = memAt + 1;
  const startAt = planAt + 1;
  let memFd = -1;
  let planFd = -1;
  let ready: [number, number] | undefined;
  let jail: StartedJail | undefined;
  try {
    const c = compileLaunch(p);
    memFd = memoryFileFd(c.memory);
    // Last before the spawn, so nothing before it can leave the cgroups behind.
    jail = jailer?.();
    planFd = writePlanFd(encodePlan(c.plan, c.filter.bpf, {
      deviceSrc: p.devices.map((_, i) => FIRST_FD + i), imageSrc: memAt, flags: PlanFlags.WAIT_START | (jail?.flags ?? 0), startFd: startAt,
      sections: jail?.sections,
    }));
    ready = pipe();
    const fds = [...stdio, ...p.devices.map((d) => d.hostfd), memFd, planFd, startFd, ready[1]];
    // A terminal must become the new session's controlling terminal: setsid(1) --ctty does that, then execs the stub.
    const pid = plan.terminal
      ? spawnWithFds('setsid', ['--ctty', STUB_PATH, String(planAt)], { argv0: 'setsid', fds, newSession: false })
      : spawnWithFds(STUB_PATH, [String(planAt)], { argv0: `tendril: ${basename(plan.guest)}`, fds, newSession: true });
    return { pid, ready: ready[0], jail };
  } catch (e) {
    if (ready) os.close(ready[0]);
    jail?.cgroups.remove();
    throw e;
  } finally {
    if (ready) os.close(ready[1]);
    if (planFd >= 0) closeSync(planFd);
    if (memFd >= 0) closeSync(memFd);
    releaseLaunch(p);
  }
}

interface Started {
  pid: number;
  ready: number;
  jail?: StartedJail;
}

function describeEnd(end: { code?: number; signal?: number }): string {
  return end.signal !== undefined ? `killed by signal ${end.signal}` : `status ${end.code}`;
}

/**
 * Until the guest blocks reading the start FIFO, or the stub ends (then
 * throws); returns the guest's pid. Unjailed the guest is the stub process
 * itself; jailed it is the waiter's child that holds the FIFO (the other
 * child, the init, holds nothing but stderr). The readiness pipe ends first
 * (nothing is ever written to it: it hangs up when every process of the
 * stub has closed its copy with every fd it does not keep, or has died);
 * the guest's last steps before its read are then microseconds.
 */
function waitReady(pid: number, ready: number, fifo: string, jailed: boolean): number {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const fifoId = statSync(fifo);
  waitReadable(ready, READY_TIMEOUT_MS);
  for (;;) {
    const end = exited(pid);
    if (end) {
      throw new ContainerError(`the guest's loader (the stub) ended (${describeEnd(end)}) before the guest was ready to start` +
        '; its message went to the container\'s stderr');
    }
    for (const guest of jailed ? childrenOf(pid) : [pid]) {
      if (exePath(guest) !== STUB_PATH) continue;
      const held = fdOfFile(guest, fifoId);
      if (held === undefined) continue;
      const fd = readingFd(guest);
      if (fd === held) return guest;
      // Without access to /proc/PID/syscall: the stub running and asleep is the best sign there is.
      if (fd === undefined && procStat(guest)?.state === 'S') return guest;
    }
    if (Date.now() > deadline) throw new ContainerError(`the guest was not ready to start after ${READY_TIMEOUT_MS / 1000} s`);
    pause(0.2);
  }
}

function writeAtomically(file: string, text: string): void {
  const tmp = join(dirname(file), `.${process.pid}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

export async function create(o: CreateOptions): Promise<void> {
  checkId(o.id);
  const plan = loadBundle(o.bundle);
  if (plan.terminal && !o.consoleSocket) {
    throw new ContainerError('config.json: process.terminal is true but no --console-socket was given', 'the caller must receive the terminal');
  }
  if (!plan.terminal && o.consoleSocket) {
    throw new ContainerError('--console-socket given but config.json: process.terminal is not true');
  }
  let image: GuestImage;
  try {
    image = loadGuestImage(plan.guest);
  } catch (e) {
    if (!isTendrilError(e)) throw e;
    throw new BundleError(`process.args[0] ${plan.guestInImage}: ${e.message.replace(`${plan.guest}: `, '')}`, e.hint);
  }
  checkDevices(image, plan);

  // Before anything is made or opened: a strict jail this host cannot give refuses here.
  const jailer = decideJail(plan, plan.memMiB ?? DEFAULT_MEM_MIB);
  createContainerDir(o.root, o.id);
  const fifo = startFifo(o.root, o.id);
  let disks: number[] = [];
  let startFd: number | undefined;
  let pty: Pty | undefined;
  let pod: PodNet | undefined;
  // Loaded only when used: every module is milliseconds of the container's start.
  const podnet = plan.podNets.length ? await import('./podnet.js') : undefined;
  const tty = plan.terminal ? await import('./console.js') : undefined;
  let started: Started | undefined;
  try {
    if (sys.mkfifo(fifo, 0o600) < 0) throw new ContainerError(`mkfifo ${fifo} failed: ${os.strerror(os.errno())}`);
    startFd = openStartFifo(fifo);
    disks = openDisks(plan);
    if (plan.netns) enterNetns(plan.netns);
    if (podnet) pod = podnet.takeOver(plan.podNets[0]);
    const opts = runOptions(plan, disks, pod, podnet);
    let prepared: PreparedLaunch;
    try {
      prepared = prepareLaunch(opts, image);
    } catch (e) {
      // Those the launch had already released fail with EBADF: nothing opens an fd in between.
      for (const d of opts.devices) if (d.fd !== undefined) os.close(d.fd);
      throw e;
    }
    if (tty) pty = tty.openPty(plan.consoleSize);
    started = startStub(prepared, plan, startFd, pty ? [pty.slave, pty.slave, pty.slave] : [0, 1, 2], jailer);
    const guest = waitReady(started.pid, started.ready, fifo, started.jail !== undefined);
    const pid = started.pid;
    const startTime = procStat(pid)?.startTime;
    const guestStartTime = procStat(guest)?.startTime;
    if (startTime === undefined || guestStartTime === undefined) throw new ContainerError('the guest vanished while being created');
    if (pty) tty!.sendConsole(o.consoleSocket!, pty);
    applyLimits(guest, plan, guest !== pid ? pid : undefined);
    saveState(o.root, o.id, {
      runtime: RUNTIME_TENDRIL, pid: String(pid), startTime, bundle: plan.bundle, rootfs: plan.rootfs, created: new Date().toISOString(),
      annotations: JSON.stringify(plan.annotations), netns: plan.netns,
      ...(started.jail ? { guestPid: String(guest), guestStartTime, cgroups: cgroupList(started.jail) } : {}),
      ...(pod ? { podIface: pod.iface, podAddr: pod.addr ? `${pod.addr}/${pod.prefix}` : undefined, podGateway: pod.gateway, podTap: pod.tap } : {}),
    });
    if (o.pidFile) writeAtomically(o.pidFile, String(pid));
  } catch (e) {
    if (started && !exited(started.pid)) {
      try {
        process.kill(started.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (started?.jail) removeJail(started.jail);
    if (pod) podnet!.giveBack(pod);
    removeContainerDir(o.root, o.id);
    throw e;
  } finally {
    for (const fd of disks) closeSync(fd);
    if (pod) closeSync(pod.tapFd);
    if (startFd !== undefined) closeSync(startFd);
    if (pty) tty!.closePty(pty);
    if (started) os.close(started.ready);
  }
}
