// Supervised mode (--supervise): the guest runs as a child under a tiny ptrace
// monitor; the exit status is the same as in exec mode, and when the sandbox
// or the MMU kills the guest, one line on stderr says why — a feature the
// reference lacks. Also: structured logs (pino) on request, none by default.

import test from 'ava';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { childrenOf, guest, HOST, TENDRIL, tendrilAsync, waitFor, withTempDir } from './helpers.js';

const run = (mode: string[], name: string, ...args: string[]) => tendrilAsync(['run', ...mode, '--mem=2', guest(name), ...args]);

for (const [name, args, status, reason] of [
  ['test_hello', ['Hello_Solo5'], 0, undefined],
  ['test_exit', ['7'], 7, undefined],
  ['test_exit', ['300'], 44, undefined],
  ['test_ssp', [], 255, undefined],
  ['test_seccomp', [], 159, /^tendril: guest made a forbidden system call: dup \(32\) at 0x1[0-9a-f]{5}; the sandbox killed it \(SIGSYS\)\n$/],
  ['test_exception', [], 139, /^tendril: guest memory fault at 0x400000000 \(address not mapped\) by the instruction at 0x1[0-9a-f]{5}; killed by SIGSEGV\n$/],
  // Writing into .text: with protection keys the text is execute-only and the fault is a protection-key fault.
  ['test_xnow', [], 139, HOST.pku
    ? /^tendril: guest memory fault at 0x1[0-9a-f]{5} \(access denied by a memory protection key: the page is execute-only \(this CPU has protection keys\)\)/
    : /^tendril: guest memory fault at 0x1[0-9a-f]{5} \(access not permitted by the page protection\)/],
  ['test_zeropage', [], 139, /^tendril: guest memory fault at 0x8 \(address not mapped\)/],
  ['test_xnor', [], HOST.pku ? 139 : 1, HOST.pku ? /^tendril: guest memory fault at 0x1[0-9a-f]{5} \(access denied by a memory protection key/ : undefined],
  ['test_stackoverflow', [], 139, /^tendril: guest memory fault at (0x[0-9a-f]+) \(access not permitted by the page protection\) by the instruction at 0x1[0-9a-f]{5}; the stack pointer was at 0x[0-9a-f]+: probably a stack overflow/],
  ['test_illegal', [], 132, /^tendril: guest executed an illegal instruction \(illegal operand\) at 0x1[0-9a-f]{5}; killed by SIGILL\n$/],
] as const) {
  test(`--supervise ${name} ${args.join(' ')}: status ${status} and output as in exec mode${reason ? ', with the reason' : ''}`, async (t) => {
    const [sup, exec] = await Promise.all([run(['--supervise'], name, ...args), run([], name, ...args)]);
    t.is(sup.status, status);
    t.is(exec.status, status);
    t.is(sup.stdout, exec.stdout);
    if (reason) t.regex(sup.stderr, reason);
    else t.is(sup.stderr, '');
  });
}

test('--supervise with a block device: fds placed for the child, I/O works', async (t) => {
  await withTempDir(async (dir) => {
    const disk = join(dir, 'disk.img');
    writeFileSync(disk, Buffer.alloc(1 << 20));
    const r = await tendrilAsync(['run', '--supervise', '--mem=2', `--block:storage=${disk}`, guest('test_blk')]);
    t.is(r.status, 0, r.stdout + r.stderr);
    t.regex(r.stdout, /SUCCESS/);
  });
});

test('--log-level=info --log-format=json: one JSON record per event', async (t) => {
  const r = await run(['--supervise', '--log-level=info', '--log-format=json'], 'test_hello', 'Hello_Solo5');
  t.is(r.status, 0);
  const recs = r.stderr.trim().split('\n').map((l) => JSON.parse(l));
  t.deepEqual(recs.map((x) => x.msg), ['image validated', 'hand-over', 'guest exited']);
  t.is(recs[0].target, 'spt');
  t.is(recs[0].abi, 2);
  t.is(recs[1].mode, 'spawn');
  const exit = recs[2];
  t.is(exit.status, 0);
  t.true(exit.durationMs > 0);
  t.true(exit.maxrssKiB > 0 && exit.maxrssKiB < 4096, `maxrss ${exit.maxrssKiB}`);
});

test('exec mode logs validation and hand-over, then the guest owns stderr', async (t) => {
  const r = await run(['--log-level=info', '--log-format=json'], 'test_hello', 'Hello_Solo5');
  t.is(r.status, 0);
  const msgs = r.stderr.trim().split('\n').map((l) => JSON.parse(l).msg);
  t.deepEqual(msgs, ['image validated', 'hand-over']);
});

test('pretty logs are one readable line per event', async (t) => {
  const r = await run(['--supervise', '--log-level=info', '--log-format=pretty'], 'test_exit', '7');
  t.is(r.status, 7);
  t.regex(r.stderr, /^\d\d:\d\d:\d\d\.\d{3} INFO  image validated guest=\S+ target=spt abi=2/m);
  t.regex(r.stderr, /INFO  guest exited status=7 exit=7 durationMs=/);
});

test('by default nothing is logged; errors stay one plain line at any level', async (t) => {
  const quiet = await run([], 'test_hello', 'Hello_Solo5');
  t.is(quiet.stderr, '');
  const bad = await tendrilAsync(['run', '--log-level=debug', '--mem=2x', guest('test_hello')]);
  t.is(bad.status, 1);
  t.regex(bad.stderr, /^tendril: Invalid option: `--mem=2x'[^\n]*\n$/);
  const badLevel = await tendrilAsync(['run', '--log-level=loud', guest('test_hello')]);
  t.is(badLevel.status, 1);
  t.regex(badLevel.stderr, /log level must be one of/);
});

test('killing the supervisor kills the guest (no orphan left running)', async (t) => {
  const child = spawn(process.execPath, [TENDRIL, 'run', '--supervise', '--log-level=info', '--log-format=json', '--mem=2', guest('test_time')],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d; });
  const monitor = await waitFor('the hand-over log line', () => Number(/"guestPid":(\d+)/.exec(err)?.[1]) || undefined);
  const guestPid = await waitFor('the monitor\'s guest child', () => childrenOf(monitor)[0]);
  child.kill('SIGKILL');
  const gone = await waitFor(`guest ${guestPid} to end`, () => {
    try {
      return /^State:\s+Z/m.test(readFileSync(`/proc/${guestPid}/status`, 'utf8'));
    } catch {
      return true; // reaped: gone
    }
  });
  t.true(gone, `guest ${guestPid} ended with its supervisor`);
});

test('--gdb and --supervise together are refused', async (t) => {
  const r = await tendrilAsync(['run', '--gdb', '--supervise', guest('test_hello')]);
  t.is(r.status, 1);
  t.regex(r.stderr, /cannot be combined with --supervise/);
});
