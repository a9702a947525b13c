// Instances of registered images, launched on pooled stubs. The warm path:
// request (validated by the API's schema) → admission → plan (cached per
// image and settings when there are no devices; else devices attached and
// the plan compiled) → one sendmsg to the zygote → an idle stub becomes the
// guest. Each instance's end comes from its monitor (native/stub/monitor.c)
// or, without one, from the stub's wait status.
//
// Bounded everywhere: instances running and launches pending (429/503 past
// the limits), console bytes kept per instance, finished instances kept by
// count and by bytes. A slow console reader pauses that guest's console
// (the guest blocks on its next write) instead of growing a buffer.

import { randomBytes } from 'node:crypto';
import { PlanFlags, encodePlan, receivedFd } from '../../loader/plan.js';
import { TendrilError } from '../errors.js';
import { TRACE_ALL } from '../../filters/compile.js';
import { compileLaunch, prepareLaunch, releaseLaunch } from '../launch.js';
import { log } from '../log.js';
import type { DeviceRequest, RunOptions } from '../options.js';
import { parseMac } from '../options.js';
import * as os from '../os.js';
import { guestEnd, parseMonitorMessages, signalName, type GuestEnd } from '../report.js';
import { BusyError, ConflictError, NotFoundError, RequestError } from './errors.js';
import type { Metrics } from './metrics.js';
import type { ImageEntry, ImageRegistry } from './registry.js';
import { POOL_REPORT_FD, PoolDownError, type LaunchHandlers, type StubPool, type Zygote } from './zygote.js';
import type { RecordingStore } from './recordings.js';
import { CapacityError } from '../../loader/errors.js';
import { releaseDevices } from '../devices/index.js';
import { attachForRestore, restorePlanOf } from '../snapshot/restore.js';
import type { SnapshotStore } from './snapshots.js';
import { decideJail, type Jail } from '../isolate/index.js';
import type { GuestCgroups } from '../isolate/cgroups.js';
import type { ServerIsolation } from './isolation.js';

/** What a launch runs: its plan, the fds that go with it, and what the instance record says. */
interface PlanSource {
  plan: Buffer;
  fds: number[];
  release: () => void;
  image: string;
  args: string[];
  memMiB: number;
  /** Isolated ("isolate": true): the guest's cgroups the supervisor made, to remove when it has ended. */
  cgroups?: GuestCgroups;
}

export interface DeviceSpec { net?: string; mac?: string; block?: string; readOnly?: boolean; sectorSize?: number }

export interface LaunchRequest {
  /** An image id, or (instead) a snapshot id to restore. */
  image?: string;
  snapshot?: string;
  args?: string[];
  memMiB?: number;
  devices?: Record<string, DeviceSpec>;
  /** Kill the guest after this long (wall clock). */
  timeoutMs?: number;
  /**
   * Run the guest under its ptrace monitor (default true): the exit then
   * carries the reason (forbidden syscall, fault address) and peak memory.
   */
  monitor?: boolean;
  /** The heap and stack executable, as --x-exec-heap. */
  xExecHeap?: boolean;
  /** Record the execution (docs/record-replay.md); GET /instances/:id/recording when it has ended. */
  record?: boolean;
  /** Jail the guest beneath its filter, as --isolate (true), or with its options. */
  isolate?: boolean | ApiIsolate;
}

/** "isolate" as an object: --isolate=strict, --uid, --gid, --cpus, --mem-limit. */
export interface ApiIsolate { strict?: boolean; uid?: number; gid?: number; cpus?: number; memLimitMiB?: number }

export type InstanceState = 'starting' | 'running' | 'exited' | 'failed';

export interface Instance {
  id: string;
  image: string;
  /** The snapshot it was restored from. */
  snapshot?: string;
  args: string[];
  memMiB: number;
  /** The guest's pid (signals sent through the API reach it). */
  pid?: number;
  state: InstanceState;
  createdAt: string;
  timings: { launchMs?: number; runMs?: number };
  timeoutMs?: number;
  end?: GuestEnd;
  /** For a launch that never ran its guest: why. */
  error?: TendrilError;
  output: Buffer[];
  outputBytes: number;
  outputTruncated: boolean;
  killedBy?: string;
  /** The recording's file, when recorded ("record": true). */
  recording?: string;
  /** Isolated: the layers this host could not give it (each {layer, why}). */
  isolation?: { missing: { layer: string; why: string }[] };
  consumers: Set<Consumer>;
  /** Resolves when the guest exists; rejects with the reason if it never will. */
  started: Promise<Instance>;
  ended: Promise<Instance>;
}

