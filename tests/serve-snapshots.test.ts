// Snapshots through `tendril serve`: POST /snapshots boots a registered
// image to its first blocking yield and keeps the snapshot; POST /instances
// {"snapshot": ID} restores it on a pooled stub, like a launch, each clone
// with its own devices. Refusals in API words, with a status by kind; the
// server's snapshot directory goes when it stops. Serial: the server makes
// two snapshots at a time at most (a third is a 429).

import test from 'ava';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { api } from '../supervisor/serve/client.js';
import { waitFor, waitForSyscall, withTempDir } from './helpers.js';
import { startServer, type Json, type TestServer } from './serve-helpers.js';
import { SERVICE_DISK as DISK, serviceDisk as disk } from './fixtures/service-disk.js';

let s: TestServer;
let tmp: string;

test.before(async () => {
  // The server's TMPDIR is the test's own: its snapshot directory can be looked at, and must go with it.
  const { mkdtempSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  tmp = mkdtempSync(join(tmpdir(), 'tendril-serve-snap-'));
  s = await startServer(['--pool=2'], { env: { TMPDIR: tmp } });
});

test.after.always(async () => {
  await s?.stop();
  if (tmp) (await import('node:fs')).rmSync(tmp, { recursive: true, force: true });
});


async function snapshot(dir: string, body: Json = {}): Promise<{ status: number; body: Json }> {
  const r = await api(s.sock, 'POST', '/snapshots', {
    image: await s.register('test_snap_service'), args: ['--solo5:quiet', '2'], memMiB: 8, devices: { storage: { block: disk(dir, 'boot.img') } }, ...body,
  });
  return { status: r.status, body: r.body as Json };
}

test.serial('POST /snapshots boots the guest to its point; clones restored on pooled stubs, each with its own disk, give their own answers', async (t) => {
  await withTempDir(async (dir) => {
    const made = await snapshot(dir);
    t.is(made.status, 201, JSON.stringify(made.body));
    const snap = made.body;
    t.regex(snap.id, /^[0-9a-f]{16}$/);
    t.is(snap.at, 'yield:1');
    t.is(snap.memMiB, 8);
    t.deepEqual(snap.devices, [{ name: 'storage', type: 'BLOCK_BASIC', capacity: DISK, blockSize: 512 }]);
    t.regex(snap.output, /READY entries 524288 checksum (\d+)/);
    const checksum = /checksum (\d+)/.exec(snap.output)![1];
    t.true(snap.pages >= 512 && snap.allocatedBytes <= snap.storedBytes + (64 << 10), JSON.stringify(snap));

    const requests = [3, 1000, 77777, 524289];
    const runs = await Promise.all(requests.map(async (k, i) => {
      const d = disk(dir, `clone${i}.img`, k);
      const r = await api(s.sock, 'POST', '/instances', { snapshot: snap.id, devices: { storage: { block: d } }, wait: true, monitor: i % 2 === 0 });
      return { k, d, r: r.body as Json, http: r.status };
    }));
    for (const { k, d, r, http } of runs) {
      t.is(http, 200, JSON.stringify(r));
      t.is(r.status, 0, JSON.stringify(r));
      t.is(r.snapshot, snap.id);
      t.is(r.image, snap.image);
      t.regex(r.output, new RegExp(`^ANSWER ${k} \\d+ checksum ${checksum}\\n$`));
      t.is(readFileSync(d).subarray(512, 1024).toString('latin1').replace(/\0+$/, ''), r.output, 'written to its own disk');
    }
    t.is(new Set(runs.map((x) => x.r.output)).size, requests.length, 'each its own answer');
    const described = (await api(s.sock, 'GET', `/snapshots/${snap.id}`)).body as Json;
    t.is(described.restores, requests.length);
    t.true(((await api(s.sock, 'GET', '/snapshots')).body as Json[]).some((x) => x.id === snap.id));
  });
});

test.serial('a restored guest killed by the filter gets its reason through the API, as a fresh one', async (t) => {
  await withTempDir(async () => {
    const r = await api(s.sock, 'POST', '/snapshots', { image: await s.register('hostile_syscall'), args: ['--solo5:quiet', 'yield-first', '32'], memMiB: 2 });
    t.is(r.status, 201, JSON.stringify(r.body));
    const end = (await api(s.sock, 'POST', '/instances', { snapshot: (r.body as Json).id, wait: true })).body as Json;
    t.is(end.status, 159);
    t.regex(end.reason, /^guest made a forbidden system call: dup \(32\)/);
    t.regex(end.output, /^RESUMED after yield\nATTEMPT syscall 32\n$/);
  });
});

test.serial('DELETE /snapshots/:id forgets it; a clone still running keeps its memory', async (t) => {
  await withTempDir(async (dir) => {
    const made = await snapshot(dir);
    t.is(made.status, 201, JSON.stringify(made.body));
    const snap = made.body;
    // An idle clone: no request on its disk, so it keeps yielding.
    const idle = (await api(s.sock, 'POST', '/instances', { snapshot: snap.id, devices: { storage: { block: disk(dir, 'idle.img') } } })).body as Json;
    t.is(idle.state, 'running', JSON.stringify(idle));
    await waitForSyscall(idle.pid, 281);
    t.is((await api(s.sock, 'DELETE', `/snapshots/${snap.id}`)).status, 204);
    t.is((await api(s.sock, 'GET', `/snapshots/${snap.id}`)).status, 404);
    const gone = await api(s.sock, 'POST', '/instances', { snapshot: snap.id, devices: { storage: { block: disk(dir, 'x.img', 1) } }, wait: true });
    t.is(gone.status, 404);
    t.regex((gone.body as Json).error, /no snapshot/);
    // Still alive and well: give it a request and it answers from the deleted snapshot's memory.
    writeFileSync(join(dir, 'idle.img'), Buffer.concat([Buffer.from('REQ 9\n'), Buffer.alloc(DISK - 6)]));
    let end: Json = {};
    await waitFor('the idle clone to answer', async () => (end = (await api(s.sock, 'GET', `/instances/${idle.id}`)).body as Json).state === 'exited', 30_000);
    t.is(end.status, 0);
    t.regex(end.output, /^ANSWER 9 \d+ checksum \d+\n$/);
  });
});

test.serial('refusals in API words: fields fixed by the snapshot, both or neither source, unknown ids, a disk of another size, a bad point, a guest that ends or is too slow to reach its point', async (t) => {
  await withTempDir(async (dir) => {
    const made = await snapshot(dir);
    t.is(made.status, 201, JSON.stringify(made.body));
    const snap = made.body;
    const d = disk(dir, 'd.img', 1);
    const cases: [Json, number, RegExp][] = [
      [{ snapshot: snap.id, memMiB: 16, devices: { storage: { block: d } } }, 400, /"memMiB" is fixed by the snapshot/],
      [{ snapshot: snap.id, args: ['x'], devices: { storage: { block: d } } }, 400, /"args" is fixed by the snapshot/],
      [{ snapshot: snap.id, image: snap.image, devices: { storage: { block: d } } }, 400, /"image" and "snapshot" exclude each other/],
      [{ devices: { storage: { block: d } } }, 400, /^"image" is required$/],
      [{ snapshot: '0123456789abcdef', devices: { storage: { block: d } } }, 404, /no snapshot 0123456789abcdef/],
      [{ snapshot: 'nope' }, 400, /"snapshot" must be a snapshot id/],
      [{ snapshot: snap.id }, 400, /Device 'storage' of type BLOCK_BASIC declared but not attached/],
      [{ snapshot: snap.id, devices: { storage: { block: disk(dir, 'big.img', 1, 2 * DISK) } } }, 422,
        new RegExp(`devices.storage: the disk holds ${2 * DISK} bytes, but the guest read a capacity of ${DISK} bytes before the snapshot`)],
    ];
    for (const [body, status, why] of cases) {
      const r = await api(s.sock, 'POST', '/instances', { wait: true, ...body });
      t.is(r.status, status, `${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
      t.regex((r.body as Json).error, why);
    }
    t.is(readFileSync(d).subarray(512, 1024).every((b) => b === 0), true, 'no refused restore ran');

    const badAt = await snapshot(dir, { at: 'yield:0' });
    t.is(badAt.status, 400);
    t.regex(badAt.body.error, /"at": "yield:0" is not a snapshot point/);
    const early = await api(s.sock, 'POST', '/snapshots', { image: await s.register('test_exit'), args: ['--solo5:quiet', '3'], memMiB: 2 });
    t.is(early.status, 400);
    t.regex((early.body as Json).error, /guest exited with status 3 before reaching its first yield with a deadline in the future; nothing to snapshot/);
    const slow = await api(s.sock, 'POST', '/snapshots', { image: await s.register('test_exit'), args: ['--solo5:quiet', '3'], memMiB: 2, timeoutMs: 999999999999 });
    t.is(slow.status, 400);
    t.regex((slow.body as Json).error, /"timeoutMs" 999999999999 is more than this server allows/);
    // 64 MiB of state take far longer than 50 ms to build: the guest is killed before its point.
    const late = await api(s.sock, 'POST', '/snapshots', { image: await s.register('test_snap_service'), args: ['--solo5:quiet', '64'], memMiB: 80,
      devices: { storage: { block: disk(dir, 'late.img') } }, timeoutMs: 50 });
    t.is(late.status, 400);
    t.regex((late.body as Json).error, /the guest did not reach its first yield with a deadline in the future within 50 ms; nothing to snapshot/);
    t.is((await api(s.sock, 'GET', '/snapshots/0123456789abcdef')).status, 404);
  });
});

test.after('the server keeps its snapshots in its own directory and removes it when it stops', async (t) => {
  const dirs = readdirSync(tmp).filter((f) => f.startsWith('tendril-serve-snapshots-'));
  t.is(dirs.length, 1);
  await s.stop();
  t.false(existsSync(join(tmp, dirs[0])));
});
