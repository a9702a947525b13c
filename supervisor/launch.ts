// From run options to a running guest: CLI → plan → stub → guest, one way.
//
// prepareLaunch does every check and every allocation that can fail while
// Node can still report it (image, devices). compileLaunch then produces the
// filter and the guest half of the plan for the fd numbers the guest sees,
// which are the same in every hand-over (loader/formats.ts GUEST_FD); the
// stub puts the fds there and makes the epoll set and the timer itself.
// Three hand-overs use it:
//   - exec (`run`, the default): the stub replaces this process, so the guest
//     inherits the PID, the terminal and the exit status, as under solo5-spt;
//   - spawn (`run --supervise`): the stub is a child in monitor mode
//     (supervise.ts);
//   - pool (`serve`): a stub spawned ahead of demand receives the plan and
//     the fds over a socket (serve/zygote.ts).

import { constants as fsConstants, fstatSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { GUEST_FD } from '../loader/formats.js';
import type { LoadSegment } from '../loader/elf.js';
import { checkMemory, loadGuestImage, type GuestImage } from '../loader/image.js';
import {
  deviceFd, encodeCmdline, encodePlan, makeGuestPlan, memoryImage, PlanFlags, type GuestPlan, type MemoryImage, type PlanSectionData,
} from '../loader/plan.js';
import { compilePolicyCached, TRACE_ALL, type CompiledFilter, type CompileOptions } from '../filters/compile.js';
import { corePolicy, type Policy } from '../filters/policy.js';
import { attachDevices, matchRequests, releaseDevices, type AttachedDevice } from './devices/index.js';
import { LaunchError } from './errors.js';
import type { RunOptions } from './options.js';
import { log } from './log.js';
import { nativeHint, nativeProblem, STUB_PATH } from './paths.js';
import * as os from './os.js';
import type { StartedJail } from './isolate/jail.js';

/** Validated image + attached devices, in this process's fd numbers. */
export interface PreparedLaunch {
  image: GuestImage;
  memSize: bigint;
  segments: LoadSegment[];
  cmdline: string;
  flags: number;
  /** In attach order: device i is the guest's fd GUEST_FD.FIRST_DEVICE + i. */
  devices: AttachedDevice[];
}

export interface CompiledLaunch {
  policy: Policy;
  filter: CompiledFilter;
  plan: GuestPlan;
  memory: MemoryImage;
}

/**
 * What recording adds to a hand-over (supervisor/record/): the filter in
 * its traced form, plan flags, the recording's fd and the section that
 * names it, and a look at the compiled launch (the recording starts with
 * the guest's initial state) before the stub starts.
 */
export interface TraceSetup {
  flags: number;
  /** The recording, in this process. */
  fd: number;
  /** The plan section, given the fd number the stub will find the recording at. */
  section: (stubFd: number) => PlanSectionData;
  onCompiled: (c: CompiledLaunch) => void;
}

function sysFail(what: string): LaunchError {
  return new LaunchError(`${what} failed: ${os.strerror(os.errno())}`);
}

function launchFlags(opts: RunOptions): number {
  return (opts.xExecHeap ? PlanFlags.X_EXEC_HEAP : 0) | (opts.dumpable ? PlanFlags.DUMPABLE : 0) |
    (opts.gdb ? PlanFlags.STOP_AT_ENTRY : 0);
}

export function prepareLaunch(opts: RunOptions, image: GuestImage = loadGuestImage(opts.guest)): PreparedLaunch {
  const matched = matchRequests(image.manifest, opts.devices, opts.api);
  const memSize = BigInt(opts.memMiB) << 20n;
  const segments = checkMemory(image, memSize, opts.api ? 'memMiB' : '--mem', opts.memMiB);
  const cmdline = opts.guestArgs.join(' ');
  encodeCmdline(cmdline); // reject an over-long command line before any device is opened
  checkStub();
  const devices = attachDevices(matched);
  return { image, memSize, segments, cmdline, flags: launchFlags(opts), devices };
}

let stubOk = false;

/** The stub is there and whole (checked once per process: a server launches many guests). */
function checkStub(): void {
  if (stubOk) return;
  const stubProblem = nativeProblem(STUB_PATH);
  if (stubProblem) throw new LaunchError(`the native stub is ${stubProblem} (${STUB_PATH})`, nativeHint());
  stubOk = true;
}

/** Closes everything prepareLaunch opened (after a hand-over to a child, or when abandoning). */
export function releaseLaunch(p: PreparedLaunch): void {
  releaseDevices(p.devices);
}

/**
 * The guest's allowlist for its attached devices, at the fd numbers every
 * hand-over gives it (formats.ts GUEST_FD): the same for a fresh guest and
 * a restored one with the same manifest and devices.
 */
export function launchPolicy(devices: AttachedDevice[]): Policy {
  return {
    rules: [...corePolicy({ epollfd: GUEST_FD.EPOLL, timerfd: GUEST_FD.TIMER }), ...devices.flatMap((d, i) => d.rules(deviceFd(i)))],
  };
}

/**
 * The policy, filter and guest plan, for the fd numbers every hand-over
 * gives the guest (formats.ts GUEST_FD). `memory` may be passed in when the
 * caller keeps the image's memory file (serve); `filterOptions` are for
 * snapshot creation, whose yields stop for the monitor.
 */
export function compileLaunch(p: PreparedLaunch, memory: MemoryImage = memoryImage(p.segments), filterOptions: CompileOptions = {}): CompiledLaunch {
  const policy = launchPolicy(p.devices);
  const filter = compilePolicyCached(policy, filterOptions);
  log.debug({ syscalls: new Set(policy.rules.map((r) => r.syscall)).size, rules: policy.rules.length, instructions: filter.instructions }, 'filter compiled');
  const plan = makeGuestPlan({
    memSize: p.memSize,
    entry: p.image.header.entry,
    segments: p.segments,
    regions: memory.regions,
    manifest: p.image.manifest,
    attachments: p.devices.map((d) => ({ ...d.attachment, pollable: d.pollable })),
    cmdline: p.cmdline,
    flags: p.flags,
  });
  return { policy, filter, plan, memory };
}

/**
 * The guest's memory file: a memfd holding the image's segments, sealed so
 * that nobody, tendril included, can change it while guests map it.
 */
export function memoryFileFd(memory: MemoryImage): number {
  const fd = os.memfdCreate('tendril-guest-memory', os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING);
  if (fd < 0) throw sysFail('memfd_create');
  try {
    let off = 0;
    while (off < memory.bytes.length) off += writeSync(fd, memory.bytes, off, memory.bytes.length - off, off);
    if (os.fcntl(fd, os.F_ADD_SEALS, os.F_SEAL_SEAL | os.F_SEAL_SHRINK | os.F_SEAL_GROW | os.F_SEAL_WRITE) < 0) {
      throw sysFail('sealing the guest memory file');
    }
  } catch (e) {
    os.close(fd);
    throw e;
  }
  return fd;
}

/**
 * --dumpcore=DIR relies on the kernel's own core dump of the guest process:
 * guest addresses are host addresses, so the core of the stub process is a
 * core of the guest that `gdb GUEST core` reads with the guest's symbols. The
 * kernel writes it by kernel.core_pattern relative to the process's working
 * directory, so the pattern must be a plain file name, not a pipe or a path.
 */
export function prepareCoreDumps(dir: string): string {
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new LaunchError(`--dumpcore=${dir}: no such directory`, `create it first: mkdir -p ${dir}`);
  }
  if (!st.isDirectory()) throw new LaunchError(`--dumpcore=${dir}: not a directory`);
  const pattern = readFileSync('/proc/sys/kernel/core_pattern', 'utf8').trim();
  if (pattern.startsWith('|') || pattern.includes('/')) {
    throw new LaunchError(`--dumpcore: the kernel sends core dumps to '${pattern}' (kernel.core_pattern), not to a file in ${dir}`,
      'set a plain file pattern, e.g. sysctl kernel.core_pattern=core');
  }
  const unlimited = Buffer.alloc(16, 0xff); // struct rlimit { RLIM_INFINITY, RLIM_INFINITY }
  if (os.setrlimit(os.RLIMIT_CORE, unlimited) < 0) throw sysFail('setrlimit(RLIMIT_CORE)');
  const abs = resolve(dir);
  process.chdir(abs);
  return join(abs, pattern.replace(/%p/g, '<pid>'));
}

