// The Solo5 application manifest (abi.md §5.2): the devices a guest declares.
// It arrives either as the MFT1 note of a guest image (validated like the
// reference's mft_validate, abi.md §6.1) or as the JSON that `elftool gen-manifest`
// reads; both produce the same model, and the model can be written back as
// the note (assembly for the toolchain) or as JSON.

import {
  MFT_ENTRY, MFT_ENTRY_SIZE, MFT_HEADER_SIZE, MFT_MAX_ENTRIES, MFT_NAME_SIZE,
  MFT_VERSION, MFT1_NOTE_ALIGN, MFT1_NOTE_TYPE, MftType, NOTE_NAME,
} from './abi.js';
import { ManifestError } from './errors.js';

export type DeviceType = MftType.BLOCK_BASIC | MftType.NET_BASIC;

export interface ManifestDevice {
  /** Index in the manifest = the guest's handle for the device. */
  index: number;
  name: string;
  type: DeviceType;
}

export interface Manifest {
  /** Number of entries including the reserved entry 0. */
  entries: number;
  devices: ManifestDevice[];
}

export const DEVICE_TYPE_NAMES: Record<DeviceType, string> = {
  [MftType.BLOCK_BASIC]: 'BLOCK_BASIC',
  [MftType.NET_BASIC]: 'NET_BASIC',
};

/** The tender's CLI syntax for a device name, and elftool's JSON rule. */
export const DEVICE_NAME_RE = /^[A-Za-z0-9]{1,67}$/;

export function deviceTypeName(t: DeviceType): string {
  return DEVICE_TYPE_NAMES[t];
}

export function findDevice(m: Manifest, name: string): ManifestDevice | undefined {
  return m.devices.find((d) => d.name === name);
}

/** mft_validate of abi.md §6.1 over the note descriptor (struct mft). */
export function parseManifestNote(file: string, desc: Buffer): Manifest {
  const bad = (why: string) => new ManifestError(`${file}: Solo5 manifest is invalid: ${why}`,
    'regenerate it with `tendril elftool gen-manifest` and rebuild the guest');
  if (desc.length < MFT_HEADER_SIZE) throw bad(`${desc.length} bytes is too small for a manifest header`);
  const version = desc.readUInt32LE(0);
  const entries = desc.readUInt32LE(4);
  if (version !== MFT_VERSION) throw bad(`version ${version}, expected ${MFT_VERSION}`);
  if (entries > MFT_MAX_ENTRIES) throw bad(`${entries} entries, maximum ${MFT_MAX_ENTRIES}`);
  if (desc.length !== MFT_HEADER_SIZE + MFT_ENTRY_SIZE * entries) {
    throw bad(`size ${desc.length} does not match ${entries} entries`);
  }
  if (entries < 1) throw bad('no entries (entry 0 must be the reserved entry)');
  const devices: ManifestDevice[] = [];
  for (let i = 0; i < entries; i++) {
    const e = MFT_HEADER_SIZE + i * MFT_ENTRY_SIZE;
    if (desc[e + MFT_NAME_SIZE - 1] !== 0) throw bad(`entry ${i} name is not NUL-terminated`);
    if (desc[e + MFT_ENTRY.attached] !== 0) throw bad(`entry ${i} is marked attached in the image`);
    const nul = desc.indexOf(0, e);
    const name = desc.toString('latin1', e, nul);
    const type = desc.readUInt32LE(e + MFT_ENTRY.type);
    if (i === 0) {
      if (type !== MftType.RESERVED_FIRST || name !== '') throw bad('entry 0 is not the reserved entry');
      continue;
    }
    if (type !== MftType.BLOCK_BASIC && type !== MftType.NET_BASIC) {
      throw bad(`entry ${i} ('${name}') has unknown device type 0x${type.toString(16)}`);
    }
    if (!DEVICE_NAME_RE.test(name)) throw bad(`entry ${i} has an invalid device name '${name}'`);
    if (devices.some((d) => d.name === name)) throw bad(`device name '${name}' is declared twice`);
    devices.push({ index: i, name, type });
  }
  return { entries, devices };
}

