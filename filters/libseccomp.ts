// libseccomp (libseccomp.so.2, in Debian's base system) through koffi. Only
// the export half is used: the filter is built and exported here, and loaded
// by the stub, never by Node (seccomp_load would sandbox the supervisor).

import { closeSync, fstatSync, readSync } from 'node:fs';
import koffi from 'koffi';
import { FilterError } from './errors.js';

export const SCMP_ACT_KILL_PROCESS = 0x80000000;
export const SCMP_ACT_ALLOW = 0x7fff0000;
/** SECCOMP_RET_TRACE(msg): the call stops for a tracer with PTRACE_O_TRACESECCOMP, which lets it run or answers it (ENOSYS without one). */
export const SCMP_ACT_TRACE = (msg: number) => (0x7ff00000 | (msg & 0xffff)) >>> 0;
export const SCMP_FLTATR_ACT_BADARCH = 2;
const MFD_CLOEXEC = 1;

interface Lib {
  init: (defAction: number) => unknown;
  attrSet: (ctx: unknown, attr: number, value: number) => number;
  ruleAddArray: (ctx: unknown, action: number, nr: number, count: number, args: Buffer | null) => number;
  exportBpf: (ctx: unknown, fd: number) => number;
  exportPfc: (ctx: unknown, fd: number) => number;
  release: (ctx: unknown) => void;
  memfdCreate: (name: string, flags: number) => number;
  resolveNum: (arch: number, nr: number) => string | null;
}

let lib: Lib | undefined;

function load(): Lib {
  if (lib) return lib;
  let seccomp: ReturnType<typeof koffi.load>;
  try {
    seccomp = koffi.load('libseccomp.so.2');
  } catch (e) {
    throw new FilterError(`cannot load libseccomp.so.2 (${(e as Error).message})`,
      'install it: apt-get install libseccomp2');
  }
  const libc = koffi.load('libc.so.6');
  const ctxPtr = koffi.pointer('scmp_filter_ctx', koffi.opaque());
  lib = {
    init: seccomp.func('seccomp_init', ctxPtr, ['uint32']),
    attrSet: seccomp.func('seccomp_attr_set', 'int', [ctxPtr, 'int', 'uint32']),
    ruleAddArray: seccomp.func('seccomp_rule_add_array', 'int', [ctxPtr, 'uint32', 'int', 'uint', 'void *']),
    exportBpf: seccomp.func('seccomp_export_bpf', 'int', [ctxPtr, 'int']),
    exportPfc: seccomp.func('seccomp_export_pfc', 'int', [ctxPtr, 'int']),
    release: seccomp.func('seccomp_release', 'void', [ctxPtr]),
    memfdCreate: libc.func('memfd_create', 'int', ['str', 'uint']),
    resolveNum: seccomp.func('seccomp_syscall_resolve_num_arch', 'str', ['uint32', 'int']),
  };
  return lib;
}

/** struct scmp_arg_cmp: { unsigned arg; enum op; u64 datum_a; u64 datum_b }, 24 bytes. */
export function packArgs(args: { arg: number; op: number; value: bigint }[]): Buffer {
  const buf = Buffer.alloc(24 * args.length);
  args.forEach((a, i) => {
    buf.writeUInt32LE(a.arg, i * 24);
    buf.writeUInt32LE(a.op, i * 24 + 4);
    buf.writeBigUInt64LE(BigInt.asUintN(64, a.value), i * 24 + 8);
  });
  return buf;
}

/** A libseccomp filter context with KILL_PROCESS as both default and bad-arch action (abi.md §17 D4). */
export class SeccompContext {
  private readonly lib: Lib;
  private ctx: unknown;

  constructor() {
    this.lib = load();
    this.ctx = this.lib.init(SCMP_ACT_KILL_PROCESS);
    if (!this.ctx) throw new FilterError('seccomp_init failed');
    this.check(this.lib.attrSet(this.ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), 'seccomp_attr_set(ACT_BADARCH)');
  }

  /** Allows the call when its arguments match; `action` replaces ALLOW for a call its tracer must see (snapshots, record and replay). */
  allow(nr: number, args: { arg: number; op: number; value: bigint }[], what: string, action = SCMP_ACT_ALLOW): void {
    const packed = args.length ? packArgs(args) : null;
    this.check(this.lib.ruleAddArray(this.ctx, action, nr, args.length, packed), `seccomp_rule_add(${what})`);
  }

  exportBpf(): Buffer {
    return this.export((fd) => this.lib.exportBpf(this.ctx, fd), 'seccomp_export_bpf');
  }

  exportPfc(): string {
    return this.export((fd) => this.lib.exportPfc(this.ctx, fd), 'seccomp_export_pfc').toString('utf8');
  }

  release(): void {
    if (this.ctx) this.lib.release(this.ctx);
    this.ctx = undefined;
  }

  private export(fn: (fd: number) => number, what: string): Buffer {
    const fd = this.lib.memfdCreate('tendril-filter', MFD_CLOEXEC);
    if (fd < 0) throw new FilterError(`memfd_create failed while exporting the filter`);
    try {
      this.check(fn(fd), what);
      const size = fstatSync(fd).size;
      const out = Buffer.alloc(size);
      let got = 0;
      while (got < size) got += readSync(fd, out, got, size - got, got);
      return out;
    } finally {
      closeSync(fd);
    }
  }

  private check(rc: number, what: string): void {
    if (rc < 0) throw new FilterError(`${what} failed: errno ${-rc}`, 'this is a bug in tendril\'s policy; please report it');
  }
}

/** The x86_64 name of a syscall number ("dup" for 32), or undefined. */
export function syscallName(nr: number): string | undefined {
  const AUDIT_ARCH_X86_64 = 0xc000003e;
  return load().resolveNum(AUDIT_ARCH_X86_64, nr) ?? undefined;
}
