// Snapshots (docs/snapshots.md), for real: guests booted to their first
// blocking yield by `tendril snapshot create`, then continued by
// `tendril run --restore` in new processes with new devices, under the real
// kernel and the real filter. Every bad snapshot is refused with one line
// before anything runs (the disk shows the guest never ran).

import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, openSync, readSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compilePolicy } from '../filters/compile.js';
import { PlanFdMove, PlanHeader, PlanPoll, PlanRegion, PlanSection, RestoreHeader, SnapshotCpu } from '../loader/formats.js';
import { decodePlan, encodePlan } from '../loader/plan.js';
import { prepareRestore } from '../supervisor/snapshot/restore.js';
import { blockPolicy, corePolicy } from '../filters/policy.js';
import { guest, oneLine, Pool, ROOT, runCmd, runCmdAsync, STUB, TENDRIL, tendril, tendrilAsync, waitForGuest, withTempDir, type RunResult } from './helpers.js';
import { withNetns } from './netns.js';
import { SERVICE_DISK as DISK, serviceDisk as disk } from './fixtures/service-disk.js';

const pool = new Pool(2);
const run = (args: string[], timeoutMs = 60_000) => pool.run(() => tendrilAsync(args, { timeoutMs }));

/** test_snap_service's table entry i (its hash(), 32 rounds). */
function entry(i: number): number {
  let x = i >>> 0;
  for (let r = 0; r < 32; r++) {
    x = (x + r) >>> 0;
    x = (x ^ (x >>> 16)) >>> 0;
    x = Math.imul(x, 0x7feb352d) >>> 0;
    x = (x ^ (x >>> 15)) >>> 0;
    x = Math.imul(x, 0x846ca68b) >>> 0;
    x = (x ^ (x >>> 16)) >>> 0;
  }
  return x;
}

const SERVICE_MIB = 4;
const SERVICE_MEM = 16;
const ENTRIES = SERVICE_MIB << 18;

/** What the service guest wrote to block 1 (its answer), '' if nothing. */
function answerOnDisk(p: string): string {
  return readFileSync(p).subarray(512, 1024).toString('latin1').replace(/\0+$/, '');
}

function meta(dir: string): Record<string, any> {
  return JSON.parse(readFileSync(join(dir, 'snapshot.json'), 'utf8'));
}

/** A refusal: exit 1, one line matching `why`, no guest output. */
function refused(t: ExecutionContext, r: RunResult, why: RegExp): void {
  t.is(r.status, 1, r.stdout + r.stderr);
  t.true(oneLine(r.stderr), JSON.stringify(r.stderr));
  t.regex(r.stderr, why);
  t.is(r.stdout, '', 'the guest never ran');
}

// One snapshot of the service guest, shared by the tests that only restore it.
let work: string;
let service: string;
let serviceCreate: RunResult;
let checksum: string;

test.before(async () => {
  work = runCmd('mktemp', ['-d', '/tmp/tendril-snapshot-test-XXXXXX']).stdout.trim();
  service = join(work, 'service.snap');
  serviceCreate = await tendrilAsync(['snapshot', 'create', '-o', service, `--mem=${SERVICE_MEM}`, `--block:storage=${disk(work, 'boot.img')}`,
    guest('test_snap_service'), '--solo5:quiet', String(SERVICE_MIB)]);
  checksum = /READY entries \d+ checksum (\d+)/.exec(serviceCreate.stdout)?.[1] ?? 'missing';
});

test.after.always(() => {
  if (work) runCmd('rm', ['-rf', work]);
});

