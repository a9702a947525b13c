// One fuzzing campaign over the three untrusted inputs of tendril: guest
// images, manifest JSON, and `run` command lines. Used by `npm run fuzz`
// (tests/fuzz/run.ts) and, with a fixed seed and small numbers, by
// tests/fuzz.test.ts.

import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guest } from '../helpers.js';
import { makeCliScratch, runCliCampaign, type CliSummary } from './cli.js';
import { runElfCampaign, type ElfSummary, type Finding } from './elf.js';
import { runManifestCampaign, type ManifestSummary } from './manifest.js';
import { KNOWN_ISSUES } from './known.js';
import { makeBase, type Base } from './mutate.js';

export interface CampaignOptions {
  seed: number;
  elfCases: number;
  elfLaunches: number;
  manifestCases: number;
  manifestLaunches: number;
  cliCases: number;
  cliLaunches: number;
  concurrency: number;
  timeoutMs: number;
  log?: (line: string) => void;
}

export interface CampaignResult {
  elf: ElfSummary;
  manifest: ManifestSummary;
  cli: CliSummary;
  /** Everything that must be zero. */
  failures: { kind: string; finding: Finding }[];
  /** Findings that match a known, reported bug (tests/fuzz/known.ts): printed, not counted as failures. */
  known: { kind: string; finding: Finding }[];
}

/** Valid guests to mutate: the plain hello, one with a TLS segment, one with a disk. */
export const BASE_GUESTS = ['test_hello', 'test_tls', 'test_blk'];

export function loadBases(): Base[] {
  return BASE_GUESTS.filter((n) => existsSync(guest(n))).map((n) => makeBase(n, readFileSync(guest(n))));
}

