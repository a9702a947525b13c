// `npm run bench`: runs every benchmark module in turn, prints a markdown
// table (tendril vs a baseline measured in the same run, and their ratio),
// and writes it with the raw figures to bench/results/<YYYY-MM-DD>.md.
// A benchmark that fails is reported in the table; the others still run.

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../tests/helpers.js';
import { bench as block } from './block.js';
import { bench as isolate } from './isolate.js';
import { bench as launch } from './launch.js';
import { bench as net } from './net.js';
import { TABLE_HEADER, tableRow, type Bench, type BenchResult } from './common.js';

const BENCHES: Bench[] = [launch, net, block, isolate];

const results: BenchResult[] = [];
const failures: { name: string; error: string }[] = [];
console.log(TABLE_HEADER);
for (const b of BENCHES) {
  try {
    const rows = await b.run();
    results.push(...rows);
    for (const r of rows) console.log(tableRow(r));
  } catch (e) {
    const error = (e as Error).message.split('\n')[0];
    failures.push({ name: b.name, error });
    console.log(`| ${b.name}: FAILED: ${error} | | | |`);
  }
}

const now = new Date();
const day = now.toISOString().slice(0, 10);
const lines = [
  `# tendril benchmarks, ${day}`,
  '',
  `${now.toISOString()}; Node ${process.version}; Linux ${release()}; ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}.`,
  'Each ratio is tendril / a baseline measured in the same run (higher is better for both units).',
  '',
  TABLE_HEADER,
  ...results.map(tableRow),
  ...failures.map((f) => `| ${f.name}: FAILED: ${f.error} | | | |`),
  '',
  ...results.map((r) => `- **${r.name}** baseline: ${r.baselineIs}.`),
  '',
  '```json',
  JSON.stringify({ date: now.toISOString(), results, failures }, null, 2),
  '```',
  '',
];
const dir = join(ROOT, 'bench/results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `${day}.md`);
writeFileSync(file, lines.join('\n'));
console.log(`\nwritten: ${file}`);
process.exitCode = failures.length ? 1 : 0;
