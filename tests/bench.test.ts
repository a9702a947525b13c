// `npm run bench`: the report tells the truth about itself. A --quick run of
// every module into a temp dir yields a complete result (every module's rows,
// a direction on every figure, counts where counts are due, quoted figures
// marked with their source, one SVG and one PNG per plot); the report's
// rendering rules hold on rows made up for the purpose; bad arguments get one
// line. Figures are never asserted on: speed belongs to the bench itself.

import test from 'ava';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Row } from '../bench/common.js';
import { MODULES } from '../bench/modules.js';
import { better, markdown, tableRow, type Outcome } from '../bench/report.js';
import { describeMachine } from '../bench/machine.js';
import { oneLine, ROOT, runCmdAsync, withTempDir } from './helpers.js';

const RUN = join(ROOT, 'dist/bench/run.js');

interface JsonRow {
  name: string;
  what: string;
  unit?: string;
  direction?: string;
  tendril?: number;
  baseline?: { value: number; measured?: boolean; quoted?: boolean; source?: string; what: string };
  ratio?: number;
  counts?: Record<string, number>;
  asExpected?: boolean;
}
interface JsonModule { name: string; rows: JsonRow[]; plots: { title: string; svg: string; png: string }[]; failure?: string }

/** Width and height from a PNG's IHDR chunk, or undefined if it is not a PNG. */
function pngSize(file: string): { w: number; h: number } | undefined {
  const b = readFileSync(file);
  if (b.length < 24 || b.toString('latin1', 1, 4) !== 'PNG' || b.toString('latin1', 12, 16) !== 'IHDR') return undefined;
  return { w: b.readUInt32BE(16), h: b.readUInt32BE(20) };
}

test('npm run bench -- --quick writes a complete report: every module, a direction per row, counts for leaks, quoted figures marked, SVG + PNG per plot', async (t) => {
  t.timeout(300_000); // a hang bound only: the quick run takes well under a minute or two
  await withTempDir(async (dir) => {
    const out = join(dir, 'result');
    const r = await runCmdAsync(process.execPath, [RUN, '--quick', `--out=${out}`], { timeoutMs: 280_000 });
    t.is(r.status, 0, `bench --quick failed:\n${r.stdout.slice(-3000)}\n${r.stderr.slice(-2000)}`);
    t.notRegex(r.stdout, /FAILED/);

    const json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { mode: string; machine: { cores: number }; modules: JsonModule[]; failures: unknown[] };
    t.is(json.mode, 'quick');
    t.deepEqual(json.failures, []);
    t.true(json.machine.cores > 0);
    t.deepEqual(json.modules.map((m) => m.name), MODULES.map((m) => m.name), 'every module ran, in order');
    const report = readFileSync(join(out, 'report.md'), 'utf8');
    t.notRegex(report, /higher is better for both/);
    t.regex(report, /quick smoke run/);

    const rows = json.modules.flatMap((m) => m.rows);
    for (const m of json.modules) {
      t.is(m.failure, undefined, m.name);
      t.true(m.rows.length > 0, `${m.name} has rows`);
      t.true(m.plots.length > 0, `${m.name} has plots`);
    }
    for (const row of rows) {
      const line = report.split('\n').find((l) => l.startsWith(`| **${row.name}**:`));
      t.truthy(line, `report.md has a table row for ${row.name}`);
      if (row.counts) {
        t.is(row.direction, undefined);
        t.is(row.ratio, undefined, `${row.name}: counts, no ratio`);
        t.is(typeof row.asExpected, 'boolean');
        for (const k of Object.keys(row.counts)) t.true(line!.includes(`${k}: ${row.counts[k]}`), `${row.name} prints ${k}`);
        t.true(line!.includes('n/a (counts)'));
        continue;
      }
      t.true(row.direction === 'lower' || row.direction === 'higher', `${row.name} has a direction`);
      t.true(line!.includes(`| ${row.direction} |`), `${row.name}'s table row states its direction`);
      t.true(row.tendril! > 0 && row.baseline!.value > 0, `${row.name} has figures`);
      t.is(row.ratio, row.tendril! / row.baseline!.value);
      t.true(row.baseline!.measured === true || (row.baseline!.quoted === true && !!row.baseline!.source), `${row.name}: measured, or quoted with a source`);
      if (row.baseline!.quoted) t.true(line!.includes('quoted'), `${row.name}'s quoted baseline is marked in the table`);
    }

    // The rows the issues ask for by name.
    const byName = new Map(rows.map((r) => [r.name, r]));
    for (const name of ['cold', 'cold, no extra CA', 'warm p50', 'rate c=2', 'soak leaks', 'soak RSS', 'rss', 'rss vs solo5-spt', 'net (same CPU)', 'block']) {
      t.truthy(byName.get(name), `row ${name}`);
    }
    t.true(byName.get('rss')!.baseline!.measured, 'the rss baseline is measured here');
    t.regex(byName.get('rss vs solo5-spt')!.baseline!.source!, /docs\/abi\.md §1/);
    t.truthy(byName.get('soak leaks')!.counts);

    // One SVG and one PNG per plot, nothing else, each a real picture linked from the report.
    const plots = json.modules.flatMap((m) => m.plots);
    const files = readdirSync(out);
    t.is(files.filter((f) => f.endsWith('.svg')).length, plots.length);
    t.is(files.filter((f) => f.endsWith('.png')).length, plots.length);
    for (const p of plots) {
      t.true(statSync(join(out, p.svg)).size > 0);
      t.regex(readFileSync(join(out, p.svg), 'utf8').slice(0, 200), /^<svg /, p.svg);
      const size = pngSize(join(out, p.png));
      t.truthy(size && size.w > 100 && size.h > 100, `${p.png} is a PNG picture`);
      t.true(report.includes(`](${p.svg})`), `report.md shows ${p.svg}`);
    }
    // Every figure row is pictured: the SVGs name every row.
    const svgText = plots.map((p) => readFileSync(join(out, p.svg), 'utf8')).join('\n');
    for (const row of rows.filter((r) => !r.counts)) t.true(svgText.includes(`>${row.name.replace(/&/g, '&amp;')}`), `${row.name} is plotted`);
  });
});

