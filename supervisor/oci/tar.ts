// A minimal ustar writer: regular files and directories, owned by root, with
// a fixed modification time so that the same inputs give the same bytes (and
// so the same image digests). Enough for OCI image layouts and their layers;
// nothing here reads tar files.

import { UsageError } from '../errors.js';

export interface TarEntry {
  /** Path inside the archive, without a leading '/'; directories end without '/'. */
  path: string;
  type: 'file' | 'dir';
  /** Permission bits (e.g. 0o755). */
  mode: number;
  data?: Buffer;
}

const BLOCK = 512;
/** ustar's size field holds 11 octal digits. */
const MAX_SIZE = 0o77777777777;

function octal(value: number, width: number): string {
  // width - 1 digits, then a NUL (POSIX allows space or NUL terminators).
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/** ustar names: up to 100 bytes, or a prefix of up to 155 bytes split at a '/'. */
function splitName(path: string): [string, string] {
  if (Buffer.byteLength(path) <= 100) return [path, ''];
  for (let i = path.lastIndexOf('/'); i > 0; i = path.lastIndexOf('/', i - 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name.length > 0) return [name, prefix];
  }
  throw new UsageError(`tar: path too long for a ustar archive: ${path}`);
}

function header(e: TarEntry, size: number, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  const [name, prefix] = splitName(e.type === 'dir' ? `${e.path}/` : e.path);
  h.write(name, 0, 100, 'utf8');
  h.write(octal(e.mode & 0o7777, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii'); // uid
  h.write(octal(0, 8), 116, 'ascii'); // gid
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(mtime, 12), 136, 'ascii');
  h.fill(0x20, 148, 156); // checksum field counts as spaces while summing
  h.write(e.type === 'dir' ? '5' : '0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return h;
}

/** The archive: each entry's header and data (padded to 512 bytes), then two zero blocks. */
export function tar(entries: TarEntry[], mtime = 0): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const data = e.type === 'file' ? (e.data ?? Buffer.alloc(0)) : Buffer.alloc(0);
    if (data.length > MAX_SIZE) throw new UsageError(`tar: ${e.path} is too large for a ustar archive (at most 8 GiB)`);
    parts.push(header(e, data.length, mtime), data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}
