// `tendril serve`: a long-running supervisor with an HTTP API (serve/api.ts)
// on a unix socket, and optionally on loopback TCP behind a bearer token. It
// keeps images parsed and stubs spawned ahead of demand, so a launch pays
// for neither. Startup either completes or fails within a second with one
// line, leaving nothing behind (no socket file, no stub pool).

import { existsSync, lstatSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { totalmem } from 'node:os';
import { dirname } from 'node:path';
import minimist from 'minimist';
import type { FastifyInstance } from 'fastify';
import { EnvironmentError, UsageError } from '../errors.js';
import { configureLog, LEVELS, log, type LogFormat, type LogLevel } from '../log.js';
import { nearest } from '../options.js';
import { buildApi } from '../serve/api.js';
import { InstanceManager } from '../serve/instances.js';
import { RecordingStore } from '../serve/recordings.js';
import { Metrics } from '../serve/metrics.js';
import { ImageRegistry } from '../serve/registry.js';
import { SnapshotStore } from '../serve/snapshots.js';
import { StubPool } from '../serve/zygote.js';
import { serverIsolation } from '../serve/isolation.js';

export const DEFAULT_SOCKET = '/run/tendril.sock';
const MiB = 1 << 20;

const USAGE = `usage: tendril serve [OPTIONS]
Serve the tendril HTTP API (see README "tendril serve").
  --socket=PATH         unix socket to listen on (default ${DEFAULT_SOCKET}; created mode 0600)
  --listen=HOST:PORT    also listen on loopback TCP: 127.0.0.1, localhost or [::1]; needs --token-file
  --token-file=FILE     the bearer token TCP clients must send (Authorization: Bearer TOKEN); the
                        file must not be readable by group or others
  --pool=N              stubs kept ready for launches (default 4, 0..64)
  --max-instances=N     guests running at once (default: from the fd limit and memory); beyond: 429
  --max-pending=N       launches starting at once (default min(256, max-instances)); beyond: 429
  --output-limit=BYTES  console bytes kept per instance (default 1048576)
  --history=N           finished instances remembered (default 1000)
  --history-bytes=BYTES console bytes kept across finished instances (default 67108864)
  --max-image=BYTES     largest image accepted (default 268435456)
  --max-registry=BYTES  all registered images together (default 1073741824)
  --max-timeout=MS      largest timeoutMs a launch may ask for (default 3600000)
  --max-snapshots=N     snapshots kept (POST /snapshots; default 64), in a private directory under
                        TMPDIR removed when the server stops
  --recordings=DIR      where recordings of "record": true launches go (default: a private
                        temporary directory, removed with the server); each is deleted with its instance
  --isolate[=strict]    jail every guest (as run --isolate); the pool's stubs make their jail's
                        namespaces and cgroups while they wait; =strict refuses to start on a host
                        that lacks a layer
  --log-level=LEVEL     ${LEVELS.join(', ')} (default info)
  --log-format=FORMAT   pretty or json (default: pretty on a terminal)
  --help                this help`;

const STRINGS = ['socket', 'listen', 'token-file', 'log-level', 'log-format', 'recordings'];
const NUMBERS = ['pool', 'max-instances', 'max-pending', 'output-limit', 'history', 'history-bytes', 'max-image', 'max-registry', 'max-timeout',
  'max-snapshots'];

function intOption(name: string, v: unknown, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  const s = String(v);
  if (!/^[0-9]+$/.test(s) || Number(s) < min || Number(s) > max) throw new UsageError(`--${name}=${s}: must be a whole number from ${min} to ${max}`);
  return Number(s);
}

/** A stale socket file (no one listening) is removed; a live one is an error. */
async function claimSocket(path: string): Promise<void> {
  if (!existsSync(dirname(path))) throw new UsageError(`--socket=${path}: the directory ${dirname(path)} does not exist`, 'create it, or choose another path');
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) throw new UsageError(`--socket=${path}: exists and is not a socket`, 'choose another path');
  const live = await new Promise<boolean>((resolve) => {
    const s = connect(path, () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
  if (live) throw new UsageError(`--socket=${path}: another server is listening there`, 'stop it or choose another path');
  unlinkSync(path);
}

function readToken(file: string): Buffer {
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    throw new UsageError(`--token-file=${file}: cannot read it: ${(e as NodeJS.ErrnoException).code}`);
  }
  if ((st.mode & 0o077) !== 0) throw new UsageError(`--token-file=${file}: readable by group or others (mode ${(st.mode & 0o777).toString(8)})`, `chmod 600 ${file}`);
  const token = readFileSync(file, 'utf8').trim();
  if (token.length < 16 || /\s/.test(token)) throw new UsageError(`--token-file=${file}: the token must be one word of at least 16 characters`, 'e.g. head -c 32 /dev/urandom | base64 > FILE');
  return Buffer.from(token);
}

/**
 * How many guests may run at once, unless told: each holds a few fds in the
 * zygote (its console, its stub's stderr and report socket, two pidfds), and a
 * little memory (a hello-sized guest and its monitor stay under 200 KiB; page
 * tables and kernel structures come on top).
 */
export function defaultMaxInstances(nofile: number, pool: number): number {
  const byFds = Math.floor((nofile - 64 - 6 * pool) / 6);
  const byMemory = Math.floor(totalmem() / (4 * MiB));
  return Math.max(1, Math.min(byFds, byMemory, 65536));
}

export async function serveVerb(argv: string[]): Promise<number> {
  const a = minimist(argv, {
    string: [...STRINGS, ...NUMBERS, 'isolate'], boolean: ['help'],
    unknown: (o) => {
      if (!o.startsWith('-')) throw new UsageError(`serve: unexpected argument ${o}`, USAGE.split('\n')[0]);
      const name = o.replace(/^-+/, '').split('=')[0];
      const guess = nearest(name, [...STRINGS, ...NUMBERS, 'isolate', 'help']);
      throw new UsageError(`serve: unknown option ${o.split('=')[0]}`, guess ? `did you mean --${guess}?` : 'see `tendril serve --help`');
    },
  });
  if (a.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  for (const k of [...STRINGS, ...NUMBERS]) {
    if (Array.isArray(a[k])) throw new UsageError(`serve: --${k} given twice`);
    if (a[k] === '') throw new UsageError(`serve: --${k} needs a value`, `write it as --${k}=VALUE`);
  }
  const level = (a['log-level'] ?? 'info') as LogLevel;
  if (!(LEVELS as readonly string[]).includes(level)) throw new UsageError(`--log-level=${level}: must be one of ${LEVELS.join(', ')}`);
  const format = a['log-format'] as LogFormat | undefined;
  if (format !== undefined && format !== 'pretty' && format !== 'json') throw new UsageError(`--log-format=${format}: must be pretty or json`);
  configureLog({ level, format, bindings: { name: 'tendril-serve' } });
  const socket = String(a.socket ?? DEFAULT_SOCKET);
  let tcp: { host: string; port: number; hosts: string[] } | undefined;
  if (a.listen !== undefined) {
    const m = /^(127\.0\.0\.1|localhost|\[::1\]):([0-9]{1,5})$/.exec(String(a.listen));
    if (!m || Number(m[2]) > 65535 || Number(m[2]) === 0) {
      throw new UsageError(`--listen=${a.listen}: expected 127.0.0.1:PORT, localhost:PORT or [::1]:PORT`, 'the API listens on loopback only');
    }
    const port = Number(m[2]);
    tcp = { host: m[1] === '[::1]' ? '::1' : m[1] === 'localhost' ? '127.0.0.1' : m[1], port, hosts: [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`] };
    if (a['token-file'] === undefined) throw new UsageError('--listen needs --token-file: TCP clients must authenticate', 'any local user can reach a loopback port');
  }
  const token = a['token-file'] !== undefined ? readToken(String(a['token-file'])) : undefined;
  const poolSize = intOption('pool', a.pool, 0, 64, 4);
  if (Array.isArray(a.isolate)) throw new UsageError('serve: --isolate given twice');
  if (a.isolate !== undefined && a.isolate !== '' && a.isolate !== 'strict') throw new UsageError(`serve: --isolate=${a.isolate}: --isolate takes no value but =strict`);
  // Decided (and, strict, refused) before anything starts: the pool's stubs make this jail ahead.
  const isolation = a.isolate === undefined ? undefined : serverIsolation(a.isolate === 'strict');
  const limits = {
    outputLimit: intOption('output-limit', a['output-limit'], 0, 1 << 30, 1 << 20),
    historyCount: intOption('history', a.history, 0, 1_000_000, 1000),
    historyBytes: intOption('history-bytes', a['history-bytes'], 0, 2 ** 40, 64 * MiB),
    maxTimeoutMs: intOption('max-timeout', a['max-timeout'], 1, 7 * 24 * 3600 * 1000, 3600 * 1000),
    maxImageBytes: intOption('max-image', a['max-image'], 4096, 2 ** 40, 256 * MiB),
    maxTotalBytes: intOption('max-registry', a['max-registry'], 4096, 2 ** 42, 1024 * MiB),
    maxSnapshots: intOption('max-snapshots', a['max-snapshots'], 0, 100_000, 64),
  };
  await claimSocket(socket);

  const recordings = new RecordingStore(a.recordings === undefined ? undefined : String(a.recordings));
  const pool = new StubPool(poolSize, isolation?.stubArgs);
  const apps: FastifyInstance[] = [];
  let instances: InstanceManager | undefined;
  let snapshots: SnapshotStore | undefined;
  const cleanup = async () => {
    await instances?.shutdown().catch(() => undefined);
    snapshots?.close();
    const idle = isolation?.idleStubs(pool.pid) ?? [];
    pool.close();
    recordings.close();
    await isolation?.stop(idle);
    for (const app of apps) await app.close().catch(() => undefined);
    if (existsSync(socket) && lstatSync(socket).isSocket()) unlinkSync(socket);
  };
  try {
    await pool.start();
    const maxRunning = intOption('max-instances', a['max-instances'], 1, 1 << 20, defaultMaxInstances(pool.nofile, poolSize));
    const maxPending = intOption('max-pending', a['max-pending'], 1, 1 << 20, Math.min(256, maxRunning));
    const metrics = new Metrics();
    const registry = new ImageRegistry({ maxImageBytes: limits.maxImageBytes, maxTotalBytes: limits.maxTotalBytes });
    snapshots = new SnapshotStore(registry, {
      maxSnapshots: limits.maxSnapshots, maxCreating: 2, outputLimit: limits.outputLimit, maxTimeoutMs: limits.maxTimeoutMs,
    });
    const store = snapshots;
    metrics.gauge('tendril_snapshots', 'Snapshots kept.', () => store.count);
    instances = new InstanceManager(registry, pool, metrics, { ...limits, maxRunning, maxPending }, snapshots, recordings, isolation);
    const ctx = { registry, instances, metrics, pool, snapshots };
    // TCP first: once the socket file exists, every listener is up.
    if (tcp) {
      const app = buildApi(ctx, { maxImageBytes: limits.maxImageBytes, auth: { token: token!, hosts: tcp.hosts } });
      apps.push(app);
      await app.listen({ host: tcp.host, port: tcp.port });
    }
    const unix = buildApi(ctx, { maxImageBytes: limits.maxImageBytes });
    apps.push(unix);
    // Created private: the umask applies at bind(), so no one else can connect in between.
    const umask = process.umask(0o177);
    try {
      await unix.listen({ path: socket });
    } finally {
      process.umask(umask);
    }
    log.info({ socket, tcp: tcp ? `${tcp.host}:${tcp.port}` : undefined, pool: poolSize, poolPid: pool.pid, maxRunning, maxPending }, 'serving');
  } catch (e) {
    await cleanup();
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'EADDRINUSE') throw new UsageError(`--listen=${a.listen}: the port is in use`, 'choose another port');
    if (err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL') throw new EnvironmentError(`cannot listen: ${err.message}`);
    throw e;
  }

  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log.info({ signal: sig }, 'shutting down');
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGHUP', () => stop('SIGHUP'));
  });
  await cleanup();
  return 0;
}
