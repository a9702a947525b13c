// `tendril launch`: a client of `tendril serve` that keeps `tendril run`'s
// promises — its own help; every run option works through the server or is
// refused with the reason; a signal to the client reaches the guest and the
// client's status mirrors the guest's; the timeout says it was the timeout;
// relative paths are the client's.

import test from 'ava';
import { spawn } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { api } from '../supervisor/serve/client.js';
import { guest, oneLine, runCmdAsync, TENDRIL, waitFor, waitForGuest, withTempDir } from './helpers.js';
import { startServer, type Json, type TestServer } from './serve-helpers.js';

let s: TestServer;

test.before(async () => {
  // The server runs in its own directory: relative paths resolved there would not find the client's files.
  s = await startServer(['--pool=2']);
});

test.after.always(async () => {
  await s?.stop();
});

const launch = (args: string[], opts: { cwd?: string } = {}) => runCmdAsync(process.execPath, [TENDRIL, 'launch', `--server=${s.sock}`, ...args], { cwd: opts.cwd });

test('launch --help is its own help (stdout, exit 0), naming --server and --timeout', async (t) => {
  const r = await launch(['--help']);
  t.is(r.status, 0);
  t.is(r.stderr, '');
  t.regex(r.stdout, /^usage: tendril launch /);
  t.regex(r.stdout, /--server=SOCKET/);
  t.regex(r.stdout, /--timeout=MS/);
  t.regex(r.stdout, /Refused, with the reason: --gdb, --dumpcore/);
});

test('output on stdout, the guest\'s status, the reason on stderr; an unreachable server in one line', async (t) => {
  const ok = await launch(['--mem=2', guest('test_hello'), 'Hello_Solo5']);
  t.is(ok.status, 0);
  t.regex(ok.stdout, /SUCCESS/);
  const sys = await launch(['--mem=2', guest('test_seccomp')]);
  t.is(sys.status, 159);
  t.regex(sys.stderr, /^tendril: guest made a forbidden system call: dup \(32\)/m);
  const exit = await launch(['--mem=2', guest('test_exit'), '300']);
  t.is(exit.status, 44);
  const down = await runCmdAsync(process.execPath, [TENDRIL, 'launch', '--server=/nonexistent/api.sock', guest('test_hello')]);
  t.is(down.status, 1);
  t.true(oneLine(down.stderr), down.stderr);
  t.regex(down.stderr, /cannot reach the server at \/nonexistent\/api\.sock/);
});

for (const [opt, why] of [
  ['--gdb', /--gdb does not work through a server: the guest would wait for a debugger on the server's host/],
  ['--dumpcore=/tmp', /--dumpcore does not work through a server: the core would be written on the server's host/],
  ['--dumpable', /--dumpable does not work through a server/],
  ['--wait-fifo=/tmp/fifo', /--wait-fifo does not work through a server/],
  ['--block:storage=@3', /an fd of this process cannot be passed to a server/],
] as const) {
  test(`launch ${opt} is refused in one line, saying why`, async (t) => {
    const r = await launch([opt, '--mem=2', guest('test_blk')]);
    t.is(r.status, 1);
    t.true(oneLine(r.stderr), r.stderr);
    t.regex(r.stderr, why);
  });
}

test('--x-exec-heap and --supervise work through the server', async (t) => {
  // The argument marks this launch among the other tests' (test_forever ignores it).
  const child = spawn(process.execPath, [TENDRIL, 'launch', `--server=${s.sock}`, '--x-exec-heap', '--supervise', '--mem=2', guest('test_forever'), 'xheap'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const inst = await waitFor('the guest', async () => ((await api(s.sock, 'GET', '/instances')).body as Json[]).find((i) => i.state === 'running' && i.args[0] === 'xheap' && i.pid), 60_000);
    await waitForGuest(inst.pid);
    // The guest's memory is mapped executable: the heap and stack are.
    t.regex(readFileSync(`/proc/${inst.pid}/maps`, 'utf8'), /^0*10000-[0-9a-f]+ rwxp /m);
  } finally {
    child.kill('SIGTERM');
  }
  const code = await new Promise((r) => child.once('exit', (c, sig) => r(sig ?? c)));
  t.is(code, 'SIGTERM');
});

for (const [sig, status] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  test(`${sig} to the client goes to the guest: it dies by ${sig}, the client mirrors it (${status}), nothing is left running`, async (t) => {
    const child = spawn(process.execPath, [TENDRIL, 'launch', `--server=${s.sock}`, '--mem=2', guest('test_forever'), sig], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once('exit', (c, sg) => r([c, sg])));
    // The guest runs and its console streams to us.
    await waitFor('the guest to say ready', () => out.includes('ready'), 30_000);
    const inst = ((await api(s.sock, 'GET', '/instances')).body as Json[]).find((i) => i.args[0] === sig && i.state === 'running')!;
    t.truthy(inst);
    child.kill(sig);
    const [code, signal] = await exited;
    t.is(signal, sig, `exit code ${code}`);
    const end = (await api(s.sock, 'GET', `/instances/${inst.id}`)).body as Json;
    t.is(end.state, 'exited');
    t.is(end.status, status);
    t.is(end.killedBy, 'request');
  });
}

test('--timeout: the client says the guest was killed because its time limit ran out', async (t) => {
  const r = await launch(['--timeout=300', '--mem=2', guest('test_forever')]);
  t.is(r.status, 137);
  t.regex(r.stderr, /^tendril: guest was killed \(SIGKILL\) when its time limit ran out \(timeoutMs 300\)$/m);
});

test('relative paths (the guest, a disk) are resolved against the client\'s directory, not the server\'s', async (t) => {
  await withTempDir(async (dir) => {
    copyFileSync(guest('test_blk'), join(dir, 'blk.spt'));
    writeFileSync(join(dir, 'disk.img'), Buffer.alloc(1 << 20));
    const r = await launch(['--mem=2', '--block:storage=disk.img', 'blk.spt'], { cwd: dir });
    t.is(r.status, 0, r.stderr);
    t.regex(r.stdout, /SUCCESS/);
  });
});

test('--log-level=info: the client logs what it did (image, instance, end), one JSON record each', async (t) => {
  const r = await launch(['--log-level=info', '--log-format=json', '--mem=2', guest('test_hello')]);
  t.is(r.status, 0);
  const recs = r.stderr.trim().split('\n').map((l) => JSON.parse(l));
  t.deepEqual(recs.map((x) => x.msg), ['image registered', 'guest started', 'guest exited']);
  t.is(recs[2].status, 0);
});
