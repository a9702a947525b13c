// Warm launch speed through `tendril serve` (the fast-boot issue), each
// figure next to a baseline measured in the same run (cold start is
// bench/cold.ts, resident memory bench/footprint.ts, the long soak
// bench/soak.ts):
//   - warm API launch→exit latency (p50, p99), as a client measures it over
//     the unix socket with keep-alive, against a C fork+exec+wait of
//     /bin/true and against the stub launched from C on a ready plan;
//   - launches per second at concurrency 1 and 2 against /bin/true and the
//     stub launched back to back from C.
// --quick makes every count about 10× smaller.

import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodePlan, receivedFd } from '../loader/plan.js';
import { compileLaunch, memoryFileFd, prepareLaunch, releaseLaunch } from '../supervisor/launch.js';
import { StubPool } from '../supervisor/serve/zygote.js';
import { STUB_PATH } from '../supervisor/paths.js';
import { api } from '../supervisor/serve/client.js';
import { guest, TENDRIL, waitFor } from '../tests/helpers.js';
import { cTool } from './ctool.js';
import { BENCH_TMP as TMP } from './scratch.js';
import { liveChildren, msSince, percentile, type Bench, type Row } from './common.js';

const HELLO = guest('test_hello');

/** A ready plan and memory file for the floor: the plan at fd 3, the memory file at fd 4 (execplan sets them up). */
function writeFloorPlan(file: string): void {
  const p = prepareLaunch({ memMiB: 2, xExecHeap: false, guest: HELLO, guestArgs: ['--solo5:quiet'], devices: [], dumpable: false, gdb: false, supervise: false });
  try {
    const c = compileLaunch(p);
    writeFileSync(file, encodePlan(c.plan, c.filter.bpf, { deviceSrc: [], imageSrc: 4 }));
    writeFileSync(`${file}.mem`, c.memory.bytes);
  } finally {
    releaseLaunch(p);
  }
}

