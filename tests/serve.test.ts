// `tendril serve`: the HTTP API on a unix socket, run for real with a pool
// of stubs — launches and statuses, the console, kill semantics (the signal
// reaches the guest itself), request validation in API words, errors by
// kind, bounded history and output, backpressure, and a leak check.
// Faults (a dying zygote, a killed server, fd limits, TCP access) are in
// serve-faults.test.ts.

import test from 'ava';
import { request } from 'node:http';
import { readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { api, streamTo } from '../supervisor/serve/client.js';
import { childrenOf, guest, STUB, waitFor, waitForSyscall, withTempDir } from './helpers.js';
import { startServer, type Json, type TestServer } from './serve-helpers.js';

let s: TestServer;
const sock = () => s.sock;

test.before(async () => {
  s = await startServer(['--pool=2', '--output-limit=65536']);
});

test.after.always(async () => {
  await s?.stop();
});

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
const procState = (pid: number) => /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];

async function instance(id: string): Promise<Json> {
  return (await api(sock(), 'GET', `/instances/${id}`)).body as Json;
}

async function ended(id: string): Promise<Json> {
  let last: Json = {};
  await waitFor(`instance ${id} to end`, async () => (last = await instance(id)).state === 'exited' || last.state === 'failed', 30_000);
  return instance(id);
}

test('the socket is private to its owner from the start', (t) => {
  t.is(statSync(sock()).mode & 0o777, 0o600);
});

test('register an image: validated, described, idempotent by content', async (t) => {
  const r = await api(sock(), 'POST', '/images', { path: guest('test_blk') });
  t.is(r.status, 201);
  const b = r.body as Json;
  t.regex(b.id, /^[0-9a-f]{64}$/);
  t.deepEqual(b.abi, { target: 'spt', version: 2 });
  t.deepEqual(b.devices, [{ handle: 1, name: 'storage', type: 'BLOCK_BASIC' }]);
  t.is(await s.register('test_blk'), b.id);
  const list = await api(sock(), 'GET', '/images');
  t.true((list.body as Json[]).some((i) => i.id === b.id));
});

test('refusals name what is wrong, with a status by kind: 422 for an unusable image, 400 for a bad request, 404 for unknown ids', async (t) => {
  const bad = await api(sock(), 'POST', '/images', { path: '/bin/true' });
  t.is(bad.status, 422);
  t.regex((bad.body as Json).error, /\/bin\/true: not a Solo5 spt unikernel: it is a dynamically linked/);
  t.is((bad.body as Json).kind, 'user');
  const missing = await api(sock(), 'POST', '/images', { path: '/nonexistent.spt' });
  t.is(missing.status, 422);
  const relative = await api(sock(), 'POST', '/images', { path: 'tests/guests/build/test_hello.spt' });
  t.is(relative.status, 400);
  t.regex((relative.body as Json).error, /"path": "tests\/guests\/build\/test_hello\.spt" is relative/);
  t.is((await api(sock(), 'GET', `/images/${'0'.repeat(64)}`)).status, 404);
  t.is((await api(sock(), 'GET', '/instances/feedface')).status, 404);
  const route = await api(sock(), 'GET', '/nope');
  t.is(route.status, 404);
  t.regex((route.body as Json).error, /no route GET \/nope/);
});

test('launch and wait: output, status, timings; pid is the guest\'s', async (t) => {
  const r = await s.launch('test_hello', { args: ['Hello_Solo5'] });
  t.is(r.httpStatus, 200);
  t.is(r.status, 0);
  t.regex(r.output, /Command line is: 'Hello_Solo5'\nSUCCESS/);
  t.is(r.state, 'exited');
  t.true(r.timings.launchMs > 0 && r.timings.runMs > 0);
  t.true(r.maxrssKiB > 0);
  t.true(Number.isInteger(r.pid) && r.pid > 0);
});

for (const [name, args, status, reason] of [
  ['test_exit', ['300'], 44, undefined],
  ['test_seccomp', [], 159, /forbidden system call: dup \(32\)/],
  ['test_exception', [], 139, /memory fault at 0x400000000/],
  ['test_abort', [], 255, undefined],
] as const) {
  test(`launch ${name} ${args.join(' ')} → ${status}`, async (t) => {
    const r = await s.launch(name, { args });
    t.is(r.status, status);
    if (reason) t.regex(r.reason, reason);
    else t.is(r.reason, undefined);
  });
}

test('console streaming while the guest runs, then status', async (t) => {
  const r = await api(sock(), 'POST', '/instances', { image: await s.register('test_time'), memMiB: 2 });
  t.is(r.status, 201);
  const id = (r.body as Json).id;
  let out = '';
  await streamTo(sock(), `/instances/${id}/console`, (c) => { out += c.toString('utf8'); });
  t.regex(out, /SUCCESS/);
  const e = await instance(id);
  t.is(e.status, 0);
  t.is(e.state, 'exited');
});

