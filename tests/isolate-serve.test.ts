// "isolate" on POST /instances (and `tendril launch --isolate`): pool stubs
// jail their guests as `run --isolate` does, with and without the monitor;
// the guest's cgroups go when it ends; bad options are 400 in API words.

import test from 'ava';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { api } from '../supervisor/serve/client.js';
import { guest, runCmdAsync, TENDRIL, waitFor } from './helpers.js';
import { startServer, type Json, type TestServer } from './serve-helpers.js';

let s: TestServer;

test.before(async () => {
  s = await startServer(['--pool=2']);
});

test.after.always(async () => {
  await s?.stop();
});

const status = (pid: number) => readFileSync(`/proc/${pid}/status`, 'utf8');

test('isolate: true — the same output and status as without, with and without the monitor', async (t) => {
  for (const monitor of [true, false]) {
    const [plain, iso] = await Promise.all([
      s.launch('test_hello', { args: ['Hello_Solo5'], monitor }),
      s.launch('test_hello', { args: ['Hello_Solo5'], monitor, isolate: true }),
    ]);
    t.is(iso.httpStatus, 200, JSON.stringify(iso));
    t.is(iso.status, 0);
    t.is(iso.output, plain.output);
    t.deepEqual(iso.isolation, { missing: [] }, 'every layer on this host (tests/isolate.test.ts checks the host)');
    const seccomp = await s.launch('test_seccomp', { monitor, isolate: true });
    t.is(seccomp.status, 159);
    if (monitor) t.regex(seccomp.reason, /^guest made a forbidden system call: dup \(32\)/);
  }
});

test('a live isolated instance: its pid is the guest (pid 2 of its namespace, unprivileged); SIGTERM through the API is 143; its cgroups go', async (t) => {
  const img = await s.register('test_memhog');
  const r = await api(s.sock, 'POST', '/instances', { image: img, memMiB: 4, args: ['--solo5:quiet', '1', 'hold'], isolate: { cpus: 0.5 } });
  t.is(r.status, 201, JSON.stringify(r.body));
  const inst = r.body as Json;
  const st = await waitFor('the guest to run', () => /^Seccomp:\s+2$/m.test(status(inst.pid)) && status(inst.pid));
  t.regex(st, /^NSpid:\s+\d+\s+2$/m);
  t.regex(st, /^Uid:\s+2000000000\s/m);
  t.regex(st, /^CapBnd:\s+0+$/m);
  t.not(readlinkSync(`/proc/${inst.pid}/ns/net`), readlinkSync('/proc/self/ns/net'));
  const dirs = readFileSync(`/proc/${inst.pid}/cgroup`, 'utf8').split('\n').filter((l) => /tendril-/.test(l));
  t.true(dirs.length >= 1, 'the guest is in cgroups of its own');
  const mine = readFileSync('/proc/self/mountinfo', 'utf8');
  const cgdirs = dirs.map((l) => {
    const [id, ctl, path] = l.split(':');
    const point = id === '0' ? / (\S+) \S+ - cgroup2 /.exec(mine)![1] : new RegExp(` (\\S+) \\S+ - cgroup \\S+ \\S*\\b${ctl.split(',')[0]}\\b`).exec(mine)![1];
    return `${point}${path}`;
  });
  for (const d of cgdirs) t.true(existsSync(d), d);
  await api(s.sock, 'POST', `/instances/${inst.id}/kill`, { signal: 'SIGTERM' });
  let end: Json = {};
  await waitFor('the instance to end', async () => (end = (await api(s.sock, 'GET', `/instances/${inst.id}`)).body as Json).state === 'exited', 30_000);
  t.is(end.status, 143);
  // The server removes them once the stub has ended, right after answering.
  await waitFor('the guest\'s cgroups to go', () => cgdirs.every((d) => !existsSync(d)));
  t.pass();
});

