// Images registered with a running server: validated and parsed once, kept
// by content hash, so a launch pays neither file I/O nor ELF parsing; each
// image's memory file (its segments, sealed) is made at its first launch
// and mapped copy-on-write by all its guests. The registry is bounded: an
// image larger than maxImageBytes, or one that would take the total past
// maxTotalBytes, is refused (413), never half-registered.

import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, fstatSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import type { LoadSegment } from '../../loader/elf.js';
import { parseGuestImage, type GuestImage } from '../../loader/image.js';
import { deviceTypeName } from '../../loader/manifest.js';
import { memoryImage, type MemoryImage } from '../../loader/plan.js';
import { ElfError } from '../errors.js';
import { memoryFileFd } from '../launch.js';
import { NotFoundError, RequestError, TooLargeError } from './errors.js';

export interface ImageEntry {
  id: string;
  name: string;
  size: number;
  image: GuestImage;
  registeredAt: string;
  launches: number;
  /** The sealed memory file of its segments, made at the first launch and shared by every guest of the image. */
  memory?: { image: MemoryImage; fd: number };
}

export interface RegistryLimits {
  maxImageBytes: number;
  maxTotalBytes: number;
}

export function describeImage(e: ImageEntry): object {
  return {
    id: e.id, name: e.name, size: e.size, registeredAt: e.registeredAt, launches: e.launches,
    abi: { target: 'spt', version: e.image.abi.version }, entry: `0x${e.image.header.entry.toString(16)}`,
    devices: e.image.manifest.devices.map((d) => ({ handle: d.index, name: d.name, type: deviceTypeName(d.type) })),
  };
}

const MiB = (n: number) => `${Math.round(n / 1048576)} MiB`;

export class ImageRegistry {
  private images = new Map<string, ImageEntry>();
  private total = 0;

  constructor(readonly limits: RegistryLimits) {}

  get totalBytes(): number {
    return this.total;
  }

  /** Validates and registers; registering the same bytes again returns the existing entry. */
  register(bytes: Buffer, name: string): ImageEntry {
    this.checkSize(bytes.length, name);
    const id = createHash('sha256').update(bytes).digest('hex');
    const known = this.images.get(id);
    if (known) return known;
    if (this.total + bytes.length > this.limits.maxTotalBytes) {
      throw new TooLargeError(`registering ${name} (${MiB(bytes.length)}) would take the registry past its ${MiB(this.limits.maxTotalBytes)}`,
        'DELETE /images/ID images no longer needed, or start the server with a larger --max-registry');
    }
    const image = parseGuestImage(name, Buffer.from(bytes));
    const entry = { id, name, size: bytes.length, image, registeredAt: new Date().toISOString(), launches: 0 };
    this.images.set(id, entry);
    this.total += bytes.length;
    return entry;
  }

  /** An image file on the server's host, by absolute path (the server's working directory means nothing to a client). */
  registerFile(path: string): ImageEntry {
    if (!isAbsolute(path)) {
      throw new RequestError(`"path": ${JSON.stringify(path)} is relative`, 'give the absolute path on the server\'s host (tendril launch resolves it for you), or upload the bytes');
    }
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new ElfError(`${path}: Could not open: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    try {
      const st = fstatSync(fd);
      if (!st.isFile()) throw new ElfError(`${path}: not a regular file`);
      this.checkSize(st.size, path);
      const bytes = Buffer.alloc(st.size);
      let off = 0;
      while (off < bytes.length) {
        const n = readSync(fd, bytes, off, bytes.length - off, off);
        if (n === 0) break;
        off += n;
      }
      return this.register(bytes.subarray(0, off), path);
    } finally {
      closeSync(fd);
    }
  }

  private checkSize(size: number, name: string): void {
    if (size > this.limits.maxImageBytes) {
      throw new TooLargeError(`${name} is ${MiB(size)}, larger than this server accepts (${MiB(this.limits.maxImageBytes)})`,
        'start the server with a larger --max-image');
    }
  }

  get(id: string): ImageEntry {
    const e = this.images.get(id);
    if (!e) throw new NotFoundError(`no image ${id}`, 'register it first: POST /images');
    return e;
  }

  /** The image's memory file (its segments do not depend on the memory size they were validated against). */
  memory(e: ImageEntry, segments: LoadSegment[]): { image: MemoryImage; fd: number } {
    if (!e.memory) {
      const image = memoryImage(segments);
      e.memory = { image, fd: memoryFileFd(image) };
    }
    return e.memory;
  }

  list(): ImageEntry[] {
    return [...this.images.values()];
  }

  remove(id: string): void {
    const e = this.get(id);
    this.images.delete(id);
    this.total -= e.size;
    // Running guests keep their own mappings; the file goes when the last one ends.
    if (e.memory) closeSync(e.memory.fd);
  }
}