test('snapshot create stops the guest at its first blocking yield, prints one line and writes a sparse snapshot', (t) => {
  const r = serviceCreate;
  t.is(r.status, 0, r.stdout + r.stderr);
  t.regex(r.stdout, new RegExp(`READY entries ${ENTRIES} checksum \\d+`));
  t.notRegex(r.stdout, /ANSWER/, 'stopped before the request was read');
  const line = r.stdout.split('\n').filter((l) => l.startsWith('tendril: snapshot'));
  t.is(line.length, 1);
  t.regex(line[0], new RegExp(`: [\\d.]+ [KM]iB in \\d+ pages of ${SERVICE_MEM} MiB guest memory .*yield 1, \\d+ ms`));
  t.is(r.stderr, '');
  const m = meta(service);
  t.is(m.format, 'tendril.snapshot');
  t.is(m.version, 1);
  t.is(m.point.syscall, 'epoll_pwait');
  t.deepEqual(m.devices, [{ name: 'storage', type: 'BLOCK_BASIC', capacity: String(DISK), blockSize: 512 }]);
  // Sparse: the file spans guest memory, but only what the guest wrote (its table, its image, a few pages) is stored.
  const st = statSync(join(service, 'memory'));
  t.is(st.size, SERVICE_MEM << 20);
  const tableBytes = SERVICE_MIB << 20;
  t.true(m.memory.pages * 4096 >= tableBytes && m.memory.pages * 4096 < tableBytes + (1 << 20), `${m.memory.pages} pages`);
  t.true(st.blocks * 512 < tableBytes + (2 << 20), `allocated ${st.blocks * 512} bytes`);
  t.false(readdirSync(work).some((f) => f.includes('.tmp-')), 'no temporary directory left');
});

test('a restored block guest reads its request and writes its answer to its own disk', async (t) => {
  await withTempDir(async (dir) => {
    const d = disk(dir, 'd.img', 123457);
    const r = await run(['run', `--restore=${service}`, `--block:storage=${d}`]);
    t.is(r.status, 0, r.stdout + r.stderr);
    const want = `ANSWER 123457 ${entry(123457 % ENTRIES)} checksum ${checksum}`;
    t.is(r.stdout, `${want}\n`, 'continues where it was: no boot banner, no READY, just the answer');
    t.is(answerOnDisk(d), `${want}\n`);
  });
});

test('many clones of one snapshot, each with its own disk, each give their own answer', async (t) => {
  await withTempDir(async (dir) => {
    const requests = Array.from({ length: 8 }, (_, i) => i * 7919 + 11);
    const results = await Promise.all(requests.map(async (k, i) => {
      const d = disk(dir, `clone${i}.img`, k);
      return { k, d, r: await run(['run', `--restore=${service}`, `--block:storage=${d}`]) };
    }));
    for (const { k, d, r } of results) {
      const want = `ANSWER ${k} ${entry(k % ENTRIES)} checksum ${checksum}\n`;
      t.is(r.status, 0, r.stdout + r.stderr);
      t.is(r.stdout, want);
      t.is(answerOnDisk(d), want);
    }
  });
});

test('--supervise and --at=yield:N: a clone under the monitor, from a snapshot taken at the second yield', async (t) => {
  await withTempDir(async (dir) => {
    const snap = join(dir, 'second.snap');
    const c = await run(['snapshot', 'create', '-o', snap, '--at=yield:2', '--mem=8', `--block:storage=${disk(dir, 'boot.img')}`,
      guest('test_snap_service'), '--solo5:quiet', '0']);
    t.is(c.status, 0, c.stdout + c.stderr);
    t.is(meta(snap).point.yield, 2);
    const d = disk(dir, 'd.img', 5);
    const r = await run(['run', '--supervise', `--restore=${snap}`, `--block:storage=${d}`]);
    t.is(r.status, 0, r.stdout + r.stderr);
    t.is(r.stdout, 'ANSWER 5 0 checksum 0\n');
    t.is(r.stderr, '');
  });
});

test('TLS, MXCSR and x87 modes, xmm (and ymm where there is AVX) and callee-saved registers survive the snapshot point', async (t) => {
  await withTempDir(async (dir) => {
    const snap = join(dir, 'cpu.snap');
    const c = await run(['snapshot', 'create', '-o', snap, '--mem=2', guest('test_snap_cpu'), '--solo5:quiet']);
    t.is(c.status, 0, c.stdout + c.stderr);
    t.notRegex(c.stdout, /SUCCESS|FAILURE/, 'stopped at the yield, before any check');
    const avx = readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:.*\bavx\b/m) !== null;
    for (const mode of [[], ['--supervise']]) {
      const r = await run(['run', ...mode, `--restore=${snap}`]);
      t.is(r.status, 0, r.stdout + r.stderr);
      t.is(r.stdout, `AVX: ${avx ? 'checked' : 'not available'}\nSUCCESS\n`, `host ${avx ? 'has' : 'lacks'} AVX`);
    }
    t.is(meta(snap).cpu.flags & 1, 1, 'an XSAVE area (this CPU has XSAVE)');
  });
});