export async function runCampaign(o: CampaignOptions): Promise<CampaignResult> {
  const log = o.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), 'tendril-fuzz-'));
  try {
    const bases = loadBases();
    if (bases.length === 0) throw new Error('no base guests: build them first (node scripts/build.js --guests)');
    const disk = join(dir, 'disk.img');
    writeFileSync(disk, Buffer.alloc(64 << 10));
    log(`seed ${o.seed}; bases: ${bases.map((b) => `${b.name} (${b.bytes.length} bytes)`).join(', ')}`);

    const elf = await runElfCampaign({
      seed: o.seed, cases: o.elfCases, bases, launches: o.elfLaunches, concurrency: o.concurrency, timeoutMs: o.timeoutMs,
      dir, baseOptions: { test_blk: [`--block:storage=${disk}`] }, log,
    });
    log(`images: done in ${elf.ms} ms`);
    const manifest = await runManifestCampaign({
      seed: o.seed, cases: o.manifestCases, launches: o.manifestLaunches, concurrency: o.concurrency, dir, timeoutMs: o.timeoutMs, log,
    });
    log(`manifests: done in ${manifest.ms} ms`);
    const cli = await runCliCampaign({
      seed: o.seed, cases: o.cliCases, launches: o.cliLaunches, concurrency: o.concurrency, scratch: makeCliScratch(join(dir, 'cli')), timeoutMs: o.timeoutMs,
    });
    log(`command lines: done in ${cli.ms} ms`);

    const failures: CampaignResult['failures'] = [];
    const known: CampaignResult['known'] = [];
    const add = (kind: string, list: Finding[]) => list.forEach((finding) => (finding.known ? known : failures).push({ kind, finding }));
    add('image: supervisor crash', elf.crashes);
    add('image: hang', elf.hangs);
    add('image: guest launched from an invalid image', elf.invalidLaunches);
    add('image: refusal not one line naming the file', elf.badRefusals);
    add('manifest: crash', manifest.crashes);
    add('manifest: parser disagrees with the spec model', manifest.disagreements);
    add('manifest: gen-manifest broke its contract', manifest.badRuns);
    add('manifest: hang', manifest.hangs);
    add('run options: crash', cli.crashes);
    add('run options: status/stderr outside the contract', cli.badRuns);
    add('run options: hang', cli.hangs);
    return { elf, manifest, cli, failures, known };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const top = (m: Record<string, number>, n: number) => Object.entries(m).sort((a, b) => b[1] - a[1]).slice(0, n)
  .map(([k, v]) => `    ${String(v).padStart(6)}  ${k}`).join('\n');

/** "3" or "3 (2 known)". */
const n = (list: Finding[]) => {
  const k = list.filter((f) => f.known).length;
  return k ? `${list.length} (${k} known)` : String(list.length);
};

export function formatSummary(r: CampaignResult, verbose = false): string {
  const { elf: e, manifest: m, cli: c } = r;
  const lines = [
    `guest images (seed ${e.seed}, --mem=2): ${e.cases} cases, ${e.rejected} rejected, ${e.accepted} accepted (${e.ms} ms)`,
    `  supervisor crashes: ${n(e.crashes)}   hangs: ${n(e.hangs)}   guest launched from an invalid image: ${n(e.invalidLaunches)}   bad refusals: ${n(e.badRefusals)}`,
    `  real launches: ${e.launched} (${e.launchedAccepted} accepted images, ${e.launchedRejected} rejected images); ran and killed at the deadline: ${e.ranKilledByTimeout}`,
    '  outcomes of the accepted images that were launched:',
    top(e.acceptedOutcomes, verbose ? 100 : 12),
    `  rejections by kind (${Object.keys(e.rejectionClasses).length} kinds${verbose ? '' : ', top 15'}):`,
    top(e.rejectionClasses, verbose ? 1000 : 15),
    `manifest JSON: ${m.cases} cases (${m.valid} valid, ${m.invalid} invalid by the model), ${m.launched} gen-manifest runs (${m.ms} ms)`,
    `  crashes: ${n(m.crashes)}   parser/model disagreements: ${n(m.disagreements)}   contract violations: ${n(m.badRuns)}   hangs: ${n(m.hangs)}`,
    `run command lines: ${c.cases} cases (${c.parsedOk} parsed, ${c.refusedInProcess} refused in-process), ${c.launched} real runs (${c.ms} ms)`,
    `  crashes: ${n(c.crashes)}   contract violations: ${n(c.badRuns)}   hangs: ${n(c.hangs)}`,
    '  outcomes (parse verdict → status):',
    top(c.outcomes, 20),
  ];
  const byKnown = new Map<string, { kind: string; finding: Finding }[]>();
  for (const k of r.known) byKnown.set(k.finding.known!, [...(byKnown.get(k.finding.known!) ?? []), k]);
  lines.push(`KNOWN ISSUES hit: ${r.known.length}${r.known.length ? ' (reported tendril bugs, see tests/fuzz/known.ts)' : ''}`);
  for (const [id, hits] of byKnown) {
    const issue = KNOWN_ISSUES[id];
    lines.push(`  ${hits.length} × [${id}] ${issue?.title ?? ''}`, `      e.g. ${hits[0].finding.case}`, `      ${hits[0].finding.detail.split('\n')[0].slice(0, 300)}`);
  }
  const unstable = [...e.unstable, ...m.unstable, ...c.unstable];
  lines.push(`UNSTABLE (a crash-looking run that did not repeat, e.g. dist/ rebuilt during the campaign): ${unstable.length}`);
  for (const u of unstable.slice(0, verbose ? unstable.length : 3)) lines.push(`      ${u.case}: ${u.detail.split('\n')[0].slice(0, 200)}`);
  lines.push(`TOTAL: ${r.failures.length} new failure(s): ` +
    `${e.crashes.filter((f) => !f.known).length} image crashes, ${e.hangs.filter((f) => !f.known).length} image hangs, ` +
    `${e.invalidLaunches.filter((f) => !f.known).length} invalid launches, ` +
    `${m.crashes.filter((f) => !f.known).length + c.crashes.filter((f) => !f.known).length} manifest/option crashes, ` +
    `${m.hangs.length + c.hangs.filter((f) => !f.known).length} manifest/option hangs, ` +
    `${r.failures.filter((f) => /refusal|contract|disagrees/.test(f.kind)).length} contract violations`);
  const shown = verbose ? r.failures : r.failures.slice(0, 30);
  for (const f of shown) lines.push(`  [${f.kind}] ${f.finding.case}\n      ${f.finding.detail.split('\n').slice(0, 8).join('\n      ')}`);
  if (shown.length < r.failures.length) lines.push(`  … ${r.failures.length - shown.length} more (use --verbose)`);
  return lines.join('\n');
}
