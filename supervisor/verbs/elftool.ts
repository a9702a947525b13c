// `tendril elftool`: the manifest and ABI tools of solo5-elftool (abi.md §5.2).

import { readFileSync } from 'node:fs';
import { writeUserFile } from '../files.js';
import { parseElfHeader, parseProgramHeaders } from '../../loader/elf.js';
import { ElfError } from '../../loader/errors.js';
import { abiTargetName, readAbi, readGuestFile } from '../../loader/image.js';
import { manifestNoteAsm, manifestToJson, parseManifestJson, parseManifestNote } from '../../loader/manifest.js';
import { findSolo5Note } from '../../loader/notes.js';
import { MFT1_NOTE_ALIGN, MFT1_NOTE_MAX_SIZE, MFT1_NOTE_TYPE } from '../../loader/abi.js';
import { UsageError } from '../errors.js';

const USAGE = `usage: tendril elftool COMMAND ...
  gen-manifest MANIFEST.json OUTPUT.S   write the manifest as an MFT1 note (assembly) to link into a guest
  query-manifest GUEST                  print the guest's manifest as JSON
  query-abi GUEST                       print the guest's ABI target and version as JSON`;

function headers(file: string) {
  const bytes = readGuestFile(file);
  const hdr = parseElfHeader(file, bytes);
  return { bytes, phdrs: parseProgramHeaders(bytes, hdr) };
}

export function queryAbi(file: string): object {
  const { bytes, phdrs } = headers(file);
  const abi = readAbi(file, bytes, phdrs);
  return { type: 'solo5.abi', target: abiTargetName(abi.target), version: abi.version };
}

export function queryManifest(file: string): object {
  const { bytes, phdrs } = headers(file);
  const desc = findSolo5Note(file, bytes, phdrs, { type: MFT1_NOTE_TYPE, align: MFT1_NOTE_ALIGN, maxSize: MFT1_NOTE_MAX_SIZE });
  if (!desc) throw new ElfError(`${file}: No Solo5 manifest found in executable`);
  return manifestToJson(parseManifestNote(file, desc));
}

export function genManifest(source: string, output: string): void {
  let text: string;
  try {
    text = readFileSync(source, 'utf8');
  } catch (e) {
    throw new UsageError(`${source}: cannot read manifest: ${(e as Error).message}`);
  }
  const asm = manifestNoteAsm(parseManifestJson(source, text));
  writeUserFile(output, asm, 'the manifest note');
}

export function elftoolVerb(argv: string[]): number {
  const [cmd, ...args] = argv;
  const need = (n: number) => {
    if (args.length !== n) throw new UsageError(`elftool ${cmd}: expected ${n} argument${n > 1 ? 's' : ''}`, USAGE.split('\n')[0]);
  };
  switch (cmd) {
    case 'gen-manifest':
      need(2);
      genManifest(args[0], args[1]);
      return 0;
    case 'query-manifest':
      need(1);
      process.stdout.write(`${JSON.stringify(queryManifest(args[0]), null, 2)}\n`);
      return 0;
    case 'query-abi':
      need(1);
      process.stdout.write(`${JSON.stringify(queryAbi(args[0]))}\n`);
      return 0;
    case undefined:
    case '--help':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return cmd === undefined ? 1 : 0;
    default:
      throw new UsageError(`elftool: unknown command '${cmd}'`, 'use gen-manifest, query-manifest or query-abi');
  }
}