test.serial('a net guest restored in another namespace, on another tap, answers pings with the snapshot\'s MAC; --net-mac rewrites the manifest copy', async (t) => {
  t.timeout(120_000);
  await withTempDir(async (dir) => {
    const snap = join(dir, 'net.snap');
    let mac = '';
    await withNetns(t, [{ name: 'tap100', addr: '10.0.0.1/24' }], async (ns) => {
      const c = await ns.tendril(['snapshot', 'create', '-o', snap, '--mem=2', '--net:service0=tap100', guest('test_net'), '5']).done;
      t.is(c.status, 0, c.stdout + c.stderr);
      mac = /MAC ([0-9a-f:]{17})/.exec(c.stdout)?.[1] ?? '';
    });
    t.is(meta(snap).devices[0].mac, mac);
    await withNetns(t, [{ name: 'tap200', addr: '10.0.0.1/24' }], async (ns) => {
      const g = ns.tendril(['run', `--restore=${snap}`, '--net:service0=tap200'], { timeoutMs: 60_000 });
      await waitForGuest(g.pid);
      // Four replies, the neighbour entry while the tap still has its guest (it goes when the tap loses carrier), then the fifth.
      const ping = await ns.run('ping', ['-c', '4', '-i', '0.2', '-w', '30', '10.0.0.2'], { timeoutMs: 40_000 });
      t.regex(ping.stdout, /4 packets transmitted, 4 received/, ping.stdout + ping.stderr);
      const neigh = await ns.run('ip', ['neigh', 'show', '10.0.0.2', 'dev', 'tap200']);
      t.regex(neigh.stdout, new RegExp(`lladdr ${mac}`), `the host learnt the snapshot's MAC: ${JSON.stringify(neigh)}`);
      const last = await ns.run('ping', ['-c', '1', '-w', '30', '10.0.0.2'], { timeoutMs: 40_000 });
      t.regex(last.stdout, /1 packets transmitted, 1 received/);
      const end = await g.done;
      t.is(end.status, 0, end.stdout + end.stderr);
      t.regex(end.stdout, /Limit reached, exiting\nSUCCESS/);
      t.notRegex(end.stdout, /Serving ping/, 'no second boot');
      // --net-mac: the manifest copy in guest memory gets the new MAC (entry 1, after the boot info and the manifest header).
      const other = '02:00:00:00:00:42';
      const g2 = ns.tendril(['run', `--restore=${snap}`, '--net:service0=tap200', `--net-mac:service0=${other}`], { timeoutMs: 60_000 });
      try {
        await waitForGuest(g2.pid);
        const entry = 0x11000 + 40 + 8 + 104 * 1;
        const fd = openSync(`/proc/${g2.pid}/mem`, 'r');
        const seen = Buffer.alloc(6);
        try {
          readSync(fd, seen, 0, 6, entry + 72);
        } finally {
          closeSync(fd);
        }
        t.is([...seen].map((b) => b.toString(16).padStart(2, '0')).join(':'), other);
      } finally {
        g2.kill();
      }
    });
  });
});