/**
 * --wait-fifo=PATH (for tendril-oci): the stub holds the loaded guest until
 * a byte is written to the FIFO. It is opened read-write so that it always
 * has a writer: a read then blocks until `start` writes, instead of seeing
 * end-of-file while no one has the FIFO open yet.
 */
export function openStartFifo(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, fsConstants.O_RDWR); // Node adds O_CLOEXEC itself
  } catch (e) {
    throw new LaunchError(`--wait-fifo=${path}: cannot open: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      'create it first with mkfifo');
  }
  if (!fstatSync(fd).isFIFO()) {
    os.close(fd);
    throw new LaunchError(`--wait-fifo=${path}: not a FIFO`, 'create it with mkfifo');
  }
  return fd;
}

/** The plan in a memfd the stub reads front to back. */
export function writePlanFd(bytes: Buffer): number {
  const fd = os.memfdCreate('tendril-plan', os.MFD_CLOEXEC);
  if (fd < 0) throw sysFail('memfd_create');
  let off = 0;
  // Positional writes leave the file offset at 0, where the stub starts reading.
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off, off);
  return fd;
}

/**
 * Replaces this process with the stub. Node marks every fd close-on-exec,
 * stdio included, so each fd the stub must find has the flag cleared.
 * Returns only by throwing.
 */
export function execStub(p: PreparedLaunch, argv0: string, opts: { startFd?: number; trace?: TraceSetup; jail?: () => StartedJail } = {}): never {
  const t = opts.trace;
  const c = compileLaunch(p, undefined, t ? TRACE_ALL : {});
  t?.onCompiled(c);
  return execPlan(c.plan, c.filter.bpf, p.devices.map((d) => d.hostfd), memoryFileFd(c.memory), argv0, {
    startFd: opts.startFd, jail: opts.jail,
    ...(t ? { flags: t.flags, sections: [t.section(t.fd)], extraFds: [t.fd] } : {}),
  });
}

/** How execPlan's caller extends the plan: record/replay add a flag, a section and the recording's fd; --isolate a jail. */
interface ExecOptions {
  startFd?: number;
  flags?: number;
  sections?: PlanSectionData[];
  /** More fds the stub must inherit, at the same numbers. */
  extraFds?: number[];
  /** --isolate: makes the guest's cgroups and the plan's isolation sections (supervisor/isolate/). */
  jail?: () => StartedJail;
}

/** execStub for a guest plan made elsewhere (a restore): devices and memory file at this process's fd numbers. */
export function execPlan(plan: GuestPlan, bpf: Buffer, deviceFds: number[], memFd: number, argv0: string, opts: ExecOptions = {}): never {
  // Last, so nothing before can leave its cgroups behind; the stub removes them when the guest ends.
  const jail = opts.jail?.();
  try {
    const planFd = writePlanFd(encodePlan(plan, bpf, {
      deviceSrc: deviceFds, imageSrc: memFd,
      flags: (opts.startFd !== undefined ? PlanFlags.WAIT_START : 0) | (opts.flags ?? 0) | (jail?.flags ?? 0), startFd: opts.startFd,
      sections: [...(opts.sections ?? []), ...(jail?.sections ?? [])],
    }));
    const inherit = [0, 1, 2, ...deviceFds, memFd, planFd, ...(opts.startFd !== undefined ? [opts.startFd] : []), ...(opts.extraFds ?? [])];
    for (const fd of inherit) {
      if (os.fcntl(fd, os.F_SETFD, 0) < 0) throw sysFail(`fcntl(${fd}, F_SETFD)`);
    }
    os.execve(STUB_PATH, [argv0, String(planFd), null], [null]);
    throw new LaunchError(`execve(${STUB_PATH}) failed: ${os.strerror(os.errno())}`, nativeHint());
  } catch (e) {
    jail?.cgroups.remove();
    throw e;
  }
}
