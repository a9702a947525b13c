// The HTTP API of `tendril serve` (fastify), JSON in and out:
//
//   POST   /images              {"path": FILE} or the image bytes (application/octet-stream)
//   GET    /images              list;  GET /images/:id;  DELETE /images/:id
//   POST   /instances           {"image", "args", "memMiB", "devices", "timeoutMs", "wait"}
//                               wait=true answers when the guest has ended, with its output
//   GET    /instances           list;  GET /instances/:id  status, exit, timings
//   GET    /instances/:id/console   the console output, streamed until the guest ends
//   POST   /instances/:id/kill  {"signal": "SIGKILL"};  DELETE /instances/:id  (kill)
//   GET    /metrics             Prometheus text
//
// Errors are {"error": message, "hint"?} with 400 (bad request), 404 (unknown
// id) or 500; a TendrilError's message is the same line the CLI would print.

import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { isTendrilError } from '../errors.js';
import type { Instance, InstanceManager, LaunchRequest } from './instances.js';
import type { Metrics } from './metrics.js';
import { describeImage, NotFoundError, type ImageRegistry } from './registry.js';

export function describeInstance(i: Instance, withOutput = false): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: i.id, image: i.image, args: i.args, memMiB: i.memMiB, pid: i.pid, state: i.state, createdAt: i.createdAt,
    timings: i.timings,
  };
  if (i.end) {
    out.status = i.end.status;
    if (i.end.signal !== undefined) out.signal = i.end.signal;
    if (i.end.reason) out.reason = i.end.reason;
    if (i.end.report) out.maxrssKiB = i.end.report.maxrssKb;
  }
  if (i.killedBy) out.killedBy = i.killedBy;
  if (withOutput) {
    out.output = Buffer.concat(i.output).toString('utf8');
    out.outputTruncated = i.outputTruncated;
  }
  return out;
}

function fail(reply: FastifyReply, e: unknown): FastifyReply {
  if (e instanceof NotFoundError) return reply.code(404).send({ error: e.message, hint: e.hint });
  if (isTendrilError(e)) return reply.code(400).send({ error: e.message, hint: e.hint });
  return reply.code(500).send({ error: `internal error: ${(e as Error).message}` });
}

export function buildApi(registry: ImageRegistry, instances: InstanceManager, metrics: Metrics): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 256 << 20 });
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.post('/images', async (req, reply) => {
    try {
      const entry = Buffer.isBuffer(req.body)
        ? registry.register(req.body, String((req.query as Record<string, string>).name ?? 'upload'))
        : typeof (req.body as { path?: unknown })?.path === 'string'
          ? registry.registerFile((req.body as { path: string }).path)
          : undefined;
      if (!entry) return reply.code(400).send({ error: 'send {"path": FILE} or the image bytes as application/octet-stream' });
      return reply.code(201).send(describeImage(entry));
    } catch (e) {
      return fail(reply, e);
    }
  });
  app.get('/images', async () => registry.list().map(describeImage));
  app.get<{ Params: { id: string } }>('/images/:id', async (req, reply) => {
    try {
      return describeImage(registry.get(req.params.id));
    } catch (e) {
      return fail(reply, e);
    }
  });
  app.delete<{ Params: { id: string } }>('/images/:id', async (req, reply) => {
    try {
      registry.remove(req.params.id);
      return reply.code(204).send();
    } catch (e) {
      return fail(reply, e);
    }
  });

  app.post<{ Body: LaunchRequest & { wait?: boolean } }>('/instances', async (req, reply) => {
    try {
      const inst = instances.launch(req.body);
      if (!req.body.wait) return reply.code(201).send(describeInstance(inst));
      return describeInstance(await inst.ended, true);
    } catch (e) {
      return fail(reply, e);
    }
  });
  app.get('/instances', async () => instances.list().map((i) => describeInstance(i)));
  app.get<{ Params: { id: string } }>('/instances/:id', async (req, reply) => {
    try {
      return describeInstance(instances.get(req.params.id), true);
    } catch (e) {
      return fail(reply, e);
    }
  });
  app.get<{ Params: { id: string } }>('/instances/:id/console', (req, reply) => {
    let inst: Instance;
    try {
      inst = instances.get(req.params.id);
    } catch (e) {
      return fail(reply, e);
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-tendril-instance': inst.id });
    for (const chunk of inst.output) res.write(chunk);
    if (inst.state === 'exited') {
      res.end();
      return;
    }
    const listener = (chunk: Buffer | null) => {
      if (chunk) res.write(chunk);
      else res.end();
    };
    inst.listeners.add(listener);
    res.on('close', () => inst.listeners.delete(listener));
  });
  const kill = (id: string, signal: string | undefined, reply: FastifyReply) => {
    try {
      return describeInstance(instances.kill(id, (signal ?? 'SIGKILL') as NodeJS.Signals));
    } catch (e) {
      return fail(reply, e);
    }
  };
  app.post<{ Params: { id: string }; Body: { signal?: string } | undefined }>('/instances/:id/kill',
    async (req, reply) => kill(req.params.id, req.body?.signal, reply));
  app.delete<{ Params: { id: string } }>('/instances/:id', async (req, reply) => kill(req.params.id, undefined, reply));

  app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4').send(metrics.render()));
  return app;
}
