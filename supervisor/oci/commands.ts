// The lifecycle commands after create: start, state, kill, pause/resume,
// ps, delete; and features. They act on the recorded pid only while it is
// still the container's process (state.ts checks its start time).

import { closeSync, constants as fsc, openSync, writeSync } from 'node:fs';
import { constants } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { ContainerError } from './errors.js';
import { seccompMode } from './proc.js';
import { alive, exists, loadState, removeContainerDir, saveState, startFifo, stateJson, statusOf, OCI_VERSION, type ContainerState } from './state.js';

const SIGNALS = constants.signals as Record<string, number>;

/** SIGKILL, KILL, kill or 9. */
export function parseSignal(word: string | undefined): number {
  if (word === undefined) return SIGNALS.SIGTERM;
  if (/^[0-9]+$/.test(word)) {
    const n = Number(word);
    if (n >= 1 && n <= 64) return n;
  } else {
    const name = word.toUpperCase();
    const n = SIGNALS[name.startsWith('SIG') ? name : `SIG${name}`];
    if (n !== undefined) return n;
  }
  throw new ContainerError(`unknown signal '${word}'`, 'use a name (SIGTERM, KILL) or a number (1-64)');
}

function signal(st: ContainerState, sig: number): void {
  try {
    process.kill(st.pid, sig);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') throw new ContainerError(`container ${st.id} is not running`);
    throw e;
  }
}

/** Waits (bounded) until the process is gone or a zombie; the shim reaps it, not us. */
async function waitGone(st: ContainerState, ms = 10_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (alive(st)) {
    if (Date.now() > end) return false;
    await sleep(2);
  }
  return true;
}

export async function start(root: string, id: string): Promise<void> {
  const st = loadState(root, id);
  const status = statusOf(st);
  if (status !== 'created') throw new ContainerError(`cannot start container ${id}: it is ${status}, not created`);
  let fd: number;
  try {
    // The stub holds the FIFO open for reading (O_RDWR), so this cannot block.
    fd = openSync(startFifo(root, id), fsc.O_WRONLY | fsc.O_NONBLOCK);
  } catch (e) {
    throw new ContainerError(`cannot start container ${id}: the guest is no longer waiting (${(e as NodeJS.ErrnoException).code})`);
  }
  try {
    writeSync(fd, 'S');
  } finally {
    closeSync(fd);
  }
  saveState(root, { ...st, started: true });
  // Return once the guest runs under its filter (or has already ended), as runc returns after exec.
  const end = Date.now() + 5000;
  while (alive(st) && seccompMode(st.pid) !== 2 && Date.now() < end) await sleep(1);
}

export function state(root: string, id: string): string {
  return `${JSON.stringify(stateJson(loadState(root, id)), null, 2)}\n`;
}

export function kill(root: string, id: string, sigWord: string | undefined, _all: boolean): void {
  // --all: every process of the container; a tendril container has exactly one.
  const sig = parseSignal(sigWord);
  const st = loadState(root, id);
  if (statusOf(st) === 'stopped') throw new ContainerError(`container ${id} is not running`);
  signal(st, sig);
}

export function pause(root: string, id: string): void {
  const st = loadState(root, id);
  const status = statusOf(st);
  if (status !== 'running') throw new ContainerError(`cannot pause container ${id}: it is ${status}, not running`);
  signal(st, SIGNALS.SIGSTOP);
}

export function resume(root: string, id: string): void {
  const st = loadState(root, id);
  const status = statusOf(st);
  if (status !== 'paused') throw new ContainerError(`cannot resume container ${id}: it is ${status}, not paused`);
  signal(st, SIGNALS.SIGCONT);
}

export function ps(root: string, id: string, format: string): string {
  const st = loadState(root, id);
  const pids = statusOf(st) === 'stopped' ? [] : [st.pid];
  if (format === 'json') return `${JSON.stringify(pids)}\n`;
  return `PID\n${pids.map((p) => `${p}\n`).join('')}`;
}

export async function remove(root: string, id: string, force: boolean): Promise<void> {
  if (!exists(root, id)) {
    // As runc: deleting what is not there is an error, unless forced.
    if (force) return;
    throw new ContainerError(`container ${id} does not exist`);
  }
  let st: ContainerState;
  try {
    st = loadState(root, id);
  } catch {
    removeContainerDir(root, id); // a create that died half-way: nothing runs
    return;
  }
  const status = statusOf(st);
  if (status === 'running' || status === 'paused') {
    if (!force) throw new ContainerError(`cannot delete container ${id} that is not stopped: ${status}`, 'stop it first, or use delete --force');
  }
  if (status !== 'stopped') {
    // A created container never ran: deleting it ends the waiting stub, as runc does.
    try {
      signal(st, SIGNALS.SIGKILL);
      if (status === 'paused') signal(st, SIGNALS.SIGCONT);
    } catch (e) {
      if (!(e instanceof ContainerError)) throw e; // it ended on its own meanwhile
    }
    if (!(await waitGone(st))) throw new ContainerError(`container ${id} did not stop after SIGKILL`);
  }
  removeContainerDir(root, id);
}

/** `features`: what this runtime supports (runtime spec, features.md). */
export function features(): string {
  return `${JSON.stringify({
    ociVersionMin: '1.0.0',
    ociVersionMax: OCI_VERSION,
    hooks: [],
    mountOptions: [],
    linux: {
      namespaces: ['pid', 'ipc', 'uts', 'mount', 'network', 'cgroup'],
      capabilities: [],
      cgroup: { v1: false, v2: false, systemd: false, systemdUser: false },
      seccomp: { enabled: false },
      apparmor: { enabled: false },
      selinux: { enabled: false },
    },
    annotations: {
      'org.tendril.runtime': 'tendril-oci: Solo5 spt unikernels under a seccomp allowlist of nine system calls',
      'org.tendril.annotations': 'org.tendril.{mem, net.NAME, net-mac.NAME, block.NAME, block-ro.NAME, block-sector-size.NAME}',
    },
  }, null, 2)}\n`;
}
