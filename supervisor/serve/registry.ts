// Images registered with a running server: validated and parsed once, kept
// by content hash, so a launch pays neither file I/O nor ELF parsing.

import { createHash } from 'node:crypto';
import { closeSync, readFileSync } from 'node:fs';
import type { LoadSegment } from '../../loader/elf.js';
import { memoryImage, type MemoryImage } from '../../loader/plan.js';
import { memoryFileFd } from '../launch.js';
import { parseGuestImage, type GuestImage } from '../../loader/image.js';
import { deviceTypeName } from '../../loader/manifest.js';
import { ElfError, TendrilError } from '../errors.js';

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

/** The image is not registered. */
export class NotFoundError extends TendrilError {}

export function describeImage(e: ImageEntry): object {
  return {
    id: e.id, name: e.name, size: e.size, registeredAt: e.registeredAt, launches: e.launches,
    abi: { target: 'spt', version: e.image.abi.version }, entry: `0x${e.image.header.entry.toString(16)}`,
    devices: e.image.manifest.devices.map((d) => ({ handle: d.index, name: d.name, type: deviceTypeName(d.type) })),
  };
}

export class ImageRegistry {
  private images = new Map<string, ImageEntry>();

  /** Validates and registers; registering the same bytes again returns the existing entry. */
  register(bytes: Buffer, name: string): ImageEntry {
    const id = createHash('sha256').update(bytes).digest('hex');
    const known = this.images.get(id);
    if (known) return known;
    const image = parseGuestImage(name, Buffer.from(bytes));
    const entry = { id, name, size: bytes.length, image, registeredAt: new Date().toISOString(), launches: 0 };
    this.images.set(id, entry);
    return entry;
  }

  registerFile(path: string): ImageEntry {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      throw new ElfError(`${path}: Could not open: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    return this.register(bytes, path);
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
    if (e.memory) closeSync(e.memory.fd);
  }
}
