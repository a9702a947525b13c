// Files the user names as outputs (-o IMAGE.tar, gen-manifest's OUTPUT.S):
// a path that cannot be written is the user's to fix, reported in one line.

import { writeFileSync } from 'node:fs';
import { UsageError } from './errors.js';

const WHY: Record<string, string> = {
  ENOENT: 'no such directory',
  EISDIR: 'is a directory',
  EACCES: 'permission denied',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  ENOTDIR: 'a part of the path is not a directory',
};

export function writeUserFile(path: string, data: string | Buffer, what: string): void {
  try {
    writeFileSync(path, data);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new UsageError(`${path}: cannot write ${what}: ${WHY[err.code ?? ''] ?? err.code ?? err.message}`,
      err.code === 'ENOENT' ? 'create the directory first, or choose another path' : undefined);
  }
}
