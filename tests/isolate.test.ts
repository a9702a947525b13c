// --isolate (supervisor/isolate/, native/stub/isolate.c), for real: a live
// isolated guest is read from /proc (ids, capabilities, no_new_privs,
// seccomp, namespaces, its empty root, its cgroup and the cgroup's limits),
// a guest that touches more memory than its cgroup allows is stopped by the
// cgroup's OOM killer, and the reference and hostile guests give the same
// results with and without isolation. Where the host decides (cgroup v1 or
// v2, Landlock), the test reads the host itself and says which by name.
// Missing layers are made real, not mocked: a private mount namespace
// without the cgroup mounts, a sysctl file shadowed by a bind mount.

import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { landlockAbi } from '../supervisor/os.js';
import { childrenOf, guest, oneLine, Pool, ROOT, runCmdAsync, TENDRIL, tendrilAsync, waitFor, withTempDir, type RunResult } from './helpers.js';
import { guestWithFlood, withNetns } from './netns.js';

const GUEST_ID = 2_000_000_000;
const pool = new Pool(2);
const run = (args: string[], timeoutMs = 30_000) => pool.run(() => tendrilAsync(['run', ...args], { timeoutMs }));

function status(pid: number): string {
  return readFileSync(`/proc/${pid}/status`, 'utf8');
}

function field(st: string, key: string): string {
  return new RegExp(`^${key}:[ \\t]*(.*)$`, 'm').exec(st)?.[1].trim() ?? `no ${key}`;
}

interface Live {
  /** The process `tendril run` became: the waiter (exec mode), or the monitor (--supervise: a child of Node). */
  parent: number;
  init: number;
  guest: number;
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts an isolated guest and waits for its shape: the parent with two
 * children, the pid namespace's init (NSpid … 1) and the guest (NSpid … 2,
 * its filter installed).
 */
async function startIsolated(args: string[], wrap: string[] = []): Promise<Live> {
  const argv = [...wrap, process.execPath, TENDRIL, 'run', '--isolate', ...args];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const supervised = args.includes('--supervise');
  // A launch that never takes shape is killed here: nothing a test starts may outlive it.
  const shape = await waitFor('the isolated guest to run', () => {
    const parent = supervised ? childrenOf(child.pid!)[0] : child.pid!;
    if (parent === undefined) return undefined;
    const kids = childrenOf(parent);
    if (kids.length !== 2) return undefined;
    const [init, g] = [...kids].sort((a, b) => a - b);
    return /\s2$/.test(field(status(g), 'NSpid')) && field(status(g), 'Seccomp') === '2' && { parent, init, guest: g };
  }, 30_000).catch(async (e: Error) => {
    child.kill('SIGKILL');
    await exited;
    throw e;
  });
  return { ...shape, child, exited };
}

/** The cgroup directories of pid, per controller, read from /proc (v1 lines name theirs, v2 is "0::"). */
function cgroupDirs(pid: number): Map<string, string> {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').map((l) => {
    const [left, right] = l.split(' - ');
    if (!right) return undefined;
    const [fstype, , opts] = right.split(' ');
    return { point: left.split(' ')[4], fstype, opts: opts.split(',') };
  }).filter((m) => m !== undefined);
  const out = new Map<string, string>();
  for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n')) {
    const [id, ctls, path] = line.split(':');
    if (id === '0') {
      const m = mounts.find((x) => x.fstype === 'cgroup2');
      if (m) for (const c of (readFileSync(join(m.point, path, 'cgroup.controllers'), 'utf8').trim().split(/\s+/))) if (c) out.set(c, join(m.point, path));
    } else {
      for (const c of ctls.split(',')) {
        const m = mounts.find((x) => x.fstype === 'cgroup' && x.opts.includes(c));
        if (m) out.set(c, join(m.point, path));
      }
    }
  }
  return out;
}

const isV2 = (dir: string) => existsSync(join(dir, 'cgroup.controllers'));

// ---------------------------------------------------------------------------
// A live isolated guest

