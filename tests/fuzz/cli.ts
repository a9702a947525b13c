// Generated `tendril run` command lines (abi.md §14, strict per D5/D6): option
// names and values from a grammar of near misses, device options of every
// shape, the guest in odd places. In-process, parseRunArgs must return or
// throw a TendrilError. For real launches against a valid guest the status is
// 0 (it ran) or 1 with one stderr line (refused); `--help` gives the usage
// and 1, `--version` two lines and 0, and `--x-exec-heap` may add its one
// WARNING line. Disk options only ever point at scratch files, /dev/null or
// paths that do not exist: a generated command line must not touch anything
// real.

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TendrilError } from '../../loader/errors.js';
import { parseRunArgs } from '../../supervisor/options.js';
import { guest, oneLine, Pool } from '../helpers.js';
import { launchChecked, looksLikeCrash } from './launch.js';
import { Rng } from './mutate.js';
import type { Finding } from './elf.js';

export interface CliScratch {
  /** A 64 KiB disk image the test_blk guest may write. */
  disk: string;
  dir: string;
  fifo: string;
  odd: string;
}

export function makeCliScratch(dir: string): CliScratch {
  mkdirSync(dir, { recursive: true });
  const disk = join(dir, 'disk.img');
  writeFileSync(disk, Buffer.alloc(64 << 10));
  const odd = join(dir, 'odd.img');
  writeFileSync(odd, Buffer.alloc(1563));
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const sub = join(dir, 'a dir');
  mkdirSync(sub, { recursive: true });
  return { disk, dir: sub, fifo, odd };
}

const MEM_VALUES = ['2', '1', '3', '64', '0', '-1', '2x', '', 'abc', '0x10', '1e3', ' 2', '2 ', '+2', '02', '65536', '65537',
  '99999999999999999999', '٢', '2.0', '4294967298', '-0'];
const NAMES = ['storage', 'service0', '', 'a'.repeat(67), 'a'.repeat(68), 'stor-age', 'storage ', 'ストレージ', 'Storage', 'storage=x', 's', '0'];
const FLAGS = ['--x-exec-heap', '--dumpable', '--x-exec-heapX', '--x-exec', '--help', '-h', '--version', '--', '-', '-x', '--mem',
  '--mem-size=2', '--MEM=2', '--net', '--block', '--block:', '--:x=y', '---mem=2', '--mem==2', '--mem=2=3', '--version=1'];

function deviceOption(rng: Rng, s: CliScratch): string {
  const kind = rng.pick(['block', 'block', 'block-ro', 'block-sector-size', 'net', 'net-mac', 'blk', 'BLOCK', '']);
  const nm = rng.chance(0.7) ? 'storage' : rng.pick(NAMES);
  let value: string;
  switch (kind) {
    case 'block':
    case 'block-ro':
      value = rng.pick([s.disk, s.disk, '/dev/null', '/nonexistent/disk.img', s.dir, s.fifo, s.odd, '', '@0', '@1', '@2', '@99999',
        '@-1', '@', '@abc', '@00000003', 'relative/disk.img', `${s.disk} `, `${s.disk}/x`]);
      break;
    case 'block-sector-size':
      value = rng.pick(['512', '4096', '1024', '0', '521', '256', '65536', '32768', 'x', '', '-512', '512.0', '0x200']);
      break;
    case 'net':
      value = rng.pick(['tap0', 'lo', 'a'.repeat(16), '', '@3', '@99999', 'x/y', '..', 'tap 0', 'tap100']);
      break;
    case 'net-mac':
      value = rng.pick(['02:00:00:00:00:01', 'zz:00:00:00:00:01', '', '02:00:00:00:00', '02-00-00-00-00-01', 'ff:ff:ff:ff:ff:ff']);
      break;
    default:
      value = rng.pick(['x', s.disk, '']);
  }
  const sep = rng.chance(0.93) ? '=' : rng.pick(['', '==', ':']);
  return `--${kind}:${nm}${sep}${value}`;
}

function randomWord(rng: Rng): string {
  switch (rng.int(5)) {
    case 0: return `--${rng.bytes(1 + rng.int(10)).toString('base64url')}`;
    case 1: return 'A'.repeat(1 + rng.int(20_000));
    case 2: return rng.pick(['é', '\u202e', '😀', '\t', ' ', '\\', '"', '$(id)', '%s%n']);
    case 3: return `-${rng.pick(['m', 'v', 'h', 'x'])}`;
    default: return rng.bytes(1 + rng.int(40)).toString('latin1').replace(/\0/g, '');
  }
}

export interface CliCase {
  index: number;
  argv: string[];
}

