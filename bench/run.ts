// `npm run bench [-- --quick] [-- --out=DIR] [-- --only=NAME,…]`: runs every
// benchmark module in turn and writes one result directory per run,
// bench/results/<YYYY-MM-DD>T<HHMM>/ (UTC; "-quick" appended for --quick),
// holding report.md (the table: direction per row, ratio only where one
// means something), results.json (every figure and raw sample) and one SVG
// and one PNG per plot. Earlier results are never touched. A module that
// fails is reported as failed; the others still run; the exit status is 1
// if anything failed.
//
// --quick runs each module briefly (small counts, short budgets): a smoke
// test of the benchmarks (tests/bench.test.ts), not figures to quote.
//
// Adding a module (e.g. bench/snapshot.ts):
//
//   export const bench: Bench = {
//     name: 'snapshot', title: 'Snapshots: restore vs cold boot',
//     budgetMs: { full: 60_000, quick: 10_000 },        // run.ts gives up past 2× this
//     async run({ pick, budget }) {                      // pick(full, quick) for counts
//       const restore = …, boot = …;                     // both measured here, now
//       return { rows: [{
//         name: 'restore', what: 'restore of an initialized guest, p50', unit: 'ms', direction: 'lower',
//         tendril: restore, baseline: { value: boot, measured: true, label: 'cold boot', what: '…' },
//       }] };
//     },
//   };
//
// then list it in bench/modules.ts. That is all: every figure row is plotted
// (tendril and baseline bars, one plot per unit, log axis when the values
// span decades, captioned with the machine and date). Return `plots` for
// more: { kind: 'bars', file, title, rows: [names] } to group rows your way,
// { kind: 'distribution', file, title, unit, direction, series } for raw
// samples as box plots. A baseline that cannot be measured on this machine
// is { value, quoted: true, what, source } and is shown as quoted; a row
// of counts (leaks) is { name, what, counts, expected? }.

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import minimist from 'minimist';
import { ROOT } from '../tests/helpers.js';
import { isCounts, liveChildren, makeContext, msSince, type Bench, type BenchContext, type FigureRow, type ModuleResult, type Plot, type Row } from './common.js';
import { describeMachine, machineLine } from './machine.js';
import { MODULES } from './modules.js';
import { barsSpec, distributionSpec, render, type Caption } from './plots.js';
import { failureRow, json, markdown, stamp, stringify, TABLE_HEADER, tableRow, type Failure, type ModuleOutcome, type Outcome, type PlotFile } from './report.js';

const USAGE = 'usage: npm run bench [-- --quick] [-- --out=DIR] [-- --only=' + MODULES.map((m) => m.name).join(',') + ']';

function fail(message: string): never {
  console.error(`bench: ${message}`);
  process.exit(2);
}

const argv = minimist(process.argv.slice(2), { boolean: ['quick', 'help'], string: ['out', 'only'] });
if (argv.help) {
  console.log(USAGE);
  process.exit(0);
}
const unknown = Object.keys(argv).filter((k) => !['_', 'quick', 'help', 'out', 'only'].includes(k));
if (unknown.length || argv._.length) fail(`unknown argument ${unknown.length ? `--${unknown[0]}` : argv._[0]}; ${USAGE}`);
const quick: boolean = argv.quick;
const only = argv.only ? String(argv.only).split(',') : undefined;
for (const n of only ?? []) if (!MODULES.some((m) => m.name === n)) fail(`no module named ${JSON.stringify(n)}; ${USAGE}`);
const modules = MODULES.filter((m) => !only || only.includes(m.name));

const date = new Date();
const dir = resultDir(argv.out);
const machine = describeMachine();
const loadAtStart = loadavg()[0];
const caption: Caption = { machine: machineLine(machine), run: `${stamp(date)}, ${quick ? 'quick smoke run (do not quote)' : 'full run'}, load average ${loadAtStart.toFixed(1)} at the start` };

/** --out=DIR as given (made if missing), else a new dated directory under bench/results. */
function resultDir(out: string | undefined): string {
  if (out) {
    mkdirSync(resolve(out), { recursive: true });
    return resolve(out);
  }
  const base = join(ROOT, 'bench/results', `${date.toISOString().slice(0, 16).replace(':', '')}${quick ? '-quick' : ''}`);
  let d = base;
  for (let i = 2; existsSync(d); i++) d = `${base}-${i}`;
  mkdirSync(d, { recursive: true });
  return d;
}

const positive = (x: unknown) => typeof x === 'number' && Number.isFinite(x) && x > 0;

/** Why a row cannot be reported, or undefined when it is well formed. */
function malformed(r: Row): string | undefined {
  if (isCounts(r)) {
    const bad = Object.entries(r.counts).find(([, v]) => !Number.isInteger(v));
    return bad ? `count ${bad[0]} is ${bad[1]}, not a whole number` : undefined;
  }
  if (r.direction !== 'lower' && r.direction !== 'higher') return `direction is ${JSON.stringify(r.direction)}, not 'lower' or 'higher'`;
  if (!positive(r.tendril)) return `tendril figure is ${r.tendril}`;
  const b = r.baseline;
  if (!positive(b?.value)) return `baseline figure is ${b?.value}`;
  if (!('measured' in b && b.measured) && !('quoted' in b && b.quoted && b.source)) return 'baseline is neither measured nor quoted with a source';
  return undefined;
}

