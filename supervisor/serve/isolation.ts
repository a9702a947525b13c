// `tendril serve --isolate`: every guest jailed (supervisor/isolate/), on
// pool stubs that make their jail while they wait for a launch (started as
// `tendril-stub 3 JAIL CGROUP-PARENT…`, native/stub/isolate.c): the init
// and its namespaces, and their own cgroups, joined. A launch then pays only
// for what belongs to the guest: its limits, Landlock, its ids. Each stub's
// cgroups (PARENT/tendril-PID-pool) are removed here when its guest has
// ended; leftovers of stubs that never ran a guest are swept periodically.

import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../log.js';
import { cgroupParents, poolCgroups, sweep, type GuestCgroups } from '../isolate/cgroups.js';
import { detectHost } from '../isolate/host.js';
import { planJail, preparedStubArg, requireAll } from '../isolate/jail.js';

export interface ServerIsolation {
  strict: boolean;
  /** The words each pool stub is started with. */
  stubArgs: string[];
  /** The cgroups a prepared stub made for itself, by its pid. */
  cgroupsOf(stubPid: number): GuestCgroups;
  /** Removes the cgroups of stubs that are gone (every 30 s). */
  startSweeping(): NodeJS.Timeout;
  /** The pool's idle stubs now (the zygote's children), before it is stopped. */
  idleStubs(zygotePid: number | undefined): number[];
  /** After the pool has been stopped: removes those stubs' cgroups once they are gone (bounded). */
  stop(stubs: number[]): Promise<void>;
}

const SWEEP_MS = 30_000;

export function serverIsolation(strict: boolean): ServerIsolation {
  const plan = planJail({ strict }, 512);
  for (const l of plan.missing) log.warn({ layer: l.name, why: l.detail }, 'isolation layer missing on this host');
  if (strict) requireAll(plan);
  // A cpu cgroup too where the host has one, so that a launch may ask for "cpus" (none is set until then).
  const cpu = detectHost().cgroups.cpu;
  const parents = cgroupParents([...plan.cgroupHomes, ...(cpu.ok ? [cpu.value] : [])]);
  return {
    strict,
    stubArgs: [preparedStubArg(plan), ...parents],
    cgroupsOf: (pid) => poolCgroups(parents, pid),
    startSweeping: () => setInterval(() => { for (const p of parents) sweep(p, true); }, SWEEP_MS).unref(),
    idleStubs(zygotePid) {
      try {
        return zygotePid ? readFileSync(`/proc/${zygotePid}/task/${zygotePid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number) : [];
      } catch {
        return [];
      }
    },
    async stop(stubs) {
      // They die with their zygote (PR_SET_PDEATHSIG); their cgroups can go once they are gone.
      let left = stubs;
      for (let i = 0; i < 100 && left.length; i++) {
        left = left.filter((pid) => {
          try {
            poolCgroups(parents, pid).remove();
            return false;
          } catch {
            return true; // still in them: not gone yet
          }
        });
        if (left.length) await sleep(30);
      }
      if (left.length) log.warn({ stubs: left }, 'pool stubs outlived the server; the next server removes their cgroups');
    },
  };
}
