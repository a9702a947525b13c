// `npm run fuzz -- [--cases N] [--seed N] [--launches N] [--manifests N]
//   [--manifest-launches N] [--cli N] [--cli-launches N] [--concurrency N]
//   [--timeout MS] [--verbose]`
//
// Mutates valid guests, manifests and run command lines (tests/fuzz/*.ts),
// checks every case in-process and a capped sample for real, prints a
// summary, and exits 1 if tendril crashed, hung, launched a guest from an
// image it should have refused, or broke its one-line error contract.

import minimist from 'minimist';
import { formatSummary, runCampaign } from './campaign.js';

const argv = minimist(process.argv.slice(2), {
  string: ['cases', 'seed', 'launches', 'manifests', 'manifest-launches', 'cli', 'cli-launches', 'concurrency', 'timeout'],
  boolean: ['verbose', 'help'],
});

if (argv.help) {
  process.stdout.write(`usage: npm run fuzz -- [--cases N] [--seed N] [--launches N] [--manifests N] [--manifest-launches N]
                     [--cli N] [--cli-launches N] [--concurrency N] [--timeout MS] [--verbose]
  --cases N             mutated guest images checked in-process (default 10000)
  --seed N              campaign seed (default: random; printed, so a run can be replayed)
  --launches N          of those, real \`tendril run\` launches at most (default 300)
  --manifests N         manifest JSON cases (default 2000); --manifest-launches N real runs (default 150)
  --cli N               run command lines (default 2000); --cli-launches N real runs (default 300)
  --concurrency N       launches at a time (default 2)
  --timeout MS          deadline of one launch (default 10000)
`);
  process.exit(0);
}

function int(name: string, dflt: number): number {
  const v = argv[name];
  if (v === undefined) return dflt;
  if (!/^[0-9]+$/.test(String(v))) {
    process.stderr.write(`fuzz: --${name} must be a whole number\n`);
    process.exit(2);
  }
  return Number(v);
}

const seed = int('seed', Math.floor(Math.random() * 0x7fffffff));
const t0 = Date.now();
const result = await runCampaign({
  seed,
  elfCases: int('cases', 10_000),
  elfLaunches: int('launches', 300),
  manifestCases: int('manifests', 2000),
  manifestLaunches: int('manifest-launches', 150),
  cliCases: int('cli', 2000),
  cliLaunches: int('cli-launches', 300),
  concurrency: Math.max(1, int('concurrency', 2)),
  timeoutMs: int('timeout', 10_000),
  log: (line) => process.stderr.write(`fuzz: ${line}\n`),
});
process.stdout.write(`${formatSummary(result, Boolean(argv.verbose))}\n`);
process.stdout.write(`(seed ${seed}, ${((Date.now() - t0) / 1000).toFixed(1)} s; replay with --seed ${seed})\n`);
process.exitCode = result.failures.length === 0 ? 0 : 1;
