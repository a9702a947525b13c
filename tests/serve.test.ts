// `tendril serve` and `tendril launch`: the HTTP API on a unix socket, run
// for real with a pool of stubs, and a leak check over many launches.

import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { api, streamTo } from '../supervisor/serve/client.js';
import { childrenOf, guest, runCmdAsync, TENDRIL, waitFor, withTempDir } from './helpers.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let server: ChildProcess;
let sock: string;
const dir = join(tmpdir(), `tendril-serve-test-${process.pid}`);
const serverTmp = join(dir, 'tmp');
const ids: Record<string, string> = {};

async function register(name: string): Promise<string> {
  if (!ids[name]) {
    const r = await api(sock, 'POST', '/images', { path: guest(name) });
    if (r.status !== 201) throw new Error(`register ${name}: ${JSON.stringify(r.body)}`);
    ids[name] = (r.body as Json).id;
  }
  return ids[name];
}

async function launch(name: string, body: Json = {}): Promise<Json> {
  const r = await api(sock, 'POST', '/instances', { image: await register(name), memMiB: 2, wait: true, ...body });
  return { httpStatus: r.status, ...(r.body as Json) };
}

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

test.before(async () => {
  mkdirSync(dir, { recursive: true });
  sock = join(dir, 'api.sock');
  // A private TMPDIR: anything the server leaves in a temp dir shows up here,
  // and only here (other test files make their own temp files meanwhile).
  mkdirSync(serverTmp, { recursive: true });
  server = spawn(process.execPath, [TENDRIL, 'serve', `--socket=${sock}`, '--pool=2', '--log-level=warn'],
    { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, TMPDIR: serverTmp } });
  await waitFor('the server socket', () => existsSync(sock));
});

test.after.always(async () => {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  rmSync(dir, { recursive: true, force: true });
});

test('the socket is private to its owner', (t) => {
  t.is(statSync(sock).mode & 0o777, 0o600);
});

test('register an image: validated, described, idempotent by content', async (t) => {
  const r = await api(sock, 'POST', '/images', { path: guest('test_blk') });
  t.is(r.status, 201);
  const b = r.body as Json;
  t.regex(b.id, /^[0-9a-f]{64}$/);
  t.deepEqual(b.abi, { target: 'spt', version: 2 });
  t.deepEqual(b.devices, [{ handle: 1, name: 'storage', type: 'BLOCK_BASIC' }]);
  const again = await api(sock, 'POST', '/images', { path: guest('test_blk') });
  t.is((again.body as Json).id, b.id);
  const list = await api(sock, 'GET', '/images');
  t.true((list.body as Json[]).some((i) => i.id === b.id));
});

test('a bad image is refused with the loader\'s message; unknown ids are 404', async (t) => {
  const bad = await api(sock, 'POST', '/images', { path: '/bin/true' });
  t.is(bad.status, 400);
  t.regex((bad.body as Json).error, /\/bin\/true: invalid executable/);
  const missing = await api(sock, 'POST', '/images', { path: '/nonexistent.spt' });
  t.is(missing.status, 400);
  const none = await api(sock, 'GET', `/images/${'0'.repeat(64)}`);
  t.is(none.status, 404);
  const noInst = await api(sock, 'GET', '/instances/feedface');
  t.is(noInst.status, 404);
});

test('launch and wait: output, status, timings', async (t) => {
  const r = await launch('test_hello', { args: ['Hello_Solo5'] });
  t.is(r.httpStatus, 200);
  t.is(r.status, 0);
  t.regex(r.output, /Command line is: 'Hello_Solo5'\nSUCCESS/);
  t.is(r.state, 'exited');
  t.true(r.timings.launchMs > 0 && r.timings.runMs > 0);
  t.true(r.maxrssKiB > 0);
});

for (const [name, args, status, reason] of [
  ['test_exit', ['300'], 44, undefined],
  ['test_seccomp', [], 159, /forbidden system call: dup \(32\)/],
  ['test_exception', [], 139, /memory fault at 0x400000000/],
  ['test_abort', [], 255, undefined],
] as const) {
  test(`launch ${name} ${args.join(' ')} → ${status}`, async (t) => {
    const r = await launch(name, { args });
    t.is(r.status, status);
    if (reason) t.regex(r.reason, reason);
    else t.is(r.reason, undefined);
  });
}

test('console streaming while the guest runs, then status', async (t) => {
  const r = await api(sock, 'POST', '/instances', { image: await register('test_time'), memMiB: 2 });
  t.is(r.status, 201);
  const id = (r.body as Json).id;
  let out = '';
  await streamTo(sock, `/instances/${id}/console`, (c) => { out += c.toString('utf8'); });
  t.regex(out, /SUCCESS/);
  const s = (await api(sock, 'GET', `/instances/${id}`)).body as Json;
  t.is(s.status, 0);
  t.is(s.state, 'exited');
});

test('timeoutMs kills a guest that runs too long', async (t) => {
  const r = await launch('test_time', { timeoutMs: 300 });
  t.is(r.status, 137);
  t.is(r.killedBy, 'timeout');
  t.regex(r.reason, /SIGKILL/);
});

