// `tendril inspect GUEST [--mem=MB] [--json]`: what a guest image is and
// whether tendril would run it; the reason when it would not.

import { ELF } from '../../loader/abi.js';
import { minimumMemMiB, parseElfHeader, parseProgramHeaders, type ProgramHeader } from '../../loader/elf.js';
import { isTendrilError } from '../../loader/errors.js';
import { abiTargetName, checkMemory, parseGuestImage, readGuestFile } from '../../loader/image.js';
import { deviceTypeName } from '../../loader/manifest.js';
import { UsageError } from '../errors.js';
import { parseMem } from '../options.js';
import { planJail, summaryLines } from '../isolate/jail.js';

const PT_NAMES: Record<number, string> = { 0: 'NULL', 1: 'LOAD', 2: 'DYNAMIC', 3: 'INTERP', 4: 'NOTE', 6: 'PHDR', 7: 'TLS', 0x6474e551: 'GNU_STACK' };
const hex = (v: bigint | number) => `0x${v.toString(16)}`;
const perms = (f: number) => `${f & ELF.PF_R ? 'R' : '-'}${f & ELF.PF_W ? 'W' : '-'}${f & ELF.PF_X ? 'X' : '-'}`;

function describeSegment(p: ProgramHeader) {
  return {
    index: p.index, type: PT_NAMES[p.type] ?? hex(p.type), flags: perms(p.flags),
    vaddr: hex(p.vaddr), filesz: Number(p.filesz), memsz: Number(p.memsz), offset: Number(p.offset), align: hex(p.align),
  };
}

export function inspectGuest(file: string, memMiB: number): Record<string, unknown> {
  const report: Record<string, unknown> = { file, runnable: false };
  try {
    const bytes = readGuestFile(file);
    report.size = bytes.length;
    const hdr = parseElfHeader(file, bytes);
    const phdrs = parseProgramHeaders(bytes, hdr);
    report.entry = hex(hdr.entry);
    report.segments = phdrs.map(describeSegment);
    const img = parseGuestImage(file, bytes);
    report.abi = { target: abiTargetName(img.abi.target), version: img.abi.version };
    report.devices = img.manifest.devices.map((d) => ({ handle: d.index, name: d.name, type: deviceTypeName(d.type) }));
    report.minimumMemMiB = minimumMemMiB(hdr, phdrs);
    report.imageEnd = hex(phdrs.filter((p) => p.type === ELF.PT_LOAD).reduce((m, p) => (p.vaddr + p.memsz > m ? p.vaddr + p.memsz : m), 0n));
    checkMemory(img, BigInt(memMiB) << 20n, '--mem', memMiB);
    report.runnable = true;
  } catch (e) {
    if (!isTendrilError(e)) throw e;
    report.rejected = e.message;
  }
  return report;
}

export function inspectVerb(argv: string[]): number {
  let json = false;
  let memMiB = 512;
  const files: string[] = [];
  for (const a of argv) {
    if (a === '--json') json = true;
    else if (a.startsWith('--mem=')) memMiB = parseMem(a, a.slice(6));
    else if (a === '--help' || a === '-h') {
      process.stdout.write('usage: tendril inspect [--json] [--mem=MB] GUEST\nDescribe a guest image and say whether (and why not) tendril would run it.\n');
      return 0;
    } else if (a.startsWith('-')) throw new UsageError(`inspect: unknown option ${a}`, 'usage: tendril inspect [--json] [--mem=MB] GUEST');
    else files.push(a);
  }
  if (files.length !== 1) throw new UsageError('inspect: expected one GUEST', 'usage: tendril inspect [--json] [--mem=MB] GUEST');
  const r = inspectGuest(files[0], memMiB);
  const jail = planJail({ strict: false }, memMiB);
  r.isolation = jail.layers.map(({ name, ok, detail, stops }) => ({ name, ok, detail, stops }));
  if (json) {
    process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
  } else {
    const out = [`guest:    ${r.file}${r.size !== undefined ? ` (${r.size} bytes)` : ''}`];
    if (r.abi) out.push(`abi:      ${(r.abi as { target: string }).target}, version ${(r.abi as { version: number }).version}`);
    if (r.entry) out.push(`entry:    ${r.entry}`);
    if (r.devices) {
      const devs = r.devices as { handle: number; name: string; type: string }[];
      out.push(`devices:  ${devs.length ? devs.map((d) => `${d.name} (${d.type}, handle ${d.handle})`).join(', ') : 'none'}`);
    }
    if (r.segments) {
      out.push('segments:');
      for (const s of r.segments as ReturnType<typeof describeSegment>[]) {
        out.push(`  [${s.index}] ${s.type.padEnd(9)} ${s.flags} vaddr ${s.vaddr.padEnd(10)} filesz ${String(s.filesz).padStart(7)} memsz ${String(s.memsz).padStart(7)}`);
      }
    }
    if (r.minimumMemMiB) out.push(`memory:   image ends at ${r.imageEnd}; needs --mem=${r.minimumMemMiB} or more`);
    out.push(r.runnable ? `verdict:  runnable with --mem=${memMiB}` : `verdict:  rejected: ${r.rejected}`);
    out.push(`isolation: with --isolate on this host (${jail.missing.length ? `${jail.missing.length} missing; --isolate=strict would refuse` : 'every layer'}):`);
    out.push(...summaryLines(jail));
    process.stdout.write(`${out.join('\n')}\n`);
  }
  return r.runnable ? 0 : 1;
}
