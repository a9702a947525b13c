#!/usr/bin/env node
// Writes native/build/include/tendril_formats.h from loader/formats.ts (via
// its compiled dist/loader/formats.js): the one definition of every format
// TypeScript and C share. Rewritten only when its text changes, so make does
// not rebuild the native parts for nothing.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const compiled = join(root, 'dist/loader/formats.js');
if (!existsSync(compiled)) {
  console.error('gen-formats: dist/loader/formats.js is missing; build the TypeScript first (npm run build)');
  process.exit(1);
}
const { cHeader } = await import(compiled);
const out = join(root, 'native/build/include/tendril_formats.h');
const text = cHeader();
if (!existsSync(out) || readFileSync(out, 'utf8') !== text) {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, text);
}
