// Debugging a crashing unikernel: --dumpcore leaves a core that gdb opens with
// the guest's symbols; --gdb stops the guest before its first instruction so
// a debugger can attach. Both use Debian's gdb in batch mode.

import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { guest, runCmdAsync, TENDRIL, tendrilAsync, waitForStub, waitForSyscall, withTempDir } from './helpers.js';

const NR_NANOSLEEP = 35;

const gdb = (args: string[]) => runCmdAsync('gdb', ['-nx', '-batch', ...args], { timeoutMs: 60_000 });
const corePattern = readFileSync('/proc/sys/kernel/core_pattern', 'utf8').trim();
const plainPattern = !corePattern.startsWith('|') && !corePattern.includes('/');

for (const [name, signal, status, frame] of [
  ['test_exception', 'SIGSEGV', 139, /#0 .* in solo5_app_main .*test_exception\.c/],
  ['test_seccomp', 'SIGSYS', 159, /#0 .* in solo5_app_main .*test_seccomp\.c/],
] as const) {
  (plainPattern ? test : test.skip)(`--dumpcore: ${name} leaves a core; gdb shows ${signal} and the faulting frame`, async (t) => {
    await withTempDir(async (dir) => {
      const r = await tendrilAsync(['run', `--dumpcore=${dir}`, '--mem=2', guest(name)]);
      t.is(r.status, status);
      const core = join(dir, corePattern.replace(/%p/g, '*'));
      t.true(existsSync(core), `core file ${core}`);
      const bt = await gdb(['-ex', 'bt', guest(name), core]);
      t.regex(bt.stdout, new RegExp(`Program terminated with signal ${signal}`));
      t.regex(bt.stdout, frame);
      t.regex(bt.stdout, /in _start \(arg=0x11000\)/);
      t.log(bt.stdout.split('\n').filter((l) => /^#|signal/.test(l)).join('\n'));
    });
  });
}

test('--dumpcore with a missing directory is refused', async (t) => {
  const r = await tendrilAsync(['run', '--dumpcore=/nonexistent/cores', '--mem=2', guest('test_exception')]);
  t.is(r.status, 1);
  t.regex(r.stderr, /--dumpcore=\/nonexistent\/cores: no such directory/);
});

test('without --dumpcore the guest is not dumpable and leaves no core', async (t) => {
  await withTempDir(async (dir) => {
    const r = await runCmdAsync('sh', ['-c', `cd ${dir} && ulimit -c unlimited && exec ${process.execPath} ${TENDRIL} run --mem=2 ${guest('test_exception')}`]);
    t.is(r.status, 139);
    t.false(existsSync(join(dir, 'core')));
  });
});

test('--gdb: stopped before the first guest instruction; gdb attaches, breaks in solo5_app_main, the guest finishes', async (t) => {
  const child = spawn(process.execPath, [TENDRIL, 'run', '--gdb', '--mem=2', guest('test_hello'), 'Hello_Solo5'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d; });
  child.stdout.on('data', (d: Buffer) => { stdout += d; });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    // Waiting = the stub has replaced Node, and the filter (installed just
    // before the jump to the guest) is not there yet.
    await waitForStub(child.pid!);
    await waitForSyscall(child.pid!, NR_NANOSLEEP); // the stub's wait for a tracer
    t.regex(readFileSync(`/proc/${child.pid}/status`, 'utf8'), /^Seccomp:\s+0$/m, 'the guest has not started');
    t.regex(stderr, new RegExp(`attach with: gdb .*test_hello\\.spt -p ${child.pid}`));
    t.is(stdout, '', 'no guest instruction has run');
    const g = await gdb(['-ex', 'break solo5_app_main', '-ex', 'continue', '-ex', 'bt 1', '-ex', 'continue', guest('test_hello'), '-p', String(child.pid)]);
    t.regex(g.stdout, /Breakpoint 1, solo5_app_main/);
    t.regex(g.stdout, /exited normally/);
    t.is(await exited, 0);
    t.regex(stdout, /SUCCESS/);
  } finally {
    child.kill('SIGKILL');
  }
});