test('a restored guest runs under exactly the sandbox of a fresh one: the same filter, fds, limits, no stub left', async (t) => {
  await withTempDir(async (dir) => {
    // Idle guests (no request on their disks) of the same image and devices, one fresh, one restored.
    const snap = join(dir, 'idle.snap');
    const c = await run(['snapshot', 'create', '-o', snap, '--mem=8', `--block:storage=${disk(dir, 'boot.img')}`, guest('test_snap_service'), '--solo5:quiet', '0']);
    t.is(c.status, 0, c.stdout + c.stderr);
    const listing = tendril(['filter', '--bpf', '--mem=8', `--block:storage=${disk(dir, 'f.img')}`, guest('test_snap_service')]);
    const shown = [...listing.stdout.matchAll(/^\d{4}: ([0-9a-f]{4}) +(\d+) +(\d+) 0x([0-9a-f]{8})/gm)]
      .map((m) => `${m[1]} ${Number(m[2]).toString(16).padStart(2, '0')} ${Number(m[3]).toString(16).padStart(2, '0')} ${m[4]}`);
    t.true(shown.length > 40);
    const look = async (args: string[]) => {
      const child = spawn(process.execPath, [TENDRIL, ...args], { stdio: 'ignore' });
      try {
        const status = await waitForGuest(child.pid!);
        const fds = readdirSync(`/proc/${child.pid}/fd`).sort().map((fd) => `${fd} ${readlinkSync(`/proc/${child.pid}/fd/${fd}`).replace(/\/.*\.img$/, 'DISK')}`);
        const limits = readFileSync(`/proc/${child.pid}/limits`, 'utf8');
        const maps = readFileSync(`/proc/${child.pid}/maps`, 'utf8');
        const filter = runCmd(join(ROOT, 'tests/tools/build/seccomp-dump'), [String(child.pid)]).stdout.trim().split('\n');
        return { nnp: /^NoNewPrivs:\s+1$/m.test(status), fds, limits, stub: /^7e0000/m.test(maps), filter };
      } finally {
        child.kill('SIGKILL');
      }
    };
    const fresh = await look(['run', '--mem=8', `--block:storage=${disk(dir, 'fresh.img')}`, guest('test_snap_service'), '--solo5:quiet', '0']);
    const restored = await look(['run', `--restore=${snap}`, `--block:storage=${disk(dir, 'restored.img')}`]);
    t.deepEqual(restored.filter, shown, 'the filter tendril filter shows for a fresh guest');
    t.deepEqual(restored.filter, fresh.filter);
    t.true(restored.nnp);
    t.deepEqual(restored.fds, fresh.fds);
    t.is(restored.limits, fresh.limits);
    t.false(restored.stub);
  });
});

/** Runs a classic BPF program of the kinds libseccomp emits over a struct seccomp_data; returns the action. */
function runBpf(bpf: Buffer, data: Buffer): number {
  let a = 0;
  let pc = 0;
  for (let steps = 0; steps < 100_000; steps++) {
    const code = bpf.readUInt16LE(pc * 8);
    const jt = bpf[pc * 8 + 2];
    const jf = bpf[pc * 8 + 3];
    const k = bpf.readUInt32LE(pc * 8 + 4);
    switch (code) {
      case 0x20: a = data.readUInt32LE(k); pc++; break; // ld [k]
      case 0x15: pc += 1 + (a === k ? jt : jf); break; // jeq
      case 0x25: pc += 1 + (a > k ? jt : jf); break; // jgt
      case 0x35: pc += 1 + (a >= k ? jt : jf); break; // jge
      case 0x45: pc += 1 + ((a & k) !== 0 ? jt : jf); break; // jset
      case 0x05: pc += 1 + k; break; // ja
      case 0x54: a = (a & k) >>> 0; pc++; break; // and
      case 0x06: return k; // ret
      default: throw new Error(`BPF op 0x${code.toString(16)} not modelled`);
    }
  }
  throw new Error('BPF program did not return');
}

test('the filter of a guest being snapshotted decides every call as the fresh one does, only the yield calls\' ALLOW becoming TRACE', (t) => {
  const capacity = 1n << 20n;
  const policy = { rules: [...corePolicy({ epollfd: 3, timerfd: 4 }), ...blockPolicy('storage', 5, 512, capacity)] };
  const plain = compilePolicy(policy).bpf;
  const traced = compilePolicy(policy, { trace: ['epoll_pwait', 'timerfd_settime'] }).bpf;
  const ALLOW = 0x7fff0000;
  const TRACE = (nr: number) => (0x7ff00000 | nr) >>> 0;
  // Argument values around every boundary the rules draw (fds, clocks, sizes, offsets, high bits).
  const values = [0n, 1n, 2n, 3n, 4n, 5n, 6n, 0x1002n, 511n, 512n, 513n, capacity - 512n, capacity - 511n, capacity, (1n << 32n) | 3n,
    (1n << 32n) | 4n, (1n << 32n) | 5n, 1n << 63n, (1n << 64n) - 1n];
  let seed = 12345;
  const pick = () => values[(seed = (seed * 1103515245 + 12345) >>> 0) % values.length];
  const data = Buffer.alloc(64);
  const counts = { allowed: 0, traced: 0, killed: 0 };
  for (const arch of [0xc000003e, 0x40000003]) {
    for (let nr = 0; nr < 340; nr++) {
      for (const x32 of [0, 0x40000000]) {
        for (let n = 0; n < ([0, 1, 17, 18, 158, 228, 231, 281, 286].includes(nr) ? 400 : 8); n++) {
          data.writeUInt32LE((nr | x32) >>> 0, 0);
          data.writeUInt32LE(arch, 4);
          // Mostly well-formed first arguments, so the allowed paths are taken too.
          for (let i = 0; i < 6; i++) data.writeBigUInt64LE(pick(), 16 + 8 * i);
          const p = runBpf(plain, data);
          const q = runBpf(traced, data);
          const expected = p === ALLOW && (nr === 281 || nr === 286) && x32 === 0 && arch === 0xc000003e ? TRACE(nr) : p;
          if (q !== expected) {
            t.fail(`nr ${nr | x32} arch 0x${arch.toString(16)} args ${data.subarray(16).toString('hex')}: fresh 0x${p.toString(16)}, snapshotting 0x${q.toString(16)}`);
            return;
          }
          counts[q === ALLOW ? 'allowed' : q === p ? 'killed' : 'traced']++;
        }
      }
    }
  }
  t.true(counts.allowed > 100 && counts.traced > 50 && counts.killed > 1000, JSON.stringify(counts));
});