test('a live isolated guest: unprivileged ids, no capabilities, no_new_privs, seccomp; its init is pid 1, it is pid 2', async (t) => {
  const g = await startIsolated(['--mem=4', guest('test_memhog'), '--solo5:quiet', '1', 'hold']);
  try {
    const st = status(g.guest);
    for (const k of ['Uid', 'Gid']) t.is(field(st, k), Array(4).fill(GUEST_ID).join('\t'), k);
    t.is(field(st, 'Groups'), '');
    for (const k of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) t.is(field(st, k), '0000000000000000', k);
    t.is(field(st, 'NoNewPrivs'), '1');
    t.is(field(st, 'Seccomp'), '2');
    t.is(field(st, 'NSpid'), `${g.guest}\t2`);
    // Its fds are those of any guest: stdio, the epoll set and the timer.
    t.deepEqual(readdirSync(`/proc/${g.guest}/fd`).map(Number).sort((a, b) => a - b), [0, 1, 2, 3, 4]);
    // The init: pid 1 of the namespace, as unprivileged, holding nothing.
    const ist = status(g.init);
    t.is(field(ist, 'NSpid'), `${g.init}\t1`);
    t.is(field(ist, 'Uid'), Array(4).fill(GUEST_ID).join('\t'));
    t.is(field(ist, 'CapBnd'), '0000000000000000');
    t.is(field(ist, 'NoNewPrivs'), '1');
    t.deepEqual(readdirSync(`/proc/${g.init}/fd`), []);
    // The waiter the shell knows stays root and outside, holding stdio only.
    t.is(readlinkSync(`/proc/${g.parent}/ns/pid`), readlinkSync('/proc/self/ns/pid'));
    t.deepEqual(readdirSync(`/proc/${g.parent}/fd`).map(Number).sort(), [0, 1, 2]);
  } finally {
    g.child.kill('SIGKILL');
  }
  await g.exited;
});

test('a live isolated guest: every namespace differs from the host\'s, its root is an empty read-only tmpfs', async (t) => {
  const g = await startIsolated(['--mem=4', guest('test_memhog'), '--solo5:quiet', '1', 'hold']);
  try {
    for (const ns of ['pid', 'mnt', 'net', 'ipc', 'uts', 'cgroup']) {
      t.not(readlinkSync(`/proc/${g.guest}/ns/${ns}`), readlinkSync(`/proc/self/ns/${ns}`), ns);
    }
    // The init made and holds them; the guest joined them.
    for (const ns of ['pid', 'mnt', 'net', 'ipc', 'uts', 'cgroup']) t.is(readlinkSync(`/proc/${g.init}/ns/${ns}`), readlinkSync(`/proc/${g.guest}/ns/${ns}`), ns);
    t.deepEqual(readdirSync(`/proc/${g.guest}/root`), []);
    const mounts = readFileSync(`/proc/${g.guest}/mountinfo`, 'utf8').trim().split('\n');
    t.is(mounts.length, 1, mounts.join('\n'));
    t.regex(mounts[0], / \/ ro,nosuid,nodev,noexec[^ ]* .*- tmpfs /);
    t.is(statSync(`/proc/${g.guest}/root`).mode & 0o777, 0);
  } finally {
    g.child.kill('SIGKILL');
  }
  await g.exited;
});

