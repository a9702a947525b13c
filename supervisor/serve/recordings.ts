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
  /** --recordings=DIR, or a private temporary directory made at the first recording. */
  private given?: string;
  private made?: string;

  constructor(dir?: string) {
    if (dir === undefined) return;
    this.given = resolve(dir);
    if (!existsSync(this.given) || !statSync(this.given).isDirectory()) {
      throw new UsageError(`--recordings=${dir}: no such directory`, `create it first: mkdir -m 700 ${dir}`);
    }
  }

  /**
   * Made on first use, not at startup: a server that records nothing leaves
   * no directory behind even when it is SIGKILLed before close().
   */
  get dir(): string {
    return this.given ?? (this.made ??= mkdtempSync(join(tmpdir(), 'tendril-recordings-')));
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
    if (this.made) rmSync(this.made, { recursive: true, force: true });
  }
}
