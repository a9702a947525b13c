// A guest image: the ELF bytes plus what its Solo5 notes say, checked in the
// order of abi.md §6.1 so each rejection is the one the reference would give.

import { readFileSync } from 'node:fs';
import {
  ABI1_NOTE_ALIGN, MAX_MEM_MIB, ABI1_NOTE_MAX_SIZE, ABI1_NOTE_TYPE, AbiTarget, MFT1_NOTE_ALIGN,
  MFT1_NOTE_MAX_SIZE, MFT1_NOTE_TYPE, SPT_ABI_VERSION,
} from './abi.js';
import { BINDINGS_MIN_HEAP, minimumMemMiB, parseElfHeader, parseProgramHeaders, validateLoadSegments, type ElfHeader, type LoadSegment, type ProgramHeader } from './elf.js';
import { ElfError, PlanError } from './errors.js';
import { parseManifestNote, type Manifest } from './manifest.js';
import { findSolo5Note } from './notes.js';

export interface GuestImage {
  /** Path as given by the user, for messages. */
  file: string;
  bytes: Buffer;
  header: ElfHeader;
  phdrs: ProgramHeader[];
  abi: { target: AbiTarget; version: number };
  manifest: Manifest;
}

export function readGuestFile(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'No such file or directory'
      : err.code === 'EACCES' ? 'Permission denied'
        : err.code === 'EISDIR' ? 'Is a directory' : err.message;
    throw new ElfError(`${file}: Could not open: ${why}`, 'check the path to the guest image');
  }
}

export function abiTargetName(t: number): string {
  return AbiTarget[t]?.toLowerCase() ?? `unknown (${t})`;
}

/** Reads the ABI1 note: target and version (abi.md §5.1). */
export function readAbi(file: string, bytes: Buffer, phdrs: ProgramHeader[]): { target: number; version: number } {
  const desc = findSolo5Note(file, bytes, phdrs, { type: ABI1_NOTE_TYPE, align: ABI1_NOTE_ALIGN, maxSize: ABI1_NOTE_MAX_SIZE });
  if (!desc || desc.length < 8) {
    throw new ElfError(`${file}: No Solo5 ABI information found in executable: it is an x86_64 ELF program without a Solo5 ABI note ` +
      '(an ordinary static Linux program?)', 'tendril runs Solo5 unikernels built for the spt target: build one with `tendril cc` or a Solo5 toolchain');
  }
  return { target: desc.readUInt32LE(0), version: desc.readUInt32LE(4) };
}

export function parseGuestImage(file: string, bytes: Buffer): GuestImage {
  const header = parseElfHeader(file, bytes);
  const phdrs = parseProgramHeaders(bytes, header);
  const abi = readAbi(file, bytes, phdrs);
  if (abi.target !== AbiTarget.SPT) {
    throw new ElfError(`${file}: Executable is not for the solo5-spt target (it is for ${abiTargetName(abi.target)})`,
      'rebuild the unikernel for the spt target');
  }
  if (abi.version !== SPT_ABI_VERSION) {
    throw new ElfError(`${file}: Executable requests unsupported ABI version ${abi.version}`,
      `tendril implements spt ABI version ${SPT_ABI_VERSION}; rebuild the unikernel against it`);
  }
  const mftDesc = findSolo5Note(file, bytes, phdrs, { type: MFT1_NOTE_TYPE, align: MFT1_NOTE_ALIGN, maxSize: MFT1_NOTE_MAX_SIZE });
  if (!mftDesc) {
    throw new ElfError(`${file}: No Solo5 manifest found in executable`,
      'link the guest with a manifest note (tendril cc --manifest FILE)');
  }
  const manifest = parseManifestNote(file, mftDesc);
  return { file, bytes, header, phdrs, abi: { target: abi.target, version: abi.version }, manifest };
}

export function loadGuestImage(file: string): GuestImage {
  return parseGuestImage(file, readGuestFile(file));
}

/**
 * The image's loadable segments against a memory size (abi.md §6). When the
 * image is fine but the memory is too small for it, that is the request's
 * fault, and the message says how much is needed (`setting` names the
 * option or field the user set, e.g. "--mem" or "memMiB").
 */
export function checkMemory(image: GuestImage, memSize: bigint, setting: string, given: number): LoadSegment[] {
  try {
    return validateLoadSegments(image.file, image.bytes, image.header, image.phdrs, memSize);
  } catch (e) {
    if (!(e instanceof ElfError)) throw e;
    try {
      validateLoadSegments(image.file, image.bytes, image.header, image.phdrs, BigInt(MAX_MEM_MIB) << 20n);
    } catch {
      throw e; // wrong whatever the memory: the image's fault
    }
    const min = minimumMemMiB(image.header, image.phdrs);
    throw new PlanError(`${image.file}: the guest needs ${setting}=${min} or more (${given} MiB is too small for its image)`,
      `the image and the ${Number(BINDINGS_MIN_HEAP >> 10n)} KiB of heap and stack the Solo5 bindings need must fit in guest memory`);
  }
}
