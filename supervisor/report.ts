// How a guest ended, from its monitor's messages (loader/formats.ts
// MonitorHello and MonitorReport, written by native/stub/monitor.c), and the
// one line that tells a user why: the forbidden system call by name, the
// fault by address and kind, the stack when it was the stack.

import { SPT_GUEST_MIN_BASE } from '../loader/abi.js';
import { decodeStruct, MonitorHello, MonitorReport, REPORT, REPORT_FLAG } from '../loader/formats.js';
import { syscallName } from '../filters/libseccomp.js';

export interface GuestReport {
  guestPid: number;
  /** The guest ran; false if the stub failed before the jump (its own message went to stderr). */
  started: boolean;
  exit?: number;
  signal?: number;
  core: boolean;
  /** For a seccomp kill: the forbidden call. */
  syscall?: number;
  /** Instruction and stack pointer at the end. */
  ip?: bigint;
  sp?: bigint;
  fault?: { signal: number; code: number; addr: bigint };
  utimeUs: number;
  stimeUs: number;
  maxrssKb: number;
  /** Isolated: the OOM killer of the guest's own memory cgroup ended it. */
  oom: boolean;
  /** Snapshot creation: the guest reached the point and was dumped (then killed on purpose). */
  snapshot?: boolean;
}

export interface GuestEnd {
  /** Shell-style status: exit code, or 128 + signal. */
  status: number;
  signal?: number;
  report?: GuestReport;
  /** One line for humans when the guest did not simply exit. */
  reason?: string;
  durationMs: number;
}

/** The hello (guest pid) and the report, from the bytes the monitor wrote; either may be missing. */
export function parseMonitorMessages(buf: Buffer): { guestPid?: number; report?: GuestReport } {
  let o = 0;
  let guestPid: number | undefined;
  if (buf.length >= MonitorHello.size && buf.readUInt32LE(0) === REPORT.HELLO_MAGIC) {
    guestPid = decodeStruct(MonitorHello, buf, 0).guest_pid;
    o = MonitorHello.size;
  }
  if (buf.length - o < MonitorReport.size || buf.readUInt32LE(o) !== REPORT.MAGIC) return { guestPid };
  return { guestPid, report: decodeReport(buf.subarray(o, o + MonitorReport.size)) };
}

export function decodeReport(buf: Buffer): GuestReport {
  const r = decodeStruct(MonitorReport, buf);
  const has = (f: number) => (r.flags & f) !== 0;
  const signaled = has(REPORT_FLAG.SIGNALED);
  return {
    guestPid: r.guest_pid,
    started: has(REPORT_FLAG.STARTED),
    ...(signaled ? { signal: r.status } : { exit: r.status }),
    core: has(REPORT_FLAG.CORE),
    ...(has(REPORT_FLAG.REGS) ? { ip: r.regs_ip, sp: r.regs_sp, ...(signaled && r.status === 31 ? { syscall: Number(r.regs_syscall) } : {}) } : {}),
    ...(has(REPORT_FLAG.FAULT) ? { fault: { signal: r.fault_signal, code: r.fault_code, addr: r.fault_addr } } : {}),
    utimeUs: Number(r.utime_us),
    stimeUs: Number(r.stime_us),
    maxrssKb: Number(r.maxrss_kb),
    oom: has(REPORT_FLAG.OOM),
    ...(has(REPORT_FLAG.SNAPSHOT) ? { snapshot: true } : {}),
  };
}

const SIGNAMES: Record<number, string> = {
  1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL', 5: 'SIGTRAP', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE', 9: 'SIGKILL',
  10: 'SIGUSR1', 11: 'SIGSEGV', 12: 'SIGUSR2', 13: 'SIGPIPE', 14: 'SIGALRM', 15: 'SIGTERM', 24: 'SIGXCPU', 25: 'SIGXFSZ', 31: 'SIGSYS',
};

export function signalName(sig: number): string {
  return SIGNAMES[sig] ?? `signal ${sig}`;
}

