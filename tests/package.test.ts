// The package as an operator gets it: `npm pack` of the project, installed
// with `npm install -g` into a prefix of this test's own. The installed
// commands must run a guest, build one from C with the installed bindings, and
// say in one line what to do when the native build is missing.
//
// The pack runs in a copy of the checkout without dist/ but with this
// machine's build output (native/build, test guests, objects), so that the
// tarball's dist/ can only come from prepack and the absence of build output
// can only come from the `files` whitelist. The copy shares node_modules
// (typescript for prepack) by a symlink, and never rewrites the checkout's
// dist/ that the other test files are running from.

import test from 'ava';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { guest, oneLine, ROOT, runCmd, type RunResult } from './helpers.js';

/** Packing compiles the whole TypeScript tree and installing compiles native/: minutes under load, at worst. */
const NPM_TIMEOUT_MS = 5 * 60_000;

const VERSION: string = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version;
const work = mkdtempSync(join(tmpdir(), 'tendril-package-'));
const src = join(work, 'src');
const prefix = join(work, 'prefix');
const installed = join(prefix, 'lib/node_modules/tendril');
const bin = (name: string) => join(prefix, 'bin', name);

let tarball = '';
let entries: string[] = [];

/**
 * npm as an operator runs it: without the npm_* variables of the `npm test`
 * that may have started us (npm reads npm_config_* as its own settings).
 */
function npm(args: string[], cwd: string): RunResult {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
  return runCmd('npm', args, { cwd, env, timeout: NPM_TIMEOUT_MS });
}

const TOP_LEVEL_SKIPPED = new Set(['.git', 'node_modules', 'dist']);

