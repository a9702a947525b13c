// The runtime log that containerd's shim asks for (`--log FILE --log-format
// json`): one record per line with level, msg and time (RFC 3339), as runc
// writes them with logrus. The shim reads the last record of level "error"
// to explain a failed command, so error records must be valid JSON with a
// parseable time. Every invocation is logged (argv) at level info, so the
// log shows which commands and flags the shim really used. Without --log,
// only errors are printed, on stderr.

import { appendFileSync } from 'node:fs';

export type RuntimeLogFormat = 'json' | 'text';

function textValue(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /^[\w./:@,+-]+$/.test(s) ? s : JSON.stringify(s);
}

export class RuntimeLog {
  constructor(readonly file: string | undefined, readonly format: RuntimeLogFormat = 'text') {}

  private write(level: 'info' | 'warning' | 'error', msg: string, fields: Record<string, unknown>): void {
    if (!this.file) return;
    const time = new Date().toISOString();
    const line = this.format === 'json'
      ? JSON.stringify({ level, msg, time, ...fields })
      : [`time=${textValue(time)}`, `level=${level}`, `msg=${textValue(msg)}`,
        ...Object.entries(fields).map(([k, v]) => `${k}=${textValue(v)}`)].join(' ');
    try {
      appendFileSync(this.file, `${line}\n`);
    } catch {
      // A log that cannot be written must not turn a working command into a failure.
    }
  }

  info(msg: string, fields: Record<string, unknown> = {}): void {
    this.write('info', msg, fields);
  }

  warn(msg: string, fields: Record<string, unknown> = {}): void {
    this.write('warning', msg, fields);
  }

  error(msg: string, fields: Record<string, unknown> = {}): void {
    this.write('error', msg, fields);
  }
}
