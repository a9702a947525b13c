// `tendril serve` under faults it must survive: an image too large to
// upload and one large enough to have broken the old stub pool, the stub
// pool process killed in the middle of a launch flood, the server itself
// killed with guests running, a hard fd limit of 1024 with 1,000 launches
// at once, TCP access with and without the token, and startup failures.
// Each server is the test's own; only processes it started are looked at.

import test from 'ava';
import { spawn } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { api } from '../supervisor/serve/client.js';
import { childrenOf, guest, oneLine, runCmdAsync, TENDRIL, tendril, waitFor, withTempDir } from './helpers.js';
import { startServer, stillThere, stubsUnder, type Json } from './serve-helpers.js';

/** POST /instances over its own agent: the status, the body, Retry-After; a connection error is status 0. */
function postLaunch(sock: string, agent: Agent, body: Json): Promise<{ status: number; body: Json; retry?: string }> {
  return new Promise((resolve) => {
    const req = request({ socketPath: sock, method: 'POST', path: '/instances', agent, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : {}, retry: res.headers['retry-after'] as string | undefined }));
    });
    req.on('error', (e) => resolve({ status: 0, body: { error: e.message } }));
    req.end(JSON.stringify(body));
  });
}

test('a 70 MiB-data image: launched from its path (the plan carries no image bytes), refused as an upload above --max-image; the server lives', async (t) => {
  await withTempDir(async (dir) => {
    const src = join(dir, 'big.c');
    // 70 MiB of initialised data: a 70 MiB .data segment in the ELF file.
    writeFileSync(src, '#include <solo5.h>\nstatic volatile char big[70 << 20] = { 1 };\n' +
      'int solo5_app_main(const struct solo5_start_info *si) { (void)si; return big[0] + big[(70 << 20) - 1] + 6; }\n');
    const big = join(dir, 'big.spt');
    const cc = tendril(['cc', '-o', big, src]);
    t.is(cc.status, 0, cc.stderr);
    const s = await startServer(['--pool=1', '--max-image=67108864']);
    try {
      const r = await api(s.sock, 'POST', '/images', { path: big });
      t.is(r.status, 413, 'a 70 MiB image is over --max-image');
      t.regex((r.body as Json).error, /larger than this server accepts \(64 MiB\)/);
    } finally {
      await s.stop();
    }
    const roomy = await startServer(['--pool=1']);
    try {
      const r = await roomy.launch(big, { memMiB: 128, args: ['--solo5:quiet'] });
      t.is(r.status, 7, JSON.stringify(r));
      // And the upload path: 70 MiB of bytes over HTTP, accepted by default.
      const up = await new Promise<number>((resolve, reject) => {
        const req = request({ socketPath: roomy.sock, method: 'POST', path: '/images?name=big', headers: { 'content-type': 'application/octet-stream' } },
          (res) => { res.resume(); res.on('end', () => resolve(res.statusCode!)); });
        req.on('error', reject);
        req.end(readFileSync(big));
      });
      t.is(up, 201);
      t.is((await roomy.launch('test_hello')).status, 0, 'the server still launches');
    } finally {
      await roomy.stop();
    }
  });
});

test('the stub pool process killed during a launch flood: launches in flight fail with 503 (never a guest-like status), later ones succeed, no stub is left', async (t) => {
  const s = await startServer(['--pool=2']);
  try {
    const image = await s.register('test_hello');
    const zygote = s.zygotePid()!;
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    const one = () => postLaunch(s.sock, agent, { image, memMiB: 2, args: ['--solo5:quiet'], wait: true });
    let done = 0;
    let killed = false;
    let stubs: { pid: number; start: string }[] = [];
    const results = await Promise.all(Array.from({ length: 400 }, async (_, i) => {
      const r = await one();
      // Mid-flood, at a moment the zygote has stubs (at one moment or another its pool of 2 is all taken
      // and not yet refilled): every stub it has then must go with it.
      if (++done >= 100 && !killed) {
        stubs = stubsUnder(zygote);
        if (stubs.length) {
          killed = true;
          process.kill(zygote, 'SIGKILL');
        }
      }
      return [i, r] as const;
    }));
    agent.destroy();
    let failed = 0;
    for (const [, r] of results) {
      if (r.status === 200) {
        t.is(r.body.status, 0, JSON.stringify(r.body));
      } else {
        failed++;
        t.is(r.status, 503, JSON.stringify(r.body));
        t.truthy(r.retry, 'with Retry-After');
        t.is(r.body.kind, 'environment');
      }
    }
    t.log(`${failed} of 400 launches failed with 503 while the pool restarted`);
    t.true(killed, 'the zygote had stubs at some moment of the flood, and was killed then');
    await waitFor('every stub of the killed zygote to be gone', () => stubs.every((p) => !stillThere(p)));
    await waitFor('a new zygote', () => { const z = s.zygotePid(); return z !== undefined && z !== zygote; });
    const after = await waitFor('a launch to succeed again', async () => (await s.launch('test_hello')).status === 0);
    t.true(after);
  } finally {
    await s.stop();
  }
});

