// The HTTP API of `tendril serve` (fastify), JSON in and out:
//
//   POST   /images              {"path": ABSOLUTE-FILE} or the image bytes (application/octet-stream)
//   GET    /images              list;  GET /images/:id;  DELETE /images/:id
//   POST   /instances           {"image", "args", "memMiB", "devices", "timeoutMs", "monitor", "xExecHeap", "isolate", "record", "wait"}:
//                               201 once the guest runs (with its pid); with "wait": true, 200 when it
//                               has ended, with its output; {"snapshot": ID, "devices", …} instead of
//                               "image" restores a snapshot
//   POST   /snapshots           {"image", "args", "memMiB", "devices", "at", "xExecHeap", "timeoutMs"}: boots the
//                               guest to its point and keeps the snapshot; 201 with its id
//   GET    /snapshots           list;  GET /snapshots/:id;  DELETE /snapshots/:id
//   GET    /instances           list;  GET /instances/:id  state, pid, status, reason, timings, output
//   GET    /instances/:id/console   the console, streamed until the guest ends
//   GET    /instances/:id/recording  the recording of an instance launched with "record": true,
//                               once its guest has ended (tendril replay FILE re-runs it)
//   POST   /instances/:id/kill  {"signal": "SIGTERM"} (default SIGKILL), to the guest itself
//   DELETE /instances/:id       forget a finished instance
//   GET    /metrics             Prometheus text;  GET /health
//
// Requests are validated by JSON schema (unknown fields are errors: a
// misspelled "timeoutMs" must not mean "no limit"). Failures are
// {"error", "hint"?, "kind"} with a status by kind (errors.ts).

import { timingSafeEqual } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { DEVICE_NAME_RE } from '../../loader/manifest.js';
import { MAX_MEM_MIB } from '../../loader/abi.js';
import { macProblem, nearest } from '../options.js';
import { BusyError, ConflictError, errorBody, httpStatus, NotFoundError, RequestError, TooLargeError } from './errors.js';
import type { Instance, InstanceManager, LaunchRequest } from './instances.js';
import type { Metrics } from './metrics.js';
import { describeImage, type ImageRegistry } from './registry.js';
import { describeSnapshot, type SnapshotRequest, type SnapshotStore } from './snapshots.js';
import type { PoolDownError, StubPool } from './zygote.js';

export function describeInstance(i: Instance, withOutput = false): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: i.id, image: i.image, ...(i.snapshot ? { snapshot: i.snapshot } : {}), args: i.args, memMiB: i.memMiB, pid: i.pid, state: i.state, createdAt: i.createdAt,
    timings: i.timings, ...(i.timeoutMs ? { timeoutMs: i.timeoutMs } : {}),
  };
  if (i.end) {
    out.status = i.end.status;
    if (i.end.signal !== undefined) out.signal = i.end.signal;
    if (i.end.reason) out.reason = i.end.reason;
    if (i.end.report) out.maxrssKiB = i.end.report.maxrssKb;
  }
  if (i.error) out.error = errorBody(i.error);
  if (i.killedBy) out.killedBy = i.killedBy;
  if (i.isolation) out.isolation = i.isolation;
  if (i.recording) out.recording = `/instances/${i.id}/recording`;
  if (withOutput) {
    out.output = Buffer.concat(i.output).toString('utf8');
    out.outputTruncated = i.outputTruncated;
  }
  return out;
}

const JSON_LIMIT = 64 << 10;
const imageId = { type: 'string', pattern: '^[0-9a-f]{64}$' } as const;
const idParams = { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] } as const;

const deviceSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    net: { type: 'string', minLength: 1, maxLength: 15 },
    mac: { type: 'string' },
    block: { type: 'string', minLength: 1 },
    readOnly: { type: 'boolean' },
    sectorSize: { type: 'integer', enum: [512, 1024, 2048, 4096, 8192, 16384, 32768] },
  },
} as const;

const snapshotId = { type: 'string', pattern: '^[0-9a-f]{16}$' } as const;

const launchSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    image: imageId,
    snapshot: snapshotId,
    args: { type: 'array', items: { type: 'string' }, maxItems: 4096 },
    memMiB: { type: 'integer', minimum: 1, maximum: MAX_MEM_MIB },
    devices: { type: 'object', additionalProperties: deviceSchema, maxProperties: 63 },
    timeoutMs: { type: 'integer', minimum: 1 },
    monitor: { type: 'boolean' },
    xExecHeap: { type: 'boolean' },
    record: { type: 'boolean' },
    // true, or an object of --isolate's options (the keywords below apply to the object only).
    isolate: {
      type: ['boolean', 'object'],
      additionalProperties: false,
      properties: {
        strict: { type: 'boolean' },
        uid: { type: 'integer', minimum: 1, maximum: 4294967294 },
        gid: { type: 'integer', minimum: 1, maximum: 4294967294 },
        cpus: { type: 'number', minimum: 0.01, maximum: 1024 },
        memLimitMiB: { type: 'integer', minimum: 1, maximum: MAX_MEM_MIB },
      },
    },
    wait: { type: 'boolean' },
  },
} as const;

const snapshotSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['image'],
  properties: {
    image: imageId,
    args: { type: 'array', items: { type: 'string' }, maxItems: 4096 },
    memMiB: { type: 'integer', minimum: 1, maximum: MAX_MEM_MIB },
    devices: { type: 'object', additionalProperties: deviceSchema, maxProperties: 63 },
    at: { type: 'string', maxLength: 32 },
    xExecHeap: { type: 'boolean' },
    timeoutMs: { type: 'integer', minimum: 1 },
  },
} as const;

const killSchema = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { signal: { type: 'string', minLength: 1, maxLength: 16 } },
} as const;

interface AjvError {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
  parentSchema?: { properties?: Record<string, unknown> };
}

/** One line naming the JSON field, from the first schema error. */
function validationError(errors: AjvError[]): RequestError {
  const e = errors[0];
  const path = e.instancePath.split('/').filter(Boolean).join('.');
  const field = (name: string) => `"${path ? `${path}.${name}` : name}"`;
  switch (e.keyword) {
    case 'additionalProperties': {
      const extra = String(e.params.additionalProperty);
      const known = Object.keys(e.parentSchema?.properties ?? {});
      const guess = nearest(extra, known);
      return new RequestError(`unknown field ${field(extra)}`, guess ? `did you mean "${guess}"?` : known.length ? `the fields are: ${known.join(', ')}` : undefined);
    }
    case 'required':
      return new RequestError(`${field(String(e.params.missingProperty))} is required`);
    case 'pattern':
      return path === 'snapshot' ? new RequestError('"snapshot" must be a snapshot id (the 16 hex digits POST /snapshots returned)')
        : new RequestError(`"${path}" must be an image id (the 64 hex digits POST /images returned)`);
    default:
      return new RequestError(`"${path || 'body'}" ${e.message ?? 'is invalid'}`);
  }
}

/** What the schema cannot say: a device is either a tap or a disk, with the options of its kind. */
function checkDevices(body: Pick<LaunchRequest, 'devices'>): void {
  for (const [name, d] of Object.entries(body.devices ?? {})) {
    const f = `devices.${name}`;
    if (!DEVICE_NAME_RE.test(name)) throw new RequestError(`"${f}": a device name is 1 to 67 letters or digits`);
    if ((d.net === undefined) === (d.block === undefined)) throw new RequestError(`"${f}" needs exactly one of "net": TAP or "block": PATH`);
    if (d.net !== undefined && (d.readOnly !== undefined || d.sectorSize !== undefined)) {
      throw new RequestError(`"${f}": "readOnly" and "sectorSize" are for "block" devices`);
    }
    if (d.block !== undefined && d.mac !== undefined) throw new RequestError(`"${f}.mac" is for "net" devices`);
    if (d.mac !== undefined) {
      const problem = macProblem(d.mac);
      if (problem) throw new RequestError(`"${f}.mac": ${problem}`, 'e.g. "02:00:00:00:00:01"');
    }
  }
}

function fail(reply: FastifyReply, e: unknown): FastifyReply {
  const status = httpStatus(e);
  if (status === 429 || status === 503) reply.header('retry-after', e instanceof BusyError ? '1' : '2');
  return reply.code(status).send(errorBody(e));
}