/** si_code of a SIGSEGV (asm-generic/siginfo.h). SEGV_PKUERR is what execute-only pages give on CPUs with protection keys. */
const SEGV_CODES: Record<number, string> = {
  1: 'address not mapped',
  2: 'access not permitted by the page protection',
  3: 'outside the bounds of a bounds register',
  4: 'access denied by a memory protection key: the page is execute-only (this CPU has protection keys)',
};
const BUS_CODES: Record<number, string> = { 1: 'invalid address alignment', 2: 'address beyond the end of the mapped file', 3: 'hardware error' };
const ILL_CODES: Record<number, string> = {
  1: 'illegal opcode', 2: 'illegal operand', 3: 'illegal addressing mode', 4: 'illegal trap', 5: 'privileged opcode',
  6: 'privileged register', 7: 'coprocessor error', 8: 'internal stack error',
};
const FPE_CODES: Record<number, string> = {
  1: 'integer divide by zero', 2: 'integer overflow', 3: 'floating-point divide by zero', 4: 'floating-point overflow',
  5: 'floating-point underflow', 6: 'floating-point inexact result', 7: 'invalid floating-point operation', 8: 'subscript out of range',
};

const hex = (v: bigint) => `0x${v.toString(16)}`;
/** How far from the stack pointer a fault still counts as the stack's (a large frame, a red zone). */
const STACK_REACH = 64n << 10n;

/**
 * The stack grows down from the top of guest memory through the heap, with
 * no guard page (abi.md §1): an overflow writes over the heap and .bss
 * unnoticed and faults only when it reaches read-only data or code, or
 * leaves guest memory. A fault right at the stack pointer is that.
 */
function stackHint(r: GuestReport, addr: bigint): string {
  if (r.sp === undefined) return '';
  const near = addr <= r.sp + 4096n && addr + STACK_REACH >= r.sp;
  if (!near) return '';
  return `; the stack pointer was at ${hex(r.sp)}: probably a stack overflow (the stack grows down into the heap and the image` +
    `${addr < SPT_GUEST_MIN_BASE ? ', and here past the bottom of guest memory' : ''}; try a larger --mem or smaller stack frames)`;
}

/** Why the guest ended, in one line, or undefined for an ordinary exit. */
export function explain(r: GuestReport | undefined, signal: number | undefined): string | undefined {
  if (signal === undefined) return undefined;
  const f = r?.fault && r.fault.signal === signal ? r.fault : undefined;
  const at = r?.ip !== undefined ? ` by the instruction at ${hex(r.ip)}` : '';
  switch (signal) {
    case 31:
      if (r?.syscall !== undefined) {
        // The kernel rolled rip back to just after the 2-byte syscall instruction.
        const ip = r.ip !== undefined ? ` at ${hex(r.ip - 2n)}` : '';
        return `guest made a forbidden system call: ${syscallName(r.syscall) ?? 'unknown'} (${r.syscall})${ip}; the sandbox killed it (SIGSYS)`;
      }
      break;
    case 11:
    case 7:
      if (f) {
        const kind = (signal === 11 ? SEGV_CODES : BUS_CODES)[f.code] ?? `si_code ${f.code}`;
        return `guest memory fault at ${hex(f.addr)} (${kind})${at}${stackHint(r!, f.addr)}; killed by ${signalName(signal)}`;
      }
      break;
    case 4:
      if (f) return `guest executed an illegal instruction (${ILL_CODES[f.code] ?? `si_code ${f.code}`}) at ${hex(f.addr)}; killed by SIGILL`;
      break;
    case 8:
      if (f) return `guest arithmetic fault (${FPE_CODES[f.code] ?? `si_code ${f.code}`}) at ${hex(f.addr)}; killed by SIGFPE`;
      break;
    case 5:
      if (f) return `guest hit a breakpoint or trap at ${hex(f.addr)} with no debugger attached; killed by SIGTRAP`;
      break;
    case 9:
      if (r?.oom) return 'guest touched more memory than its cgroup allows (--mem-limit, or --mem plus a margin); the cgroup\'s OOM killer stopped it (SIGKILL)';
      return 'guest was killed (SIGKILL)';
    default:
  }
  return `guest was killed by ${signalName(signal)}`;
}

/**
 * The guest's end from the monitor's report and the wait status of the
 * process we started (the monitor, which ends the way the guest did).
 */
export function guestEnd(report: GuestReport | undefined, code: number | null, signal: number | undefined, started: bigint): GuestEnd {
  const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
  const sig = report ? report.signal : signal;
  const status = sig !== undefined ? 128 + sig : (report?.exit ?? code ?? 1);
  return { status, signal: sig, report, reason: explain(report, sig), durationMs };
}