test('isolate with a memory limit: the cgroup\'s OOM killer stops the guest, and the reason says so', async (t) => {
  const r = await s.launch('test_memhog', { memMiB: 64, args: ['--solo5:quiet'], isolate: { memLimitMiB: 16 } });
  t.is(r.status, 137, JSON.stringify(r));
  t.regex(r.reason, /cgroup's OOM killer stopped it/);
  t.notRegex(r.output, /SUCCESS/);
});

test('bad "isolate" options are 400s naming the field', async (t) => {
  const img = await s.register('test_hello');
  for (const [isolate, why] of [[{ uid: 0 }, /"isolate/], [{ bogus: 1 }, /isolate/], ['yes', /"isolate"/], [{ cpus: 0 }, /isolate/]] as const) {
    const r = await api(s.sock, 'POST', '/instances', { image: img, memMiB: 2, isolate });
    t.is(r.status, 400, JSON.stringify(r.body));
    t.regex((r.body as Json).error, why);
  }
});

test('tendril launch --isolate runs the guest isolated through the server, with the guest\'s status', async (t) => {
  const r = await runCmdAsync(process.execPath, [TENDRIL, 'launch', `--server=${s.sock}`, '--isolate', '--mem=64', '--mem-limit=16', guest('test_memhog'), '--solo5:quiet']);
  t.is(r.status, 137, r.stderr);
  t.regex(r.stderr, /cgroup's OOM killer stopped it/);
  const refused = await runCmdAsync(process.execPath, [TENDRIL, 'launch', `--server=${s.sock}`, '--isolate', '--cgroup-parent=/sys/fs/cgroup', '--mem=2', guest('test_hello')]);
  t.is(refused.status, 1);
  t.regex(refused.stderr, /--cgroup-parent does not work through a server/);
});

// ---------------------------------------------------------------------------
// serve --isolate: every guest jailed, on stubs that made their jail ahead

const ppid = (pid: number) => Number(/^PPid:\s+(\d+)$/m.exec(status(pid))![1]);

/** The directories of pid's cgroups that tendril made (v1: one per hierarchy; v2: one), from /proc. */
function tendrilCgroupDirs(pid: number): string[] {
  const mi = readFileSync('/proc/self/mountinfo', 'utf8');
  return readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n').filter((l) => /\/tendril-/.test(l)).map((l) => {
    const [id, ctl, path] = l.split(':');
    const point = id === '0' ? / (\S+) \S+ - cgroup2 /.exec(mi)![1] : new RegExp(` (\\S+) \\S+ - cgroup \\S+ \\S*\\b${ctl.split(',')[0]}\\b`).exec(mi)![1];
    return `${point}${path}`;
  });
}

test.serial('serve --isolate: idle pool stubs hold a ready jail; every launch is isolated; their cgroups go with them and with the server', async (t) => {
  const iso = await startServer(['--pool=2', '--isolate']);
  let stubDirs: string[] = [];
  try {
    const z = iso.zygotePid()!;
    const idle = await waitFor('two idle stubs, each with its init', () => {
      const stubs = readFileSync(`/proc/${z}/task/${z}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      return stubs.length === 2 && stubs.every((s) => readFileSync(`/proc/${s}/task/${s}/children`, 'utf8').trim() !== '') && stubs;
    }, 30_000);
    for (const s of idle) {
      const init = Number(readFileSync(`/proc/${s}/task/${s}/children`, 'utf8').trim());
      t.regex(status(init), /^NSpid:\s+\d+\s+1$/m, 'the stub\'s child is the init of a new pid namespace');
      t.regex(status(init), /^Uid:\s+2000000000\s/m);
      t.not(readlinkSync(`/proc/${init}/ns/net`), readlinkSync('/proc/self/ns/net'));
      const dirs = tendrilCgroupDirs(s);
      t.true(dirs.length >= 1 && dirs.every((d) => d.endsWith(`/tendril-${s}-pool`)), dirs.join(' '));
    }
    // A request without "isolate" is isolated here; the output is the guest's.
    const [plain, isolated] = await Promise.all([s.launch('test_hello', { args: ['Hello_Solo5'] }), iso.launch('test_hello', { args: ['Hello_Solo5'] })]);
    t.is(isolated.status, 0, JSON.stringify(isolated));
    t.is(isolated.output, plain.output);
    t.deepEqual(isolated.isolation, { missing: [] });
    const refused = await api(iso.sock, 'POST', '/instances', { image: await iso.register('test_hello'), memMiB: 2, isolate: false });
    t.is(refused.status, 400);
    t.regex((refused.body as Json).error, /this server isolates every guest/);

    // A live one: the limits the launch asked for, on the stub's own cgroups, which go when the guest ends.
    const r = await api(iso.sock, 'POST', '/instances', { image: await iso.register('test_memhog'), memMiB: 8, args: ['--solo5:quiet', '1', 'hold'], isolate: { cpus: 0.25 } });
    t.is(r.status, 201, JSON.stringify(r.body));
    const inst = r.body as Json;
    await waitFor('the guest to run', () => /^Seccomp:\s+2$/m.test(status(inst.pid)));
    t.regex(status(inst.pid), /^NSpid:\s+\d+\s+2$/m);
    const stub = ppid(inst.pid);
    stubDirs = tendrilCgroupDirs(inst.pid);
    t.true(stubDirs.every((d) => d.endsWith(`/tendril-${stub}-pool`)), stubDirs.join(' '));
    const read = (file: string) => stubDirs.map((d) => join(d, file)).filter((f) => existsSync(f)).map((f) => readFileSync(f, 'utf8').trim());
    const expected = String((8 << 20) + (2 << 20) + (8 << 20) / 256);
    t.deepEqual([...read('memory.max'), ...read('memory.limit_in_bytes')], [expected]);
    t.deepEqual(read('pids.max'), ['2']);
    t.deepEqual([...read('cpu.max'), ...read('cpu.cfs_quota_us')].map((v) => v.split(' ')[0]), ['25000']);
    await api(iso.sock, 'POST', `/instances/${inst.id}/kill`, { signal: 'SIGKILL' });
    await waitFor('the instance to end', async () => ((await api(iso.sock, 'GET', `/instances/${inst.id}`)).body as Json).state === 'exited', 30_000);
    const gone = [...stubDirs];
    await waitFor('the stub\'s cgroups to go', () => gone.every((d) => !existsSync(d)));

    const oom = await iso.launch('test_memhog', { memMiB: 64, args: ['--solo5:quiet'], isolate: { memLimitMiB: 16 } });
    t.is(oom.status, 137);
    t.regex(oom.reason, /cgroup's OOM killer stopped it/);
    // The idle stubs now (refilled): their cgroups must go with the server.
    const now = readFileSync(`/proc/${z}/task/${z}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    stubDirs = now.flatMap((p) => {
      try {
        return tendrilCgroupDirs(p);
      } catch {
        return []; // a stub that was just taken
      }
    });
    t.true(stubDirs.length > 0, 'the refilled pool has prepared stubs');
  } finally {
    await iso.stop();
  }
  for (const d of stubDirs) t.false(existsSync(d), `${d} removed with the server`);
});

test('"isolate" with "record" is a 400 (recording a jailed guest is not implemented)', async (t) => {
  const img = await s.register('test_hello');
  const r = await api(s.sock, 'POST', '/instances', { image: img, memMiB: 2, isolate: true, record: true });
  t.is(r.status, 400, JSON.stringify(r.body));
  t.regex((r.body as Json).error, /"isolate" with "record": recording a jailed guest is not implemented/);
});
