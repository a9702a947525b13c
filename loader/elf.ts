// ELF64 header and program header parsing, with the validation rules of spec
// abi.md §6. Guest images are untrusted: every offset is bounds-checked and all
// address arithmetic is done in BigInt, so a crafted header can neither read
// outside the file nor wrap around 2^64 unnoticed.

import { ELF, PAGE_SIZE, SPT_GUEST_MIN_BASE } from './abi.js';
import { ElfError } from './errors.js';

export interface ElfHeader {
  type: number;
  machine: number;
  entry: bigint;
  phoff: bigint;
  phnum: number;
}

export interface ProgramHeader {
  index: number;
  type: number;
  flags: number;
  offset: bigint;
  vaddr: bigint;
  filesz: bigint;
  memsz: bigint;
  align: bigint;
}

/** A PT_LOAD segment that passed abi.md §6 and will be copied into guest memory. */
export interface LoadSegment {
  index: number;
  vaddr: bigint;
  filesz: bigint;
  memsz: bigint;
  /** Page-aligned range that gets the segment's protection. */
  start: bigint;
  end: bigint;
  /** PROT_* bits (PROT_READ 1, PROT_WRITE 2, PROT_EXEC 4). */
  prot: number;
  /** The file bytes, [offset, offset + filesz). */
  data: Buffer;
}

const U64_MAX = (1n << 64n) - 1n;

function invalid(file: string, what: string): ElfError {
  return new ElfError(`${file}: invalid executable: ${what}`,
    'rebuild the guest with a Solo5 spt toolchain (tendril cc or solo5-spt)');
}

const NOT_A_UNIKERNEL_HINT = 'tendril runs Solo5 unikernels built for the spt target (ELF64 x86_64 ET_EXEC with Solo5 notes): ' +
  'build one with `tendril cc` or a Solo5 toolchain';

const MACHINES: Record<number, string> = { 3: 'i386', 8: 'MIPS', 20: 'PowerPC', 21: 'PowerPC 64', 40: 'ARM', 43: 'SPARC V9', 183: 'AArch64', 243: 'RISC-V', 258: 'LoongArch' };

/** What a file that is not an ELF looks like, for the message. */
function notElfDescription(image: Buffer): string {
  if (image.length === 0) return 'it is empty';
  const head = image.subarray(0, 64);
  if (head.subarray(0, 2).toString('latin1') === '#!') return 'it is a script (it starts with #!), not an ELF file';
  const text = [...head].every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127));
  return text ? 'it is a text file (source code?), not an ELF file' : 'it is not an ELF file';
}

function notUnikernel(file: string, what: string): ElfError {
  return new ElfError(`${file}: not a Solo5 spt unikernel: ${what}`, NOT_A_UNIKERNEL_HINT);
}

/**
 * Header checks of abi.md §6 (what the file is before how it is malformed). Where the reference
 * says only "invalid or unsupported executable (elf header invalid)", we say
 * what the file is instead (not an ELF, a 32-bit or big-endian ELF, a
 * dynamically linked or PIE program, an ELF for another machine), since
 * that is what a user who ran the wrong file needs to hear.
 */
