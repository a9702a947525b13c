// Protocol Buffers (proto3) wire format for the CRI messages the tests send
// and read: varints, length-delimited fields, nested messages and
// map<string, string> (a repeated entry message {1: key, 2: value}). Schemas
// are plain data (cri.ts); nothing is generated. Unknown fields are skipped
// on decode, as proto3 requires, so a newer containerd's extra fields do no
// harm.

export type Scalar = 'string' | 'bytes' | 'bool' | 'int32' | 'int64' | 'uint32' | 'enum';

export interface Field {
  no: number;
  type: Scalar | 'map' | Schema;
  repeated?: boolean;
}

export type Schema = { [name: string]: Field };

// Values are loosely typed: each call site knows its message's shape.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Message = Record<string, any>;

const VARINT = 0;
const I64 = 1;
const LEN = 2;
const I32 = 5;

function varint(v: bigint, out: number[]): void {
  let x = BigInt.asUintN(64, v);
  while (x >= 0x80n) {
    out.push(Number(x & 0x7fn) | 0x80);
    x >>= 7n;
  }
  out.push(Number(x));
}

function tag(no: number, wire: number, out: number[]): void {
  varint(BigInt((no << 3) | wire), out);
}

function lengthDelimited(no: number, bytes: Uint8Array, out: number[]): void {
  tag(no, LEN, out);
  varint(BigInt(bytes.length), out);
  for (const b of bytes) out.push(b);
}

function encodeValue(no: number, type: Scalar | Schema, v: unknown, out: number[]): void {
  if (typeof type === 'object') {
    lengthDelimited(no, encode(type, v as Message), out);
    return;
  }
  switch (type) {
    case 'string':
      lengthDelimited(no, Buffer.from(String(v), 'utf8'), out);
      return;
    case 'bytes':
      lengthDelimited(no, v as Uint8Array, out);
      return;
    case 'bool':
      tag(no, VARINT, out);
      varint(v ? 1n : 0n, out);
      return;
    default:
      // int32 and enum values that are negative go out as 64-bit two's complement, as proto3 says.
      tag(no, VARINT, out);
      varint(BigInt(v as number | bigint), out);
  }
}

/** Default values (0, '', false, empty) are left out, as proto3 encoders do. */
function isDefault(v: unknown): boolean {
  return v === undefined || v === null || v === 0 || v === 0n || v === '' || v === false;
}

export function encode(schema: Schema, msg: Message): Buffer {
  const out: number[] = [];
  for (const [name, f] of Object.entries(schema)) {
    const v = msg[name];
    if (f.type === 'map') {
      for (const [k, val] of Object.entries((v ?? {}) as Record<string, string>)) {
        lengthDelimited(f.no, encode(MAP_ENTRY, { key: k, value: val }), out);
      }
    } else if (f.repeated) {
      for (const item of (v ?? []) as unknown[]) encodeValue(f.no, f.type, item, out);
    } else if (typeof f.type === 'object' ? v !== undefined : !isDefault(v)) {
      encodeValue(f.no, f.type, v, out);
    }
  }
  return Buffer.from(out);
}

const MAP_ENTRY: Schema = { key: { no: 1, type: 'string' }, value: { no: 2, type: 'string' } };

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  varint(): bigint {
    let shift = 0n;
    let v = 0n;
    for (;;) {
      if (this.pos >= this.buf.length) throw new Error('protobuf: truncated varint');
      const b = this.buf[this.pos++];
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      shift += 7n;
      if (shift > 63n) throw new Error('protobuf: varint too long');
    }
  }

  bytes(): Buffer {
    const n = Number(this.varint());
    if (this.pos + n > this.buf.length) throw new Error('protobuf: truncated field');
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  skip(wire: number): void {
    if (wire === VARINT) this.varint();
    else if (wire === I64) this.pos += 8;
    else if (wire === LEN) this.bytes();
    else if (wire === I32) this.pos += 4;
    else throw new Error(`protobuf: unsupported wire type ${wire}`);
  }
}

function scalar(type: Scalar, r: Reader): unknown {
  switch (type) {
    case 'string':
      return r.bytes().toString('utf8');
    case 'bytes':
      return Buffer.from(r.bytes());
    case 'bool':
      return r.varint() !== 0n;
    case 'int32':
    case 'enum':
      return Number(BigInt.asIntN(32, r.varint()));
    case 'uint32':
      return Number(BigInt.asUintN(32, r.varint()));
    case 'int64':
      return BigInt.asIntN(64, r.varint());
  }
}

/** Every field of the schema is present in the result: default values for those not on the wire. */
export function decode(schema: Schema, buf: Buffer): Message {
  const msg: Message = {};
  const byNo = new Map<number, [string, Field]>();
  for (const [name, f] of Object.entries(schema)) {
    byNo.set(f.no, [name, f]);
    if (f.type === 'map') msg[name] = {};
    else if (f.repeated) msg[name] = [];
    else if (typeof f.type === 'object') msg[name] = undefined;
    else msg[name] = f.type === 'string' ? '' : f.type === 'bool' ? false : f.type === 'int64' ? 0n : f.type === 'bytes' ? Buffer.alloc(0) : 0;
  }
  const r = new Reader(buf);
  while (r.pos < buf.length) {
    const key = Number(r.varint());
    const no = key >>> 3;
    const wire = key & 7;
    const known = byNo.get(no);
    if (!known) {
      r.skip(wire);
      continue;
    }
    const [name, f] = known;
    let v: unknown;
    if (f.type === 'map') {
      const e = decode(MAP_ENTRY, r.bytes());
      msg[name][e.key] = e.value;
      continue;
    }
    if (typeof f.type === 'object') v = decode(f.type, r.bytes());
    else if (wire === LEN && f.repeated && f.type !== 'string' && f.type !== 'bytes') {
      // A packed repeated scalar: one length-delimited run of varints.
      const inner = new Reader(r.bytes());
      while (inner.pos < inner.buf.length) msg[name].push(scalar(f.type, inner));
      continue;
    } else v = scalar(f.type, r);
    if (f.repeated) msg[name].push(v);
    else msg[name] = v;
  }
  return msg;
}