test('a live isolated guest: its own cgroups hold its limits (memory = --mem + margin, pids 2: it and its parent, --cpus quota), and go when it ends', async (t) => {
  const g = await startIsolated(['--mem=8', '--cpus=0.5', guest('test_memhog'), '--solo5:quiet', '1', 'hold']);
  let dirs: Map<string, string>;
  try {
    dirs = cgroupDirs(g.guest);
    const mem = dirs.get('memory');
    const pids = dirs.get('pids');
    const cpu = dirs.get('cpu');
    t.truthy(mem && pids && cpu, [...dirs].join(' '));
    const kind = isV2(mem!) ? 'v2' : 'v1';
    t.log(`on this host: memory in cgroup ${kind} (${mem}), pids in ${isV2(pids!) ? 'v2' : 'v1'}, cpu in ${isV2(cpu!) ? 'v2' : 'v1'}`);
    for (const d of [mem!, pids!, cpu!]) t.regex(d, /\/tendril-\d+-\d+-\d+$/);
    const expected = (8 << 20) + (2 << 20) + ((8 << 20) / 256);
    t.is(Number(readFileSync(join(mem!, isV2(mem!) ? 'memory.max' : 'memory.limit_in_bytes'), 'utf8')), expected);
    t.is(readFileSync(join(pids!, 'pids.max'), 'utf8').trim(), '2');
    if (isV2(cpu!)) t.is(readFileSync(join(cpu!, 'cpu.max'), 'utf8').trim(), '50000 100000');
    else t.is(readFileSync(join(cpu!, 'cpu.cfs_quota_us'), 'utf8').trim(), '50000');
    // The guest and its parent (which joined first, so the guest was born there); the init is elsewhere.
    t.deepEqual(readFileSync(join(pids!, 'cgroup.procs'), 'utf8').trim().split('\n').map(Number).sort(), [g.parent, g.guest].sort());
    t.not(cgroupDirs(g.init).get('pids'), pids);
    // No room for a third process (and the guest's uid may have none: RLIMIT_NPROC 0).
    t.regex(readFileSync(`/proc/${g.guest}/limits`, 'utf8'), /^Max processes\s+0\s+0\s/m);
  } finally {
    g.child.kill('SIGTERM');
  }
  const end = await g.exited;
  t.is(end.signal, 'SIGTERM', 'the waiter passed SIGTERM on and ended the way the guest did');
  const ours = [...new Set(dirs!.values())].filter((d) => /\/tendril-[\d-]+$/.test(d));
  t.is(ours.length, isV2(dirs!.get('memory')!) ? 1 : 3);
  for (const d of ours) t.false(existsSync(d), `${d} was removed`);
});

test('exec mode: SIGTERM to the guest itself is 143 (it is pid 2, not an init that would ignore it); so is SIGTERM to the pid the shell knows', async (t) => {
  for (const target of ['guest', 'parent'] as const) {
    const g = await startIsolated(['--mem=4', guest('test_memhog'), '--solo5:quiet', '1', 'hold']);
    process.kill(target === 'guest' ? g.guest : g.parent, 'SIGTERM');
    const r = await Promise.race([g.exited, new Promise<'hung'>((res) => setTimeout(() => res('hung'), 20_000))]);
    if (r === 'hung') g.child.kill('SIGKILL');
    t.deepEqual(r, { code: null, signal: 'SIGTERM' }, target);
  }
});

const NEWPGRP = join(ROOT, 'tests/tools/build/newpgrp');

test('exec mode, as a shell job: SIGTSTP to the pid the shell knows stops the guest and then it; a stop of the guest stops it too; SIGCONT resumes both', async (t) => {
  // A process group of its own in our session, as a job-control shell makes: not orphaned, so SIGTSTP stops.
  const g = await startIsolated(['--mem=4', guest('test_memhog'), '--solo5:quiet', '1', 'hold'], [NEWPGRP]);
  const state = (pid: number) => field(status(pid), 'State')[0];
  try {
    for (const [target, sig] of [[g.parent, 'SIGTSTP'], [g.guest, 'SIGSTOP']] as const) {
      process.kill(target, sig);
      await waitFor(`both to stop after ${sig}`, () => state(g.parent) === 'T' && state(g.guest) === 'T');
      process.kill(g.parent, 'SIGCONT');
      await waitFor(`both to run again after ${sig}`, () => state(g.parent) !== 'T' && state(g.guest) !== 'T');
    }
    t.pass();
  } finally {
    g.child.kill('SIGKILL');
  }
  await g.exited;
});

test('--supervise: the monitor attaches before the uid change and still reports the guest (pid 2 of its namespace)', async (t) => {
  const g = await startIsolated(['--supervise', '--mem=4', guest('test_memhog'), '--solo5:quiet', '1', 'hold']);
  try {
    t.is(field(status(g.guest), 'TracerPid'), String(g.parent));
    t.is(field(status(g.parent), 'Uid').split('\t')[0], '0');
  } finally {
    process.kill(g.guest, 'SIGKILL');
  }
  const end = await g.exited;
  t.is(end.signal, 'SIGKILL');
});

// ---------------------------------------------------------------------------
// Memory: the cgroup stops the guest, not the host

