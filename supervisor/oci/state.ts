// A unikernel container's directory under the runtime root (--root):
// ROOT/ID/ with the start FIFO the loaded guest waits on, and the record
// (contract.ts) that create writes last, once the guest waits. The native
// front reads the record for every later command; the container's status
// is never stored, it is read from the process each time.

import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatState, START_FIFO, STATE_FILE, type StateRecord } from './contract.js';
import { ContainerError } from './errors.js';

/** runc's rule for container ids: no path separators, nothing that could escape the root. */
export function checkId(id: string | undefined): string {
  if (!id) throw new ContainerError('container id cannot be empty');
  if (!/^[\w+.-]+$/.test(id) || id === '.' || id === '..') {
    throw new ContainerError(`invalid container id '${id}'`, 'use letters, digits, _ + - and .');
  }
  return id;
}

export const containerDir = (root: string, id: string) => join(root, id);
export const startFifo = (root: string, id: string) => join(root, id, START_FIFO);

export function createContainerDir(root: string, id: string): string {
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const dir = containerDir(root, id);
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new ContainerError(`container with id ${id} already exists`);
    throw e;
  }
  return dir;
}

export function removeContainerDir(root: string, id: string): void {
  rmSync(containerDir(root, id), { recursive: true, force: true });
}

/** Written whole and renamed into place, so a reader never sees half a record. */
export function saveState(root: string, id: string, r: StateRecord): void {
  const tmp = join(containerDir(root, id), `.${STATE_FILE}.tmp`);
  writeFileSync(tmp, formatState(r));
  renameSync(tmp, join(containerDir(root, id), STATE_FILE));
}
