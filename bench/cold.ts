// Cold start: a whole `tendril run` of hello, spawn to exit, run as a user
// runs it (the `tendril` command itself, bin/tendril.cjs, through its
// shebang), against `node -e 0` (the same Node starting and exiting, so the
// ratio is what tendril adds to Node's own start-up). Twice: with the
// environment as it is, and with NODE_EXTRA_CA_CERTS removed. Where that
// variable names a CA bundle (here a 220 KB one), Node parses it at
// start-up, which triples `node -e 0`; tendril needs no TLS and its
// commands drop the variable, so with it set tendril starts faster than
// `node -e 0`, and the second row is the honest measure of what tendril
// adds. The four series are interleaved round by round, so drift hits them
// alike.

import { spawnSync } from 'node:child_process';
import { dirname } from 'node:path';
import { guest, TENDRIL } from '../tests/helpers.js';
import { median, msSince, rounds, type Bench, type Row } from './common.js';
import { caLine, describeMachine } from './machine.js';

const HELLO = guest('test_hello');

function once(cmd: string, args: string[], env: NodeJS.ProcessEnv): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', timeout: 30_000 });
  const ms = msSince(t);
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}: ${r.stderr.trim().split('\n')[0]}`);
  return ms;
}

export const bench: Bench = {
  name: 'cold',
  title: 'Cold start: tendril run hello vs node -e 0',
  budgetMs: { full: 90_000, quick: 15_000 },
  async run({ pick, budget }) {
    const ca = caLine(describeMachine());
    const envs = { asIs: { ...process.env }, noCa: { ...process.env } };
    delete envs.noCa.NODE_EXTRA_CA_CERTS;
    const tendrilArgs = ['run', '--mem=2', HELLO, '--solo5:quiet'];
    const nodeArgs = ['-e', '0'];
    // Node found where the user's shell finds it, as the command's shebang does.
    const envOf = (e: NodeJS.ProcessEnv) => ({ ...e, PATH: `${dirname(process.execPath)}:${e.PATH ?? ''}` });
    const s = { node: [] as number[], tendril: [] as number[], nodeNoCa: [] as number[], tendrilNoCa: [] as number[] };
    const round = (keep: boolean) => {
      const t = [once(process.execPath, nodeArgs, envs.asIs), once(TENDRIL, tendrilArgs, envOf(envs.asIs)),
        once(process.execPath, nodeArgs, envs.noCa), once(TENDRIL, tendrilArgs, envOf(envs.noCa))];
      if (!keep) return;
      s.node.push(t[0]);
      s.tendril.push(t[1]);
      s.nodeNoCa.push(t[2]);
      s.tendrilNoCa.push(t[3]);
    };
    for (let i = 0; i < pick(3, 1); i++) round(false); // page in Node, tendril and the guest
    const n = await rounds(budget, pick(20, 3), () => round(true));
    const row = (name: string, env: string, tendril: number[], node: number[]): Row => ({
      name, what: `the \`tendril\` command running hello (\`tendril run\`), spawn to exit, median of ${n}; ${env}`, unit: 'ms', direction: 'lower',
      tendril: median(tendril),
      baseline: { value: median(node), measured: true, label: 'node -e 0', what: `\`node -e 0\`, the same Node starting and exiting, same environment (${env}), interleaved with the tendril runs` },
      details: { tendril, node },
    });
    const removed = process.env.NODE_EXTRA_CA_CERTS ? 'NODE_EXTRA_CA_CERTS removed' : 'NODE_EXTRA_CA_CERTS not set (as above)';
    return {
      rows: [row('cold', `environment as it is: ${ca}`, s.tendril, s.node), row('cold, no extra CA', removed, s.tendrilNoCa, s.nodeNoCa)],
      plots: [
        { kind: 'bars', file: 'cold-start', title: 'Cold start: tendril run hello vs node -e 0 (medians)', rows: ['cold', 'cold, no extra CA'] },
        { kind: 'distribution', file: 'cold-start-samples', title: 'Cold start, every run', unit: 'ms', direction: 'lower', series: {
          'tendril run hello': s.tendril,
          'node -e 0': s.node,
          'tendril run hello, no NODE_EXTRA_CA_CERTS': s.tendrilNoCa,
          'node -e 0, no NODE_EXTRA_CA_CERTS': s.nodeNoCa,
        } },
      ],
    };
  },
};
