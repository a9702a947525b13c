// Snapshots (issue "boot once, start many"), each figure next to a baseline
// from the same run. The guest is tests/guests/test_snap_service: a start-up
// that builds 32 MiB of state (several hundred ms), then a yield (the
// snapshot point), then it reads a request from its disk, answers on the
// console and exits.
//   - restore→exit through `tendril serve` (POST /instances {"snapshot"},
//     a disk per restore), p50 and p99, against the same guest's cold run to
//     the same answer through the same server; restores per second at
//     concurrency 2 against cold runs per second;
//   - the same without any supervisor (C fork+exec of the stub on a ready
//     plan, restore against cold boot), and through the CLI (`tendril run
//     --restore` against `tendril run`);
//   - the summed PSS of 100 idle clones against the RSS of one instance
//     booted cold and idle at the same point;
//   - creation: time (the dump) against the guest's own boot to the point,
//     and size (allocated on disk) against what the guest wrote, for that
//     guest and for an idle 512 MiB guest.

import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DEFAULT_MEM_MIB } from '../loader/abi.js';
import { encodePlan } from '../loader/plan.js';
import { releaseDevices } from '../supervisor/devices/index.js';
import { compileLaunch, prepareLaunch, releaseLaunch } from '../supervisor/launch.js';
import type { RunOptions } from '../supervisor/options.js';
import { STUB_PATH } from '../supervisor/paths.js';
import { createSnapshot, type CreateResult } from '../supervisor/snapshot/create.js';
import { prepareRestore } from '../supervisor/snapshot/restore.js';
import { api } from '../supervisor/serve/client.js';
import { guest, ROOT, TENDRIL, waitFor } from '../tests/helpers.js';
import { median, msSince, percentile, type Baseline, type Bench, type FigureRow } from './common.js';
import { apiLoop, withServer } from './launch.js';
import { BENCH_TMP } from './scratch.js';
import { serviceDisk } from '../tests/fixtures/service-disk.js';

const SERVICE = guest('test_snap_service');
const TMP = join(BENCH_TMP, 'snapshot');
const TOOL = join(TMP, 'snapexec');
/** Sizes and counts of a full run, and of a --quick smoke run. */
interface Sizes { stateMiB: number; memMiB: number; clones: number; restores: number; coldRuns: number; cliRuns: number }
const FULL: Sizes = { stateMiB: 32, memMiB: 64, clones: 100, restores: 2000, coldRuns: 3, cliRuns: 10 };
const QUICK: Sizes = { stateMiB: 4, memMiB: 16, clones: 10, restores: 100, coldRuns: 1, cliRuns: 2 };

function runOptions(o: Partial<RunOptions>): RunOptions {
  return { memMiB: DEFAULT_MEM_MIB, xExecHeap: false, guest: '', guestArgs: [], devices: [], dumpable: false, gdb: false, supervise: false, ...o };
}

const storage = (path: string) => ({ kind: 'block' as const, name: 'storage', path, readOnly: false });

const disk = (name: string, request?: number) => serviceDisk(TMP, name, request);

/** The restored guest's plan for snapexec: memory file at fd 4, disk at fd 5. */
function restorePlan(snap: string, diskPath: string, out: string): void {
  const r = prepareRestore(runOptions({ restore: snap, devices: [storage(diskPath)] }));
  try {
    writeFileSync(out, encodePlan(r.plan, r.filter.bpf, { deviceSrc: [5], imageSrc: 4 }));
  } finally {
    releaseDevices(r.devices);
    closeSync(r.snap.memFd);
  }
}

/** The same guest booted fresh: its plan and its image's memory file. */
function freshPlan(z: Sizes, diskPath: string, out: string): void {
  const p = prepareLaunch(runOptions({ memMiB: z.memMiB, guest: SERVICE, guestArgs: ['--solo5:quiet', String(z.stateMiB)], devices: [storage(diskPath)] }));
  try {
    const c = compileLaunch(p);
    writeFileSync(out, encodePlan(c.plan, c.filter.bpf, { deviceSrc: [5], imageSrc: 4 }));
    writeFileSync(`${out}.mem`, c.memory.bytes);
  } finally {
    releaseLaunch(p);
  }
}

