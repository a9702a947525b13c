// Record and replay benchmark (docs/record-replay.md, "Figures"): what
// recording costs a guest, how big a recording is, how fast a replay runs,
// each against a baseline measured in the same run:
//
//  - block: test_blk on a 64 MiB image (26,218 block calls), recorded vs not;
//    the cost per call with launch cost subtracted (a 1 MiB image run is
//    the zero), as bench/block.ts does; replay of the recording vs recording;
//  - net: a 100,000-echo ping flood, guest and ping on one CPU (as the
//    "same CPU" net bench), recorded vs not; replay vs recording;
//  - yields: a guest that yields for 5 s in all (test_time), replayed;
//  - interception: one system call intercepted by each mechanism a
//    recorder could use (bench/tools/intercept.c) vs the plain call.
//
// Everything runs in a namespace and a scratch directory made for the run
// and removed after it. --quick: a 4 MiB image, 2,000 echoes, 100 short
// yields, fewer intercepted calls; one round each.

import { spawnSync } from 'node:child_process';
import { rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openRecording } from '../loader/recording.js';
import { guest, TENDRIL } from '../tests/helpers.js';
import { guestWithFlood, withNetns, type Netns } from '../tests/netns.js';
import { cTool } from './ctool.js';
import { makeImage, scratchDir } from './scratch.js';
import { makeContext, median, msSince, rounds, type Bench, type BenchContext, type FigureRow } from './common.js';

const FLOOD_DEADLINE_S = 150;
type BenchResult = FigureRow;

/** Runs `tendril ARGS` to completion; wall ms, and the output. */
function timed(args: string[], what: string, ok: (out: string) => boolean, timeoutMs = 120_000): { ms: number; out: string } {
  const start = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [TENDRIL, ...args], { encoding: 'latin1', timeout: timeoutMs, maxBuffer: 16 << 20 });
  const ms = msSince(start);
  if (r.error) throw new Error(`${what}: ${r.error.message}`);
  if (r.status !== 0 || !ok(r.stdout)) throw new Error(`${what}: status ${r.status ?? r.signal}: ${r.stderr}${r.stdout.slice(-300)}`);
  return { ms, out: r.stdout };
}

const pairsOf = (out: string) => Number(/^(\d+) blocks written and verified$/m.exec(out)?.[1] ?? NaN);

async function block(dir: string, ctx: BenchContext): Promise<BenchResult[]> {
  const big = join(dir, 'big.img');
  const small = join(dir, 'small.img');
  const bigMiB = ctx.pick(64, 16);
  makeImage(big, bigMiB << 20);
  makeImage(small, 1 << 20);
  const recBig = join(dir, 'big.rec');
  const recSmall = join(dir, 'small.rec');
  const blk = (img: string, rec?: string) => ['run', ...(rec ? [`--record=${rec}`] : []), '--mem=2', `--block:storage=${img}`, guest('test_blk')];
  const okBlk = (o: string) => /SUCCESS/.test(o);
  timed(blk(big), 'warm-up', okBlk);
  const ms = { plain: { big: [] as number[], small: [] as number[] }, rec: { big: [] as number[], small: [] as number[] }, replay: { big: [] as number[], small: [] as number[] } };
  let pairs = { big: 0, small: 0 };
  const reps = await rounds(ctx.budget, ctx.pick(3, 2), () => {
    const b = timed(blk(big), 'test_blk 64 MiB', okBlk);
    const s = timed(blk(small), 'test_blk 1 MiB', okBlk);
    pairs = { big: pairsOf(b.out), small: pairsOf(s.out) };
    ms.plain.big.push(b.ms);
    ms.plain.small.push(s.ms);
    ms.rec.big.push(timed(blk(big, recBig), 'recorded test_blk 64 MiB', okBlk).ms);
    ms.rec.small.push(timed(blk(small, recSmall), 'recorded test_blk 1 MiB', okBlk).ms);
    ms.replay.big.push(timed(['replay', '--quiet', recBig], 'replay 64 MiB', () => true).ms);
    ms.replay.small.push(timed(['replay', '--quiet', recSmall], 'replay 1 MiB', () => true).ms);
  });
  const calls = 2 * (pairs.big - pairs.small);
  // Launch cost cancels out in the difference; when noise swamps a difference (a short --quick run), the raw wall time per call stands in.
  const rawOnly = new Set<string>();
  const perCall = (k: 'plain' | 'rec' | 'replay') => {
    const d = ((median(ms[k].big) - median(ms[k].small)) * 1e6) / calls;
    if (d > 0) return d;
    rawOnly.add(k);
    return (median(ms[k].big) * 1e6) / (2 * pairs.big);
  };
  const size = statSync(recBig).size;
  const bigCalls = 2 * pairs.big;
  const details = {
    blockCallsBig: bigCalls, callsTimed: calls, reps, wallMs: ms,
    nsPerCall: { unrecorded: perCall('plain'), recorded: perCall('rec'), replayed: perCall('replay') }, launchIncluded: [...rawOnly],
    recordingBytes: size, bytesPerBlockCall: size / bigCalls,
  };
  return [
    {
      name: 'record block',
      what: `test_blk recorded on a ${bigMiB} MiB image (${bigCalls.toLocaleString('en-US')} block calls), block calls per second, launch cost subtracted; ` +
        `${(size / bigCalls).toFixed(0)} bytes of recording per block call`,
      unit: 'calls/s', direction: 'higher', tendril: 1e9 / perCall('rec'),
      baseline: { value: 1e9 / perCall('plain'), measured: true, label: 'unrecorded', what: 'the same test_blk run unrecorded, same image, same run' },
      details,
    },
    {
      name: 'replay block',
      what: 'that recording replayed (no disk), block calls per second, launch cost subtracted',
      unit: 'calls/s', direction: 'higher', tendril: 1e9 / perCall('replay'),
      baseline: { value: 1e9 / perCall('rec'), measured: true, label: 'recording', what: 'the recording run of the same test_blk, same run' },
      details,
    },
  ];
}

