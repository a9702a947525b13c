// Shared by the benchmarks: what a benchmark returns, and small numeric helpers.
// Benchmarks are run, never asserted (docs/architecture.md, "Benchmarks"): each compares tendril with a
// baseline measured in the same run, on the same machine, moments apart.

export interface BenchResult {
  /** Short name, e.g. "net". */
  name: string;
  /** What is measured, e.g. "ping flood, echo replies/s (higher is better)". */
  what: string;
  unit: string;
  tendril: number;
  baseline: number;
  /** tendril / baseline. */
  ratio: number;
  /** What the baseline is. */
  baselineIs: string;
  /** Everything measured, for the JSON record. */
  details: Record<string, unknown>;
}

export interface Bench {
  name: string;
  /** One result per table row. */
  run(): Promise<BenchResult[]>;
}

export const TABLE_HEADER = '| benchmark | tendril | baseline | ratio (tendril / baseline) |\n|---|---:|---:|---:|';

export function tableRow(r: BenchResult): string {
  return `| ${r.name}: ${r.what} | ${fmt(r.tendril)} ${r.unit} | ${fmt(r.baseline)} ${r.unit} | ${r.ratio.toFixed(3)} |`;
}

export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  return x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(2);
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
