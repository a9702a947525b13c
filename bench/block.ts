// Block throughput benchmark: test_blk under tendril against bench/tools/blkio.c,
// a plain host process doing the same pwrite/pread pairs (same image, same
// 512-byte blocks, same per-block pattern fill and compare) without a sandbox.
//
// Both are timed from outside, launch included; each also runs on a 1 MiB
// image, and the difference between the big and the small run is divided by
// the difference in block calls, so launch cost (Node + filter compile for
// tendril, ~1 ms for blkio) cancels out and what remains is the cost of the
// block calls themselves. The raw wall times are kept in the JSON as well.
// --quick uses a 128 MiB image and 3 rounds (fewer, and launch noise can
// outweigh the block calls).

import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { guest, TENDRIL } from '../tests/helpers.js';
import { cTool } from './ctool.js';
import { makeImage, scratchDir } from './scratch.js';
import { Budget, makeContext, median, msSince, rounds, type Bench, type BenchContext, type FigureRow } from './common.js';

const BLOCK = 512;
const SMALL = 1 << 20;

/** Runs one side on one image; returns wall ms and the block pairs it reported. */
function timed(cmd: string, args: string[], what: string): { ms: number; pairs: number } {
  const start = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { encoding: 'latin1', timeout: 20_000, maxBuffer: 1 << 20 });
  const ms = msSince(start);
  if (r.error) throw new Error(`${what}: ${r.error.message}`);
  const m = /^(\d+) blocks written and verified$/m.exec(r.stdout);
  if (r.status !== 0 || !m) throw new Error(`${what}: status ${r.status ?? r.signal}: ${r.stderr}${r.stdout.slice(-500)}`);
  return { ms, pairs: Number(m[1]) };
}

export async function run(ctx: BenchContext): Promise<FigureRow[]> {
  const budget = new Budget('block', ctx.pick(50_000, 15_000)); // rounds; warm-up and image set-up come on top
  const bigBytes = ctx.pick(1024, 128) << 20;
  const maxReps = ctx.pick(7, 3);
  // The guests' optimisation flags, so both sides run the same loop code.
  const blkio = cTool('blkio', ['-fno-tree-loop-distribute-patterns']);
  const dir = scratchDir('tendril-bench-');
  try {
    const big = join(dir, 'big.img');
    const small = join(dir, 'small.img');
    makeImage(big, bigBytes);
    makeImage(small, SMALL);
    const sides = {
      tendril: (img: string) => timed(process.execPath, [TENDRIL, 'run', '--mem=2', `--block:storage=${img}`, guest('test_blk')], `tendril test_blk ${img}`),
      baseline: (img: string) => timed(blkio, [img, String(BLOCK)], `blkio ${img}`),
    };
    // Warm-up: allocates the image's pages and pages in both programs.
    sides.baseline(big);
    sides.tendril(big);
    sides.tendril(small);
    const ms = { tendril: { big: [] as number[], small: [] as number[] }, baseline: { big: [] as number[], small: [] as number[] } };
    let pairs = { big: 0, small: 0 };
    const reps = await rounds(budget, maxReps, () => {
      for (const side of ['tendril', 'baseline'] as const) {
        const b = sides[side](big);
        const s = sides[side](small);
        ms[side].big.push(b.ms);
        ms[side].small.push(s.ms);
        pairs = { big: b.pairs, small: s.pairs };
      }
    });
    const calls = 2 * (pairs.big - pairs.small);
    const perCallNs = (side: 'tendril' | 'baseline') => ((median(ms[side].big) - median(ms[side].small)) * 1e6) / calls;
    const mibps = (side: 'tendril' | 'baseline') => (calls * BLOCK) / (perCallNs(side) * calls / 1e9) / (1 << 20);
    const tendril = mibps('tendril');
    const baseline = mibps('baseline');
    const result: FigureRow = {
      name: 'block',
      what: `test_blk, ${BLOCK}-byte pwrite+pread on a ${bigBytes >> 20} MiB image, launch cost subtracted, throughput`,
      unit: 'MiB/s',
      direction: 'higher',
      tendril,
      baseline: {
        value: baseline,
        measured: true,
        label: 'plain C process',
        what: 'bench/tools/blkio.c: the same calls, block size, pattern work and image, as a plain process',
      },
      details: {
        blockSize: BLOCK,
        imageBytes: { big: bigBytes, small: SMALL },
        blockPairs: pairs,
        callsTimed: calls,
        reps,
        nsPerCall: { tendril: perCallNs('tendril'), baseline: perCallNs('baseline') },
        wallMs: ms,
        rawWallNsPerCall: {
          tendril: (median(ms.tendril.big) * 1e6) / (2 * pairs.big),
          baseline: (median(ms.baseline.big) * 1e6) / (2 * pairs.big),
        },
        scratch: dir.startsWith('/dev/shm') ? 'tmpfs (/dev/shm)' : 'bench/tmp',
      },
    };
    return [result];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export const bench: Bench = {
  name: 'block',
  title: 'Block I/O: test_blk',
  budgetMs: { full: 100_000, quick: 30_000 },
  run: async (ctx) => ({ rows: await run(ctx) }),
};

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await bench.run(makeContext(bench, process.argv.includes('--quick'))), null, 2));
}
