// `create`: check the bundle, then start the container's init (init.ts:
// `tendril run --wait-fifo=ROOT/ID/start.fifo ... GUEST ARGS`) detached, in
// its own session, with this process's stdio (what the shim handed over:
// FIFOs, pipes or /dev/null) or a new pty. Return once the init has become
// the stub and waits on the FIFO (exit 0, pid file written), or has failed
// (its message goes to the log, exit 1). The shim, a subreaper, adopts the
// init when we exit, reaps it and sees the guest's real exit status.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants as fsc, openSync, readlinkSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { MftType } from '../../loader/abi.js';
import { isTendrilError } from '../../loader/errors.js';
import { loadGuestImage } from '../../loader/image.js';
import { deviceTypeName, findDevice, type Manifest } from '../../loader/manifest.js';
import * as os from '../os.js';
import { STUB_PATH } from '../paths.js';
import { ANNOTATION_PREFIX, insideRootfs, loadBundle, runOptions, type BundlePlan } from './bundle.js';
import { closePty, openPty, sendConsole, type Pty } from './console.js';
import { BundleError, ContainerError } from './errors.js';
import type { RuntimeLog } from './log.js';
import { exePath, fdIsFile, procStat, readingFd } from './proc.js';
import { checkId, createContainerDir, exists, removeContainerDir, saveState, startFifo } from './state.js';
import * as sys from './sys.js';

export interface CreateOptions {
  root: string;
  id: string;
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  log: RuntimeLog;
}

const INIT_JS = fileURLToPath(new URL('./init.js', import.meta.url));
/** The init's fds: 0-2 stdio, 3 the error pipe, then the block devices. */
const ERR_FD = 3;
const FIRST_DEVICE_FD = 4;
/** Loading a guest takes milliseconds; a stuck init is a bug or a starved machine. */
const READY_TIMEOUT_MS = 30_000;

