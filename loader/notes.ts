// Finding a Solo5 note (abi.md §5.4). The reference reads only the *first* note
// of each PT_NOTE segment, so a Solo5 note must open its segment; we follow
// that exactly, because a guest that another tender accepts must not be
// rejected here and vice versa.

import { ELF, NOTE_HEADER_SIZE, NOTE_NAME } from './abi.js';
import { ElfError } from './errors.js';
import type { ProgramHeader } from './elf.js';

export interface NoteSpec {
  type: number;
  /** Alignment of the descriptor; the padding after the 20-byte header is counted in n_descsz. */
  align: number;
  maxSize: number;
}

/** The descriptor bytes (padding removed), or undefined if no such note. */
export function findSolo5Note(file: string, image: Buffer, phdrs: ProgramHeader[], spec: NoteSpec): Buffer | undefined {
  const fileLen = BigInt(image.length);
  for (const ph of phdrs) {
    if (ph.type !== ELF.PT_NOTE) continue;
    if (ph.filesz < 12n) {
      throw new ElfError(`${file}: invalid executable: phdr[${ph.index}].p_filesz note does not fall within valid size`);
    }
    if (ph.filesz < BigInt(NOTE_HEADER_SIZE)) continue;
    if (ph.offset + ph.filesz > fileLen) {
      throw new ElfError(`${file}: invalid executable: phdr[${ph.index}] note lies outside the file`);
    }
    const o = Number(ph.offset);
    const namesz = image.readUInt32LE(o);
    const descsz = image.readUInt32LE(o + 4);
    const type = image.readUInt32LE(o + 8);
    if (namesz !== NOTE_NAME.length + 1) continue;
    if (image.toString('latin1', o + 12, o + 12 + namesz) !== `${NOTE_NAME}\0`) continue;
    if (type !== spec.type) continue;
    const pad = roundUp(NOTE_HEADER_SIZE, spec.align) - NOTE_HEADER_SIZE;
    if (descsz < 1 || descsz > spec.maxSize || ph.filesz < BigInt(NOTE_HEADER_SIZE + descsz)) {
      throw new ElfError(`${file}: invalid executable: phdr[${ph.index}] note does not fall within valid size`);
    }
    const start = o + NOTE_HEADER_SIZE + pad;
    return image.subarray(Math.min(start, o + NOTE_HEADER_SIZE + descsz), o + NOTE_HEADER_SIZE + descsz);
  }
  return undefined;
}

function roundUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}
