// The report of a run: the markdown table (direction per row, a ratio only
// where one means something), what every baseline is, the plots, and the
// same figures as JSON. Pure functions of the outcome, so they are tested
// without running a benchmark.

import { isCounts, type CountsRow, type FigureRow, type Row } from './common.js';
import { fmt, fmtRatio } from './format.js';
import { caLine, machineLine, type Machine } from './machine.js';

export interface PlotFile {
  title: string;
  /** File names inside the result directory. */
  svg: string;
  png: string;
  /** A distribution's raw samples, for results.json. */
  series?: Record<string, number[]>;
}

export interface ModuleOutcome {
  name: string;
  title: string;
  budgetMs: number;
  tookMs: number;
  rows: Row[];
  plots: PlotFile[];
  /** Why the module produced no rows (it threw, or outran twice its budget). */
  failure?: string;
}

export interface Failure {
  module: string;
  /** The row or plot that failed; none when the whole module did. */
  what?: string;
  error: string;
}

export interface Outcome {
  date: Date;
  quick: boolean;
  machine: Machine;
  /** 1-minute load average when the run started and ended: other work on the machine makes figures noisier. */
  load: { start: number; end: number };
  modules: ModuleOutcome[];
  failures: Failure[];
}

/** Within this of 1, a ratio is reported as even rather than as a winner. */
const EVEN = 0.03;

export function ratio(r: FigureRow): number {
  return r.tendril / r.baseline.value;
}

/** Which side the row's direction favours: 'tendril', 'baseline' or 'even'. */
export function better(r: FigureRow): 'tendril' | 'baseline' | 'even' {
  const q = ratio(r);
  if (Math.abs(q - 1) <= EVEN) return 'even';
  return (q < 1) === (r.direction === 'lower') ? 'tendril' : 'baseline';
}

/** The counts that differ from what is expected of them. */
export function unexpected(r: CountsRow): string[] {
  return Object.entries(r.counts)
    .filter(([k, v]) => v !== (r.expected?.[k] ?? 0))
    .map(([k, v]) => `${k}: ${v} (expected ${r.expected?.[k] ?? 0})`);
}

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export const TABLE_HEADER = [
  '| benchmark | better is | tendril | baseline | ratio (tendril / baseline) | better here |',
  '|---|---|---:|---:|---:|---|',
].join('\n');

export function tableRow(r: Row): string {
  if (isCounts(r)) {
    const counts = Object.entries(r.counts).map(([k, v]) => `${k}: ${v}`).join(', ');
    const expected = Object.entries(r.expected ?? {}).filter(([, v]) => v !== 0);
    const bad = unexpected(r);
    return `| ${cell(`**${r.name}**: ${r.what}`)} | the expected count | ${cell(counts)} | ${cell(`expected: ${expected.length ? expected.map(([k, v]) => `${k} ${v}, others 0`).join(', ') : '0 each'}`)} | n/a (counts) | ${cell(bad.length ? `**not as expected**: ${bad.join(', ')}` : 'as expected')} |`;
  }
  const b = r.baseline;
  const base = 'quoted' in b ? `${fmt(b.value)} ${r.unit} (quoted: ${b.source})` : `${fmt(b.value)} ${r.unit}`;
  const q = fmtRatio(ratio(r));
  const side = better(r);
  const verdict = side === 'even' ? `even (within ${EVEN * 100}%)` : side;
  return `| ${cell(`**${r.name}**: ${r.what}`)} | ${r.direction} | ${fmt(r.tendril)} ${cell(r.unit)} | ${cell(base)} | ${'quoted' in b ? `${q} (vs a quoted figure)` : q} | ${'quoted' in b ? `${verdict} (vs a quoted figure)` : verdict} |`;
}

export function failureRow(f: Failure): string {
  return `| ${cell(`**${f.module}${f.what ? ` / ${f.what}` : ''}**: FAILED: ${f.error}`)} | | | | | |`;
}

