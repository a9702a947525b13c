// What a benchmark module is and returns, and small numeric helpers.
// Benchmarks are run, never asserted: each figure stands next to a baseline
// measured in the same run, on the same machine, moments apart, or, when no
// baseline can be measured here, next to a figure quoted from a named source
// and marked as quoted everywhere it is shown. bench/run.ts explains how to
// add a module.

import type { ChildProcess } from 'node:child_process';

/** Which way is better for a figure. */
export type Direction = 'lower' | 'higher';

export type Baseline =
  /** Measured in this run. */
  | { value: number; measured: true; what: string; label?: string }
  /** Not measurable on this machine: a published figure, with where it comes from. */
  | { value: number; quoted: true; what: string; source: string; label?: string };

/** A figure of tendril against a baseline, in one unit. */
export interface FigureRow {
  name: string;
  /** What is measured, without the direction (that is `direction`). */
  what: string;
  unit: string;
  direction: Direction;
  tendril: number;
  baseline: Baseline;
  /** Everything else measured, for results.json. */
  details?: Record<string, unknown>;
}

/** Counts with an expected value each (e.g. leaks: 0), shown as counts, never as a ratio. */
export interface CountsRow {
  name: string;
  what: string;
  counts: Record<string, number>;
  /** What each count should be; a count missing here is expected to be 0. */
  expected?: Record<string, number>;
  details?: Record<string, unknown>;
}

export type Row = FigureRow | CountsRow;

export function isCounts(r: Row): r is CountsRow {
  return 'counts' in r;
}

/** A plot bench/run.ts draws (SVG and PNG) from a module's result. */
export type Plot =
  /** tendril and baseline bars for the named rows of the module (all in one unit). */
  | { kind: 'bars'; file: string; title: string; rows: string[] }
  /** Distributions (box plots: min, quartiles, max) of raw samples, one series per line. */
  | { kind: 'distribution'; file: string; title: string; unit: string; direction: Direction; series: Record<string, number[]> };

export interface ModuleResult {
  rows: Row[];
  /**
   * Extra plots. Figure rows that no `bars` plot names get bars anyway,
   * one plot per unit, so every figure is pictured without a line of code.
   */
  plots?: Plot[];
}

export interface BenchContext {
  /** `--quick`: a smoke run, small counts, short budgets; its figures are not meant to be quoted. */
  quick: boolean;
  /** `full` in a full run, `quick` under --quick: counts, sizes, repetitions. */
  pick<T>(full: T, quick: T): T;
  /** The module's time budget (its `budgetMs` for this mode), started when the module starts. */
  budget: Budget;
}

export interface Bench {
  /** Short name: plot files and JSON keys start with it. */
  name: string;
  /** Heading of the module's section and plots. */
  title: string;
  /** Bound on the module's run, full and --quick (ms); run.ts gives up on a module past 2× it. */
  budgetMs: { full: number; quick: number };
  run(ctx: BenchContext): Promise<ModuleResult>;
}

/**
 * Long-lived processes a module started (servers): a module abandoned past
 * its bound never reaches its own cleanup, so run.ts ends these for it, by
 * pid, before the next module runs beside them.
 */
export const liveChildren = new Set<ChildProcess>();

/** The context a module runs in; its budget starts now. */
export function makeContext(b: Bench, quick: boolean): BenchContext {
  return {
    quick,
    pick: (full, q) => (quick ? q : full),
    budget: new Budget(b.name, quick ? b.budgetMs.quick : b.budgetMs.full),
  };
}

/** The p-quantile (0..1) of xs, by rank. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Milliseconds since `start` (from process.hrtime.bigint()). */
export function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** Throws when the benchmark's time budget is spent, so no bench runs unbounded. */
export class Budget {
  private readonly start = process.hrtime.bigint();
  constructor(readonly name: string, readonly ms: number) {}
  left(): number {
    return this.ms - msSince(this.start);
  }
  check(what: string): void {
    if (this.left() <= 0) throw new Error(`${this.name}: time budget of ${this.ms / 1000} s spent before ${what}`);
  }
  /**
   * Whether another round fits, judging by the slowest round so far (×1.5).
   * The first round always runs; later ones are dropped, not started late.
   */
  affords(roundMs: number[]): boolean {
    if (roundMs.length === 0) return true;
    return this.left() > 1.5 * Math.max(...roundMs);
  }
}

/** Runs up to `reps` rounds while the budget affords them; returns how many ran. */
export async function rounds(budget: Budget, reps: number, round: (i: number) => Promise<void> | void): Promise<number> {
  const took: number[] = [];
  for (let i = 0; i < reps; i++) {
    if (!budget.affords(took)) break;
    const start = process.hrtime.bigint();
    await round(i);
    took.push(msSince(start));
  }
  return took.length;
}