test('bench report: direction per row, ratio only for figures, counts for counts, quoted figures named as such', (t) => {
  const rows: Row[] = [
    { name: 'lat', what: 'latency', unit: 'ms', direction: 'lower', tendril: 2, baseline: { value: 1, measured: true, what: 'C' } },
    { name: 'rate', what: 'rate', unit: '/s', direction: 'higher', tendril: 2, baseline: { value: 1, measured: true, what: 'C' } },
    { name: 'mem', what: 'rss', unit: 'KiB', direction: 'lower', tendril: 40, baseline: { value: 1434, quoted: true, what: 'ref', source: 'docs/abi.md §1' } },
    { name: 'leaks', what: 'left behind', counts: { fds: 0, zombies: 2 } },
  ];
  const [lat, rate, mem, leaks] = rows.map(tableRow);
  t.regex(lat, /\| lower \| 2\.00 ms \| 1\.00 ms \| 2\.00 \| baseline \|$/);
  t.regex(rate, /\| higher \| 2\.00 \/s \| 1\.00 \/s \| 2\.00 \| tendril \|$/);
  t.regex(mem, /1,434 KiB \(quoted: docs\/abi\.md §1\) \| 0\.03 \(vs a quoted figure\)/);
  t.regex(leaks, /fds: 0, zombies: 2/);
  t.regex(leaks, /n\/a \(counts\)/);
  t.regex(leaks, /not as expected.*zombies: 2 \(expected 0\)/);
  t.notRegex(leaks, /0\.000/);
  t.is(better({ name: 'x', what: '', unit: 'ms', direction: 'lower', tendril: 1.01, baseline: { value: 1, measured: true, what: '' } }), 'even');

  const outcome: Outcome = { date: new Date(0), quick: false, machine: describeMachine(), load: { start: 0.5, end: 0.7 }, modules: [{ name: 'm', title: 'M', budgetMs: 1000, tookMs: 10, rows, plots: [] }], failures: [{ module: 'n', error: 'boom' }] };
  const md = markdown(outcome);
  t.regex(md, /\*\*mem\*\*: quoted, not measured in this run: ref, 1,434 KiB\. Source: docs\/abi\.md §1\./);
  t.regex(md, /\*\*lat\*\*: measured in this run: C\./);
  t.regex(md, /\| \*\*n\*\*: FAILED: boom \|/);
});

test('npm run bench: an unknown argument or module is one line and exit 2, and writes nothing', async (t) => {
  await withTempDir(async (dir) => {
    for (const args of [['--bogus'], ['--only=nosuch'], ['extra']]) {
      const r = await runCmdAsync(process.execPath, [RUN, ...args, `--out=${join(dir, 'r')}`], { timeoutMs: 60_000 });
      t.is(r.status, 2, args.join(' '));
      t.true(oneLine(r.stderr), r.stderr);
      t.regex(r.stderr, /^bench: .*usage: npm run bench/);
    }
    t.false(existsSync(join(dir, 'r')));
  });
});
