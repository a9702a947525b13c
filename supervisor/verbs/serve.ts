// `tendril serve`: a long-running supervisor with an HTTP API (serve/api.ts)
// on a unix socket, and optionally on loopback TCP. It keeps images parsed
// and stubs spawned ahead of demand, so a launch pays for neither.

import { chmodSync, existsSync, lstatSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import minimist from 'minimist';
import { LaunchError, UsageError } from '../errors.js';
import { configureLog, LEVELS, log, type LogFormat, type LogLevel } from '../log.js';
import { buildApi } from '../serve/api.js';
import { InstanceManager } from '../serve/instances.js';
import { Metrics } from '../serve/metrics.js';
import { Zygote } from '../serve/zygote.js';
import { ImageRegistry } from '../serve/registry.js';

export const DEFAULT_SOCKET = '/run/tendril.sock';

const USAGE = `usage: tendril serve [--socket=PATH] [--listen=127.0.0.1:PORT] [--pool=N] [--log-level=L] [--log-format=F]
Serve the tendril HTTP API (see README "tendril serve").
  --socket=PATH        unix socket to listen on (default ${DEFAULT_SOCKET}; mode 0600)
  --listen=HOST:PORT   also listen on loopback TCP (127.0.0.1 or ::1 only)
  --pool=N             stubs kept ready for launches (default 4, 0..64)
  --output-limit=BYTES console bytes kept per instance (default 1048576)
  --max-timeout=MS     largest timeoutMs a launch may ask for (default 3600000)
  --log-level=LEVEL    ${LEVELS.join(', ')} (default info)
  --log-format=FORMAT  pretty or json (default: pretty on a terminal)`;

function intOption(name: string, v: unknown, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  const s = String(v);
  if (!/^[0-9]+$/.test(s) || Number(s) < min || Number(s) > max) throw new UsageError(`--${name}=${s}: must be a whole number from ${min} to ${max}`);
  return Number(s);
}

/** A stale socket file (no one listening) is removed; a live one is an error. */
async function claimSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) throw new LaunchError(`--socket=${path}: exists and is not a socket`, 'choose another path');
  const live = await new Promise<boolean>((resolve) => {
    const s = connect(path, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
  if (live) throw new LaunchError(`--socket=${path}: another server is listening there`, 'stop it or choose another path');
  unlinkSync(path);
}

export async function serveVerb(argv: string[]): Promise<number> {
  const known = ['socket', 'listen', 'pool', 'output-limit', 'max-timeout', 'log-level', 'log-format', 'help'];
  const a = minimist(argv, { string: known.filter((k) => k !== 'help'), boolean: ['help'], unknown: (o) => {
    if (o.startsWith('-')) throw new UsageError(`serve: unknown option ${o}`, USAGE.split('\n')[0]);
    throw new UsageError(`serve: unexpected argument ${o}`, USAGE.split('\n')[0]);
  } });
  if (a.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const level = (a['log-level'] ?? 'info') as LogLevel;
  if (!(LEVELS as readonly string[]).includes(level)) throw new UsageError(`--log-level=${level}: must be one of ${LEVELS.join(', ')}`);
  const format = a['log-format'] as LogFormat | undefined;
  if (format !== undefined && format !== 'pretty' && format !== 'json') throw new UsageError(`--log-format=${format}: must be pretty or json`);
  configureLog({ level, format, bindings: { name: 'tendril-serve' } });
  const socket = String(a.socket ?? DEFAULT_SOCKET);
  let tcp: { host: string; port: number } | undefined;
  if (a.listen !== undefined) {
    const m = /^(127\.0\.0\.1|localhost|\[::1\]):([0-9]{1,5})$/.exec(String(a.listen));
    if (!m || Number(m[2]) > 65535) throw new UsageError(`--listen=${a.listen}: expected 127.0.0.1:PORT, localhost:PORT or [::1]:PORT`, 'the API has no authentication: it listens on loopback only');
    tcp = { host: m[1] === '[::1]' ? '::1' : m[1], port: Number(m[2]) };
  }
  const zygote = new Zygote(intOption('pool', a.pool, 0, 64, 4));
  const metrics = new Metrics();
  const registry = new ImageRegistry();
  const instances = new InstanceManager(registry, zygote, metrics, {
    outputLimit: intOption('output-limit', a['output-limit'], 0, 1 << 30, 1 << 20),
    historyLimit: 1000,
    maxTimeoutMs: intOption('max-timeout', a['max-timeout'], 1, 7 * 24 * 3600 * 1000, 3600 * 1000),
  });
  const app = buildApi(registry, instances, metrics);

  await claimSocket(socket);
  await app.listen({ path: socket });
  chmodSync(socket, 0o600);
  if (tcp) await app.listen({ host: tcp.host, port: tcp.port });
  log.info({ socket, tcp: tcp ? `${tcp.host}:${tcp.port}` : undefined, pool: zygote.poolSize }, 'serving');

  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log.info({ signal: sig }, 'shutting down');
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await instances.shutdown();
  zygote.close();
  await app.close();
  if (existsSync(socket)) unlinkSync(socket);
  return 0;
}
