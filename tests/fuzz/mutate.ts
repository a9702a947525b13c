// Seeded mutation of valid guest images (abi.md §5, abi.md §6 are the fields that
// matter). Every case is reproducible from (seed, index) alone: the case's
// generator is seeded from both, so `--seed S` replays a whole campaign and
// `caseAt(S, i)` replays one case.

import { ELF } from '../../loader/abi.js';
import { BAD_ELF_CASES } from '../fixtures/bad-elf.js';

/** sfc32: small, fast, good enough for fuzzing, and identical on every run. */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number, stream = 0) {
    this.a = 0x9e3779b9 ^ seed;
    this.b = 0x243f6a88 ^ stream;
    this.c = 0xb7e15162 ^ Math.imul(seed, 0x85ebca6b);
    this.d = 1;
    for (let i = 0; i < 16; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return n <= 0 ? 0 : Math.floor((this.u32() / 0x100000000) * n);
  }

  chance(p: number): boolean {
    return this.u32() / 0x100000000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 0xff;
    return b;
  }
}

const U64 = (1n << 64n) - 1n;

/** Boundary values for an integer field of `width` bytes (spec-agnostic). */
export const BOUNDARY: readonly bigint[] = [
  0n, 1n, 2n, 0x7fn, 0x80n, 0xffn, 0x100n, 0x7fffn, 0x8000n, 0xffffn, 0x10000n,
  0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 1n << 63n, (1n << 63n) - 1n, U64,
];

/** Values that mean something to the loader (abi.md §1, abi.md §5, abi.md §6), for near-miss mutations. */
export const MEANINGFUL: readonly bigint[] = [
  0x1000n, 0xfffn, 0x1001n, 0x10000n, 0x11000n, 0xfffffn, 0x100000n, 0x100001n, 0x101000n,
  0x1ff000n, 0x1fffffn, 0x200000n, 0x200001n, 0x7e0000000000n, 0x7dfffffff000n, 0xfffffffffffff000n,
  6n, 16n, 20n, 24n, 32n, 33n, 56n, 64n, 104n, 116n, 6668n, 6669n, 63n, 64n, 65n,
];

export interface Field {
  name: string;
  off: number;
  width: 1 | 2 | 4 | 8;
}

/** Where the interesting bytes of a valid base image are. Computed once per base. */
export interface Layout {
  ehdr: Field[];
  phdrs: { index: number; off: number; type: number; fields: Field[] }[];
  notes: { kind: 'abi' | 'mft' | 'other'; off: number; fields: Field[] }[];
  /** Offsets worth truncating at: header ends, table ends, segment and note edges. */
  cuts: number[];
}

const EHDR_FIELDS: [string, number, 1 | 2 | 4 | 8][] = [
  ['e_ident[EI_MAG0]', 0, 1], ['e_ident[EI_MAG3]', 3, 1], ['e_ident[EI_CLASS]', 4, 1], ['e_ident[EI_DATA]', 5, 1],
  ['e_ident[EI_VERSION]', 6, 1], ['e_ident[EI_OSABI]', 7, 1], ['e_ident[EI_ABIVERSION]', 8, 1],
  ['e_type', 16, 2], ['e_machine', 18, 2], ['e_version', 20, 4], ['e_entry', 24, 8], ['e_phoff', 32, 8],
  ['e_shoff', 40, 8], ['e_flags', 48, 4], ['e_ehsize', 52, 2], ['e_phentsize', 54, 2], ['e_phnum', 56, 2],
  ['e_shentsize', 58, 2], ['e_shnum', 60, 2], ['e_shstrndx', 62, 2],
];

const PHDR_FIELDS: [string, number, 1 | 2 | 4 | 8][] = [
  ['p_type', 0, 4], ['p_flags', 4, 4], ['p_offset', 8, 8], ['p_vaddr', 16, 8], ['p_paddr', 24, 8],
  ['p_filesz', 32, 8], ['p_memsz', 40, 8], ['p_align', 48, 8],
];

const ABI1 = 0x31494241;
const MFT1 = 0x3154464d;

