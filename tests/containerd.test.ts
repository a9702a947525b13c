// tendril-oci under real containerd (Debian's 1.6): images built by
// `tendril image build`, imported with ctr, run by containerd's standard shim
// (io.containerd.runc.v2) with tendril-oci (the native front,
// native/build/tendril-oci) as its runc binary. The file starts its own
// containerd (private root, state, socket, namespace and runtime root under
// a temp dir), stops it by pid and removes everything, even when a test
// fails. Also: the runtime driven directly (no containerd) for the
// config.json rules and for containers it hands to runc.

import test from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BAD_ELF_CASES } from './fixtures/bad-elf.js';
import { childrenOf, guest, ROOT, runCmdAsync, tendril, type RunResult } from './helpers.js';
import { DEFAULT_GUEST_ID, planJail } from '../supervisor/isolate/jail.js';

/** test_hello with its ABI note saying hvt: a Solo5 guest, so tendril's, refused with tendril's reason. */
function hvtGuest(): Buffer {
  return BAD_ELF_CASES.find((c) => c.name === 'hvt target')!.mutate(readFileSync(guest('test_hello')));
}

const TENDRIL_OCI = join(ROOT, 'native/build/tendril-oci');
const isRoot = process.getuid?.() === 0;
const hasContainerd = spawnSync('sh', ['-c', 'command -v containerd && command -v ctr'], { stdio: 'ignore' }).status === 0;
const ctest = isRoot && hasContainerd ? test : test.skip;
if (!isRoot || !hasContainerd) {
  test('containerd tests need root and containerd (node scripts/build.js --guests installs it)', (t) => t.pass());
}

interface Env {
  dir: string;
  address: string;
  namespace: string;
  runcRoot: string;
  runtime: string;
  calls: string;
  snapshotter: string[];
  daemon?: ChildProcess;
  runBefore: boolean;
}

let env: Env | undefined;

function ctrArgs(...args: string[]): string[] {
  return ['--address', env!.address, '--namespace', env!.namespace, ...args];
}

function ctr(args: string[], timeoutMs = 30_000): Promise<RunResult> {
  return runCmdAsync('ctr', ctrArgs(...args), { timeoutMs });
}

/** `ctr run` with tendril-oci as the runc binary (and our private runtime root). */
function ctrRun(opts: string[], image: string, id: string, ...args: string[]): Promise<RunResult> {
  return ctr(['run', '--runc-binary', env!.runtime, '--runc-root', env!.runcRoot, ...env!.snapshotter, ...opts, image, id, ...args]);
}

const IMAGES: [string, string, string[]][] = [
  ['test_hello', 'tendril-test/hello:1', []],
  ['test_exit', 'tendril-test/exit:1', []],
  ['test_seccomp', 'tendril-test/seccomp:1', []],
  ['test_forever', 'tendril-test/forever:1', []],
  ['test_blk', 'tendril-test/blk:1', ['--add', 'DISK']],
];
const ref = (name: string) => `docker.io/${name}`;

async function waitFor(what: string, fn: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test.before(async () => {
  if (!isRoot || !hasContainerd) return;
  const dir = mkdtempSync(join(tmpdir(), 'tendril-ctd-'));
  env = {
    dir, address: join(dir, 'containerd.sock'), namespace: `tendril-test-${process.pid}`, runcRoot: join(dir, 'runc'),
    runtime: join(dir, 'tendril-oci'), calls: join(dir, 'calls.log'), snapshotter: [], runBefore: existsSync('/run/containerd'),
  };
  // The shim needs an executable; this one also records each command line the shim used.
  writeFileSync(env.runtime, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${env.calls}'\nexec '${TENDRIL_OCI}' "$@"\n`);
  chmodSync(env.runtime, 0o755);
  writeFileSync(join(dir, 'config.toml'), `version = 2
root = "${dir}/root"
state = "${dir}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "${env.address}"
[ttrpc]
  address = "${env.address}.ttrpc"
`);
  const log = openSync(join(dir, 'containerd.log'), 'w');
  env.daemon = spawn('containerd', ['--config', join(dir, 'config.toml')], { stdio: ['ignore', log, log] });
  closeSync(log);
  await waitFor('containerd to serve', async () => (await runCmdAsync('ctr', ['--address', env!.address, 'version'], { timeoutMs: 5000 })).status === 0);
  const plugins = await ctr(['plugins', 'ls']);
  if (!/io\.containerd\.snapshotter\.v1\s+overlayfs\s+\S+\s+ok/.test(plugins.stdout)) env.snapshotter = ['--snapshotter', 'native'];

  const disk = join(dir, 'disk.img');
  writeFileSync(disk, Buffer.alloc(1 << 20));
  await Promise.all(IMAGES.map(async ([g, name, extra]) => {
    const tar = join(dir, `${g}.tar`);
    const b = tendril(['image', 'build', guest(g), '-o', tar, '--name', name, ...extra.map((a) => (a === 'DISK' ? disk : a))]);
    if (b.status !== 0) throw new Error(`tendril image build ${g}: ${b.stderr}`);
    const imp = await ctr(['images', 'import', ...env!.snapshotter, tar]);
    if (imp.status !== 0) throw new Error(`ctr images import ${g}: ${imp.stderr}`);
  }));
});

/** Mount points at or under dir (a task's rootfs left mounted by a failed test). */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => l.split(' ')[4])
    .filter((m) => m && (m === dir || m.startsWith(`${dir}/`))).sort((a, b) => b.length - a.length);
}

