// Recordings made by `tendril serve` ("record": true on POST /instances,
// docs/record-replay.md): one file per instance, in a directory of the
// server's own (a private temporary one unless --recordings=DIR names
// another). A recording lives as long as its instance is remembered: it is
// deleted with the instance (DELETE /instances/:id, or when the history
// drops it), and the temporary directory with the server.

import { existsSync, mkdtempSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import type { PreparedLaunch, TraceSetup } from '../launch.js';
import type { RunOptions } from '../options.js';
import { recordingSetup } from '../record/record.js';

export class RecordingStore {
  readonly dir: string;
  private readonly owned: boolean;

  constructor(dir?: string) {
    if (dir === undefined) {
      this.dir = mkdtempSync(join(tmpdir(), 'tendril-recordings-'));
      this.owned = true;
    } else {
      this.dir = resolve(dir);
      if (!existsSync(this.dir) || !statSync(this.dir).isDirectory()) {
        throw new UsageError(`--recordings=${dir}: no such directory`, `create it first: mkdir -m 700 ${dir}`);
      }
      this.owned = false;
    }
  }

  path(id: string): string {
    return join(this.dir, `${id}.rec`);
  }

  /** Creates the instance's recording; what its hand-over adds to the plan. */
  setup(id: string, p: PreparedLaunch, opts: RunOptions): TraceSetup {
    return recordingSetup(this.path(id), p, opts);
  }

  remove(id: string): void {
    try {
      unlinkSync(this.path(id));
    } catch {
      // never created (the launch failed first), or already gone
    }
  }

  close(): void {
    if (this.owned) rmSync(this.dir, { recursive: true, force: true });
  }
}
