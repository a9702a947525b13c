// The formats TypeScript and C share (loader/formats.ts, generated into
// tendril_formats.h): the C compiler lays every struct out exactly as the
// TypeScript definition says; a plan survives encode → decode; and the two
// native readers of these formats — the stub (plans) and the zygote
// (frames) — refuse malformed, truncated and fuzzed input with a clear
// report, never crash, and never run anything from it.

import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { C_EXPORTS, decodeStruct, encodeStruct, PLAN, PLAN_FLAG, PlanFdMove, PlanHeader, PlanPoll, PlanRegion, ZYGOTE_MSG, ZygoteExit, ZygoteFrame, ZygoteLaunch } from '../loader/formats.js';
import { decodePlan, encodePlan, type GuestPlan } from '../loader/plan.js';
import { compileLaunch, prepareLaunch, releaseLaunch } from '../supervisor/launch.js';
import type { RunOptions } from '../supervisor/options.js';
import { parseMonitorMessages } from '../supervisor/report.js';
import * as os from '../supervisor/os.js';
import { guest, Pool, ROOT, STUB, waitFor, withTempDir } from './helpers.js';

const ZYGOTE = join(ROOT, 'native/build/tendril-zygote');

test('the C compiler lays out every shared struct exactly as loader/formats.ts defines it', async (t) => {
  await withTempDir(async (dir) => {
    const lines = C_EXPORTS.structs.flatMap((s) => [
      `printf("${s.cname} %zu\\n", sizeof(struct ${s.cname}));`,
      ...Object.keys(s.fields).map((f) => `printf("${s.cname}.${f} %zu\\n", __builtin_offsetof(struct ${s.cname}, ${f}));`),
    ]);
    const src = join(dir, 'layout.c');
    writeFileSync(src, `#include <stdio.h>\n#include "tendril_formats.h"\nint main(void) {\n${lines.join('\n')}\nreturn 0;\n}\n`);
    const exe = join(dir, 'layout');
    const cc = spawnSync('gcc', ['-O0', '-Wall', '-Werror', `-I${join(ROOT, 'native/build/include')}`, '-o', exe, src], { encoding: 'utf8' });
    t.is(cc.status, 0, cc.stderr);
    const seen = new Map(spawnSync(exe, { encoding: 'utf8' }).stdout.trim().split('\n').map((l) => l.split(' ') as [string, string]));
    for (const s of C_EXPORTS.structs) {
      t.is(Number(seen.get(s.cname)), s.size, `sizeof(struct ${s.cname})`);
      for (const [f, off] of Object.entries(s.offsets)) t.is(Number(seen.get(`${s.cname}.${f}`)), off, `${s.cname}.${f}`);
    }
  });
});

test('a struct round-trips through encode and decode, and a short buffer is a RangeError, not garbage', (t) => {
  const v = { magic: PLAN.MAGIC, version: PLAN.VERSION, flags: 5, nregions: 3, mem_size: 1n << 30n, entry: 0x100020n, nmoves: 2, npoll: 1,
    lowmem_size: 154, bpf_insns: 34, image_src: -1, report_fd: 4, start_fd: -1, extra_size: 16 };
  t.deepEqual(decodeStruct(PlanHeader, encodeStruct(PlanHeader, v)), v);
  t.throws(() => decodeStruct(PlanHeader, Buffer.alloc(PlanHeader.size - 1)), { instanceOf: RangeError });
});

function helloOptions(): RunOptions {
  return { memMiB: 2, xExecHeap: false, guest: guest('test_hello'), guestArgs: ['--solo5:quiet', 'Hello_Solo5'], devices: [], dumpable: false, gdb: false, supervise: false };
}

/** A real plan for test_hello: the memory file at fd 4, the plan at fd 3 when run. */
function helloPlan(monitor = false): { plan: GuestPlan; bytes: Buffer; memory: Buffer } {
  const p = prepareLaunch(helloOptions());
  try {
    const c = compileLaunch(p);
    const bytes = encodePlan(c.plan, c.filter.bpf, { deviceSrc: [], imageSrc: 4, ...(monitor ? { flags: PLAN_FLAG.MONITOR, reportFd: 5 } : {}) });
    return { plan: c.plan, bytes, memory: c.memory.bytes };
  } finally {
    releaseLaunch(p);
  }
}

