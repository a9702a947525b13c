// Record and replay (docs/record-replay.md), for real: guests recorded
// with their real devices (a tap in a namespace made here, a disk file),
// then replayed with none — no namespace, the disk deleted — and compared:
// same output, same status, same frames, same fault, same backtrace; a
// debugger stopped where asked; a changed recording diverges; bad files are
// refused; hostile guests die exactly as they do live.

import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { closeSync, constants as fsc, existsSync, openSync, readFileSync, readSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { REC, REC_CPUID, REC_EV, RecCpu, RecEvent, RecFileHeader } from '../loader/formats.js';
import { openRecording, recordingEvents, reseal } from '../loader/recording.js';
import { childrenOf, guest, HOST, oneLine, Pool, runCmdAsync, TENDRIL, tendrilAsync, waitFor, withTempDir, type AsyncRunResult } from './helpers.js';
import { guestWithFlood, withNetns } from './netns.js';
import { startServer, type Json } from './serve-helpers.js';
import { api, download } from '../supervisor/serve/client.js';

const SIGSYS = 159;
const SIGSEGV = 139;
const SIGTERM = 143;

const pool = new Pool(2);
const tendrilRun = (args: string[], opts: { timeoutMs?: number; cwd?: string } = {}) =>
  pool.run(() => tendrilAsync(args, { timeoutMs: opts.timeoutMs ?? 60_000, cwd: opts.cwd }));
const gdb = (args: string[]) => runCmdAsync('gdb', ['-nx', '-batch', ...args], { timeoutMs: 60_000 });
const corePattern = readFileSync('/proc/sys/kernel/core_pattern', 'utf8').trim();
const plainCorePattern = !corePattern.startsWith('|') && !corePattern.includes('/');

/** A recorded run and its replay: the replay must say nothing, and end and print as recorded. */
function sameAsRecorded(t: ExecutionContext, live: AsyncRunResult, replay: AsyncRunResult): void {
  t.is(replay.status, live.status, `replay: ${replay.stderr}`);
  t.is(replay.stdout, live.stdout);
}

/** The info of a recording, as `replay --info --json` gives it. */
async function info(file: string): Promise<{ events: { total: number; byName: Record<string, number>; writes: Record<string, { calls: number; bytes: number }> }; outcome: Record<string, unknown>; cpu: { cpuid: string } }> {
  const r = await tendrilRun(['replay', '--info', '--json', file]);
  if (r.status !== 0) throw new Error(`replay --info: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

// ---------------------------------------------------------------------------
// Devices: a tap flood and a disk, replayed without either

test.serial('a net guest recorded answering a 2000-ping flood in a namespace replays with no namespace: same output, frames and status', async (t) => {
  t.timeout(180_000);
  await withTempDir(async (dir) => {
    const file = join(dir, 'net.rec');
    const run = await withNetns(t, [{ name: 'tap100', addr: '10.0.0.1/24' }], (ns) => guestWithFlood(ns, {
      tendrilArgs: ['run', `--record=${file}`, '--mem=2', '--net:service0=tap100', guest('test_net'), '2000'],
      floods: [{ addr: '10.0.0.2', count: 2000, deadlineS: 90 }],
      timeoutMs: 120_000,
    }));
    t.is(run.guest.status, 0, run.guest.stderr + run.guest.stdout.slice(-500));
    t.is(run.parsed[0]?.received, 2000, run.pings[0]?.stdout);
    t.regex(run.guest.stdout, /Limit reached, exiting/);

    // The namespace and its tap are gone: the replay has no network at all.
    const replay = await tendrilRun(['replay', file]);
    t.is(replay.stderr, '');
    sameAsRecorded(t, { ...run.guest, ms: 0 }, replay);

    // The frames: every echo request read, and a reply to each written back on the tap (fd 5).
    const rec = openRecording(file);
    let requests = 0;
    let arps = 0;
    const replies: Buffer[] = [];
    for (const e of recordingEvents(rec)) {
      if (e.kind !== REC_EV.SYSCALL || e.args[0] !== 5n) continue;
      const f = e.data();
      const icmp = f.length >= 42 && f.readUInt16BE(12) === 0x0800 && f[23] === 1 ? f[34] : -1;
      if (e.nr === 0 && icmp === 8) requests++;
      if (e.nr === 1 && icmp === 0) replies.push(f);
      if (e.nr === 1 && f.length >= 42 && f.readUInt16BE(12) === 0x0806) arps++;
    }
    t.is(requests, 2000);
    t.is(replies.length, 2000);
    t.true(replies.every((f) => f.subarray(30, 34).equals(Buffer.from([10, 0, 0, 1])) && f.subarray(26, 30).equals(Buffer.from([10, 0, 0, 2]))),
      'each reply goes from 10.0.0.2 to 10.0.0.1');
    const i = await info(file);
    t.is(i.events.writes['write:5'].calls, replies.length + arps, 'every frame written on the tap is an echo reply or an ARP reply');
    t.log(`${i.events.total} events, ${rec.size} bytes (${Math.round(rec.size / 2000)} bytes per echo)`);
  });
});

test('a block guest recorded on a disk replays after the disk image is deleted', async (t) => {
  await withTempDir(async (dir) => {
    const disk = join(dir, 'disk.img');
    const file = join(dir, 'blk.rec');
    writeFileSync(disk, Buffer.alloc(0));
    truncateSync(disk, 4 << 20);
    const live = await tendrilRun(['run', `--record=${file}`, '--mem=2', `--block:storage=${disk}`, guest('test_blk')]);
    t.is(live.status, 0, live.stderr);
    t.regex(live.stdout, /blocks written and verified/);
    rmSync(disk);
    const replay = await tendrilRun(['replay', file]);
    t.is(replay.stderr, '');
    sameAsRecorded(t, live, replay);
    const i = await info(file);
    t.is(i.events.byName.pread64, i.events.byName.pwrite64);
    t.true(i.events.byName.pread64 > 800);
  });
});

// ---------------------------------------------------------------------------
// The CPU's own nondeterminism: clocks, rdtsc/rdtscp, cpuid

test(`clocks, rdtsc, rdtscp and cpuid read in a loop replay to the same bytes (this host: ${HOST.cpuidFault ? 'cpuid faulting, answered from the recording' : 'no cpuid faulting, cpuid native'})`, async (t) => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'clock.rec');
    const live = await tendrilRun(['run', `--record=${file}`, '--mem=2', guest('test_rr_clock'), '20']);
    t.is(live.status, 0, live.stderr);
    t.is(live.stdout.match(/^round \d+: mono/gm)?.length, 20);
    const replay = await tendrilRun(['replay', file]);
    t.is(replay.stderr, '');
    sameAsRecorded(t, live, replay);
    // A second live run reads other values: the replay did not just happen to match.
    const again = await tendrilRun(['run', '--mem=2', guest('test_rr_clock'), '20']);
    t.not(again.stdout, live.stdout);

    const i = await info(file);
    t.is(i.events.byName.rdtscp, 20);
    t.true(i.events.byName.rdtsc >= 20);
    t.true(i.events.byName.clock_gettime >= 60);
    const rec = openRecording(file);
    if (HOST.cpuidFault) {
      t.is(rec.cpu.mode, REC_CPUID.FAULTED);
      t.is(i.events.byName.cpuid, 40, 'two cpuid per round, answered by the monitor');
      // rdrand (cpuid 1 ecx bit 30) is hidden from the guest.
      for (const m of live.stdout.matchAll(/cpuid1 [0-9a-f]+ ([0-9a-f]+) /g)) t.is(Number.parseInt(m[1], 16) & (1 << 30), 0);
    } else {
      t.is(rec.cpu.mode, REC_CPUID.NATIVE);
      t.false('cpuid' in i.events.byName, 'cpuid ran natively: no cpuid events');
      t.regex(i.cpu.cpuid, /replays only on an identical CPU/);
    }
  });
});

test(`a recording is refused on a CPU that differs (this host: ${HOST.cpuidFault ? 'cpuid faulting: a CPU without a feature the guest was told about' : 'no cpuid faulting: any other CPU'})`, async (t) => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'clock.rec');
    const live = await tendrilRun(['run', `--record=${file}`, '--mem=2', guest('test_rr_clock'), '2']);
    t.is(live.status, 0, live.stderr);
    // Forge the CPU record: another model, and a feature word this CPU does not have.
    const b = readFileSync(file);
    const header = b.readUInt32LE(RecFileHeader.offsets.header_len);
    const cpu = header + RecEvent.size;
    b.writeUInt32LE(b.readUInt32LE(cpu + RecCpu.offsets.signature) ^ 0x10, cpu + RecCpu.offsets.signature);
    b.writeUInt32LE(0xffffffff, cpu + RecCpu.offsets.leaf7_edx);
    writeFileSync(join(dir, 'other.rec'), reseal(b));
    const r = await tendrilRun(['replay', join(dir, 'other.rec')]);
    t.is(r.status, 1, r.stderr);
    t.true(oneLine(r.stderr), r.stderr);
    t.regex(r.stderr, HOST.cpuidFault ? /this CPU lacks features the guest was told about/ : /was recorded on .*, this is .*only an identical CPU replays it/);
    t.is(r.stdout, '', 'the guest never ran');

    // A recording that answered cpuid itself needs a CPU that can fault cpuid.
    const c = readFileSync(file);
    c.writeUInt32LE(REC_CPUID.FAULTED, cpu + RecCpu.offsets.mode);
    writeFileSync(join(dir, 'faulted.rec'), reseal(c));
    const f = await tendrilRun(['replay', join(dir, 'faulted.rec')]);
    if (HOST.cpuidFault) {
      t.is(f.status, 0, `this host faults cpuid: it answers from the recording: ${f.stderr}`);
    } else {
      t.is(f.status, 1);
      t.true(oneLine(f.stderr), f.stderr);
      t.regex(f.stderr, /recorded with cpuid faulting .*this CPU cannot fault cpuid/);
    }
  });
});

// ---------------------------------------------------------------------------
// Crashes, cores and debuggers

(plainCorePattern ? test : test.skip)('a crashing guest replays to the same fault address, and --dumpcore on the replay gives the same backtrace', async (t) => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'crash.rec');
    const liveCores = join(dir, 'live');
    const replayCores = join(dir, 'replay');
    for (const d of [liveCores, replayCores]) await runCmdAsync('mkdir', ['-p', d]);
    // The fault address is made from every clock, TSC and cpuid value the guest read.
    const live = await tendrilRun(['run', `--record=${file}`, `--dumpcore=${liveCores}`, '--mem=2', guest('test_rr_clock'), '3', 'quiet', 'crash']);
    t.is(live.status, SIGSEGV, live.stderr);
    const addr = /writing to (0x[0-9a-f]+)/.exec(live.stdout)?.[1];
    t.truthy(addr);
    const replay = await tendrilRun(['replay', `--dumpcore=${replayCores}`, file]);
    sameAsRecorded(t, live, replay);
    t.regex(replay.stderr, new RegExp(`^tendril: replayed to its recorded end: guest memory fault at ${addr} \\(address not mapped\\)`));
    t.is((await info(file)).outcome.faultAddress, addr);

    const core = (d: string) => join(d, corePattern.replace(/%p/g, '*'));
    t.true(existsSync(core(liveCores)) && existsSync(core(replayCores)));
    t.true(existsSync(join(replayCores, 'test_rr_clock.spt')), 'the replay leaves the image beside its core, for gdb');
    const bt = async (image: string, c: string) => {
      const g = await gdb(['-ex', 'bt', '-ex', 'p $_siginfo._sifields._sigfault.si_addr', image, c]);
      return g.stdout.split('\n').filter((l) => /^#\d|^\$1|signal/.test(l)).join('\n');
    };
    const a = await bt(guest('test_rr_clock'), core(liveCores));
    const b = await bt(join(replayCores, 'test_rr_clock.spt'), core(replayCores));
    t.regex(a, /Program terminated with signal SIGSEGV/);
    t.regex(a, /#0 .*solo5_app_main .*test_rr_clock\.c/);
    t.regex(a, new RegExp(`\\$1 = \\(void \\*\\) ${addr}`));
    t.is(b, a);
    t.log(b);
  });
});

test('--gdb --until=N: the guest stops just before event N, where gdb finds it (pc on the syscall, its registers as recorded)', async (t) => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'clock.rec');
    const live = await tendrilRun(['run', `--record=${file}`, '--mem=2', guest('test_rr_clock'), '3']);
    t.is(live.status, 0, live.stderr);
    const rec = openRecording(file);
    const events = [...recordingEvents(rec)];
    // The first clock read of the first round: after the guest's own title line.
    const title = events.find((e) => e.kind === REC_EV.SYSCALL && e.nr === 1 && e.data().includes('test_rr_clock ****'))!;
    const target = events.find((e) => e.kind === REC_EV.SYSCALL && e.nr === 228 && e.index > title.index)!;
    const child = spawn(process.execPath, [TENDRIL, 'replay', '--gdb', `--until=${target.index}`, file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d; });
    child.stdout.on('data', (d: Buffer) => { stdout += d; });
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    let pid = 0;
    let image = '';
    try {
      const m = await waitFor('the replay to stop for the debugger', () => /attach with: gdb (\S+) -p (\d+)/.exec(stderr) ?? undefined, 60_000);
      pid = Number(m[2]);
      image = m[1];
      t.regex(stderr, new RegExp(`replay stopped before event ${target.index}, clock_gettime\\(CLOCK_(MONOTONIC|REALTIME), 0x`));
      t.regex(readFileSync(`/proc/${pid}/status`, 'utf8'), /^State:\s+T/m, 'stopped');
      t.true(live.stdout.startsWith(stdout), 'the output so far is the recorded output so far');
      t.false(stdout.includes('round 0'), 'it stopped before the first round was printed');
      const g = await gdb(['-ex', 'p/x $pc', '-ex', 'x/i $pc', '-ex', 'p/x $rax', '-ex', 'p/x $rdi', '-ex', 'p/x $rsi', m[1], '-p', String(pid)]);
      const vals = [...g.stdout.matchAll(/^\$\d+ = (0x[0-9a-f]+)$/gm)].map((x) => BigInt(x[1]));
      t.regex(g.stdout, /=> 0x[0-9a-f]+ <[^>]+>:\s+syscall/, g.stdout + g.stderr);
      t.is(vals[1], 228n, 'rax: clock_gettime');
      t.is(vals[2], target.args[0], 'rdi: the recorded clock');
      t.is(vals[3], target.args[1], 'rsi: the recorded buffer');
    } finally {
      if (pid) process.kill(pid, 'SIGKILL'); // the guest, ours: stopped, it would wait for a SIGCONT
      // The replay ends with its guest (and removes the copy of the image it made for gdb); a bound only for a hang.
      const hung = setTimeout(() => child.kill('SIGKILL'), pid ? 30_000 : 0);
      await exited;
      clearTimeout(hung);
    }
    if (image) t.false(existsSync(dirname(image)), `the replay removed ${dirname(image)}, its copy of the image for gdb`);
  });
});

(plainCorePattern ? test : test.skip)('--until=N without --gdb stops before event N and says so; with --dumpcore it leaves a core of the guest just before it', async (t) => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'clock.rec');
    const live = await tendrilRun(['run', `--record=${file}`, '--mem=2', guest('test_rr_clock'), '3']);
    t.is(live.status, 0, live.stderr);
    const events = recordingEvents(openRecording(file));
    const target = events.filter((e) => e.kind === REC_EV.SYSCALL && e.nr === 1).at(-2)!; // a console write near the end
    const r = await tendrilRun(['replay', `--until=${target.index}`, file]);
    t.is(r.status, 0, r.stderr);
    t.true(oneLine(r.stderr), r.stderr);
    t.regex(r.stderr, new RegExp(`^tendril: replay stopped before event ${target.index}: the guest is about to make write\\(1, "`));
    const before = events.filter((e) => e.kind === REC_EV.SYSCALL && e.nr === 1 && e.args[0] === 1n && e.index < target.index).map((e) => e.data().toString('latin1')).join('');
    t.is(r.stdout, before, 'the console up to that event, and no further');

    const cores = join(dir, 'cores');
    await runCmdAsync('mkdir', ['-p', cores]);
    const c = await tendrilRun(['replay', '--quiet', `--until=${target.index}`, `--dumpcore=${cores}`, file]);
    t.is(c.status, 0, c.stderr);
    t.regex(c.stderr, /its core is in /);
    const core = join(cores, corePattern.replace(/%p/g, '*'));
    t.true(existsSync(core));
    const g = await gdb(['-ex', 'x/i $pc', '-ex', 'p/x $rax', '-ex', 'p/x $rdx', join(cores, 'test_rr_clock.spt'), core]);
    t.regex(g.stdout, /=> 0x[0-9a-f]+ <[^>]+>:\s+syscall/, g.stdout + g.stderr);
    t.regex(g.stdout, new RegExp(`^\\$1 = 0x1$`, 'm'), 'rax: write');
    t.regex(g.stdout, new RegExp(`^\\$2 = 0x${target.args[2].toString(16)}$`, 'm'), 'rdx: its recorded length');
  });
});

// ---------------------------------------------------------------------------
// Divergence, and files that are not usable recordings

test('a recording with one byte of a disk read changed diverges, with the line that says where and how', async (t) => {
  await withTempDir(async (dir) => {
    const disk = join(dir, 'disk.img');
    const file = join(dir, 'blk.rec');
    writeFileSync(disk, Buffer.alloc(1 << 20));
    const live = await tendrilRun(['run', `--record=${file}`, '--mem=2', `--block:storage=${disk}`, guest('test_blk')]);
    t.is(live.status, 0, live.stderr);
    const rec = openRecording(file);
    const read = [...recordingEvents(rec)].find((e) => e.kind === REC_EV.SYSCALL && e.nr === 17 && e.dataLen === 512)!;
    const b = readFileSync(file);
    b[read.dataOffset + 100] ^= 0x01;
    writeFileSync(join(dir, 'changed.rec'), reseal(b));
    const r = await tendrilRun(['replay', join(dir, 'changed.rec')]);
    t.is(r.status, REC.DIVERGED_STATUS);
    t.true(oneLine(r.stderr), r.stderr);
    t.regex(r.stderr, new RegExp(`^tendril: replay diverged at event ${read.index + 1}: the guest called write\\(1, "FAILURE: block 0 read back different data\\\\n", 42\\), the recording has pwrite64\\(5, <512 bytes: .*>, 512, 5120\\)\\n$`));
    t.true(live.stdout.startsWith(r.stdout), 'up to the divergence, the output is the recorded one');
  });
});

test('truncated, corrupt and foreign files are refused with one line', async (t) => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'hello.rec');
    const live = await tendrilRun(['run', `--record=${file}`, '--mem=2', guest('test_hello'), 'Hello_Solo5']);
    t.is(live.status, 0, live.stderr);
    const good = readFileSync(file);
    const rec = openRecording(file);
    const cases: [string, Buffer, RegExp][] = [
      ['cut in its events', good.subarray(0, rec.streamOffset + 100), /is truncated: the recording was not finished/],
      ['cut in its header', good.subarray(0, 200), /is truncated: it ends inside its header/],
      ['a byte of an event changed', Buffer.from(good).fill(0x55, rec.streamOffset + 200, rec.streamOffset + 201), /is corrupt: its event stream does not match its checksum/],
      ['a byte of the image changed', Buffer.from(good).fill(0x55, RecFileHeader.size + rec.header.meta_len + 4000, RecFileHeader.size + rec.header.meta_len + 4001), /is corrupt: its header does not match its checksum/],
      ['a guest image', readFileSync(guest('test_hello')), /is not a tendril recording: it is an ELF file/],
      ['text', Buffer.from('hello world\n'), /is not a tendril recording \(it starts with 68 65 6c 6c/],
      ['empty', Buffer.alloc(0), /is not a tendril recording/],
      ['a newer format', (() => { const x = Buffer.from(good); x.writeUInt32LE(REC.VERSION + 1, 4); return x; })(), /is a tendril recording of format version 2; this tendril reads version 1/],
    ];
    // Well sealed but inconsistent: an event whose length runs past the stream.
    const inconsistent = Buffer.from(good);
    inconsistent.writeUInt32LE(1 << 30, rec.streamOffset + RecEvent.offsets.data_len);
    cases.push(['an event longer than the stream', reseal(inconsistent), /is corrupt: event 1 at byte \d+ runs past the end of the stream/]);
    for (const [what, bytes, why] of cases) {
      const f = join(dir, 'bad.rec');
      writeFileSync(f, bytes);
      for (const args of [['replay', f], ['replay', '--info', f]]) {
        const r = await tendrilRun(args);
        t.is(r.status, 1, `${what}: ${r.stderr}`);
        t.true(oneLine(r.stderr), `${what}: ${JSON.stringify(r.stderr)}`);
        t.regex(r.stderr, why, what);
        t.is(r.stdout, '', `${what}: nothing ran`);
      }
    }
  });
});

