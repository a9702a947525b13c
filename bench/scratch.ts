// Where the benchmarks keep the files they make: a scratch directory in
// memory (tmpfs) when the machine has one, so disk writeback does not add
// noise, else under bench/tmp; and sparse disk images for the block guests.

import { accessSync, closeSync, constants as fsc, ftruncateSync, mkdirSync, mkdtempSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../tests/helpers.js';

/** bench/tmp: the benchmarks' build output and scratch files (git-ignored). */
export const BENCH_TMP = join(ROOT, 'bench/tmp');

/** A new private directory, in /dev/shm when it is writable, else in bench/tmp; the caller removes it. */
export function scratchDir(prefix: string): string {
  for (const base of ['/dev/shm', BENCH_TMP]) {
    try {
      mkdirSync(base, { recursive: true });
      accessSync(base, fsc.W_OK);
      return mkdtempSync(join(base, prefix));
    } catch {
      // the next one
    }
  }
  throw new Error('no writable scratch directory');
}

/** A sparse disk image of SIZE bytes. */
export function makeImage(path: string, size: number): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
}
