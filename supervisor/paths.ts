// Where the built native parts are (native/build, made by `npm install`),
// in a module of its own so that light paths (tendril-oci create) can know
// them without loading the launch machinery.

import { accessSync, closeSync, constants, existsSync, openSync, readSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from dist/supervisor. */
export const ROOT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const NATIVE_BUILD = resolve(ROOT_DIR, 'native/build');
export const STUB_PATH = resolve(NATIVE_BUILD, 'tendril-stub');
export const ZYGOTE_PATH = resolve(NATIVE_BUILD, 'tendril-zygote');
export const BINDINGS_DIR = resolve(ROOT_DIR, 'native/bindings');
export const BINDINGS_OBJ = resolve(NATIVE_BUILD, 'bindings.o');

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

/**
 * Why a built native part cannot be used, or undefined if it looks whole:
 * 'missing' (never built: no gcc at install, or removed), 'not an ELF file'
 * (a build cut short), 'not executable'. Checked before a launch so that the
 * answer is one line, not a failed exec in a child or a zygote.
 */
export function nativeProblem(path: string, executable = true): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'missing' : `unreadable (${code})`;
  }
  try {
    const head = Buffer.alloc(ELF_MAGIC.length);
    if (readSync(fd, head, 0, head.length, 0) !== head.length || !head.equals(ELF_MAGIC)) return 'not an ELF file';
  } finally {
    closeSync(fd);
  }
  if (executable) {
    try {
      accessSync(path, constants.X_OK);
    } catch {
      return 'not executable';
    }
  }
  return undefined;
}

/**
 * What to do about a missing or broken native part. The native parts are
 * built by the package's install script, with the host's gcc and make: in a
 * development checkout (its TypeScript sources are there) that is `npm
 * install`; an installed package is reinstalled or rebuilt in place.
 */
export function nativeHint(): string {
  if (existsSync(resolve(ROOT_DIR, 'supervisor/paths.ts'))) return `run npm install in ${ROOT_DIR} (it builds native/ with gcc and make)`;
  return 'reinstall tendril on a host with gcc and make, or rebuild it in place: npm rebuild -g tendril';
}