test('a plan round-trips: what decodePlan reads back is what was encoded, sections included', (t) => {
  const { plan, bytes } = helloPlan();
  const withSection = encodePlan({ ...plan, sections: [{ type: 3, data: Buffer.from('abc') }] }, decodePlan(bytes).bpf, { deviceSrc: [], imageSrc: 4 });
  const d = decodePlan(withSection);
  t.is(d.header.magic, PLAN.MAGIC);
  t.is(d.header.mem_size, plan.memSize);
  t.is(d.header.entry, plan.entry);
  t.deepEqual(d.regions.map(({ vaddr, length, file_offset, prot }) => ({ vaddr, length, file_offset, prot })), plan.regions);
  t.true(d.lowMemory.equals(plan.lowMemory));
  t.deepEqual(d.sections, [{ type: 3, data: Buffer.from('abc') }]);
  t.is(d.header.extra_size, 16);
});

/** Runs the stub on plan bytes (and test_hello's memory file), as exec mode would. */
async function runStub(dir: string, name: string, plan: Buffer, memory: Buffer, monitor = false): Promise<{ status: number; stdout: string; stderr: string; report?: ReturnType<typeof parseMonitorMessages>['report'] }> {
  const planFile = join(dir, `${name}.plan`);
  const memFile = join(dir, `${name}.mem`);
  writeFileSync(planFile, plan);
  writeFileSync(memFile, memory);
  const pfd = openSync(planFile, 'r');
  const mfd = openSync(memFile, 'r');
  try {
    const child = spawn(STUB, ['3'], { stdio: ['ignore', 'pipe', 'pipe', pfd, mfd, monitor ? 'pipe' : 'ignore'], env: {} });
    let out = '';
    let err = '';
    const rep: Buffer[] = [];
    child.stdout!.on('data', (d) => { out += d; });
    child.stderr!.on('data', (d) => { err += d; });
    (child.stdio as unknown as (Socket | null)[])[5]?.on('data', (d: Buffer) => rep.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    const [code, sig] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on('close', (c, sg) => r([c, sg])));
    clearTimeout(timer);
    const status = sig ? 128 + os.signalNumber(sig) : code!;
    return { status, stdout: out, stderr: err, report: monitor ? parseMonitorMessages(Buffer.concat(rep)).report : undefined };
  } finally {
    closeSync(pfd);
    closeSync(mfd);
  }
}

type Edit = (b: Buffer) => Buffer;
const at = (off: number, f: (b: Buffer, o: number) => void): Edit => (b) => {
  const c = Buffer.from(b);
  f(c, off);
  return c;
};
const H = PlanHeader.offsets;
const R0 = PlanHeader.size;

const MALFORMED: [string, Edit, RegExp][] = [
  ['wrong magic', at(H.magic, (b, o) => b.writeUInt32LE(0x12345678, o)), /wrong magic or version/],
  ['another version', at(H.version, (b, o) => b.writeUInt32LE(PLAN.VERSION + 1, o)), /wrong magic or version/],
  ['unknown flags', at(H.flags, (b, o) => b.writeUInt32LE(1 << 30, o)), /unknown flags/],
  ['too many regions', at(H.nregions, (b, o) => b.writeUInt32LE(PLAN.MAX_REGIONS + 1, o)), /count out of range/],
  ['no filter', at(H.bpf_insns, (b, o) => b.writeUInt32LE(0, o)), /seccomp program length out of range/],
  ['too large a filter', at(H.bpf_insns, (b, o) => b.writeUInt32LE(PLAN.MAX_BPF_INSNS + 1, o)), /seccomp program length out of range/],
  ['memory size not page aligned', at(H.mem_size, (b, o) => b.writeBigUInt64LE((2n << 20n) + 1n, o)), /guest memory size/],
  ['memory over the stub', at(H.mem_size, (b, o) => b.writeBigUInt64LE(0x7f0000000000n, o)), /would overlap the stub/],
  ['entry outside memory', at(H.entry, (b, o) => b.writeBigUInt64LE(0x10n, o)), /entry point outside guest memory/],
  ['low memory too large', at(H.lowmem_size, (b, o) => b.writeUInt32LE(0x100000, o)), /low-memory image too large/],
  ['a report fd without monitor mode', at(H.report_fd, (b, o) => b.writeInt32LE(7, o)), /report fd and monitor mode disagree/],
  ['a region not page aligned', at(R0 + PlanRegion.offsets.vaddr, (b, o) => b.writeBigUInt64LE(b.readBigUInt64LE(o) + 8n, o)), /not page aligned/],
  ['a region outside memory', at(R0 + PlanRegion.offsets.vaddr, (b, o) => b.writeBigUInt64LE(0x400000n, o)), /out of range or out of order/],
  ['a writable and executable region', at(R0 + PlanRegion.offsets.prot, (b, o) => b.writeUInt32LE(7, o)), /both writable and executable/],
  ['a region past the end of the memory file', at(R0 + PlanRegion.offsets.file_offset, (b, o) => b.writeBigUInt64LE(1n << 30n, o)), /beyond the end of the memory file/],
  ['an extra section with no type', (b) => {
    // A section header in front of low memory, declared in extra_size.
    const d = decodePlan(b);
    const tables = R0 + d.regions.length * PlanRegion.size + d.moves.length * PlanFdMove.size + d.polls.length * PlanPoll.size;
    const c = Buffer.concat([b.subarray(0, tables), Buffer.alloc(8), b.subarray(tables)]);
    c.writeUInt32LE(8, H.extra_size);
    return c;
  }, /unknown or repeated plan section/],
];

