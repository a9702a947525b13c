// `tendril launch [--server=S] [--timeout=MS] [run options] GUEST [ARGS]`:
// run a guest through a `tendril serve` server as if with `tendril run`: its
// console on stdout, its reason line on stderr, its status as ours (a guest
// killed by a signal ends us by the same signal). A signal to this client
// goes to the guest, so Ctrl-C stops the guest, not just the client. Paths
// are resolved here, against our working directory: the server's means
// nothing to the user.

import { readFileSync, writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { configureLog, log } from '../log.js';
import { parseRunArgs, type RunOptions } from '../options.js';
import { api, download, parseServer, streamTo, type Server } from '../serve/client.js';
import * as os from '../os.js';
import { DEFAULT_SOCKET } from './serve.js';

type Body = Record<string, unknown> & { error?: string; hint?: string };

const USAGE = `usage: tendril launch [ LAUNCH OPTIONS ] [ RUN OPTIONS ] [ -- ] GUEST [ ARGS ]
Run GUEST through a running \`tendril serve\`, as \`tendril run\` would: its console on
stdout, why it died on stderr, its exit status as this command's. Ctrl-C, SIGTERM and
SIGHUP are passed to the guest. Relative paths (GUEST, disks) are resolved here.

Launch options (before the run options):
  --server=SOCKET               the server's unix socket (default ${DEFAULT_SOCKET}, or $TENDRIL_SERVER)
  --server=http://127.0.0.1:PORT  a server listening on loopback TCP (needs --token-file)
  --token-file=FILE             the server's bearer token, for a TCP server
  --timeout=MS                  the server kills the guest after MS milliseconds
  --no-monitor                  skip the guest's ptrace monitor (no reason line, no peak memory)

Run options that work through a server: --mem=MB, --net:NAME=IFACE, --net-mac:NAME=HWADDR,
--block:NAME=PATH, --block-ro:NAME=PATH, --block-sector-size:NAME=N, --x-exec-heap,
--isolate[=strict] with --uid, --gid, --cpus, --mem-limit,
--supervise (the default: the server monitors every guest), --record=FILE (the server records
the run; FILE is written here once the guest has ended), --log-level, --log-format (this
client's own log). Refused, with the reason: --gdb, --dumpcore, --dumpable, --wait-fifo,
and @FD devices (they concern the server's host; use \`tendril run\` there).

Exit status: the guest's (as \`tendril run\`); 1 when the server refuses the launch.`;

/** Options that cannot work through a server, and why. */
const REFUSED: [keyof RunOptions, string, string][] = [
  ['gdb', '--gdb', 'the guest would wait for a debugger on the server\'s host; run it there with `tendril run --gdb`'],
  ['dumpcore', '--dumpcore', 'the core would be written on the server\'s host; run it there with `tendril run --dumpcore=DIR`'],
  ['waitFifo', '--wait-fifo', 'create/start is tendril-oci\'s; launch starts the guest at once'],
];

function check(r: { status: number; body: unknown }, what: string): Body {
  const b = (r.body ?? {}) as Body;
  if (r.status >= 400) throw new UsageError(`${what}: ${b.error ?? `HTTP ${r.status}`}`, b.hint);
  return b;
}

function launchBody(o: RunOptions): Record<string, unknown> {
  const devices: Record<string, object> = {};
  for (const d of o.devices) {
    if (d.fd !== undefined) throw new UsageError(`launch: --${d.kind}:${d.name}=@${d.fd}: an fd of this process cannot be passed to a server`, 'name the interface or the file instead');
    devices[d.name] = d.kind === 'net'
      ? { net: d.iface, ...(d.mac ? { mac: [...d.mac].map((b) => b.toString(16).padStart(2, '0')).join(':') } : {}) }
      : { block: resolve(d.path!), ...(d.readOnly ? { readOnly: true } : {}), ...(d.sectorSize ? { sectorSize: d.sectorSize } : {}) };
  }
  const iso = o.isolate;
  if (iso?.cgroupParent) throw new UsageError('launch: --cgroup-parent does not work through a server: the server chooses where its guests\' cgroups go');
  const isolate = iso && (iso.strict || iso.uid || iso.gid || iso.cpus || iso.memLimitMiB)
    ? { ...(iso.strict ? { strict: true } : {}), uid: iso.uid, gid: iso.gid, cpus: iso.cpus, memLimitMiB: iso.memLimitMiB } : iso ? true : undefined;
  return {
    args: o.guestArgs, memMiB: o.memMiB, devices, ...(o.xExecHeap ? { xExecHeap: true } : {}), ...(isolate ? { isolate } : {}),
  };
}

export async function launchVerb(argv: string[]): Promise<number> {
  let serverSpec = process.env.TENDRIL_SERVER || DEFAULT_SOCKET;
  let tokenFile: string | undefined;
  let timeoutMs: number | undefined;
  let monitor = true;
  let i = 0;
  const value = (a: string, name: string): string => {
    const v = a === `--${name}` ? argv[++i] : a.slice(name.length + 3);
    if (!v) throw new UsageError(`launch: --${name} needs a value`, `write it as --${name}=VALUE`);
    return v;
  };
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    if (a === '--server' || a.startsWith('--server=')) serverSpec = value(a, 'server');
    else if (a === '--token-file' || a.startsWith('--token-file=')) tokenFile = value(a, 'token-file');
    else if (a === '--timeout' || a.startsWith('--timeout=')) {
      const v = value(a, 'timeout');
      if (!/^[0-9]{1,10}$/.test(v) || Number(v) === 0) throw new UsageError(`launch: --timeout=${v}: a whole number of milliseconds, at least 1`);
      timeoutMs = Number(v);
    } else if (a === '--no-monitor') monitor = false;
    else break;
  }
  const parsed = parseRunArgs(argv.slice(i));
  if (parsed.kind === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (parsed.kind === 'version') {
    const { versionText } = await import('../cli.js');
    process.stdout.write(versionText());
    return 0;
  }
  const o = parsed.options;
  for (const [key, word, why] of REFUSED) if (o[key]) throw new UsageError(`launch: ${word} does not work through a server: ${why}`);
  // --dumpcore sets dumpable itself, so this comes after it.
  if (o.dumpable) throw new UsageError('launch: --dumpable does not work through a server: it is for debuggers and core dumps on the server\'s host');
  if (o.supervise && !monitor) throw new UsageError('launch: --supervise and --no-monitor contradict each other');
  if (o.record && !monitor) throw new UsageError('launch: --record and --no-monitor contradict each other', 'the monitor is what records');
  configureLog({ level: o.logLevel, format: o.logFormat });
  let token: string | undefined;
  if (tokenFile) {
    try {
      token = readFileSync(tokenFile, 'utf8').trim();
    } catch (e) {
      throw new UsageError(`launch: --token-file=${tokenFile}: cannot read it: ${(e as NodeJS.ErrnoException).code}`);
    }
  }
  const server: Server = parseServer(serverSpec, token);
  if (server.host && !token) throw new UsageError(`launch: --server=${serverSpec} is a TCP server: it needs --token-file`);

  const image = check(await api(server, 'POST', '/images', { path: resolve(o.guest) }), o.guest);
  log.info({ image: image.id, guest: o.guest }, 'image registered');
  const inst = check(await api(server, 'POST', '/instances', {
    image: image.id, ...launchBody(o), ...(timeoutMs ? { timeoutMs } : {}), ...(monitor ? {} : { monitor: false }),
    ...(o.record ? { record: true } : {}),
  }), 'launch');
  log.info({ instance: inst.id, pid: inst.pid }, 'guest started');

  // From here a signal to us is for the guest; its end decides ours.
  const forward = (sig: NodeJS.Signals) => {
    void api(server, 'POST', `/instances/${inst.id}/kill`, { signal: sig }).catch(() => undefined);
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'] as const;
  for (const s of signals) process.on(s, forward);
  try {
    await streamTo(server, `/instances/${inst.id}/console`, (c) => writeSync(1, c));
  } catch (e) {
    // stdout went away (a closed pipe): the guest's next write would have died by SIGPIPE too.
    if ((e as NodeJS.ErrnoException).code === 'EPIPE') forward('SIGPIPE' as NodeJS.Signals);
    else throw e;
  }
  const end = check(await api(server, 'GET', `/instances/${inst.id}`), 'status');
  for (const s of signals) process.off(s, forward);
  log.info({ instance: inst.id, status: end.status, reason: end.reason }, 'guest exited');
  if (end.state === 'failed') {
    const err = end.error as Body | undefined;
    throw new UsageError(`launch: ${err?.error ?? 'the guest could not be started'}`, err?.hint);
  }
  if (o.record) check(await download(server, `/instances/${inst.id}/recording`, resolve(o.record)), `--record=${o.record}`);
  if (typeof end.reason === 'string') process.stderr.write(`tendril: ${end.reason}\n`);
  const status = typeof end.status === 'number' ? end.status : 1;
  if (typeof end.signal === 'number') {
    // As `tendril run`: end by the guest's signal, so the shell sees the same status.
    os.setrlimit(os.RLIMIT_CORE, Buffer.alloc(16));
    os.resetSignal(end.signal);
    os.raise(end.signal);
  }
  return status;
}

