// tendril-oci against runc, both behind the same containerd in the same run
// (the goal: at most 1.5× runc):
//   - `ctr run --rm` of hello from a plain rootfs: test_hello through
//     tendril-oci against a static C hello through runc, wall time from
//     spawning ctr to its exit;
//   - a CRI pod: RunPodSandbox, CreateContainer, StartContainer until
//     ContainerStatus says EXITED, of the same pod under the `tendril`
//     handler (pause through tendril-oci to runc, then test_hello) and
//     under the `runc` handler (pause, then a static C program that prints
//     a line and exits); the pod's removal is not timed.
// Medians, the two runtimes alternated round by round. The containerd is
// the private one of tests/k8s/node.ts, inside a network namespace of its
// own; everything it made is removed afterwards.

import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ContainerState, sandboxConfig } from '../tests/k8s/cri.js';
import { CriNode, PAUSE_IMAGE } from '../tests/k8s/node.js';
import { guest, ROOT, runCmdAsync, tendril } from '../tests/helpers.js';
import { Budget, median, msSince, rounds, type Bench, type FigureRow } from './common.js';

const NATIVE_OCI = join(ROOT, 'native/build/tendril-oci');
const HELLO_IMAGE = 'docker.io/tendril-bench/hello:1';

function staticHello(dir: string): string {
  const src = join(dir, 'hello.c');
  writeFileSync(src, '#include <unistd.h>\nint main(void) { write(1, "Hello, World\\n", 13); return 0; }\n');
  const bin = join(dir, 'rootfs-c', 'hello');
  mkdirSync(join(dir, 'rootfs-c'), { recursive: true });
  const cc = spawnSync('gcc', ['-O2', '-static', '-o', bin, src], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`gcc -static: ${cc.stderr}`);
  return join(dir, 'rootfs-c');
}

/**
 * The same run through tendril-oci and through runc, alternated round by round
 * (who goes first swaps), after one untimed warm-up of each: it pages in
 * containerd's shim, runc, Node and the images before anything is timed.
 */
async function alternated(budget: Budget, reps: number, one: (runtime: 'tendril' | 'runc') => Promise<number>): Promise<{ t: number[]; b: number[]; ran: number }> {
  await one('runc');
  await one('tendril');
  const t: number[] = [];
  const b: number[] = [];
  const ran = await rounds(budget, reps, async (i) => {
    for (const side of i % 2 ? ['tendril', 'runc'] as const : ['runc', 'tendril'] as const) (side === 'tendril' ? t : b).push(await one(side));
  });
  return { t, b, ran };
}

async function ctrRuns(node: CriNode, dir: string, budget: Budget, reps: number): Promise<FigureRow> {
  const rootC = staticHello(dir);
  const rootSpt = join(dir, 'rootfs-spt');
  mkdirSync(rootSpt);
  copyFileSync(guest('test_hello'), join(rootSpt, 'test_hello.spt'));
  chmodSync(join(rootSpt, 'test_hello.spt'), 0o755);
  const ctr = (args: string[]) => runCmdAsync('ctr', ['--address', node.address, '--namespace', 'bench', 'run', '--rm', ...args], { timeoutMs: 60_000 });
  let n = 0;
  const one = async (runtime: 'tendril' | 'runc'): Promise<number> => {
    const id = `bench-${runtime}-${++n}`;
    const t = process.hrtime.bigint();
    const r = runtime === 'tendril'
      ? await ctr(['--runc-binary', NATIVE_OCI, '--runc-root', join(dir, 'tendril-root'), '--rootfs', rootSpt, id, '/test_hello.spt', 'Hello_Solo5'])
      : await ctr(['--runc-root', join(dir, 'runc-root'), '--rootfs', rootC, id, '/hello']);
    const ms = msSince(t);
    if (r.status !== 0 || !/Hello, World/.test(r.stdout)) throw new Error(`ctr run (${runtime}) failed (${r.status}): ${r.stderr}`);
    return ms;
  };
  const { t, b, ran } = await alternated(budget, reps, one);
  return {
    name: 'ctr run', what: `\`ctr run --rm\` of hello from a rootfs through tendril-oci, spawn to exit, median of ${ran}`, unit: 'ms', direction: 'lower',
    tendril: median(t),
    baseline: { value: median(b), measured: true, label: 'runc', what: 'runc running a static C hello the same way (`ctr run --rm --rootfs`), same containerd, alternated round by round' },
    details: { rounds: ran, tendril: t, runc: b },
  };
}

