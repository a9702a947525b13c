// --isolate for the launch paths (run, tendril-spt, serve's instances, and
// anything that runs a guest with RunOptions, such as tendril-oci): decide
// the jail for this host, report each missing layer on one line (or refuse,
// strict), and hand back what makes the guest's cgroups and plan sections
// at hand-over time.

import { log } from '../log.js';
import { missingLines, planJail, requireAll, startJail, type IsolateOptions, type JailPlan, type Layer, type StartedJail, type StartOptions } from './jail.js';

export { DEFAULT_GUEST_ID, planJail, summaryLines, type IsolateOptions, type JailPlan, type Layer, type StartedJail } from './jail.js';
export { ociIsolation, type OciIsolationInput } from './oci.js';

export interface Jail {
  plan: JailPlan;
  /** The layers this host cannot give (none when strict: it throws instead). */
  missing: Layer[];
  /** Makes the guest's cgroups and the plan's sections; call at hand-over time, remove the cgroups if the hand-over fails. */
  start(o?: StartOptions): StartedJail;
}

/** The jail of one launch of `memMiB`; with strict, an IsolationError if a layer is missing. */
export function decideJail(opts: IsolateOptions, memMiB: number): Jail {
  const plan = planJail(opts, memMiB);
  if (opts.strict) requireAll(plan);
  return { plan, missing: plan.missing, start: (o) => startJail(plan, o) };
}

/**
 * For the command line: the missing layers are written to stderr (one line
 * each, as warnings, so --log-level=error silences them) or, with strict,
 * refused after naming them. Returns the function a hand-over calls to make
 * the cgroups.
 */
export function jailFor(opts: IsolateOptions, memMiB: number, prog: string, report: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): () => StartedJail {
  const plan = planJail(opts, memMiB);
  if (opts.strict || log.enabled('warn')) for (const line of missingLines(plan)) report(`${prog}: ${line}`);
  if (opts.strict) requireAll(plan);
  return () => startJail(plan);
}
