// From run options to a running guest: CLI → plan → stub → guest, one way.
//
// prepareLaunch does every check and every allocation that can fail while
// Node can still report it (image, devices, the tender's fds). compileLaunch
// then fixes the fd numbers the guest will see, which the filter and the
// manifest copy depend on, and produces the plan. Three hand-overs use it:
//   - exec (`run`, the default): the stub replaces this process, so the guest
//     inherits the PID, the terminal and the exit status, as under solo5-spt;
//     fds keep their numbers;
//   - spawn (`run --supervise`): the stub is a child with the fds placed at
//     3, 4, … (supervise.ts);
//   - pool (`serve`): a stub spawned ahead of demand receives the plan and
//     the fds over a socket and moves the fds to the planned numbers.

import { constants as fsConstants, fstatSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SPT_INTERNAL_TIMERFD } from '../loader/abi.js';
import { validateLoadSegments, type LoadSegment } from '../loader/elf.js';
import { loadGuestImage, type GuestImage } from '../loader/image.js';
import { encodeCmdline, encodePlan, makeLaunchPlan, PlanFlags, type LaunchPlan } from '../loader/plan.js';
import { compilePolicyCached, type CompiledFilter } from '../filters/compile.js';
import { corePolicy, type Policy } from '../filters/policy.js';
import { attachDevices, matchRequests, releaseDevices, type AttachedDevice } from './devices/index.js';
import { LaunchError } from './errors.js';
import type { RunOptions } from './options.js';
import { log } from './log.js';
import { nativeHint, nativeProblem, STUB_PATH } from './paths.js';
import * as os from './os.js';

/** Validated image + attached devices + the tender's fds, in this process's fd numbers. */
export interface PreparedLaunch {
  image: GuestImage;
  memSize: bigint;
  segments: LoadSegment[];
  cmdline: string;
  flags: number;
  devices: AttachedDevice[];
  epollfd: number;
  timerfd: number;
}

/**
 * Where the guest finds the fds it keeps:
 *  - 'inherit': at the same numbers as here (exec);
 *  - 'place': epoll, timerfd, then each device, at base, base+1, … (spawn, pool).
 */
export type FdLayout = { kind: 'inherit' } | { kind: 'place'; base: number };

export interface CompiledLaunch {
  policy: Policy;
  filter: CompiledFilter;
  plan: LaunchPlan;
  /** This process's fds to hand over, in order; with 'place' the guest gets them at base, base+1, … */
  passFds: number[];
  /** The fd numbers the guest sees for passFds. */
  guestFds: number[];
}


function sysFail(what: string): LaunchError {
  return new LaunchError(`${what} failed: ${os.strerror(os.errno())}`);
}

/** The tender's own fds (abi.md §9): an epoll set with the timerfd tagged ~1U and each tap tagged with its handle. */
function createPollSet(devices: AttachedDevice[]): { epollfd: number; timerfd: number } {
  const epollfd = os.epollCreate1(os.EPOLL_CLOEXEC);
  if (epollfd < 0) throw sysFail('epoll_create1');
  const timerfd = os.timerfdCreate(os.CLOCK_MONOTONIC, os.TFD_NONBLOCK | os.TFD_CLOEXEC);
  if (timerfd < 0) {
    os.close(epollfd);
    throw sysFail('timerfd_create');
  }
  const fail = (what: string) => {
    const err = sysFail(what);
    os.close(epollfd);
    os.close(timerfd);
    return err;
  };
  if (os.epollCtl(epollfd, os.EPOLL_CTL_ADD, timerfd, os.epollEvent(os.EPOLLIN, SPT_INTERNAL_TIMERFD)) < 0) {
    throw fail('epoll_ctl(timerfd)');
  }
  for (const d of devices) {
    if (!d.pollable) continue;
    if (os.epollCtl(epollfd, os.EPOLL_CTL_ADD, d.hostfd, os.epollEvent(os.EPOLLIN, BigInt(d.attachment.index))) < 0) {
      throw fail(`epoll_ctl(${d.name}, fd ${d.hostfd})`);
    }
  }
  return { epollfd, timerfd };
}

function launchFlags(opts: RunOptions): number {
  return (opts.xExecHeap ? PlanFlags.X_EXEC_HEAP : 0) | (opts.dumpable ? PlanFlags.DUMPABLE : 0) |
    (opts.gdb ? PlanFlags.STOP_AT_ENTRY : 0);
}

