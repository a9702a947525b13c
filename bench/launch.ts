// Launch speed and footprint (the fast-boot issue), each figure next to a
// baseline measured in the same run:
//   - cold `tendril run` of hello vs `node -e 0` (Node's own start-up);
//   - warm API launch→exit latency (p50, p99) through `tendril serve`, at
//     concurrency 1 and 2, vs the floor of fork+exec'ing the stub on a ready
//     plan from C, and vs fork+exec of /bin/true;
//   - launches per second through the API vs a shell loop of cold runs;
//   - resident memory of a running guest (exec mode, and in serve mode the
//     guest plus its monitor) vs the reference's ~1.4 MiB (documented, not
//     measurable here: no reference tender on this machine);
//   - many launches through the API: fds, processes, zombies left behind.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodePlan } from '../loader/plan.js';
import { compileLaunch, prepareLaunch, releaseLaunch } from '../supervisor/launch.js';
import { STUB_PATH } from '../supervisor/paths.js';
import { api } from '../supervisor/serve/client.js';
import { childrenOf, guest, ROOT, TENDRIL, waitFor, waitForGuest } from '../tests/helpers.js';
import { Budget, median, msSince, type Bench, type BenchResult } from './common.js';
import { barsSpec, latencySpec, renderSvg } from './plots.js';

const HELLO = guest('test_hello');
const TMP = join(ROOT, 'bench/tmp');
const EXECPLAN = join(TMP, 'execplan');

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

