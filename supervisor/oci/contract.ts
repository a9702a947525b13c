// The contract between tendril-oci's two halves, defined here once: the
// native front (native/oci, which the shim calls for every command and
// which runs all of them but `create` of a unikernel itself) and the
// TypeScript `create`. cHeader() gives the same definitions as a C header,
// which native/oci/Makefile generates into the build.
//
// State: ROOT/ID/ is a container's directory, ROOT/ID/state its record: one
// "KEY VALUE" per line (the key, one space, the value up to the newline;
// values never hold a newline, create refuses paths that would), keys in
// any order, unknown keys ignored. The native front reads it for every
// command and writes it for containers it hands to runc; `create` writes
// it for unikernels once the guest waits to start. contract-header.ts
// prints cHeader() for native/oci/Makefile.

import { ABI1_NOTE_TYPE, NOTE_NAME } from '../../loader/abi.js';
import { ANNOTATION_SUMMARY } from './bundle.js';

/** The runtime spec version tendril-oci implements (`state`, `--version`, `features`). */
export const OCI_VERSION = '1.0.2';

export const STATE_FILE = 'state';
/** The FIFO the loaded guest (the stub) reads its start byte from. */
export const START_FIFO = 'start.fifo';
/** For a container handed to runc: that runc's --root (runc keeps its own state there). */
export const DELEGATE_ROOT = 'runc';

export const RUNTIME_TENDRIL = 'tendril';
export const RUNTIME_RUNC = 'runc';

/** The record's keys. Those marked "pod" are set only for a guest that owns its pod's interface. */
export const STATE_KEYS = {
  /** RUNTIME_TENDRIL or RUNTIME_RUNC: who runs the container, and so who gets its later commands. */
  runtime: 'runtime',
  /** runc: the runc binary that created it. */
  delegate: 'delegate',
  /** tendril: the guest's pid and its start time (field 22 of /proc/PID/stat), which guards against pid reuse. */
  pid: 'pid',
  startTime: 'start_time',
  bundle: 'bundle',
  rootfs: 'rootfs',
  /** RFC 3339. */
  created: 'created',
  /** config.json's annotations, as one line of JSON (printed by `state` as they are). */
  annotations: 'annotations',
  /** The network namespace the guest joined (linux.namespaces), if any. */
  netns: 'netns',
  /** pod: the interface the guest took over, the IPv4 address/prefix and gateway moved off it, and the tap. */
  podIface: 'pod_iface',
  podAddr: 'pod_addr',
  podGateway: 'pod_gateway',
  podTap: 'pod_tap',
  /**
   * A jailed guest (supervisor/isolate/): the pid is its waiter, which mirrors
   * its status; the guest itself is the waiter's child, pid 2 of its own pid
   * namespace. Its host pid and start time: `state` reads running from its
   * seccomp mode, `pause` stops it (the waiter follows).
   */
  guestPid: 'guest_pid',
  guestStartTime: 'guest_start_time',
  /** A jailed guest's cgroups, absolute directories joined by ':': `delete` removes what its waiter could not (killed by SIGKILL). */
  cgroups: 'cgroups',
} as const;

export type StateKey = keyof typeof STATE_KEYS;
export type StateRecord = Partial<Record<StateKey, string>>;

/** The record's text. */
export function formatState(r: StateRecord): string {
  let out = '';
  for (const [k, v] of Object.entries(r) as [StateKey, string | undefined][]) {
    if (v === undefined) continue;
    if (/[\n\r]/.test(v)) throw new Error(`state: ${STATE_KEYS[k]} holds a newline`);
    out += `${STATE_KEYS[k]} ${v}\n`;
  }
  return out;
}

/** `features`: what this runtime supports (runtime spec, features.md), for unikernel containers. */
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
      'org.tendril.runtime': 'tendril-oci: Solo5 spt unikernels under a seccomp allowlist of nine system calls; other containers go to runc',
      'org.tendril.annotations': ANNOTATION_SUMMARY,
    },
  }, null, 2)}\n`;
}

function cString(s: string): string {
  return JSON.stringify(s);
}

/** The C header: the same names and keys, for native/oci; `version` is tendril's (package.json). */
export function cHeader(version: string): string {
  const lines = [
    '/* Generated from supervisor/oci/contract.ts by native/oci/Makefile: do not edit. */',
    '#ifndef TENDRIL_OCI_CONTRACT_H',
    '#define TENDRIL_OCI_CONTRACT_H',
    `#define TENDRIL_VERSION ${cString(version)}`,
    `#define OCI_VERSION ${cString(OCI_VERSION)}`,
    `#define FEATURES_JSON ${cString(features())}`,
    `#define STATE_FILE ${cString(STATE_FILE)}`,
    `#define START_FIFO ${cString(START_FIFO)}`,
    `#define DELEGATE_ROOT ${cString(DELEGATE_ROOT)}`,
    `#define RUNTIME_TENDRIL ${cString(RUNTIME_TENDRIL)}`,
    `#define RUNTIME_RUNC ${cString(RUNTIME_RUNC)}`,
    ...Object.entries(STATE_KEYS).map(([k, v]) => `#define KEY_${k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()} ${cString(v)}`),
    `#define SOLO5_NOTE_NAME ${cString(NOTE_NAME)}`,
    `#define SOLO5_ABI_NOTE_TYPE 0x${ABI1_NOTE_TYPE.toString(16)}u`,
    '#endif',
    '',
  ];
  return lines.join('\n');
}