test('a guest touching more memory than its cgroup allows is stopped by the cgroup\'s OOM killer (137, and --supervise says so)', async (t) => {
  const [sup, exec, fits] = await Promise.all([
    run(['--isolate', '--supervise', '--mem=64', '--mem-limit=16', guest('test_memhog'), '--solo5:quiet']),
    run(['--isolate', '--mem=64', '--mem-limit=16', guest('test_memhog'), '--solo5:quiet']),
    // All of its memory, with the default limit: the margin is enough for every page it can touch.
    run(['--isolate', '--supervise', '--mem=64', guest('test_memhog'), '--solo5:quiet']),
  ]);
  for (const r of [sup, exec]) {
    t.is(r.status, 137, r.stdout + r.stderr);
    t.regex(r.stdout, /touched 1 MiB\n/);
    t.notRegex(r.stdout, /SUCCESS|touched 1[6-9] MiB/);
  }
  // The monitor read the cgroup's own oom_kill count: the kill was the cgroup's.
  t.is(sup.stderr, 'tendril: guest touched more memory than its cgroup allows (--mem-limit, or --mem plus a margin); the cgroup\'s OOM killer stopped it (SIGKILL)\n');
  t.is(exec.stderr, '');
  t.is(fits.status, 0, fits.stdout + fits.stderr);
  t.regex(fits.stdout, /touched 6[0-9] MiB\nSUCCESS/);
});

// ---------------------------------------------------------------------------
// Same results with and without isolation

function same(t: ExecutionContext, plain: RunResult, isolated: RunResult, what: string): void {
  t.is(isolated.status, plain.status, `${what}: ${isolated.stdout.slice(-300)}${isolated.stderr}`);
  t.is(isolated.stdout, plain.stdout, what);
  t.is(isolated.stderr, plain.stderr, what);
}

const REFERENCE: [string, string[]][] = [
  ['test_hello', ['Hello_Solo5']], ['test_quiet', ['--solo5:quiet']], ['test_output', ['Output_Solo5']], ['test_globals', []],
  ['test_exception', []], ['test_zeropage', []], ['test_xnow', []], ['test_wnox', []], ['test_notls', []], ['test_rnow', []],
  ['test_rnox', []], ['test_xnor', []], ['test_tls', []], ['test_ssp', []], ['test_fpu', []], ['test_seccomp', []],
  ['test_exit', ['7']], ['test_exit', ['300']], ['test_exit', ['abort']], ['test_abort', []], ['test_illegal', []], ['test_stackoverflow', []],
  ['test_cmdline', ['a', 'b c']],
];

for (const [name, args] of REFERENCE) {
  test(`reference guest ${name} ${args.join(' ')}: the same status and output under --isolate`, async (t) => {
    const [plain, isolated] = await Promise.all([run(['--mem=2', guest(name), ...args]), run(['--isolate', '--mem=2', guest(name), ...args])]);
    same(t, plain, isolated, name);
  });
}

test('test_blk and test_blk_ro: disks work the same under --isolate (their fds outlive the empty root)', async (t) => {
  await withTempDir(async (dir) => {
    for (const [name, opt] of [['test_blk', '--block'], ['test_blk_ro', '--block-ro']] as const) {
      const results: RunResult[] = [];
      for (const iso of [[], ['--isolate']]) {
        const disk = join(dir, `${name}${iso.length}.img`);
        writeFileSync(disk, Buffer.alloc(1 << 20, 0x5a));
        results.push(await run([...iso, '--mem=2', `${opt}:storage=${disk}`, guest(name)]));
      }
      same(t, results[0], results[1], name);
      t.regex(results[1].stdout, /SUCCESS/);
    }
  });
});

const HOSTILE: [string, string[]][] = [
  // Calls a jailer cares about: files, processes, ids, namespaces, mounts, signals, tracing.
  ...[2, 56, 57, 59, 62, 101, 105, 155, 161, 165, 272, 308, 317, 425, 434, 444].map((nr): [string, string[]] => ['hostile_syscall', [String(nr)]]),
  ['hostile_abi', ['x32-write']], ['hostile_abi', ['int80-write']], ['hostile_args', ['write-fd0']], ['hostile_args', ['read-fd0']],
  ['hostile_mem', ['open-file']], ['hostile_mem', ['openat-file']], ['hostile_mem', ['mmap']], ['hostile_mem', ['read-stub']],
  ['hostile_mem', ['exec-stack']], ['hostile_mem', ['exec-trampoline']],
];