/** Shims started for our containerd (their command line names our socket): ended by pid. */
function ourShims(address: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'latin1').split('\0');
      if (cmd[0].includes('containerd-shim') && cmd.includes(address)) pids.push(Number(p));
    } catch {
      // gone
    }
  }
  return pids;
}

test.after.always(async () => {
  if (!env) return;
  const e = env;
  try {
    // Tasks a failed test left behind: end them through containerd, so their shims exit.
    const tasks = await ctr(['task', 'ls', '-q']);
    for (const id of tasks.stdout.split('\n').filter(Boolean)) {
      await ctr(['task', 'kill', '-s', 'SIGKILL', id]);
      await sleep(100);
      await ctr(['task', 'delete', '-f', id]);
    }
    const containers = await ctr(['containers', 'ls', '-q']);
    for (const id of containers.stdout.split('\n').filter(Boolean)) await ctr(['containers', 'rm', id]);
  } finally {
    for (const pid of ourShims(e.address)) process.kill(pid, 'SIGKILL');
    if (e.daemon?.pid && e.daemon.exitCode === null) {
      const gone = new Promise((r) => e.daemon!.once('exit', r));
      e.daemon.kill('SIGTERM');
      await Promise.race([gone, sleep(5000).then(() => e.daemon!.kill('SIGKILL'))]);
    }
    for (const m of mountsUnder(e.dir)) spawnSync('umount', ['-l', m]);
    rmSync(e.dir, { recursive: true, force: true });
    // What the shim and ctr made under /run/containerd for our namespace: removed only if empty.
    for (const d of ['/run/containerd/s', '/run/containerd/fifo', '/run/containerd/runc', ...(e.runBefore ? [] : ['/run/containerd'])]) {
      try {
        rmdirSync(d);
      } catch {
        // not empty (someone else's) or absent
      }
    }
  }
});

ctest('ctr run: the guest prints through the shim and its status is ctr\'s (hello 0); --memory-limit is its memory', async (t) => {
  const r = await ctrRun(['--rm', '--memory-limit', String(8 << 20)], ref('tendril-test/hello:1'), 'hello', '/test_hello.spt', 'Hello_Solo5');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /Memory map: 8 MB addressable/);
  t.regex(r.stdout, /Hello, World/);
  t.regex(r.stdout, /Command line is: 'Hello_Solo5'/);
  t.regex(r.stdout, /SUCCESS/);
});

ctest('ctr run: solo5_exit(7) gives 7, a forbidden system call 159', async (t) => {
  const [exit, sys] = await Promise.all([
    ctrRun(['--rm'], ref('tendril-test/exit:1'), 'exit7', '/test_exit.spt', '7'),
    ctrRun(['--rm'], ref('tendril-test/seccomp:1'), 'seccomp', '/test_seccomp.spt'),
  ]);
  t.is(exit.status, 7, exit.stderr);
  t.is(sys.status, 159, sys.stderr);
});

ctest('a disk from the image, attached by annotation', async (t) => {
  const r = await ctrRun(['--rm', '--annotation', 'org.tendril.block.storage=/disk.img'], ref('tendril-test/blk:1'), 'blk', '/test_blk.spt');
  t.is(r.status, 0, r.stdout + r.stderr);
  t.regex(r.stdout, /SUCCESS/);
});

