#!/usr/bin/env node
// Builds the native parts into native/build: whatever `make -C native` builds
// (the launch stub, serve's stub pool, the guest bindings that `tendril cc`
// links). It is the package's `install` script, so it runs in a development
// checkout and wherever the package is installed (npm install -g
// tendril-X.tgz): native code is compiled by the host that runs it, never
// shipped prebuilt. make keeps it incremental, so a second run (prepare's
// build after install's) does nothing.
//
// Missing tools or a failed compile end in one line saying what to do; the
// install then fails, rather than leaving commands that cannot launch.

import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const NATIVE_DIR = join(root, 'native');

// What the Makefiles call, and the Debian package that brings each.
const TOOLS = { make: 'make', gcc: 'gcc', ld: 'binutils', objcopy: 'binutils' };

const fail = (line) => {
  console.error(`tendril: ${line}`);
  process.exit(1);
};

const onPath = (cmd) => spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { stdio: 'ignore' }).status === 0;

/**
 * The native parts include a header generated from the TypeScript format
 * definitions (dist/loader/formats.js, via scripts/gen-formats.js). A package
 * ships dist/ built; a fresh checkout has none before `prepare` compiles it,
 * and prepare then builds the native parts itself.
 */
const FORMATS = join(root, 'dist/loader/formats.js');
const CHECKOUT = existsSync(join(root, 'tsconfig.json'));

export function buildNative() {
  // In a checkout, `npm install` runs prepare next, which compiles dist/ (the
  // headers come from it) and then builds this: building here, from a dist/
  // that may be stale or missing, could only fail or waste time.
  if (CHECKOUT && process.env.npm_lifecycle_event === 'install') process.exit(0);
  if (!existsSync(FORMATS)) {
    fail(`cannot build the native parts: ${FORMATS} is missing; ${CHECKOUT ? 'run npm run build' : 'the package is incomplete: reinstall tendril'}`);
  }
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    fail(`the native parts run on x86_64 Linux only (this host is ${process.platform}/${process.arch})`);
  }
  const missing = Object.keys(TOOLS).filter((cmd) => !onPath(cmd));
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((cmd) => TOOLS[cmd]))];
    fail(`cannot build the native parts in ${NATIVE_DIR}: ${missing.join(', ')} not found; ` +
      `install ${pkgs.join(', ')} (Debian: apt-get install ${pkgs.join(' ')}), then install tendril again`);
  }
  const jobs = process.env.MAKEFLAGS ? [] : [`-j${availableParallelism()}`];
  const r = spawnSync('make', ['-s', ...jobs, '-C', NATIVE_DIR], { stdio: 'inherit' });
  if (r.error) fail(`cannot run make: ${r.error.message}`);
  if (r.status !== 0) {
    fail(`building the native parts failed (make -C ${NATIVE_DIR}: ${r.signal ?? `exit ${r.status}`}); the compiler's messages are above`);
  }
}

if (import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) buildNative();