// --- Refusals --------------------------------------------------------------

/** A copy of the service snapshot's metadata (its memory file linked), changed by `spoil`. */
function spoiled(dir: string, spoil: (snap: string, m: Record<string, any>) => Record<string, any> | void): string {
  const snap = join(dir, 'bad.snap');
  mkdirSync(snap);
  copyFileSync(join(service, 'snapshot.json'), join(snap, 'snapshot.json'));
  chmodSync(join(snap, 'snapshot.json'), 0o644);
  symlinkSync(join(service, 'memory'), join(snap, 'memory'));
  const m = meta(snap);
  const out = spoil(snap, m);
  if (out) writeFileSync(join(snap, 'snapshot.json'), JSON.stringify(out));
  return snap;
}

const BAD: [string, (snap: string, m: Record<string, any>) => Record<string, any> | void, RegExp][] = [
  ['a truncated memory file', (snap) => {
    unlinkSync(join(snap, 'memory'));
    writeFileSync(join(snap, 'memory'), '');
    truncateSync(join(snap, 'memory'), 10 << 20);
  }, new RegExp(`memory is 10485760 bytes, but the snapshot's guest memory is ${SERVICE_MEM << 20} bytes: the memory file is truncated`)],
  ['a header from another format version', (_, m) => ({ ...m, version: 2 }), /snapshot format version 2, but this tendril reads version 1/],
  ['writable and executable memory without --x-exec-heap', (_, m) => {
    m.memory.regions[m.memory.regions.length - 1].prot = 'rwx';
    return m;
  }, /memory region 0x[0-9a-f]+-0x[0-9a-f]+ is writable and executable, but the snapshot was not made with --x-exec-heap/],
  ['memory outside the guest memory range', (_, m) => ({ ...m, memory: { ...m.memory, regions: [...m.memory.regions, { vaddr: '0x20000000', length: '0x1000', prot: 'rw-' }] } }),
    /memory region 0x20000000-0x20001000 lies outside guest memory \[0x10000, 0x1000000\)/],
  ['an unaligned region', (_, m) => {
    m.memory.regions[0].vaddr = '0x11800';
    return m;
  }, /memory region 0x11800-.* is not page aligned/],
  ['a resume point outside executable memory', (_, m) => ({ ...m, cpu: { ...m.cpu, rip: '0x11000' } }), /the resume point 0x11000 is not in executable memory/],
  ['flags user code cannot set (the trap flag)', (_, m) => ({ ...m, cpu: { ...m.cpu, rflags: '0x346' } }), /cpu.rflags 0x346 has bits user code cannot set/],
  ['an unknown field', (_, m) => ({ ...m, extra: 1 }), /unknown field extra/],
  ['an empty metadata file', (snap) => truncateSync(join(snap, 'snapshot.json'), 0), /not valid JSON/],
];

