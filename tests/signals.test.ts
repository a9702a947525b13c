// Every hand-over starts the guest as solo5-spt started from a shell does:
// every signal at its default action, none blocked, none pending — whatever
// the launcher ignored or blocked (Node ignores SIGPIPE and SIGXFSZ; the
// tests launch through tests/tools/sigdirty, which ignores and blocks more).
// So a guest writing to a closed pipe dies by SIGPIPE (141), as under the
// reference.

import test from 'ava';
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { api } from '../supervisor/serve/client.js';
import { childrenOf, guest, ROOT, runCmdAsync, TENDRIL, TENDRIL_SPT, waitFor, waitForGuest, withTempDir } from './helpers.js';
import { startServer } from './serve-helpers.js';

const SIGDIRTY = join(ROOT, 'tests/tools/build/sigdirty');
const TENDRIL_OCI = join(ROOT, 'native/build/tendril-oci');

/** The signal masks of a live process, from /proc/PID/status. */
function signalState(pid: number): Record<'SigIgn' | 'SigBlk' | 'SigPnd' | 'ShdPnd' | 'SigCgt', string> {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const get = (k: string) => new RegExp(`^${k}:\\s+([0-9a-f]+)$`, 'm').exec(status)?.[1] ?? 'missing';
  return { SigIgn: get('SigIgn'), SigBlk: get('SigBlk'), SigPnd: get('SigPnd'), ShdPnd: get('ShdPnd'), SigCgt: get('SigCgt') };
}

const CLEAN = { SigIgn: '0000000000000000', SigBlk: '0000000000000000', SigPnd: '0000000000000000', ShdPnd: '0000000000000000', SigCgt: '0000000000000000' };

test('the launcher used here really is dirty (so the guest checks below can fail)', async (t) => {
  const r = await runCmdAsync(SIGDIRTY, ['grep', '-E', '^Sig(Ign|Blk):', '/proc/self/status']);
  t.regex(r.stdout, /SigBlk:\s+0*2a00/);
  t.regex(r.stdout, /SigIgn:\s+0*1005003/);
});

test('exec mode: the guest has no signal ignored, blocked, caught or pending', async (t) => {
  const child = spawn(SIGDIRTY, [process.execPath, TENDRIL, 'run', '--mem=2', guest('test_time')], { stdio: 'ignore' });
  try {
    await waitForGuest(child.pid!); // exec: the same pid becomes the guest
    t.deepEqual(signalState(child.pid!), CLEAN);
  } finally {
    child.kill('SIGKILL');
  }
});

test('--supervise: the guest (child of its monitor) has no signal ignored, blocked, caught or pending', async (t) => {
  const child = spawn(SIGDIRTY, [process.execPath, TENDRIL, 'run', '--supervise', '--mem=2', guest('test_time')], { stdio: 'ignore' });
  try {
    const guestPid = await waitFor('the supervised guest', () => {
      const monitor = childrenOf(child.pid!)[0];
      const g = monitor === undefined ? undefined : childrenOf(monitor)[0];
      return g !== undefined && /^Seccomp:\s+2$/m.test(readFileSync(`/proc/${g}/status`, 'utf8')) && g;
    });
    t.deepEqual(signalState(guestPid), CLEAN);
  } finally {
    child.kill('SIGKILL');
  }
});

test('tendril-oci: the created, then started container guest has no signal ignored, blocked, caught or pending', async (t) => {
  await withTempDir(async (dir) => {
    const b = join(dir, 'bundle');
    mkdirSync(join(b, 'rootfs'), { recursive: true });
    writeFileSync(join(b, 'rootfs/time.spt'), readFileSync(guest('test_time')));
    writeFileSync(join(b, 'config.json'), JSON.stringify({
      ociVersion: '1.0.2', root: { path: 'rootfs' }, process: { args: ['/time.spt'], cwd: '/', user: { uid: 0, gid: 0 } },
      annotations: { 'org.tendril.mem': '2' },
    }));
    const state = join(dir, 'state');
    const out = openSync(join(dir, 'out'), 'w');
    try {
      const create = await runCmdAsync(SIGDIRTY, [TENDRIL_OCI, '--root', state, 'create', '--bundle', b, '--pid-file', join(dir, 'pid'), 'sig1'],
        { stdio: ['ignore', out, out] });
      t.is(create.status, 0, readFileSync(join(dir, 'out'), 'utf8'));
      const pid = Number(readFileSync(join(dir, 'pid'), 'utf8'));
      try {
        const start = await runCmdAsync(TENDRIL_OCI, ['--root', state, 'start', 'sig1']);
        t.is(start.status, 0, start.stderr);
        await waitForGuest(pid);
        t.deepEqual(signalState(pid), CLEAN);
      } finally {
        process.kill(pid, 'SIGKILL');
        await runCmdAsync(TENDRIL_OCI, ['--root', state, 'delete', '--force', 'sig1']);
      }
    } finally {
      closeSync(out);
    }
  });
});

for (const mode of [[], ['--supervise']]) {
  test(`tendril-spt ${mode.join(' ')} GUEST | head -c1: the guest dies by SIGPIPE at its next write, 141 (as under solo5-spt)`, async (t) => {
    // test_time writes a line a second for 5 s: with SIGPIPE ignored it would run on and exit 0.
    const cmd = `${process.execPath} ${TENDRIL_SPT} ${mode.join(' ')} --mem=2 -- ${guest('test_time')} | head -c1 >/dev/null; echo "status=\${PIPESTATUS[0]}"`;
    const r = await runCmdAsync('bash', ['-c', cmd]);
    t.regex(r.stdout, /^status=141$/m, r.stdout + r.stderr);
  });
}

for (const monitor of [true, false]) {
  test(`serve (pool hand-over, monitor: ${monitor}): the guest has no signal ignored, blocked, caught or pending`, async (t) => {
    // The server is started by the dirty launcher too, and its zygote ignores SIGPIPE itself.
    const s = await startServer(['--pool=1'], { wrap: [SIGDIRTY] });
    try {
      const r = await api(s.sock, 'POST', '/instances', { image: await s.register('test_forever'), memMiB: 2, monitor });
      const { pid } = r.body as Record<string, number>;
      await waitForGuest(pid);
      t.deepEqual(signalState(pid), CLEAN);
    } finally {
      await s.stop();
    }
  });
}
