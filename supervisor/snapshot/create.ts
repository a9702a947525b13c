// `tendril snapshot create`: boot a guest with its devices, stop it at its
// Nth blocking yield, and write what a restore needs to a new directory:
//   DIR/memory         guest memory, sparse, at file offset = guest address
//   DIR/snapshot.json  everything else (loader/snapshot.ts)
// The guest runs supervised: the stub's monitor (native/stub/snapshot_dump.c)
// catches the point and dumps memory and registers to the two fds given to
// it; this module decides everything else (which regions to map and how,
// the resume registers, the metadata) and writes the directory under a
// temporary name, renamed into place only when complete, so a failed
// creation leaves nothing behind.

import { createHash } from 'node:crypto';
import { chmodSync, closeSync, existsSync, fstatSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { PAGE_SIZE } from '../../loader/abi.js';
import { SnapshotError } from '../../loader/errors.js';
import {
  decodeStruct, encodeStruct, PLAN, PLAN_FLAG, PLAN_SECTION, SNAPSHOT, SNAPSHOT_STEP, SnapshotCpu, SnapshotDump, SnapshotRequest, SnapshotRun,
} from '../../loader/formats.js';
import { memoryImage } from '../../loader/plan.js';
import {
  encodeSnapshotMeta, parseSnapshotMeta, SNAPSHOT_MEMORY, SNAPSHOT_METADATA, SNAPSHOT_POINT_SYSCALL, type SnapshotMeta, type SnapshotRegion,
} from '../../loader/snapshot.js';
import { version } from '../cli.js';
import { compileLaunch, memoryFileFd, prepareLaunch, releaseLaunch } from '../launch.js';
import { log } from '../log.js';
import type { GuestImage } from '../../loader/image.js';
import type { RunOptions } from '../options.js';
import * as os from '../os.js';
import { signalName, spawnPlan } from '../supervise.js';

export interface CreateRequest {
  out: string;
  /** The Nth yield whose deadline lies in the future (1 = the first). */
  at: number;
  run: RunOptions;
  /** The image already loaded (serve's registry); else run.guest is read. */
  image?: GuestImage;
  /** Collect the guest's console (up to this many bytes) instead of sharing ours. */
  collectOutput?: number;
  /** Kill the guest if it has not reached the point after this long. */
  timeoutMs?: number;
  /** Pass our SIGINT, SIGTERM and SIGHUP on to the guest (the CLI; default true). */
  forwardSignals?: boolean;
}

export interface CreateResult {
  dir: string;
  meta: SnapshotMeta;
  /** Bytes of guest memory stored (pages × 4 KiB) and the memory file's allocated size. */
  storedBytes: number;
  allocatedBytes: number;
  /** The guest's console until the point, when collected. */
  output?: Buffer;
  /** From the start to the point (guest boot and init included), the dump, and everything. */
  runMs: number;
  dumpMs: number;
  totalMs: number;
}

const STEP_NAMES: Record<number, string> = {
  [SNAPSHOT_STEP.REGISTERS]: 'reading the registers',
  [SNAPSHOT_STEP.FPU]: 'reading the FPU/SSE/AVX state',
  [SNAPSHOT_STEP.OPEN_PROC]: 'opening /proc/PID/mem and pagemap',
  [SNAPSHOT_STEP.PAGEMAP]: 'reading /proc/PID/pagemap',
  [SNAPSHOT_STEP.READ_MEMORY]: 'reading guest memory',
  [SNAPSHOT_STEP.WRITE_MEMORY]: 'writing the memory file',
  [SNAPSHOT_STEP.WRITE_STATE]: 'writing the register state',
  [SNAPSHOT_STEP.BUFFER]: 'allocating a buffer',
};

/** The user-code selectors of x86_64 Linux: a guest that changed a segment register cannot be resumed faithfully. */
const USER_CS = 0x33n;
const USER_SS = 0x2bn;

const PROT_READ = 1;
const PROT_WRITE = 2;
const PROT_EXEC = 4;

/** Data regions at most: each is one mmap (a few µs) in every restore. */
const DATA_REGION_BUDGET = 16;
/** Gaps of zeros up to this size between stored runs are mapped from the file too (they read as zeros there as well). */
const MERGE_GAP = 64n * PAGE_SIZE;

function readAllFd(fd: number): Buffer {
  const size = fstatSync(fd).size;
  const out = Buffer.alloc(size);
  let got = 0;
  while (got < size) {
    const n = readSync(fd, out, got, size - got, got);
    if (n === 0) break;
    got += n;
  }
  return out.subarray(0, got);
}

/**
 * The regions a restore maps from the memory file: every image segment with
 * its ELF protection (its bytes are in the file), and the stored runs of the
 * rest of memory (heap, stack, low memory) with the heap's protection, a few
 * large regions rather than many small ones. Whatever no region covers is
 * the stub's anonymous memory: zeros, like the pages the dump left out.
 */
export function snapshotRegions(segments: { start: bigint; end: bigint; prot: number }[], runs: { start: bigint; pages: bigint }[],
  dataProt: number): SnapshotRegion[] {
  const segs = [...segments].sort((a, b) => (a.start < b.start ? -1 : 1));
  const inSeg = (a: bigint) => segs.find((s) => a >= s.start && a < s.end);
  // Runs clipped to what lies outside the segments.
  const pieces: { start: bigint; end: bigint }[] = [];
  for (const r of runs) {
    let a = r.start;
    const end = r.start + r.pages * PAGE_SIZE;
    while (a < end) {
      const s = inSeg(a);
      if (s) {
        a = s.end;
        continue;
      }
      const next = segs.find((x) => x.start > a)?.start ?? end;
      const stop = next < end ? next : end;
      pieces.push({ start: a, end: stop });
      a = stop;
    }
  }
  pieces.sort((a, b) => (a.start < b.start ? -1 : 1));
  const separated = (a: { end: bigint }, b: { start: bigint }) => segs.some((s) => s.start >= a.end && s.start < b.start);
  const merged: { start: bigint; end: bigint }[] = [];
  for (const p of pieces) {
    const last = merged[merged.length - 1];
    if (last && p.start - last.end <= MERGE_GAP && !separated(last, p)) last.end = p.end;
    else merged.push({ ...p });
  }
  const budget = Math.min(DATA_REGION_BUDGET, PLAN.MAX_REGIONS - segs.length);
  while (merged.length > budget) {
    let best = -1;
    for (let i = 0; i + 1 < merged.length; i++) {
      if (separated(merged[i], merged[i + 1])) continue;
      if (best < 0 || merged[i + 1].start - merged[i].end < merged[best + 1].start - merged[best].end) best = i;
    }
    if (best < 0) break;
    merged[best].end = merged[best + 1].end;
    merged.splice(best + 1, 1);
  }
  return [
    ...segs.map((s) => ({ vaddr: s.start, length: s.end - s.start, prot: s.prot })),
    ...merged.map((p) => ({ vaddr: p.start, length: p.end - p.start, prot: dataProt })),
  ].sort((a, b) => (a.vaddr < b.vaddr ? -1 : 1));
}

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

/** A directory to create: not there yet, its parent there. */
function checkOutput(out: string): string {
  const dir = resolve(out);
  if (existsSync(dir)) throw new SnapshotError(`${out} already exists`, 'snapshot create writes a new directory: remove it or name another');
  if (!existsSync(dirname(dir))) throw new SnapshotError(`${dirname(out)}: no such directory`, `create it first: mkdir -p ${dirname(out)}`);
  return dir;
}

export async function createSnapshot(req: CreateRequest): Promise<CreateResult> {
  const t0 = process.hrtime.bigint();
  const dir = checkOutput(req.out);
  const p = prepareLaunch(req.run, req.image);
  let tmp: string | undefined;
  let memFd = -1;
  let stateFd = -1;
  let released = false;
  try {
    // The yields stop for the monitor; every call is still checked exactly as for a fresh guest.
    const c = compileLaunch(p, undefined, { trace: ['epoll_pwait', 'timerfd_settime'] });
    // Dumpable while it runs to the point, so the monitor may read /proc/PID/mem without privileges.
    const plan = { ...c.plan, flags: c.plan.flags | PLAN_FLAG.DUMPABLE };
    tmp = join(dirname(dir), `.${basename(dir)}.tmp-${process.pid}`);
    mkdirSync(tmp, { mode: 0o755 });
    const memPath = join(tmp, SNAPSHOT_MEMORY);
    memFd = openSync(memPath, 'wx+', 0o644);
    ftruncateSync(memFd, Number(p.memSize));
    stateFd = os.memfdCreate('tendril-snapshot-state', os.MFD_CLOEXEC);
    if (stateFd < 0) throw new SnapshotError(`memfd_create failed: ${os.strerror(os.errno())}`);

    const spawned = spawnPlan({
      plan, bpf: c.filter.bpf, deviceFds: p.devices.map((d) => d.hostfd), memFd: memoryFileFd(c.memory), argv0: `tendril: snapshot ${basename(p.image.file)}`,
      flags: PLAN_FLAG.SNAPSHOT, extraFds: [memFd, stateFd],
      sections: ([memAt, stateAt]) => [{ type: PLAN_SECTION.SNAPSHOT, data: encodeStruct(SnapshotRequest, { at: req.at, mem_fd: memAt, state_fd: stateAt }) }],
      console: req.collectOutput !== undefined ? 'pipe' : 'inherit',
    });
    const output: Buffer[] = [];
    let outputBytes = 0;
    const collect = (d: Buffer) => {
      const room = (req.collectOutput ?? 0) - outputBytes;
      if (room > 0) output.push(d.subarray(0, room));
      outputBytes += d.length;
    };
    spawned.child.stdout?.on('data', collect);
    spawned.child.stderr?.on('data', collect);
    let timedOut = false;
    const timer = req.timeoutMs === undefined ? undefined : setTimeout(() => {
      timedOut = true;
      spawned.child.kill('SIGKILL');
    }, req.timeoutMs);
    releaseLaunch(p); // the child has them now
    released = true;
    const forward = (sig: NodeJS.Signals) => spawned.child.kill(sig);
    const signals = req.forwardSignals === false ? [] : ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
    for (const sig of signals) process.on(sig, forward);
    const end = await spawned.done;
    if (timer) clearTimeout(timer);
    for (const sig of signals) process.off(sig, forward);
    const tPoint = process.hrtime.bigint();
    log.info({ status: end.status, snapshot: end.report?.snapshot ?? false, ms: end.durationMs }, 'guest stopped');

    if (!end.report?.snapshot) {
      if (timedOut) {
        throw new SnapshotError(`the guest did not reach ${req.at === 1 ? 'its first yield' : `yield ${req.at}`} with a deadline in the future within ${req.timeoutMs} ms; nothing to snapshot`,
          'a guest is snapshotted where it blocks in solo5_yield(); give it more time, or check that it gets there');
      }
      const how = end.report && !end.report.started ? 'tendril could not start the guest'
        : end.signal !== undefined ? `guest was killed by ${signalName(end.signal)}${end.reason ? ` (${end.reason})` : ''}`
          : `guest exited with status ${end.status}`;
      const point = req.at === 1 ? 'its first yield with a deadline in the future' : `yield ${req.at} of its yields with a deadline in the future`;
      const hint = end.report && !end.report.started ? undefined
        : req.at === 1 ? 'a guest is snapshotted where it blocks in solo5_yield() with a deadline ahead; this one never did'
          : 'it ended before that many: give a smaller N in --at=yield:N';
      throw new SnapshotError(`${how} before reaching ${point}; nothing to snapshot`, hint);
    }
    const state = readAllFd(stateFd);
    if (state.length < SnapshotDump.size || state.readUInt32LE(0) !== SNAPSHOT.DUMP_MAGIC) {
      throw new SnapshotError('the monitor stopped the guest but wrote no snapshot state', 'this is a bug in tendril; please report it');
    }
    const dump = decodeStruct(SnapshotDump, state, 0);
    if (dump.error) {
      throw new SnapshotError(`writing the snapshot failed while ${STEP_NAMES[dump.error_step] ?? `step ${dump.error_step}`}: ${os.strerror(dump.error)}`,
        dump.error_step === SNAPSHOT_STEP.WRITE_MEMORY ? `is there room for ${p.memSize >> 20n} MiB (sparse) in ${dirname(dir)}?` : undefined);
    }
    const cpu = decodeStruct(SnapshotCpu, state, SnapshotDump.size);
    const xsaveAt = SnapshotDump.size + SnapshotCpu.size;
    const xsave = Buffer.from(state.subarray(xsaveAt, xsaveAt + cpu.xsave_size));
    const runsAt = xsaveAt + cpu.xsave_size;
    if (state.length !== runsAt + Number(dump.nruns) * SnapshotRun.size || xsave.length !== cpu.xsave_size) {
      throw new SnapshotError('the snapshot state the monitor wrote is truncated', 'this is a bug in tendril; please report it');
    }
    const runs = Array.from({ length: Number(dump.nruns) }, (_, i) => decodeStruct(SnapshotRun, state, runsAt + i * SnapshotRun.size));

    const selectors = { cs: dump.cs, ss: dump.ss, ds: dump.ds, es: dump.es, fs: dump.fs, gs: dump.gs };
    const want = { cs: USER_CS, ss: USER_SS, ds: 0n, es: 0n, fs: 0n, gs: 0n };
    for (const [k, v] of Object.entries(selectors)) {
      if (v !== want[k as keyof typeof want]) {
        throw new SnapshotError(`the guest loaded its ${k} segment register (0x${v.toString(16)}); tendril cannot snapshot a guest that changes segment registers`);
      }
    }
    if (dump.orig_rax !== BigInt(SNAPSHOT_POINT_SYSCALL)) throw new SnapshotError(`the guest was stopped in system call ${dump.orig_rax}, not epoll_pwait`, 'this is a bug in tendril; please report it');
    // Resume just after the epoll_pwait, which then returns 0 (no event): the yield returns as if its
    // deadline had passed. rcx and r11 already hold what the syscall instruction left there.
    const syscallAt = cpu.rip - 2n;
    const insn = Buffer.alloc(2);
    readSync(memFd, insn, 0, 2, Number(syscallAt));
    if (insn[0] !== 0x0f || insn[1] !== 0x05) {
      throw new SnapshotError(`the guest's epoll_pwait at 0x${syscallAt.toString(16)} is not a syscall instruction`, 'this is a bug in tendril; please report it');
    }
    const resume = { ...cpu, rax: 0n };
    const dataProt = PROT_READ | PROT_WRITE | (req.run.xExecHeap ? PROT_EXEC : 0);
    const regions = snapshotRegions(memoryImage(p.segments).regions.map((r) => ({ start: r.vaddr, end: r.vaddr + r.length, prot: r.prot })),
      runs.map((r) => ({ start: r.start, pages: r.pages })), dataProt);

    const meta: SnapshotMeta = {
      tendril: version(),
      created: new Date().toISOString(),
      guest: { file: req.image ? req.image.file : resolve(req.run.guest), sha256: createHash('sha256').update(p.image.bytes).digest('hex') },
      cmdline: p.cmdline,
      memSize: p.memSize,
      xExecHeap: req.run.xExecHeap,
      manifest: p.image.manifest,
      devices: p.devices.map((d) => ({ name: d.name, kind: d.kind, ...(d.attachment.net ? { net: d.attachment.net } : {}), ...(d.attachment.block ? { block: d.attachment.block } : {}) })),
      point: { yield: dump.yields, monotonicNs: dump.monotonic_ns, deadlineNs: dump.deadline_ns, bootId: bootId() },
      lowMemorySize: c.plan.lowMemory.length,
      memory: { pages: Number(dump.pages), regions },
      cpu: resume,
      xsave,
    };
    const text = encodeSnapshotMeta(meta);
    parseSnapshotMeta(SNAPSHOT_METADATA, text); // what a restore will accept: refuse to write anything else
    writeFileSync(join(tmp, SNAPSHOT_METADATA), text, { mode: 0o444 });
    chmodSync(memPath, 0o444);
    const allocatedBytes = fstatSync(memFd).blocks * 512;
    closeSync(memFd);
    memFd = -1;
    renameSync(tmp, dir);
    tmp = undefined;
    const done = process.hrtime.bigint();
    return {
      dir, meta, ...(req.collectOutput !== undefined ? { output: Buffer.concat(output) } : {}), storedBytes: Number(dump.pages) * Number(PAGE_SIZE), allocatedBytes,
      // hrtime is CLOCK_MONOTONIC, the clock the monitor stamped the point with.
      runMs: Number(dump.monotonic_ns - t0) / 1e6, dumpMs: Number(tPoint - dump.monotonic_ns) / 1e6, totalMs: Number(done - t0) / 1e6,
    };
  } finally {
    if (memFd >= 0) closeSync(memFd);
    if (stateFd >= 0) closeSync(stateFd);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
    if (!released) releaseLaunch(p);
  }
}
