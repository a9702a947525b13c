// Instances of registered images, launched on pooled stubs. The warm path:
// request → (image parsed already) → devices + tender fds → filter (cached)
// → plan → sendmsg to an idle stub → the stub becomes the guest. Each
// instance's end comes from its monitor (native/stub/monitor.c).

import { randomBytes } from 'node:crypto';
import { PlanFlags, encodePlan, receivedFd } from '../../loader/plan.js';
import { DEFAULT_MEM_MIB } from '../../loader/abi.js';
import { DEVICE_NAME_RE } from '../../loader/manifest.js';
import { TendrilError } from '../errors.js';
import { compileLaunch, prepareLaunch, releaseLaunch } from '../launch.js';
import { log } from '../log.js';
import { parseMac, parseMem, type DeviceRequest, type RunOptions } from '../options.js';
import * as os from '../os.js';
import { guestEnd, parseMonitorMessages, signalName, type GuestEnd } from '../report.js';
import { POOL_REPORT_FD, type LaunchHandlers, type Zygote } from './zygote.js';
import type { Metrics } from './metrics.js';
import { NotFoundError, type ImageRegistry } from './registry.js';

export interface LaunchRequest {
  image: string;
  args?: string[];
  memMiB?: number;
  /** { NAME: { net: IFACE, mac? } | { block: PATH, readOnly?, sectorSize? } } */
  devices?: Record<string, { net?: string; mac?: string; block?: string; readOnly?: boolean; sectorSize?: number }>;
  /** Kill the guest after this long (wall clock). */
  timeoutMs?: number;
  /**
   * Run the guest under its ptrace monitor (default true): the exit then
   * carries the reason (forbidden syscall, fault address) and peak memory.
   * false saves ~0.3 ms per launch for callers who only need the status.
   */
  monitor?: boolean;
}

export interface Instance {
  id: string;
  image: string;
  args: string[];
  memMiB: number;
  pid?: number;
  state: 'running' | 'exited';
  createdAt: string;
  timings: { launchMs: number; runMs?: number };
  end?: GuestEnd;
  output: Buffer[];
  outputBytes: number;
  outputTruncated: boolean;
  killedBy?: string;
  listeners: Set<(chunk: Buffer | null) => void>;
  ended: Promise<Instance>;
  /** The zygote's handle for it while it runs. */
  launchId?: number;
}

export interface InstanceLimits {
  /** Console bytes kept per instance; later output is dropped (and counted). */
  outputLimit: number;
  /** Finished instances remembered for GET /instances/:id. */
  historyLimit: number;
  maxTimeoutMs: number;
}

/** A request the server refuses (400). */
export class RequestError extends TendrilError {}

function toRunOptions(req: LaunchRequest): RunOptions {
  const args = req.args ?? [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) throw new RequestError('"args" must be an array of strings');
  const memMiB = req.memMiB === undefined ? DEFAULT_MEM_MIB : parseMem('memMiB', String(req.memMiB));
  const devices: DeviceRequest[] = [];
  for (const [name, d] of Object.entries(req.devices ?? {})) {
    if (!DEVICE_NAME_RE.test(name)) throw new RequestError(`device name '${name}' must be 1 to 67 letters or digits`);
    if (typeof d !== 'object' || d === null) throw new RequestError(`devices.${name} must be an object`);
    if (typeof d.net === 'string' && d.block === undefined) {
      devices.push({ kind: 'net', name, iface: d.net, mac: d.mac === undefined ? undefined : parseMac(`devices.${name}.mac`, d.mac) });
    } else if (typeof d.block === 'string' && d.net === undefined) {
      if (d.sectorSize !== undefined && (!Number.isInteger(d.sectorSize) || d.sectorSize < 512 || d.sectorSize > 32768 || (d.sectorSize & (d.sectorSize - 1)))) {
        throw new RequestError(`devices.${name}.sectorSize must be a power of two from 512 to 32768`);
      }
      devices.push({ kind: 'block', name, path: d.block, readOnly: d.readOnly === true, sectorSize: d.sectorSize });
    } else {
      throw new RequestError(`devices.${name} needs exactly one of "net": IFACE or "block": PATH`);
    }
  }
  return { memMiB, xExecHeap: false, guest: req.image, guestArgs: args, devices, dumpable: false, gdb: false, supervise: true };
}

export class InstanceManager {
  private instances = new Map<string, Instance>();
  private finished: string[] = [];

  constructor(private readonly registry: ImageRegistry, private readonly zygote: Zygote,
    private readonly metrics: Metrics, private readonly limits: InstanceLimits) {
    metrics.gauge('tendril_instances_running', 'Guests running now.', () => this.running());
  }

  running(): number {
    let n = 0;
    for (const i of this.instances.values()) if (i.state === 'running') n++;
    return n;
  }

  launch(req: LaunchRequest): Instance {
    const t0 = process.hrtime.bigint();
    try {
      return this.launchOrThrow(req, t0);
    } catch (e) {
      this.metrics.launchErrors.inc({ reason: e instanceof TendrilError ? e.name : 'internal' });
      throw e;
    }
  }

