// The machine a run measured, for the report's header and every plot's caption:
// figures from different machines (or from one with NODE_EXTRA_CA_CERTS set,
// which triples Node's start) must not be compared unlabelled.

import { statSync } from 'node:fs';
import { cpus, hostname, release, totalmem } from 'node:os';

export interface Machine {
  host: string;
  cpu: string;
  cores: number;
  memGiB: number;
  kernel: string;
  node: string;
  /** NODE_EXTRA_CA_CERTS as the run found it, with the file's size. */
  nodeExtraCaCerts: { path: string; bytes: number | null } | null;
}

export function describeMachine(): Machine {
  const ca = process.env.NODE_EXTRA_CA_CERTS;
  let bytes: number | null = null;
  try {
    if (ca) bytes = statSync(ca).size;
  } catch {
    bytes = null; // set but not a readable file: Node warns and goes on
  }
  return {
    host: hostname(),
    cpu: (cpus()[0]?.model ?? 'unknown CPU').replace(/\s+/g, ' ').trim(),
    cores: cpus().length,
    memGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    nodeExtraCaCerts: ca ? { path: ca, bytes } : null,
  };
}

/** One line: "host · 2 × CPU · 24 GiB · Linux 6.1 · Node v20.1.0". */
export function machineLine(m: Machine): string {
  return `${m.host} · ${m.cores} × ${m.cpu} · ${m.memGiB} GiB · Linux ${m.kernel} · Node ${m.node}`;
}

export function caLine(m: Machine): string {
  const ca = m.nodeExtraCaCerts;
  if (!ca) return 'NODE_EXTRA_CA_CERTS not set';
  return `NODE_EXTRA_CA_CERTS=${ca.path}${ca.bytes === null ? ' (unreadable)' : ` (${Math.round(ca.bytes / 1024)} KiB)`}`;
}
