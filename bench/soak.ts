// The soak (the launch engine left running): many launches of hello at
// concurrency 8 through one server, bounded in count and in time. Nothing
// may be left behind — fds of the server or its zygote, processes, zombies,
// temp files — and the server's resident memory must not grow: its RSS at
// the end is set against its RSS after the first 10% (10,000 of 100,000 in
// a full run).

import { readdirSync, readFileSync } from 'node:fs';
import { childrenOf, waitFor } from '../tests/helpers.js';
import type { Bench, Row } from './common.js';
import { registerHello, warmLoop, withServer } from './launch.js';

const rssKiB = (pid: number) => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
const fds = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

export const bench: Bench = {
  name: 'soak',
  title: 'Soak: 100,000 launches through one server',
  budgetMs: { full: 600_000, quick: 20_000 },
  async run({ pick, budget }) {
    const total = pick(100_000, 2_000);
    const chunk = total / 10;
    return withServer(async (sock, server, tmp) => {
      const image = await registerHello(sock);
      await warmLoop(sock, image, 8, 200);
      const zygote = childrenOf(server.pid!)[0];
      // Counted with the pool full, before and after: idle stubs hold fds too.
      const poolFull = () => childrenOf(zygote).length === 8;
      await waitFor('the stub pool to fill', poolFull, 30_000);
      const before = { server: fds(server.pid!), zygote: fds(zygote), temp: readdirSync(tmp).length };
      let done = 0;
      let rssAfterFirst = NaN;
      let rate = 0;
      const started = Date.now();
      // In tenths, so a time budget running out stops between chunks, never mid-flight.
      while (done < total && (done === 0 || budget.left() > 2 * ((Date.now() - started) / done) * chunk)) {
        const r = await warmLoop(sock, image, 8, chunk);
        rate = r.perSecond;
        done += chunk;
        if (done === chunk) rssAfterFirst = rssKiB(server.pid!);
      }
      await waitFor('the stub pool to refill', poolFull, 30_000);
      const kids = childrenOf(zygote);
      const counts = {
        'server fds': fds(server.pid!) - before.server,
        'zygote fds': fds(zygote) - before.zygote,
        'zombies': kids.filter((p) => /^State:\s+Z/m.test(readFileSync(`/proc/${p}/status`, 'utf8'))).length,
        'zygote children beyond its pool of 8': Math.max(0, kids.length - 8),
        'temp files': readdirSync(tmp).length - before.temp,
      };
      const rows: Row[] = [
        { name: 'soak leaks', what: `left behind after ${done.toLocaleString('en-US')} launches at concurrency 8`, counts, details: { launches: done, lastRate: rate } },
        {
          name: 'soak RSS', what: `server resident memory after ${done.toLocaleString('en-US')} launches, against after the first ${chunk.toLocaleString('en-US')}`,
          unit: 'KiB', direction: 'lower', tendril: rssKiB(server.pid!),
          baseline: { value: rssAfterFirst, measured: true, label: `after ${chunk.toLocaleString('en-US')}`, what: `the same server's RSS after the first ${chunk.toLocaleString('en-US')} launches of this run` },
          details: { launches: done, perSecondAtConcurrency8: rate },
        },
      ];
      return { rows };
    });
  },
};
