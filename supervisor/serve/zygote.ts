// Node's side of native/zygote/zygote.c: the process that keeps stubs
// spawned ahead of demand and creates processes so that Node's main thread
// never does (a spawn from Node blocks it for ~1.8 ms). The frames are those
// of loader/formats.ts (ZYGOTE_MSG).
//
// A Zygote is one such process. It is never trusted to stay up: when it
// ends, every launch in flight and every instance it ran is reported ended
// (its guests die with it: PR_SET_PDEATHSIG), and StubPool starts a new
// one, with a backoff if it keeps dying.

import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import {
  decodeStruct, encodeStruct, PLAN, ZYGOTE, ZYGOTE_LAUNCH_FLAG, ZYGOTE_MSG, ZygoteExit, ZygoteFrame, ZygoteHello, ZygoteLaunch, ZygoteStarted,
} from '../../loader/formats.js';
import { EnvironmentError } from '../errors.js';
import { log } from '../log.js';
import * as os from '../os.js';
import { nativeHint, nativeProblem, STUB_PATH, ZYGOTE_PATH } from '../paths.js';

/** fd numbers inside a pool stub (the zygote sets them up). */
export const POOL_REPORT_FD = ZYGOTE.STUB_REPORT_FD;

export interface LaunchHandlers {
  /** The guest exists; stubPid is the monitor when there is one. */
  started(guestPid: number, stubPid: number): void;
  output(chunk: Buffer): void;
  /**
   * waitStatus: of the stub; stubError: its own message if it failed;
   * monitor: the monitor's bytes; held: console output held back (HOLD_OUTPUT);
   * guestPid, stubPid; runMs: from the plan handed over to the stub's end.
   */
  exit(waitStatus: number, stubError: string, monitor: Buffer, end: { held: Buffer; guestPid: number; stubPid: number; runMs: number }): void;
  /** Nothing ran: why. `kind` says whose fault it is. */
  failed(reason: string, kind: 'capacity' | 'environment' | 'internal'): void;
}

/** The zygote went away (or could not start). */
export class PoolDownError extends EnvironmentError {}

const HEADER = ZygoteFrame.size;

export class Zygote {
  readonly child: ChildProcess;
  private readonly sock: Socket;
  private readonly fd: number;
  private readonly handlers = new Map<number, LaunchHandlers>();
  /** Frames waiting for the stream (fds already sent with their first bytes, or none). */
  private backlog = 0;
  private inbox: Buffer = Buffer.alloc(0);
  private nextId = 1;
  private dead = false;
  /** Resolves with the zygote's limits once it has said hello; rejects if it dies first. */
  readonly ready: Promise<{ pid: number; nofile: number }>;
  /** Resolves when the process has ended (with why). */
  readonly ended: Promise<string>;