export function prepareLaunch(opts: RunOptions, image: GuestImage = loadGuestImage(opts.guest)): PreparedLaunch {
  const matched = matchRequests(image.manifest, opts.devices);
  const memSize = BigInt(opts.memMiB) << 20n;
  const segments = validateLoadSegments(image.file, image.bytes, image.header, image.phdrs, memSize);
  const cmdline = opts.guestArgs.join(' ');
  encodeCmdline(cmdline); // reject an over-long command line before any device is opened
  const stubProblem = nativeProblem(STUB_PATH);
  if (stubProblem) throw new LaunchError(`the native stub is ${stubProblem} (${STUB_PATH})`, nativeHint());
  const devices = attachDevices(matched);
  try {
    const { epollfd, timerfd } = createPollSet(devices);
    return { image, memSize, segments, cmdline, flags: launchFlags(opts), devices, epollfd, timerfd };
  } catch (e) {
    releaseDevices(devices);
    throw e;
  }
}

/** Closes everything prepareLaunch opened (after a hand-over to a child, or when abandoning). */
export function releaseLaunch(p: PreparedLaunch): void {
  releaseDevices(p.devices);
  os.close(p.epollfd);
  os.close(p.timerfd);
}

export interface CompileOptions {
  /** Added to the run's flags (PlanFlags.MONITOR for supervised launches). */
  extraFlags?: number;
  /** Monitor mode: the fd number of the report pipe in the stub. */
  reportFd?: number;
  /** Pool: the fds travel with the plan (SCM_RIGHTS) and the stub moves them into place. */
  sendFds?: boolean;
  /** OCI create/start: hold the loaded guest until a byte arrives on this fd (guest numbering). */
  startFd?: number;
}

export function compileLaunch(p: PreparedLaunch, layout: FdLayout, opts: CompileOptions = {}): CompiledLaunch {
  const passFds = [p.epollfd, p.timerfd, ...p.devices.map((d) => d.hostfd)];
  const guestFds = layout.kind === 'inherit' ? passFds : passFds.map((_, i) => layout.base + i);
  const guestFd = (hostFd: number) => guestFds[passFds.indexOf(hostFd)];
  const epollfd = guestFd(p.epollfd);
  const timerfd = guestFd(p.timerfd);
  const policy: Policy = {
    rules: [...corePolicy({ epollfd, timerfd }), ...p.devices.flatMap((d) => d.rules(guestFd(d.hostfd)))],
  };
  const filter = compilePolicyCached(policy);
  log.debug({ syscalls: new Set(policy.rules.map((r) => r.syscall)).size, rules: policy.rules.length, instructions: filter.instructions }, 'filter compiled');
  const plan = makeLaunchPlan({
    memSize: p.memSize,
    entry: p.image.header.entry,
    segments: p.segments,
    manifest: p.image.manifest,
    attachments: p.devices.map((d) => ({ ...d.attachment, hostfd: guestFd(d.hostfd) })),
    cmdline: p.cmdline,
    epollfd,
    timerfd,
    keepFds: [0, 1, 2, ...guestFds],
    flags: p.flags | (opts.extraFlags ?? 0) | (opts.startFd !== undefined ? PlanFlags.WAIT_START : 0),
    receiveAt: opts.sendFds ? guestFds : [],
    reportFd: opts.reportFd,
    startFd: opts.startFd,
  });
  return { policy, filter, plan, passFds, guestFds };
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
export function writePlanFd(c: CompiledLaunch): number {
  const bytes = encodePlan(c.plan, c.filter.bpf);
  const fd = os.memfdCreate('tendril-plan', os.MFD_CLOEXEC);
  if (fd < 0) throw sysFail('memfd_create');
  let off = 0;
  // Positional writes leave the file offset at 0, where the stub starts reading.
  while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off, off);
  return fd;
}

/**
 * Replaces this process with the stub. Node marks every fd close-on-exec,
 * stdio included, so each fd the guest keeps must have the flag cleared.
 * Returns only by throwing.
 */
export function execStub(p: PreparedLaunch, argv0: string, opts: { startFd?: number } = {}): never {
  const c = compileLaunch(p, { kind: 'inherit' }, { startFd: opts.startFd });
  const planFd = writePlanFd(c);
  for (const fd of [...c.plan.keepFds, planFd, ...(opts.startFd !== undefined ? [opts.startFd] : [])]) {
    if (os.fcntl(fd, os.F_SETFD, 0) < 0) throw sysFail(`fcntl(${fd}, F_SETFD)`);
  }
  os.execve(STUB_PATH, [argv0, String(planFd), null], [null]);
  throw new LaunchError(`execve(${STUB_PATH}) failed: ${os.strerror(os.errno())}`, nativeHint());
}
