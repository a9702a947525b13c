#!/usr/bin/env node
// Drop-in for solo5-spt: `tendril-spt ARGS` is `tendril run ARGS`.
import { importBuilt } from './built.js';

const [{ report }, { runVerb }] = await Promise.all([
  importBuilt('tendril-spt', 'supervisor/cli.js'),
  importBuilt('tendril-spt', 'supervisor/verbs/run.js'),
]);

try {
  process.exitCode = await runVerb(process.argv.slice(2), 'tendril-spt');
} catch (e) {
  process.exitCode = report('tendril-spt', e);
}