/** A console reader: write returns false when it wants no more for now; drain says when it does again. */
export interface Consumer {
  write(chunk: Buffer): boolean;
  end(): void;
  onDrain(cb: () => void): void;
}

export interface InstanceLimits {
  maxRunning: number;
  maxPending: number;
  /** Console bytes kept per instance; later output is dropped (and counted). */
  outputLimit: number;
  /** Finished instances remembered for GET /instances/:id: at most this many … */
  historyCount: number;
  /** … holding at most this many console bytes together. */
  historyBytes: number;
  maxTimeoutMs: number;
}

interface Live {
  inst: Instance;
  zygote: Zygote;
  launchId: number;
  /** Consumers that asked for a pause: while any is full, the console is not read. */
  full: Set<Consumer>;
  /** The zygote holds the console for the EXIT frame (a waiting launch), until a reader asks for it live. */
  held: boolean;
}

const PLAN_CACHE_LIMIT = 256;
/** How long shutdown waits for killed guests to be reported ended before closing the stub pool under them. */
const SHUTDOWN_WAIT_MS = 5000;
/** Instance ids: unique for this server (a random prefix, then a counter), without a crypto call per launch. */
const ID_PREFIX = randomBytes(4).toString('hex');
let idCounter = 0;
const nextId = () => `${ID_PREFIX}${(++idCounter).toString(16).padStart(8, '0')}`;

/** Each missing layer is logged once per server: the host does not change between launches. */
const missingLogged = new Set<string>();

/** Jails decided, by their options: the host does not change while the server runs. */
const jails = new Map<string, Jail>();

function jailOf(req: LaunchRequest, server: ServerIsolation | undefined): Jail | undefined {
  if (server && req.isolate === false) {
    throw new RequestError('"isolate": false: this server isolates every guest (tendril serve --isolate)', 'leave "isolate" out, or give its options');
  }
  if (!req.isolate && !server) return undefined;
  if (req.snapshot !== undefined) throw new RequestError(`${server ? 'this server isolates every guest, and ' : '"isolate" with '}"snapshot": restoring into a jail is not implemented`);
  if (req.record) throw new RequestError(`${server ? 'this server isolates every guest, and ' : '"isolate" with '}"record": recording a jailed guest is not implemented`);
  const o = typeof req.isolate === 'object' ? req.isolate : {};
  const opts = { strict: o.strict === true || server?.strict === true, uid: o.uid, gid: o.gid, cpus: o.cpus, memLimitMiB: o.memLimitMiB };
  const key = JSON.stringify([opts, req.memMiB ?? 512]);
  let jail = jails.get(key);
  if (!jail) {
    jail = decideJail(opts, req.memMiB ?? 512);
    if (jails.size >= PLAN_CACHE_LIMIT) jails.delete(jails.keys().next().value!);
    jails.set(key, jail);
  }
  for (const l of jail.missing) {
    if (missingLogged.has(l.name)) continue;
    missingLogged.add(l.name);
    log.warn({ layer: l.name, why: l.detail }, 'isolation layer missing on this host');
  }
  return jail;
}

function removeCgroups(cgroups: GuestCgroups | undefined): void {
  try {
    cgroups?.remove();
  } catch (e) {
    log.warn({ error: (e as Error).message }, 'a guest\'s cgroup could not be removed');
  }
}

