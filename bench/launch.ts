// Warm launch speed through `tendril serve` (the fast-boot issue), each
// figure next to a baseline measured in the same run (cold start is
// bench/cold.ts, resident memory bench/footprint.ts):
//   - warm API launch→exit latency (p50, p99) through `tendril serve`, at
//     concurrency 1 and 2, vs the floor of fork+exec'ing the stub on a ready
//     plan from C, and vs fork+exec of /bin/true;
//   - launches per second through the API vs a shell loop of cold runs;
//   - many launches through the API: fds, processes, zombies left behind.
// --quick makes every count about 10× smaller.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodePlan } from '../loader/plan.js';
import { compileLaunch, prepareLaunch, releaseLaunch } from '../supervisor/launch.js';
import { STUB_PATH } from '../supervisor/paths.js';
import { api } from '../supervisor/serve/client.js';
import { childrenOf, guest, ROOT, TENDRIL, waitFor } from '../tests/helpers.js';
import { median, msSince, type Bench, type Row } from './common.js';

const HELLO = guest('test_hello');
const TMP = join(ROOT, 'bench/tmp');
const EXECPLAN = join(TMP, 'execplan');

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

function buildTools(): void {
  mkdirSync(TMP, { recursive: true });
  const r = spawnSync('gcc', ['-O2', '-Wall', '-o', EXECPLAN, join(ROOT, 'bench/tools/execplan.c')], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('cannot build bench/tools/execplan.c');
}

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
  const r = spawnSync(EXECPLAN, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`execplan ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim().split('\n').map((l) => Number(l) / 1000);
}

async function startServer(sock: string, pool: number): Promise<ReturnType<typeof spawn>> {
  const server = spawn(process.execPath, [TENDRIL, 'serve', `--socket=${sock}`, `--pool=${pool}`, '--log-level=error'], { stdio: 'ignore' });
  // Ready when it answers (the socket file appears at bind, a moment before listen).
  await waitFor('tendril serve to listen', async () => existsSync(sock) && (await api(sock, 'GET', '/health').catch(() => ({ status: 0 }))).status === 200, 20_000);
  return server;
}

type Json = Record<string, unknown>;

/** Closed-loop launches at a concurrency; returns per-launch latencies (ms) and the rate. */
async function warmLoop(sock: string, image: string, concurrency: number, n: number, monitor = false): Promise<{ lat: number[]; perSecond: number }> {
  const lat: number[] = [];
  let next = 0;
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next++ < n) {
      const t = process.hrtime.bigint();
      const r = await api(sock, 'POST', '/instances', { image, memMiB: 2, args: ['--solo5:quiet'], wait: true, monitor });
      lat.push(msSince(t));
      if ((r.body as Json).status !== 0) throw new Error(`launch failed: ${JSON.stringify(r.body)}`);
    }
  }));
  return { lat, perSecond: n / (msSince(start) / 1000) };
}

export const bench: Bench = {
  name: 'launch',
  title: 'Warm launches through tendril serve',
  budgetMs: { full: 240_000, quick: 30_000 },
  async run(ctx) {
    const { budget, pick } = ctx;
    buildTools();
    const results: Row[] = [];
    const floorBaseline = (value: number) => ({
      value, measured: true as const, label: 'C fork+exec of the stub',
      what: 'C fork+exec of the stub on a ready plan and waitpid (no supervisor at all)',
    });

    // The floor: C fork+exec of the stub on a ready plan, and of /bin/true.
    const planFile = join(TMP, 'hello.plan');
    writeFloorPlan(planFile);
    const floor = execplan(['stub', STUB_PATH, planFile, String(pick(2000, 200))]);
    const trueRuns = execplan(['exec', '/bin/true', String(pick(2000, 200))]);

    // Warm: through the API, with the stub pool.
    const dir = join(tmpdir(), `tendril-bench-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    const sock = join(dir, 'api.sock');
    const server = await startServer(sock, 8);
    try {
      const image = ((await api(sock, 'POST', '/images', { path: HELLO })).body as Json).id as string;
      await warmLoop(sock, image, 1, pick(200, 50)); // warm up JIT and pool
      const c1 = await warmLoop(sock, image, 1, pick(2000, 200));
      const c2 = await warmLoop(sock, image, 2, pick(2000, 200));
      const mon = await warmLoop(sock, image, 1, pick(2000, 200), true);
      for (const [p, label] of [[0.5, 'p50'], [0.99, 'p99']] as const) {
        results.push({
          name: `warm ${label}`, what: `API launch→exit of hello, ${label} latency at concurrency 1`, unit: 'ms', direction: 'lower',
          tendril: percentile(c1.lat, p), baseline: floorBaseline(percentile(floor, p)),
          details: { trueP: percentile(trueRuns, p), c2: percentile(c2.lat, p) },
        });
      }
      results.push({
        name: 'warm p50 monitored', what: 'the same with the ptrace monitor (exit reasons, peak RSS), p50', unit: 'ms', direction: 'lower',
        tendril: percentile(mon.lat, 0.5), baseline: floorBaseline(percentile(floor, 0.5)), details: { p99: percentile(mon.lat, 0.99) },
      });
      results.push({
        name: 'warm /bin/true', what: 'API launch→exit of hello p50 vs fork+exec of /bin/true from C', unit: 'ms', direction: 'lower',
        tendril: percentile(c1.lat, 0.5),
        baseline: { value: percentile(trueRuns, 0.5), measured: true, label: 'C fork+exec of /bin/true', what: 'C fork+exec+waitpid of /bin/true (dynamically linked)' },
      });
      // A shell loop of cold runs: the launch rate a user gets without serve.
      const loopN = pick(20, 3);
      const shellStart = process.hrtime.bigint();
      spawnSync('sh', ['-c', `for i in $(seq ${loopN}); do ${process.execPath} ${TENDRIL} run --mem=2 ${HELLO} --solo5:quiet >/dev/null; done`]);
      const shellRate = loopN / (msSince(shellStart) / 1000);
      for (const [c, label] of [[c1, 1], [c2, 2]] as const) {
        results.push({
          name: `rate c=${label}`, what: `API launches per second at concurrency ${label}`, unit: '/s', direction: 'higher',
          tendril: c.perSecond,
          baseline: { value: shellRate, measured: true, label: 'shell loop of cold runs', what: 'a shell loop of cold `tendril run` launches of the same guest' },
          details: { launches: c.lat.length, shellLoopRuns: loopN },
        });
      }
      const floorRate = 1000 / median(floor);
      results.push({
        name: 'rate vs floor', what: 'API launches per second at concurrency 2 vs sequential C fork+exec of the stub', unit: '/s', direction: 'higher',
        tendril: c2.perSecond,
        baseline: { value: floorRate, measured: true, label: 'C floor, one at a time', what: 'the C floor above, one at a time (1 / its median)' },
      });

      // Many launches: nothing may leak.
      const zygote = childrenOf(server.pid!)[0];
      const fdsBefore = readdirSync(`/proc/${server.pid}/fd`).length;
      const zfdsBefore = readdirSync(`/proc/${zygote}/fd`).length;
      const many = pick(budget.left() > 60_000 ? 10_000 : 2_000, 300);
      const longRun = await warmLoop(sock, image, 2, many);
      await sleep(300);
      const leak = {
        launches: many,
        serverFds: readdirSync(`/proc/${server.pid}/fd`).length - fdsBefore,
        zygoteFds: readdirSync(`/proc/${zygote}/fd`).length - zfdsBefore,
        zygoteChildren: childrenOf(zygote).length,
        zombies: childrenOf(zygote).filter((p) => /^State:\s+Z/m.test(readFileSync(`/proc/${p}/status`, 'utf8'))).length,
        perSecond: longRun.perSecond,
      };
      results.push({
        name: 'leaks', what: `fds, processes and zombies left by the server over ${many.toLocaleString('en-US')} launches`,
        counts: {
          'server fds': leak.serverFds,
          'zygote fds': leak.zygoteFds,
          'zombies': leak.zombies,
          'zygote children beyond its pool of 8': Math.max(0, leak.zygoteChildren - 8),
        },
        details: leak,
      });
      return {
        rows: results,
        plots: [
          { kind: 'distribution', file: 'launch-latency', title: 'Launch → exit of hello', unit: 'ms', direction: 'lower', series: {
            'C fork+exec of the stub (floor)': floor,
            'C fork+exec of /bin/true': trueRuns,
            'tendril serve API, concurrency 1': c1.lat,
            'tendril serve API, concurrency 2': c2.lat,
            'tendril serve API, monitored, concurrency 1': mon.lat,
          } },
          { kind: 'bars', file: 'launch-rate', title: 'Launches per second', rows: ['rate c=1', 'rate c=2', 'rate vs floor'] },
        ],
      };
    } finally {
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
