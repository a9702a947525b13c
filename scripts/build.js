#!/usr/bin/env node
// Builds everything `npm install` promises in a checkout: the TypeScript (to
// dist/), the native parts (native/build/, see build-native.js), and the
// example guest. With --guests it also builds the test guests
// (tests/guests/build/), which `npm test` needs. Guests are rebuilt only when
// a source, a local header it includes or the bindings are newer.
//
// With --dist (the package's prepack) it builds only what the tarball ships
// prebuilt: dist/ from a clean slate, so that no output of a deleted source
// is packed. The native parts are built where the package is installed.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildNative } from './build-native.js';
import { bundle } from './bundle.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.error) {
    console.error(`build: cannot run ${cmd}: ${r.error.message}`);
    process.exit(1);
  }
  if (r.status !== 0) {
    console.error(`build: ${cmd} ${args.join(' ')} failed (exit ${r.status})`);
    process.exit(1);
  }
}

const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0);

// npm runs prepare after prepack when packing: prepack has built dist/, and
// nothing else of this checkout's build goes into the tarball.
const packing = ['pack', 'publish'].includes(process.env.npm_command ?? '');
if (process.env.npm_lifecycle_event === 'prepare' && packing) process.exit(0);

const dist = process.argv.includes('--dist');
if (dist) rmSync(join(root, 'dist'), { recursive: true, force: true });
run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', root]);
await bundle(root);
if (dist) process.exit(0);
buildNative();

const { buildGuest, loadManifestFile, BINDINGS_OBJ } = await import('../dist/supervisor/verbs/cc.js');

/** SRC and the local headers it includes ("name.h", followed through the headers). */
function withHeaders(src, seen = new Set()) {
  if (seen.has(src) || !existsSync(src)) return seen;
  seen.add(src);
  for (const m of readFileSync(src, 'utf8').matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)) withHeaders(join(dirname(src), m[1]), seen);
  return seen;
}

/** Builds OUT from SRC (+ an optional manifest JSON beside it) when out of date. */
function guest(src, out, manifest) {
  const deps = [...withHeaders(src), BINDINGS_OBJ, manifest].filter((p) => p && existsSync(p));
  if (mtime(out) > Math.max(...deps.map(mtime))) return;
  mkdirSync(dirname(out), { recursive: true });
  try {
    buildGuest({ output: out, inputs: [src], manifest: loadManifestFile(manifest) });
  } catch (e) {
    console.error(`build: ${e.message}`);
    process.exit(1);
  }
}

guest(join(root, 'examples/hello/hello.c'), join(root, 'examples/hello/hello.spt'));

/**
 * The tests drive real host tools: ping floods in network namespaces (ip,
 * ping), gdb on cores, rsvg-convert for the benchmark plots' PNGs, and
 * containerd with runc and the CNI bridge and host-local plugins (the CRI
 * tests). On a fresh Debian machine they may be missing; as root we install
 * them, otherwise we say what to install.
 */
function ensureHostTools() {
  const need = {
    ping: 'iputils-ping', gdb: 'gdb', ip: 'iproute2', containerd: 'containerd', 'rsvg-convert': 'librsvg2-bin', runc: 'runc',
    '/usr/lib/cni/bridge': 'containernetworking-plugins',
  };
  const has = (cmd) => (cmd.startsWith('/') ? existsSync(cmd) : spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0);
  const missing = Object.entries(need).filter(([cmd]) => !has(cmd)).map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    console.error(`build: the tests need ${missing.join(', ')}: apt-get install ${missing.join(' ')}`);
    process.exit(1);
  }
  console.error(`build: installing test tools: ${missing.join(' ')}`);
  run('apt-get', ['update', '-qq']);
  run('apt-get', ['install', '-y', '-qq', ...missing], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

if (process.argv.includes('--guests')) {
  ensureHostTools();

  // Host-side test tools (ordinary Linux programs, not guests).
  const tools = join(root, 'tests/tools');
  for (const f of readdirSync(tools).filter((f) => f.endsWith('.c'))) {
    const src = join(tools, f);
    const out = join(tools, 'build', f.slice(0, -2));
    if (mtime(out) > mtime(src)) continue;
    mkdirSync(dirname(out), { recursive: true });
    run('gcc', ['-O2', '-Wall', '-Werror', '-o', out, src]);
  }

  const dir = join(root, 'tests/guests');
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.c')).sort()) {
    const base = f.slice(0, -2);
    const json = join(dir, `${base}.json`);
    guest(join(dir, f), join(dir, 'build', `${base}.spt`), existsSync(json) ? json : undefined);
  }
}