test('the server killed by SIGKILL: every guest it ran (with or without its monitor) and its pool are gone', async (t) => {
  const s = await startServer(['--pool=2']);
  try {
    const image = await s.register('test_forever');
    const pids: number[] = [];
    for (const monitor of [true, false, true]) {
      const r = await api(s.sock, 'POST', '/instances', { image, memMiB: 2, monitor });
      pids.push((r.body as Json).pid);
    }
    const all = stubsUnder(s.proc.pid!);
    t.true(all.length >= 3 + 2, `guests, monitors and idle stubs: ${all.length}`);
    for (const pid of pids) t.true(all.some((p) => p.pid === pid));
    process.kill(s.proc.pid!, 'SIGKILL');
    // The bound only catches a hang: the kernel delivers the deaths at once.
    await waitFor('every process of the killed server to be gone', () => all.every((p) => !stillThere(p)), 10_000);
    t.pass();
  } finally {
    await s.stop();
  }
});

test('a hard fd limit of 1024 and 1,000 launches at once: each succeeds or gets 429/503 with Retry-After', async (t) => {
  const s = await startServer(['--pool=4'], { wrap: ['prlimit', '--nofile=1024:1024', '--'] });
  try {
    t.regex(readFileSync(`/proc/${s.proc.pid}/limits`, 'utf8'), /^Max open files\s+1024\s+1024/m);
    const image = await s.register('test_hello');
    const fds = () => readdirSync(`/proc/${s.proc.pid}/fd`).length;
    const fdsBefore = fds();
    const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
    const one = () => postLaunch(s.sock, agent, { image, memMiB: 2, args: ['--solo5:quiet'], wait: true });
    const rs = await Promise.all(Array.from({ length: 1000 }, one));
    const by = new Map<number, number>();
    for (const r of rs) by.set(r.status, (by.get(r.status) ?? 0) + 1);
    t.log([...by].map(([k, v]) => `${k}: ${v}`).join(', '));
    for (const r of rs) {
      if (r.status === 200) t.is(r.body.status, 0, JSON.stringify(r.body));
      else if (r.status === 429 || r.status === 503) t.truthy(r.retry, JSON.stringify(r.body));
      else t.fail(`status ${r.status}: ${JSON.stringify(r.body)}`);
    }
    t.true((by.get(200) ?? 0) > 0);
    // A 503 says why (the pool restarting after a stub pool process that hit the limit, a guest that could not start):
    const reasons = new Set(rs.filter((r) => r.status === 503).map((r) => String(r.body.error)));
    if (reasons.size) t.log(`503 because: ${[...reasons].join(' | ')}`);
    // And after the storm, once the server has closed its side of the 1,000 connections (a loaded machine
    // lets it lag behind the client's) and says it is healthy (its pool may have been restarting), a launch simply works.
    await waitFor('the server to close the storm\'s connections', () => fds() <= fdsBefore + 16, 30_000);
    await waitFor('the server to be healthy', async () => (await api(s.sock, 'GET', '/health')).status === 200, 30_000);
    const after = await s.launch('test_hello');
    t.is(after.status, 0, JSON.stringify(after));
  } finally {
    await s.stop();
  }
});

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

