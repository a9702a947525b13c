// Number formatting shared by the report and the plots.

/** Three significant digits below 100, whole numbers with separators above. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a >= 100) return Math.round(x).toLocaleString('en-US');
  if (a >= 10) return x.toFixed(1);
  if (a >= 1 || a === 0) return x.toFixed(2);
  return x.toPrecision(3);
}

/** A ratio, with enough digits to tell 0.97 from 1.00 and 142 from 143. */
export function fmtRatio(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}