test.before('pack a copy of the checkout and install the tarball', (t) => {
  t.timeout(2 * NPM_TIMEOUT_MS + 60_000);
  cpSync(ROOT, src, {
    recursive: true,
    filter: (from) => {
      const rel = relative(ROOT, from);
      return !TOP_LEVEL_SKIPPED.has(rel.split(sep)[0]) && !rel.startsWith(`bench${sep}tmp`);
    },
  });
  symlinkSync(join(ROOT, 'node_modules'), join(src, 'node_modules'));

  const pack = npm(['pack', '--pack-destination', work], src);
  if (pack.status !== 0) throw new Error(`npm pack failed (${pack.status}): ${pack.stderr}`);
  const tgz = readdirSync(work).filter((f) => f.endsWith('.tgz'));
  if (tgz.length !== 1) throw new Error(`npm pack made ${tgz.join(', ') || 'no tarball'}`);
  tarball = join(work, tgz[0]);
  const list = runCmd('tar', ['-tzf', tarball]);
  if (list.status !== 0) throw new Error(`tar -tzf ${tarball}: ${list.stderr}`);
  entries = list.stdout.split('\n').filter(Boolean).map((e) => e.replace(/^package\//, ''));

  mkdirSync(prefix);
  const install = npm(['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], work);
  if (install.status !== 0) throw new Error(`npm install -g ${tarball} failed (${install.status}): ${install.stderr}`);
});

test.after.always('remove the copy, the tarball and the prefix', () => {
  rmSync(work, { recursive: true, force: true });
});

test.serial('the tarball has the compiled supervisor and the native sources, and no build output of this machine', (t) => {
  // What the copy held: the whitelist, not an empty tree, is what keeps it out.
  for (const p of ['native/build/tendril-stub', 'native/build/bindings-obj/start.o', 'tests/guests/build/test_hello.spt']) {
    t.true(existsSync(join(src, p)), `the packed copy has ${p}`);
  }
  for (const p of [
    'package.json', 'README.md', 'bin/tendril.cjs', 'bin/tendril-spt.cjs', 'bin/tendril-oci',
    'dist/supervisor/cli.js', 'dist/supervisor/oci/create-main.js', 'native/oci/main.c', 'native/oci/Makefile', 'dist/loader/elf.js', 'dist/filters/policy.js',
    'scripts/build-native.js', 'native/Makefile', 'native/stub/stub.c', 'native/zygote/zygote.c',
    'native/bindings/Makefile', 'native/bindings/spt.lds', 'native/bindings/include/solo5.h',
  ]) {
    t.true(entries.includes(p), `the tarball has ${p}`);
  }
  const unwanted = entries.filter((e) => /\.(o|spt|tgz)$/.test(e) || /^(native\/build|tests|dist\/tests|dist\/bench|bench|node_modules)\//.test(e));
  t.deepEqual(unwanted, []);
});

test.serial('the install built the native parts', (t) => {
  for (const p of ['tendril-stub', 'tendril-zygote', 'bindings.o', 'tendril-oci']) {
    t.true(existsSync(join(installed, 'native/build', p)), `${p} was built at install`);
  }
});

test.serial('installed tendril-spt runs a guest', (t) => {
  const r = runCmd(bin('tendril-spt'), ['--mem=2', guest('test_hello'), 'Hello_Solo5']);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /Hello, World\n/);
  t.regex(r.stdout, /Command line is: 'Hello_Solo5'\n/);
  t.regex(r.stdout, /SUCCESS/);
  t.is(r.stderr, '');
});

test.serial('installed tendril, tendril-spt and tendril-oci print their version', (t) => {
  const version = new RegExp(`\\b${VERSION.replace(/\./g, '\\.')}\\b`);
  const tendril = runCmd(bin('tendril'), ['--version']);
  t.is(tendril.status, 0, tendril.stderr);
  t.regex(tendril.stdout, new RegExp(`^tendril ${version.source}`));
  for (const name of ['tendril-spt', 'tendril-oci']) {
    const r = runCmd(bin(name), ['--version']);
    t.is(r.status, 0, `${name}: ${r.stderr}`);
    t.regex(r.stdout + r.stderr, version, name);
  }
});

test.serial('installed tendril cc builds a guest from C with the installed bindings', (t) => {
  const app = join(work, 'app.c');
  const out = join(work, 'app.spt');
  writeFileSync(app, `#include <solo5.h>
static const char msg[] = "built by the installed tendril cc\\n";
int solo5_app_main(const struct solo5_start_info *si) {
    (void)si;
    solo5_console_write(msg, sizeof msg - 1);
    return 7;
}
`);
  const cc = runCmd(bin('tendril'), ['cc', '-o', out, app]);
  t.is(cc.status, 0, cc.stderr);
  const r = runCmd(bin('tendril'), ['run', '--mem=2', out, '--solo5:quiet']);
  t.is(r.status, 7, r.stderr);
  t.is(r.stdout, 'built by the installed tendril cc\n');
});

test.serial('without its native build the installed package says so in one line, and npm rebuild restores it', (t) => {
  const built = join(installed, 'native/build');
  renameSync(built, `${built}.gone`);
  const run = runCmd(bin('tendril-spt'), ['--mem=2', guest('test_hello')]);
  t.is(run.status, 1);
  t.true(oneLine(run.stderr), run.stderr);
  t.regex(run.stderr, /^tendril-spt: the native stub is missing \(.*\/native\/build\/tendril-stub\); reinstall tendril .*npm rebuild -g tendril\n$/);
  const cc = runCmd(bin('tendril'), ['cc', '-o', join(work, 'none.spt'), join(work, 'app.c')]);
  t.is(cc.status, 1);
  t.true(oneLine(cc.stderr), cc.stderr);
  t.regex(cc.stderr, /^tendril: the guest bindings are missing \(.*\/native\/build\/bindings\.o\); reinstall tendril/);
  t.false(existsSync(join(work, 'none.spt')));

  // The hint's own advice works: the install script builds native/ again.
  const rebuild = npm(['rebuild', '-g', '--prefix', prefix, 'tendril'], work);
  t.is(rebuild.status, 0, rebuild.stderr);
  const again = runCmd(bin('tendril-spt'), ['--mem=2', guest('test_hello'), 'Hello_Solo5']);
  t.is(again.status, 0, again.stderr);
  t.regex(again.stdout, /SUCCESS/);
});