export interface ApiContext {
  registry: ImageRegistry;
  instances: InstanceManager;
  metrics: Metrics;
  pool: StubPool;
  snapshots: SnapshotStore;
}

export interface ApiOptions {
  maxImageBytes: number;
  /** TCP listeners: every request needs this bearer token and a Host naming the listener. */
  auth?: { token: Buffer; hosts: string[] };
}

function authorized(req: FastifyRequest, auth: NonNullable<ApiOptions['auth']>): string | undefined {
  // A foreign Host is a browser talking to us under another name (DNS rebinding).
  if (!auth.hosts.includes(String(req.headers.host ?? '').toLowerCase())) return 'this server answers only requests addressed to its own listen address';
  const m = /^Bearer (\S+)$/.exec(String(req.headers.authorization ?? ''));
  if (!m) return 'a bearer token is required (Authorization: Bearer TOKEN, the contents of --token-file)';
  const given = Buffer.from(m[1]);
  if (given.length !== auth.token.length || !timingSafeEqual(given, auth.token)) return 'the bearer token is wrong';
  return undefined;
}

export function buildApi(ctx: ApiContext, opts: ApiOptions): FastifyInstance {
  const { registry, instances, metrics, pool, snapshots } = ctx;
  const app = Fastify({
    logger: false,
    bodyLimit: JSON_LIMIT,
    // Reject what we do not understand instead of quietly dropping or converting it.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false, verbose: true, allowUnionTypes: true } },
    schemaErrorFormatter: (errors) => validationError(errors as unknown as AjvError[]),
  });
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer', bodyLimit: opts.maxImageBytes }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err: Error & { code?: string; statusCode?: number; validation?: unknown }, _req, reply) => {
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return fail(reply, new TooLargeError('the request body is larger than this server accepts for this route',
        reply.request.url.startsWith('/images') ? 'start the server with a larger --max-image, or register the image by its path' : 'JSON requests are small: check the body'));
    }
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return fail(reply, new RequestError(`content type ${reply.request.headers['content-type']} is not accepted here`, 'send application/json (or application/octet-stream to POST /images)'));
    }
    if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return fail(reply, new RequestError('the JSON body is empty'));
    if (err instanceof SyntaxError || err.code === 'FST_ERR_CTP_INVALID_JSON_BODY') return fail(reply, new RequestError(`the body is not valid JSON: ${err.message}`));
    return fail(reply, err);
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}`, kind: 'user' }));

  if (opts.auth) {
    const auth = opts.auth;
    app.addHook('onRequest', async (req, reply) => {
      const why = authorized(req, auth);
      if (why) return reply.code(req.headers.authorization ? 403 : 401).header('www-authenticate', 'Bearer').send({ error: why, kind: 'user' });
      return undefined;
    });
  }

  app.post('/images', {
    schema: { querystring: { type: 'object', additionalProperties: false, properties: { name: { type: 'string', maxLength: 255 } } } },
  }, async (req, reply) => {
    const q = req.query as { name?: string };
    if (Buffer.isBuffer(req.body)) return reply.code(201).send(describeImage(registry.register(req.body, q.name ?? 'upload')));
    const body = req.body as Record<string, unknown> | null;
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new RequestError('send {"path": FILE} or the image bytes as application/octet-stream');
    const unknown = Object.keys(body).filter((k) => k !== 'path');
    if (unknown.length) throw new RequestError(`unknown field "${unknown[0]}"`, 'the only field is "path"');
    if (typeof body.path !== 'string' || body.path === '') throw new RequestError('"path" must be the image file\'s absolute path on the server\'s host');
    return reply.code(201).send(describeImage(registry.registerFile(body.path)));
  });
  app.get('/images', async () => registry.list().map(describeImage));
  app.get('/images/:id', { schema: { params: idParams } }, async (req) => describeImage(registry.get((req.params as { id: string }).id)));
  app.delete('/images/:id', { schema: { params: idParams } }, async (req, reply) => {
    const { id } = req.params as { id: string };
    registry.remove(id);
    instances.forgetImage(id);
    return reply.code(204).send();
  });

  app.post('/instances', { schema: { body: launchSchema } }, async (req, reply) => {
    const body = req.body as LaunchRequest & { wait?: boolean };
    if (body.image === undefined && body.snapshot === undefined) throw new RequestError('"image" is required', 'or "snapshot": ID, to restore a snapshot instead');
    if (body.image !== undefined && body.snapshot !== undefined) {
      throw new RequestError('"image" and "snapshot" exclude each other', 'a restore runs the image the snapshot was made from');
    }
    if (body.snapshot !== undefined && body.record) {
      // A recording replays from the image's first instruction; a restored guest never ran those.
      throw new RequestError('"record" cannot be used with "snapshot"', 'record a fresh launch of the image instead');
    }
    checkDevices(body);
    const inst = await instances.launch(body, body.wait === true);
    if (!body.wait) return reply.code(201).send(describeInstance(inst));
    const ended = await inst.ended;
    if (ended.error) return fail(reply, ended.error);
    return describeInstance(ended, true);
  });
  app.get('/instances', async () => instances.list().map((i) => describeInstance(i)));
  app.get('/instances/:id', { schema: { params: idParams } }, async (req) => describeInstance(instances.get((req.params as { id: string }).id), true));
  app.get('/instances/:id/console', { schema: { params: idParams } }, (req, reply) => {
    const inst = instances.get((req.params as { id: string }).id);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-tendril-instance': inst.id });
    res.flushHeaders(); // a quiet guest must not keep its reader waiting for the headers
    const detach = instances.attach(inst, {
      write: (chunk) => res.write(chunk),
      end: () => res.end(),
      onDrain: (cb) => res.once('drain', cb),
    });
    res.on('close', detach);
  });
  app.get('/instances/:id/recording', { schema: { params: idParams } }, async (req, reply) => {
    const inst = instances.get((req.params as { id: string }).id);
    if (!inst.recording) throw new NotFoundError(`instance ${inst.id} was not recorded`, 'launch it with "record": true');
    if (inst.state === 'starting' || inst.state === 'running') {
      throw new ConflictError(`instance ${inst.id} is ${inst.state}: its recording is complete once the guest has ended`, `wait for it: GET /instances/${inst.id}`);
    }
    if (inst.state === 'failed' || !existsSync(inst.recording)) throw new NotFoundError(`instance ${inst.id} never ran its guest: it has no recording`);
    return reply.type('application/octet-stream').header('content-disposition', `attachment; filename="${inst.id}.rec"`)
      .send(createReadStream(inst.recording));
  });
  app.post('/instances/:id/kill', { schema: { params: idParams, body: killSchema } }, async (req) => {
    const body = req.body as { signal?: string } | null;
    return describeInstance(instances.kill((req.params as { id: string }).id, body?.signal ?? 'SIGKILL'));
  });
  app.delete('/instances/:id', { schema: { params: idParams } }, async (req, reply) => {
    instances.remove((req.params as { id: string }).id);
    return reply.code(204).send();
  });

  app.post('/snapshots', { schema: { body: snapshotSchema } }, async (req, reply) => {
    const body = req.body as SnapshotRequest;
    checkDevices(body);
    return reply.code(201).send(describeSnapshot(await snapshots.create(body), true));
  });
  app.get('/snapshots', async () => snapshots.list().map((e) => describeSnapshot(e)));
  app.get('/snapshots/:id', { schema: { params: idParams } }, async (req) => describeSnapshot(snapshots.get((req.params as { id: string }).id), true));
  app.delete('/snapshots/:id', { schema: { params: idParams } }, async (req, reply) => {
    const { id } = req.params as { id: string };
    snapshots.remove(id);
    instances.forgetSnapshot(id);
    return reply.code(204).send();
  });

  app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4').send(metrics.render()));
  app.get('/health', async (_req, reply) => {
    try {
      pool.get();
      return { status: 'ok', running: instances.running(), poolPid: pool.pid };
    } catch (e) {
      return fail(reply, e as PoolDownError);
    }
  });
  return app;
}
