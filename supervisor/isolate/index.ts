// --isolate for the launch paths (run, tendril-spt, and anything that runs a
// guest with RunOptions: serve, tendril-oci): decide the jail for this host,
// report each missing layer on one line (or refuse, strict), and hand back
// what makes the guest's cgroups and plan sections at hand-over time.

import { log } from '../log.js';
import { missingLines, planJail, requireAll, startJail, type IsolateOptions, type JailPlan, type StartedJail } from './jail.js';

export { DEFAULT_GUEST_ID, planJail, summaryLines, type IsolateOptions, type JailPlan, type StartedJail } from './jail.js';

/**
 * The jail of one launch: the missing layers are written to stderr (one line
 * each, as warnings, so --log-level=error silences them) or, with strict,
 * refused. Returns the function a hand-over calls to make the cgroups.
 */
export function jailFor(opts: IsolateOptions, memMiB: number, prog: string, report: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): () => StartedJail {
  const plan: JailPlan = planJail(opts, memMiB);
  if (opts.strict || log.enabled('warn')) for (const line of missingLines(plan)) report(`${prog}: ${line}`);
  if (opts.strict) requireAll(plan);
  return () => startJail(plan);
}