/** An API request's image, arguments and devices as `run` options (messages then name the JSON fields). */
export function toRunOptions(req: Omit<LaunchRequest, 'image'> & { image?: string }): RunOptions {
  // A recording monitor that is not root reads the guest's memory only if the guest stays dumpable.
  const dumpable = req.record === true && process.geteuid?.() !== 0;
  const devices: DeviceRequest[] = [];
  for (const [name, d] of Object.entries(req.devices ?? {})) {
    const label = `devices.${name}`;
    if (d.net !== undefined) {
      devices.push({ kind: 'net', name, label, iface: d.net, mac: d.mac === undefined ? undefined : parseMac(`${label}.mac`, d.mac) });
    } else {
      devices.push({ kind: 'block', name, label, path: d.block, readOnly: d.readOnly === true, sectorSize: d.sectorSize });
    }
  }
  return {
    memMiB: req.memMiB ?? 512, xExecHeap: req.xExecHeap === true, guest: req.image ?? '', guestArgs: req.args ?? [], devices,
    dumpable, gdb: false, supervise: true, api: true,
  };
}

/** What the stub said when it refused its plan, as an error of the right kind. */
function stubFailure(text: string): TendrilError {
  const line = text.split('\n').filter(Boolean).pop()?.replace(/^tendril: /, '') ?? 'the stub ended before the guest started';
  if (/ENOMEM|Cannot allocate memory|open-file limit/.test(line)) return new CapacityError(`the guest could not be started: ${line}`, 'retry later, or ask for less memory');
  return new TendrilError(`the stub refused the launch: ${line}`, 'this is a bug in tendril; please report it', 'internal');
}

export class InstanceManager {
  private instances = new Map<string, Instance>();
  private live = new Map<string, Live>();
  private finished: string[] = [];
  private historyBytes = 0;
  private pending = 0;
  private plans = new Map<string, Buffer>();

  constructor(private readonly registry: ImageRegistry, private readonly pool: StubPool,
    private readonly metrics: Metrics, readonly limits: InstanceLimits, private readonly snapshots?: SnapshotStore,
    private readonly recordings?: RecordingStore, private readonly isolation?: ServerIsolation) {
    metrics.gauge('tendril_instances_running', 'Guests running now.', () => this.running());
    metrics.gauge('tendril_launches_pending', 'Launches waiting for their guest to start.', () => this.pending);
    this.sweeper = isolation?.startSweeping();
  }

  private readonly sweeper?: NodeJS.Timeout;

  running(): number {
    return this.live.size;
  }

  /**
   * Starts a launch; resolves with the instance once its guest exists, or,
   * with `waitsForEnd`, once it has ended (the cheaper path: see Zygote.launch).
   */
  async launch(req: LaunchRequest, waitsForEnd = false): Promise<Instance> {
    const t0 = process.hrtime.bigint();
    let inst: Instance;
    try {
      inst = this.begin(req, t0, waitsForEnd);
    } catch (e) {
      this.metrics.launchErrors.inc({ reason: e instanceof TendrilError ? e.kind : 'internal' });
      throw e;
    }
    return inst.started;
  }