test('--listen: loopback TCP needs the bearer token and its own Host; the unix socket needs neither', async (t) => {
  await withTempDir(async (dir) => {
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'correct-horse-battery-staple\n');
    chmodSync(tokenFile, 0o600);
    const port = await freePort();
    const s = await startServer(['--pool=1', `--listen=127.0.0.1:${port}`, `--token-file=${tokenFile}`]);
    try {
      const get = (headers: Record<string, string>) => new Promise<{ status: number; body: Json }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/images', headers }, (res) => {
          let text = '';
          res.on('data', (d) => { text += d; });
          res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
        });
        req.on('error', reject);
        req.end();
      });
      const none = await get({});
      t.is(none.status, 401);
      t.regex(none.body.error, /a bearer token is required/);
      t.is((await get({ authorization: 'Bearer wrong-token-wrong-token' })).status, 403);
      const foreign = await get({ authorization: 'Bearer correct-horse-battery-staple', host: 'evil.example:80' });
      t.is(foreign.status, 403);
      t.regex(foreign.body.error, /only requests addressed to its own listen address/);
      t.is((await get({ authorization: 'Bearer correct-horse-battery-staple' })).status, 200);
      t.is((await api(s.sock, 'GET', '/images')).status, 200);
      // tendril launch over TCP with the token file.
      const l = await runCmdAsync(process.execPath, [TENDRIL, 'launch', `--server=http://127.0.0.1:${port}`, `--token-file=${tokenFile}`, '--mem=2', guest('test_hello'), 'Hello_Solo5']);
      t.is(l.status, 0, l.stderr);
      t.regex(l.stdout, /SUCCESS/);
    } finally {
      await s.stop();
    }
    const noToken = await runCmdAsync(process.execPath, [TENDRIL, 'serve', `--socket=${join(dir, 'x.sock')}`, `--listen=127.0.0.1:${port}`]);
    t.is(noToken.status, 1);
    t.true(oneLine(noToken.stderr), noToken.stderr);
    t.regex(noToken.stderr, /--listen needs --token-file/);
    chmodSync(tokenFile, 0o644);
    const loose = await runCmdAsync(process.execPath, [TENDRIL, 'serve', `--socket=${join(dir, 'x.sock')}`, `--listen=127.0.0.1:${port}`, `--token-file=${tokenFile}`]);
    t.is(loose.status, 1);
    t.regex(loose.stderr, /readable by group or others \(mode 644\); chmod 600/);
  });
});

test('startup failures end the server at once with one line, leaving nothing running', async (t) => {
  await withTempDir(async (dir) => {
    const missing = await runCmdAsync(process.execPath, [TENDRIL, 'serve', `--socket=${join(dir, 'no/such/dir/api.sock')}`]);
    t.is(missing.status, 1);
    t.true(oneLine(missing.stderr), missing.stderr);
    t.regex(missing.stderr, /the directory .* does not exist/);

    const s = await startServer(['--pool=1']);
    try {
      const dup = await runCmdAsync(process.execPath, [TENDRIL, 'serve', `--socket=${s.sock}`]);
      t.is(dup.status, 1);
      t.true(oneLine(dup.stderr), dup.stderr);
      t.regex(dup.stderr, /another server is listening there/);
    } finally {
      await s.stop();
    }

    // A port in use: the pool is already up when listen fails, and must go too.
    const blocker = createServer().listen(0, '127.0.0.1');
    await new Promise((r) => blocker.once('listening', r));
    const port = (blocker.address() as { port: number }).port;
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, 'correct-horse-battery-staple');
    chmodSync(tokenFile, 0o600);
    try {
      const child = spawn(process.execPath, [TENDRIL, 'serve', `--socket=${join(dir, 'p.sock')}`, `--listen=127.0.0.1:${port}`, `--token-file=${tokenFile}`], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => { err += d; });
      let kids: number[] = [];
      const watcher = setInterval(() => { if (child.pid) kids = [...new Set([...kids, ...childrenOf(child.pid)])]; }, 1);
      const code = await new Promise((r) => child.once('exit', r));
      clearInterval(watcher);
      t.is(code, 1);
      t.true(oneLine(err), err);
      t.regex(err, /--listen=127\.0\.0\.1:\d+: the port is in use/);
      // Whatever it started (its stub pool) is gone with it.
      await waitFor('the failed server\'s children to be gone', () => kids.every((k) => { try { return !readFileSync(`/proc/${k}/cmdline`, 'utf8').includes(String(child.pid)); } catch { return true; } }));
    } finally {
      blocker.close();
    }
  });
});