async function net(dir: string, ctx: BenchContext): Promise<BenchResult[]> {
  const ECHOES = ctx.pick(100_000, 2_000);
  const file = join(dir, 'flood.rec');
  const rate = (p: { received: number; timeMs: number } | undefined, what: string) => {
    if (!p || p.received !== ECHOES || p.timeMs <= 0) throw new Error(`${what}: ${JSON.stringify(p)}`);
    return (p.received * 1000) / p.timeMs;
  };
  const flood = async (ns: Netns, rec?: string) => {
    const r = await guestWithFlood(ns, {
      tendrilArgs: ['run', ...(rec ? [`--record=${rec}`] : []), '--mem=2', '--net:service0=tap100', guest('test_net'), String(ECHOES)],
      guestCpu: 0,
      floods: [{ addr: '10.0.0.2', count: ECHOES, deadlineS: FLOOD_DEADLINE_S, cpu: 0 }],
      timeoutMs: (FLOOD_DEADLINE_S + 30) * 1000,
    });
    if (r.guest.status !== 0) throw new Error(`test_net${rec ? ' recorded' : ''}: status ${r.guest.status}: ${r.guest.stderr}`);
    return rate(r.parsed[0], rec ? 'recorded flood' : 'flood');
  };
  const plain: number[] = [];
  const recorded: number[] = [];
  await withNetns(undefined, [{ name: 'tap100', addr: '10.0.0.1/24' }], async (ns) => {
    await guestWithFlood(ns, {
      tendrilArgs: ['run', '--mem=2', '--net:service0=tap100', guest('test_net'), '100'],
      floods: [{ addr: '10.0.0.2', count: 100, deadlineS: 10 }],
    });
    await rounds(ctx.budget, ctx.pick(2, 1), async () => {
      plain.push(await flood(ns));
      recorded.push(await flood(ns, file));
    });
  });
  const rec = openRecording(file);
  const recordedMs = Number(rec.trailer.duration_ns) / 1e6;
  // The replay, on one CPU as the recording was; its launch (Node, checking the file) measured apart.
  const hello = join(dir, 'hello.rec');
  timed(['run', `--record=${hello}`, '--mem=2', guest('test_hello')], 'hello recorded', () => true);
  const launch = median([0, 1, 2].map(() => timed(['replay', '--quiet', hello], 'replay hello', () => true).ms));
  const replayWall = median([0, 1].map(() => {
    const start = process.hrtime.bigint();
    const r = spawnSync('taskset', ['-c', '0', process.execPath, TENDRIL, 'replay', '--quiet', file], { encoding: 'latin1', timeout: 300_000 });
    if (r.status !== 0) throw new Error(`replay of the flood: ${r.status ?? r.signal}: ${r.stderr}`);
    return msSince(start);
  }));
  const checkMs = (() => {
    const start = process.hrtime.bigint();
    openRecording(file);
    return msSince(start);
  })();
  const replayMs = replayWall - launch - checkMs;
  const details = {
    echoes: ECHOES, unrecordedRates: plain, recordedRates: recorded, recordingBytes: rec.size, bytesPerEcho: rec.size / ECHOES,
    events: Number(rec.trailer.events), recordedGuestMs: recordedMs, replayWallMs: replayWall, replayLaunchMs: launch, fileCheckMs: checkMs,
    replayMs, counts: rec.counts.byName,
  };
  return [
    {
      name: 'record net',
      what: `ping -f of ${ECHOES.toLocaleString('en-US')} echoes to test_net recorded (guest, monitor and ping on CPU 0), echo replies per second; ` +
        `${(rec.size / ECHOES).toFixed(0)} bytes of recording per echo`,
      unit: 'replies/s', direction: 'higher', tendril: median(recorded),
      baseline: { value: median(plain), measured: true, label: 'unrecorded', what: 'the same flood answered by test_net unrecorded, same namespace, same run' },
      details,
    },
    {
      name: 'replay net',
      what: `that recording replayed (no namespace), echoes per second (its launch and file check subtracted)`,
      unit: 'echoes/s', direction: 'higher', tendril: (ECHOES * 1000) / replayMs,
      baseline: { value: (ECHOES * 1000) / recordedMs, measured: true, label: 'recording', what: `the recording run of the same flood, first instruction to end (${Math.round(recordedMs)} ms)` },
      details,
    },
  ];
}

