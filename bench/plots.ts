// Benchmark plots: vega-lite specs compiled with vega-lite, rendered to SVG
// by vega's headless renderer (no canvas needed for SVG), then to PNG by
// rsvg-convert (Debian's librsvg2-bin), so every picture can be looked at
// as an image, not only as markup.
//
// Every picture carries its caption: what it shows, which way is better,
// the machine and the date of the run. An axis is logarithmic when the values
// on it span more than a factor of LOG_SPAN, so a 6/s baseline stays visible
// next to 900/s; every bar and box is labelled with its value, and the axis
// leaves room for the labels.

import { spawnSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { median, type Direction } from './common.js';
import { fmt } from './format.js';

const LOG_SPAN = 20;
const WIDTH = 560;
const FONT = 11;

/**
 * Text width in px for DejaVu Sans, the font the plots ask for and rsvg-convert
 * draws with (Debian's default sans-serif). Without a canvas, vega guesses
 * 0.8 em for every character, which leaves wide gaps and cuts labels it
 * thinks too long; advance widths by class of character are close enough,
 * rounded up so nothing overflows.
 */
export function textWidth(text: string, fontSize: number, bold = false): number {
  let em = 0;
  for (const c of text) {
    if (/[ .,:;|'!·]/.test(c)) em += 0.34;
    else if (/[ijlft()[\]\-/r]/.test(c)) em += 0.42;
    else if (/[mw]/.test(c)) em += 0.98;
    else if (/[MW%@…×→≈=+<>]/.test(c)) em += 1.0;
    else if (/[A-Z]/.test(c)) em += 0.76;
    else if (/[0-9]/.test(c)) em += 0.64;
    else em += 0.62;
  }
  return Math.ceil(em * fontSize * (bold ? 1.12 : 1.02));
}

// vega-scenegraph supports replacing textMetrics.width (vl-convert does the same); it is not in vega's types.
(vega as unknown as { textMetrics: { width: unknown } }).textMetrics.width = (item: { fontSize?: number; fontWeight?: string | number; limit?: number }, text: unknown) =>
  textWidth(String(text ?? '').trim(), item.fontSize ?? 11, item.fontWeight === 'bold' || Number(item.fontWeight) >= 600);

const textPx = (s: string) => textWidth(s, FONT) + 8;

const COLORS = { tendril: '#e45756', measured: '#4c78a8', quoted: '#9d9d9d' };
const SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';

/** One pair of bars: a row's tendril figure and its baseline. */
export interface BarRow {
  name: string;
  direction: Direction;
  tendril: number;
  baseline: number;
  baselineLabel: string;
  quoted: boolean;
}

export interface Caption {
  /** e.g. "host · 2 × Xeon @ 2.80GHz · Linux 6.18 · Node v20.20.2" */
  machine: string;
  /** e.g. "2026-12-01 15:30 UTC, full run" */
  run: string;
}

function betterLine(directions: Direction[]): string | undefined {
  const d = [...new Set(directions)];
  return d.length === 1 ? `${d[0]} is better` : undefined;
}

function title(text: string, lines: (string | undefined)[], caption: Caption) {
  return {
    text,
    subtitle: [...lines.filter((l): l is string => !!l), `${caption.machine}`, `${caption.run}`],
    anchor: 'start' as const,
    fontSize: 14,
    subtitleFontSize: FONT,
    subtitleColor: '#444',
    offset: 10,
  };
}

/**
 * An x scale for positive values, each followed by a label of `labelPx`:
 * log when they span decades; the upper end leaves room for every label.
 */
function xScale(points: { v: number; labelPx: number }[]): { type: 'log' | 'linear'; domain: [number, number]; lo: number } {
  const vs = points.map((p) => p.v).filter((v) => Number.isFinite(v) && v > 0);
  const min = Math.min(...vs);
  const max = Math.max(...vs);
  const room = (p: { labelPx: number }) => WIDTH / Math.max(WIDTH - p.labelPx, WIDTH * 0.35);
  if (max / min > LOG_SPAN) {
    const lo = 10 ** Math.floor(Math.log10(min / 1.5));
    const span = Math.max(...points.filter((p) => p.v > 0).map((p) => Math.log10(p.v / lo) * room(p)));
    return { type: 'log', domain: [lo, lo * 10 ** span], lo };
  }
  const hi = Math.max(...points.map((p) => (p.v > 0 ? p.v * room(p) : 0)));
  return { type: 'linear', domain: [0, hi], lo: 0 };
}

/** Ticks of a log axis: 1, 2, 5 × 10^k over a short span, powers of ten over a long one. */
function logTicks([lo, hi]: [number, number]): number[] {
  const steps = Math.log10(hi / lo) <= 3.2 ? [1, 2, 5] : [1];
  const ticks: number[] = [];
  for (let p = Math.floor(Math.log10(lo)); p <= Math.ceil(Math.log10(hi)); p++) {
    for (const m of steps) {
      const t = Number((m * 10 ** p).toPrecision(6));
      if (t >= lo && t <= hi) ticks.push(t);
    }
  }
  return ticks;
}

/** The x encoding's title, scale and axis for a scale from xScale. */
function axis(x: ReturnType<typeof xScale>, unit: string) {
  return {
    title: `${unit} (${x.type === 'log' ? 'log scale' : 'linear scale'})`,
    scale: x.type === 'log' ? { type: 'log' as const, domain: x.domain, nice: false, clamp: true } : { type: 'linear' as const, domain: x.domain, nice: false, zero: true },
    axis: x.type === 'log'
      ? { values: logTicks(x.domain), format: ',~r', labelFontSize: FONT, grid: true, labelOverlap: true }
      : { labelFontSize: FONT, grid: true, labelOverlap: true },
  };
}

const CONFIG = { view: { stroke: '#ddd' }, axis: { labelColor: '#222', titleColor: '#222' }, font: 'DejaVu Sans, sans-serif' };

/**
 * tendril next to its baseline, one panel per row (named on the left), each
 * bar named on its own line and labelled with its value.
 */
export function barsSpec(text: string, unit: string, rows: BarRow[], caption: Caption): TopLevelSpec {
  const better = betterLine(rows.map((r) => r.direction));
  const rowLabel = (r: BarRow) => (better ? r.name : `${r.name} (${r.direction} is better)`);
  const values = rows.flatMap((r) => [
    { row: rowLabel(r), who: 'tendril', kind: 'tendril', v: r.tendril, label: `${fmt(r.tendril)} ${unit}` },
    {
      row: rowLabel(r), who: `${r.baselineLabel}${r.quoted ? ' (quoted)' : ''}`, v: r.baseline, label: `${fmt(r.baseline)} ${unit}`,
      kind: r.quoted ? 'baseline, quoted (not measured here)' : 'baseline, measured in this run',
    },
  ]);
  const x = xScale(values.map((d) => ({ v: d.v, labelPx: textPx(d.label) })));
  const kinds = [...new Set(values.map((d) => d.kind))];
  const color = (k: string) => (k === 'tendril' ? COLORS.tendril : k.includes('quoted') ? COLORS.quoted : COLORS.measured);
  const axisX = axis(x, unit);
  return {
    $schema: SCHEMA,
    title: title(text, [`${unit}, ${better ?? 'direction per row'}; ${x.type === 'log' ? 'logarithmic' : 'linear'} axis`], caption),
    data: { values: values.map((d) => ({ ...d, lo: x.lo })) },
    facet: {
      row: {
        field: 'row', type: 'nominal', sort: rows.map(rowLabel), title: null,
        header: { labelAngle: 0, labelAlign: 'left', labelAnchor: 'middle', labelFontSize: FONT + 1, labelFontWeight: 'bold', labelLimit: 1000, labelPadding: 8 },
      },
    },
    spacing: 8,
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: WIDTH,
      height: { step: 20 },
      encoding: {
        y: { field: 'who', type: 'nominal', title: null, sort: null, axis: { labelLimit: 1000, labelFontSize: FONT, labelPadding: 4, ticks: false, domain: false } },
        x: { field: 'v', type: 'quantitative', ...axisX },
      },
      layer: [
        {
          mark: { type: 'bar', height: { band: 0.7 } },
          encoding: {
            x2: { field: 'lo' },
            color: {
              field: 'kind', type: 'nominal', title: null,
              scale: { domain: kinds, range: kinds.map(color) },
              legend: { orient: 'bottom', direction: 'vertical', labelFontSize: FONT, labelLimit: 1000 },
            },
          },
        },
        { mark: { type: 'text', align: 'left', baseline: 'middle', dx: 4, fontSize: FONT, color: '#222' }, encoding: { text: { field: 'label' } } },
      ],
    },
    config: CONFIG,
  };
}

/** Raw samples per series as box plots (min, quartiles, max), each labelled with its median and count. */
export function distributionSpec(text: string, unit: string, direction: Direction, series: Record<string, number[]>, caption: Caption): TopLevelSpec {
  const names = Object.keys(series);
  const values = names.flatMap((name) => series[name].map((v) => ({ series: name, v })));
  const labels = names.map((name) => {
    const xs = series[name];
    return { series: name, max: Math.max(...xs), label: `median ${fmt(median(xs))} ${unit}, n = ${xs.length.toLocaleString('en-US')}` };
  });
  const x = xScale([...values.map((d) => ({ v: d.v, labelPx: 0 })), ...labels.map((l) => ({ v: l.max, labelPx: textPx(l.label) }))]);
  const y = { field: 'series', type: 'nominal' as const, title: null, sort: names, axis: { labelLimit: 1000, labelFontSize: FONT + 1, labelPadding: 6 } };
  return {
    $schema: SCHEMA,
    title: title(text, [`${unit}, ${direction} is better; box: quartiles, whiskers: min and max; ${x.type === 'log' ? 'logarithmic' : 'linear'} axis`], caption),
    width: WIDTH,
    height: { step: 34 },
    layer: [
      {
        data: { values },
        mark: { type: 'boxplot', extent: 'min-max', size: 16, color: COLORS.measured, median: { color: 'white' } },
        encoding: {
          y,
          x: { field: 'v', type: 'quantitative', ...axis(x, unit) },
        },
      },
      {
        data: { values: labels },
        mark: { type: 'text', align: 'left', baseline: 'middle', dx: 5, fontSize: FONT, color: '#222' },
        encoding: { y, x: { field: 'max', type: 'quantitative' }, text: { field: 'label' } },
      },
    ],
    config: CONFIG,
  };
}

/**
 * vega-lite's warnings, less one it gives for every bars plot: each panel's
 * independent y scale is built from the same data by two layers, which is
 * what it assumes anyway.
 */
const logger = vega.logger(vega.Warn, undefined, (method, level, args) => {
  if (/faceted independent scales that union domain/.test(String(args[0]))) return;
  console[method](`plot ${level}`, ...args);
});

/** Writes BASE.svg and BASE.png; returns both paths. */
export async function render(spec: TopLevelSpec, base: string): Promise<{ svg: string; png: string }> {
  const view = new vega.View(vega.parse(compile(spec, { logger }).spec), { renderer: 'none' });
  const svg = `${base}.svg`;
  const png = `${base}.png`;
  try {
    writeFileSync(svg, await view.toSVG());
  } finally {
    view.finalize();
  }
  const r = spawnSync('rsvg-convert', ['--zoom=1.5', '--background-color=white', '--output', png, svg], { encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw new Error(`cannot render ${png}: rsvg-convert: ${r.error.message} (install librsvg2-bin)`);
  if (r.status !== 0 || statSync(png).size === 0) throw new Error(`cannot render ${png}: rsvg-convert: ${r.stderr.trim() || `exit ${r.status}`}`);
  return { svg, png };
}