  private begin(req: LaunchRequest, t0: bigint, waitsForEnd: boolean): Instance {
    if (this.live.size >= this.limits.maxRunning) {
      throw new BusyError(`${this.live.size} instances are running, the most this server runs at once (${this.limits.maxRunning})`,
        'retry when some have ended, or start the server with a larger --max-instances');
    }
    if (this.pending >= this.limits.maxPending) {
      throw new BusyError(`${this.pending} launches are already starting, the most this server queues (${this.limits.maxPending})`, 'retry in a moment');
    }
    if (req.timeoutMs !== undefined && req.timeoutMs > this.limits.maxTimeoutMs) {
      throw new RequestError(`"timeoutMs" ${req.timeoutMs} is more than this server allows (${this.limits.maxTimeoutMs})`);
    }
    const monitor = req.monitor !== false;
    if (req.record && !monitor) throw new RequestError('"record": true needs the monitor ("monitor": false): the monitor is what records');
    if (req.record && !this.recordings) throw new RequestError('this server does not record', 'start it with --recordings=DIR');
    if (req.record && req.snapshot !== undefined) throw new RequestError('"record" cannot be used with "snapshot"', 'record a fresh launch of the image instead');
    const jail = jailOf(req, this.isolation);
    const id = nextId();
    const source = req.snapshot !== undefined ? this.restorePlan(req.snapshot, req, monitor) : this.imagePlan(req, monitor, req.record ? id : undefined, jail);
    let zygote: Zygote;
    try {
      zygote = this.pool.get();
    } catch (e) {
      source.release();
      removeCgroups(source.cgroups);
      if (req.record) this.recordings!.remove(id);
      throw e;
    }
    const { plan, fds, release } = source;
    // The guest's cgroups: the plan's, or (serve --isolate) the stub's own, named for it in its EXIT frame.
    let cgroups = source.cgroups;

    let resolveStarted!: (i: Instance) => void;
    let rejectStarted!: (e: Error) => void;
    let resolveEnded!: (i: Instance) => void;
    const inst: Instance = {
      id, image: source.image, ...(req.snapshot !== undefined ? { snapshot: req.snapshot } : {}),
      ...(req.record ? { recording: this.recordings!.path(id) } : {}), args: source.args, memMiB: source.memMiB,
      state: 'starting', createdAt: new Date().toISOString(), timings: {}, timeoutMs: req.timeoutMs,
      output: [], outputBytes: 0, outputTruncated: false, consumers: new Set(),
      ...(jail ? { isolation: { missing: jail.missing.map((l) => ({ layer: l.name, why: l.detail })) } } : {}),
      started: new Promise<Instance>((res, rej) => { resolveStarted = res; rejectStarted = rej; }),
      ended: new Promise<Instance>((r) => { resolveEnded = r; }),
    };
    inst.started.catch(() => undefined);
    let launched = t0;
    let timer: NodeJS.Timeout | undefined;
    this.pending++;
    let pendingDone = false;
    const unpend = () => {
      if (!pendingDone) this.pending--;
      pendingDone = true;
    };
    const done = (end: GuestEnd | undefined, error: TendrilError | undefined) => {
      if (timer) clearTimeout(timer);
      unpend();
      // Ours to remove (the stub leaves them), after the answer: not part of the launch.
      const made = cgroups;
      if (made) setImmediate(() => removeCgroups(made));
      this.live.delete(inst.id);
      if (error) {
        inst.state = 'failed';
        inst.error = error;
        this.metrics.launchErrors.inc({ reason: error.kind });
        rejectStarted(error);
        log.warn({ instance: inst.id, error: error.message }, 'launch failed');
      } else {
        inst.state = 'exited';
        inst.end = end!;
        if (inst.killedBy === 'timeout' && end!.signal === 9) {
          end!.reason = `guest was killed (SIGKILL) when its time limit ran out (timeoutMs ${inst.timeoutMs})`;
        }
        inst.timings.runMs = end!.durationMs;
        this.metrics.exits.inc({ status: String(end!.status) });
        this.metrics.runTime.observe(end!.durationMs / 1000);
        log.info({ instance: inst.id, status: end!.status, ...(end!.signal ? { signal: signalName(end!.signal) } : {}), runMs: end!.durationMs, reason: end!.reason }, 'guest exited');
        resolveStarted(inst); // an instance that ended before anyone asked has started too
      }
      for (const c of inst.consumers) c.end();
      inst.consumers.clear();
      this.retire(inst);
      resolveEnded(inst);
    };
    const begun = () => {
      inst.state = 'running';
      unpend();
      launched = process.hrtime.bigint();
      inst.timings.launchMs = Number(launched - t0) / 1e6;
      this.metrics.launchLatency.observe(inst.timings.launchMs / 1000);
      if (req.timeoutMs) timer = setTimeout(() => this.kill(inst.id, 'SIGKILL', 'timeout'), req.timeoutMs);
    };
    const handlers: LaunchHandlers = {
      started: (guestPid) => {
        inst.pid = guestPid;
        begun();
        resolveStarted(inst);
      },
      output: (chunk) => this.output(inst, chunk),
      exit: (waitStatus, stubError, monitorBytes, ended) => {
        inst.pid ??= ended.guestPid;
        // serve --isolate: the stub's own cgroups, named for it; done() removes them.
        if (this.isolation) cgroups = this.isolation.cgroupsOf(ended.stubPid);
        if (ended.held.length) this.output(inst, ended.held);
        const { report } = parseMonitorMessages(monitorBytes);
        // The stub refused before the guest ran: not the guest's status.
        if (monitor ? !report?.started : stubError !== '') {
          done(undefined, stubFailure(stubError || `the stub ended (wait status 0x${waitStatus.toString(16)}) before the guest started`));
          return;
        }
        const sig = (waitStatus & 0x7f) !== 0 ? waitStatus & 0x7f : undefined;
        const end = guestEnd(report, sig === undefined ? (waitStatus >> 8) & 0xff : null, sig, launched);
        end.durationMs = ended.runMs; // measured by the zygote, not delayed by this process's turns
        done(end, undefined);
      },
      failed: (reason, kind) => {
        // Not the guest's doing: no guest status. A guest running when its
        // zygote died was killed with it; the launch failed as a whole.
        const what = inst.state === 'running' ? 'the guest was killed' : 'the guest could not be started';
        done(undefined, kind === 'capacity' ? new CapacityError(`${what}: ${reason}`, 'retry later')
          : kind === 'environment' ? new PoolDownError(`${what}: ${reason}`, 'retry in a moment')
            : new TendrilError(`${what}: ${reason}`, 'this is a bug in tendril; please report it', 'internal'));
      },
    };
    try {
      const launchId = zygote.launch(plan, fds, handlers, waitsForEnd);
      this.live.set(inst.id, { inst, zygote, launchId, full: new Set(), held: waitsForEnd });
      // Waiting for the end: the guest is as good as started once its plan is handed over.
      if (waitsForEnd) begun();
    } catch (e) {
      unpend();
      removeCgroups(cgroups);
      throw e;
    } finally {
      release(); // the fds are in the kernel's hands (or the launch failed): ours can go
    }
    this.metrics.launches.inc();
    this.instances.set(inst.id, inst);
    return inst;
  }