export function layoutOf(elf: Buffer): Layout {
  const ehdr = EHDR_FIELDS.map(([name, off, width]) => ({ name, off, width }));
  const phoff = Number(elf.readBigUInt64LE(32));
  const phnum = elf.readUInt16LE(56);
  const phdrs: Layout['phdrs'] = [];
  const notes: Layout['notes'] = [];
  const cuts = new Set<number>([0, 1, 4, 16, 20, 52, 63, 64, phoff, phoff + phnum * ELF.PHDR_SIZE, elf.length - 1]);
  for (let i = 0; i < phnum; i++) {
    const off = phoff + i * ELF.PHDR_SIZE;
    const type = elf.readUInt32LE(off);
    phdrs.push({ index: i, off, type, fields: PHDR_FIELDS.map(([n, o, width]) => ({ name: `phdr[${i}].${n}`, off: off + o, width })) });
    cuts.add(off + ELF.PHDR_SIZE - 1);
    const pOff = Number(elf.readBigUInt64LE(off + 8));
    const pSize = Number(elf.readBigUInt64LE(off + 32));
    if (pOff + pSize <= elf.length) {
      cuts.add(pOff);
      cuts.add(pOff + pSize - 1);
      cuts.add(pOff + pSize);
    }
    if (type !== ELF.PT_NOTE || pSize < 20) continue;
    const ntype = elf.readUInt32LE(pOff + 8);
    const kind = ntype === ABI1 ? 'abi' : ntype === MFT1 ? 'mft' : 'other';
    const f = (name: string, o: number, width: 1 | 2 | 4 | 8): Field => ({ name: `${kind}-note.${name}`, off: pOff + o, width });
    const fields: Field[] = [f('n_namesz', 0, 4), f('n_descsz', 4, 4), f('n_type', 8, 4), f('name[0]', 12, 1), f('name[5]', 17, 1)];
    if (kind === 'abi') fields.push(f('abi_target', 20, 4), f('abi_version', 24, 4), f('reserved0', 28, 4), f('reserved1', 32, 4));
    if (kind === 'mft') {
      fields.push(f('mft.version', 24, 4), f('mft.entries', 28, 4));
      const entries = elf.readUInt32LE(pOff + 28);
      for (let e = 0; e < Math.min(entries, 4); e++) {
        const base = 32 + e * 104;
        fields.push(f(`e[${e}].name[0]`, base, 1), f(`e[${e}].name[1]`, base + 1, 1), f(`e[${e}].name[66]`, base + 66, 1),
          f(`e[${e}].name[67]`, base + 67, 1), f(`e[${e}].type`, base + 68, 4), f(`e[${e}].u`, base + 72, 8),
          f(`e[${e}].hostfd`, base + 88, 8), f(`e[${e}].attached`, base + 96, 1));
      }
    }
    notes.push({ kind, off: pOff, fields: fields.filter((x) => x.off + x.width <= elf.length) });
  }
  return { ehdr, phdrs, notes, cuts: [...cuts].filter((c) => c >= 0 && c <= elf.length).sort((a, b) => a - b) };
}

function readField(b: Buffer, f: Field): bigint {
  if (f.off + f.width > b.length) return 0n;
  switch (f.width) {
    case 1: return BigInt(b[f.off]);
    case 2: return BigInt(b.readUInt16LE(f.off));
    case 4: return BigInt(b.readUInt32LE(f.off));
    default: return b.readBigUInt64LE(f.off);
  }
}

function writeField(b: Buffer, f: Field, v: bigint): void {
  if (f.off + f.width > b.length) return;
  const mask = (1n << BigInt(8 * f.width)) - 1n;
  const x = v & mask;
  switch (f.width) {
    case 1: b[f.off] = Number(x); break;
    case 2: b.writeUInt16LE(Number(x), f.off); break;
    case 4: b.writeUInt32LE(Number(x), f.off); break;
    default: b.writeBigUInt64LE(x, f.off);
  }
}

