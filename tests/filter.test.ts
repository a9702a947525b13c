// The seccomp policy of abi.md §7, as compiled by libseccomp: what it allows,
// and that everything else (including a foreign architecture) kills the
// whole process (abi.md §17 D4).

import test from 'ava';
import { compilePolicy, policyPfc } from '../filters/compile.js';
import { blockPolicy, corePolicy, netPolicy } from '../filters/policy.js';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { guest, ROOT, runCmd, TENDRIL, tendril, waitForGuest, withTempDir, WITH_PDEATHSIG } from './helpers.js';

const BPF_RET_K = 0x06;
const SECCOMP_RET_ALLOW = 0x7fff0000;
const SECCOMP_RET_KILL_PROCESS = 0x80000000;
const AUDIT_ARCH_X86_64 = 0xc000003e;

interface Insn { code: number; jt: number; jf: number; k: number }
const decode = (bpf: Buffer): Insn[] => Array.from({ length: bpf.length / 8 }, (_, i) => ({
  code: bpf.readUInt16LE(i * 8), jt: bpf[i * 8 + 2], jf: bpf[i * 8 + 3], k: bpf.readUInt32LE(i * 8 + 4),
}));

const core = { rules: corePolicy({ epollfd: 4, timerfd: 5 }) };

test('every return is ALLOW or KILL_PROCESS, never KILL_THREAD (D4)', (t) => {
  const insns = decode(compilePolicy(core).bpf);
  const rets = insns.filter((i) => i.code === BPF_RET_K).map((i) => i.k >>> 0);
  t.true(rets.includes(SECCOMP_RET_ALLOW));
  t.true(rets.includes(SECCOMP_RET_KILL_PROCESS));
  t.deepEqual(rets.filter((k) => k !== SECCOMP_RET_ALLOW && k !== SECCOMP_RET_KILL_PROCESS), []);
});

test('the program starts with the architecture check, whose failure kills the process', (t) => {
  const insns = decode(compilePolicy(core).bpf);
  t.is(insns[0].code, 0x20); // ld [4] = seccomp_data.arch
  t.is(insns[0].k, 4);
  const cmp = insns[1];
  t.is(cmp.k >>> 0, AUDIT_ARCH_X86_64);
  const onMismatch = insns[2 + cmp.jf];
  t.is(onMismatch.code, BPF_RET_K);
  t.is(onMismatch.k >>> 0, SECCOMP_RET_KILL_PROCESS);
});

test('the PFC listing shows exactly the allowed calls with their fd conditions', (t) => {
  const pfc = policyPfc(core);
  for (const s of ['write', 'exit_group', 'epoll_pwait', 'timerfd_settime', 'clock_gettime', 'arch_prctl']) {
    t.regex(pfc, new RegExp(`syscall "${s}"`), s);
  }
  for (const s of ['read', 'pread64', 'pwrite64', 'mmap', 'dup']) t.notRegex(pfc, new RegExp(`syscall "${s}"`), s);
  t.regex(pfc, /action KILL_PROCESS;/);
  t.notRegex(pfc, /action KILL;/);
});

test('the programs are the reference\'s size: 34 instructions, 40 with one tap, 49 with one disk (abi.md §7)', (t) => {
  const n0 = compilePolicy(core).instructions;
  const n1tap = compilePolicy({ rules: [...core.rules, ...netPolicy('service0', 6)] }).instructions;
  const n1blk = compilePolicy({ rules: [...core.rules, ...blockPolicy('storage', 6, 512, 4n << 20n)] }).instructions;
  t.is(n0, 34);
  t.is(n1tap, 40);
  t.is(n1blk, 49);
});

test('tendril filter: table, counts and PFC for a guest', (t) => {
  const r = tendril(['filter', '--mem=2', guest('test_hello')]);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /^write \(1\)\s+arg0 == 1\s+core/m);
  t.regex(r.stdout, /^arch_prctl \(158\)\s+arg0 == 0x1002/m);
  t.regex(r.stdout, /^6 system calls allowed \(write, arch_prctl, clock_gettime, exit_group, epoll_pwait, timerfd_settime\) by 7 rules/m);
  t.regex(r.stdout, /^34 BPF instructions$/m);
  t.regex(r.stdout, /action KILL_PROCESS;/);
  t.notRegex(r.stdout, /BPF program/);
});

test('tendril filter --bpf lists exactly the program a running guest has installed', async (t) => {
  const listing = tendril(['filter', '--bpf', '--mem=2', guest('test_forever')]);
  t.is(listing.status, 0, listing.stderr);
  const shown = [...listing.stdout.matchAll(/^\d{4}: ([0-9a-f]{4}) +(\d+) +(\d+) 0x([0-9a-f]{8})/gm)]
    .map((m) => `${m[1]} ${Number(m[2]).toString(16).padStart(2, '0')} ${Number(m[3]).toString(16).padStart(2, '0')} ${m[4]}`);
  t.is(shown.length, Number(/^(\d+) BPF instructions$/m.exec(listing.stdout)![1]));

  const child = spawn(WITH_PDEATHSIG, [process.execPath, TENDRIL, 'run', '--mem=2', guest('test_forever')], { stdio: 'ignore' });
  try {
    await waitForGuest(child.pid!);
    const dump = runCmd(join(ROOT, 'tests/tools/build/seccomp-dump'), [String(child.pid)]);
    t.is(dump.status, 0, dump.stderr);
    t.deepEqual(dump.stdout.trim().split('\n'), shown);
  } finally {
    child.kill('SIGKILL');
  }
});

test('tendril filter --block-ro: pwrite64 stays allowed (a write must fail cleanly, not kill) and the table says the kernel refuses it', async (t) => {
  await withTempDir((dir) => {
    const disk = join(dir, 'disk.img');
    writeFileSync(disk, Buffer.alloc(1 << 20));
    const ro = tendril(['filter', `--block-ro:storage=${disk}`, guest('test_blk')]);
    t.is(ro.status, 0, ro.stderr);
    t.regex(ro.stdout, /^pwrite64 \(18\)\s+arg0 == 5 && arg2 == 512.*solo5_block_write: the disk is open read-only, so the kernel refuses every write/m);
    t.regex(ro.stdout, /read-only$/m);
    const rw = tendril(['filter', `--block:storage=${disk}`, guest('test_blk')]);
    t.regex(rw.stdout, /^pwrite64 \(18\).*solo5_block_write$/m);
  });
});
