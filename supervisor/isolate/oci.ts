// For tendril-oci (supervisor/oci/create.ts): what a bundle's config.json
// asks of a container, as the jail's options. tendril-oci jails every
// container whose config.json asks for any namespace below (containerd and
// the CRI always ask for pid, ipc, uts, mount and network), with the same
// layers and the same policy as `run --isolate` (jail.ts); the annotation
// org.tendril.isolate=strict refuses a host that lacks one, =false or =off
// runs the guest unjailed. args gives the same jail as `run` words.
//   - linux.namespaces: any of pid, network, mount, ipc, uts, cgroup asks
//     for isolation, which gives the guest new ones of all six. A namespace
//     with a "path" (join an existing one, e.g. a pod's network namespace)
//     gets a new one instead: the guest has no sockets, only the taps and
//     disks the runtime opens for it before the jail exists (a pod's tap is
//     opened in the pod's namespace), so what its namespaces hold changes
//     nothing it can reach. "user" is not used: the jail's own id
//     (process.user, or the default) stands in for it.
//   - process.user.uid/gid: the guest's ids when not 0 (root in a container
//     means "whatever the runtime picks" here: the default id);
//   - linux.resources.memory.limit is the guest's memory size (bundle.ts),
//     so the memory cgroup holds it plus the tender's margin, the jail's
//     default (a limit of exactly guest memory would OOM-kill a guest that
//     touches all of it); linux.resources.cpu.quota/period: the CPU quota.
//     pids.max is 2: the guest and its waiter.

import type { IsolateOptions } from './jail.js';

export interface OciIsolationInput {
  namespaces?: { type: string; path?: string }[];
  user?: { uid?: number; gid?: number };
  resources?: { cpu?: { quota?: number; period?: number } };
  /** Refuse to run without every layer (the annotation org.tendril.isolate=strict). */
  strict?: boolean;
}

const JAILED = new Set(['pid', 'network', 'mount', 'ipc', 'uts', 'cgroup']);

/** The jail a bundle asks for (undefined: it asks for none), and the same as `run` words. */
export function ociIsolation(b: OciIsolationInput): { options: IsolateOptions; args: string[]; joinsIgnored: string[] } | undefined {
  const ns = b.namespaces ?? [];
  if (!ns.some((n) => JAILED.has(n.type))) return undefined;
  const options: IsolateOptions = { strict: b.strict === true };
  if (b.user?.uid) options.uid = b.user.uid;
  if (b.user?.gid) options.gid = b.user.gid;
  const { quota, period } = b.resources?.cpu ?? {};
  if (quota !== undefined && quota > 0 && period) options.cpus = Math.max(0.01, Math.round((quota / period) * 100) / 100);
  const args = [options.strict ? '--isolate=strict' : '--isolate',
    ...(options.uid ? [`--uid=${options.uid}`] : []), ...(options.gid ? [`--gid=${options.gid}`] : []),
    ...(options.cpus ? [`--cpus=${options.cpus}`] : [])];
  return { options, args, joinsIgnored: ns.filter((n) => JAILED.has(n.type) && n.path).map((n) => n.type) };
}
