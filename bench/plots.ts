// Benchmark plots: vega-lite specs compiled with vega-lite and rendered to
// SVG by vega's headless renderer (no canvas needed for SVG).

import { writeFileSync } from 'node:fs';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export async function renderSvg(spec: TopLevelSpec, file: string): Promise<void> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  writeFileSync(file, await view.toSVG());
  view.finalize();
}

/** Latency distributions (ms) per series, as box plots on a log scale. */
export function latencySpec(title: string, series: Record<string, number[]>): TopLevelSpec {
  const values = Object.entries(series).flatMap(([name, xs]) => xs.map((ms) => ({ series: name, ms })));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title, width: 520, height: 40 * Object.keys(series).length + 40,
    data: { values },
    mark: { type: 'boxplot', extent: 'min-max' },
    encoding: {
      y: { field: 'series', type: 'nominal', title: null, sort: Object.keys(series), axis: { labelLimit: 320 } },
      x: { field: 'ms', type: 'quantitative', title: 'milliseconds (log scale)', scale: { type: 'log' } },
    },
  };
}

/** One bar per row: tendril and its baseline side by side. */
export function barsSpec(title: string, unit: string, rows: { label: string; tendril: number; baseline: number }[]): TopLevelSpec {
  const values = rows.flatMap((r) => [{ label: r.label, who: 'tendril', v: r.tendril }, { label: r.label, who: 'baseline', v: r.baseline }]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title, width: 420, height: { step: 16 },
    data: { values },
    mark: 'bar',
    encoding: {
      y: { field: 'label', type: 'nominal', title: null, axis: { labelLimit: 320 } },
      yOffset: { field: 'who' },
      x: { field: 'v', type: 'quantitative', title: unit },
      color: { field: 'who', type: 'nominal', title: null },
    },
  };
}