export function parseElfHeader(file: string, image: Buffer): ElfHeader {
  if (image.length < 4 || image.readUInt32BE(0) !== 0x7f454c46) throw notUnikernel(file, notElfDescription(image));
  if (image.length < ELF.EHDR_SIZE) throw notUnikernel(file, `it is a truncated ELF file (${image.length} bytes, shorter than an ELF64 header)`);
  if (image[4] !== ELF.ELFCLASS64) throw notUnikernel(file, image[4] === 1 ? 'it is a 32-bit ELF file' : `its ELF class (${image[4]}) is invalid`);
  if (image[5] !== ELF.ELFDATA2LSB) throw notUnikernel(file, image[5] === 2 ? 'it is a big-endian ELF file' : `its ELF data encoding (${image[5]}) is invalid`);
  const type = image.readUInt16LE(16);
  const machine = image.readUInt16LE(18);
  const version = image.readUInt32LE(20);
  const entry = image.readBigUInt64LE(24);
  const phoff = image.readBigUInt64LE(32);
  const ehsize = image.readUInt16LE(52);
  const phentsize = image.readUInt16LE(54);
  const phnum = image.readUInt16LE(56);
  if (type !== ELF.ET_EXEC) {
    const what = type === ELF.ET_DYN ? 'it is a dynamically linked or position-independent program (ELF type ET_DYN), such as an ordinary Linux program'
      : type === 1 ? 'it is an object file (ELF type ET_REL), not a linked program'
        : type === 4 ? 'it is a core dump (ELF type ET_CORE)' : `its ELF type is ${type}, not ET_EXEC`;
    throw notUnikernel(file, what);
  }
  if (machine !== ELF.EM_X86_64) throw notUnikernel(file, `it is an ELF for another machine (${MACHINES[machine] ?? `e_machine ${machine}`}), not x86_64`);
  if (image[6] !== ELF.EV_CURRENT || version !== ELF.EV_CURRENT || ehsize !== ELF.EHDR_SIZE || phentsize !== ELF.PHDR_SIZE) {
    throw invalid(file, `invalid or unsupported executable (malformed ELF header: version ${image[6]}/${version}, ` +
      `header size ${ehsize}, program header size ${phentsize})`);
  }
  if (phnum < 1) throw invalid(file, 'invalid or unsupported executable (no program headers)');
  if (phoff + BigInt(phnum * ELF.PHDR_SIZE) > BigInt(image.length)) {
    throw invalid(file, `program header table (${phnum} entries at offset ${phoff}) lies outside the file`);
  }
  return { type, machine, entry, phoff, phnum };
}

export function parseProgramHeaders(image: Buffer, hdr: ElfHeader): ProgramHeader[] {
  const out: ProgramHeader[] = [];
  const base = Number(hdr.phoff);
  for (let i = 0; i < hdr.phnum; i++) {
    const o = base + i * ELF.PHDR_SIZE;
    out.push({
      index: i,
      type: image.readUInt32LE(o),
      flags: image.readUInt32LE(o + 4),
      offset: image.readBigUInt64LE(o + 8),
      vaddr: image.readBigUInt64LE(o + 16),
      filesz: image.readBigUInt64LE(o + 32),
      memsz: image.readBigUInt64LE(o + 40),
      align: image.readBigUInt64LE(o + 48),
    });
  }
  return out;
}

function isPowerOfTwo(x: bigint): boolean {
  return x !== 0n && (x & (x - 1n)) === 0n;
}

function protOf(flags: number): number {
  return ((flags & ELF.PF_R) ? 1 : 0) | ((flags & ELF.PF_W) ? 2 : 0) | ((flags & ELF.PF_X) ? 4 : 0);
}

/**
 * The per-segment rules of abi.md §6, against a memory size. Only PT_LOAD entries
 * with p_filesz != 0 are loaded (a bss-only segment lives in memory that is
 * already zero and RW). Beyond the reference we also require the segment's
 * bytes to be inside the file: the reference would pread short and load a
 * half-initialised segment.
 */
