// Container state under the runtime root (--root, default /run/tendril-oci):
// ROOT/ID/state.json plus ROOT/ID/start.fifo, the FIFO the waiting stub
// reads its start byte from. The status is never stored: it is read from
// the process itself each time (alive and waiting → created, alive and
// started → running, stopped by SIGSTOP → paused, gone or a zombie or a
// different process under the same pid → stopped), so it cannot go stale
// when the guest exits on its own.

import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ContainerError } from './errors.js';
import { procStat, seccompMode } from './proc.js';

export const DEFAULT_ROOT = '/run/tendril-oci';
export const OCI_VERSION = '1.0.2';

export type Status = 'created' | 'running' | 'paused' | 'stopped';

export interface ContainerState {
  id: string;
  pid: number;
  /** /proc/PID/stat start time at create: guards against pid reuse. */
  startTime: string;
  bundle: string;
  rootfs: string;
  /** RFC 3339. */
  created: string;
  annotations: Record<string, string>;
  /** Set by `start` once the start byte is written. */
  started: boolean;
}

/** runc's rule for container ids: no path separators, nothing that could escape the root. */
export function checkId(id: string | undefined): string {
  if (!id) throw new ContainerError('container id cannot be empty');
  if (!/^[\w+.-]+$/.test(id) || id === '.' || id === '..') {
    throw new ContainerError(`invalid container id '${id}'`, 'use letters, digits, _ + - and .');
  }
  return id;
}

export const containerDir = (root: string, id: string) => join(root, id);
export const startFifo = (root: string, id: string) => join(root, id, 'start.fifo');
const stateFile = (root: string, id: string) => join(root, id, 'state.json');

export function exists(root: string, id: string): boolean {
  return existsSync(containerDir(root, id));
}

export function loadState(root: string, id: string): ContainerState {
  checkId(id);
  let text: string;
  try {
    text = readFileSync(stateFile(root, id), 'utf8');
  } catch {
    throw new ContainerError(`container ${id} does not exist`);
  }
  return JSON.parse(text) as ContainerState;
}

/** Written whole and renamed into place, so a reader never sees half a file. */
export function saveState(root: string, st: ContainerState): void {
  const tmp = join(containerDir(root, st.id), '.state.json.tmp');
  writeFileSync(tmp, JSON.stringify(st));
  renameSync(tmp, stateFile(root, st.id));
}

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

/** Whether the recorded process is still the container's (same pid, same start time, not yet exited). */
export function alive(st: Pick<ContainerState, 'pid' | 'startTime'>): boolean {
  const p = procStat(st.pid);
  return p !== undefined && p.startTime === st.startTime && p.state !== 'Z' && p.state !== 'X';
}

export function statusOf(st: ContainerState): Status {
  const p = procStat(st.pid);
  if (!p || p.startTime !== st.startTime || p.state === 'Z' || p.state === 'X') return 'stopped';
  if (p.state === 'T') return 'paused';
  // The stub waits with seccomp off; the guest always runs under its filter (mode 2).
  if (st.started || seccompMode(st.pid) === 2) return 'running';
  return 'created';
}

/** The JSON of `state ID`: the OCI runtime spec's fields, plus runc's rootfs, created and owner. */
export function stateJson(st: ContainerState): Record<string, unknown> {
  const status = statusOf(st);
  return {
    ociVersion: OCI_VERSION,
    id: st.id,
    pid: status === 'stopped' ? 0 : st.pid,
    status,
    bundle: st.bundle,
    rootfs: st.rootfs,
    created: st.created,
    owner: '',
    annotations: st.annotations,
  };
}