export function cliCase(seed: number, index: number, s: CliScratch): CliCase {
  const rng = new Rng(seed ^ 0x636c6931, index);
  const argv: string[] = [];
  const nopts = rng.int(5);
  for (let i = 0; i < nopts; i++) {
    const r = rng.int(10);
    if (r < 3) argv.push(`--mem=${rng.pick(MEM_VALUES)}`);
    else if (r < 7) argv.push(deviceOption(rng, s));
    else if (r < 9) argv.push(rng.pick(FLAGS));
    else argv.push(randomWord(rng));
  }
  const g = rng.int(20);
  if (g < 10) argv.push(guest('test_hello'));
  else if (g < 16) argv.push(guest('test_blk'));
  else if (g < 17) argv.push('/nonexistent/guest.spt');
  else if (g < 18) argv.push(s.dir);
  else if (g < 19) argv.push('');
  // else: no guest at all
  const nargs = rng.int(3);
  for (let i = 0; i < nargs; i++) argv.push(rng.chance(0.5) ? rng.pick(['--mem=2', '--solo5:quiet', 'Hello_Solo5', '--help']) : randomWord(rng));
  return { index, argv };
}

export interface CliSummary {
  cases: number;
  parsedOk: number;
  refusedInProcess: number;
  crashes: Finding[];
  launched: number;
  /** Real runs outside the contract: status not 0/1, or 1 without exactly one line. */
  badRuns: Finding[];
  hangs: Finding[];
  /** A crash-looking first run that did not repeat (reported, not counted). */
  unstable: Finding[];
  outcomes: Record<string, number>;
  ms: number;
}

const WARNING = /^tendril: WARNING: --x-exec-heap[^\n]*\n/m;

export async function runCliCampaign(o: { seed: number; cases: number; launches: number; concurrency: number; scratch: CliScratch; timeoutMs: number }): Promise<CliSummary> {
  const t0 = Date.now();
  const s: CliSummary = { cases: o.cases, parsedOk: 0, refusedInProcess: 0, crashes: [], launched: 0, badRuns: [], hangs: [], unstable: [], outcomes: {}, ms: 0 };
  const show = (c: CliCase) => `cli case #${c.index}: tendril run ${c.argv.map((a) => JSON.stringify(a.length > 80 ? `${a.slice(0, 80)}…(${a.length})` : a)).join(' ')}`;
  const kinds = new Map<number, string>();
  for (let i = 0; i < o.cases; i++) {
    const c = cliCase(o.seed, i, o.scratch);
    try {
      kinds.set(i, parseRunArgs(c.argv).kind);
      s.parsedOk++;
    } catch (e) {
      if (!(e instanceof TendrilError)) {
        s.crashes.push({ case: show(c), detail: `in-process: ${(e as Error)?.stack ?? String(e)}` });
        continue;
      }
      kinds.set(i, 'refused');
      s.refusedInProcess++;
    }
  }
  const pool = new Pool(o.concurrency);
  const sample = [...kinds.keys()].slice(0, o.launches);
  await Promise.all(sample.map((i) => pool.run(async () => {
    const c = cliCase(o.seed, i, o.scratch);
    const kind = kinds.get(i)!;
    const { r, unstable } = await launchChecked(['run', ...c.argv], { timeoutMs: o.timeoutMs });
    s.launched++;
    if (unstable) s.unstable.push({ case: show(c), detail: `first run: ${unstable.stderr.slice(0, 300)}` });
    const err = r.stderr.replace(WARNING, '');
    const seenAs = `status ${r.status}${r.timedOut ? ` (killed at the deadline as ${r.timedOut})` : ''}, stderr ${JSON.stringify(r.stderr.slice(0, 400))}`;
    const key = r.timedOut ? `timeout:${r.timedOut}` : `${kind}→${r.signal ?? r.status}`;
    s.outcomes[key] = (s.outcomes[key] ?? 0) + 1;
    if (r.timedOut === 'guest') return; // a guest that outlived the deadline: not tendril's hang
    if (r.timedOut) {
      s.hangs.push({ case: show(c), detail: seenAs });
      return;
    }
    if (looksLikeCrash(r.stderr) || r.signal) {
      s.crashes.push({ case: show(c), detail: seenAs });
      return;
    }
    let ok: boolean;
    if (kind === 'help') ok = r.status === 1 && /^usage: /.test(err);
    else if (kind === 'version') ok = r.status === 0 && /^tendril tender, version .*\nABI version 2\n$/.test(err);
    else if (kind === 'refused') ok = r.status === 1 && oneLine(err) && r.stdout === '';
    else if (r.status === 0) ok = err === '';
    else if (r.status === 1) ok = oneLine(err) ? r.stdout === '' : err === '' && /Solo5/.test(r.stdout); // refused, or the guest's own exit 1
    else ok = false;
    if (!ok) {
      s.badRuns.push({ case: show(c), detail: `parsed as ${kind}; ${seenAs}` });
    }
  })));
  s.ms = Date.now() - t0;
  return s;
}
