// Exec hand-over (docs/architecture.md, "The launch path"): the guest runs in the very process that ran
// `tendril run`, with no Node left resident, inside its filter, holding only
// the fds it needs.

import test from 'ava';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { guest, STUB, TENDRIL, waitForGuest, waitForStub, waitForSyscall, WITH_PDEATHSIG } from './helpers.js';

const NR_READ = 0;


test('the guest replaces the tendril process: same pid, stub image, filter on, no Node', async (t) => {
  const child = spawn(WITH_PDEATHSIG, [process.execPath, TENDRIL, 'run', '--mem=2', guest('test_forever')], { stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid!;
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on('exit', (code, sig) => r([code, sig])));
  try {
    const status = await waitForGuest(pid);
    t.is(readlinkSync(`/proc/${pid}/exe`), STUB);
    t.regex(status, /^NoNewPrivs:\s+1$/m);
    t.regex(status, /^Threads:\s+1$/m);
    const rss = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)![1]);
    t.log(`VmRSS of a running guest (test_forever, --mem=2): ${rss} kB`);
    t.true(rss < 4096, `resident ${rss} kB`);
    const maps = readFileSync(`/proc/${pid}/maps`, 'utf8');
    t.notRegex(maps, /node|libc|koffi|libseccomp/, 'nothing of Node is left mapped');
    // stdio, the epoll set and the timerfd; nothing else leaks through the exec.
    const fds = readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
    t.is(fds.length, 5, `fds: ${fds.join(' ')}`);
    const kinds = fds.slice(3).map((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`)).sort();
    t.deepEqual(kinds, ['anon_inode:[eventpoll]', 'anon_inode:[timerfd]']);
    // Limits as defence in depth: no core, no fd above the highest kept, no locked memory.
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    t.regex(limits, /^Max core file size\s+0\s+0\s/m);
    t.regex(limits, new RegExp(`^Max open files\\s+${fds[fds.length - 1] + 1}\\s+${fds[fds.length - 1] + 1}\\s`, 'm'));
    t.regex(limits, /^Max locked memory\s+0\s+0\s/m);
  } finally {
    child.kill('SIGKILL');
  }
  const [, sig] = await exited;
  t.is(sig, 'SIGKILL');
});

test('--wait-fifo: the guest is loaded and filtered-ready but runs only after a byte arrives', async (t) => {
  const { execFileSync } = await import('node:child_process');
  const { mkdtempSync, rmSync, writeFileSync: write } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'tendril-fifo-'));
  const fifo = join(dir, 'start');
  execFileSync('mkfifo', [fifo]);
  const child = spawn(process.execPath, [TENDRIL, 'run', `--wait-fifo=${fifo}`, '--mem=2', guest('test_hello'), 'Hello_Solo5'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d; });
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  try {
    await waitForStub(child.pid!);
    await waitForSyscall(child.pid!, NR_READ); // the stub blocked on the FIFO for its start byte
    t.is(out, '', 'no guest instruction has run');
    t.regex(readFileSync(`/proc/${child.pid}/status`, 'utf8'), /^Seccomp:\s+0$/m);
    write(fifo, 'x');
    t.is(await exited, 0);
    t.regex(out, /SUCCESS/);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});