for (const [what, spoil, why] of BAD) {
  test(`a snapshot with ${what} is refused with one line, nothing run`, async (t) => {
    await withTempDir(async (dir) => {
      const snap = spoiled(dir, spoil);
      const d = disk(dir, 'd.img', 1);
      refused(t, await run(['run', `--restore=${snap}`, `--block:storage=${d}`]), why);
      t.is(answerOnDisk(d), '', 'the guest never ran');
    });
  });
}

// The snapshot was made here, so its CPU words are this CPU's: a bit clear in them is a feature this CPU lacks.
const highestClear = (word: number) => [...Array(32).keys()].reverse().find((b) => ((word >>> b) & 1) === 0)!;

test('a snapshot from a CPU with features this one lacks is refused, naming the cpuid bits, nothing run', async (t) => {
  await withTempDir(async (dir) => {
    let bit = 0;
    const snap = spoiled(dir, (_, m) => {
      bit = highestClear(m.cpu.cpuid_7_ebx);
      return { ...m, cpu: { ...m.cpu, cpuid_7_ebx: (m.cpu.cpuid_7_ebx | (1 << bit)) >>> 0 } };
    });
    const d = disk(dir, 'd.img', 1);
    refused(t, await run(['run', `--restore=${snap}`, `--block:storage=${d}`]),
      new RegExp(`snapshot was made on a CPU with features this one lacks: cpuid 7 ebx bits 0x${(2 ** bit).toString(16)}`));
    t.is(answerOnDisk(d), '');
  });
});

test('a snapshot with XSAVE state components this CPU does not enable is refused, nothing run', async (t) => {
  await withTempDir(async (dir) => {
    let missing = 0n;
    const snap = spoiled(dir, (_, m) => {
      const xcr0 = BigInt(m.cpu.xcr0);
      missing = 1n << BigInt([...Array(20).keys()].slice(2).find((b) => !((xcr0 >> BigInt(b)) & 1n))!);
      return { ...m, cpu: { ...m.cpu, xcr0: `0x${(xcr0 | missing).toString(16)}` } };
    });
    const d = disk(dir, 'd.img', 1);
    refused(t, await run(['run', `--restore=${snap}`, `--block:storage=${d}`]),
      new RegExp(`snapshot uses CPU state components this CPU does not enable: XCR0 bits 0x${missing.toString(16)}`));
    t.is(answerOnDisk(d), '');
  });
});

test('a snapshot whose XSAVE layout differs from this CPU\'s is refused, naming the component, nothing run', async (t) => {
  await withTempDir(async (dir) => {
    const snap = spoiled(dir, (_, m) => {
      const layout = Buffer.from(m.cpu.xsave_layout, 'base64');
      layout.writeUInt32LE(layout.readUInt32LE(8 * 2) - 64, 8 * 2); // component 2 (AVX here) moved, still inside the area
      return { ...m, cpu: { ...m.cpu, xsave_layout: layout.toString('base64') } };
    });
    const d = disk(dir, 'd.img', 1);
    const r = await run(['run', `--restore=${snap}`, `--block:storage=${d}`]);
    if ((BigInt(meta(service).cpu.xcr0) & 4n) === 0n) {
      t.is(r.status, 0, 'this CPU has no AVX state: component 2 is not part of the snapshot, its layout does not matter');
      return;
    }
    refused(t, r, /snapshot's XSAVE layout differs from this CPU's: component 2 at \d+ \(\d+ bytes\), here at \d+/);
    t.is(answerOnDisk(d), '');
  });
});

test('a disk of another capacity than the guest read is refused, naming both sizes', async (t) => {
  await withTempDir(async (dir) => {
    const d = disk(dir, 'd.img', 1, 2 * DISK);
    refused(t, await run(['run', `--restore=${service}`, `--block:storage=${d}`]),
      new RegExp(`device 'storage': the disk holds ${2 * DISK} bytes, but the guest read a capacity of ${DISK} bytes before the snapshot`));
    t.is(answerOnDisk(d), '');
  });
});

test('another sector size than the guest read is refused', async (t) => {
  await withTempDir(async (dir) => {
    const d = disk(dir, 'd.img', 1);
    refused(t, await run(['run', `--restore=${service}`, '--block-sector-size:storage=4096', `--block:storage=${d}`]),
      /device 'storage': sector size 4096, but the guest read 512 before the snapshot/);
  });
});