ctest('a bad bundle fails with tendril\'s message through containerd', async (t) => {
  const [undeclared, missing, notGuest] = await Promise.all([
    ctrRun(['--rm', '--annotation', 'org.tendril.block.nope=/disk.img'], ref('tendril-test/blk:1'), 'bad1', '/test_blk.spt'),
    ctrRun(['--rm'], ref('tendril-test/blk:1'), 'bad2', '/test_blk.spt'),
    ctrRun(['--rm', '--annotation', 'org.tendril.block.storage=/../../../../etc/passwd'], ref('tendril-test/blk:1'), 'bad3', '/test_blk.spt'),
  ]);
  t.not(undeclared.status, 0);
  t.regex(undeclared.stderr, /OCI runtime create failed: annotation org\.tendril\.block\.nope: the guest \/test_blk\.spt has no BLOCK_BASIC device 'nope'; the guest declares storage \(BLOCK_BASIC\)/);
  t.not(missing.status, 0);
  t.regex(missing.stderr, /declares BLOCK_BASIC device 'storage' but no annotation attaches it; add the annotation org\.tendril\.block\.storage=/);
  t.not(notGuest.status, 0);
  t.regex(notGuest.stderr, /annotation org\.tendril\.block\.storage: '\/\.\.\/\.\.\/\.\.\/\.\.\/etc\/passwd' must be a path inside the container's rootfs without '\.\.'/);
  const left = await ctr(['containers', 'ls', '-q']);
  t.notRegex(left.stdout, /bad\d/, 'ctr run --rm leaves no container behind');
});

ctest('terminal mode: the pty master goes to the shim over --console-socket', async (t) => {
  // ctr run -t needs a terminal of its own: script(1) gives it one.
  const cmd = ['ctr', ...ctrArgs('run', '--rm', '-t', '--runc-binary', env!.runtime, '--runc-root', env!.runcRoot, ...env!.snapshotter,
    ref('tendril-test/exit:1'), 'tty', '/test_exit.spt', '5')].map((a) => `'${a}'`).join(' ');
  const r = await runCmdAsync('script', ['-qec', cmd, '/dev/null'], { timeoutMs: 30_000 });
  t.is(r.status, 5, r.stdout + r.stderr);
  t.regex(r.stdout, /solo5_exit\(5\) called\r+\n/, 'through a terminal, lines end in CR LF');
  const calls = readFileSync(env!.calls, 'utf8');
  t.regex(calls, /create --bundle \S+ --pid-file \S+ --console-socket \S+ tty\n/);
});

/** The layers of the jail on this host (containerd inherits this process's cgroups): what a jailed container must show. */
const jailHere = () => new Map(planJail({ strict: false }, 512).layers.map((l) => [l.name, l.ok]));

const procStatus = (pid: number) => readFileSync(`/proc/${pid}/status`, 'utf8');
const statusField = (status: string, key: string) => new RegExp(`^${key}:[ \\t]*(.*)$`, 'm').exec(status)?.[1].trim();

/** A jailed task's guest: the child of the task's pid (its waiter) that is pid 2 of its pid namespace (the other child, pid 1, is its init). */
function jailedGuest(waiter: number): number {
  const children = childrenOf(waiter);
  const g = children.filter((c) => statusField(procStatus(c), 'Seccomp') === '2');
  if (g.length !== 1) throw new Error(`task ${waiter}: children ${children.join(' ')}, ${g.length} under a filter`);
  return g[0];
}

/** The guest's per-guest cgroup directories (named tendril-…), from /proc/PID/cgroup. */
function guestCgroups(pid: number): string[] {
  const out: string[] = [];
  for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').filter(Boolean)) {
    const [, ctl, path] = line.split(':');
    if (!/\/tendril-[^/]+$/.test(path)) continue;
    const mount = ctl ? `/sys/fs/cgroup/${ctl.split(',').find((c) => ['memory', 'pids', 'cpu'].includes(c)) ?? ctl}` : '/sys/fs/cgroup';
    out.push(join(mount, path));
  }
  return out;
}

