// A minimal client for the serve API: over its unix socket, or over
// loopback TCP with the server's bearer token.

import { createWriteStream } from 'node:fs';
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { LaunchError } from '../errors.js';

export interface ApiResponse {
  status: number;
  body: unknown;
}

/** Where the server is: a unix socket path, or http://HOST:PORT with a token. */
export interface Server {
  socketPath?: string;
  host?: string;
  port?: number;
  token?: string;
}

/** `--server` as given: a path, or http://127.0.0.1:PORT. */
export function parseServer(spec: string, token?: string): Server {
  const m = /^http:\/\/(127\.0\.0\.1|localhost|\[::1\]):([0-9]{1,5})\/?$/.exec(spec);
  if (m) return { host: m[1] === '[::1]' ? '::1' : m[1], port: Number(m[2]), token };
  return { socketPath: spec };
}

const describe = (s: Server) => s.socketPath ?? `http://${s.host}:${s.port}`;

/** Reuses connections: a warm client pays no connect per request. */
const agent = new Agent({ keepAlive: true });

function send(server: Server | string, method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<IncomingMessage> {
  const s = typeof server === 'string' ? { socketPath: server } : server;
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = httpRequest({
      socketPath: s.socketPath, host: s.host, port: s.port, method, path, agent, signal,
      headers: {
        ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
        ...(s.token ? { authorization: `Bearer ${s.token}` } : {}),
      },
    }, resolve);
    req.on('error', (e: NodeJS.ErrnoException) => reject(e.name === 'AbortError' ? e : new LaunchError(`cannot reach the server at ${describe(s)}: ${e.code ?? e.message}`,
      s.socketPath ? 'start it with `tendril serve --socket=PATH`, or name it with --server=PATH' : 'check --server and that the server runs with --listen')));
    req.end(payload);
  });
}

export async function api(server: Server | string, method: string, path: string, body?: unknown): Promise<ApiResponse> {
  const res = await send(server, method, path, body);
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch { /* not JSON: keep the text */ }
  return { status: res.statusCode ?? 0, body: parsed };
}

/** Writes a response body (a recording) to `file`; returns the HTTP status and, on an error, its JSON body. */
export async function download(server: Server | string, path: string, file: string): Promise<ApiResponse> {
  const res = await send(server, 'GET', path);
  if (res.statusCode !== 200) {
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch { /* not JSON */ }
    return { status: res.statusCode ?? 0, body };
  }
  await pipeline(res, createWriteStream(file, { mode: 0o600 }));
  return { status: 200, body: undefined };
}

/** Streams a response body (the console) into `sink` until the server ends it. */
export async function streamTo(server: Server | string, path: string, sink: (chunk: Buffer) => void): Promise<void> {
  const res = await send(server, 'GET', path);
  if (res.statusCode !== 200) throw new LaunchError(`GET ${path}: HTTP ${res.statusCode}`);
  for await (const c of res) sink(c as Buffer);
}