  private imagePlan(req: LaunchRequest, monitor: boolean, recordAs?: string, jail?: Jail): PlanSource {
    const entry = this.registry.get(req.image!);
    const p = this.plan(entry, req, monitor, recordAs, jail);
    entry.launches++;
    return { ...p, image: entry.id, args: req.args ?? [], memMiB: req.memMiB ?? 512 };
  }

  /**
   * A restore's plan: the snapshot's memory file and register state, its
   * devices attached again, the filter recomputed from its manifest exactly
   * as for a fresh guest (supervisor/snapshot/restore.ts). Cached, like a
   * launch's, when there are no devices.
   */
  private restorePlan(id: string, req: LaunchRequest, monitor: boolean): PlanSource {
    if (!this.snapshots) throw new NotFoundError(`no snapshot ${id}`);
    const e = this.snapshots.get(id);
    for (const f of ['image', 'args', 'memMiB', 'xExecHeap'] as const) {
      if (req[f] !== undefined) throw new RequestError(`"${f}" is fixed by the snapshot`, `leave it out with "snapshot" (this one has memMiB ${Number(e.snap.meta.memSize >> 20n)})`);
    }
    const meta = e.snap.meta;
    const base = { image: e.image, args: meta.cmdline ? meta.cmdline.split(' ') : [], memMiB: Number(meta.memSize >> 20n) };
    const settings = { devices: toRunOptions(req).devices };
    // The plan depends on the devices only through what must equal the snapshot's, and the MAC.
    const specs = Object.entries(req.devices ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
    const key = specs.some(([, d]) => d.mac !== undefined) ? undefined
      : `snapshot\0${id}\0${monitor ? 1 : 0}\0${specs.map(([n, d]) => `${n}:${d.net !== undefined ? 'n' : d.readOnly ? 'r' : 'w'}`).join(',')}`;
    const devices = attachForRestore(e.snap, settings);
    try {
      let plan = key === undefined ? undefined : this.plans.get(key);
      if (!plan) {
        const r = restorePlanOf(e.snap, devices, settings, `snapshot ${id}`);
        plan = encodePlan(r.plan, r.filter.bpf, {
          deviceSrc: devices.map((_, i) => receivedFd(1 + i)), imageSrc: receivedFd(0),
          flags: monitor ? PlanFlags.MONITOR | PlanFlags.SEND_PIDFD : 0, reportFd: POOL_REPORT_FD,
        });
        if (key !== undefined) {
          if (this.plans.size >= PLAN_CACHE_LIMIT) this.plans.delete(this.plans.keys().next().value!);
          this.plans.set(key, plan);
        }
      }
      e.restores++;
      return { ...base, plan, fds: [e.snap.memFd, ...devices.map((d) => d.hostfd)], release: () => releaseDevices(devices) };
    } catch (err) {
      releaseDevices(devices);
      throw err;
    }
  }

  /** Forgets a snapshot's cached plans (it is gone). */
  forgetSnapshot(id: string): void {
    for (const k of [...this.plans.keys()]) if (k.startsWith(`snapshot\0${id}\0`)) this.plans.delete(k);
  }

  /**
   * The plan and the fds that go with it. Without devices, everything a plan
   * depends on is in the request, so the bytes are cached: a repeated launch
   * builds nothing. With devices, they are attached now (the fds are ours
   * until the launch is sent).
   */
  private plan(entry: ImageEntry, req: LaunchRequest, monitor: boolean, recordAs?: string, jail?: Jail): { plan: Buffer; fds: number[]; release: () => void; cgroups?: GuestCgroups } {
    if (recordAs !== undefined) return this.recordedPlan(entry, req, recordAs);
    // An isolated plan names the guest's own cgroups, never the same twice, except on serve --isolate:
    // there the stub has its own, and the plan (their limits included) depends on the request alone.
    const nodevices = (!jail || this.isolation !== undefined) && (!req.devices || Object.keys(req.devices).length === 0);
    const key = nodevices ? `${entry.id}\0${req.memMiB ?? 512}\0${monitor ? 1 : 0}${req.xExecHeap ? 1 : 0}\0${jail ? JSON.stringify(req.isolate ?? {}) : ''}\0${(req.args ?? []).join('\0')}` : undefined;
    const cached = key === undefined ? undefined : this.plans.get(key);
    if (cached && entry.memory) return { plan: cached, fds: [entry.memory.fd], release: () => undefined };
    const prepared = prepareLaunch(toRunOptions(req), entry.image);
    let started: ReturnType<Jail['start']> | undefined;
    try {
      const mem = this.registry.memory(entry, prepared.segments);
      const c = compileLaunch(prepared, mem.image);
      // The parent in the stub leaves the cgroups to us: removing them is not the launch's business.
      started = jail?.start({ keep: true, prepared: this.isolation !== undefined });
      const plan = encodePlan(c.plan, c.filter.bpf, {
        deviceSrc: prepared.devices.map((_, i) => receivedFd(1 + i)), imageSrc: receivedFd(0),
        flags: (monitor ? PlanFlags.MONITOR | PlanFlags.SEND_PIDFD : 0) | (started?.flags ?? 0), reportFd: POOL_REPORT_FD,
        sections: started?.sections,
      });
      if (key !== undefined) {
        if (this.plans.size >= PLAN_CACHE_LIMIT) this.plans.delete(this.plans.keys().next().value!);
        this.plans.set(key, plan);
      }
      return { plan, fds: [mem.fd, ...prepared.devices.map((d) => d.hostfd)], release: () => releaseLaunch(prepared), cgroups: started?.cgroups };
    } catch (e) {
      releaseLaunch(prepared);
      removeCgroups(started?.cgroups);
      throw e;
    }
  }

  /**
   * A recorded launch: never cached (each has its own recording, started
   * here with the guest's initial state); the filter in its traced form, the
   * recording's fd sent with the plan after the devices'.
   */
  private recordedPlan(entry: ImageEntry, req: LaunchRequest, id: string): { plan: Buffer; fds: number[]; release: () => void } {
    const opts = toRunOptions(req);
    const prepared = prepareLaunch(opts, entry.image);
    let recFd: number | undefined;
    try {
      const mem = this.registry.memory(entry, prepared.segments);
      const c = compileLaunch(prepared, mem.image, TRACE_ALL);
      const trace = this.recordings!.setup(id, prepared, opts);
      recFd = trace.fd;
      trace.onCompiled(c);
      const n = prepared.devices.length;
      const plan = encodePlan(c.plan, c.filter.bpf, {
        deviceSrc: prepared.devices.map((_, i) => receivedFd(1 + i)), imageSrc: receivedFd(0),
        flags: PlanFlags.MONITOR | PlanFlags.SEND_PIDFD | trace.flags, reportFd: POOL_REPORT_FD, sections: [trace.section(receivedFd(1 + n))],
      });
      const fd = recFd;
      return { plan, fds: [mem.fd, ...prepared.devices.map((d) => d.hostfd), fd], release: () => { releaseLaunch(prepared); os.close(fd); } };
    } catch (e) {
      releaseLaunch(prepared);
      if (recFd !== undefined) os.close(recFd);
      this.recordings!.remove(id);
      throw e;
    }
  }

  /** Forgets an image's cached plans (its entry is gone). */
  forgetImage(id: string): void {
    for (const k of [...this.plans.keys()]) if (k.startsWith(`${id}\0`)) this.plans.delete(k);
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
    const l = this.live.get(inst.id);
    for (const c of inst.consumers) {
      if (!c.write(chunk) && l && !l.full.has(c)) {
        // This reader is behind: stop reading the guest's console until it drains.
        if (l.full.size === 0) l.zygote.pause(l.launchId);
        l.full.add(c);
        c.onDrain(() => this.drained(inst.id, c));
      }
    }
  }

  private drained(id: string, c: Consumer): void {
    const l = this.live.get(id);
    if (!l || !l.full.delete(c)) return;
    if (l.full.size === 0) l.zygote.resume(l.launchId);
  }

  /** Streams the console from the start: what is kept, then what comes, until the guest ends. */
  attach(inst: Instance, c: Consumer): () => void {
    for (const chunk of inst.output) c.write(chunk);
    if (inst.state === 'exited' || inst.state === 'failed') {
      c.end();
      return () => undefined;
    }
    inst.consumers.add(c);
    const l = this.live.get(inst.id);
    if (l?.held) {
      l.held = false;
      l.zygote.stream(l.launchId);
    }
    return () => {
      inst.consumers.delete(c);
      this.drained(inst.id, c);
    };
  }

  /** Bounded memory: only the newest finished instances are remembered, by count and by bytes. */
  private retire(inst: Instance): void {
    this.finished.push(inst.id);
    this.historyBytes += inst.outputBytes;
    while (this.finished.length > this.limits.historyCount || (this.historyBytes > this.limits.historyBytes && this.finished.length > 1)) {
      this.forget(this.finished.shift()!);
    }
  }

  private forget(id: string): void {
    const i = this.instances.get(id);
    if (!i) return;
    this.instances.delete(id);
    if (i.recording) this.recordings?.remove(id);
    this.historyBytes -= i.outputBytes;
  }

  get(id: string): Instance {
    const i = this.instances.get(id);
    if (!i) throw new NotFoundError(`no instance ${id}`, 'it may have ended long ago and been dropped from the history');
    return i;
  }

  list(): Instance[] {
    return [...this.instances.values()];
  }

  /** Removes a finished instance's record. */
  remove(id: string): void {
    const i = this.get(id);
    if (this.live.has(id)) throw new ConflictError(`instance ${id} is ${i.state}`, `stop it first: POST /instances/${id}/kill`);
    const at = this.finished.indexOf(id);
    if (at >= 0) this.finished.splice(at, 1);
    this.forget(id);
  }

  kill(id: string, signal: string = 'SIGKILL', why = 'request'): Instance {
    const inst = this.get(id);
    const signum = os.signalNumber(signal);
    if (signum === 0) throw new RequestError(`"signal": unknown signal ${JSON.stringify(signal)}`, 'use a name such as SIGTERM or SIGKILL');
    const l = this.live.get(id);
    if (!l) throw new ConflictError(`instance ${id} is ${inst.state}: there is no guest to signal`);
    inst.killedBy = why;
    // Sent to the guest itself (through its pidfd), not to its monitor.
    l.zygote.kill(l.launchId, signum);
    return inst;
  }

  async shutdown(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    const live = [...this.live.values()];
    for (const l of live) this.kill(l.inst.id, 'SIGKILL', 'shutdown');
    // Bounded: a launch the stub pool never answers must not keep the server up; closing the
    // pool next kills whatever is left (its guests die with it, PR_SET_PDEATHSIG).
    let bound: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(live.map((l) => l.inst.ended)), new Promise((r) => { bound = setTimeout(r, SHUTDOWN_WAIT_MS); })]);
    clearTimeout(bound);
  }
}

