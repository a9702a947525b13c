// The cost of --isolate, each figure next to the same launch without it,
// measured in the same run:
//   - cold: `tendril run --isolate` of hello against `tendril run` (interleaved);
//   - warm, at the stub: a C fork+exec of the stub on ready plans with and
//     without a jail (bench/tools/jailplan.c, interleaved), with the
//     supervisor's per-launch cgroup work done in C before each launch.
//     Until serve's pool isolates, this is the floor of what a warm launch
//     pays; variants without the network namespace, without cgroups and with
//     only the pid namespace say where the time goes;
//   - warm, through the API: `tendril serve` launching hello, against
//     itself without isolation, with "isolate": true per launch and as
//     `serve --isolate` (stubs that made their jail ahead), interleaved;
//   - the supervisor's own share of an "isolate": true launch: making the
//     guest's cgroups from Node.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { ISOLATE, PLAN_FLAG } from '../loader/formats.js';
import { encodePlan, type PlanSectionData } from '../loader/plan.js';
import { compileLaunch, prepareLaunch, releaseLaunch } from '../supervisor/launch.js';
import { STUB_PATH } from '../supervisor/paths.js';
import { cgroupParents, cgroupSteps, createGuestCgroups, prepareParents, type CgroupStep } from '../supervisor/isolate/cgroups.js';
import { cgroupLimits, planJail, preparedStubArg, startJail, type JailPlan } from '../supervisor/isolate/jail.js';
import { api } from '../supervisor/serve/client.js';
import { guest, ROOT, TENDRIL, waitFor } from '../tests/helpers.js';
import { Budget, median, msSince, type Bench, type BenchResult } from './common.js';

const HELLO = guest('test_hello');
const TMP = join(ROOT, 'bench/tmp');
const JAILPLAN = join(TMP, 'jailplan');

