// Can this CPU resume a snapshot's state? The stub describes this CPU once
// per process (`tendril-stub --cpu`: a snapshot_cpu with no registers); the
// saved description must be a subset of it: every instruction-set feature
// the guest may have detected at boot, every XSAVE state component, and the
// same standard-format layout for each component. The stub never executes
// cpuid on a restore (it costs tens of µs under virtualization).

import { spawnSync } from 'node:child_process';
import { SnapshotError } from '../../loader/errors.js';
import { decodeStruct, SNAPSHOT, SNAPSHOT_CPU_FLAG, SnapshotCpu } from '../../loader/formats.js';
import type { SnapshotCpuState } from '../../loader/snapshot.js';
import { EnvironmentError } from '../errors.js';
import { STUB_PATH } from '../paths.js';

const XFEATURE_PKRU = 9n;
const HINT = 'restore it on a machine with the same CPU features as the one that made it, or make a new snapshot here';

let host: SnapshotCpuState | undefined;

/** This CPU, as the stub sees it (cached for the process). */
export function hostCpu(): SnapshotCpuState {
  if (host) return host;
  const r = spawnSync(STUB_PATH, ['--cpu'], { maxBuffer: 1 << 16 });
  if (r.status !== 0 || r.stdout.length !== SnapshotCpu.size) {
    throw new EnvironmentError(`cannot ask the stub about this CPU (${STUB_PATH} --cpu: ${r.error?.message ?? `exit ${r.status}`})`,
      'rebuild tendril: npm run build');
  }
  host = decodeStruct(SnapshotCpu, r.stdout);
  return host;
}

const WORDS = [
  ['cpuid_1_ecx', 'cpuid 1 ecx'], ['cpuid_1_edx', 'cpuid 1 edx'], ['cpuid_7_ebx', 'cpuid 7 ebx'], ['cpuid_7_ecx', 'cpuid 7 ecx'],
  ['cpuid_7_edx', 'cpuid 7 edx'], ['cpuid_81_ecx', 'cpuid 0x80000001 ecx'], ['cpuid_81_edx', 'cpuid 0x80000001 edx'], ['cpuid_d1_eax', 'cpuid 0xd.1 eax'],
] as const;

const hex = (v: bigint | number) => `0x${v.toString(16)}`;

/**
 * Refuses a saved CPU state this CPU cannot resume, in one line naming what
 * is missing; returns the XRSTOR mask to load it with: the saved components,
 * less PKRU (the kernel's, for this process's execute-only text) and less
 * the components this CPU enables only on first use when the guest was not
 * using them (loading them would fault).
 */
export function restoreMask(where: string, saved: SnapshotCpuState, xsave: Buffer, here: SnapshotCpuState = hostCpu()): bigint {
  for (const [k, name] of WORDS) {
    const missing = (saved[k] & ~here[k]) >>> 0;
    if (missing) throw new SnapshotError(`${where}: snapshot was made on a CPU with features this one lacks: ${name} bits ${hex(missing)}`, HINT);
  }
  if (!(saved.flags & SNAPSHOT_CPU_FLAG.XSAVE)) return 0n;
  if (!(here.flags & SNAPSHOT_CPU_FLAG.XSAVE)) throw new SnapshotError(`${where}: snapshot holds XSAVE state but this CPU or kernel has XSAVE disabled`, HINT);
  const missing = saved.xcr0 & ~here.xcr0;
  if (missing) throw new SnapshotError(`${where}: snapshot uses CPU state components this CPU does not enable: XCR0 bits ${hex(missing)}`, HINT);
  const inUse = xsave.readBigUInt64LE(512);
  let rfbm = saved.xcr0 & ~(1n << XFEATURE_PKRU);
  for (let i = 2; i < SNAPSHOT.XSAVE_COMPONENTS; i++) {
    const bit = 1n << BigInt(i);
    if (!(saved.xcr0 & bit)) continue;
    const [so, ss] = [saved.xsave_layout.readUInt32LE(8 * i), saved.xsave_layout.readUInt32LE(8 * i + 4)];
    const [ho, hs] = [here.xsave_layout.readUInt32LE(8 * i), here.xsave_layout.readUInt32LE(8 * i + 4)];
    if (so !== ho || ss !== hs) {
      throw new SnapshotError(`${where}: snapshot's XSAVE layout differs from this CPU's: component ${i} at ${so} (${ss} bytes), here at ${ho} (${hs} bytes)`, HINT);
    }
    if ((here.xfd_components & bit) && !(inUse & bit)) rfbm &= ~bit;
  }
  return rfbm;
}