for (const [name, edit, why] of MALFORMED) {
  test(`the stub refuses a plan with ${name}: exit 1, one line, nothing runs`, async (t) => {
    await withTempDir(async (dir) => {
      const { bytes, memory } = helloPlan();
      const r = await runStub(dir, 'bad', edit(bytes), memory);
      t.is(r.status, 1, r.stderr);
      t.regex(r.stderr, /^tendril: [^\n]+\n$/);
      t.regex(r.stderr, why);
      t.is(r.stdout, '', 'no guest instruction ran');
    });
  });
}

test('the stub refuses a plan truncated anywhere: exit 1, one line, nothing runs', async (t) => {
  await withTempDir(async (dir) => {
    const { bytes, memory } = helloPlan();
    const cuts = [0, 3, PlanHeader.size - 1, PlanHeader.size + 5, bytes.length - 9, bytes.length - 1];
    for (const cut of cuts) {
      const r = await runStub(dir, `cut${cut}`, bytes.subarray(0, cut), memory);
      t.is(r.status, 1, `cut at ${cut}: ${r.stderr}`);
      t.regex(r.stderr, /^tendril: launch plan (truncated|is malformed)[^\n]*\n$/, `cut at ${cut}`);
      t.is(r.stdout, '');
    }
  });
});

test('fuzzed plans (seeded mutations of the header and tables): the stub refuses or the guest runs; the stub itself never crashes', async (t) => {
  await withTempDir(async (dir) => {
    const { bytes, memory } = helloPlan(true);
    const structural = bytes.length - decodePlan(bytes).lowMemory.length - decodePlan(bytes).bpf.length;
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const pool = new Pool(2);
    const outcomes = { refused: 0, ran: 0 };
    await Promise.all(Array.from({ length: 150 }, (_, i) => {
      const c = Buffer.from(bytes);
      for (let k = 1 + rnd(3); k > 0; k--) c[rnd(structural)] ^= 1 << rnd(8);
      return pool.run(async () => {
        const r = await runStub(dir, `f${i}`, c, memory, true);
        if (r.report?.started) {
          outcomes.ran++;
          return;
        }
        outcomes.refused++;
        // Not started: a refusal, in one line, and never a crash of the stub.
        t.is(r.status, 1, `case ${i}: status ${r.status}, ${r.stderr}`);
        t.regex(r.stderr, /^tendril: [^\n]+\n$/, `case ${i}`);
        t.is(r.stdout, '', `case ${i}`);
      });
    }));
    t.log(`${outcomes.refused} refused, ${outcomes.ran} ran (a harmless mutation)`);
    t.true(outcomes.refused > 0);
  });
});

// ------------------------------------------------------------------ zygote

interface Z {
  /** Bytes through the stream (flow-controlled); with fds, one sendmsg that must take them all. */
  send(bytes: Buffer, fds?: number[]): Promise<void>;
  frames: { type: number; id: number; payload: Buffer }[];
  next(pred: (f: Z['frames'][number]) => boolean): Promise<Z['frames'][number]>;
  end(): Promise<number | null>;
  alive(): boolean;
}

