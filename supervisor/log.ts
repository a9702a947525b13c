// Structured logs (pino) for what the supervisor does: image validated,
// devices attached, filter compiled, hand-over, guest exit. pino costs ~30 ms
// to load, so it is loaded only when the first record passes the level: with
// the default level (warn) the cold path of `run` never pays for it. Records
// go to stderr synchronously, because an exec hand-over would lose anything
// still buffered. CLI errors do not go through here: they stay one plain line.

import { writeSync } from 'node:fs';
import { createRequire } from 'node:module';

export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LEVELS)[number];
export type LogFormat = 'pretty' | 'json';

const RANK: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };
const NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

interface PinoLike {
  [level: string]: unknown;
}

let level: LogLevel = (LEVELS as readonly string[]).includes(process.env.TENDRIL_LOG_LEVEL ?? '')
  ? (process.env.TENDRIL_LOG_LEVEL as LogLevel) : 'warn';
let format: LogFormat | undefined = process.env.TENDRIL_LOG_FORMAT === 'json' || process.env.TENDRIL_LOG_FORMAT === 'pretty'
  ? process.env.TENDRIL_LOG_FORMAT : undefined;
let logger: PinoLike | undefined;
let bindings: Record<string, unknown> = {};

export function configureLog(opts: { level?: LogLevel; format?: LogFormat; bindings?: Record<string, unknown> }): void {
  if (opts.level) level = opts.level;
  if (opts.format) format = opts.format;
  if (opts.bindings) bindings = { ...bindings, ...opts.bindings };
  logger = undefined;
}

export function logLevel(): LogLevel {
  return level;
}

function fmtValue(v: unknown): string {
  if (typeof v === 'string') return /^[\w./:@-]*$/.test(v) && v !== '' ? v : JSON.stringify(v);
  return JSON.stringify(v);
}

/** A pino destination that prints one readable line per record. */
const prettyDestination = {
  write(line: string): void {
    const rec = JSON.parse(line) as Record<string, unknown>;
    const { level: lv, time, msg, pid: _pid, hostname: _host, ...rest } = rec;
    const t = new Date(time as number).toISOString().slice(11, 23);
    const fields = Object.entries(rest).map(([k, v]) => `${k}=${fmtValue(v)}`).join(' ');
    writeSync(2, `${t} ${(NAMES[lv as number] ?? String(lv)).padEnd(5)} ${msg}${fields ? ` ${fields}` : ''}\n`);
  },
};

function get(): PinoLike {
  if (logger) return logger;
  const require = createRequire(import.meta.url);
  const pino = require('pino') as (opts: object, dest: object) => PinoLike & { destination: unknown };
  const fmt = format ?? (process.stderr.isTTY ? 'pretty' : 'json');
  const dest = fmt === 'json' ? (require('pino') as { destination: (o: object) => object }).destination({ dest: 2, sync: true }) : prettyDestination;
  logger = pino({ level, base: { pid: process.pid, ...bindings }, timestamp: true, messageKey: 'msg' }, dest);
  return logger;
}

function emit(at: Exclude<LogLevel, 'silent'>, fields: Record<string, unknown>, msg: string): void {
  if (RANK[at] < RANK[level]) return;
  (get()[at] as (o: object, m: string) => void)(fields, msg);
}

export const log = {
  enabled: (at: Exclude<LogLevel, 'silent'>) => RANK[at] >= RANK[level],
  debug: (fields: Record<string, unknown>, msg: string) => emit('debug', fields, msg),
  info: (fields: Record<string, unknown>, msg: string) => emit('info', fields, msg),
  warn: (fields: Record<string, unknown>, msg: string) => emit('warn', fields, msg),
  error: (fields: Record<string, unknown>, msg: string) => emit('error', fields, msg),
};
