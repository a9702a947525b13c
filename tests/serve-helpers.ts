// A `tendril serve` of a test's own: a private socket in a private temp dir,
// started for real, stopped (and waited for) by pid in teardown.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api } from '../supervisor/serve/client.js';
import { childrenOf, guest, STUB, TENDRIL, waitFor } from './helpers.js';

export type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface TestServer {
  proc: ChildProcess;
  sock: string;
  dir: string;
  /** The server's stderr so far. */
  stderr(): string;
  register(name: string): Promise<string>;
  /** POST /instances with wait: true; the HTTP status as httpStatus. */
  launch(name: string, body?: Json): Promise<Json>;
  zygotePid(): number | undefined;
  stop(): Promise<void>;
}

/** Starts a server; `wrap` puts a command (prlimit, bash -c) in front of node. */
export async function startServer(args: string[] = [], opts: { wrap?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<TestServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-serve-'));
  const sock = join(dir, 'api.sock');
  const cmd = [...(opts.wrap ?? []), process.execPath, TENDRIL, 'serve', `--socket=${sock}`, '--log-level=warn', ...args];
  const proc = spawn(cmd[0], cmd.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...opts.env } });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => { err += d; });
  const exited = new Promise((r) => proc.once('exit', r));
  try {
    // The socket file appears at bind(), a moment before listen(): ready is when a request is answered.
    const ready = async () => {
      if (proc.exitCode !== null) return true;
      if (!existsSync(sock)) return false;
      try {
        return (await api(sock, 'GET', '/health')).status === 200;
      } catch {
        return false;
      }
    };
    await waitFor('the server to listen', ready, 30_000);
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
  if (proc.exitCode !== null) throw new Error(`the server exited (${proc.exitCode}): ${err}`);
  const ids: Record<string, string> = {};
  const s: TestServer = {
    proc, sock, dir,
    stderr: () => err,
    async register(name) {
      if (!ids[name]) {
        const r = await api(sock, 'POST', '/images', { path: name.startsWith('/') ? name : guest(name) });
        if (r.status !== 201) throw new Error(`register ${name}: ${JSON.stringify(r.body)}`);
        ids[name] = (r.body as Json).id;
      }
      return ids[name];
    },
    async launch(name, body = {}) {
      const r = await api(sock, 'POST', '/instances', { image: await s.register(name), memMiB: 2, wait: true, ...body });
      return { httpStatus: r.status, ...(r.body as Json) };
    },
    zygotePid: () => childrenOf(proc.pid!).find((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('tendril-zygote');
      } catch {
        return false;
      }
    }),
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return s;
}

/** /proc/PID/stat after the command name (which may hold spaces): [state, ppid, …]; field n of stat(5) is at n - 3. */
function statFields(pid: number): string[] {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** The stub processes under pid (the zygote's pool and instances, and their guests), with their start times. */
export function stubsUnder(pid: number): { pid: number; start: string }[] {
  const out: { pid: number; start: string }[] = [];
  const walk = (p: number) => {
    for (const c of childrenOf(p)) {
      try {
        if (readlinkSync(`/proc/${c}/exe`) === STUB) out.push({ pid: c, start: statFields(c)[19] });
      } catch {
        continue; // gone meanwhile
      }
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/** Whether that very process (same pid, same start time) is still there and not a zombie. */
export function stillThere(p: { pid: number; start: string }): boolean {
  try {
    const stat = statFields(p.pid);
    return stat[19] === p.start && stat[0] !== 'Z';
  } catch {
    return false;
  }
}
