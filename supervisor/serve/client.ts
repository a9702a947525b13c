// A minimal client for the serve API over its unix socket.

import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { LaunchError } from '../errors.js';

export interface ApiResponse {
  status: number;
  body: unknown;
}

/** Reuses connections: a warm client pays no connect per request. */
const agent = new Agent({ keepAlive: true });

function send(socketPath: string, method: string, path: string, body?: unknown): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = httpRequest({
      socketPath, method, path, agent,
      headers: payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {},
    }, resolve);
    req.on('error', (e: NodeJS.ErrnoException) => reject(new LaunchError(`cannot reach the server at ${socketPath}: ${e.code ?? e.message}`,
      'start it with `tendril serve --socket=PATH`')));
    req.end(payload);
  });
}

export async function api(socketPath: string, method: string, path: string, body?: unknown): Promise<ApiResponse> {
  const res = await send(socketPath, method, path, body);
  const chunks: Buffer[] = [];
  for await (const c of res) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch { /* not JSON: keep the text */ }
  return { status: res.statusCode ?? 0, body: parsed };
}

/** Streams a response body (the console) into `sink` until the server ends it. */
export async function streamTo(socketPath: string, path: string, sink: (chunk: Buffer) => void): Promise<void> {
  const res = await send(socketPath, 'GET', path);
  if (res.statusCode !== 200) throw new LaunchError(`GET ${path}: HTTP ${res.statusCode}`);
  for await (const c of res) sink(c as Buffer);
}
