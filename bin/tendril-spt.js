#!/usr/bin/env node
// Drop-in for solo5-spt: `tendril-spt ARGS` is `tendril run ARGS`.
import { report } from '../dist/supervisor/cli.js';
import { runVerb } from '../dist/supervisor/verbs/run.js';

try {
  process.exitCode = await runVerb(process.argv.slice(2), 'tendril-spt');
} catch (e) {
  process.exitCode = report('tendril-spt', e);
}