async function podRuns(node: CriNode, budget: Budget, reps: number): Promise<FigureRow> {
  let n = 0;
  const one = async (handler: 'tendril' | 'runc'): Promise<number> => {
    const k = ++n;
    const config = sandboxConfig({
      name: `bench${k}`, uid: `bench-${process.pid}-${k}`, namespace: 'bench', logDirectory: join(node.logs, `bench${k}`), cgroupParent: node.cgroupParent,
    });
    const t = process.hrtime.bigint();
    const pod = await node.client.runPodSandbox(config, handler);
    node.track(pod);
    const spec = handler === 'tendril'
      ? { name: 'hello', image: HELLO_IMAGE, args: ['Hello_Solo5'], logPath: 'hello.log' }
      : { name: 'hello', image: PAUSE_IMAGE, command: ['/pause', '--exit', 'Hello,', 'World'], logPath: 'hello.log' };
    const id = await node.client.createContainer(pod, config, spec);
    await node.client.startContainer(id);
    let st;
    for (;;) {
      st = (await node.client.containerStatus(id)).status;
      if (st.state === ContainerState.EXITED) break;
      if (msSince(t) > 60_000) throw new Error(`pod ${handler}: the container did not exit`);
      await sleep(2);
    }
    const ms = msSince(t);
    if (st.exitCode !== 0) throw new Error(`pod ${handler}: the container exited ${st.exitCode}`);
    await node.podNetns(pod); // remembered, so that stop() can remove its file if containerd did not
    await node.client.stopPodSandbox(pod);
    await node.client.removePodSandbox(pod);
    return ms;
  };
  const { t, b, ran } = await alternated(budget, reps, one);
  return {
    name: 'CRI pod', what: `a pod under the \`tendril\` handler: RunPodSandbox, CreateContainer (hello), StartContainer until ContainerStatus says EXITED, median of ${ran}`,
    unit: 'ms', direction: 'lower',
    tendril: median(t),
    baseline: { value: median(b), measured: true, label: 'runc', what: 'the same pod under the `runc` handler, its container a static C program printing a line, same containerd, alternated round by round' },
    details: { rounds: ran, tendril: t, runc: b },
  };
}

export const bench: Bench = {
  name: 'oci',
  title: 'tendril-oci against runc, behind the same containerd',
  budgetMs: { full: 150_000, quick: 45_000 },
  async run({ pick, budget }) {
    const dir = mkdtempSync(join(tmpdir(), 'tendril-bench-oci-'));
    const node = await CriNode.start({ tendrilBinary: NATIVE_OCI });
    try {
      const tar = join(dir, 'hello.tar');
      const b = tendril(['image', 'build', guest('test_hello'), '-o', tar, '--name', HELLO_IMAGE]);
      if (b.status !== 0) throw new Error(`tendril image build: ${b.stderr}`);
      await node.importImage(tar, 'hello');
      // Each series gets half of what is left, so the second is never starved by the first.
      const ctr = await ctrRuns(node, dir, new Budget('oci ctr run', budget.left() / 2 - 5_000), pick(25, 3));
      const pod = await podRuns(node, new Budget('oci CRI pod', budget.left() - 10_000), pick(12, 2));
      const samples = (r: FigureRow) => r.details as { tendril: number[]; runc: number[] };
      return {
        rows: [ctr, pod],
        plots: [{
          kind: 'distribution', file: 'oci-samples', title: 'tendril-oci and runc behind containerd, every run', unit: 'ms', direction: 'lower',
          series: {
            'ctr run --rm, tendril-oci': samples(ctr).tendril, 'ctr run --rm, runc': samples(ctr).runc,
            'CRI pod, tendril': samples(pod).tendril, 'CRI pod, runc': samples(pod).runc,
          },
        }],
      };
    } finally {
      await node.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