// ---------------------------------------------------------------------------
// Signals, and the sandbox under recording and replay

test('a guest killed by SIGTERM while it runs replays to the same death after the same output', async (t) => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'term.rec');
    // Rounds of clock reads and 1 ms yields, without end: most of its time is spent waiting.
    const child = spawn(process.execPath, [TENDRIL, 'run', `--record=${file}`, '--mem=2', guest('test_rr_clock'), '100000000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d; });
    child.stderr.on('data', (d: Buffer) => { stderr += d; });
    const exited = new Promise<number>((r) => child.on('exit', (code, sig) => r(code ?? 128 + (sig === 'SIGTERM' ? 15 : 0))));
    try {
      await waitFor('the guest to get through a few rounds', () => /^round 5: /m.test(stdout), 60_000);
      child.kill('SIGTERM'); // to the recorder, which passes it on, as a shell's kill would
    } finally {
      setTimeout(() => child.kill('SIGKILL'), 60_000).unref();
    }
    t.is(await exited, SIGTERM, stderr);
    t.is((await info(file)).outcome.signal, 'SIGTERM');
    const replay = await tendrilRun(['replay', file]);
    t.is(replay.status, SIGTERM, replay.stderr);
    t.is(replay.stdout, stdout);
    t.regex(replay.stderr, /replayed to its recorded end: guest was killed by SIGTERM/);
  });
});

