// The malformed-image campaign. Oracle, in order of cost:
//   1. in-process: parseGuestImage + validateLoadSegments (2 MiB), then the
//      launch plan built from what they return. Each must either return or
//      throw a TendrilError; any other exception is a supervisor crash.
//   2. real `tendril run --mem=2 FILE` for a sample: every accepted case up
//      to a budget, plus rejected cases spread over the distinct rejections.
//      A rejected image must exit 1 with one stderr line naming the file and
//      no stdout. An accepted image may run and do anything a guest can do,
//      but tendril itself must not crash or hang.

import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateLoadSegments } from '../../loader/elf.js';
import { TendrilError } from '../../loader/errors.js';
import { parseGuestImage } from '../../loader/image.js';
import { encodePlan, makeGuestPlan, memoryImage } from '../../loader/plan.js';
import { oneLine, Pool } from '../helpers.js';
import { launchChecked, looksLikeCrash, type WatchedResult } from './launch.js';
import { elfCase, type Base, type ElfCase } from './mutate.js';

export const MEM_MIB = 2;
const MEM = BigInt(MEM_MIB) << 20n;

export type Verdict =
  | { kind: 'accept' }
  | { kind: 'reject'; message: string }
  | { kind: 'crash'; error: string };

/** The supervisor's in-process verdict on an image, as `tendril run --mem=2` would reach it. */
export function verdict(file: string, bytes: Buffer): Verdict {
  try {
    const img = parseGuestImage(file, bytes);
    const segments = validateLoadSegments(file, img.bytes, img.header, img.phdrs, MEM);
    const memory = memoryImage(segments);
    const plan = makeGuestPlan({
      memSize: MEM, entry: img.header.entry, segments, regions: memory.regions, manifest: img.manifest, attachments: [], cmdline: '', flags: 0,
    });
    encodePlan(plan, Buffer.alloc(8), { deviceSrc: [], imageSrc: 3 });
    return { kind: 'accept' };
  } catch (e) {
    if (e instanceof TendrilError) return { kind: 'reject', message: e.message };
    const err = e as Error;
    return { kind: 'crash', error: `${err?.name}: ${err?.message}\n${err?.stack ?? ''}` };
  }
}

/** A rejection message with the numbers and the path taken out, to group similar ones. */
export function rejectionClass(message: string): string {
  return message.replace(/^[^:]*: /, '').replace(/\b(0x[0-9a-f]+|\d+)\b/g, 'N').replace(/\(it is for .*\)$/, '(it is for X)');
}

export interface Finding {
  case: string;
  detail: string;
  /** Set when the finding is a known, reported tendril bug (tests/fuzz/known.ts). */
  known?: string;
}

export interface ElfSummary {
  seed: number;
  cases: number;
  accepted: number;
  rejected: number;
  /** Non-TendrilError exceptions in-process, or a crash report / stack trace / abort from a real launch. */
  crashes: Finding[];
  /** tendril (or the stub before the filter) still running at the deadline. */
  hangs: Finding[];
  /** Rejected in-process, but the real launch ran a guest. */
  invalidLaunches: Finding[];
  /** Rejected as expected, but not as one line naming the file with nothing on stdout. */
  badRefusals: Finding[];
  /** A crash-looking first launch that the same launch did not repeat (reported, not counted). */
  unstable: Finding[];
  launched: number;
  launchedAccepted: number;
  launchedRejected: number;
  /** Accepted images whose guest was still running at the deadline (killed, not a tendril hang). */
  ranKilledByTimeout: number;
  /** Outcomes of the accepted launches: "exit N", "SIGSEGV", "refused: <class>"… */
  acceptedOutcomes: Record<string, number>;
  rejectionClasses: Record<string, number>;
  ms: number;
}

export interface ElfCampaignOptions {
  seed: number;
  cases: number;
  bases: Base[];
  /** Real launches at most (accepted first, up to 2/3 of the budget). */
  launches: number;
  concurrency: number;
  timeoutMs: number;
  /** Scratch directory for case files. */
  dir: string;
  /** Extra `run` options per base name (e.g. the block device of test_blk). */
  baseOptions: Record<string, string[]>;
  log?: (line: string) => void;
}

const bump = (m: Record<string, number>, k: string) => { m[k] = (m[k] ?? 0) + 1; };
const describe = (c: ElfCase) => `seed case #${c.index} (${c.base.name}: ${c.mutations.join('; ')})`;

/** How a real launch of an accepted image ended, for the histogram. */
function outcome(r: WatchedResult): string {
  if (r.timedOut) return `killed at deadline (${r.timedOut})`;
  if (r.stderr) return `refused: ${rejectionClass(r.stderr.replace(/^tendril: /, '').split('; ')[0].trim())}`;
  return r.signal ?? `exit ${r.status}`;
}

