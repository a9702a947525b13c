// Node's side of native/zygote/zygote.c: the process that keeps stubs
// spawned ahead of demand and creates processes so that Node's main thread
// never does (a spawn from Node blocks it for ~1.8 ms). Frames are
// u32 type, u32 id, u32 len, u32 reserved + payload, little endian.

import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { LaunchError } from '../errors.js';
import * as os from '../os.js';
import { nativeHint, nativeProblem, STUB_PATH, ZYGOTE_PATH } from '../paths.js';

/** fd numbers inside a pool stub (the zygote sets them up). */
export const POOL_PLAN_FD = 3;
export const POOL_REPORT_FD = 4;

const enum Type { LAUNCH = 1, KILL = 2, STARTED = 10, OUTPUT = 11, EXIT = 12, FAILED = 13 }
const HEADER = 16;

export interface LaunchHandlers {
  started(pid: number): void;
  output(chunk: Buffer): void;
  /** status: the wait status of the stub; report: the monitor's line. */
  exit(waitStatus: number, report: Buffer): void;
  failed(reason: string): void;
}

interface Pending { header: Buffer; payload: Buffer; fds: number[]; sent: () => void }

export class Zygote {
  private readonly child: ChildProcess;
  private readonly sock: Socket;
  private readonly fd: number;
  private readonly handlers = new Map<number, LaunchHandlers>();
  private readonly queue: Pending[] = [];
  private inbox: Buffer = Buffer.alloc(0);
  private nextId = 1;
  private closed = false;

  constructor(readonly poolSize: number) {
    for (const [what, path] of [['stub', STUB_PATH], ['stub pool program', ZYGOTE_PATH]]) {
      const problem = nativeProblem(path);
      if (problem) throw new LaunchError(`the native ${what} is ${problem} (${path})`, nativeHint());
    }
    this.child = spawn(ZYGOTE_PATH, [STUB_PATH, String(poolSize)], { stdio: ['ignore', 'inherit', 'inherit', 'pipe'], env: {} });
    this.sock = this.child.stdio[3] as Socket;
    this.fd = (this.sock as unknown as { _handle?: { fd?: number } })._handle?.fd ?? -1;
    if (this.fd < 0) throw new LaunchError('cannot reach the zygote control socket');
    this.sock.on('data', (d: Buffer) => this.receive(d));
    this.child.on('exit', (code, sig) => {
      if (!this.closed) process.stderr.write(`tendril: the stub pool process ended (${sig ?? code}); launches will fail\n`);
      this.closed = true;
      for (const h of this.handlers.values()) h.failed('the stub pool process ended');
      this.handlers.clear();
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Queues a launch; `sent` runs once the fds are in the kernel's hands (they may then be closed). */
  launch(plan: Buffer, fds: number[], handlers: LaunchHandlers, sent: () => void): number {
    if (this.closed) throw new LaunchError('the stub pool process has ended');
    const id = this.nextId++;
    this.handlers.set(id, handlers);
    this.queue.push({ header: this.header(Type.LAUNCH, id, plan.length), payload: plan, fds, sent });
    this.flush();
    return id;
  }

  kill(id: number, signal: number): void {
    if (this.closed || !this.handlers.has(id)) return;
    const payload = Buffer.alloc(4);
    payload.writeUInt32LE(signal);
    this.queue.push({ header: this.header(Type.KILL, id, 4), payload, fds: [], sent: () => undefined });
    this.flush();
  }

  close(): void {
    this.closed = true;
    this.child.kill('SIGTERM');
    this.sock.destroy();
  }

  private header(type: Type, id: number, len: number): Buffer {
    const h = Buffer.alloc(HEADER);
    h.writeUInt32LE(type, 0);
    h.writeUInt32LE(id, 4);
    h.writeUInt32LE(len, 8);
    return h;
  }

  /**
   * The fds must ride on a frame's first bytes, so a frame's header is sent
   * with sendmsg directly, and only when nothing is queued in the stream
   * before it; the payload then follows through the stream, whose write
   * callback sends the next frame.
   */
  private flush(): void {
    while (this.queue.length && this.sock.writableLength === 0) {
      const p = this.queue[0];
      const n = os.sendWithFds(this.fd, p.header, p.fds);
      if (n === -11 /* EAGAIN */) {
        setImmediate(() => this.flush());
        return;
      }
      this.queue.shift();
      p.sent();
      if (n < 0) {
        const h = this.handlers.get(p.header.readUInt32LE(4));
        this.handlers.delete(p.header.readUInt32LE(4));
        h?.failed(`sending to the stub pool failed: ${os.strerror(-n)}`);
        continue;
      }
      if (n < HEADER) this.sock.write(p.header.subarray(n));
      // Once the stream has flushed, the next frame (maybe with fds) may go.
      this.sock.write(p.payload, () => this.flush());
    }
  }

  private receive(d: Buffer): void {
    this.inbox = this.inbox.length ? Buffer.concat([this.inbox, d]) : d;
    while (this.inbox.length >= HEADER) {
      const len = this.inbox.readUInt32LE(8);
      if (this.inbox.length < HEADER + len) break;
      const type = this.inbox.readUInt32LE(0);
      const id = this.inbox.readUInt32LE(4);
      const payload = this.inbox.subarray(HEADER, HEADER + len);
      this.inbox = this.inbox.subarray(HEADER + len);
      const h = this.handlers.get(id);
      if (!h) continue;
      switch (type) {
        case Type.STARTED:
          h.started(payload.readUInt32LE(0));
          break;
        case Type.OUTPUT:
          h.output(Buffer.from(payload));
          break;
        case Type.EXIT:
          this.handlers.delete(id);
          h.exit(payload.readInt32LE(0), Buffer.from(payload.subarray(4)));
          break;
        case Type.FAILED:
          this.handlers.delete(id);
          h.failed(payload.toString('utf8'));
          break;
      }
    }
  }
}