test('a guest killed by SIGKILL (sent to the guest itself, not to its recorder) replays to the same death', async (t) => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'kill.rec');
    const child = spawn(process.execPath, [TENDRIL, 'run', `--record=${file}`, '--mem=2', guest('test_rr_clock'), '100000000'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d; });
    const exited = new Promise<number>((r) => child.on('exit', (code, sig) => r(code ?? 128 + (sig === 'SIGKILL' ? 9 : 0))));
    try {
      await waitFor('the guest to get through a few rounds', () => /^round 5: /m.test(stdout), 60_000);
      // The recorder is the process we started (exec); the guest is its one child.
      const guestPid = childrenOf(child.pid!)[0];
      t.truthy(guestPid);
      process.kill(guestPid, 'SIGKILL');
    } finally {
      setTimeout(() => child.kill('SIGKILL'), 60_000).unref();
    }
    t.is(await exited, 137);
    t.is((await info(file)).outcome.signal, 'SIGKILL');
    const replay = await tendrilRun(['replay', file]);
    t.is(replay.status, 137, replay.stderr);
    t.is(replay.stdout, stdout);
  });
});

test('a guest whose console nobody reads (a full pipe) still dies by SIGTERM while recorded, as it does live', async (t) => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'full.rec');
    // The console is a FIFO this test holds open and reads only at the end: it fills after 64 KiB.
    const fifo = join(dir, 'console');
    await runCmdAsync('mkfifo', [fifo]);
    const fd = openSync(fifo, fsc.O_RDONLY | fsc.O_NONBLOCK);
    const console = openSync(fifo, fsc.O_WRONLY); // blocking, as a shell's pipe is
    try {
      const child = spawn(process.execPath, [TENDRIL, 'run', `--record=${file}`, '--mem=2', guest('test_rr_clock'), '100000000'], { stdio: ['ignore', console, 'pipe'] });
      closeSync(console);
      const exited = new Promise<number>((r) => child.on('exit', (code, sig) => r(code ?? 128 + (sig === 'SIGTERM' ? 15 : 0))));
      try {
        // The recorder waits for room on the console on the guest's behalf, the guest stopped meanwhile: ppoll (271)
        // of one fd (its waits on the guest's epoll set poll two, with the guest's pidfd).
        await waitFor('the recorder to wait for room on the console', () => {
          const f = readFileSync(`/proc/${child.pid}/syscall`, 'utf8').split(' ');
          return f[0] === '271' && f[2] === '0x1';
        }, 60_000);
        child.kill('SIGTERM');
        t.is(await exited, SIGTERM);
      } finally {
        child.kill('SIGKILL');
      }
      const chunks: Buffer[] = [];
      for (;;) {
        const b = Buffer.alloc(65536);
        let n = 0;
        try {
          n = readSync(fd, b);
        } catch {
          break; // EAGAIN: all read
        }
        if (n <= 0) break;
        chunks.push(b.subarray(0, n));
      }
      const out = Buffer.concat(chunks).toString('latin1');
      t.true(out.length >= 4096, `the console filled up (${out.length} bytes)`);
      const replay = await tendrilRun(['replay', file]);
      t.is(replay.status, SIGTERM, replay.stderr);
      t.is(replay.stdout, out, 'the replay prints what the guest got written before it died');
    } finally {
      closeSync(fd);
    }
  });
});