for (const [name, args] of HOSTILE) {
  test(`hostile ${name} ${args.join(' ')}: killed the same way under --isolate`, async (t) => {
    const [plain, isolated] = await Promise.all([
      run(['--mem=2', guest(name), '--solo5:quiet', ...args]), run(['--isolate', '--mem=2', guest(name), '--solo5:quiet', ...args]),
    ]);
    same(t, plain, isolated, name);
    t.true([159, 139].includes(isolated.status), `status ${isolated.status}`);
    t.notRegex(isolated.stdout, /ESCAPED/);
  });
}

test('--supervise under --isolate: the same reason lines (the monitor works across the uid change)', async (t) => {
  for (const name of ['test_seccomp', 'test_exception', 'test_illegal']) {
    const [plain, isolated] = await Promise.all([run(['--supervise', '--mem=2', guest(name)]), run(['--isolate', '--supervise', '--mem=2', guest(name)])]);
    same(t, plain, isolated, name);
    t.regex(isolated.stderr, /^tendril: guest /);
  }
});

// ---------------------------------------------------------------------------
// Network: an open tap fd works from an empty network namespace

test.serial('test_net under --isolate: the tap opened before the guest moved to its empty network namespace serves a ping flood', async (t) => {
  t.timeout(120_000);
  await withNetns(t, [{ name: 'tap100', addr: '10.0.0.1/24' }], async (ns) => {
    let guestNet: string | undefined;
    const flood = await guestWithFlood(ns, {
      tendrilArgs: ['run', '--isolate', '--mem=2', '--net:service0=tap100', guest('test_net'), '2000'],
      floods: [{ addr: '10.0.0.2', count: 2000, deadlineS: 60 }],
      onReady: async (g) => {
        const pid = await waitFor('the isolated guest', () => childrenOf(g.pid).find((p) => /\s2$/.test(field(status(p), 'NSpid'))));
        guestNet = readlinkSync(`/proc/${pid}/ns/net`);
      },
    });
    t.is(flood.guest.status, 0, flood.guest.stdout.slice(-500) + flood.guest.stderr);
    t.regex(flood.pings[0]?.stdout ?? '', /2000 packets transmitted, 2000 received, 0% packet loss/);
    // The guest was in a namespace of its own, not the test's (where its tap is) nor the host's.
    const tapNs = `net:[${statSync(`/run/netns/${ns.name}`).ino}]`;
    t.truthy(guestNet);
    t.not(guestNet, tapNs);
    t.not(guestNet, readlinkSync('/proc/self/ns/net'));
  });
});

// ---------------------------------------------------------------------------
// Layers the host lacks: reported one line each; strict refuses

/** What the test itself sees of this host, to name the real outcome. */
function hostLayers(): { cgroupMounts: boolean; landlock: number } {
  const mi = readFileSync('/proc/self/mountinfo', 'utf8');
  return { cgroupMounts: / - cgroup2? /.test(mi), landlock: landlockAbi() };
}

test('--isolate=strict on this host: runs when every layer is here, names each missing one otherwise', async (t) => {
  const h = hostLayers();
  const r = await run(['--isolate=strict', '--mem=2', guest('test_hello'), 'Hello_Solo5']);
  if (h.cgroupMounts && h.landlock > 0) {
    t.log(`this host: cgroups mounted, Landlock ABI ${h.landlock}: strict runs`);
    t.is(r.status, 0, r.stderr);
    t.regex(r.stdout, /SUCCESS/);
    t.is(r.stderr, '');
  } else {
    t.log(`this host: ${h.cgroupMounts ? '' : 'no cgroup mounts; '}${h.landlock > 0 ? '' : 'no Landlock; '}strict refuses`);
    t.is(r.status, 1);
    t.regex(r.stderr, /--isolate=strict: this host cannot provide/);
    if (h.landlock <= 0) t.regex(r.stderr, /^tendril: isolate: no landlock: /m);
  }
});

/** `tendril ARGS` in a private mount namespace where `setup` (shell) has run first. */
function inMountNs(setup: string, args: string[]): Promise<RunResult> {
  const quoted = [process.execPath, TENDRIL, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  return pool.run(() => runCmdAsync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `${setup} && exec ${quoted}`], { timeoutMs: 30_000 }));
}

/** Unmounts every cgroup hierarchy (v1 and v2) in the private namespace: no cgroup layer left to find. */
const NO_CGROUPS = "awk '$9 ~ /^cgroup2?$/ {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount";

