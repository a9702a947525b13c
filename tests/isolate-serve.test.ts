// "isolate" on POST /instances (and `tendril launch --isolate`): pool stubs
// jail their guests as `run --isolate` does, with and without the monitor;
// the guest's cgroups go when it ends; bad options are 400 in API words.

import test from 'ava';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
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
  for (const d of cgdirs) t.false(existsSync(d), `${d} removed`);
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