function timeCold(cmd: string, args: string[], n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    const r = spawnSync(cmd, args, { stdio: 'ignore' });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}`);
    out.push(msSince(t));
  }
  return out;
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

function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function runningRss(): Promise<{ exec: number }> {
  const child = spawn(process.execPath, [TENDRIL, 'run', '--mem=2', guest('test_time'), '--solo5:quiet'], { stdio: 'ignore' });
  try {
    await waitForGuest(child.pid!);
    await sleep(100);
    return { exec: rssOf(child.pid!) };
  } finally {
    child.kill('SIGKILL');
  }
}

export const bench: Bench = {
  name: 'launch',
  async run(): Promise<BenchResult[]> {
    const budget = new Budget('launch', 240_000);
    buildTools();
    const results: BenchResult[] = [];

    // Cold: a whole `tendril run` against Node's own start-up.
    timeCold(process.execPath, ['-e', '0'], 3);
    const node0 = timeCold(process.execPath, ['-e', '0'], 20);
    const cold = timeCold(process.execPath, [TENDRIL, 'run', '--mem=2', HELLO, '--solo5:quiet'], 20);
    results.push({
      name: 'cold', what: '`tendril run` hello, wall time (median, lower is better)', unit: 'ms',
      tendril: median(cold), baseline: median(node0), ratio: median(cold) / median(node0),
      baselineIs: '`node -e 0`, the same Node starting and exiting', details: { cold, node0 },
    });
    budget.check('the floor');

    // The floor: C fork+exec of the stub on a ready plan, and of /bin/true.
    const planFile = join(TMP, 'hello.plan');
    writeFloorPlan(planFile);
    const floor = execplan(['stub', STUB_PATH, planFile, '2000']);
    const trueRuns = execplan(['exec', '/bin/true', '2000']);

    // Warm: through the API, with the stub pool.
    const dir = join(tmpdir(), `tendril-bench-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    const sock = join(dir, 'api.sock');
    const server = await startServer(sock, 8);
    try {
      const image = ((await api(sock, 'POST', '/images', { path: HELLO })).body as Json).id as string;
      await warmLoop(sock, image, 1, 200); // warm up JIT and pool
      const c1 = await warmLoop(sock, image, 1, 2000);
      const c2 = await warmLoop(sock, image, 2, 2000);
      const mon = await warmLoop(sock, image, 1, 2000, true);
      for (const [p, label] of [[0.5, 'p50'], [0.99, 'p99']] as const) {
        results.push({
          name: `warm ${label}`, what: `API launch→exit of hello, ${label} latency at concurrency 1 (lower is better)`, unit: 'ms',
          tendril: percentile(c1.lat, p), baseline: percentile(floor, p), ratio: percentile(c1.lat, p) / percentile(floor, p),
          baselineIs: 'C fork+exec of the stub on a ready plan and waitpid (no supervisor at all)',
          details: { trueP: percentile(trueRuns, p), c2: percentile(c2.lat, p) },
        });
      }
      results.push({
        name: 'warm p50 monitored', what: 'the same with the ptrace monitor (exit reasons, peak RSS), p50 (lower is better)', unit: 'ms',
        tendril: percentile(mon.lat, 0.5), baseline: percentile(floor, 0.5), ratio: percentile(mon.lat, 0.5) / percentile(floor, 0.5),
        baselineIs: 'the same C floor', details: { p99: percentile(mon.lat, 0.99) },
      });
      results.push({
        name: 'warm /bin/true', what: 'API launch→exit of hello p50 vs fork+exec of /bin/true from C (lower is better)', unit: 'ms',
        tendril: percentile(c1.lat, 0.5), baseline: percentile(trueRuns, 0.5), ratio: percentile(c1.lat, 0.5) / percentile(trueRuns, 0.5),
        baselineIs: 'C fork+exec+waitpid of /bin/true (dynamically linked)', details: {},
      });
      // A shell loop of cold runs: the launch rate a user gets without serve.
      const loopN = 20;
      const shellStart = process.hrtime.bigint();
      spawnSync('sh', ['-c', `for i in $(seq ${loopN}); do ${process.execPath} ${TENDRIL} run --mem=2 ${HELLO} --solo5:quiet >/dev/null; done`]);
      const shellRate = loopN / (msSince(shellStart) / 1000);
      for (const [c, label] of [[c1, 1], [c2, 2]] as const) {
        results.push({
          name: `rate c=${label}`, what: `API launches per second at concurrency ${label} (higher is better)`, unit: '/s',
          tendril: c.perSecond, baseline: shellRate, ratio: c.perSecond / shellRate,
          baselineIs: 'a shell loop of cold `tendril run` launches of the same guest', details: {},
        });
      }
      const floorRate = 1000 / median(floor);
      results.push({
        name: 'rate vs floor', what: 'API launches per second at concurrency 2 vs sequential C fork+exec of the stub (higher is better)', unit: '/s',
        tendril: c2.perSecond, baseline: floorRate, ratio: c2.perSecond / floorRate,
        baselineIs: 'the C floor above, one at a time', details: {},
      });

      // Footprint of a running guest.
      const rss = await runningRss();
      results.push({
        name: 'rss', what: 'resident memory of a running hello-sized guest, exec mode (lower is better)', unit: 'KiB',
        tendril: rss.exec, baseline: 1434, ratio: rss.exec / 1434,
        baselineIs: 'the reference solo5-spt running test_hello, ≈1.4 MiB as documented in the spec (not measurable here)',
        details: rss,
      });

      // Many launches: nothing may leak.
      const zygote = childrenOf(server.pid!)[0];
      const fdsBefore = readdirSync(`/proc/${server.pid}/fd`).length;
      const zfdsBefore = readdirSync(`/proc/${zygote}/fd`).length;
      const many = budget.left() > 60_000 ? 10_000 : 2_000;
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
        name: 'leaks', what: `fds, processes and zombies left by the server over ${many} launches (0 expected)`, unit: '',
        tendril: leak.serverFds + leak.zygoteFds + leak.zombies + Math.max(0, leak.zygoteChildren - 8), baseline: 0, ratio: 0,
        baselineIs: 'nothing left behind', details: leak,
      });
      const plots = join(ROOT, 'bench/results');
      mkdirSync(plots, { recursive: true });
      await renderSvg(latencySpec('Launch → exit of hello (ms)', {
        'C fork+exec of the stub (floor)': floor,
        'C fork+exec of /bin/true': trueRuns,
        'tendril serve API, concurrency 1': c1.lat,
        'tendril serve API, concurrency 2': c2.lat,
        'tendril serve API, monitored, concurrency 1': mon.lat,
        'cold tendril run': cold,
        'node -e 0': node0,
      }), join(plots, 'launch-latency.svg'));
      await renderSvg(barsSpec('Launches per second', 'launches/s', [
        { label: 'API c=1 vs shell loop', tendril: c1.perSecond, baseline: shellRate },
        { label: 'API c=2 vs shell loop', tendril: c2.perSecond, baseline: shellRate },
        { label: 'API c=2 vs C floor', tendril: c2.perSecond, baseline: floorRate },
      ]), join(plots, 'launch-rate.svg'));
      return results;
    } finally {
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