function startZygote(): Z {
  const child = spawn(ZYGOTE, [STUB, '1', String(process.pid)], { stdio: ['ignore', 'ignore', 'inherit', 'pipe'], env: {} });
  const sock = child.stdio[3] as Socket;
  const fd = (sock as unknown as { _handle: { fd: number } })._handle.fd;
  const frames: Z['frames'] = [];
  const waiters: (() => void)[] = [];
  let inbox = Buffer.alloc(0);
  sock.on('data', (d: Buffer) => {
    inbox = Buffer.concat([inbox, d]);
    while (inbox.length >= ZygoteFrame.size) {
      const f = decodeStruct(ZygoteFrame, inbox);
      if (inbox.length < ZygoteFrame.size + f.len) break;
      frames.push({ type: f.type, id: f.id, payload: inbox.subarray(ZygoteFrame.size, ZygoteFrame.size + f.len) });
      inbox = inbox.subarray(ZygoteFrame.size + f.len);
    }
    for (const w of waiters.splice(0)) w();
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  return {
    frames,
    async send(bytes, fds = []) {
      if (fds.length === 0) {
        await new Promise<void>((r, j) => sock.write(bytes, (e) => (e ? j(e) : r())));
        return;
      }
      const n = os.sendWithFds(fd, bytes, fds);
      if (n !== bytes.length) throw new Error(`sendmsg: ${n}`);
    },
    next(pred) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no such frame from the zygote')), 20_000);
        const look = () => {
          const f = frames.find(pred);
          if (f) {
            clearTimeout(timer);
            resolve(f);
          } else {
            waiters.push(look);
          }
        };
        look();
      });
    },
    async end() {
      sock.end();
      return exited;
    },
    alive: () => child.exitCode === null && child.signalCode === null,
  };
}

const frame = (type: number, id: number, payload: Buffer, nfds = 0) =>
  Buffer.concat([encodeStruct(ZygoteFrame, { type, id, len: payload.length, nfds }), payload]);
/** A LAUNCH frame: its zygote_launch header (no flags: STARTED and OUTPUT as they come), then the plan. */
const launchFrame = (id: number, plan: Buffer, nfds = 0) => frame(ZYGOTE_MSG.LAUNCH, id, Buffer.concat([encodeStruct(ZygoteLaunch, {}), plan]), nfds);

function memfdOf(bytes: Buffer): number {
  const fd = os.memfdCreate('test-memory', os.MFD_CLOEXEC);
  writeFileSync(fd, bytes);
  return fd;
}

test('the zygote refuses malformed frames, one launch at a time, and keeps serving', async (t) => {
  const z = startZygote();
  try {
    await z.next((f) => f.type === ZYGOTE_MSG.HELLO);
    // A frame larger than it accepts: its payload is skipped, the launch refused.
    await z.send(frame(ZYGOTE_MSG.LAUNCH, 1, Buffer.alloc((2 << 20) + 1)));
    t.regex((await z.next((f) => f.id === 1)).payload.toString(), /larger than the stub pool accepts/);
    // An unknown frame type: said to be (Node never sends one: the server restarts a zygote that reads one), and skipped.
    await z.send(frame(99, 2, Buffer.from('junk')));
    const oos = await z.next((f) => f.id === 2);
    t.is(oos.type, ZYGOTE_MSG.OUT_OF_STEP);
    t.is(oos.payload.toString(), 'a frame of unknown type 99 (id 2, 4 bytes, 0 fds)');
    // A kill for no instance, a pause for none: ignored.
    await z.send(frame(ZYGOTE_MSG.KILL, 12345, Buffer.alloc(4)));
    await z.send(frame(ZYGOTE_MSG.PAUSE, 12345, Buffer.alloc(0)));
    // A launch that says it carries an fd but does not.
    await z.send(launchFrame(3, Buffer.alloc(64), 1));
    const f3 = await z.next((f) => f.id === 3);
    t.is(f3.type, ZYGOTE_MSG.FAILED);
    t.regex(f3.payload.toString(), /without its fds/);
    // A garbage plan: the stub refuses it; that launch ends with the stub's own message, nothing ran.
    const mem = memfdOf(helloPlan().memory);
    await z.send(launchFrame(4, Buffer.alloc(200, 0x41), 1), [mem]);
    const e4 = await z.next((f) => f.id === 4 && f.type === ZYGOTE_MSG.EXIT);
    const ex = decodeStruct(ZygoteExit, e4.payload);
    t.is((ex.wait_status >> 8) & 0xff, 1);
    t.regex(e4.payload.toString('utf8', ZygoteExit.size, ZygoteExit.size + ex.stderr_len), /launch plan has the wrong magic or version/);
    t.false(z.frames.some((f) => f.id === 4 && f.type === ZYGOTE_MSG.OUTPUT), 'no output: nothing ran');
    // And a good launch still runs.
    const { bytes, memory } = helloPlan();
    const good = encodePlan(decodePlanToGuest(bytes), decodePlan(bytes).bpf, { deviceSrc: [], imageSrc: -1 });
    const mem2 = memfdOf(memory);
    await z.send(launchFrame(5, good, 1), [mem2]);
    const e5 = await z.next((f) => f.id === 5 && f.type === ZYGOTE_MSG.EXIT);
    t.is(decodeStruct(ZygoteExit, e5.payload).wait_status, 0);
    t.regex(Buffer.concat(z.frames.filter((f) => f.id === 5 && f.type === ZYGOTE_MSG.OUTPUT).map((f) => f.payload)).toString(), /SUCCESS/);
    os.close(mem);
    os.close(mem2);
    t.true(z.alive());
  } finally {
    t.is(await z.end(), 0, 'the end of its control socket ends it cleanly');
  }
});