test('with no cgroup hierarchy mounted: --isolate runs and says, one line each, that memory and pids are missing; strict refuses', async (t) => {
  const [loose, strict, cpus] = await Promise.all([
    inMountNs(NO_CGROUPS, ['run', '--isolate', '--mem=2', guest('test_hello'), 'Hello_Solo5']),
    inMountNs(NO_CGROUPS, ['run', '--isolate=strict', '--mem=2', guest('test_hello'), 'Hello_Solo5']),
    inMountNs(NO_CGROUPS, ['run', '--isolate=strict', '--cpus=1', '--mem=2', guest('test_hello'), 'Hello_Solo5']),
  ]);
  t.is(loose.status, 0, loose.stderr);
  t.regex(loose.stdout, /SUCCESS/);
  const lines = loose.stderr.trim().split('\n');
  t.deepEqual(lines.map((l) => /^tendril: isolate: no (cgroup \w+): /.exec(l)?.[1]), ['cgroup memory', 'cgroup pids'], loose.stderr);
  t.is(strict.status, 1);
  t.is(strict.stdout, '');
  const sl = strict.stderr.trim().split('\n');
  t.is(sl.length, 3, strict.stderr);
  t.deepEqual(sl.slice(0, 2), lines);
  t.regex(sl[2], /^tendril: --isolate=strict: this host cannot provide 2 layers: cgroup memory, cgroup pids; /);
  // With --cpus the cpu controller is a layer of the launch too.
  t.regex(cpus.stderr, /^tendril: isolate: no cgroup cpu: /m);
  t.regex(cpus.stderr, /cannot provide 3 layers: cgroup memory, cgroup pids, cgroup cpu;/);
});

test('with user.max_net_namespaces 0: no network namespace, reported on one line; the guest runs without it, strict refuses', async (t) => {
  await withTempDir(async (dir) => {
    const zero = join(dir, 'zero');
    writeFileSync(zero, '0\n');
    const setup = `mount --bind ${zero} /proc/sys/user/max_net_namespaces`;
    const [loose, strict] = await Promise.all([
      inMountNs(setup, ['run', '--isolate', '--mem=2', guest('test_hello'), 'Hello_Solo5']),
      inMountNs(setup, ['run', '--isolate=strict', '--mem=2', guest('test_hello'), 'Hello_Solo5']),
    ]);
    t.is(loose.status, 0, loose.stderr);
    t.is(loose.stderr, 'tendril: isolate: no network namespace: user.max_net_namespaces is 0\n');
    t.is(strict.status, 1);
    t.regex(strict.stderr, /^tendril: isolate: no network namespace: user\.max_net_namespaces is 0\ntendril: --isolate=strict: this host cannot provide a layer: network namespace; /);
  });
});

// ---------------------------------------------------------------------------
// inspect and filter show the layers; options are checked

test('tendril inspect and tendril filter list the layers --isolate would apply on this host', async (t) => {
  const [inspect, json, filter, bare] = await Promise.all([
    pool.run(() => tendrilAsync(['inspect', '--mem=2', guest('test_hello')])),
    pool.run(() => tendrilAsync(['inspect', '--json', '--mem=2', guest('test_hello')])),
    pool.run(() => tendrilAsync(['filter', '--isolate', '--cpus=0.25', '--mem=2', guest('test_hello')])),
    inMountNs(NO_CGROUPS, ['inspect', '--mem=2', guest('test_hello')]),
  ]);
  for (const r of [inspect, filter]) {
    t.is(r.status, 0, r.stderr);
    for (const name of ['uid/gid', 'capabilities', 'pid namespace', 'mount namespace', 'network namespace', 'landlock', 'cgroup memory', 'cgroup pids', 'seccomp']) {
      t.regex(r.stdout, new RegExp(`^  ${name.replace('/', '\\/')} +\\S`, 'm'), name);
    }
  }
  t.regex(filter.stdout, /^ {2}cgroup cpu +.*quota 0\.25 CPU/m);
  const layers = (JSON.parse(json.stdout) as { isolation: { name: string; ok: boolean }[] }).isolation;
  t.true(layers.some((l) => l.name === 'seccomp' && l.ok));
  t.regex(bare.stdout, /^ {2}cgroup memory +MISSING: /m);
  t.regex(bare.stdout, /isolation: with --isolate on this host \(2 missing; --isolate=strict would refuse\)/);
});

