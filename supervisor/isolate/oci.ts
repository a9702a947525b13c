// For tendril-oci (supervisor/oci/): what a bundle's config.json asks of a
// container, as the jail's options. The runtime passes the result to `run`
// (as the words `--isolate`, `--uid=` …, see ociIsolation().args) or uses
// the options directly; the layers are those of any isolated guest:
//   - linux.namespaces: any of pid, network, mount, ipc, uts, cgroup asks
//     for isolation, which gives the guest new ones of all six. A namespace
//     with a "path" (join an existing one, e.g. a pod's network namespace)
//     gets a new one instead: the guest has no sockets, only the taps and
//     disks the runtime opens for it before the jail exists, so what its
//     namespaces hold changes nothing it can reach. "user" is not used: the
//     jail's own id (process.user, or the default) stands in for it.
//   - process.user.uid/gid: the guest's ids when not 0 (root in a container
//     means "whatever the runtime picks" here: the default id);
//   - linux.resources.memory.limit: the memory cgroup's limit (rounded up to
//     MiB); linux.resources.cpu.quota/period: the CPU quota. pids.limit is
//     always 1 (the guest is a single process).

import type { IsolateOptions } from './jail.js';

export interface OciIsolationInput {
  namespaces?: { type: string; path?: string }[];
  user?: { uid?: number; gid?: number };
  resources?: { memory?: { limit?: number }; cpu?: { quota?: number; period?: number } };
  /** Refuse to run without every layer (an annotation the runtime reads, e.g. org.tendril.isolate=strict). */
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
  const limit = b.resources?.memory?.limit;
  if (limit !== undefined && limit > 0) options.memLimitMiB = Math.ceil(limit / (1 << 20));
  const { quota, period } = b.resources?.cpu ?? {};
  if (quota !== undefined && quota > 0 && period) options.cpus = Math.max(0.01, Math.round((quota / period) * 100) / 100);
  const args = [options.strict ? '--isolate=strict' : '--isolate',
    ...(options.uid ? [`--uid=${options.uid}`] : []), ...(options.gid ? [`--gid=${options.gid}`] : []),
    ...(options.memLimitMiB ? [`--mem-limit=${options.memLimitMiB}`] : []), ...(options.cpus ? [`--cpus=${options.cpus}`] : [])];
  return { options, args, joinsIgnored: ns.filter((n) => JAILED.has(n.type) && n.path).map((n) => n.type) };
}
