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
// and removed after it.

import { spawnSync } from 'node:child_process';
import { accessSync, closeSync, constants as fsc, existsSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { openRecording } from '../loader/recording.js';
import { guest, ROOT, TENDRIL } from '../tests/helpers.js';
import { guestWithFlood, withNetns, type Netns } from '../tests/netns.js';
import { Budget, median, msSince, rounds, type Bench, type BenchResult } from './common.js';

const TMP = join(ROOT, 'bench/tmp');
const INTERCEPT_SRC = join(ROOT, 'bench/tools/intercept.c');
const INTERCEPT = join(TMP, 'intercept');
const ECHOES = 100_000;
const FLOOD_DEADLINE_S = 150;

function scratchDir(): string {
  for (const base of ['/dev/shm', TMP]) {
    try {
      mkdirSync(base, { recursive: true });
      accessSync(base, fsc.W_OK);
      return mkdtempSync(join(base, 'tendril-bench-rec-'));
    } catch {
      // the next one
    }
  }
  throw new Error('no writable scratch directory');
}

function makeImage(path: string, size: number): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}

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

async function block(dir: string, budget: Budget): Promise<BenchResult[]> {
  const big = join(dir, 'big.img');
  const small = join(dir, 'small.img');
  makeImage(big, 64 << 20);
  makeImage(small, 1 << 20);
  const recBig = join(dir, 'big.rec');
  const recSmall = join(dir, 'small.rec');
  const blk = (img: string, rec?: string) => ['run', ...(rec ? [`--record=${rec}`] : []), '--mem=2', `--block:storage=${img}`, guest('test_blk')];
  const okBlk = (o: string) => /SUCCESS/.test(o);
  timed(blk(big), 'warm-up', okBlk);
  const ms = { plain: { big: [] as number[], small: [] as number[] }, rec: { big: [] as number[], small: [] as number[] }, replay: { big: [] as number[], small: [] as number[] } };
  let pairs = { big: 0, small: 0 };
  const reps = await rounds(budget, 3, () => {
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
  const perCall = (k: 'plain' | 'rec' | 'replay') => ((median(ms[k].big) - median(ms[k].small)) * 1e6) / calls;
  const size = statSync(recBig).size;
  const bigCalls = 2 * pairs.big;
  const details = {
    blockCallsBig: bigCalls, callsTimed: calls, reps, wallMs: ms,
    nsPerCall: { unrecorded: perCall('plain'), recorded: perCall('rec'), replayed: perCall('replay') },
    recordingBytes: size, bytesPerBlockCall: size / bigCalls,
  };
  return [
    {
      name: 'record block',
      what: `test_blk on a 64 MiB image (${bigCalls.toLocaleString('en-US')} block calls), block calls per second recorded vs not, launch cost subtracted; ` +
        `${(size / bigCalls).toFixed(0)} bytes of recording per block call`,
      unit: 'calls/s', tendril: 1e9 / perCall('rec'), baseline: 1e9 / perCall('plain'), ratio: perCall('plain') / perCall('rec'),
      baselineIs: 'the same test_blk run unrecorded, same image, same run', details,
    },
    {
      name: 'replay block',
      what: 'test_blk replayed (no disk) vs recorded, block calls per second, launch cost subtracted',
      unit: 'calls/s', tendril: 1e9 / perCall('replay'), baseline: 1e9 / perCall('rec'), ratio: perCall('rec') / perCall('replay'),
      baselineIs: 'the recording run of the same test_blk', details,
    },
  ];
}

async function net(dir: string, budget: Budget): Promise<BenchResult[]> {
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
    await rounds(budget, 2, async () => {
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
      what: `ping -f of ${ECHOES.toLocaleString('en-US')} echoes (guest, monitor and ping on CPU 0), recorded vs not; ${(rec.size / ECHOES).toFixed(0)} bytes of recording per echo`,
      unit: 'replies/s', tendril: median(recorded), baseline: median(plain), ratio: median(recorded) / median(plain),
      baselineIs: 'the same flood answered by test_net unrecorded, same namespace, same run', details,
    },
    {
      name: 'replay net',
      what: `that recording replayed (no namespace), echoes per second, vs the recorded run (its ${Math.round(recordedMs)} ms, first instruction to end)`,
      unit: 'echoes/s', tendril: (ECHOES * 1000) / replayMs, baseline: (ECHOES * 1000) / recordedMs, ratio: recordedMs / replayMs,
      baselineIs: 'the recording run of the same flood (guest time)', details,
    },
  ];
}

function yields(dir: string): BenchResult {
  const file = join(dir, 'time.rec');
  timed(['run', `--record=${file}`, '--mem=2', guest('test_time')], 'test_time recorded', (o) => /SUCCESS/.test(o));
  const recordedMs = Number(openRecording(file).trailer.duration_ns) / 1e6;
  const ms = median([0, 1, 2].map(() => timed(['replay', '--quiet', file], 'test_time replayed', () => true).ms));
  return {
    name: 'replay yields',
    what: 'test_time (five 1 s yields) replayed, wall time of `tendril replay` with its launch (lower is better)',
    unit: 'ms', tendril: ms, baseline: recordedMs, ratio: ms / recordedMs,
    baselineIs: 'the recorded run (first instruction to end)', details: { recordedMs, replayMs: ms },
  };
}

function intercept(): BenchResult[] {
  mkdirSync(TMP, { recursive: true });
  if (!existsSync(INTERCEPT) || statSync(INTERCEPT).mtimeMs < statSync(INTERCEPT_SRC).mtimeMs) {
    const r = spawnSync('gcc', ['-O2', '-Wall', '-o', INTERCEPT, INTERCEPT_SRC], { encoding: 'utf8' });
    if (r.error || r.status !== 0) throw new Error(`gcc ${INTERCEPT_SRC}: ${r.error?.message ?? r.stderr}`);
  }
  const ns = (mode: string) => {
    const r = spawnSync(INTERCEPT, [mode, '20000'], { encoding: 'utf8', timeout: 60_000 });
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
      name: `intercept ${mode}`, what: `one call: ${what} (lower is better)`, unit: 'ns', tendril: v, baseline: plain, ratio: v / plain,
      baselineIs: 'the same getppid() made plainly, same run, one CPU', details: { ns: v, plainNs: plain },
    };
  });
}

export async function run(): Promise<BenchResult[]> {
  const dir = scratchDir();
  try {
    const out: BenchResult[] = [];
    out.push(...intercept());
    out.push(...await block(dir, new Budget('record block', 90_000)));
    out.push(yields(dir));
    out.push(...await net(dir, new Budget('record net', 200_000)));
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const bench: Bench = { name: 'record', run };

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const results = await run();
  for (const r of results) console.log(`${r.name}: ${r.what}: ${r.tendril.toFixed(1)} ${r.unit} vs ${r.baseline.toFixed(1)} (ratio ${r.ratio.toFixed(3)})`);
  console.log(JSON.stringify(results.map((r) => ({ name: r.name, details: r.details })), null, 2));
}