function execplan(args: string[]): number[] {
  const r = spawnSync(cTool('execplan'), args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`execplan ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim().split('\n').map((l) => Number(l) / 1000);
}

type Json = Record<string, unknown>;

/** Closed-loop POST /instances with wait: true at a concurrency; per-launch latencies (ms) and the rate. */
export async function apiLoop(sock: string, body: Json, concurrency: number, n: number): Promise<{ lat: number[]; perSecond: number }> {
  const lat: number[] = [];
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next++ < n) {
      const t = process.hrtime.bigint();
      const r = await api(sock, 'POST', '/instances', { ...body, wait: true });
      lat.push(msSince(t));
      if ((r.body as Json).status !== 0) throw new Error(`launch failed: ${JSON.stringify(r.body)}`);
    }
  }));
  return { lat, perSecond: n / (msSince(start) / 1000) };
}

/** apiLoop of the hello image (registerHello), quiet, 2 MiB. */
export function warmLoop(sock: string, image: string, concurrency: number, n: number, monitor = false): Promise<{ lat: number[]; perSecond: number }> {
  return apiLoop(sock, { image, memMiB: 2, args: ['--solo5:quiet'], monitor }, concurrency, n);
}

/**
 * Launches straight through a stub pool from this process, with no HTTP and
 * no server between: what the API costs on top of the engine beneath it.
 */
async function poolLoop(n: number): Promise<number[]> {
  const pool = new StubPool(8);
  await pool.start();
  const p = prepareLaunch({ memMiB: 2, xExecHeap: false, guest: HELLO, guestArgs: ['--solo5:quiet'], devices: [], dumpable: false, gdb: false, supervise: false });
  const c = compileLaunch(p);
  const mem = memoryFileFd(c.memory);
  const plan = encodePlan(c.plan, c.filter.bpf, { deviceSrc: [], imageSrc: receivedFd(0) });
  const one = () => new Promise<number>((resolve, reject) => {
    const t = process.hrtime.bigint();
    pool.get().launch(plan, [mem], {
      started: () => undefined, output: () => undefined,
      exit: (ws) => (ws === 0 ? resolve(msSince(t)) : reject(new Error(`wait status ${ws}`))),
      failed: (why) => reject(new Error(why)),
    }, true);
  });
  try {
    for (let i = 0; i < Math.min(200, n); i++) await one();
    const lat: number[] = [];
    for (let i = 0; i < n; i++) lat.push(await one());
    return lat;
  } finally {
    closeSync(mem);
    releaseLaunch(p);
    pool.close();
  }
}

/** A fresh server of the bench's own (pool of 8), stopped afterwards. */
export async function withServer<T>(fn: (sock: string, server: ReturnType<typeof spawn>, dir: string) => Promise<T>): Promise<T> {
  const dir = join(tmpdir(), `tendril-bench-${process.pid}-${Date.now()}`);
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp, { recursive: true });
  const sock = join(dir, 'api.sock');
  const server = spawn(process.execPath, [TENDRIL, 'serve', `--socket=${sock}`, '--pool=8', '--log-level=error'], { stdio: 'ignore', env: { ...process.env, TMPDIR: tmp } });
  liveChildren.add(server);
  try {
    // Ready when it answers (the socket file appears at bind, a moment before listen).
    await waitFor('tendril serve to listen', async () => existsSync(sock) && (await api(sock, 'GET', '/health').catch(() => ({ status: 0 }))).status === 200, 20_000);
    return await fn(sock, server, tmp);
  } finally {
    if (server.exitCode === null && server.signalCode === null) {
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
    }
    liveChildren.delete(server);
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function registerHello(sock: string): Promise<string> {
  return ((await api(sock, 'POST', '/images', { path: HELLO })).body as Json).id as string;
}

export const bench: Bench = {
  name: 'launch',
  title: 'Warm launches through tendril serve',
  budgetMs: { full: 240_000, quick: 30_000 },
  async run(ctx) {
    const { pick } = ctx;
    const results: Row[] = [];
    // The baselines, in C, in this run: a fork+exec+wait of /bin/true (the
    // reference tender's cold launch of hello costs about 1.6x that), and of
    // the stub itself on a ready plan (the floor: no supervisor at all).
    mkdirSync(TMP, { recursive: true });
    const planFile = join(TMP, 'hello.plan');
    writeFloorPlan(planFile);
    const n = pick(2000, 200);
    const floor = execplan(['stub', STUB_PATH, planFile, String(n)]);
    const trueRuns = execplan(['exec', '/bin/true', String(n)]);
    const direct = await poolLoop(n);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const trueBase = (value: number, what: string) => ({ value, measured: true as const, label: 'C fork+exec of /bin/true', what });
    const floorBase = (value: number, what: string) => ({ value, measured: true as const, label: 'C fork+exec of the stub', what });

    return withServer(async (sock) => {
      const image = await registerHello(sock);
      await warmLoop(sock, image, 1, pick(300, 50)); // warm up JIT and pool
      const c1 = await warmLoop(sock, image, 1, n);
      const c2 = await warmLoop(sock, image, 2, n);
      const mon = await warmLoop(sock, image, 1, n, true);
      const monC2 = await warmLoop(sock, image, 2, n, true);
      for (const [p, label] of [[0.5, 'p50'], [0.99, 'p99']] as const) {
        results.push({
          name: `warm ${label}`, what: `API launch→exit of hello (client side, HTTP keep-alive), ${label}, concurrency 1, no monitor`, unit: 'ms', direction: 'lower',
          tendril: percentile(c1.lat, p), baseline: trueBase(percentile(trueRuns, p), `C fork+exec+waitpid of /bin/true, ${label}`),
          details: { c2: percentile(c2.lat, p), stubFloor: percentile(floor, p) },
        });
      }
      results.push({
        name: 'warm p50 monitored', what: 'the same with the ptrace monitor (exit reasons, peak RSS), p50', unit: 'ms', direction: 'lower',
        tendril: percentile(mon.lat, 0.5), baseline: trueBase(percentile(trueRuns, 0.5), 'C fork+exec+waitpid of /bin/true, p50'),
        details: { p99: percentile(mon.lat, 0.99) },
      });
      results.push({
        name: 'warm p50 without HTTP', what: 'launch→exit of hello p50 straight through a stub pool from Node (no server, no HTTP): what the API adds is the difference to "warm p50"', unit: 'ms', direction: 'lower',
        tendril: percentile(direct, 0.5), baseline: trueBase(percentile(trueRuns, 0.5), 'C fork+exec+waitpid of /bin/true, p50'),
        details: { p99: percentile(direct, 0.99) },
      });
      results.push({
        name: 'warm p50 vs floor', what: 'API launch→exit of hello p50, concurrency 1, against the stub launched from C on a ready plan', unit: 'ms', direction: 'lower',
        tendril: percentile(c1.lat, 0.5), baseline: floorBase(percentile(floor, 0.5), 'C fork+exec+waitpid of the stub on a ready plan and memory file, p50'),
      });
      for (const [c, label, mo] of [[c1, 1, ''], [c2, 2, ''], [monC2, 2, ', monitored']] as const) {
        results.push({
          name: `rate c=${label}${mo}`, what: `API launches per second at concurrency ${label}${mo}`, unit: '/s', direction: 'higher',
          tendril: c.perSecond,
          baseline: trueBase(1000 / mean(trueRuns), '/bin/true fork+exec+waitpid back to back from C (1 / mean)'),
          details: { launches: c.lat.length },
        });
      }
      results.push({
        name: 'rate c=2 vs floor', what: 'API launches per second at concurrency 2 vs the stub launched back to back from C', unit: '/s', direction: 'higher',
        tendril: c2.perSecond, baseline: floorBase(1000 / mean(floor), 'the C floor above, back to back (1 / mean)'),
      });
      return {
        rows: results,
        plots: [
          { kind: 'distribution', file: 'launch-latency', title: 'Launch → exit of hello', unit: 'ms', direction: 'lower', series: {
            'C fork+exec of the stub (floor)': floor,
            'C fork+exec of /bin/true': trueRuns,
            'tendril serve API, concurrency 1': c1.lat,
            'tendril serve API, concurrency 2': c2.lat,
            'tendril serve API, monitored, c=1': mon.lat,
            'stub pool from Node, no HTTP': direct,
          } },
          { kind: 'bars', file: 'launch-rate', title: 'Launches per second', rows: ['rate c=1', 'rate c=2', 'rate c=2, monitored', 'rate c=2 vs floor'] },
        ],
      };
    });
  },
};
