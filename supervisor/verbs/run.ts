// `tendril run` / `tendril-spt`: validate, attach, compile, then become the
// guest (exec, the default) or start it as a supervised child (--supervise).

import { basename, resolve } from 'node:path';
import { deviceTypeName } from '../../loader/manifest.js';
import { version, versionText } from '../cli.js';
import { execPlan, execStub, openStartFifo, prepareCoreDumps, prepareLaunch, type PreparedLaunch, type TraceSetup } from '../launch.js';
import type { Spawned } from '../supervise.js';
import { STUB_PATH } from '../paths.js';
import { configureLog, log } from '../log.js';
import { parseRunArgs, runUsage, type RunOptions } from '../options.js';
import { jailFor, type StartedJail } from '../isolate/index.js';

function logPrepared(p: PreparedLaunch, opts: RunOptions): void {
  if (!log.enabled('info')) return;
  log.info({
    guest: p.image.file, target: 'spt', abi: p.image.abi.version, entry: `0x${p.image.header.entry.toString(16)}`,
    memMiB: opts.memMiB, devices: p.image.manifest.devices.map((d) => `${d.name}:${deviceTypeName(d.type)}`),
  }, 'image validated');
  for (const d of p.devices) {
    const a = d.attachment;
    log.info({
      device: d.name, kind: d.kind, handle: a.index, hostfd: d.hostfd,
      ...(a.net ? { mtu: a.net.mtu } : {}), ...(a.block ? { capacity: Number(a.block.capacity), blockSize: a.block.blockSize } : {}),
    }, 'device attached');
  }
}

/** --record: what the hand-over adds (loaded only when asked for). */
async function recording(p: PreparedLaunch, opts: RunOptions): Promise<TraceSetup | undefined> {
  if (!opts.record) return undefined;
  const { recordingSetup } = await import('../record/record.js');
  return recordingSetup(opts.record, p, opts);
}

export async function runVerb(argv: string[], prog: string): Promise<number> {
  // tendril-spt follows solo5-spt's conventions (help and version on stderr,
  // help exits 1, KERNEL); `tendril run` follows tendril's (stdout, exit 0).
  const spt = prog !== 'tendril';
  const name = spt ? prog : 'tendril run';
  const parsed = parseRunArgs(argv, spt ? 'solo5-spt' : 'tendril');
  if (parsed.kind === 'help') {
    (spt ? process.stderr : process.stdout).write(`${runUsage(name, spt ? 'solo5-spt' : 'tendril')}\n`);
    return spt ? 1 : 0;
  }
  if (parsed.kind === 'version') {
    if (spt) process.stderr.write(`${prog} tender, version ${version()}\nABI version 2\n`);
    else process.stdout.write(versionText());
    return 0;
  }
  const opts = parsed.options;
  configureLog({ level: opts.logLevel, format: opts.logFormat });
  if (opts.xExecHeap) process.stderr.write(`${prog}: WARNING: --x-exec-heap: guest heap and stack are executable\n`);
  // A monitor that is not root reads and writes the guest's memory only if the guest stays dumpable.
  if (opts.record && process.geteuid?.() !== 0) opts.dumpable = true;
  // --dumpcore changes the working directory: the recording is where the user meant it.
  if (opts.record) opts.record = resolve(opts.record);
  // Before any device is opened: a strict jail this host cannot give refuses here.
  const jail = opts.isolate ? jailFor(opts.isolate, opts.memMiB, prog) : undefined;
  const target = opts.restore !== undefined ? await restoreTarget(opts) : freshTarget(opts, jail);
  if (opts.dumpcore) {
    const core = prepareCoreDumps(opts.dumpcore);
    log.info({ core }, 'core dumps enabled');
  }
  const argv0 = `tendril: ${basename(target.image)}`;

  if (!opts.supervise) {
    if (opts.gdb) {
      // exec keeps the PID, so this is the pid the debugger attaches to.
      process.stderr.write(`${prog}: guest loaded and stopped before its ${opts.restore !== undefined ? 'next' : 'first'} instruction (pid ${process.pid}); ` +
        `attach with: gdb ${target.image} -p ${process.pid}  (then 'continue')\n`);
    }
    const startFd = opts.waitFifo !== undefined ? openStartFifo(opts.waitFifo) : undefined;
    const trace = target.prepared ? await recording(target.prepared, opts) : undefined;
    log.info({ mode: 'exec', stub: STUB_PATH, ...(opts.waitFifo ? { waitFifo: opts.waitFifo } : {}), ...(opts.record ? { record: opts.record } : {}) }, 'hand-over');
    return target.exec(argv0, startFd, trace);
  }

  // Loaded only here: the exec path (the cold path) does not need it.
  const { mirrorExit, signalName } = await import('../supervise.js');
  const { child, done } = await target.spawn(argv0, target.prepared ? await recording(target.prepared, opts) : undefined);
  log.info({ mode: 'spawn', guestPid: child.pid }, 'hand-over');
  // The guest shares our terminal: a Ctrl-C reaches it directly; we wait for its end.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => child.kill(sig));
  const end = await done;
  const r = end.report;
  log.info({
    status: end.status, ...(end.signal !== undefined ? { signal: signalName(end.signal) } : { exit: end.status }),
    durationMs: Math.round(end.durationMs * 1000) / 1000, maxrssKiB: r?.maxrssKb, cpuUs: r ? r.utimeUs + r.stimeUs : undefined,
    ...(r?.syscall !== undefined ? { syscall: r.syscall } : {}), ...(r?.fault ? { faultAddr: `0x${r.fault.addr.toString(16)}` } : {}),
  }, 'guest exited');
  if (end.reason) process.stderr.write(`${prog}: ${end.reason}\n`);
  return mirrorExit(end);
}

/** What runs: a guest booted from its image, or one continued from a snapshot. */
interface RunTarget {
  /** The guest image, for the process name and the gdb hint. */
  image: string;
  /** A fresh boot's prepared launch (what --record records); none for a restore, which cannot be recorded. */
  prepared?: PreparedLaunch;
  exec(argv0: string, startFd: number | undefined, trace?: TraceSetup): never;
  spawn(argv0: string, trace?: TraceSetup): Promise<Spawned>;
}

function freshTarget(opts: RunOptions, jail?: () => StartedJail): RunTarget {
  const prepared = prepareLaunch(opts);
  logPrepared(prepared, opts);
  return {
    image: opts.guest,
    prepared,
    exec: (argv0, startFd, trace) => execStub(prepared, argv0, { startFd, trace, jail }),
    spawn: async (argv0, trace) => (await import('../supervise.js')).spawnSupervised(prepared, argv0, trace, jail),
  };
}

/** Loaded only for --restore: the snapshot code stays off the cold path of `run`. */
async function restoreTarget(opts: RunOptions): Promise<RunTarget> {
  const { describeRestore, prepareRestore } = await import('../snapshot/restore.js');
  const r = prepareRestore(opts);
  log.info(describeRestore(r), 'snapshot validated, devices attached');
  const hostFds = r.devices.map((d) => d.hostfd);
  return {
    image: r.snap.meta.guest.file,
    exec: (argv0, startFd) => execPlan(r.plan, r.filter.bpf, hostFds, r.snap.memFd, argv0, { startFd }),
    spawn: async (argv0) => {
      const { spawnPlan } = await import('../supervise.js');
      const { releaseDevices } = await import('../devices/index.js');
      try {
        return spawnPlan({ plan: r.plan, bpf: r.filter.bpf, deviceFds: hostFds, memFd: r.snap.memFd, argv0 });
      } finally {
        releaseDevices(r.devices);
      }
    },
  };
}