for (const [args, why] of [
  [['--uid=0'], /--uid=0.*id 0 is root/],
  [['--isolate', '--uid=x'], /--uid=x.*an id must be a number/],
  [['--uid=5'], /--uid=5.*only applies with --isolate/],
  [['--isolate=yes'], /--isolate=yes.*--isolate takes no value but =strict/],
  [['--isolate', '--cpus=0'], /--cpus=0.*between 0\.01 and 1024/],
  [['--isolate', '--gdb'], /--gdb.*cannot be combined with --isolate/],
  [['--isolate', '--cgroup-parent=rel'], /absolute path/],
] as const) {
  test(`run ${args.join(' ')}: one-line usage error`, async (t) => {
    const r = await run([...args, '--mem=2', guest('test_hello')]);
    t.is(r.status, 1);
    t.true(oneLine(r.stderr), r.stderr);
    t.regex(r.stderr, why);
    t.is(r.stdout, '');
  });
}

test('run by an unprivileged user: every layer that needs root is reported missing, one line each, and the guest runs under the others (Landlock)', async (t) => {
  // setpriv drops to nobody with no capability at all: the real outcome, not a simulation.
  const r = await pool.run(() => runCmdAsync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all',
    process.execPath, TENDRIL, 'run', '--isolate', '--mem=2', guest('test_hello'), 'Hello_Solo5'], { timeoutMs: 30_000 }));
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /SUCCESS/);
  const missing = r.stderr.trim().split('\n').map((l) => /^tendril: isolate: no ([^:]+): /.exec(l)?.[1]);
  // Landlock needs no privilege (only no_new_privs): it stays, where the kernel has it.
  const expected = ['uid/gid', 'capabilities', 'pid namespace', 'mount namespace', 'network namespace', 'ipc namespace', 'uts namespace',
    'cgroup namespace', ...(landlockAbi() > 0 ? [] : ['landlock']), 'cgroup memory', 'cgroup pids'];
  t.deepEqual(missing, expected, r.stderr);
  const strict = await pool.run(() => runCmdAsync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all',
    process.execPath, TENDRIL, 'run', '--isolate=strict', '--mem=2', guest('test_hello')], { timeoutMs: 30_000 }));
  t.is(strict.status, 1);
  t.regex(strict.stderr, new RegExp(`--isolate=strict: this host cannot provide ${expected.length} layers: uid/gid, capabilities, `));
});

test('ociIsolation: a bundle\'s namespaces, user and resources become the same layers, as run words that tendril run accepts', async (t) => {
  const { ociIsolation } = await import('../supervisor/isolate/oci.js');
  t.is(ociIsolation({ namespaces: [{ type: 'user' }] }), undefined, 'no namespace a jail has: no jail');
  const o = ociIsolation({
    namespaces: [{ type: 'pid' }, { type: 'network', path: '/var/run/netns/cni-1' }, { type: 'mount' }],
    user: { uid: 1234, gid: 0 }, resources: { cpu: { quota: 50000, period: 100000 } },
  })!;
  t.deepEqual(o.args, ['--isolate', '--uid=1234', '--cpus=0.5']);
  t.is(o.options.memLimitMiB, undefined, 'the container\'s memory limit is guest memory; the cgroup adds the margin');
  t.deepEqual(o.joinsIgnored, ['network']);
  // The words are run options: a guest runs under them, jailed as any other.
  const r = await run([...o.args, '--mem=2', guest('test_hello'), 'Hello_Solo5']);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /SUCCESS/);
});

test('--isolate with --record or --restore: one-line errors (not implemented together), before anything runs', async (t) => {
  await withTempDir(async (dir) => {
    const rec = await run(['--isolate', `--record=${join(dir, 'r.rec')}`, '--mem=2', guest('test_hello')]);
    t.is(rec.status, 1);
    t.true(oneLine(rec.stderr), rec.stderr);
    t.regex(rec.stderr, /--record.*cannot be combined with --isolate/);
    t.false(existsSync(join(dir, 'r.rec')));
    const restore = await run(['--isolate', `--restore=${dir}`]);
    t.is(restore.status, 1);
    t.true(oneLine(restore.stderr), restore.stderr);
    t.regex(restore.stderr, /--restore.*cannot be combined with --isolate/);
  });
});
