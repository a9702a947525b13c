// The benchmarks' own C programs (bench/tools/*.c), built into bench/tmp when
// the source is newer than the binary. Built to a private name and renamed
// into place, so two runs in one checkout never execute a half-written file.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../tests/helpers.js';
import { BENCH_TMP as TMP } from './scratch.js';

const TOOLS = join(ROOT, 'bench/tools');

/** bench/tmp/NAME, built from bench/tools/NAME.c with `gcc -O2 -Wall FLAGS`. */
export function cTool(name: string, flags: string[] = []): string {
  const src = join(TOOLS, `${name}.c`);
  const out = join(TMP, name);
  if (existsSync(out) && statSync(out).mtimeMs > statSync(src).mtimeMs) return out;
  mkdirSync(TMP, { recursive: true });
  const tmp = `${out}.${process.pid}`;
  const r = spawnSync('gcc', ['-O2', '-Wall', ...flags, '-o', tmp, src], { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`gcc ${src}: ${r.error?.message ?? r.stderr.trim()}`);
  renameSync(tmp, out);
  return out;
}
