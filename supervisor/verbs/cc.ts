// `tendril cc`: build a Solo5 spt guest from C (or assembly) sources with the
// host gcc, tendril's bindings and linker script, and a manifest note. The
// result also runs on the reference solo5-spt: notes and layout follow abi.md §5.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manifestNoteAsm, parseManifestJson, type Manifest } from '../../loader/manifest.js';
import { ToolchainError, UsageError } from '../errors.js';
import { BINDINGS_DIR, BINDINGS_OBJ, nativeHint, nativeProblem } from '../paths.js';

export { BINDINGS_OBJ };

const USAGE = `usage: tendril cc [--manifest FILE] -o OUT SOURCES... [CFLAGS...]
Build a Solo5 spt guest. SOURCES are .c, .S or .o files; other arguments are
passed to gcc. Without --manifest the guest declares no devices.
  --manifest FILE   JSON manifest: {"type":"solo5.manifest","version":1,"devices":[...]}
  -o OUT            output guest image
Environment: CC (default gcc).`;

function gccInclude(cc: string): string {
  const r = spawnSync(cc, ['-print-file-name=include'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new ToolchainError(`cannot run ${cc}: ${r.error?.message ?? r.stderr.trim()}`, 'install gcc (apt-get install gcc)');
  }
  return r.stdout.trim();
}

/** Compile flags shared with native/bindings/Makefile: freestanding, no libc, global SSP guard (abi.md §4). */
export function guestCflags(cc: string): string[] {
  return [
    '-std=gnu11', '-O2', '-g', '-Wall', '-ffreestanding', '-fno-pie', '-fno-pic', '-fno-plt',
    '-fno-omit-frame-pointer', '-fstack-protector-strong', '-mstack-protector-guard=global',
    '-fno-tree-loop-distribute-patterns', '-nostdinc', '-isystem', gccInclude(cc),
    '-I', join(BINDINGS_DIR, 'include'),
  ];
}

export function guestLdflags(): string[] {
  return [
    '-nostdlib', '-static', '-no-pie', '-Wl,-z,max-page-size=0x1000', '-Wl,-z,noexecstack',
    '-Wl,--build-id=none', `-Wl,-T,${join(BINDINGS_DIR, 'spt.lds')}`,
  ];
}

export interface CcRequest {
  output: string;
  inputs: string[];
  manifest: Manifest;
  cc?: string;
}

export function buildGuest(req: CcRequest): void {
  const cc = req.cc ?? process.env.CC ?? 'gcc';
  const bindingsProblem = nativeProblem(BINDINGS_OBJ, false);
  if (bindingsProblem) throw new ToolchainError(`the guest bindings are ${bindingsProblem} (${BINDINGS_OBJ})`, nativeHint());
  const tmp = mkdtempSync(join(tmpdir(), 'tendril-cc-'));
  try {
    const mft = join(tmp, 'manifest.S');
    writeFileSync(mft, manifestNoteAsm(req.manifest));
    const libgcc = spawnSync(cc, ['-print-libgcc-file-name'], { encoding: 'utf8' }).stdout.trim();
    const args = [...guestCflags(cc), ...guestLdflags(), '-o', req.output, ...req.inputs, mft, BINDINGS_OBJ, libgcc];
    const r = spawnSync(cc, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    if (r.error) throw new ToolchainError(`cannot run ${cc}: ${r.error.message}`);
    if (r.status !== 0) throw new ToolchainError(`${cc} failed (exit status ${r.status ?? r.signal}) building ${req.output}`, 'see the compiler messages above');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

export function loadManifestFile(path: string | undefined): Manifest {
  if (path === undefined) return { entries: 1, devices: [] };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`${path}: cannot read manifest: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseManifestJson(path, text);
}

export function ccVerb(argv: string[]): number {
  let output: string | undefined;
  let manifestPath: string | undefined;
  const inputs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (a === '-o' || a === '--manifest') {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`cc: ${a} needs a value`, USAGE.split('\n')[0]);
      if (a === '-o') output = v;
      else manifestPath = v;
    } else if (a.startsWith('--manifest=')) {
      manifestPath = a.slice('--manifest='.length);
    } else if (a.startsWith('-o') && a.length > 2) {
      output = a.slice(2);
    } else {
      inputs.push(a);
    }
  }
  if (!output) throw new UsageError('cc: missing -o OUT', USAGE.split('\n')[0]);
  if (!inputs.some((a) => !a.startsWith('-'))) throw new UsageError('cc: no source files', USAGE.split('\n')[0]);
  buildGuest({ output, inputs, manifest: loadManifestFile(manifestPath) });
  return 0;
}
