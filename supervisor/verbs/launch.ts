// `tendril launch --server SOCKET [run options] GUEST [ARGS]`: run a guest
// through a `tendril serve` server; prints its output and exits with its
// status, like `tendril run`.

import { writeSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { parseRunArgs, runUsage } from '../options.js';
import { api, streamTo } from '../serve/client.js';
import { DEFAULT_SOCKET } from './serve.js';

type Body = Record<string, unknown> & { error?: string; hint?: string };

function check(r: { status: number; body: unknown }, what: string): Body {
  const b = (r.body ?? {}) as Body;
  if (r.status >= 400) throw new UsageError(`${what}: ${b.error ?? `HTTP ${r.status}`}`, b.hint);
  return b;
}

export async function launchVerb(argv: string[]): Promise<number> {
  let server = DEFAULT_SOCKET;
  let timeoutMs: number | undefined;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (rest.length === 0 && (a === '--server' || a.startsWith('--server='))) {
      server = a === '--server' ? argv[++i] ?? '' : a.slice('--server='.length);
      if (!server) throw new UsageError('launch: --server needs a socket path');
    } else if (rest.length === 0 && a.startsWith('--timeout=')) {
      const v = a.slice('--timeout='.length);
      if (!/^[0-9]{1,9}$/.test(v) || Number(v) === 0) throw new UsageError(`launch: --timeout=${v}: milliseconds, at least 1`);
      timeoutMs = Number(v);
    } else {
      rest.push(...argv.slice(i));
      break;
    }
  }
  const parsed = parseRunArgs(rest);
  if (parsed.kind !== 'run') {
    process.stdout.write(`${runUsage('tendril launch --server SOCKET [--timeout=MS]')}\n`);
    return parsed.kind === 'help' ? 0 : 1;
  }
  const o = parsed.options;
  const devices: Record<string, object> = {};
  for (const d of o.devices) {
    if (d.fd !== undefined) throw new UsageError(`launch: ${d.kind} ${d.name}: @FD cannot be passed to a server`, 'name the interface or file instead');
    devices[d.name] = d.kind === 'net'
      ? { net: d.iface, ...(d.mac ? { mac: [...d.mac].map((b) => b.toString(16).padStart(2, '0')).join(':') } : {}) }
      : { block: resolve(d.path!), readOnly: d.readOnly, ...(d.sectorSize ? { sectorSize: d.sectorSize } : {}) };
  }
  const image = check(await api(server, 'POST', '/images', { path: resolve(o.guest) }), o.guest);
  const inst = check(await api(server, 'POST', '/instances', {
    image: image.id, args: o.guestArgs, memMiB: o.memMiB, devices, ...(timeoutMs ? { timeoutMs } : {}),
  }), 'launch');
  await streamTo(server, `/instances/${inst.id}/console`, (c) => writeSync(1, c));
  const end = check(await api(server, 'GET', `/instances/${inst.id}`), 'status');
  if (typeof end.reason === 'string') process.stderr.write(`tendril: ${end.reason}\n`);
  return typeof end.status === 'number' ? end.status : 1;
}