const HOSTILE: [string, string, number, string[]?][] = [
  ['hostile_syscall', '32', SIGSYS],
  ['hostile_syscall', '59', SIGSYS],
  ['hostile_args', 'write-fd2', SIGSYS],
  ['hostile_args', 'clock-boottime', SIGSYS],
  ['hostile_args', 'epoll_pwait-timerfd', SIGSYS],
  ['hostile_abi', 'int80-write', SIGSYS],
  ['hostile_mem', 'exec-heap', SIGSEGV],
  ['hostile_mem', 'read-stub', SIGSEGV],
  ['hostile_mem', 'exec-trampoline', SIGSYS],
  ['hostile_blk', 'pread-short', SIGSYS, ['disk']],
  ['hostile_blk', 'read-blkfd', SIGSYS, ['disk']],
];
for (const [name, mode, status, needs] of HOSTILE) {
  test(`hostile ${name} ${mode}: killed the same way live, recorded and replayed (${status === SIGSYS ? 'SIGSYS' : 'SIGSEGV'})`, async (t) => {
    await withTempDir(async (dir) => {
      const disk = join(dir, 'disk.img');
      if (needs) writeFileSync(disk, Buffer.alloc(64 << 10, 0x5a));
      const devices = needs ? [`--block:storage=${disk}`] : [];
      const args = ['--mem=2', ...devices, guest(name), '--solo5:quiet', mode];
      const live = await tendrilRun(['run', ...args]);
      const recorded = await tendrilRun(['run', `--record=${join(dir, 'h.rec')}`, ...args]);
      if (needs) rmSync(disk);
      const replay = await tendrilRun(['replay', join(dir, 'h.rec')]);
      for (const [what, r] of [['live', live], ['recorded', recorded], ['replayed', replay]] as const) {
        t.is(r.status, status, `${what}: ${r.stderr}`);
        t.true(r.stdout.includes(`ATTEMPT ${name === 'hostile_syscall' ? `syscall ${mode}` : mode}\n`), `${what}: ${r.stdout}`);
        t.false(r.stdout.includes('ESCAPED'), what);
      }
      t.is(recorded.stdout, live.stdout);
      t.is(replay.stdout, live.stdout);
      t.is(recorded.stderr, '');
      t.regex(replay.stderr, status === SIGSYS ? /the sandbox killed it \(SIGSYS\)/ : /killed by SIGSEGV/);
    });
  });
}