export function stamp(d: Date): string {
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

export function markdown(o: Outcome): string {
  const rows = o.modules.flatMap((m) => m.rows);
  const lines = [
    `# tendril benchmarks, ${stamp(o.date)}${o.quick ? ' (quick smoke run)' : ''}`,
    '',
    `Machine: ${machineLine(o.machine)}; ${caLine(o.machine)}.`,
    `Load average (1 min, ${o.machine.cores} cores): ${o.load.start.toFixed(1)} at the start, ${o.load.end.toFixed(1)} at the end${Math.max(o.load.start, o.load.end) > o.machine.cores / 2 ? ': other work was running, so figures are noisier than on an idle machine (the baselines ran under the same load)' : ''}.`,
    '',
    o.quick
      ? '**A `--quick` run**: every count and budget is cut to a smoke test of the benchmarks themselves. Do not quote these figures; run `npm run bench` for them.'
      : 'A full run of `npm run bench`.',
    '',
    'How to read it: each row says whether a **lower** or a **higher** figure is better. Every ratio is tendril / baseline.',
    'Baselines are measured in this run, on this machine, moments apart, unless a row says **quoted**: a figure that cannot be',
    'measured here, with its source; its ratio is marked as against a quoted figure. Rows of counts (e.g. leaks) show the counts',
    'and what is expected of them, never a ratio. "better here" names the side the row\'s direction favours.',
    '',
    TABLE_HEADER,
    ...rows.map(tableRow),
    ...o.failures.map(failureRow),
    '',
    '## Baselines',
    '',
    ...rows.map((r) => {
      if (isCounts(r)) return `- **${r.name}**: counts, no baseline; expected ${Object.keys(r.counts).map((k) => `${k} = ${r.expected?.[k] ?? 0}`).join(', ')}.`;
      const b = r.baseline;
      return 'quoted' in b
        ? `- **${r.name}**: quoted, not measured in this run: ${b.what}, ${fmt(b.value)} ${r.unit}. Source: ${b.source}.`
        : `- **${r.name}**: measured in this run: ${b.what}.`;
    }),
    '',
    '## Plots',
    '',
    'Each plot is here as SVG and as PNG (rendered from the SVG by rsvg-convert, for viewers without SVG).',
    '',
    ...o.modules.flatMap((m) => m.plots.map((p) => `### ${p.title}\n\n![${p.title}](${p.svg})\n\n[PNG](${p.png})\n`)),
    '## Modules',
    '',
    '| module | took | budget | outcome |',
    '|---|---:|---:|---|',
    ...o.modules.map((m) => `| ${m.name}: ${cell(m.title)} | ${(m.tookMs / 1000).toFixed(1)} s | ${(m.budgetMs / 1000).toFixed(0)} s | ${cell(m.failure ? `FAILED: ${m.failure}` : `${plural(m.rows.length, 'row')}, ${plural(m.plots.length, 'plot')}`)} |`),
    '',
    'All figures, with every raw sample: [results.json](results.json).',
    '',
  ];
  return lines.join('\n');
}

/** results.json: the outcome with each figure's ratio and verdict spelled out. */
export function json(o: Outcome): unknown {
  return {
    date: o.date.toISOString(),
    mode: o.quick ? 'quick' : 'full',
    machine: o.machine,
    load: o.load,
    modules: o.modules.map((m) => ({
      ...m,
      rows: m.rows.map((r) => (isCounts(r) ? { ...r, asExpected: unexpected(r).length === 0 } : { ...r, ratio: ratio(r), better: better(r) })),
    })),
    failures: o.failures,
  };
}

/** JSON indented by 2, except that arrays of numbers (raw samples) stay on one line each. */
export function stringify(value: unknown): string {
  const inline: string[] = [];
  const text = JSON.stringify(value, (_k, v) => {
    if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number')) {
      inline.push(JSON.stringify(v));
      return `\u0000${inline.length - 1}\u0000`;
    }
    return v;
  }, 2);
  return text.replace(/"\\u0000(\d+)\\u0000"/g, (_m, i) => inline[Number(i)]);
}