/** A `tendril serve` of the bench's own, ready when it answers. */
async function startServer(dir: string, name: string, args: string[]): Promise<{ sock: string; stop(): Promise<void> }> {
  const sock = join(dir, `${name}.sock`);
  const proc = spawn(process.execPath, [TENDRIL, 'serve', `--socket=${sock}`, '--pool=8', '--log-level=error', ...args], { stdio: 'ignore' });
  const exited = new Promise((r) => proc.once('exit', r));
  await waitFor(`the ${name} server`, async () => {
    try {
      return existsSync(sock) && (await api(sock, 'GET', '/health')).status === 200;
    } catch {
      return false;
    }
  }, 30_000);
  return {
    sock,
    async stop() {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

/** Cold runs of each argv, interleaved; ms per run, per argv. */
function coldInterleaved(argvs: string[][], n: number): number[][] {
  const out = argvs.map(() => [] as number[]);
  for (let i = 0; i < n; i++) {
    argvs.forEach((argv, k) => {
      const t = process.hrtime.bigint();
      const r = spawnSync(process.execPath, [TENDRIL, ...argv], { stdio: 'ignore' });
      if (r.status !== 0) throw new Error(`tendril ${argv.join(' ')} exited ${r.status ?? r.signal}`);
      out[k].push(msSince(t));
    });
  }
  return out;
}

interface Variant {
  label: string;
  /** Exec hand-over (`tendril run`), or a pool stub waiting for its plan (`tendril serve`). */
  pool: boolean;
  isolate: boolean;
  /** Pool: the stub makes the jail's namespaces while it waits (serve --isolate), its cgroups made ahead. */
  prepared?: boolean;
  /** With the guest's cgroups (else the jail without them, to see their share). */
  cgroups?: boolean;
  /** Only the fork of the guest from its parent: a jail with no layer at all. */
  forkOnly?: boolean;
  /** Under the ptrace monitor (serve's default), which forks the guest anyway. */
  monitor?: boolean;
}

export const VARIANTS: Variant[] = [
  { label: 'exec, no isolation', pool: false, isolate: false },
  { label: 'exec, --isolate', pool: false, isolate: true, cgroups: true },
  { label: 'pool, no isolation', pool: true, isolate: false },
  { label: 'pool, "isolate": true (everything made at launch)', pool: true, isolate: true, cgroups: true },
  { label: 'pool, serve --isolate (namespaces and cgroups made ahead)', pool: true, isolate: true, prepared: true, cgroups: true },
  { label: 'pool, serve --isolate without cgroups', pool: true, isolate: true, prepared: true, cgroups: false },
  { label: 'pool, only the guest forked from its parent (a jail with no layer)', pool: true, isolate: true, forkOnly: true },
  { label: 'pool monitored, no isolation', pool: true, isolate: false, monitor: true },
  { label: 'pool monitored, serve --isolate (namespaces and cgroups made ahead)', pool: true, isolate: true, prepared: true, cgroups: true, monitor: true },
];

const stepLine = (s: CgroupStep) => (s.op === 'mkdir' ? `mkdir ${s.path}` : `${s.optional ? 'try' : 'write'} ${s.path} ${s.value}`);

/** A ready plan (fd 3, memory file at fd 4) and the jailplan argument that runs it as the variant says. */
export function writeVariant(dir: string, i: number, v: Variant, jail: JailPlan): string {
  const p = prepareLaunch({ memMiB: 2, xExecHeap: false, guest: HELLO, guestArgs: ['--solo5:quiet'], devices: [], dumpable: false, gdb: false, supervise: false });
  try {
    const c = compileLaunch(p);
    let flags = 0;
    let sections: PlanSectionData[] | undefined;
    const opts: string[] = [];
    if (v.isolate) {
      const homes = v.cgroups ? jail.cgroupHomes : [];
      const j = { ...jail, cgroupHomes: homes, flags: v.forkOnly ? 0 : jail.flags };
      if (v.prepared) {
        // The stub makes its own cgroups and the init's namespaces before its plan comes; the plan sets the limits.
        const started = startJail(j, { prepared: true });
        flags = started.flags;
        sections = started.sections;
        opts.push(`jail=${preparedStubArg(j)}`, ...cgroupParents(homes).map((p) => `cg=${p}`));
      } else {
        const cg = cgroupSteps(homes, cgroupLimits(j), `tendril-bench-${process.pid}-${i}`);
        prepareParents(cg);
        const started = startJail({ ...j, cgroupHomes: [] });
        flags = started.flags;
        sections = started.sections;
        if (cg.dirs.length) {
          // Made per launch (timed), as the supervisor does; the stub removes them.
          sections.push({ type: ISOLATE.SECTION_CGROUPS, data: Buffer.from(cg.dirs.map((d) => `${d}\0`).join('')) });
          const spec = join(dir, `v${i}.spec`);
          writeFileSync(spec, cg.steps.map(stepLine).join('\n'));
          opts.push(`spec=${spec}`);
        }
      }
    }
    const file = join(dir, `v${i}.plan`);
    writeFileSync(file, encodePlan(c.plan, c.filter.bpf, {
      deviceSrc: [], imageSrc: 4, flags: flags | (v.monitor ? PLAN_FLAG.MONITOR : 0), sections, ...(v.monitor ? { reportFd: 5 } : {}),
    }));
    writeFileSync(`${file}.mem`, c.memory.bytes);
    return `${v.pool ? 'pool:' : ''}${[file, ...opts].join(',')}`;
  } finally {
    releaseLaunch(p);
  }
}

export const bench: Bench = {
  name: 'isolate',
  async run(): Promise<BenchResult[]> {
    const budget = new Budget('isolate', 300_000);
    mkdirSync(TMP, { recursive: true });
    const cc = spawnSync('gcc', ['-O2', '-Wall', '-o', JAILPLAN, join(ROOT, 'bench/tools/jailplan.c')], { stdio: 'inherit' });
    if (cc.status !== 0) throw new Error('cannot build bench/tools/jailplan.c');
    const results: BenchResult[] = [];
    const jail = planJail({ strict: false }, 2);
    const missing = jail.missing.map((l) => l.name).join(', ') || 'none';

    // Cold: the whole `tendril run`, with and without --isolate.
    const hello = ['--mem=2', HELLO, '--solo5:quiet'];
    coldInterleaved([['run', ...hello], ['run', '--isolate', ...hello]], 2);
    const [plain, isolated] = coldInterleaved([['run', ...hello], ['run', '--isolate', ...hello]], 20);
    results.push({
      name: 'isolate cold', what: '`tendril run --isolate` hello, wall time (median, lower is better)', unit: 'ms',
      tendril: median(isolated), baseline: median(plain), ratio: median(isolated) / median(plain),
      baselineIs: '`tendril run` of the same guest without --isolate, interleaved with it',
      details: { addedMs: median(isolated) - median(plain), plain, isolated, missingLayers: missing },
    });
    budget.check('the stub-level runs');

    // Warm, at the stub: every variant interleaved in one C loop.
    const dir = join(TMP, `isolate-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    try {
      const args = VARIANTS.map((v, i) => writeVariant(dir, i, v, jail));
      const n = 500;
      const r = spawnSync(JAILPLAN, [STUB_PATH, String(n), ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
      if (r.status !== 0) throw new Error(`jailplan: ${r.stderr.trim()}`);
      const per = VARIANTS.map(() => [] as number[]);
      for (const line of r.stdout.trim().split('\n')) {
        const [k, us] = line.split(' ');
        per[Number(k)].push(Number(us) / 1000);
      }
      VARIANTS.forEach((v, i) => {
        if (!v.isolate) return;
        const b = VARIANTS.findIndex((x) => x.pool === v.pool && !x.isolate && !x.monitor === !v.monitor);
        const p50 = percentile(per[i], 0.5);
        const base = percentile(per[b], 0.5);
        results.push({
          name: `isolate warm: ${v.label}`,
          what: `${v.pool ? 'plan sent to a waiting stub' : 'C fork+exec of the stub on a ready plan'} → exit of hello, p50 (lower is better)`, unit: 'ms',
          tendril: p50, baseline: base, ratio: p50 / base,
          baselineIs: `the same C loop without isolation (${VARIANTS[b].label}), interleaved`,
          details: { addedMs: p50 - base, p99: percentile(per[i], 0.99), baseP99: percentile(per[b], 0.99), missingLayers: missing },
        });
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    budget.check('the API runs');
    // Warm, through the API: the same launches, interleaved, on a plain server and on serve --isolate.
    const apiDir = mkdtempSync(join(tmpdir(), 'tendril-bench-iso-'));
    const servers = await Promise.all([startServer(apiDir, 'plain', []), startServer(apiDir, 'isolate', ['--isolate'])]);
    try {
      const ids = await Promise.all(servers.map(async (sv) => ((await api(sv.sock, 'POST', '/images', { path: HELLO })).body as { id: string }).id));
      const kinds = [
        { label: 'serve, no isolation', server: 0, extra: {} },
        { label: 'serve, "isolate": true (jail made at launch)', server: 0, extra: { isolate: true } },
        { label: 'serve --isolate (jail made ahead)', server: 1, extra: {} },
      ];
      // Back to back (the pool refills while the next launches run: a busy server), then paced at
      // 25 launches/s per server (the pool has refilled: the latency of a server that keeps up).
      for (const [pace, n] of [[0, 500], [40, 200]] as const) {
        const lat = kinds.map(() => [] as number[]);
        for (let r = 0; r < n + 20; r++) {
          for (const [k, kind] of kinds.entries()) {
            if (pace) await sleep(pace / kinds.length);
            const t = process.hrtime.bigint();
            const res = await api(servers[kind.server].sock, 'POST', '/instances', { image: ids[kind.server], memMiB: 2, args: ['--solo5:quiet'], wait: true, ...kind.extra });
            if ((res.body as { status?: number }).status !== 0) throw new Error(`${kind.label}: ${JSON.stringify(res.body)}`);
            if (r >= 20) lat[k].push(msSince(t));
          }
        }
        for (const k of [1, 2]) {
          const p50 = percentile(lat[k], 0.5);
          const base = percentile(lat[0], 0.5);
          results.push({
            name: `isolate API${pace ? ', paced' : ''}: ${kinds[k].label}`,
            what: `POST /instances launch→exit of hello, monitored, ${pace ? 'one launch per 40 ms per server' : 'back to back'}, p50 (lower is better)`, unit: 'ms',
            tendril: p50, baseline: base, ratio: p50 / base,
            baselineIs: 'the same launches on a server without isolation, interleaved',
            details: { addedMs: p50 - base, p99: percentile(lat[k], 0.99), baseP99: percentile(lat[0], 0.99), missingLayers: missing },
          });
        }
      }
    } finally {
      await Promise.all(servers.map((sv) => sv.stop()));
      rmSync(apiDir, { recursive: true, force: true });
    }

    // The supervisor's share: the guest's cgroups from Node, made and removed.
    const times: number[] = [];
    for (let i = 0; i < 300; i++) {
      const t = process.hrtime.bigint();
      const cg = createGuestCgroups(jail.cgroupHomes, cgroupLimits(jail));
      const made = msSince(t);
      cg.remove();
      times.push(made);
    }
    results.push({
      name: 'isolate warm: cgroups from Node', what: 'making one guest\'s cgroups and limits in the supervisor, p50 (lower is better)', unit: 'ms',
      tendril: percentile(times, 0.5), baseline: 0.3, ratio: percentile(times, 0.5) / 0.3,
      baselineIs: 'the 0.3 ms a warm launch may add for isolation (the goal)', details: { p99: percentile(times, 0.99) },
    });
    return results;
  },
};