ctest('a long-running guest: RUNNING in ctr task ls, jailed beneath its waiter, killed, deleted; nothing left; the shim\'s commands are logged', async (t) => {
  const id = 'longrun';
  const run = await ctrRun(['-d'], ref('tendril-test/forever:1'), id, '/test_forever.spt');
  t.is(run.status, 0, run.stderr);
  const taskLine = async () => (await ctr(['task', 'ls'])).stdout.split('\n').find((l) => l.startsWith(`${id} `)) ?? '';
  await waitFor('the task to run', async () => /\bRUNNING\b/.test(await taskLine()));
  const pid = Number((await taskLine()).split(/\s+/)[1]);
  t.true(pid > 1);
  // Jailed (containerd asks for namespaces): the task's pid is the guest's waiter, outside the jail; the guest is its child.
  t.is(readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0')[0], 'tendril: test_forever.spt');
  t.is(statusField(procStatus(pid), 'Seccomp'), '0', 'the waiter runs no guest code');
  const g = jailedGuest(pid);
  const gs = procStatus(g);
  const layers = jailHere();
  t.is(statusField(gs, 'Seccomp'), '2');
  t.is(statusField(gs, 'CapEff'), '0000000000000000');
  if (layers.get('uid/gid')) {
    t.is(statusField(gs, 'Uid'), Array(4).fill(DEFAULT_GUEST_ID).join('\t'));
    t.is(statusField(gs, 'Gid'), Array(4).fill(DEFAULT_GUEST_ID).join('\t'));
    t.is(statusField(gs, 'CapBnd'), '0000000000000000');
  }
  for (const [ns, layer] of [['pid', 'pid namespace'], ['mnt', 'mount namespace'], ['net', 'network namespace'], ['ipc', 'ipc namespace'], ['uts', 'uts namespace']]) {
    const differs = readlinkSync(`/proc/${g}/ns/${ns}`) !== readlinkSync(`/proc/self/ns/${ns}`);
    t.is(differs, layers.get(layer) === true, `${ns} namespace: ${layers.get(layer) ? 'its own' : 'the host\'s (the host has no such layer)'}`);
  }
  if (layers.get('pid namespace')) t.is(statusField(gs, 'NSpid')?.split(/\s+/).pop(), '2', 'pid 2 of its own pid namespace');
  const cgroups = guestCgroups(g);
  t.is(cgroups.length > 0, ['memory', 'pids'].some((c) => layers.get(`cgroup ${c}`)), `its own cgroups: ${cgroups.join(' ')}`);
  const state = await runCmdAsync(TENDRIL_OCI, ['--root', join(env!.runcRoot, env!.namespace), 'state', id]);
  t.is(state.status, 0, state.stderr);
  t.like(JSON.parse(state.stdout), { id, pid, status: 'running' });
  // The runtime log in the bundle: JSON records as the shim asked (--log-format json).
  const bundleLog = join(env!.dir, 'state/io.containerd.runtime.v2.task', env!.namespace, id, 'log.json');
  const records = readFileSync(bundleLog, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  t.true(records.every((r) => r.level && r.msg && !Number.isNaN(Date.parse(r.time))));
  t.true(records.some((r) => Array.isArray(r.argv) && r.argv.includes('create')));

  const kill = await ctr(['task', 'kill', '-s', 'SIGKILL', id]);
  t.is(kill.status, 0, kill.stderr);
  await waitFor('the task to stop', async () => /\bSTOPPED\b/.test(await taskLine()));
  const del = await ctr(['task', 'delete', id]);
  t.is(del.status, 0, del.stderr);
  // The waiter died by SIGKILL: the guest died with it (PR_SET_PDEATHSIG), delete removed the cgroups it could not.
  await waitFor('the guest to end with its waiter', () => !existsSync(`/proc/${g}`) || statusField(procStatus(g), 'State')?.[0] === 'Z');
  for (const d of cgroups) t.false(existsSync(d), `${d} removed`);
  t.is(await taskLine(), '');
  t.is((await ctr(['containers', 'rm', id])).status, 0);
  t.false(existsSync(join(env!.runcRoot, env!.namespace, id)), 'delete removed the runtime state');

  const calls = readFileSync(env!.calls, 'utf8').split('\n').filter((l) => l.endsWith(` ${id}`) || l.includes(` ${id} `));
  const verbs = calls.map((l) => l.replace(/^.*--log-format json /, '').replace(/\/\S+/g, 'PATH'));
  t.log(verbs.join('\n'));
  t.deepEqual(verbs.filter((v) => !v.startsWith('state')), [
    `create --bundle PATH --pid-file PATH ${id}`, `start ${id}`, `kill ${id} 9`, `delete ${id}`, `delete --force ${id}`,
  ]);
  t.regex(calls[0], /^--root \S+ --log \S+\/log\.json --log-format json create /);
});

ctest('jailed: SIGTERM from ctr task kill ends the guest and ctr run sees 143; its cgroups go with it', async (t) => {
  const id = 'jailterm';
  const run = ctrRun(['--rm'], ref('tendril-test/forever:1'), id, '/test_forever.spt');
  const taskLine = async () => (await ctr(['task', 'ls'])).stdout.split('\n').find((l) => l.startsWith(`${id} `)) ?? '';
  // A bound that only catches a hang: ctr run is slow to start on a loaded machine.
  await Promise.race([waitFor('the task to run', async () => /\bRUNNING\b/.test(await taskLine()), 60_000),
    run.then((r) => { throw new Error(`ctr run ended before the task ran: ${r.status} ${r.stderr}`); })]);
  const pid = Number((await taskLine()).split(/\s+/)[1]);
  const g = jailedGuest(pid);
  const cgroups = guestCgroups(g);
  t.is((await ctr(['task', 'kill', '-s', 'SIGTERM', id])).status, 0);
  const r = await run;
  t.is(r.status, 143, r.stdout + r.stderr);
  t.false(existsSync(`/proc/${g}`) && statusField(procStatus(g), 'State')?.[0] !== 'Z', 'the guest is gone');
  for (const d of cgroups) t.false(existsSync(d), `${d} removed by the waiter`);
});

ctest('org.tendril.isolate=false: the task\'s pid is the guest itself, unjailed; =strict runs or refuses as the host\'s layers say', async (t) => {
  const id = 'nojail';
  const run = await ctrRun(['-d', '--annotation', 'org.tendril.isolate=false'], ref('tendril-test/forever:1'), id, '/test_forever.spt');
  t.is(run.status, 0, run.stderr);
  const taskLine = async () => (await ctr(['task', 'ls'])).stdout.split('\n').find((l) => l.startsWith(`${id} `)) ?? '';
  await waitFor('the task to run', async () => /\bRUNNING\b/.test(await taskLine()));
  const pid = Number((await taskLine()).split(/\s+/)[1]);
  const s = procStatus(pid);
  t.is(statusField(s, 'Seccomp'), '2', 'the task\'s pid runs the guest');
  t.is(statusField(s, 'Uid')?.split(/\s+/)[0], '0');
  t.is(readlinkSync(`/proc/${pid}/ns/pid`), readlinkSync('/proc/self/ns/pid'));
  t.is((await ctr(['task', 'kill', '-s', 'SIGKILL', id])).status, 0);
  await waitFor('the task to stop', async () => /\bSTOPPED\b/.test(await taskLine()));
  t.is((await ctr(['task', 'delete', id])).status, 0);
  t.is((await ctr(['containers', 'rm', id])).status, 0);

  const missing = [...jailHere()].filter(([, ok]) => !ok).map(([name]) => name);
  const strict = await ctrRun(['--rm', '--annotation', 'org.tendril.isolate=strict'], ref('tendril-test/exit:1'), 'strict', '/test_exit.spt', '3');
  if (missing.length === 0) {
    t.is(strict.status, 3, strict.stderr);
  } else {
    t.not(strict.status, 0);
    t.regex(strict.stderr, /annotation org\.tendril\.isolate=strict: this host cannot provide/);
    for (const m of missing) t.true(strict.stderr.includes(m), `names ${m}`);
  }
});

// The runtime without containerd: config.json rules, checked before anything starts.

function bundle(dir: string, config: Record<string, unknown>, setup?: (rootfs: string) => void): string {
  const b = join(dir, 'bundle');
  const rootfs = join(b, 'rootfs');
  mkdirSync(rootfs, { recursive: true });
  writeFileSync(join(rootfs, 'hello.spt'), readFileSync(guest('test_hello')));
  setup?.(rootfs);
  writeFileSync(join(b, 'config.json'), JSON.stringify({
    ociVersion: '1.0.2', root: { path: 'rootfs' }, process: { args: ['/hello.spt', 'Hello_Solo5'], cwd: '/', user: { uid: 0, gid: 0 } },
    ...config,
  }));
  return b;
}

/** tendril-oci with a private root; async, so the tests of this file overlap. */
function oci(dir: string, ...args: string[]): Promise<RunResult> {
  return runCmdAsync(TENDRIL_OCI, ['--root', join(dir, 'state'), ...args], { timeoutMs: 30_000 });
}

/** create with stdio on a file: the waiting guest keeps create's stdio, and a pipe would never close. */
async function ociCreate(dir: string, ...args: string[]): Promise<{ status: number; out: string }> {
  const file = join(dir, 'out');
  const fd = openSync(file, 'w');
  try {
    const r = await runCmdAsync(TENDRIL_OCI, ['--root', join(dir, 'state'), 'create', ...args], { timeoutMs: 30_000, stdio: ['ignore', fd, fd] });
    return { status: r.status, out: readFileSync(file, 'utf8') };
  } finally {
    closeSync(fd);
  }
}

for (const [what, config, setup, message] of [
  ['a bind mount', { mounts: [{ destination: '/data', type: 'bind', source: '/srv' }] }, undefined,
    /config\.json: mounts\[0\]: \/data, bind from \/srv: a unikernel has no file system to mount into; give it data as a disk file instead/],
  ['a non-root user without a jail', { process: { args: ['/hello.spt'], user: { uid: 1000, gid: 0 } } }, undefined, /process\.user\.uid: 1000: the guest is not jailed/],
  ['a working directory', { process: { args: ['/hello.spt'], cwd: '/tmp' } }, undefined, /process\.cwd: '\/tmp'/],
  ['a hook', { hooks: { prestart: [{ path: '/bin/true' }] } }, undefined, /hooks\.prestart: tendril does not run OCI hooks/],
  ['a CPU quota without a jail', { linux: { resources: { cpu: { quota: 50000, period: 100000 } } } }, undefined,
    /linux\.resources\.cpu\.quota: the guest is not jailed \(config\.json asks for no namespace\): a CPU quota needs the jail's cgroup/],
  ['a CPU set', { linux: { namespaces: [{ type: 'pid' }], resources: { cpu: { cpus: '0-1' } } } }, undefined,
    /linux\.resources\.cpu\.cpus: not supported: tendril sets a CPU quota \(quota, period\), not CPU sets/],
  ['a non-root user with the jail turned off', { process: { args: ['/hello.spt'], user: { uid: 1000, gid: 0 } }, linux: { namespaces: [{ type: 'pid' }] },
    annotations: { 'org.tendril.isolate': 'off' } }, undefined,
    /process\.user\.uid: 1000: the guest is not jailed \(org\.tendril\.isolate=off\), so it runs as the runtime's user, root/],
  ['a user namespace', { linux: { namespaces: [{ type: 'pid' }, { type: 'user' }] } }, undefined, /linux\.namespaces\[1\]: type user is not supported/],
  ['a bad jail setting', { annotations: { 'org.tendril.isolate': 'maybe' } }, undefined,
    /annotation org\.tendril\.isolate=maybe: not a jail setting; use strict \(every layer or refuse\), or false or off \(no jail\)/],
  ['an unknown tendril annotation', { annotations: { 'org.tendril.blok.storage': '/x' } }, undefined, /annotation org\.tendril\.blok\.storage: unknown tendril annotation/],
  ['a disk behind a symlink out of the rootfs', { annotations: { 'org.tendril.block.storage': '/disk.img' } },
    (rootfs: string) => symlinkSync('/etc/hostname', join(rootfs, 'disk.img')), /org\.tendril\.block\.storage: \/disk\.img leads outside the container's rootfs/],
  ['too little memory', { linux: { resources: { memory: { limit: 1 << 20 } } } }, undefined, /memory\.limit: 1048576 bytes: a guest needs at least 2 MiB/],
  ['a bad sector size', { annotations: { 'org.tendril.block.storage': '/disk.img', 'org.tendril.block-sector-size.storage': '1000' } },
    (rootfs: string) => {
      writeFileSync(join(rootfs, 'hello.spt'), readFileSync(guest('test_blk')));
      writeFileSync(join(rootfs, 'disk.img'), Buffer.alloc(1 << 20));
    }, /annotation org\.tendril\.block-sector-size\.storage=1000: Block size must be a power of two/],
  ['a Solo5 guest for another target', { process: { args: ['/hvt.spt'] } },
    (rootfs: string) => writeFileSync(join(rootfs, 'hvt.spt'), hvtGuest()), /process\.args\[0\] \/hvt\.spt: .*not for the solo5-spt target \(it is for hvt\)/],
] as const) {
  test(`tendril-oci create rejects ${what}, naming the field`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'tendril-oci-'));
    try {
      const b = bundle(dir, config as Record<string, unknown>, setup);
      const log = join(dir, 'log.json');
      const r = await runCmdAsync(TENDRIL_OCI, ['--root', join(dir, 'state'), '--log', log, '--log-format', 'json', 'create', '--bundle', b, 'c1']);
      t.is(r.status, 1);
      t.regex(r.stderr, /^tendril-oci: [^\n]+\n$/);
      t.regex(r.stderr, message);
      const last = JSON.parse(readFileSync(log, 'utf8').trim().split('\n').pop()!);
      t.is(last.level, 'error');
      t.regex(last.msg, message);
      t.false(existsSync(join(dir, 'state', 'c1')), 'nothing left behind');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('tendril-oci without containerd, jailed: process.user is the guest\'s ids, linux.resources.cpu its CPU quota; kill and delete leave nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-oci-'));
  try {
    const b = bundle(dir, {
      process: { args: ['/forever.spt'], cwd: '/', user: { uid: 4321, gid: 4322, additionalGids: [4323] } },
      linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }], resources: { cpu: { quota: 25000, period: 100000 } } },
      annotations: { 'org.tendril.mem': '4' },
    }, (rootfs) => writeFileSync(join(rootfs, 'forever.spt'), readFileSync(guest('test_forever'))));
    const pidFile = join(dir, 'pid');
    const c = await ociCreate(dir, '--bundle', b, '--pid-file', pidFile, 'c1');
    t.is(c.status, 0, c.out);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    t.is((await oci(dir, 'start', 'c1')).status, 0);
    await waitFor('the guest to run under its filter', () => {
      try {
        jailedGuest(pid);
        return true;
      } catch {
        return false;
      }
    });
    const g = jailedGuest(pid);
    const gs = procStatus(g);
    const layers = new Map(planJail({ strict: false, uid: 4321, gid: 4322, cpus: 0.25 }, 4).layers.map((l) => [l.name, l.ok]));
    if (layers.get('uid/gid')) {
      t.is(statusField(gs, 'Uid'), Array(4).fill(4321).join('\t'));
      t.is(statusField(gs, 'Gid'), Array(4).fill(4322).join('\t'));
      t.is(statusField(gs, 'Groups'), '', 'no supplementary group: the jail drops them all');
    }
    const cgroups = guestCgroups(g);
    if (layers.get('cgroup cpu')) {
      const cpu = cgroups.find((d) => existsSync(join(d, 'cpu.cfs_quota_us')) || existsSync(join(d, 'cpu.max')));
      t.truthy(cpu, `a cpu cgroup among ${cgroups.join(' ')}`);
      const quota = existsSync(join(cpu!, 'cpu.max'))
        ? readFileSync(join(cpu!, 'cpu.max'), 'utf8').trim()
        : `${readFileSync(join(cpu!, 'cpu.cfs_quota_us'), 'utf8').trim()} ${readFileSync(join(cpu!, 'cpu.cfs_period_us'), 'utf8').trim()}`;
      t.is(Number(quota.split(' ')[0]) / Number(quota.split(' ')[1]), 0.25, `the quota: ${quota}`);
    }
    t.is((await oci(dir, 'kill', 'c1', 'KILL')).status, 0);
    await waitFor('the guest to end with its waiter', () => !existsSync(`/proc/${g}`) || statusField(procStatus(g), 'State')?.[0] === 'Z');
    await waitFor('the container to stop', async () => JSON.parse((await oci(dir, 'state', 'c1')).stdout).status === 'stopped');
    t.is((await oci(dir, 'delete', 'c1')).status, 0);
    for (const d of cgroups) t.false(existsSync(d), `${d} removed`);
  } finally {
    // A failed assertion above must not leave the jailed guest running (delete --force kills it).
    await oci(dir, 'delete', '--force', 'c1');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tendril-oci lifecycle without containerd: created waits, start runs, state follows the process', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-oci-'));
  try {
    const b = bundle(dir, { annotations: { 'org.tendril.mem': '4', other: 'kept' } });
    const out = join(dir, 'out');
    const pidFile = join(dir, 'pid');
    // create's stdio is the container's: the guest writes to `out`.
    const c = await ociCreate(dir, '--bundle', b, '--pid-file', pidFile, 'c1');
    t.is(c.status, 0, c.out);
    const pid = Number(readFileSync(pidFile, 'utf8'));
    const st = JSON.parse((await oci(dir, 'state', 'c1')).stdout);
    t.like(st, { ociVersion: '1.0.2', id: 'c1', pid, status: 'created', bundle: b, annotations: { 'org.tendril.mem': '4', other: 'kept' } });
    t.regex(readFileSync(`/proc/${pid}/status`, 'utf8'), /^Seccomp:\s+0$/m);
    t.is(readFileSync(out, 'utf8'), '', 'nothing ran before start');
    t.regex((await oci(dir, 'delete', 'c9')).stderr, /container c9 does not exist/);
    t.is((await oci(dir, 'delete', '--force', 'c9')).status, 0, 'delete --force of nothing succeeds, as with runc');
    t.regex((await oci(dir, 'create', '--bundle', b, 'c1')).stderr, /container with id c1 already exists/);
    t.is((await oci(dir, 'start', 'c1')).status, 0);
    // Not our child (create's was): wait for it to end by polling /proc.
    await waitFor('the guest to exit', () => {
      try {
        return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
      } catch {
        return true;
      }
    });
    t.regex(readFileSync(out, 'utf8'), /Memory map: 4 MB addressable/);
    t.regex(readFileSync(out, 'utf8'), /SUCCESS/);
    t.like(JSON.parse((await oci(dir, 'state', 'c1')).stdout), { status: 'stopped', pid: 0 });
    t.regex((await oci(dir, 'kill', 'c1', 'KILL')).stderr, /container not running/, 'the words the shim takes for "already exited"');
    t.regex((await oci(dir, 'start', 'c1')).stderr, /cannot start container c1: it is stopped, not created/);
    t.is((await oci(dir, 'delete', 'c1')).status, 0);
    t.false(existsSync(join(dir, 'state', 'c1')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tendril-oci: a recorded pid that now belongs to another process reads as stopped', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-oci-'));
  try {
    const b = bundle(dir, {});
    const c = await ociCreate(dir, '--bundle', b, 'c1');
    t.is(c.status, 0, c.out);
    const stateFile = join(dir, 'state', 'c1', 'state');
    const real = readFileSync(stateFile, 'utf8');
    const pid = Number(/^pid (\d+)$/m.exec(real)![1]);
    writeFileSync(stateFile, real.replace(/^start_time \d+$/m, 'start_time 1'));
    t.is(JSON.parse((await oci(dir, 'state', 'c1')).stdout).status, 'stopped');
    t.regex((await oci(dir, 'kill', 'c1', '9')).stderr, /container not running/, 'never signals a pid it cannot vouch for');
    writeFileSync(stateFile, real);
    t.is(JSON.parse((await oci(dir, 'state', 'c1')).stdout).status, 'created');
    t.is((await oci(dir, 'delete', 'c1')).status, 0, 'deleting a created container ends its waiting guest');
    await waitFor('the stub to end', () => !existsSync(`/proc/${pid}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')));
    t.pass();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tendril-oci --version, features and refusals of commands it cannot honour', async (t) => {
  const v = spawnSync(TENDRIL_OCI, ['--version'], { encoding: 'utf8' });
  t.regex(v.stdout, /^tendril-oci version \d+\.\d+\.\d+\nspec: 1\.0\.2\n$/);
  const f = JSON.parse(spawnSync(TENDRIL_OCI, ['features'], { encoding: 'utf8' }).stdout);
  t.is(f.ociVersionMin, '1.0.0');
  t.deepEqual(f.hooks, []);
  const dir = mkdtempSync(join(tmpdir(), 'tendril-oci-'));
  try {
    const c = await ociCreate(dir, '--bundle', bundle(dir, {}), 'c1');
    t.is(c.status, 0, c.out);
    t.regex((await oci(dir, 'exec', '--process', '/dev/null', 'c1')).stderr, /^tendril-oci: exec is not supported for container c1: a unikernel is one program/);
    t.regex((await oci(dir, 'update', '--resources', '-', 'c1')).stderr, /update is not supported for container c1: tendril creates no cgroups/);
    t.regex((await oci(dir, 'exec', 'c9')).stderr, /container c9 does not exist/);
    t.regex((await oci(dir, 'run', 'c1')).stderr, /run is not supported: use create, then start/);
    t.regex((await oci(dir, 'create', '--preserve-fds', '2', '--bundle', bundle(dir, {}), 'c2')).stderr, /--preserve-fds 2/);
    t.regex((await oci(dir, '--bogus', 'state', 'c1')).stderr, /unknown global option --bogus/);
    t.regex((await oci(dir, 'kill', 'c1', 'SIGNOPE')).stderr, /unknown signal 'SIGNOPE'/);
    t.regex((await oci(dir, 'kill', '--nope', 'c1')).stderr, /kill: unknown option --nope/);
    t.regex((await oci(dir, 'state', '../etc')).stderr, /invalid container id/);
    t.is((await oci(dir, 'delete', 'c1')).status, 0);
    t.is(spawnSync(TENDRIL_OCI, ['--systemd-cgroup', '--root', join(dir, 'nonexistent-root'), 'delete', '--force', 'x']).status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A static C program in a rootfs: what runc runs for a container that is not a unikernel. */
function staticHello(rootfs: string): void {
  const src = join(rootfs, '..', 'hello.c');
  writeFileSync(src, '#include <stdio.h>\nint main(int c, char **v) { printf("runc ran %s\\n", c > 1 ? v[1] : "it"); return 3; }\n');
  const cc = spawnSync('gcc', ['-static', '-O2', '-o', join(rootfs, 'hello'), src], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`gcc -static: ${cc.stderr}`);
}

const hasRunc = spawnSync('sh', ['-c', 'command -v runc'], { stdio: 'ignore' }).status === 0;
(isRoot && hasRunc ? test : test.skip)('a container that is not a unikernel goes to runc, and every later command for it too', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-oci-'));
  try {
    const b = bundle(dir, {
      process: { args: ['/hello', 'delegated'], cwd: '/', user: { uid: 0, gid: 0 } },
      mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }],
      linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }] },
    }, staticHello);
    const log = join(dir, 'log.json');
    const c = await ociCreate(dir, '--bundle', b, 'r1');
    t.is(c.status, 0, c.out);
    const record = readFileSync(join(dir, 'state', 'r1', 'state'), 'utf8');
    t.regex(record, /^runtime runc$/m);
    t.regex(record, /^delegate \/\S*runc$/m);
    const st = JSON.parse((await oci(dir, 'state', 'r1')).stdout);
    t.like(st, { id: 'r1', status: 'created' }, 'runc\'s own state');
    t.true(existsSync(join(dir, 'state', 'r1', 'runc', 'r1', 'state.json')), 'runc keeps its state under the container\'s directory');
    t.is((await runCmdAsync(TENDRIL_OCI, ['--root', join(dir, 'state'), '--log', log, '--log-format', 'json', 'start', 'r1'])).status, 0);
    await waitFor('runc\'s container to exit', async () => JSON.parse((await oci(dir, 'state', 'r1')).stdout).status === 'stopped');
    t.is(readFileSync(join(dir, 'out'), 'utf8'), 'runc ran delegated\n');
    t.is((await oci(dir, 'delete', 'r1')).status, 0);
    t.false(existsSync(join(dir, 'state', 'r1')), 'delete removed tendril-oci\'s record too');
    t.regex((await oci(dir, 'state', 'r1')).stderr, /container r1 does not exist/);

    // No runc to hand it to: a clear error, and nothing left.
    const none = await runCmdAsync(TENDRIL_OCI, ['--root', join(dir, 'state'), '--delegate=/nonexistent/runc', 'create', '--bundle', b, 'r2']);
    t.is(none.status, 1);
    t.regex(none.stderr, /^tendril-oci: process\.args\[0\] \/hello is not an ELF without a Solo5 ABI note|^tendril-oci: process\.args\[0\] \/hello is an ELF without a Solo5 ABI note, so not a unikernel, and there is no runc to hand the container to: install runc or give --delegate=PATH\n$/);
    t.false(existsSync(join(dir, 'state', 'r2')));

    // A FIFO as process.args[0] is looked at, never opened (an open would block until a writer came).
    const fifoBundle = bundle(join(dir, 'f'), { process: { args: ['/pipe'], cwd: '/', user: { uid: 0, gid: 0 } } },
      (rootfs) => spawnSync('mkfifo', [join(rootfs, 'pipe')]));
    const fifo = await runCmdAsync(TENDRIL_OCI, ['--root', join(dir, 'state'), '--delegate=/nonexistent/runc', 'create', '--bundle', fifoBundle, 'r3'],
      { timeoutMs: 10_000 });
    t.is(fifo.timedOut, undefined);
    t.regex(fifo.stderr, /process\.args\[0\] \/pipe is not a regular file, so not a unikernel, and there is no runc/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
