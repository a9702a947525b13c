// The cost of --isolate, each figure next to the same launch without it,
// measured in the same run:
//   - cold: `tendril run --isolate` of hello against `tendril run` (interleaved);
//   - at the stub, from C (bench/tools/jailplan.c, every variant
//     interleaved): exec hand-overs and pool stubs waiting for their plan,
//     with and without a jail, with the supervisor's per-launch cgroup work
//     done in C; variants (jail made ahead or at launch, without cgroups, the
//     guest's fork alone, under the monitor) say where the time goes;
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
import { guest, TENDRIL, waitFor } from '../tests/helpers.js';
import { cTool } from './ctool.js';
import { BENCH_TMP as TMP } from './scratch.js';
import { median, msSince, percentile, type Bench, type Baseline, type Row } from './common.js';

const HELLO = guest('test_hello');

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

const measured = (value: number, label: string, what: string): Baseline => ({ value, measured: true, label, what });

export const bench: Bench = {
  name: 'isolate',
  title: 'The cost of --isolate: cold, at the stub, through serve',
  budgetMs: { full: 300_000, quick: 60_000 },
  async run({ pick, budget }) {
    const jailplan = cTool('jailplan');
    const rows: Row[] = [];
    const jail = planJail({ strict: false }, 2);
    const missing = jail.missing.map((l) => l.name).join(', ') || 'none';

    // Cold: the whole `tendril run`, with and without --isolate, interleaved.
    const hello = ['--mem=2', HELLO, '--solo5:quiet'];
    coldInterleaved([['run', ...hello], ['run', '--isolate', ...hello]], 1);
    const [plain, isolated] = coldInterleaved([['run', ...hello], ['run', '--isolate', ...hello]], pick(20, 3));
    rows.push({
      name: 'isolate cold', what: '`tendril run --isolate` hello, wall time, median', unit: 'ms', direction: 'lower',
      tendril: median(isolated), baseline: measured(median(plain), '`tendril run`', '`tendril run` of the same guest without --isolate, interleaved with it, median'),
      details: { addedMs: median(isolated) - median(plain), plain, isolated, missingLayers: missing },
    });
    budget.check('the stub-level runs');

    // At the stub, from C: every variant interleaved in one loop.
    const dir = join(TMP, `isolate-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    const series: Record<string, number[]> = {};
    try {
      const args = VARIANTS.map((v, i) => writeVariant(dir, i, v, jail));
      const r = spawnSync(jailplan, [STUB_PATH, String(pick(500, 30)), ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
      if (r.status !== 0) throw new Error(`jailplan: ${r.stderr.trim()}`);
      const per = VARIANTS.map(() => [] as number[]);
      for (const line of r.stdout.trim().split('\n')) {
        const [k, us] = line.split(' ');
        per[Number(k)].push(Number(us) / 1000);
      }
      VARIANTS.forEach((v, i) => { series[v.label] = per[i]; });
      VARIANTS.forEach((v, i) => {
        if (!v.isolate) return;
        const b = VARIANTS.findIndex((x) => x.pool === v.pool && !x.isolate && !x.monitor === !v.monitor);
        const p50 = percentile(per[i], 0.5);
        const base = percentile(per[b], 0.5);
        rows.push({
          name: `isolate stub: ${v.label}`,
          what: `${v.pool ? 'plan sent to a waiting stub' : 'C fork+exec of the stub on a ready plan'} → exit of hello, p50`, unit: 'ms', direction: 'lower',
          tendril: p50, baseline: measured(base, VARIANTS[b].label, `the same C loop without isolation (${VARIANTS[b].label}), interleaved, p50`),
          details: { addedMs: p50 - base, p10: percentile(per[i], 0.1), baseP10: percentile(per[b], 0.1), p99: percentile(per[i], 0.99), baseP99: percentile(per[b], 0.99), missingLayers: missing },
        });
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    budget.check('the API runs');
    // Through the API: the same launches, interleaved, on a plain server and on serve --isolate.
    const apiDir = mkdtempSync(join(tmpdir(), 'tendril-bench-iso-'));
    const servers = await Promise.all([startServer(apiDir, 'plain', []), startServer(apiDir, 'isolate', ['--isolate'])]);
    try {
      const ids = await Promise.all(servers.map(async (sv) => ((await api(sv.sock, 'POST', '/images', { path: HELLO })).body as { id: string }).id));
      const kinds = [
        { label: 'serve, no isolation', server: 0, extra: {} },
        { label: 'serve, "isolate": true (jail made at launch)', server: 0, extra: { isolate: true } },
        { label: 'serve --isolate (jail made ahead)', server: 1, extra: {} },
      ];
      // Back to back (the pool refills while the next launches run: a busy server), then paced at one
      // launch per 40 ms per server (the pool has refilled: the latency of a server that keeps up).
      for (const [pace, n] of [[0, pick(500, 20)], [40, pick(200, 10)]] as const) {
        const lat = kinds.map(() => [] as number[]);
        for (let r = 0; r < n + pick(20, 3); r++) {
          for (const [k, kind] of kinds.entries()) {
            if (pace) await sleep(pace / kinds.length);
            const t = process.hrtime.bigint();
            const res = await api(servers[kind.server].sock, 'POST', '/instances', { image: ids[kind.server], memMiB: 2, args: ['--solo5:quiet'], wait: true, ...kind.extra });
            if ((res.body as { status?: number }).status !== 0) throw new Error(`${kind.label}: ${JSON.stringify(res.body)}`);
            if (r >= pick(20, 3)) lat[k].push(msSince(t));
          }
        }
        for (const k of [1, 2]) {
          const p50 = percentile(lat[k], 0.5);
          const base = percentile(lat[0], 0.5);
          rows.push({
            name: `isolate API${pace ? ', paced' : ''}: ${kinds[k].label}`,
            what: `POST /instances launch→exit of hello, monitored, ${pace ? 'one launch per 40 ms per server' : 'back to back'}, p50`, unit: 'ms', direction: 'lower',
            tendril: p50, baseline: measured(base, kinds[0].label, 'the same launches on a server without isolation, interleaved, p50'),
            details: { addedMs: p50 - base, p99: percentile(lat[k], 0.99), baseP99: percentile(lat[0], 0.99), missingLayers: missing },
          });
        }
      }
    } finally {
      await Promise.all(servers.map((sv) => sv.stop()));
      rmSync(apiDir, { recursive: true, force: true });
    }

    // The supervisor's share of an "isolate": true launch: the guest's cgroups from Node, made and removed.
    const times: number[] = [];
    for (let i = 0; i < pick(300, 20); i++) {
      const t = process.hrtime.bigint();
      const cg = createGuestCgroups(jail.cgroupHomes, cgroupLimits(jail));
      const made = msSince(t);
      cg.remove();
      times.push(made);
    }
    rows.push({
      name: 'isolate cgroups from Node', what: 'making one guest\'s cgroups and their limits in the supervisor (per "isolate": true launch), p50', unit: 'ms', direction: 'lower',
      tendril: percentile(times, 0.5), baseline: { value: 0.3, quoted: true, what: 'the goal for what isolation may add to a warm launch', source: 'issue 15' },
      details: { p99: percentile(times, 0.99) },
    });
    return {
      rows,
      plots: [{ kind: 'distribution', file: 'isolate-stub', title: 'Launch → exit of hello at the stub, with and without a jail', unit: 'ms', direction: 'lower', series }],
    };
  },
};