/** A value for field f: a boundary, a loader-meaningful value, or a near miss of the current one. */
function valueFor(rng: Rng, b: Buffer, f: Field): bigint {
  const cur = readField(b, f);
  const mask = (1n << BigInt(8 * f.width)) - 1n;
  switch (rng.int(6)) {
    case 0:
    case 1: return rng.pick(BOUNDARY) & mask;
    case 2: return rng.pick(MEANINGFUL) & mask;
    case 3: return (cur + rng.pick([1n, mask, 0x1000n, mask - 0xfffn, 8n])) & mask; // ±1, ±page, +8
    case 4: return cur ^ (1n << BigInt(rng.int(8 * f.width)));
    default: return rng.pick([BigInt(b.length), BigInt(b.length) - 1n, BigInt(b.length) + 1n, cur * 2n]) & mask;
  }
}

export interface Mutation {
  /** What was done, for the report (one short phrase). */
  what: string;
  apply: (b: Buffer) => Buffer;
}

type Mutator = (rng: Rng, base: Buffer, layout: Layout) => Mutation;

const bitFlips: Mutator = (rng, base, layout) => {
  const n = 1 + rng.int(8);
  // Half the time aim at the headers and notes, where the loader looks.
  const hot = layout.phdrs.length ? layout.phdrs[layout.phdrs.length - 1].off + ELF.PHDR_SIZE : 64;
  const noteSpans = layout.notes.map((x) => [x.off, x.off + 40] as const);
  const offs = Array.from({ length: n }, () => {
    if (rng.chance(0.3)) return rng.int(hot);
    if (rng.chance(0.3) && noteSpans.length) {
      const [a, z] = rng.pick(noteSpans);
      return a + rng.int(z - a);
    }
    return rng.int(base.length);
  });
  const bits = offs.map(() => rng.int(8));
  return {
    what: `flip ${n} bit(s) at ${offs.map((o) => `0x${o.toString(16)}`).join(',')}`,
    apply: (b) => {
      offs.forEach((o, i) => { if (o < b.length) b[o] ^= 1 << bits[i]; });
      return b;
    },
  };
};

const byteSet: Mutator = (rng, base) => {
  const width = rng.pick([1, 2, 4, 8] as const);
  const off = rng.int(Math.max(1, base.length - width));
  const v = rng.pick(BOUNDARY);
  return { what: `set u${width * 8} at 0x${off.toString(16)} to 0x${v.toString(16)}`, apply: (b) => { writeField(b, { name: '', off, width }, v); return b; } };
};

const truncate: Mutator = (rng, base, layout) => {
  const at = rng.chance(0.7) ? rng.pick(layout.cuts) : rng.int(base.length);
  return { what: `truncate to ${at} bytes`, apply: (b) => b.subarray(0, at) };
};

const extend: Mutator = (rng) => {
  const n = rng.pick([1, 7, 8, 56, 4096, 1 + rng.int(9000)]);
  const fill = rng.pick(['zero', 'ff', 'random'] as const);
  const tail = fill === 'random' ? rng.bytes(n) : Buffer.alloc(n, fill === 'ff' ? 0xff : 0);
  return { what: `append ${n} ${fill} bytes`, apply: (b) => Buffer.concat([b, tail]) };
};

const fieldMutator = (pickFields: (l: Layout) => Field[]): Mutator => (rng, base, layout) => {
  const fields = pickFields(layout);
  if (fields.length === 0) return byteSet(rng, base, layout);
  const f = rng.pick(fields);
  const v = valueFor(rng, base, f);
  return { what: `${f.name} = 0x${v.toString(16)}`, apply: (b) => { writeField(b, f, v); return b; } };
};

const ehdrField = fieldMutator((l) => l.ehdr);
const phdrField = fieldMutator((l) => l.phdrs.flatMap((p) => p.fields));
const loadField = fieldMutator((l) => l.phdrs.filter((p) => p.type === ELF.PT_LOAD).flatMap((p) => p.fields));
const noteField = fieldMutator((l) => l.notes.flatMap((n) => n.fields));