/** The JSON accepted by `elftool gen-manifest` (abi.md §5.2), strictly. */
export function parseManifestJson(source: string, text: string): Manifest {
  const bad = (why: string) => new ManifestError(`${source}: ${why}`,
    'expected {"type":"solo5.manifest","version":1,"devices":[{"name":"NAME","type":"BLOCK_BASIC"|"NET_BASIC"}]}');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw bad(`not valid JSON (${(e as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('manifest must be a JSON object');
  const obj = doc as Record<string, unknown>;
  for (const k of Object.keys(obj)) {
    if (!['type', 'version', 'devices'].includes(k)) throw bad(`unknown key '${k}'`);
  }
  if (obj.type !== 'solo5.manifest') throw bad(`"type" must be "solo5.manifest"`);
  if (obj.version !== 1) throw bad(`"version" must be 1`);
  if (!Array.isArray(obj.devices)) throw bad(`"devices" must be an array`);
  if (obj.devices.length > MFT_MAX_ENTRIES - 1) throw bad(`too many entries, maximum ${MFT_MAX_ENTRIES - 1}`);
  const devices: ManifestDevice[] = [];
  obj.devices.forEach((d: unknown, i: number) => {
    if (typeof d !== 'object' || d === null || Array.isArray(d)) throw bad(`devices[${i}] must be an object`);
    const dev = d as Record<string, unknown>;
    for (const k of Object.keys(dev)) {
      if (k !== 'name' && k !== 'type') throw bad(`devices[${i}]: unknown key '${k}'`);
    }
    if (typeof dev.name !== 'string' || !DEVICE_NAME_RE.test(dev.name)) {
      throw bad(`devices[${i}]: "name" must be 1 to 67 letters or digits`);
    }
    let type: DeviceType;
    if (dev.type === 'BLOCK_BASIC') type = MftType.BLOCK_BASIC;
    else if (dev.type === 'NET_BASIC') type = MftType.NET_BASIC;
    else throw bad(`devices[${i}]: "type" must be "BLOCK_BASIC" or "NET_BASIC"`);
    if (devices.some((x) => x.name === dev.name)) throw bad(`devices[${i}]: name '${dev.name}' is declared twice`);
    devices.push({ index: i + 1, name: dev.name, type });
  });
  return { entries: devices.length + 1, devices };
}

export function manifestToJson(m: Manifest): object {
  return {
    type: 'solo5.manifest',
    version: MFT_VERSION,
    devices: m.devices.map((d) => ({ name: d.name, type: deviceTypeName(d.type) })),
  };
}

/** struct mft as in the image: nothing attached, no host data. */
export function encodeManifest(m: Manifest): Buffer {
  const buf = Buffer.alloc(MFT_HEADER_SIZE + MFT_ENTRY_SIZE * m.entries);
  buf.writeUInt32LE(MFT_VERSION, 0);
  buf.writeUInt32LE(m.entries, 4);
  buf.writeUInt32LE(MftType.RESERVED_FIRST, MFT_HEADER_SIZE + MFT_ENTRY.type);
  for (const d of m.devices) {
    const e = MFT_HEADER_SIZE + d.index * MFT_ENTRY_SIZE;
    buf.write(d.name, e, 'latin1');
    buf.writeUInt32LE(d.type, e + MFT_ENTRY.type);
  }
  return buf;
}

/**
 * The MFT1 note as GNU assembler source, for the guest toolchain. The
 * descriptor is 8-aligned, so 4 bytes of padding follow the 20-byte header and
 * are counted in n_descsz (abi.md §5.2).
 */
export function manifestNoteAsm(m: Manifest): string {
  const body = encodeManifest(m);
  const pad = 4;
  const lines = [
    '/* Generated by tendril elftool gen-manifest: the Solo5 MFT1 note. */',
    `\t.section .note.solo5.manifest, "a", @note`,
    `\t.balign ${MFT1_NOTE_ALIGN}`,
    `\t.long ${NOTE_NAME.length + 1}`,
    `\t.long ${pad + body.length}`,
    `\t.long 0x${MFT1_NOTE_TYPE.toString(16)}`,
    `\t.asciz "${NOTE_NAME}"`,
    '\t.balign 4',
    `\t.zero ${pad}`,
  ];
  for (let i = 0; i < body.length; i += 16) {
    lines.push(`\t.byte ${[...body.subarray(i, i + 16)].map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(',')}`);
  }
  lines.push('\t.section .note.GNU-stack, "", @progbits', '');
  return lines.join('\n');
}
