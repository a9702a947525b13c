// Where the built native parts are (native/build, made by `npm install`),
// in a module of its own so that light paths (tendril-oci create) can know
// them without loading the launch machinery.

import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from dist/supervisor. */
export const ROOT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const NATIVE_BUILD = resolve(ROOT_DIR, 'native/build');
export const STUB_PATH = resolve(NATIVE_BUILD, 'tendril-stub');
export const ZYGOTE_PATH = resolve(NATIVE_BUILD, 'tendril-zygote');
export const BINDINGS_DIR = resolve(ROOT_DIR, 'native/bindings');
export const BINDINGS_OBJ = resolve(NATIVE_BUILD, 'bindings.o');