/** Program header table shuffles: swap two entries or copy one over another. */
const phdrShuffle: Mutator = (rng, base, layout) => {
  const a = rng.pick(layout.phdrs);
  const b = rng.pick(layout.phdrs);
  const copy = rng.chance(0.5);
  return {
    what: `${copy ? 'copy' : 'swap'} phdr[${a.index}] ${copy ? 'over' : 'with'} phdr[${b.index}]`,
    apply: (buf) => {
      const pa = Buffer.from(buf.subarray(a.off, a.off + ELF.PHDR_SIZE));
      const pb = Buffer.from(buf.subarray(b.off, b.off + ELF.PHDR_SIZE));
      pa.copy(buf, b.off);
      if (!copy) pb.copy(buf, a.off);
      return buf;
    },
  };
};

/** Manifest entry names: non-alnum characters, a full 68-byte name, a duplicate. */
const mftName: Mutator = (rng, base, layout) => {
  const mft = layout.notes.find((n) => n.kind === 'mft');
  if (!mft) return noteField(rng, base, layout);
  const entries = base.readUInt32LE(mft.off + 28);
  const e = entries > 1 ? 1 + rng.int(entries - 1) : 0;
  const at = mft.off + 32 + e * 104;
  const kind = rng.pick(['symbol', 'full68', 'full67', 'empty', 'high-byte', 'dup-of-0'] as const);
  return {
    what: `e[${e}].name: ${kind}`,
    apply: (b) => {
      if (at + 68 > b.length) return b;
      if (kind === 'symbol') b[at + rng.int(4)] = rng.pick([0x2d, 0x5f, 0x20, 0x2f, 0x2e, 0x0a]);
      else if (kind === 'full68') b.fill(0x41, at, at + 68);
      else if (kind === 'full67') { b.fill(0x42, at, at + 67); b[at + 67] = 0; }
      else if (kind === 'empty') b[at] = 0;
      else if (kind === 'high-byte') b[at] = 0xe9;
      else if (entries > 2) b.copy(b, at, mft.off + 32 + 104, mft.off + 32 + 104 + 68);
      return b;
    },
  };
};

/** One of the hand-made bad images of tests/fixtures/bad-elf.ts. */
const seedCase: Mutator = (rng) => {
  const c = rng.pick(BAD_ELF_CASES);
  return {
    what: `fixture '${c.name}'`,
    apply: (b) => {
      try {
        return c.mutate(b);
      } catch {
        return b; // the fixture needs a structure an earlier mutation destroyed
      }
    },
  };
};

const MUTATORS: [Mutator, number][] = [
  [bitFlips, 14], [byteSet, 8], [truncate, 6], [extend, 4], [ehdrField, 12], [phdrField, 12], [loadField, 12],
  [noteField, 14], [phdrShuffle, 4], [mftName, 6], [seedCase, 8],
];
const TOTAL_WEIGHT = MUTATORS.reduce((n, [, w]) => n + w, 0);

function pickMutator(rng: Rng): Mutator {
  let r = rng.int(TOTAL_WEIGHT);
  for (const [m, w] of MUTATORS) {
    if (r < w) return m;
    r -= w;
  }
  return bitFlips;
}

export interface Base {
  name: string;
  bytes: Buffer;
  layout: Layout;
}

export function makeBase(name: string, bytes: Buffer): Base {
  return { name, bytes, layout: layoutOf(bytes) };
}

export interface ElfCase {
  index: number;
  base: Base;
  mutations: string[];
  bytes: Buffer;
}

/** Case `index` of campaign `seed`: 1 to 3 stacked mutations of one base. */
export function elfCase(seed: number, index: number, bases: Base[]): ElfCase {
  const rng = new Rng(seed, index);
  const base = rng.pick(bases);
  const n = rng.chance(0.65) ? 1 : rng.chance(0.6) ? 2 : 3;
  let bytes = Buffer.from(base.bytes);
  const mutations: string[] = [];
  for (let i = 0; i < n; i++) {
    const m = pickMutator(rng)(rng, base.bytes, base.layout);
    mutations.push(m.what);
    bytes = Buffer.from(m.apply(bytes));
  }
  return { index, base, mutations, bytes };
}