for (const [what, args, why] of [
  ['--mem', ['--mem=64'], /--mem.*fixed by the snapshot/],
  ['--x-exec-heap', ['--x-exec-heap'], /--x-exec-heap.*fixed by the snapshot/],
  ['guest arguments', ['GUEST.spt', 'arg'], /--restore takes no GUEST or guest arguments/],
  ['a missing device', [], /Device 'storage' of type BLOCK_BASIC declared but not attached/],
] as const) {
  test(`run --restore refuses ${what}`, async (t) => {
    const r = await run(['run', `--restore=${service}`, ...(what === 'a missing device' ? [] : ['--block:storage=/dev/null']), ...args]);
    refused(t, r, why);
  });
}

test('a guest that ends before the point: exit 1, the reason, nothing written', async (t) => {
  await withTempDir(async (dir) => {
    const out = join(dir, 'none.snap');
    const r = await run(['snapshot', 'create', '-o', out, '--mem=2', guest('test_exit'), '--solo5:quiet', '7']);
    t.is(r.status, 1);
    t.true(oneLine(r.stderr), r.stderr);
    t.regex(r.stderr, /guest exited with status 7 before reaching its first yield with a deadline in the future; nothing to snapshot/);
    t.false(existsSync(out));
    t.deepEqual(readdirSync(dir), []);
    const crash = await run(['snapshot', 'create', '-o', out, '--mem=2', guest('test_zeropage'), '--solo5:quiet']);
    t.is(crash.status, 1);
    t.regex(crash.stderr, /guest was killed by SIGSEGV \(guest memory fault at 0x8/);
    t.false(existsSync(out));
  });
});

test('snapshot create refuses an existing directory and options that do not apply', async (t) => {
  await withTempDir(async (dir) => {
    for (const [args, why] of [
      [['-o', dir], /already exists/],
      [['-o', join(dir, 'x'), '--gdb'], /--gdb': not for snapshot create/],
      [['-o', join(dir, 'x'), '--at=yield:0'], /the point must be yield or yield:N/],
      [[], /missing -o DIR/],
    ] as const) {
      const r = await run(['snapshot', 'create', ...args, '--mem=2', guest('test_hello')]);
      t.is(r.status, 1, r.stderr);
      t.true(oneLine(r.stderr), r.stderr);
      t.regex(r.stderr, why);
      t.is(r.stdout, '');
    }
  });
});

// --- The stub's own checks of a restore plan ------------------------------------

/** A restore plan of test_snap_cpu (no devices) for the stub at fd 3, its memory file at fd 4. */
function cpuRestorePlan(snap: string): Buffer {
  const r = prepareRestore({ memMiB: 512, xExecHeap: false, guest: '', guestArgs: [], devices: [], dumpable: false, gdb: false, supervise: false, restore: snap });
  try {
    return encodePlan(r.plan, r.filter.bpf, { deviceSrc: [], imageSrc: 4 });
  } finally {
    closeSync(r.snap.memFd);
  }
}

function runStubOn(plan: Buffer, memory: string, dir: string): Promise<RunResult> {
  const planFile = join(dir, `plan-${Math.random().toString(16).slice(2)}`);
  writeFileSync(planFile, plan);
  const pfd = openSync(planFile, 'r');
  const mfd = openSync(memory, 'r');
  return new Promise<RunResult>((resolve) => {
    const child = spawn(STUB, ['3'], { stdio: ['ignore', 'pipe', 'pipe', pfd, mfd], env: {} });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => { out += d; });
    child.stderr!.on('data', (d) => { err += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      resolve({ status: sig ? 128 + 9 : code!, signal: sig, stdout: out, stderr: err });
    });
  }).finally(() => {
    closeSync(pfd);
    closeSync(mfd);
  });
}

test('the stub runs a restore plan, and refuses a malformed restore section with one line, running nothing', async (t) => {
  await withTempDir(async (dir) => {
    const snap = join(dir, 'cpu.snap');
    const c = await run(['snapshot', 'create', '-o', snap, '--mem=2', guest('test_snap_cpu'), '--solo5:quiet']);
    t.is(c.status, 0, c.stdout + c.stderr);
    const plan = cpuRestorePlan(snap);
    const memory = join(snap, 'memory');
    const good = await runStubOn(plan, memory, dir);
    t.is(good.status, 0, good.stderr);
    t.regex(good.stdout, /SUCCESS/);
    // The restore section's body: after the header and the tables, a section header, then restore_header, snapshot_cpu, XSAVE.
    const d = decodePlan(plan);
    const body = PlanHeader.size + d.regions.length * PlanRegion.size + d.moves.length * PlanFdMove.size + d.polls.length * PlanPoll.size + PlanSection.size;
    const cpu = body + RestoreHeader.size;
    const xsave = cpu + SnapshotCpu.size;
    const edits: [string, (b: Buffer) => void, RegExp][] = [
      ['the trap flag set', (b) => b.writeBigUInt64LE(b.readBigUInt64LE(cpu + SnapshotCpu.offsets.rflags) | 0x100n, cpu + SnapshotCpu.offsets.rflags), /restored flags hold bits user code cannot set/],
      ['a resume point other than the entry', (b) => b.writeBigUInt64LE(b.readBigUInt64LE(cpu + SnapshotCpu.offsets.rip) + 2n, cpu + SnapshotCpu.offsets.rip), /restore point and entry point disagree/],
      ['a kernel fs base', (b) => b.writeBigUInt64LE(0xffff800000000000n, cpu + SnapshotCpu.offsets.fs_base), /fs or gs base outside user space/],
      ['a wrong magic', (b) => b.writeUInt32LE(0, cpu + SnapshotCpu.offsets.magic), /restore section header/],
      ['an XSAVE size beyond the section', (b) => b.writeUInt32LE(b.readUInt32LE(cpu + SnapshotCpu.offsets.xsave_size) + 64, cpu + SnapshotCpu.offsets.xsave_size), /restore section size/],
      ['MXCSR bits no CPU implements', (b) => b.writeUInt32LE(0x80000000, xsave + 24), /MXCSR has bits this CPU does not implement/],
      ['a compacted XSAVE header', (b) => b.writeBigUInt64LE(1n << 63n, xsave + 520), /XSAVE header not in standard form/],
      ['an XRSTOR mask outside the saved components', (b) => b.writeBigUInt64LE(1n << 40n, body + RestoreHeader.offsets.rfbm), /XSAVE state components or area size/],
    ];
    for (const [what, edit, why] of edits) {
      const bad = Buffer.from(plan);
      edit(bad);
      const r = await runStubOn(bad, memory, dir);
      t.is(r.status, 1, `${what}: ${r.stderr}`);
      t.regex(r.stderr, /^tendril: [^\n]+\n$/, what);
      t.regex(r.stderr, why, what);
      t.is(r.stdout, '', `${what}: nothing ran`);
    }
  });
});

const corePattern = readFileSync('/proc/sys/kernel/core_pattern', 'utf8').trim();
const plainCores = !corePattern.startsWith('|') && !corePattern.includes('/') && !corePattern.includes('%');
(plainCores ? test : test.skip)('--dumpcore on a restored guest: gdb shows the fault in frames made before the snapshot (kernel.core_pattern is a plain name)', async (t) => {
  await withTempDir(async (dir) => {
    const snap = join(dir, 'snap');
    const c = await run(['snapshot', 'create', '-o', snap, '--mem=2', guest('hostile_mem'), '--solo5:quiet', 'yield-first', 'read-null']);
    t.is(c.status, 0, c.stdout + c.stderr);
    const cores = join(dir, 'cores');
    mkdirSync(cores);
    const r = await run(['run', `--restore=${snap}`, `--dumpcore=${cores}`]);
    t.is(r.status, 139, r.stderr);
    const core = join(cores, corePattern);
    t.true(existsSync(core), core);
    const bt = await runCmdAsync('gdb', ['-nx', '-batch', '-ex', 'bt', guest('hostile_mem'), core], { timeoutMs: 60_000 });
    t.regex(bt.stdout, /Program terminated with signal SIGSEGV/);
    t.regex(bt.stdout, /#0 .* in peek .*hostile_mem\.c/);
    t.regex(bt.stdout, /solo5_app_main .*hostile_mem\.c/);
    t.regex(bt.stdout, /in _start \(arg=0x11000\)/, 'the boot frame, from before the snapshot');
  });
});