function snapexec(plan: string, mem: string, diskPath: string, n: number, c: number): { lat: number[]; perSecond: number } {
  const r = spawnSync(TOOL, ['run', STUB_PATH, plan, mem, diskPath, String(n), String(c)], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`snapexec: ${r.stderr.trim()}`);
  const lines = r.stdout.trim().split('\n');
  const total = Number(lines.pop()!.split(' ')[1]);
  return { lat: lines.map((l) => Number(l) / 1000), perSecond: n / (total / 1e6) };
}

/** Starts n guests from a plan and waits until each is idle in its yield; returns their pids and a stop function. */
async function hold(plan: string, mem: string, diskPath: string, n: number): Promise<{ pids: number[]; stop: () => Promise<void> }> {
  const child = spawn(TOOL, ['hold', STUB_PATH, plan, mem, diskPath, String(n)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const pids: number[] = [];
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    lines.on('line', (l) => (l === 'ready' ? resolve() : pids.push(Number(l))));
    child.on('exit', () => reject(new Error('snapexec hold ended early')));
  });
  const stop = () => new Promise<void>((resolve) => {
    child.on('close', () => resolve());
    child.stdin!.end();
  });
  try {
    for (const pid of pids) {
      // Idle: blocked in epoll_pwait (281) with the filter installed.
      await waitFor(`guest ${pid} to idle`, () => /^Seccomp:\s+2$/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')) &&
        readFileSync(`/proc/${pid}/syscall`, 'utf8').startsWith('281 '), 60_000);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  return { pids, stop };
}

function rollup(pid: number, key: 'Pss' | 'Rss'): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB$`, 'm').exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  if (!m) throw new Error(`no ${key} for ${pid}`);
  return Number(m[1]);
}

function cliTimes(args: string[], n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    const r = spawnSync(process.execPath, [TENDRIL, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
    if (r.status !== 0) throw new Error(`tendril ${args.join(' ')} exited ${r.status ?? r.signal}`);
    out.push(msSince(t));
  }
  return out;
}

type Json = Record<string, unknown>;

const measured = (value: number, label: string, what: string): Baseline => ({ value, measured: true, label, what });

function creationRows(label: string, r: CreateResult): FigureRow[] {
  const allocated = r.allocatedBytes / 1048576;
  const stored = r.storedBytes / 1048576;
  return [
    {
      name: `create ${label}`, what: `snapshot creation of ${label}: the dump, from the point to the directory written`, unit: 'ms', direction: 'lower',
      tendril: r.totalMs - r.runMs, baseline: measured(r.runMs, 'its boot to the point', 'the guest\'s own boot and start-up to the point, in the same creation'),
      details: { runMs: r.runMs, dumpMs: r.dumpMs, totalMs: r.totalMs, pages: r.meta.memory.pages },
    },
    {
      name: `size ${label}`, what: `snapshot of ${label}: memory file allocated on disk`, unit: 'MiB', direction: 'lower',
      tendril: allocated, baseline: measured(stored, 'what it holds', `the guest memory it holds (${r.meta.memory.pages} pages the guest wrote), of ${Number(r.meta.memSize >> 20n)} MiB guest memory`),
      details: { allocatedBytes: r.allocatedBytes, storedBytes: r.storedBytes, fileBytes: Number(r.meta.memSize), regions: r.meta.memory.regions.length },
    },
  ];
}

export const bench: Bench = {
  name: 'snapshot',
  title: 'Snapshots: restore an initialised guest vs boot it cold',
  budgetMs: { full: 300_000, quick: 45_000 },
  async run(ctx) {
    const z = ctx.quick ? QUICK : FULL;
    const { budget } = ctx;
    rmSync(TMP, { recursive: true, force: true });
    mkdirSync(TMP, { recursive: true });
    const cc = spawnSync('gcc', ['-O2', '-Wall', '-o', TOOL, join(ROOT, 'bench/tools/snapexec.c')], { stdio: 'inherit' });
    if (cc.status !== 0) throw new Error('cannot build bench/tools/snapexec.c');
    const rows: FigureRow[] = [];
    const state = `${z.stateMiB} MiB-state guest`;
    const serveSeries: Record<string, number[]> = {};
    try {
      // The snapshot, made in-process the way `tendril snapshot create` makes it.
      const snap = join(TMP, 'service.snap');
      const made = await createSnapshot({ out: snap, at: 1, collectOutput: 1 << 16, run: runOptions({ memMiB: z.memMiB, guest: SERVICE, guestArgs: ['--solo5:quiet', String(z.stateMiB)], devices: [storage(disk('boot.img'))] }) });
      rows.push(...creationRows(`a ${state}`, made));

      const request = disk('request.img', 4242);
      const check = spawnSync(process.execPath, [TENDRIL, 'run', `--restore=${snap}`, `--block:storage=${request}`], { encoding: 'utf8' });
      if (check.status !== 0 || !/^ANSWER 4242 \d+ checksum \d+\n$/.test(check.stdout)) throw new Error(`restored guest did not answer: ${check.stdout}${check.stderr}`);
      const restorePlanFile = join(TMP, 'restore.plan');
      const freshPlanFile = join(TMP, 'fresh.plan');
      restorePlan(snap, request, restorePlanFile);
      freshPlan(z, request, freshPlanFile);
      budget.check('the server runs');

      // Through the server: restore against a cold launch of the same guest to the same answer.
      await withServer(async (sock) => {
        const image = ((await api(sock, 'POST', '/images', { path: SERVICE })).body as Json).id as string;
        const madeApi = await api(sock, 'POST', '/snapshots', { image, args: ['--solo5:quiet', String(z.stateMiB)], memMiB: z.memMiB, devices: { storage: { block: disk('serve-boot.img') } } });
        if (madeApi.status !== 201) throw new Error(`POST /snapshots: ${JSON.stringify(madeApi.body)}`);
        const id = (madeApi.body as Json).id as string;
        const restore = { snapshot: id, devices: { storage: { block: request } }, monitor: false };
        const coldBody = { image, args: ['--solo5:quiet', String(z.stateMiB)], memMiB: z.memMiB, devices: { storage: { block: request } }, monitor: false };
        await apiLoop(sock, restore, 1, Math.ceil(z.restores / 6)); // JIT, pool, page cache
        const warm = await apiLoop(sock, restore, 1, z.restores);
        const warm2 = await apiLoop(sock, restore, 2, 2 * z.restores);
        const monitored = await apiLoop(sock, { ...restore, monitor: true }, 1, Math.ceil(z.restores / 2));
        const cold = await apiLoop(sock, coldBody, 1, z.coldRuns);
        const cold2 = await apiLoop(sock, coldBody, 2, 2 * z.coldRuns);
        // For scale: a fresh launch of hello (no device, no state) through the same server.
        const hello = ((await api(sock, 'POST', '/images', { path: guest('test_hello') })).body as Json).id as string;
        const helloBody = { image: hello, memMiB: 2, args: ['--solo5:quiet'], monitor: false };
        await apiLoop(sock, helloBody, 1, Math.ceil(z.restores / 10));
        const helloRuns = await apiLoop(sock, helloBody, 1, Math.ceil(z.restores / 2));
        serveSeries['restore (no monitor)'] = warm.lat;
        serveSeries['restore (monitor)'] = monitored.lat;
        serveSeries['hello launch (no monitor)'] = helloRuns.lat;
        const coldBase = measured(median(cold.lat), 'cold launch', 'the same guest launched cold through the same server to the same answer, median');
        for (const [p, label] of [[0.5, 'p50'], [0.99, 'p99']] as const) {
          rows.push({
            name: `serve restore ${label}`, what: `API restore→exit of the ${state} (a disk per restore, no monitor), ${label}, concurrency 1`, unit: 'ms', direction: 'lower',
            tendril: percentile(warm.lat, p), baseline: coldBase,
            details: {
              coldRuns: cold.lat, monitored: percentile(monitored.lat, p), concurrency2: percentile(warm2.lat, p),
              helloLaunch: percentile(helloRuns.lat, p),
            },
          });
        }
        rows.push({
          name: 'serve restore rate c=2', what: 'API restores→exit per second at concurrency 2', unit: '/s', direction: 'higher',
          tendril: warm2.perSecond, baseline: measured(cold2.perSecond, 'cold launches', 'cold launches of the same guest to the same answer through the same server, per second at concurrency 2'),
        });
      });
      budget.check('the C floor');

      // Restore vs cold boot without a supervisor: C fork+exec of the stub on a ready plan.
      const cold = snapexec(freshPlanFile, `${freshPlanFile}.mem`, request, z.coldRuns + 2, 1);
      const coldC2 = snapexec(freshPlanFile, `${freshPlanFile}.mem`, request, 2 * z.coldRuns, 2);
      snapexec(restorePlanFile, join(snap, 'memory'), request, Math.ceil(z.restores / 10), 1); // warm the page cache
      const restored = snapexec(restorePlanFile, join(snap, 'memory'), request, z.restores, 1);
      const restoredC2 = snapexec(restorePlanFile, join(snap, 'memory'), request, 2 * z.restores, 2);
      rows.push({
        name: 'restore floor p50', what: 'restore→exit of that guest, C fork+exec of the stub on a ready plan, p50', unit: 'ms', direction: 'lower',
        tendril: percentile(restored.lat, 0.5),
        baseline: measured(median(cold.lat), 'cold boot from C', 'the same guest booted cold to the same answer, the same way (C fork+exec of the stub on its fresh plan), median'),
        details: { p99: percentile(restored.lat, 0.99), coldRuns: cold.lat, runs: restored.lat.length },
      });
      rows.push({
        name: 'restore floor rate c=2', what: 'restores→exit per second at concurrency 2, C fork+exec of the stub', unit: '/s', direction: 'higher',
        tendril: restoredC2.perSecond, baseline: measured(coldC2.perSecond, 'cold boots from C', 'cold runs of the same guest to the same answer per second at concurrency 2, the same way'),
        details: { p50: percentile(restoredC2.lat, 0.5) },
      });
      budget.check('the CLI runs');

      // The same through the CLI: Node start-up and validation included.
      const cliRestore = cliTimes(['run', `--restore=${snap}`, `--block:storage=${request}`], z.cliRuns);
      const cliCold = cliTimes(['run', `--mem=${z.memMiB}`, `--block:storage=${request}`, SERVICE, '--solo5:quiet', String(z.stateMiB)], z.coldRuns);
      rows.push({
        name: 'restore CLI', what: '`tendril run --restore` of that guest to its answer, wall time, median', unit: 'ms', direction: 'lower',
        tendril: median(cliRestore), baseline: measured(median(cliCold), '`tendril run` cold', '`tendril run` of the same guest booted cold to the same answer'),
        details: { cliRestore, cliCold },
      });
      budget.check('the clones');

      // Idle clones (no request on their disk) against one instance booted cold and idle at the point.
      const idle = disk('idle.img');
      const one = await hold(freshPlanFile, `${freshPlanFile}.mem`, idle, 1);
      let coldRss: number;
      try {
        coldRss = rollup(one.pids[0], 'Rss');
      } finally {
        await one.stop();
      }
      const clones = await hold(restorePlanFile, join(snap, 'memory'), idle, z.clones);
      let pss = 0;
      let cloneRss = 0;
      try {
        for (const pid of clones.pids) {
          pss += rollup(pid, 'Pss');
          cloneRss = Math.max(cloneRss, rollup(pid, 'Rss'));
        }
      } finally {
        await clones.stop();
      }
      rows.push({
        name: `${z.clones} clones PSS`, what: `summed PSS of ${z.clones} idle clones of that guest`, unit: 'KiB', direction: 'lower',
        tendril: pss, baseline: measured(coldRss, 'one cold instance', 'the RSS of one instance of the same guest booted cold and idle at the same point'),
        details: { maxCloneRssKiB: cloneRss, perClonePssKiB: pss / z.clones },
      });
      budget.check('the 512 MiB creation');

      // An idle 512 MiB guest: sparse, the file holds what the guest wrote, not its memory size.
      const idleSnap = join(TMP, 'idle512.snap');
      const idleMade = await createSnapshot({ out: idleSnap, at: 1, collectOutput: 1 << 16, run: runOptions({ memMiB: 512, guest: SERVICE, guestArgs: ['--solo5:quiet', '0'], devices: [storage(disk('boot512.img'))] }) });
      rows.push(...creationRows('an idle 512 MiB guest', idleMade));
      if (statSync(join(idleSnap, 'memory')).size !== 512 << 20) throw new Error('the idle guest\'s memory file does not span its memory');
    } finally {
      rmSync(TMP, { recursive: true, force: true });
    }
    return {
      rows,
      plots: [
        { kind: 'distribution', file: 'snapshot-serve-latency', title: 'Restore→exit through tendril serve vs a hello launch, same server (ms)', unit: 'ms', direction: 'lower', series: serveSeries },
      ],
    };
  },
};
