// The cost of --isolate, each figure next to the same launch without it,
// measured in the same run:
//   - cold: `tendril run --isolate` of hello against `tendril run` (interleaved);
//   - warm, at the stub: a C fork+exec of the stub on ready plans with and
//     without a jail (bench/tools/jailplan.c, interleaved), with the
//     supervisor's per-launch cgroup work done in C before each launch.
//     Until serve's pool isolates, this is the floor of what a warm launch
//     pays; variants without the network namespace, without cgroups and with
//     only the pid namespace say where the time goes;
//   - the supervisor's own share of a warm launch: making the guest's
//     cgroups from Node (and removing them, which the stub does in a launch).

import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ISOLATE, ISOLATE_FLAG } from '../loader/formats.js';
import { encodePlan, type PlanSectionData } from '../loader/plan.js';
import { compileLaunch, prepareLaunch, releaseLaunch } from '../supervisor/launch.js';
import { STUB_PATH } from '../supervisor/paths.js';
import { cgroupSteps, createGuestCgroups, prepareParents } from '../supervisor/isolate/cgroups.js';
import { planJail, startJail, type JailPlan } from '../supervisor/isolate/jail.js';
import { guest, ROOT, TENDRIL } from '../tests/helpers.js';
import { Budget, median, msSince, type Bench, type BenchResult } from './common.js';

const HELLO = guest('test_hello');
const TMP = join(ROOT, 'bench/tmp');
const JAILPLAN = join(TMP, 'jailplan');

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
  /** The jail's flags kept (others dropped), or undefined for no isolation. */
  keep?: number;
  cgroups: boolean;
}

const ALL = Object.values(ISOLATE_FLAG.group.values).reduce((a, b) => a | b, 0);
const VARIANTS: Variant[] = [
  { label: 'no isolation', cgroups: false },
  { label: '--isolate (every layer this host has)', keep: ALL, cgroups: true },
  { label: '--isolate without the network namespace', keep: ALL & ~ISOLATE_FLAG.NEWNET, cgroups: true },
  { label: '--isolate without cgroups', keep: ALL, cgroups: false },
  { label: 'pid namespace only (the init\'s fork)', keep: ISOLATE_FLAG.NEWPID, cgroups: false },
];

/** A ready plan (fd 3, memory file at fd 4) and, for a jail with cgroups, the spec of the supervisor's per-launch steps. */
function writeVariant(dir: string, i: number, v: Variant, jail: JailPlan): string {
  const p = prepareLaunch({ memMiB: 2, xExecHeap: false, guest: HELLO, guestArgs: ['--solo5:quiet'], devices: [], dumpable: false, gdb: false, supervise: false });
  try {
    const c = compileLaunch(p);
    let flags = 0;
    let sections: PlanSectionData[] | undefined;
    let spec: string | undefined;
    if (v.keep !== undefined) {
      const started = startJail({ ...jail, flags: jail.flags & v.keep, cgroupHomes: [] });
      flags = started.flags;
      sections = started.sections;
      if (v.cgroups) {
        const cg = cgroupSteps(jail.cgroupHomes, { memoryBytes: jail.memoryBytes, pids: 1 }, `tendril-bench-${process.pid}-${i}`);
        prepareParents(cg);
        sections.push({ type: ISOLATE.SECTION_CGROUPS, data: Buffer.from(cg.dirs.map((d) => `${d}\0`).join('')) });
        spec = join(dir, `v${i}.spec`);
        writeFileSync(spec, cg.steps.map((s) => (s.op === 'mkdir' ? `mkdir ${s.path}` : `${s.optional ? 'try' : 'write'} ${s.path} ${s.value}`)).join('\n'));
      }
    }
    const file = join(dir, `v${i}.plan`);
    writeFileSync(file, encodePlan(c.plan, c.filter.bpf, { deviceSrc: [], imageSrc: 4, flags, sections }));
    writeFileSync(`${file}.mem`, c.memory.bytes);
    return spec ? `${file},${spec}` : file;
  } finally {
    releaseLaunch(p);
  }
}

export const bench: Bench = {
  name: 'isolate',
  async run(): Promise<BenchResult[]> {
    const budget = new Budget('isolate', 180_000);
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
      const n = 1000;
      const r = spawnSync(JAILPLAN, [STUB_PATH, String(n), ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
      if (r.status !== 0) throw new Error(`jailplan: ${r.stderr.trim()}`);
      const per = VARIANTS.map(() => [] as number[]);
      for (const line of r.stdout.trim().split('\n')) {
        const [k, us] = line.split(' ');
        per[Number(k)].push(Number(us) / 1000);
      }
      const base = per[0];
      VARIANTS.forEach((v, i) => {
        if (i === 0) return;
        const p50 = percentile(per[i], 0.5);
        results.push({
          name: `isolate warm: ${v.label}`, what: 'C fork+exec of the stub on a ready plan → exit of hello, p50 (lower is better)', unit: 'ms',
          tendril: p50, baseline: percentile(base, 0.5), ratio: p50 / percentile(base, 0.5),
          baselineIs: 'the same C loop on the plan without isolation (interleaved)',
          details: { addedMs: p50 - percentile(base, 0.5), p99: percentile(per[i], 0.99), baseP99: percentile(base, 0.99), missingLayers: missing },
        });
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    // The supervisor's share: the guest's cgroups from Node, made and removed.
    const times: number[] = [];
    for (let i = 0; i < 300; i++) {
      const t = process.hrtime.bigint();
      const cg = createGuestCgroups(jail.cgroupHomes, { memoryBytes: jail.memoryBytes, pids: 1 });
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