export function validateLoadSegments(file: string, image: Buffer, hdr: ElfHeader,
  phdrs: ProgramHeader[], memSize: bigint): LoadSegment[] {
  if (hdr.entry < SPT_GUEST_MIN_BASE || hdr.entry >= memSize) {
    throw invalid(file, `e_entry does not fall within the memory allocation range ` +
      `(0x${hdr.entry.toString(16)} must be in [0x${SPT_GUEST_MIN_BASE.toString(16)}, 0x${memSize.toString(16)}))`);
  }
  const segs: LoadSegment[] = [];
  let prevVaddr = 0n;
  let prevEnd = 0n;
  for (const ph of phdrs) {
    if (ph.type !== ELF.PT_LOAD) continue;
    if (ph.filesz === 0n) {
      // Not loaded (the memory is already zero), but the guest will use it:
      // beyond the reference, refuse an image whose bss cannot fit.
      if (ph.memsz > 0n && ph.vaddr + ph.memsz > memSize) {
        throw invalid(file, `phdr[${ph.index}] (zero-initialised data) ends at 0x${(ph.vaddr + ph.memsz).toString(16)}, ` +
          `beyond guest memory (0x${memSize.toString(16)} bytes); try a larger --mem`);
      }
      continue;
    }
    const i = ph.index;
    const seg = `phdr[${i}]`;
    if (ph.vaddr < SPT_GUEST_MIN_BASE) {
      throw invalid(file, `${seg} p_vaddr 0x${ph.vaddr.toString(16)} is below the guest minimum 0x${SPT_GUEST_MIN_BASE.toString(16)}`);
    }
    if (ph.vaddr < prevVaddr) throw invalid(file, `${seg} p_vaddr is lower than the previous segment's (segments must be sorted)`);
    if (!isPowerOfTwo(ph.align)) throw invalid(file, `${seg} p_align 0x${ph.align.toString(16)} is not a power of two`);
    const start = ph.vaddr & ~(ph.align - 1n);
    if (start < SPT_GUEST_MIN_BASE) throw invalid(file, `${seg} aligned start 0x${start.toString(16)} is below the guest minimum`);
    if (start < prevEnd) throw invalid(file, `${seg} overlaps the previous segment (starts at 0x${start.toString(16)}, previous ends at 0x${prevEnd.toString(16)})`);
    if (ph.vaddr >= memSize) throw invalid(file, `${seg} p_vaddr 0x${ph.vaddr.toString(16)} is outside guest memory (0x${memSize.toString(16)} bytes); try a larger --mem`);
    const fileEnd = ph.vaddr + ph.filesz;
    if (fileEnd > U64_MAX || fileEnd > memSize) throw invalid(file, `${seg} p_vaddr + p_filesz is outside guest memory; try a larger --mem`);
    if (ph.memsz < ph.filesz) throw invalid(file, `${seg} p_memsz is smaller than p_filesz`);
    const memEnd = ph.vaddr + ph.memsz;
    const end = (memEnd + ph.align - 1n) & ~(ph.align - 1n);
    if (memEnd + ph.align - 1n > U64_MAX || end > memSize) {
      throw invalid(file, `${seg} ends outside guest memory (0x${memSize.toString(16)} bytes); try a larger --mem`);
    }
    if (start % PAGE_SIZE !== 0n || end % PAGE_SIZE !== 0n) {
      throw invalid(file, `${seg} is not page aligned (0x${start.toString(16)}-0x${end.toString(16)})`);
    }
    if ((ph.flags & ELF.PF_W) && (ph.flags & ELF.PF_X)) {
      throw invalid(file, `${seg} requests WRITE and EXEC permissions`);
    }
    if (ph.offset + ph.filesz > BigInt(image.length)) {
      throw invalid(file, `${seg} file data (offset ${ph.offset}, ${ph.filesz} bytes) lies outside the file (${image.length} bytes)`);
    }
    const off = Number(ph.offset);
    segs.push({
      index: i, vaddr: ph.vaddr, filesz: ph.filesz, memsz: ph.memsz, start, end,
      prot: protOf(ph.flags), data: image.subarray(off, off + Number(ph.filesz)),
    });
    prevVaddr = ph.vaddr;
    prevEnd = end;
  }
  if (segs.length === 0) throw invalid(file, 'no loadable segment');
  return segs;
}

/** What the Solo5 bindings need above the image for heap and stack (abi.md §1): they abort below it. */
export const BINDINGS_MIN_HEAP = 0x80000n;

/**
 * The smallest --mem (MiB) that fits the image — bss and entry point
 * included — plus the heap and stack the bindings insist on.
 */
export function minimumMemMiB(hdr: ElfHeader, phdrs: ProgramHeader[]): number {
  let end = hdr.entry + 1n > SPT_GUEST_MIN_BASE ? hdr.entry + 1n : SPT_GUEST_MIN_BASE;
  for (const p of phdrs) if (p.type === ELF.PT_LOAD && p.vaddr + p.memsz > end) end = p.vaddr + p.memsz;
  return Number((end + BINDINGS_MIN_HEAP + (1n << 20n) - 1n) >> 20n);
}

/** kernel_end of abi.md §2: the highest page-aligned end of the loaded segments. */
export function kernelEnd(segs: LoadSegment[]): bigint {
  return segs.reduce((m, s) => (s.end > m ? s.end : m), 0n);
}