test('timeoutMs kills a guest that runs too long, and the reason says it was the time limit', async (t) => {
  const r = await s.launch('test_forever', { timeoutMs: 300 });
  t.is(r.status, 137);
  t.is(r.killedBy, 'timeout');
  t.is(r.reason, 'guest was killed (SIGKILL) when its time limit ran out (timeoutMs 300)');
});

for (const monitor of [true, false]) {
  test(`kill with SIGTERM reaches the guest itself: it dies by SIGTERM, 143 (monitor: ${monitor})`, async (t) => {
    const r = await api(sock(), 'POST', '/instances', { image: await s.register('test_forever'), memMiB: 2, monitor });
    t.is(r.status, 201);
    const { id, pid } = r.body as Json;
    // The pid is the guest: the stub's image, under its filter.
    t.is(readlinkSync(`/proc/${pid}/exe`), STUB);
    await waitFor('the guest to run under its filter', () => /^Seccomp:\s+2$/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')));
    const k = await api(sock(), 'POST', `/instances/${id}/kill`, { signal: 'SIGTERM' });
    t.is(k.status, 200);
    const e = await ended(id);
    t.is(e.status, 143);
    t.is(e.signal, 15);
    t.is(e.killedBy, 'request');
    if (monitor) t.is(e.reason, 'guest was killed by SIGTERM');
    const again = await api(sock(), 'POST', `/instances/${id}/kill`, { signal: 'SIGTERM' });
    t.is(again.status, 409);
  });
}

test('SIGSTOP stops the guest itself (not its monitor) and SIGCONT resumes it', async (t) => {
  const r = await api(sock(), 'POST', '/instances', { image: await s.register('test_forever'), memMiB: 2 });
  const { id, pid } = r.body as Json;
  try {
    await waitFor('the guest to run', () => /^Seccomp:\s+2$/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')));
    await api(sock(), 'POST', `/instances/${id}/kill`, { signal: 'SIGSTOP' });
    await waitFor('the guest to stop', () => ['T', 't'].includes(procState(pid)!));
    const monitor = Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
    // The monitor is not stopped: it goes back to waiting for its guest.
    await waitFor('the monitor to wait for its guest again', () => procState(monitor) === 'S');
    t.is((await instance(id)).state, 'running');
    const ticks = ((await instance(id)).output as string).match(/tick/g)?.length ?? 0;
    await api(sock(), 'POST', `/instances/${id}/kill`, { signal: 'SIGCONT' });
    // Resumed: it ticks again.
    await waitFor('the guest to tick again', async () => (((await instance(id)).output as string).match(/tick/g)?.length ?? 0) > ticks, 20_000);
    t.pass();
  } finally {
    await api(sock(), 'POST', `/instances/${id}/kill`, { signal: 'SIGKILL' });
  }
  const e = await ended(id);
  t.is(e.status, 137);
});

test('unknown JSON fields are refused by name, with the field meant', async (t) => {
  const image = await s.register('test_hello');
  const typo = await api(sock(), 'POST', '/instances', { image, timeoutMS: 5 });
  t.is(typo.status, 400);
  t.is((typo.body as Json).error, 'unknown field "timeoutMS"');
  t.is((typo.body as Json).hint, 'did you mean "timeoutMs"?');
  const deep = await api(sock(), 'POST', '/instances', { image: await s.register('test_blk'), devices: { storage: { block: '/x', readonly: true } } });
  t.is(deep.status, 400);
  t.is((deep.body as Json).error, 'unknown field "devices.storage.readonly"');
  t.is((deep.body as Json).hint, 'did you mean "readOnly"?');
});

for (const [what, body, status, expect] of [
  ['no image', { memMiB: 2 }, 400, /^"image" is required; or "snapshot": ID, to restore a snapshot instead$/],
  ['an image that is not an id', { image: 'hello.spt' }, 400, /"image" must be an image id/],
  ['memory of the wrong type', { memMiB: '64' }, 400, /^"memMiB" must be integer$/],
  ['too much memory', { memMiB: 70000 }, 400, /^"memMiB" must be <= 65536$/],
  ['args not strings', { args: [1, 2] }, 400, /^"args\.0" must be string$/],
  ['a device that is both', { devices: { storage: { block: '/x', net: 'tap0' } } }, 400, /"devices\.storage" needs exactly one of "net": TAP or "block": PATH/],
  ['a multicast MAC', { devices: { storage: { net: 'tap0', mac: '01:00:5e:00:00:01' } } }, 400, /"devices\.storage\.mac": 01:00:5e:00:00:01 is a multicast address/],
  ['an undeclared device', { devices: { other: { block: '/dev/null' } } }, 400, /Resource not declared in manifest: 'other'/],
  ['an unattached device', {}, 400, /Device 'storage' of type BLOCK_BASIC declared but not attached; all declared devices must be attached: add "storage": \{"block": PATH\} to "devices"/],
  ['a disk that does not exist', { devices: { storage: { block: '/nonexistent/disk.img' } } }, 422, /^devices\.storage: Could not open block device: \/nonexistent\/disk\.img: No such file or directory$/],
  ['a disk that is not a disk', { devices: { storage: { block: '/dev/null' } } }, 422, /devices\.storage: \/dev\/null is not a regular file or block device/],
  ['a zero timeout', { timeoutMs: 0 }, 400, /^"timeoutMs" must be >= 1$/],
  ['too small a memory for the image', { memMiB: 1 }, 400, /the guest needs memMiB=2 or more/],
] as const) {
  test(`a bad launch request is refused in API words (${status}): ${what}`, async (t) => {
    const image = 'image' in body || what === 'no image' ? undefined : await s.register(what === 'too small a memory for the image' ? 'test_hello' : 'test_blk');
    const r = await api(sock(), 'POST', '/instances', Object.assign(image ? { image } : {}, what === 'too small a memory for the image' ? {} : { memMiB: 2 }, body));
    t.is(r.status, status, JSON.stringify(r.body));
    const b = r.body as Json;
    t.regex(b.hint ? `${b.error}; ${b.hint}` : b.error, expect);
    t.notRegex(JSON.stringify(r.body), /--(mem|block|net)[:=]/, 'no command-line wording');
  });
}

test('a body that is not JSON, or too large, is refused in one line', async (t) => {
  const raw = (body: string, type = 'application/json') => new Promise<{ status: number; body: Json }>((resolve, reject) => {
    const req = request({ socketPath: sock(), method: 'POST', path: '/instances', headers: { 'content-type': type } }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
  const notJson = await raw('{"image": ');
  t.is(notJson.status, 400);
  t.regex(notJson.body.error, /^the body is not valid JSON/);
  const big = await raw(JSON.stringify({ image: 'x'.repeat(100_000) }));
  t.is(big.status, 413);
  t.regex(big.body.error, /larger than this server accepts/);
});

test('DELETE /instances/:id forgets a finished instance; a running one is a conflict (409)', async (t) => {
  const done = await s.launch('test_hello');
  t.is((await api(sock(), 'DELETE', `/instances/${done.id}`)).status, 204);
  t.is((await api(sock(), 'GET', `/instances/${done.id}`)).status, 404);
  const r = await api(sock(), 'POST', '/instances', { image: await s.register('test_forever'), memMiB: 2 });
  const { id } = r.body as Json;
  const busy = await api(sock(), 'DELETE', `/instances/${id}`);
  t.is(busy.status, 409);
  t.regex((busy.body as Json).hint, /POST \/instances\/[0-9a-f]+\/kill/);
  await api(sock(), 'POST', `/instances/${id}/kill`, {});
  await ended(id);
  t.is((await api(sock(), 'DELETE', `/instances/${id}`)).status, 204);
});

/** test_spew's gate disk: open (a non-zero first byte) or closed until the test opens it. */
function gate(dir: string, open: boolean): string {
  const disk = join(dir, 'gate.img');
  const b = Buffer.alloc(4096);
  b[0] = open ? 1 : 0;
  writeFileSync(disk, b);
  return disk;
}

test('console bytes kept per instance are bounded (--output-limit); the rest is counted as truncated', async (t) => {
  await withTempDir(async (d) => {
    const r = await s.launch('test_spew', { args: ['--solo5:quiet', '256'], devices: { gate: { block: gate(d, true) } } });
    t.is(r.status, 0);
    t.is(r.output.length, 65536);
    t.true(r.outputTruncated);
  });
});

test('a slow console reader blocks the guest (backpressure), and loses nothing', async (t) => {
  await withTempDir((d) => backpressure(t, gate(d, false)));
});

async function backpressure(t: import('ava').ExecutionContext, disk: string): Promise<void> {
  const kib = 8192;
  const r = await api(sock(), 'POST', '/instances', { image: await s.register('test_spew'), memMiB: 2, args: ['--solo5:quiet', String(kib)], devices: { gate: { block: disk } } });
  const { id, pid } = r.body as Json;
  let got = 0;
  let paused = true;
  await new Promise<void>((resolve, reject) => {
    const req = request({ socketPath: sock(), path: `/instances/${id}/console` }, (res) => {
      res.pause();
      // Reading is set up: let the guest start writing.
      const open = Buffer.alloc(1, 1);
      writeFileSync(disk, open, { flag: 'r+' });
      // While we read nothing, the guest must end up blocked in write(1), its console pipe full.
      waitForSyscall(pid, 1).then(() => {
        t.is(got, 0);
        paused = false;
        res.on('data', (d: Buffer) => { got += d.length; });
        res.resume();
      }, reject);
      res.on('end', () => resolve());
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
  t.false(paused);
  t.is(got, kib * 1024 + 'done\n'.length);
  t.is((await ended(id)).status, 0);
}

test('monitor: false skips the monitor: same status, no reason line or peak memory', async (t) => {
  const r = await s.launch('test_seccomp', { monitor: false });
  t.is(r.status, 159);
  t.is(r.reason, 'guest was killed by SIGSYS');
  t.is(r.maxrssKiB, undefined);
  const ok = await s.launch('test_exit', { args: ['7'], monitor: false });
  t.is(ok.status, 7);
});

test('a guest with a disk, through the API', async (t) => {
  await withTempDir(async (d) => {
    const disk = join(d, 'disk.img');
    writeFileSync(disk, Buffer.alloc(1 << 20));
    const r = await s.launch('test_blk', { devices: { storage: { block: disk } } });
    t.is(r.status, 0, r.output);
    t.regex(r.output, /SUCCESS/);
  });
});

test('metrics in Prometheus text format, and health', async (t) => {
  await s.launch('test_hello');
  const r = await api(sock(), 'GET', '/metrics');
  t.is(r.status, 200);
  const text = r.body as string;
  t.regex(text, /^# TYPE tendril_launches_total counter$/m);
  t.regex(text, /^tendril_launches_total [1-9]\d*$/m);
  t.regex(text, /^tendril_exits_total\{status="0"\} [1-9]\d*$/m);
  t.regex(text, /^tendril_launch_latency_seconds_count [1-9]\d*$/m);
  t.regex(text, /^tendril_instances_running \d+$/m);
  const h = await api(sock(), 'GET', '/health');
  t.is(h.status, 200);
  t.is((h.body as Json).status, 'ok');
  t.is((h.body as Json).poolPid, s.zygotePid());
});

test.serial('300 launches leave no fds, processes, zombies or temp files behind', async (t) => {
  const image = await s.register('test_hello');
  // Warm up at the same concurrency, so the client's kept-alive connections are counted before too.
  await Promise.all([s.launch('test_hello'), s.launch('test_hello')]);
  const zygote = s.zygotePid()!;
  t.truthy(zygote);
  const poolFull = () => childrenOf(zygote).length === 2;
  await waitFor('the pool to be full', poolFull);
  const before = { server: fdCount(s.proc.pid!), zygote: fdCount(zygote), temp: readdirSync(s.dir) };
  for (let i = 0; i < 150; i++) {
    const rs = await Promise.all([0, 1].map(() => api(sock(), 'POST', '/instances', { image, memMiB: 2, args: ['--solo5:quiet'], wait: true })));
    for (const r of rs) if ((r.body as Json).status !== 0) t.fail(JSON.stringify(r.body));
  }
  await waitFor('the pool to refill', poolFull);
  const after = { server: fdCount(s.proc.pid!), zygote: fdCount(zygote), temp: readdirSync(s.dir) };
  t.deepEqual(after, before);
  // The zygote's children are exactly its idle pool; none is a zombie.
  for (const k of childrenOf(zygote)) t.notRegex(readFileSync(`/proc/${k}/status`, 'utf8'), /^State:\s+Z/m);
  t.deepEqual(childrenOf(s.proc.pid!), [zygote]);
});

test('finished instances are remembered by count (--history) and by bytes (--history-bytes)', async (t) => {
  const small = await startServer(['--pool=1', '--history=3', '--history-bytes=100000']);
  try {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await small.launch('test_hello')).id);
    const listed = ((await api(small.sock, 'GET', '/instances')).body as Json[]).map((i) => i.id);
    t.deepEqual(listed, ids.slice(2));
    // 60 KB of console each: two would pass 100000 bytes, so only the newest is kept.
    await withTempDir(async (d) => {
      for (let i = 0; i < 2; i++) ids.push((await small.launch('test_spew', { args: ['--solo5:quiet', '60'], devices: { gate: { block: gate(d, true) } } })).id);
    });
    const after = ((await api(small.sock, 'GET', '/instances')).body as Json[]).map((i) => i.id);
    t.deepEqual(after, [ids[6]]);
  } finally {
    await small.stop();
  }
});