  private launchOrThrow(req: LaunchRequest, t0: bigint): Instance {
    if (typeof req?.image !== 'string') throw new RequestError('"image" (an image id from POST /images) is required');
    const timeoutMs = req.timeoutMs;
    if (timeoutMs !== undefined && (!Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > this.limits.maxTimeoutMs)) {
      throw new RequestError(`"timeoutMs" must be between 1 and ${this.limits.maxTimeoutMs}`);
    }
    if (req.monitor !== undefined && typeof req.monitor !== 'boolean') throw new RequestError('"monitor" must be true or false');
    const entry = this.registry.get(req.image);
    const opts = toRunOptions(req);
    const prepared = prepareLaunch(opts, entry.image);
    let plan: Buffer;
    let fds: number[];
    try {
      const mem = this.registry.memory(entry, prepared.segments);
      const c = compileLaunch(prepared, mem.image);
      plan = encodePlan(c.plan, c.filter.bpf, {
        deviceSrc: prepared.devices.map((_, i) => receivedFd(1 + i)), imageSrc: receivedFd(0),
        flags: req.monitor === false ? 0 : PlanFlags.MONITOR, reportFd: POOL_REPORT_FD,
      });
      fds = [mem.fd, ...prepared.devices.map((d) => d.hostfd)];
    } catch (e) {
      releaseLaunch(prepared);
      throw e;
    }
    entry.launches++;
    let launched = t0;
    let resolveEnded!: (i: Instance) => void;
    const inst: Instance = {
      id: randomBytes(8).toString('hex'), image: entry.id, args: opts.guestArgs, memMiB: opts.memMiB,
      state: 'running', createdAt: new Date().toISOString(), timings: { launchMs: 0 },
      output: [], outputBytes: 0, outputTruncated: false, listeners: new Set(),
      ended: new Promise<Instance>((r) => { resolveEnded = r; }),
    };
    const timer = timeoutMs ? setTimeout(() => this.kill(inst.id, 'SIGKILL', 'timeout'), timeoutMs) : undefined;
    const finish = (end: GuestEnd) => {
      if (timer) clearTimeout(timer);
      inst.end = end;
      inst.state = 'exited';
      inst.timings.runMs = end.durationMs;
      inst.launchId = undefined;
      for (const l of inst.listeners) l(null);
      inst.listeners.clear();
      this.metrics.exits.inc({ status: String(end.status) });
      this.metrics.runTime.observe(end.durationMs / 1000);
      log.info({ instance: inst.id, status: end.status, ...(end.signal ? { signal: signalName(end.signal) } : {}), runMs: end.durationMs, reason: end.reason }, 'guest exited');
      this.retire(inst.id);
      resolveEnded(inst);
    };
    const handlers: LaunchHandlers = {
      started: (pid) => { inst.pid = pid; },
      output: (chunk) => this.output(inst, chunk),
      exit: (waitStatus, report) => {
        const sig = (waitStatus & 0x7f) !== 0 ? waitStatus & 0x7f : undefined;
        finish(guestEnd(parseMonitorMessages(report).report, sig === undefined ? (waitStatus >> 8) & 0xff : null, sig, launched));
      },
      failed: (reason) => {
        this.metrics.launchErrors.inc({ reason: 'stub' });
        finish({ status: 1, reason: `launch failed: ${reason}`, durationMs: 0 });
      },
    };
    try {
      inst.launchId = this.zygote.launch(plan, fds, handlers, () => {
        // The fds are in the kernel's hands now: ours can go.
        releaseLaunch(prepared);
        launched = process.hrtime.bigint();
        inst.timings.launchMs = Number(launched - t0) / 1e6;
        this.metrics.launchLatency.observe(inst.timings.launchMs / 1000);
      });
    } catch (e) {
      if (timer) clearTimeout(timer);
      releaseLaunch(prepared);
      throw e;
    }
    this.metrics.launches.inc();
    this.instances.set(inst.id, inst);
    log.info({ instance: inst.id, image: entry.id.slice(0, 12) }, 'guest launched');
    return inst;
  }

  private output(inst: Instance, chunk: Buffer): void {
    const room = this.limits.outputLimit - inst.outputBytes;
    if (room <= 0) {
      inst.outputTruncated = true;
    } else {
      const keep = chunk.length > room ? chunk.subarray(0, room) : chunk;
      inst.output.push(keep);
      inst.outputBytes += keep.length;
      if (keep.length < chunk.length) inst.outputTruncated = true;
    }
    for (const l of inst.listeners) l(chunk);
  }

  /** Bounded memory: only the newest finished instances are remembered. */
  private retire(id: string): void {
    this.finished.push(id);
    while (this.finished.length > this.limits.historyLimit) this.instances.delete(this.finished.shift()!);
  }

  get(id: string): Instance {
    const i = this.instances.get(id);
    if (!i) throw new NotFoundError(`no instance ${id}`);
    return i;
  }

  list(): Instance[] {
    return [...this.instances.values()];
  }

  kill(id: string, signal: NodeJS.Signals = 'SIGKILL', why = 'request'): Instance {
    const inst = this.get(id);
    const signum = os.signalNumber(signal);
    if (signum === 0) throw new RequestError(`unknown signal ${signal}`);
    if (inst.state === 'running' && inst.launchId !== undefined) {
      inst.killedBy = why;
      // The stub process is the guest's monitor: it dies by the signal and
      // PTRACE_O_EXITKILL takes the guest with it.
      this.zygote.kill(inst.launchId, signum);
    }
    return inst;
  }

  async shutdown(): Promise<void> {
    const running = this.list().filter((i) => i.state === 'running');
    for (const i of running) this.kill(i.id, 'SIGKILL', 'shutdown');
    await Promise.all(running.map((i) => i.ended));
  }
}