test('kill a running instance', async (t) => {
  const r = await api(sock, 'POST', '/instances', { image: await register('test_time'), memMiB: 2 });
  const id = (r.body as Json).id;
  await sleep(100);
  const k = await api(sock, 'POST', `/instances/${id}/kill`, { signal: 'SIGTERM' });
  t.is(k.status, 200);
  let s: Json = {};
  for (let i = 0; i < 100 && s.state !== 'exited'; i++) {
    await sleep(20);
    s = (await api(sock, 'GET', `/instances/${id}`)).body as Json;
  }
  t.is(s.state, 'exited');
  t.is(s.status, 143);
  t.is(s.killedBy, 'request');
  const bad = await api(sock, 'POST', `/instances/${id}/kill`, { signal: 'SIGNOPE' });
  t.is(bad.status, 400);
});

test('a guest with a disk, through the API', async (t) => {
  await withTempDir(async (d) => {
    const disk = join(d, 'disk.img');
    writeFileSync(disk, Buffer.alloc(1 << 20));
    const r = await launch('test_blk', { devices: { storage: { block: disk } } });
    t.is(r.status, 0, r.output);
    t.regex(r.output, /SUCCESS/);
  });
});

for (const [what, body, expect] of [
  ['no image', { memMiB: 2 }, /"image"/],
  ['bad memory', { memMiB: 0 }, /guest memory must be between/],
  ['args not strings', { args: [1, 2] }, /"args" must be an array of strings/],
  ['undeclared device', { devices: { other: { block: '/dev/null' } } }, /Resource not declared in manifest: 'other'/],
  ['unattached device', {}, /Device 'storage' of type BLOCK_BASIC declared but not attached/],
  ['bad timeout', { timeoutMs: -5 }, /"timeoutMs" must be between/],
] as const) {
  test(`a bad launch request is a 400 with a clear error: ${what}`, async (t) => {
    const image = 'image' in body || what === 'no image' ? undefined : await register('test_blk');
    const r = await api(sock, 'POST', '/instances', Object.assign(image ? { image } : {}, { memMiB: 2 }, body));
    t.is(r.status, 400);
    t.regex((r.body as Json).error, expect);
  });
}

test('metrics in Prometheus text format', async (t) => {
  await launch('test_hello');
  const r = await api(sock, 'GET', '/metrics');
  t.is(r.status, 200);
  const text = r.body as string;
  t.regex(text, /^# TYPE tendril_launches_total counter$/m);
  t.regex(text, /^tendril_launches_total [1-9]\d*$/m);
  t.regex(text, /^tendril_exits_total\{status="0"\} [1-9]\d*$/m);
  t.regex(text, /^tendril_launch_latency_seconds_bucket\{le="\+Inf"\} [1-9]\d*$/m);
  t.regex(text, /^tendril_launch_latency_seconds_count [1-9]\d*$/m);
  t.regex(text, /^tendril_instances_running \d+$/m);
});

test('tendril launch: output on stdout, the guest\'s status, the reason on stderr', async (t) => {
  const ok = await runCmdAsync(process.execPath, [TENDRIL, 'launch', '--server', sock, '--mem=2', guest('test_hello'), 'Hello_Solo5']);
  t.is(ok.status, 0);
  t.regex(ok.stdout, /SUCCESS/);
  const sys = await runCmdAsync(process.execPath, [TENDRIL, 'launch', '--server', sock, '--mem=2', guest('test_seccomp')]);
  t.is(sys.status, 159);
  t.regex(sys.stderr, /^tendril: guest made a forbidden system call: dup \(32\)/m);
  const down = await runCmdAsync(process.execPath, [TENDRIL, 'launch', '--server', join(dir, 'nope.sock'), guest('test_hello')]);
  t.is(down.status, 1);
  t.regex(down.stderr, /cannot reach the server/);
});

test.serial('300 launches leave no fds, processes, zombies or temp files behind', async (t) => {
  const image = await register('test_hello');
  // Warm up at the same concurrency, so the client's kept-alive connections are counted before too.
  await Promise.all([launch('test_hello'), launch('test_hello')]);
  const zygote = childrenOf(server.pid!).find((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('tendril-zygote'))!;
  t.truthy(zygote);
  const before = { server: fdCount(server.pid!), zygote: fdCount(zygote), temp: readdirSync(serverTmp) };
  for (let i = 0; i < 150; i++) {
    const rs = await Promise.all([0, 1].map(() => api(sock, 'POST', '/instances', { image, memMiB: 2, args: ['--solo5:quiet'], wait: true })));
    for (const r of rs) if ((r.body as Json).status !== 0) t.fail(JSON.stringify(r.body));
  }
  await sleep(200); // let the pool refill
  const after = { server: fdCount(server.pid!), zygote: fdCount(zygote), temp: readdirSync(serverTmp) };
  t.deepEqual(after, before);
  // The zygote's children are exactly its idle pool; none is a zombie.
  const kids = childrenOf(zygote);
  t.is(kids.length, 2);
  for (const k of kids) t.notRegex(readFileSync(`/proc/${k}/status`, 'utf8'), /^State:\s+Z/m);
  t.deepEqual(childrenOf(server.pid!), [zygote]);
});

test('monitor: false skips the monitor: same status, no reason or peak memory', async (t) => {
  const r = await launch('test_seccomp', { monitor: false });
  t.is(r.status, 159);
  t.is(r.reason, 'guest was killed by SIGSYS');
  t.is(r.maxrssKiB, undefined);
  const ok = await launch('test_exit', { args: ['7'], monitor: false });
  t.is(ok.status, 7);
  const bad = await api(sock, 'POST', '/instances', { image: await register('test_hello'), monitor: 'no' });
  t.is(bad.status, 400);
});
