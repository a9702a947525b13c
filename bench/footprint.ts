// Footprint: resident memory (VmRSS) of a running guest in exec mode, where
// the stub has unmapped itself and only the guest remains, against programs
// measured here in the same state (asleep, waiting for time to pass): a
// minimal static C program (bench/tools/idle.c) and `sleep`. The reference
// solo5-spt is not on this machine: its figure is quoted, with its source.
// Each is read once the process sleeps in its wait (polled, not guessed).

import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { guest, TENDRIL, waitFor } from '../tests/helpers.js';
import { cTool } from './ctool.js';
import { median, rounds, type Bench } from './common.js';

const TIME = guest('test_time');

function status(pid: number): string {
  return readFileSync(`/proc/${pid}/status`, 'utf8');
}

function vmRssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status(pid));
  if (!m) throw new Error(`pid ${pid} has no VmRSS`);
  return Number(m[1]);
}

const asleep = (s: string) => /^State:\s+S/m.test(s);

/** VmRSS of cmd once `settled` says it sleeps where it should; the process is killed after. */
async function rssOf(what: string, cmd: string, args: string[], settled: (pid: number) => boolean): Promise<number> {
  const child = spawn(cmd, args, { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    await Promise.race([
      waitFor(`${what} to settle`, () => settled(child.pid!), 20_000),
      exited.then(() => { throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) before it settled`); }),
    ]);
    return vmRssKiB(child.pid!);
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

export const bench: Bench = {
  name: 'footprint',
  title: 'Resident memory of a running guest',
  budgetMs: { full: 60_000, quick: 15_000 },
  async run({ pick, budget }) {
    const idle = realpathSync(cTool('idle', ['-static']));
    const sleepBin = realpathSync('/bin/sleep');
    const kib = { tendril: [] as number[], idle: [] as number[], sleep: [] as number[] };
    await rounds(budget, pick(3, 1), async () => {
      // The guest sleeps in solo5_yield() only after its filter is installed.
      kib.tendril.push(await rssOf('test_time under tendril', process.execPath, [TENDRIL, 'run', '--mem=2', TIME, '--solo5:quiet'],
        (pid) => { const s = status(pid); return /^Seccomp:\s+2$/m.test(s) && asleep(s); }));
      kib.idle.push(await rssOf('idle', idle, [], (pid) => readlinkSync(`/proc/${pid}/exe`) === idle && asleep(status(pid))));
      kib.sleep.push(await rssOf('sleep', sleepBin, ['1000'], (pid) => readlinkSync(`/proc/${pid}/exe`) === sleepBin && asleep(status(pid))));
    });
    const tendril = median(kib.tendril);
    const what = 'VmRSS of a running guest (test_time, --mem=2) under `tendril run`, exec mode, asleep in solo5_yield()';
    return {
      rows: [
        {
          name: 'rss', what, unit: 'KiB', direction: 'lower', tendril,
          baseline: { value: median(kib.idle), measured: true, label: 'static C program, idle', what: 'bench/tools/idle.c, static, asleep in epoll_pwait() on a timerfd' },
          details: kib,
        },
        {
          name: 'rss vs sleep', what, unit: 'KiB', direction: 'lower', tendril,
          baseline: { value: median(kib.sleep), measured: true, label: 'sleep (coreutils)', what: `${sleepBin} 1000 (dynamically linked), asleep` },
        },
        {
          name: 'rss vs solo5-spt', what, unit: 'KiB', direction: 'lower', tendril,
          baseline: {
            value: 1.4 * 1024, quoted: true, label: 'solo5-spt running test_hello',
            what: 'the reference tender solo5-spt running test_hello (not on this machine, so not measured)',
            source: 'docs/abi.md §1 ("the reference running test_hello sits at about 1.4 MiB resident")',
          },
        },
      ],
    };
  },
};