// ---------------------------------------------------------------------------
// Options

test('--record with --gdb, and replay options that make no sense, are refused with one line', async (t) => {
  await withTempDir(async (dir) => {
    const cases: [string[], RegExp][] = [
      [['run', '--gdb', `--record=${join(dir, 'x.rec')}`, '--mem=2', guest('test_hello')], /--gdb.*cannot be combined with --record/],
      [['run', '--record=', '--mem=2', guest('test_hello')], /missing file to record into/],
      [['run', `--record=${guest('test_hello')}`, '--mem=2', guest('test_hello')], /is the guest image itself/],
      [['run', `--record=${join(dir, 'x.rec')}`, `--restore=${dir}`], /--record.*cannot be combined with --restore/],
      [['replay', '--until=0', join(dir, 'x.rec')], /EVENT must be an event number/],
      [['replay', '--info', '--gdb', join(dir, 'x.rec')], /--info.*takes no replay option/],
      [['replay'], /missing FILE/],
      [['replay', join(dir, 'none.rec')], /cannot open the recording: No such file or directory/],
    ];
    for (const [args, why] of cases) {
      const r = await tendrilRun(args);
      t.is(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      t.true(oneLine(r.stderr), `${args.join(' ')}: ${JSON.stringify(r.stderr)}`);
      t.regex(r.stderr, why);
    }
    t.true(existsSync(guest('test_hello')) && readFileSync(guest('test_hello')).readUInt32BE(0) === 0x7f454c46, 'the guest image is untouched');
  });
});

test('--supervise --record: the reason line, and a recording that replays the same', async (t) => {
  await withTempDir(async (dir) => {
    const file = join(dir, 'exc.rec');
    const live = await tendrilRun(['run', '--supervise', `--record=${file}`, '--mem=2', guest('test_exception')]);
    t.is(live.status, SIGSEGV);
    t.regex(live.stderr, /guest memory fault at 0x400000000/);
    const replay = await tendrilRun(['replay', file]);
    sameAsRecorded(t, live, replay);
    t.regex(replay.stderr, /guest memory fault at 0x400000000/);
  });
});

// ---------------------------------------------------------------------------
// tendril serve: "record": true, GET /instances/:id/recording

test('serve: a launch with "record": true leaves a recording that replays to the instance\'s output and status; unrecorded and running instances have none to give', async (t) => {
  const srv = await startServer(['--pool=1']);
  t.teardown(() => srv.stop());
  await withTempDir(async (dir) => {
    const done = await srv.launch('test_rr_clock', { args: ['5'], record: true });
    t.is(done.httpStatus, 200, JSON.stringify(done));
    t.is(done.status, 0);
    t.is(done.recording, `/instances/${done.id}/recording`);
    const file = join(dir, 'srv.rec');
    t.is((await download(srv.sock, done.recording, file)).status, 200);
    const replay = await tendrilRun(['replay', file]);
    t.is(replay.status, 0, replay.stderr);
    t.is(replay.stdout, done.output, 'the replay prints what the instance printed');

    const plain = await srv.launch('test_hello');
    const none = await api(srv.sock, 'GET', `/instances/${plain.id}/recording`);
    t.is(none.status, 404);
    t.regex((none.body as Json).error, /was not recorded/);

    const monitorless = await api(srv.sock, 'POST', '/instances', { image: await srv.register('test_hello'), record: true, monitor: false });
    t.is(monitorless.status, 400);
    t.regex((monitorless.body as Json).error, /"record": true needs the monitor/);
    // A restored guest never ran its boot, which a replay starts from.
    const restored = await api(srv.sock, 'POST', '/instances', { snapshot: '0123456789abcdef', record: true });
    t.is(restored.status, 400);
    t.regex((restored.body as Json).error, /"record" cannot be used with "snapshot"/);

    // A guest that spins: its recording is not there while it runs, and is once it has been killed.
    const spin = (await api(srv.sock, 'POST', '/instances', { image: await srv.register('test_rr_clock'), memMiB: 2, args: ['1', 'quiet', 'spin'], record: true })).body as Json;
    const early = await api(srv.sock, 'GET', `/instances/${spin.id}/recording`);
    t.is(early.status, 409);
    t.regex((early.body as Json).error, /its recording is complete once the guest has ended/);
    await waitFor('the guest to spin', async () => /spinning/.test(((await api(srv.sock, 'GET', `/instances/${spin.id}`)).body as Json).output), 30_000);
    await api(srv.sock, 'POST', `/instances/${spin.id}/kill`, { signal: 'SIGTERM' });
    await waitFor('the guest to end', async () => ((await api(srv.sock, 'GET', `/instances/${spin.id}`)).body as Json).state === 'exited', 30_000);
    const killed = join(dir, 'spin.rec');
    t.is((await download(srv.sock, `/instances/${spin.id}/recording`, killed)).status, 200);
    const r = await tendrilRun(['replay', killed]);
    t.is(r.status, SIGTERM, r.stderr);
    t.regex(r.stdout, /spinning/);

    // Forgetting the instance deletes its recording.
    t.is((await api(srv.sock, 'DELETE', `/instances/${done.id}`)).status, 204);
    t.is((await api(srv.sock, 'GET', `/instances/${done.id}/recording`)).status, 404);
  });
});

test('tendril launch --record=FILE: the server records, the client writes FILE, which replays like a local recording', async (t) => {
  const srv = await startServer(['--pool=1']);
  t.teardown(() => srv.stop());
  await withTempDir(async (dir) => {
    const file = join(dir, 'launch.rec');
    const live = await tendrilRun(['launch', `--server=${srv.sock}`, `--record=${file}`, '--mem=2', guest('test_rr_clock'), '3', 'quiet', 'crash']);
    t.is(live.status, SIGSEGV, live.stderr);
    const replay = await tendrilRun(['replay', file]);
    sameAsRecorded(t, live, replay);
    t.regex(replay.stderr, new RegExp(`guest memory fault at ${/writing to (0x[0-9a-f]+)/.exec(live.stdout)?.[1]}`));
  });
});
