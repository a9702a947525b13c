// From run options to a running guest: CLI → plan → stub → guest, one way.
//
// prepareLaunch does every check and every allocation that can fail while
// Node can still report it (image, devices, filter, plan); execStub then
// replaces this process with the native stub, so the guest inherits the PID,
// the terminal and the exit status exactly as under solo5-spt.

import { existsSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SPT_INTERNAL_TIMERFD } from '../loader/abi.js';
import { validateLoadSegments } from '../loader/elf.js';
import { loadGuestImage, type GuestImage } from '../loader/image.js';
import { encodeCmdline, encodePlan, makeLaunchPlan, PlanFlags, type LaunchPlan } from '../loader/plan.js';
import { compilePolicy, type CompiledFilter } from '../filters/compile.js';
import { corePolicy, type Policy } from '../filters/policy.js';
import { attachDevices, matchRequests, releaseDevices, type AttachedDevice } from './devices/index.js';
import { LaunchError } from './errors.js';
import type { RunOptions } from './options.js';
import * as os from './os.js';

export interface PreparedLaunch {
  image: GuestImage;
  devices: AttachedDevice[];
  epollfd: number;
  timerfd: number;
  policy: Policy;
  filter: CompiledFilter;
  plan: LaunchPlan;
}

const here = dirname(fileURLToPath(import.meta.url));
/** dist/supervisor → native/build; the stub is built by `npm install`. */
export const STUB_PATH = resolve(here, '../../native/build/tendril-stub');

function sysFail(what: string): LaunchError {
  return new LaunchError(`${what} failed: ${os.strerror(os.errno())}`);
}

/** The tender's own fds (spec §9): an epoll set with the timerfd tagged ~1U and each tap tagged with its handle. */
function createPollSet(devices: AttachedDevice[]): { epollfd: number; timerfd: number } {
  const epollfd = os.epollCreate1(os.EPOLL_CLOEXEC);
  if (epollfd < 0) throw sysFail('epoll_create1');
  const timerfd = os.timerfdCreate(os.CLOCK_MONOTONIC, os.TFD_NONBLOCK | os.TFD_CLOEXEC);
  if (timerfd < 0) throw sysFail('timerfd_create');
  if (os.epollCtl(epollfd, os.EPOLL_CTL_ADD, timerfd, os.epollEvent(os.EPOLLIN, SPT_INTERNAL_TIMERFD)) < 0) {
    throw sysFail('epoll_ctl(timerfd)');
  }
  for (const d of devices) {
    if (!d.pollable) continue;
    if (os.epollCtl(epollfd, os.EPOLL_CTL_ADD, d.hostfd, os.epollEvent(os.EPOLLIN, BigInt(d.attachment.index))) < 0) {
      throw sysFail(`epoll_ctl(${d.name}, fd ${d.hostfd})`);
    }
  }
  return { epollfd, timerfd };
}

export function prepareLaunch(opts: RunOptions): PreparedLaunch {
  const image = loadGuestImage(opts.guest);
  const matched = matchRequests(image.manifest, opts.devices);
  const memSize = BigInt(opts.memMiB) << 20n;
  const segments = validateLoadSegments(image.file, image.bytes, image.header, image.phdrs, memSize);
  const cmdline = opts.guestArgs.join(' ');
  encodeCmdline(cmdline); // reject an over-long command line before any device is opened
  if (!existsSync(STUB_PATH)) {
    throw new LaunchError(`the native stub is missing (${STUB_PATH})`, 'build tendril first: npm install (or npm run build)');
  }

  const devices = attachDevices(matched);
  try {
    const { epollfd, timerfd } = createPollSet(devices);
    const policy: Policy = { rules: [...corePolicy({ epollfd, timerfd }), ...devices.flatMap((d) => d.rules)] };
    const filter = compilePolicy(policy);
    const plan = makeLaunchPlan({
      memSize,
      entry: image.header.entry,
      segments,
      manifest: image.manifest,
      attachments: devices.map((d) => d.attachment),
      cmdline,
      epollfd,
      timerfd,
      keepFds: [0, 1, 2, ...devices.map((d) => d.hostfd), epollfd, timerfd],
      flags: (opts.xExecHeap ? PlanFlags.X_EXEC_HEAP : 0) | (opts.dumpable ? PlanFlags.DUMPABLE : 0) |
        (opts.gdb ? PlanFlags.STOP_AT_ENTRY : 0),
    });
    return { image, devices, epollfd, timerfd, policy, filter, plan };
  } catch (e) {
    releaseDevices(devices);
    throw e;
  }
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

/** The plan in a sealed-off memfd the stub reads front to back. */
export function writePlanFd(prepared: PreparedLaunch): number {
  const bytes = encodePlan(prepared.plan, prepared.filter.bpf);
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
export function execStub(prepared: PreparedLaunch, argv0: string): never {
  const planFd = writePlanFd(prepared);
  for (const fd of [...prepared.plan.keepFds, planFd]) {
    if (os.fcntl(fd, os.F_SETFD, 0) < 0) throw sysFail(`fcntl(${fd}, F_SETFD)`);
  }
  os.execve(STUB_PATH, [argv0, String(planFd), null], [null]);
  throw sysFail(`execve(${STUB_PATH})`);
}