/** Devices named by annotations against the guest's manifest, in OCI terms (annotations, not options). */
function checkDevices(manifest: Manifest, plan: BundlePlan): void {
  const declared = manifest.devices.map((d) => `${d.name} (${deviceTypeName(d.type)})`).join(', ') || 'no devices';
  const wanted = [
    ...plan.nets.map((n) => ({ name: n.name, type: MftType.NET_BASIC, source: n.source })),
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
    const hint = dev.type === MftType.NET_BASIC ? `${ANNOTATION_PREFIX}net.${dev.name}=TAP` : `${ANNOTATION_PREFIX}block.${dev.name}=/PATH-IN-IMAGE`;
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

function writeAtomically(file: string, text: string): void {
  const tmp = join(dirname(file), `.${process.pid}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/** Waits until the init waits on the start FIFO (ready) or exits (then throws with its message). */
async function waitReady(child: ChildProcess, fifo: string, errText: () => string, exit: () => { code: number | null; signal: string | null } | undefined,
  spawnError: () => Error | undefined): Promise<void> {
  const fifoId = statSync(fifo);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const pid = child.pid!;
  for (;;) {
    const err = spawnError();
    if (err) throw new ContainerError(`cannot start the container's init: ${err.message}`);
    const end = exit();
    if (end) {
      const msg = errText().trim().split('\n').filter(Boolean).pop();
      if (msg) throw new ContainerError(msg);
      throw new ContainerError(`the guest's loader ended (${end.signal ?? `status ${end.code}`}) before the guest was ready to start` +
        '; its message, if any, went to the container\'s stderr');
    }
    const fd = readingFd(pid);
    if (typeof fd === 'number' && exePath(pid) === STUB_PATH && fdIsFile(pid, fd, fifoId)) return;
    // Without access to /proc/PID/syscall: the stub running and asleep is the best sign there is.
    if (fd === undefined && exePath(pid) === STUB_PATH && procStat(pid)?.state === 'S') return;
    if (Date.now() > deadline) throw new ContainerError(`the guest was not ready to start after ${READY_TIMEOUT_MS / 1000} s`);
    await sleep(1);
  }
}

/**
 * config.json's rlimits, applied to the loaded guest. The stub has already
 * lowered its own limits (no core, no fd above those it holds, no locked
 * memory); a bundle may lower them further but never raise them again.
 */
function applyLimits(pid: number, plan: BundlePlan): void {
  for (const r of plan.rlimits) {
    const current = Buffer.alloc(16);
    if (sys.prlimit(pid, r.resource, null, current) < 0) {
      throw new BundleError(`config.json: process.rlimits ${r.type}: cannot read the guest's limit: ${os.strerror(os.errno())}`);
    }
    const min = (a: bigint, b: bigint) => (a < b ? a : b);
    const hard = min(r.hard, current.readBigUInt64LE(8));
    const buf = Buffer.alloc(16);
    buf.writeBigUInt64LE(min(r.soft, hard), 0);
    buf.writeBigUInt64LE(hard, 8);
    if (sys.prlimit(pid, r.resource, buf, null) < 0) {
      throw new BundleError(`config.json: process.rlimits ${r.type}: cannot apply: ${os.strerror(os.errno())}`);
    }
  }
  if (plan.oomScoreAdj !== undefined) writeFileSync(`/proc/${pid}/oom_score_adj`, String(plan.oomScoreAdj));
}

export async function create(o: CreateOptions): Promise<void> {
  checkId(o.id);
  if (exists(o.root, o.id)) throw new ContainerError(`container with id ${o.id} already exists`);
  const plan = loadBundle(o.bundle);
  if (plan.terminal && !o.consoleSocket) {
    throw new ContainerError('config.json: process.terminal is true but no --console-socket was given', 'the caller must receive the terminal');
  }
  if (!plan.terminal && o.consoleSocket) {
    throw new ContainerError('--console-socket given but config.json: process.terminal is not true');
  }
  let manifest: Manifest;
  try {
    manifest = loadGuestImage(plan.guest).manifest;
  } catch (e) {
    if (!isTendrilError(e)) throw e;
    throw new BundleError(`process.args[0] ${plan.guestInImage}: ${e.message.replace(`${plan.guest}: `, '')}`, e.hint);
  }
  checkDevices(manifest, plan);

  createContainerDir(o.root, o.id);
  const fifo = startFifo(o.root, o.id);
  let disks: number[] = [];
  let pty: Pty | undefined;
  let child: ChildProcess | undefined;
  let exited: { code: number | null; signal: string | null } | undefined;
  try {
    if (sys.mkfifo(fifo, 0o600) < 0) throw new ContainerError(`mkfifo ${fifo} failed: ${os.strerror(os.errno())}`);
    disks = openDisks(plan);
    const deviceFds = new Map(plan.blocks.map((b, i) => [b.name, FIRST_DEVICE_FD + i]));
    const runArgs = [`--wait-fifo=${fifo}`, ...runOptions(plan, deviceFds), plan.guest, ...plan.guestArgs];
    if (plan.terminal) pty = openPty(plan.consoleSize);
    const stdio = pty ? [pty.slave, pty.slave, pty.slave] : [0, 1, 2];

    // init.js replaces itself with the stub, and setsid/nsenter exec without forking,
    // so the pid we spawn is the guest's. A terminal must become the session's
    // controlling terminal, which needs setsid(1) --ctty in the new session.
    let cmd = process.execPath;
    let args = [INIT_JS, String(ERR_FD), ...runArgs];
    if (plan.terminal) [cmd, args] = ['setsid', ['--ctty', cmd, ...args]];
    if (plan.netns) [cmd, args] = ['nsenter', [`--net=${plan.netns}`, cmd, ...args]];
    o.log.info('starting init', { cmd, args });
    child = spawn(cmd, args, { stdio: [...stdio, 'pipe', ...disks], detached: !plan.terminal });
    let errText = '';
    let spawnError: Error | undefined;
    child.on('error', (e) => { spawnError = e; });
    child.on('exit', (code, signal) => { exited = { code, signal }; });
    child.stdio[ERR_FD]?.on('data', (d: Buffer) => { errText += d.toString(); });

    await waitReady(child, fifo, () => errText, () => exited, () => spawnError);
    const pid = child.pid!;
    const startTime = procStat(pid)?.startTime;
    if (startTime === undefined) throw new ContainerError('the guest vanished while being created');
    if (pty) sendConsole(o.consoleSocket!, pty);
    applyLimits(pid, plan);
    saveState(o.root, {
      id: o.id, pid, startTime, bundle: plan.bundle, rootfs: plan.rootfs, created: new Date().toISOString(),
      annotations: plan.annotations, started: false,
    });
    if (o.pidFile) writeAtomically(o.pidFile, String(pid));
    o.log.info('created', { id: o.id, pid, guest: plan.guestInImage });
  } catch (e) {
    if (child?.pid && !exited) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    removeContainerDir(o.root, o.id);
    throw e;
  } finally {
    for (const fd of disks) closeSync(fd);
    if (pty) closePty(pty);
    child?.stdio[ERR_FD]?.destroy();
    child?.unref();
  }
}
