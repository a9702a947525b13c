// `tendril run` / `tendril-spt`: validate, attach, compile, then become the
// guest (exec, the default) or start it as a supervised child (--supervise).

import { basename } from 'node:path';
import { deviceTypeName } from '../../loader/manifest.js';
import { version, versionText } from '../cli.js';
import { execStub, openStartFifo, prepareCoreDumps, prepareLaunch, type PreparedLaunch } from '../launch.js';
import { STUB_PATH } from '../paths.js';
import { configureLog, log } from '../log.js';
import { parseRunArgs, runUsage, type RunOptions } from '../options.js';
import { jailFor } from '../isolate/index.js';

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
  // Before any device is opened: a strict jail this host cannot give refuses here.
  const jail = opts.isolate ? jailFor(opts.isolate, opts.memMiB, prog) : undefined;
  const prepared = prepareLaunch(opts);
  logPrepared(prepared, opts);
  if (opts.dumpcore) {
    const core = prepareCoreDumps(opts.dumpcore);
    log.info({ core }, 'core dumps enabled');
  }
  const argv0 = `tendril: ${basename(opts.guest)}`;

  if (!opts.supervise) {
    if (opts.gdb) {
      // exec keeps the PID, so this is the pid the debugger attaches to.
      process.stderr.write(`${prog}: guest loaded and stopped before its first instruction (pid ${process.pid}); ` +
        `attach with: gdb ${opts.guest} -p ${process.pid}  (then 'continue')\n`);
    }
    const startFd = opts.waitFifo !== undefined ? openStartFifo(opts.waitFifo) : undefined;
    log.info({ mode: 'exec', stub: STUB_PATH, ...(opts.waitFifo ? { waitFifo: opts.waitFifo } : {}) }, 'hand-over');
    return execStub(prepared, argv0, { startFd, jail });
  }

  // Loaded only here: the exec path (the cold path) does not need it.
  const { mirrorExit, signalName, spawnSupervised } = await import('../supervise.js');
  const { child, done } = spawnSupervised(prepared, argv0, jail);
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