  /** stubArgs: words added to each stub's command line (serve --isolate: its jail, made while it waits). */
  constructor(readonly poolSize: number, stubArgs: string[] = []) {
    this.child = spawn(ZYGOTE_PATH, [STUB_PATH, String(poolSize), String(process.pid), ...stubArgs],
      { stdio: ['ignore', 'inherit', 'inherit', 'pipe'], env: {} });
    this.sock = this.child.stdio[3] as Socket;
    this.fd = (this.sock as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
    let hello!: (h: { pid: number; nofile: number }) => void;
    let noHello!: (e: Error) => void;
    this.ready = new Promise((res, rej) => { hello = res; noHello = rej; });
    this.ready.catch(() => undefined);
    this.onHello = hello;
    // Every failure of the process or its socket ends this zygote, never the server.
    this.sock.on('error', (e) => this.die(`its control socket failed: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
    this.child.on('error', (e) => this.die(`it could not be started: ${e.message}`));
    let endedWith!: (why: string) => void;
    this.ended = new Promise((r) => { endedWith = r; });
    this.child.on('exit', (code, sig) => this.die(sig ? `it was killed by ${sig}` : `it exited with status ${code}`));
    this.onDead = (why) => {
      noHello(new PoolDownError(`the stub pool process ended before it was ready: ${why}`));
      endedWith(why);
    };
    this.sock.on('data', (d: Buffer) => this.receive(d));
    if (this.fd < 0) queueMicrotask(() => this.die('its control socket has no fd'));
  }

  private onHello: (h: { pid: number; nofile: number }) => void;
  private onDead: (why: string) => void;

  get alive(): boolean {
    return !this.dead;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Launches in flight or running on this zygote. */
  get inFlight(): number {
    return this.handlers.size;
  }

  /**
   * Sends a launch. The fds are in the kernel's hands when this returns (the
   * caller may close its copies). Throws PoolDownError if the zygote is gone.
   * `waitsForEnd`: the caller wants only the end, so the zygote sends no
   * STARTED and holds the console for the EXIT: one frame, one wakeup of
   * this process per launch, until stream(id) asks for the console live.
   */
  launch(plan: Buffer, fds: number[], handlers: LaunchHandlers, waitsForEnd = false): number {
    if (this.dead) throw new PoolDownError('the stub pool process has ended; a new one is starting', 'retry in a moment');
    if (plan.length > ZYGOTE.MAX_PAYLOAD) throw new EnvironmentError(`the launch plan is ${plan.length} bytes, more than the stub pool accepts (${ZYGOTE.MAX_PAYLOAD})`);
    if (fds.length > ZYGOTE.MAX_FDS || fds.length > PLAN.MAX_RECV_FDS) throw new EnvironmentError(`too many fds for one launch (${fds.length})`);
    const id = this.nextId++;
    const flags = waitsForEnd ? ZYGOTE_LAUNCH_FLAG.QUIET_START | ZYGOTE_LAUNCH_FLAG.HOLD_OUTPUT : 0;
    const frame = Buffer.concat([
      encodeStruct(ZygoteFrame, { type: ZYGOTE_MSG.LAUNCH, id, len: ZygoteLaunch.size + plan.length, nfds: fds.length }),
      encodeStruct(ZygoteLaunch, { flags }), plan,
    ]);
    this.handlers.set(id, handlers);
    try {
      this.write(frame, fds);
    } catch (e) {
      this.handlers.delete(id); // nothing was sent: no frame will ever answer this id
      throw e;
    }
    return id;
  }

  kill(id: number, signal: number): void {
    this.control(ZYGOTE_MSG.KILL, id, signal);
  }

  pause(id: number): void {
    this.control(ZYGOTE_MSG.PAUSE, id);
  }

  resume(id: number): void {
    this.control(ZYGOTE_MSG.RESUME, id);
  }

  /** A launch that waited for its end has a console reader now: the console as it comes. */
  stream(id: number): void {
    this.control(ZYGOTE_MSG.STREAM, id);
  }

  /** Ends the zygote; it kills its instances and idle stubs on the way out. */
  close(): void {
    this.sock.destroy();
    this.child.kill('SIGKILL');
  }

  private control(type: number, id: number, arg?: number): void {
    if (this.dead || !this.handlers.has(id)) return;
    const payload = Buffer.alloc(arg === undefined ? 0 : 4);
    if (arg !== undefined) payload.writeUInt32LE(arg);
    this.write(Buffer.concat([encodeStruct(ZygoteFrame, { type, id, len: payload.length }), payload]), []);
  }

  /**
   * One frame. Its fds must ride on its first bytes, so while the stream
   * has bytes queued, or for the rest of a frame the socket did not take
   * at once, Node's stream carries the bytes; a frame with fds then waits
   * for the stream to drain. In the usual case a launch is one sendmsg.
   */
  private pendingFd: { frame: Buffer; fds: number[] }[] = [];

  private write(frame: Buffer, fds: number[]): void {
    if (this.backlog > 0 || this.pendingFd.length > 0) {
      if (fds.length) {
        // Keep the fds open until they can be sent: dup them, the caller closes its own.
        this.pendingFd.push({ frame, fds: fds.map((fd) => os.dupCloexec(fd)) });
        return;
      }
      if (this.pendingFd.length) {
        this.pendingFd.push({ frame, fds: [] });
        return;
      }
      this.streamWrite(frame);
      return;
    }
    const n = os.sendWithFds(this.fd, frame, fds);
    if (n === -11 /* EAGAIN */) {
      if (fds.length) this.pendingFd.push({ frame, fds: fds.map((fd) => os.dupCloexec(fd)) });
      else this.streamWrite(frame);
      return;
    }
    if (n < 0) {
      this.die(`sending to it failed: ${os.strerror(-n)}`);
      return;
    }
    if (n < frame.length) this.streamWrite(frame.subarray(n));
  }

  private streamWrite(bytes: Buffer): void {
    this.backlog++;
    this.sock.write(bytes, () => {
      this.backlog--;
      if (this.backlog === 0) this.sendPending();
    });
  }

  private sendPending(): void {
    while (this.backlog === 0 && this.pendingFd.length && !this.dead) {
      const p = this.pendingFd.shift()!;
      const n = os.sendWithFds(this.fd, p.frame, p.fds);
      if (n === -11) {
        this.pendingFd.unshift(p);
        setImmediate(() => this.sendPending());
        return;
      }
      for (const fd of p.fds) os.close(fd);
      if (n < 0) {
        this.die(`sending to it failed: ${os.strerror(-n)}`);
        return;
      }
      if (n < p.frame.length) this.streamWrite(p.frame.subarray(n));
    }
  }

  private die(why: string): void {
    if (this.dead) return;
    this.dead = true;
    for (const p of this.pendingFd) for (const fd of p.fds) os.close(fd);
    this.pendingFd = [];
    this.sock.destroy();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    const handlers = [...this.handlers.values()];
    this.handlers.clear();
    this.onDead(why);
    for (const h of handlers) h.failed(`the stub pool process ended (${why})`, 'environment');
  }

  private receive(d: Buffer): void {
    this.inbox = this.inbox.length ? Buffer.concat([this.inbox, d]) : d;
    while (this.inbox.length >= HEADER) {
      const f = decodeStruct(ZygoteFrame, this.inbox);
      if (this.inbox.length < HEADER + f.len) break;
      const payload = this.inbox.subarray(HEADER, HEADER + f.len);
      this.inbox = this.inbox.subarray(HEADER + f.len);
      if (f.type === ZYGOTE_MSG.HELLO) {
        const h = decodeStruct(ZygoteHello, payload);
        this.onHello({ pid: h.pid, nofile: h.nofile });
        continue;
      }
      if (f.type === ZYGOTE_MSG.OUT_OF_STEP) {
        // Every frame after a lost byte would be misread and its launch never answered: start over.
        this.die(`it read ${payload.toString('utf8')}: the control stream is out of step`);
        return;
      }
      const h = this.handlers.get(f.id);
      if (!h) continue;
      switch (f.type) {
        case ZYGOTE_MSG.STARTED: {
          const s = decodeStruct(ZygoteStarted, payload);
          h.started(s.guest_pid, s.stub_pid);
          break;
        }
        case ZYGOTE_MSG.OUTPUT:
          h.output(Buffer.from(payload));
          break;
        case ZYGOTE_MSG.EXIT: {
          this.handlers.delete(f.id);
          const e = decodeStruct(ZygoteExit, payload);
          const errEnd = ZygoteExit.size + e.stderr_len;
          const outEnd = errEnd + e.output_len;
          h.exit(e.wait_status, payload.toString('utf8', ZygoteExit.size, errEnd).trim(), Buffer.from(payload.subarray(outEnd)),
            { held: Buffer.from(payload.subarray(errEnd, outEnd)), guestPid: e.guest_pid, stubPid: e.stub_pid, runMs: Number(e.run_us) / 1000 });
          break;
        }
        case ZYGOTE_MSG.FAILED: {
          this.handlers.delete(f.id);
          const text = payload.toString('utf8');
          const capacity = text.startsWith('capacity: ');
          h.failed(capacity ? text.slice('capacity: '.length) : text, capacity ? 'capacity' : 'internal');
          break;
        }
        default:
          break;
      }
    }
  }
}

/**
 * The server's stub pool: a zygote that is restarted when it ends. While a
 * new one starts, launches fail fast (503); a zygote that dies again and
 * again is restarted after a growing delay (up to 5 s), not in a loop.
 */
export class StubPool {
  private current?: Zygote;
  private starting?: Promise<Zygote>;
  private restarts = 0;
  private closed = false;
  private lastStart = 0;
  /** RLIMIT_NOFILE of the zygote, once known. */
  nofile = 1024;
  onRestart?: (why: string) => void;

  constructor(readonly poolSize: number, readonly stubArgs: string[] = []) {}

  /** Starts the first zygote; rejects with one line if it cannot. */
  async start(): Promise<void> {
    for (const [what, path] of [['stub pool program', ZYGOTE_PATH], ['native stub', STUB_PATH]]) {
      const problem = nativeProblem(path);
      if (problem) throw new EnvironmentError(`the ${what} is ${problem} (${path})`, nativeHint());
    }
    await this.spawn();
  }

  private spawn(): Promise<Zygote> {
    this.lastStart = Date.now();
    const z = new Zygote(this.poolSize, this.stubArgs);
    this.starting = z.ready.then((h) => {
      this.nofile = h.nofile;
      this.current = z;
      this.starting = undefined;
      return z;
    }, (e) => {
      this.starting = undefined;
      throw e;
    });
    void z.ended.then((why) => this.onEnded(z, why));
    return this.starting;
  }

  private onEnded(z: Zygote, why: string): void {
    if (this.current === z) this.current = undefined;
    if (this.closed) return;
    // Healthy for a while: the next death restarts at once.
    if (Date.now() - this.lastStart > 30_000) this.restarts = 0;
    const delay = Math.min(5000, this.restarts === 0 ? 0 : 100 * 2 ** (this.restarts - 1));
    this.restarts++;
    log.warn({ why, restartInMs: delay }, 'stub pool process ended; restarting it');
    this.onRestart?.(why);
    setTimeout(() => {
      if (!this.closed) this.spawn().catch((e) => log.error({ error: (e as Error).message }, 'stub pool restart failed'));
    }, delay).unref();
  }

  /** The live zygote, or a PoolDownError saying it is being restarted. */
  get(): Zygote {
    if (this.current?.alive) return this.current;
    throw new PoolDownError('the stub pool process is restarting', 'retry in a moment');
  }

  get pid(): number | undefined {
    return this.current?.pid;
  }

  /** Waits (bounded) until a zygote is up: for tests and for a server draining its startup. */
  async whenReady(): Promise<Zygote> {
    if (this.current?.alive) return this.current;
    if (this.starting) return this.starting;
    throw new PoolDownError('the stub pool process is restarting', 'retry in a moment');
  }

  close(): void {
    this.closed = true;
    this.current?.close();
  }
}