test('the zygote survives a seeded stream of fuzzed frames and still launches afterwards', async (t) => {
  const z = startZygote();
  try {
    await z.next((f) => f.type === ZYGOTE_MSG.HELLO);
    let seed = 777;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const types = [ZYGOTE_MSG.LAUNCH, ZYGOTE_MSG.KILL, ZYGOTE_MSG.PAUSE, ZYGOTE_MSG.RESUME, 0, 7, 1000, 0xffffffff];
    for (let i = 0; i < 300; i++) {
      const payload = Buffer.alloc(rnd(300));
      for (let k = 0; k < payload.length; k++) payload[k] = rnd(256);
      await z.send(frame(types[rnd(types.length)], 100 + i, payload, rnd(4) === 0 ? rnd(3) : 0));
    }
    const { bytes, memory } = helloPlan();
    const good = encodePlan(decodePlanToGuest(bytes), decodePlan(bytes).bpf, { deviceSrc: [], imageSrc: -1 });
    const mem = memfdOf(memory);
    await z.send(launchFrame(9999, good, 1), [mem]);
    const e = await z.next((f) => f.id === 9999 && (f.type === ZYGOTE_MSG.EXIT || f.type === ZYGOTE_MSG.FAILED));
    t.is(e.type, ZYGOTE_MSG.EXIT, e.payload.toString());
    t.is(decodeStruct(ZygoteExit, e.payload).wait_status, 0);
    os.close(mem);
    t.true(z.alive());
  } finally {
    t.is(await z.end(), 0);
  }
});

/** The guest half of an encoded plan, to re-encode it for another hand-over. */
function decodePlanToGuest(bytes: Buffer): GuestPlan {
  const d = decodePlan(bytes);
  return {
    memSize: d.header.mem_size, entry: d.header.entry, flags: d.header.flags & ~(PLAN_FLAG.MONITOR | PLAN_FLAG.WAIT_START | PLAN_FLAG.SEND_PIDFD),
    regions: d.regions.map(({ vaddr, length, file_offset, prot }) => ({ vaddr, length, file_offset, prot })),
    lowMemory: d.lowMemory, deviceFds: d.moves.map((m) => m.dst), polls: d.polls.map((p) => ({ fd: p.fd, data: p.data })),
  };
}

test('serve\'s side of the zygote: a frame it reports out of step ends that zygote (launches in flight fail), never the server', async (t) => {
  const { Zygote } = await import('../supervisor/serve/zygote.js');
  const z = new Zygote(1);
  await z.ready;
  const pid = z.pid!;
  // What a lost byte looks like to the zygote: a header of a type Node never sends.
  (z as unknown as { write(frame: Buffer, fds: number[]): void }).write(frame(0xffffffff, 0, Buffer.alloc(0)), []);
  t.regex(await z.ended, /a frame of unknown type 4294967295 .*: the control stream is out of step/);
  t.false(z.alive);
  await waitFor('the zygote to be gone', () => !existsSync(`/proc/${pid}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')));
});