/**
 * The module's plots (less rows that failed and empty series), plus bars
 * for every figure row no bars plot names, one plot per unit.
 */
function plotsOf(b: Bench, res: ModuleResult): Plot[] {
  const kept = new Set(res.rows.map((r) => r.name));
  const plots = (res.plots ?? []).flatMap((p): Plot[] => {
    if (p.kind === 'bars') {
      const rows = p.rows.filter((n) => kept.has(n));
      return rows.length ? [{ ...p, rows }] : [];
    }
    const series = Object.fromEntries(Object.entries(p.series).filter(([, xs]) => xs.length > 0));
    return Object.keys(series).length ? [{ ...p, series }] : [];
  });
  const pictured = new Set(plots.flatMap((p) => (p.kind === 'bars' ? p.rows : [])));
  const rest = res.rows.filter((r): r is FigureRow => !isCounts(r) && !pictured.has(r.name));
  const units = [...new Set(rest.map((r) => r.unit))];
  for (const unit of units) {
    const slug = unit.toLowerCase().replace(/\//g, '-per-').replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
    plots.push({ kind: 'bars', file: units.length === 1 ? b.name : `${b.name}-${slug || 'figures'}`, title: b.title, rows: rest.filter((r) => r.unit === unit).map((r) => r.name) });
  }
  return plots;
}

async function draw(plot: Plot, rows: Row[]): Promise<PlotFile> {
  let spec;
  if (plot.kind === 'bars') {
    const figures = plot.rows.map((name) => {
      const r = rows.find((x) => x.name === name);
      if (!r || isCounts(r)) throw new Error(`no figure row named ${JSON.stringify(name)}`);
      return r;
    });
    const units = [...new Set(figures.map((r) => r.unit))];
    if (units.length !== 1) throw new Error(`its rows have ${units.length} units (${units.join(', ')}); a bars plot has one`);
    spec = barsSpec(plot.title, units[0], figures.map((r) => ({
      name: r.name, direction: r.direction, tendril: r.tendril, baseline: r.baseline.value,
      baselineLabel: r.baseline.label ?? 'baseline', quoted: 'quoted' in r.baseline,
    })), caption);
  } else {
    spec = distributionSpec(plot.title, plot.unit, plot.direction, plot.series, caption);
  }
  await render(spec, join(dir, plot.file));
  return { title: plot.title, svg: `${plot.file}.svg`, png: `${plot.file}.png`, ...(plot.kind === 'distribution' ? { series: plot.series } : {}) };
}

/** Runs one module inside twice its budget; a module past that is abandoned, and said to be. */
async function runModule(b: Bench, ctx: BenchContext): Promise<{ result?: ModuleResult; error?: string }> {
  let timer: NodeJS.Timeout | undefined;
  const watchdog = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not finish within twice its budget (${(2 * ctx.budget.ms) / 1000} s); abandoned, later figures may be disturbed`)), 2 * ctx.budget.ms);
  });
  try {
    return { result: await Promise.race([b.run(ctx), watchdog]) };
  } catch (e) {
    // Abandoned (or failed): what it left running must not run beside the next module.
    for (const child of liveChildren) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    return { error: (e as Error).message.split('\n')[0] };
  } finally {
    clearTimeout(timer);
  }
}

const outcomes: ModuleOutcome[] = [];
const failures: Failure[] = [];
const names = new Set<string>();
const plotFiles = new Set<string>();
console.log(`${quick ? 'quick ' : ''}benchmarks → ${dir}\n${TABLE_HEADER}`);
for (const b of modules) {
  const start = process.hrtime.bigint();
  const ctx = makeContext(b, quick);
  const { result, error } = await runModule(b, ctx);
  const outcome: ModuleOutcome = { name: b.name, title: b.title, budgetMs: ctx.budget.ms, tookMs: msSince(start), rows: [], plots: [] };
  outcomes.push(outcome);
  if (!result) {
    outcome.failure = error;
    failures.push({ module: b.name, error: error! });
    console.log(failureRow(failures.at(-1)!));
    continue;
  }
  for (const r of result.rows) {
    const why = malformed(r) ?? (names.has(r.name) ? 'a row of this name exists already' : undefined);
    if (why) {
      failures.push({ module: b.name, what: r.name, error: why });
      console.log(failureRow(failures.at(-1)!));
      continue;
    }
    names.add(r.name);
    outcome.rows.push(r);
    console.log(tableRow(r));
  }
  for (const plot of plotsOf(b, { ...result, rows: outcome.rows })) {
    try {
      if (plotFiles.has(plot.file)) throw new Error('another plot has this file name');
      plotFiles.add(plot.file);
      outcome.plots.push(await draw(plot, outcome.rows));
    } catch (e) {
      failures.push({ module: b.name, what: `plot ${plot.file}`, error: (e as Error).message.split('\n')[0] });
      console.log(failureRow(failures.at(-1)!));
    }
  }
}

const outcome: Outcome = { date, quick, machine, load: { start: loadAtStart, end: loadavg()[0] }, modules: outcomes, failures };
writeFileSync(join(dir, 'report.md'), markdown(outcome));
writeFileSync(join(dir, 'results.json'), `${stringify(json(outcome))}\n`);
console.log(`\nwritten: ${dir}/report.md, results.json and ${outcomes.reduce((n, m) => n + m.plots.length, 0)} plots (SVG + PNG)${failures.length ? `; ${failures.length} FAILED` : ''}`);
process.exitCode = failures.length ? 1 : 0;