export async function runElfCampaign(o: ElfCampaignOptions): Promise<ElfSummary> {
  const t0 = Date.now();
  const log = o.log ?? (() => {});
  const s: ElfSummary = {
    seed: o.seed, cases: o.cases, accepted: 0, rejected: 0, crashes: [], hangs: [], invalidLaunches: [], badRefusals: [], unstable: [],
    launched: 0, launchedAccepted: 0, launchedRejected: 0, ranKilledByTimeout: 0, acceptedOutcomes: {}, rejectionClasses: {}, ms: 0,
  };
  const file = (i: number) => join(o.dir, `case-${i}.spt`);

  // 1. In-process, every case. Keep only indices: a case is regenerated from (seed, index) when launched.
  // Accepted cases whose mutations name a header, note or layout change come first in the
  // launch queue; blind bit flips and byte sets (mostly in code and data) after them.
  const structural: number[] = [];
  const blind: number[] = [];
  const rejectedByClass = new Map<string, number[]>();
  const seen = new Set<string>();
  for (let i = 0; i < o.cases; i++) {
    const c = elfCase(o.seed, i, o.bases);
    const v = verdict(file(i), c.bytes);
    const digest = createHash('sha1').update(c.bytes).digest('hex');
    const dup = seen.has(digest);
    seen.add(digest);
    if (v.kind === 'crash') {
      s.crashes.push({ case: describe(c), detail: `in-process: ${v.error}` });
    } else if (v.kind === 'accept') {
      s.accepted++;
      if (!dup) (c.mutations.every((m) => /^(flip|set u)/.test(m)) ? blind : structural).push(i);
    } else {
      s.rejected++;
      const k = rejectionClass(v.message);
      bump(s.rejectionClasses, k);
      if (!dup) {
        if (!rejectedByClass.has(k)) rejectedByClass.set(k, []);
        rejectedByClass.get(k)!.push(i);
      }
    }
  }
  log(`in-process: ${o.cases} cases, ${s.accepted} accepted, ${s.rejected} rejected, ${s.crashes.length} crashes (${Date.now() - t0} ms)`);

  const accepted = [...structural, ...blind];
  // 2. Which cases to launch: accepted first (up to 2/3 of the budget), then
  //    rejected ones round-robin over the rejection classes.
  const acceptQuota = Math.min(accepted.length, Math.ceil((o.launches * 2) / 3));
  const toLaunch: { i: number; expect: 'accept' | 'reject' }[] = accepted.slice(0, acceptQuota).map((i) => ({ i, expect: 'accept' }));
  const queues = [...rejectedByClass.values()];
  for (let round = 0; toLaunch.length < o.launches && queues.some((q) => q.length > round); round++) {
    for (const q of queues) {
      if (toLaunch.length >= o.launches) break;
      if (round < q.length) toLaunch.push({ i: q[round], expect: 'reject' });
    }
  }

  // 3. Real launches.
  const pool = new Pool(o.concurrency);
  await Promise.all(toLaunch.map(({ i, expect }) => pool.run(async () => {
    const c = elfCase(o.seed, i, o.bases);
    const path = file(i);
    writeFileSync(path, c.bytes);
    const args = ['run', `--mem=${MEM_MIB}`, ...(o.baseOptions[c.base.name] ?? []), path];
    const { r, unstable } = await launchChecked(args, { timeoutMs: o.timeoutMs });
    s.launched++;
    const what = describe(c);
    if (unstable) s.unstable.push({ case: what, detail: `first run: ${unstable.stderr.slice(0, 300)}` });
    const seenAs = `status ${r.status}${r.timedOut ? `, killed at the deadline as ${r.timedOut}` : ''}; stderr ${JSON.stringify(r.stderr.slice(0, 600))}; stdout ${JSON.stringify(r.stdout.slice(0, 200))}`;
    if (looksLikeCrash(r.stderr) || r.signal === 'SIGABRT') {
      s.crashes.push({ case: what, detail: `launch: ${seenAs}` });
      return;
    }
    if (expect === 'reject') {
      s.launchedRejected++;
      if (r.timedOut === 'supervisor') s.hangs.push({ case: what, detail: seenAs });
      else if (r.timedOut || r.status !== 1 || r.stdout !== '') s.invalidLaunches.push({ case: what, detail: seenAs });
      // Device matching runs before the segment checks (as in the reference), and names the device, not the file.
      else if (!oneLine(r.stderr) || (!r.stderr.includes(path) && !/Resource not declared|declared but not attached/.test(r.stderr))) {
        s.badRefusals.push({ case: what, detail: seenAs });
      }
      return;
    }
    s.launchedAccepted++;
    bump(s.acceptedOutcomes, outcome(r));
    if (r.timedOut === 'guest') s.ranKilledByTimeout++;
    else if (r.timedOut) s.hangs.push({ case: what, detail: seenAs });
    else if (r.stderr !== '' && (r.status !== 1 || !oneLine(r.stderr) || !r.stderr.startsWith('tendril: '))) {
      // The guest cannot write to fd 2: anything there is tendril's, and must be a one-line refusal.
      s.crashes.push({ case: what, detail: `launch: unexpected report: ${seenAs}` });
    }
  })));
  s.ms = Date.now() - t0;
  return s;
}
