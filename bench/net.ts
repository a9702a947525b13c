// Ping-flood benchmark: echo replies per second from test_net under tendril
// (ping → tap → guest → tap → ping), against the kernel's own ICMP echo in
// the same namespace (ping → the tap's host-side address, which the kernel
// answers itself over loopback), measured in the same run with the same
// flood. Everything happens in a namespace made for the run and deleted after.
//
// Rates come from ping's own "time" figure (first send to last reply), so
// the guest's launch is not counted. Medians of REPS rounds, interleaved.
//
// Two rows. "same CPU": ping and the guest pinned to one CPU, like for like
// with the baseline, whose echo runs in ping's own context; stable. "unpinned":
// wherever the scheduler puts them. On this 2-core VM a flood whose two ends
// sit on different CPUs is ~10× slower (every packet is a cross-CPU wake-up of
// an idle vCPU), so the unpinned rate is bimodal; it uses a smaller flood to
// stay inside the time budget. --quick floods 20× fewer echoes, once.

import { pathToFileURL } from 'node:url';
import { guest } from '../tests/helpers.js';
import { guestWithFlood, parsePing, pingArgs, withNetns, type Netns, type PingSummary } from '../tests/netns.js';
import { Budget, makeContext, median, rounds, type Bench, type BenchContext, type FigureRow } from './common.js';

const DEADLINE_S = 12; // per flood: bounds every round, so the whole bench stays inside 60 s

function rate(p: PingSummary | undefined, count: number, what: string, out: string): number {
  if (!p) throw new Error(`${what}: no ping summary in ${JSON.stringify(out.slice(-500))}`);
  if (p.received !== count) throw new Error(`${what}: ${p.summary}`);
  return p.timeMs > 0 ? (p.received * 1000) / p.timeMs : NaN;
}

async function series(ns: Netns, budget: Budget, reps: number, count: number, cpu: number | undefined, label: string): Promise<FigureRow> {
  const tendrilRates: number[] = [];
  const baselineRates: number[] = [];
  const rtt: { tendril: string[]; baseline: string[] } = { tendril: [], baseline: [] };
  const pinned = (cmd: string, args: string[]): [string, string[]] =>
    (cpu === undefined ? [cmd, args] : ['taskset', ['-c', String(cpu), cmd, ...args]]);
  const ran = await rounds(budget, reps, async () => {
    const base = await ns.run(...pinned('ping', pingArgs({ addr: '10.0.0.1', count, deadlineS: DEADLINE_S })), { timeoutMs: (DEADLINE_S + 5) * 1000 });
    const bp = parsePing(base.stdout);
    baselineRates.push(rate(bp, count, 'baseline ping', base.stdout + base.stderr));
    rtt.baseline.push(bp!.rtt);

    const r = await guestWithFlood(ns, {
      tendrilArgs: ['run', '--mem=2', '--net:service0=tap100', guest('test_net'), String(count)],
      guestCpu: cpu,
      floods: [{ addr: '10.0.0.2', count, deadlineS: DEADLINE_S, cpu }],
      timeoutMs: (DEADLINE_S + 10) * 1000,
    });
    if (r.guest.status !== 0 || !/SUCCESS/.test(r.guest.stdout)) {
      throw new Error(`tendril test_net failed (status ${r.guest.status}): ${r.guest.stderr}${r.guest.stdout.slice(-500)} ${r.parsed[0]?.summary ?? ''}`);
    }
    tendrilRates.push(rate(r.parsed[0], count, 'ping to tendril', (r.pings[0]?.stdout ?? '') + (r.pings[0]?.stderr ?? '')));
    rtt.tendril.push(r.parsed[0]!.rtt);
  });
  const tendril = median(tendrilRates);
  const baseline = median(baselineRates);
  const result: FigureRow = {
    name: `net (${label})`,
    what: `ping -f of ${count.toLocaleString('en-US')} echoes to test_net, echo replies per second`,
    unit: 'replies/s',
    direction: 'higher',
    tendril,
    baseline: {
      value: baseline,
      measured: true,
      label: 'kernel echo',
      what: `the same flood answered by the kernel itself (the tap's host-side address, via loopback), same namespace${cpu === undefined ? '' : `, ping on CPU ${cpu}`}`,
    },
    details: { count, reps: ran, cpu: cpu ?? 'any', tendrilRates, baselineRates, rtt },
  };
  return result;
}

export async function run(ctx: BenchContext): Promise<FigureRow[]> {
  // 60 s in all: the warm-up, then a share for each series (a round is never started late).
  const reps = ctx.pick(3, 1);
  return withNetns(undefined, [{ name: 'tap100', addr: '10.0.0.1/24' }], async (ns) => {
    // Warm-up: resolve ARP and page in ping and tendril before anything is timed.
    await guestWithFlood(ns, {
      tendrilArgs: ['run', '--mem=2', '--net:service0=tap100', guest('test_net'), '100'],
      floods: [{ addr: '10.0.0.2', count: 100, deadlineS: 10 }],
    });
    return [
      await series(ns, new Budget('net same CPU', ctx.pick(30_000, 8_000)), reps, ctx.pick(100_000, 5_000), 0, 'same CPU'),
      await series(ns, new Budget('net unpinned', ctx.pick(22_000, 8_000)), reps, ctx.pick(20_000, 1_000), undefined, 'unpinned'),
    ];
  });
}

export const bench: Bench = {
  name: 'net',
  title: 'Network: ping flood to test_net',
  budgetMs: { full: 75_000, quick: 25_000 },
  run: async (ctx) => ({ rows: await run(ctx) }),
};

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  console.log(JSON.stringify(await bench.run(makeContext(bench, process.argv.includes('--quick'))), null, 2));
}