function yields(dir: string, ctx: BenchContext): BenchResult {
  const file = join(dir, 'time.rec');
  // test_time sleeps five 1 s yields; --quick: test_rr_clock's 100 yields of 1 ms.
  const args = ctx.pick([guest('test_time')], [guest('test_rr_clock'), '100', 'quiet']);
  timed(['run', `--record=${file}`, '--mem=2', ...args], 'yields recorded', (o) => /SUCCESS/.test(o));
  const recordedMs = Number(openRecording(file).trailer.duration_ns) / 1e6;
  const ms = median([0, 1, 2].map(() => timed(['replay', '--quiet', file], 'yields replayed', () => true).ms));
  return {
    name: 'replay yields',
    what: `${ctx.quick ? 'test_rr_clock (100 yields of 1 ms)' : 'test_time (five 1 s yields)'} replayed: wall time of \`tendril replay\`, its launch included`,
    unit: 'ms', direction: 'lower', tendril: ms,
    baseline: { value: recordedMs, measured: true, label: 'recording', what: 'the recorded run, first instruction to end' },
    details: { recordedMs, replayMs: ms },
  };
}

function intercept(ctx: BenchContext): BenchResult[] {
  const tool = cTool('intercept');
  const ns = (mode: string) => {
    const r = spawnSync(tool, [mode, String(ctx.pick(20_000, 2_000))], { encoding: 'utf8', timeout: 60_000 });
    const m = new RegExp(`^${mode} (\\d+)$`, 'm').exec(r.stdout);
    if (!m) throw new Error(`intercept ${mode}: ${r.stdout}${r.stderr}`);
    return Number(m[1]);
  };
  const plain = median([0, 1, 2].map(() => ns('plain')));
  const modes: [string, string][] = [
    ['ptrace1', 'SECCOMP_RET_TRACE stop answered by a ptrace tracer (what tendril records and replays with)'],
    ['ptrace2', 'SECCOMP_RET_TRACE stop, the call run, its exit stop read (two stops)'],
    ['unotify', 'seccomp user notification answered by a supervisor'],
    ['unotify-sync', 'seccomp user notification with SYNC_WAKE_UP'],
    ['sigsys', 'SECCOMP_RET_TRAP with a SIGSYS handler in the process'],
    ['rdtsc', 'rdtsc trapped (PR_TSC_SIGSEGV) and emulated by a ptrace tracer'],
  ];
  return modes.map(([mode, what]) => {
    const v = median([0, 1, 2].map(() => ns(mode)));
    return {
      name: `intercept ${mode}`, what: `one call: ${what}`, unit: 'ns', direction: 'lower', tendril: v,
      baseline: { value: plain, measured: true, label: 'plain call', what: 'the same getppid() made plainly, same run, one CPU' },
      details: { ns: v, plainNs: plain },
    };
  });
}

export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const dir = scratchDir('tendril-bench-rec-');
  try {
    const out: BenchResult[] = [];
    out.push(...intercept(ctx));
    out.push(...await block(dir, ctx));
    out.push(yields(dir, ctx));
    out.push(...await net(dir, ctx));
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const bench: Bench = {
  name: 'record',
  title: 'Record and replay: what recording costs, what a replay costs, what intercepting a call costs',
  budgetMs: { full: 240_000, quick: 60_000 },
  run: async (ctx) => ({
    rows: await run(ctx),
    plots: [{ kind: 'bars', file: 'record-intercept', title: 'One system call, intercepted each way (ns, lower is better)',
      rows: ['intercept ptrace1', 'intercept ptrace2', 'intercept unotify', 'intercept unotify-sync', 'intercept sigsys', 'intercept rdtsc'] }],
  }),
};

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { rows } = await bench.run(makeContext(bench, process.argv.includes('--quick')));
  for (const r of rows as FigureRow[]) console.log(`${r.name}: ${r.what}: ${r.tendril.toFixed(1)} ${r.unit} vs ${r.baseline.value.toFixed(1)}`);
  console.log(JSON.stringify(rows.map((r) => ({ name: r.name, details: r.details })), null, 2));
}
