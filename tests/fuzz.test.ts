// A fixed-seed sample of the fuzzing campaign (tests/fuzz/, `npm run fuzz`
// for the full one): mutated guest images, hostile manifest JSON and
// generated `run` command lines. tendril must never crash, hang, or run a
// guest from an image it refuses in-process, and every refusal is one line.
// Findings that match a known, reported bug (tests/fuzz/known.ts) are logged,
// and each bug it found has a regression test below.

import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { guest, oneLine, Pool, waitForGuest } from './helpers.js';
import { formatSummary, loadBases, runCampaign, type CampaignResult } from './fuzz/campaign.js';
import { launchTendril } from './fuzz/launch.js';
import { elfCase, makeBase } from './fuzz/mutate.js';

const SEED = 20261125;

let campaign: Promise<CampaignResult> | undefined;
const result = () => (campaign ??= runCampaign({
  seed: SEED, elfCases: 400, elfLaunches: 40, manifestCases: 300, manifestLaunches: 30, cliCases: 300, cliLaunches: 40,
  concurrency: 2, timeoutMs: 10_000,
}));

const list = (r: CampaignResult, kind: RegExp) => r.failures.filter((f) => kind.test(f.kind)).map((f) => `${f.finding.case}: ${f.finding.detail}`);

test('fuzz sample: no supervisor crash (in-process or launched)', async (t) => {
  const r = await result();
  t.log(formatSummary(r));
  t.true(r.elf.cases === 400 && r.elf.accepted > 0 && r.elf.rejected > 0, 'both verdicts are exercised');
  t.true(r.elf.launchedAccepted > 0 && r.elf.launchedRejected > 0, 'both verdicts are launched for real');
  t.deepEqual(list(r, /crash/), []);
});

test('fuzz sample: no hang', async (t) => {
  t.deepEqual(list(await result(), /hang/), []);
});

test('fuzz sample: no guest launched from an image the loader refuses', async (t) => {
  t.deepEqual(list(await result(), /invalid image/), []);
});

test('fuzz sample: every refusal is exit 1 with one line (images, manifests, command lines)', async (t) => {
  t.deepEqual(list(await result(), /refusal|contract|disagrees/), []);
});

test('the fuzzer is deterministic: a case is a function of (seed, index)', (t) => {
  const bases = loadBases();
  const a = elfCase(SEED, 17, bases);
  const b = elfCase(SEED, 17, bases);
  t.deepEqual(a.mutations, b.mutations);
  t.true(a.bytes.equals(b.bytes));
  t.false(elfCase(SEED + 1, 17, bases).bytes.equals(a.bytes) && elfCase(SEED, 18, bases).bytes.equals(a.bytes));
  t.truthy(makeBase('x', a.base.bytes).layout.phdrs.length);
});

test('the watchdog tells a guest that outlives its deadline from a tendril hang', async (t) => {
  // The deadline is an event here, not a time: once the guest runs under its filter (test_time runs 5 s) ...
  const g = await launchTendril(['run', '--mem=2', guest('test_time')], { timeoutMs: 60_000, until: waitForGuest });
  t.is(g.timedOut, 'guest');
  t.is(g.signal, 'SIGKILL');
  // ... and before Node has even started: a process that never became the stub is tendril's hang.
  const s = await launchTendril(['run', '--mem=2', guest('test_time')], { timeoutMs: 60_000, until: async () => undefined });
  t.is(s.timedOut, 'supervisor');
});

// --- Hostile manifests with exact answers (abi.md §5.2) -------------------------

// The table's launches queue up two at a time, beside the campaign's own two.
const pool = new Pool(2);
const dev = (name: string, type = 'BLOCK_BASIC') => ({ name, type });
const doc = (devices: unknown, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ type: 'solo5.manifest', version: 1, devices, ...extra });
const many = (n: number) => Array.from({ length: n }, (_, i) => dev(`storage${i}`));

for (const [what, text, expect] of [
  ['63 devices (the maximum)', doc(many(63)), 'ok'],
  ['64 devices', doc(many(64)), /too many entries, maximum 63/],
  ['100000 devices', doc(many(100_000)), /too many entries, maximum 63/],
  ['a 67-character name', doc([dev('a'.repeat(67))]), 'ok'],
  ['a 68-character name', doc([dev('a'.repeat(68))]), /devices\[0\]: "name" must be 1 to 67 letters or digits/],
  ['a name with a dash', doc([dev('stor-age')]), /"name" must be 1 to 67 letters or digits/],
  ['a name with a space', doc([dev('stor age')]), /"name" must be 1 to 67 letters or digits/],
  ['a non-ASCII letter in a name', doc([dev('naïve')]), /"name" must be 1 to 67 letters or digits/],
  ['an empty name', doc([dev('')]), /"name" must be 1 to 67 letters or digits/],
  ['a numeric name', doc([{ name: 7, type: 'NET_BASIC' }]), /"name" must be 1 to 67 letters or digits/],
  ['duplicate names', doc([dev('disk'), dev('disk', 'NET_BASIC')]), /name 'disk' is declared twice/],
  ['a lower-case type', doc([dev('disk', 'block_basic')]), /"type" must be "BLOCK_BASIC" or "NET_BASIC"/],
  ['the reserved type', doc([dev('disk', 'RESERVED_FIRST')]), /"type" must be "BLOCK_BASIC" or "NET_BASIC"/],
  ['a device with an extra key', doc([{ name: 'disk', type: 'BLOCK_BASIC', ro: true }]), /devices\[0\]: unknown key 'ro'/],
  ['a device without a type', doc([{ name: 'disk' }]), /"type" must be/],
  ['a device that is a string', doc(['disk']), /devices\[0\] must be an object/],
  ['missing devices', JSON.stringify({ type: 'solo5.manifest', version: 1 }), /"devices" must be an array/],
  ['devices as an object', doc({ disk: 'BLOCK_BASIC' }), /"devices" must be an array/],
  ['missing type', JSON.stringify({ version: 1, devices: [] }), /"type" must be "solo5.manifest"/],
  ['version as a string', JSON.stringify({ type: 'solo5.manifest', version: '1', devices: [] }), /"version" must be 1/],
  ['version 2', JSON.stringify({ type: 'solo5.manifest', version: 2, devices: [] }), /"version" must be 1/],
  ['an extra top-level key', doc([], { extra: 1 }), /unknown key 'extra'/],
  ['a __proto__ key', '{"__proto__":{"version":1},"type":"solo5.manifest","version":1,"devices":[]}', /unknown key '__proto__'/],
  ['a top-level array', '[]', /manifest must be a JSON object/],
  ['null', 'null', /manifest must be a JSON object/],
  ['an empty file', '', /not valid JSON/],
  ['whitespace only', ' \n\t', /not valid JSON/],
  ['a trailing comma', '{"type":"solo5.manifest","version":1,"devices":[],}', /not valid JSON/],
  ['a byte-order mark', '\ufeff' + doc([]), /not valid JSON/],
  ['nesting 100000 deep', `{"type":"solo5.manifest","version":1,"devices":${'['.repeat(100_000)}${']'.repeat(100_000)}}`, /"name" must be|must be an object/],
  ['invalid UTF-8 in a name', Buffer.concat([Buffer.from('{"type":"solo5.manifest","version":1,"devices":[{"name":"st'), Buffer.from([0xff, 0xc3]), Buffer.from('orage","type":"BLOCK_BASIC"}]}')]), /"name" must be 1 to 67 letters or digits/],
] as const) {
  test(`elftool gen-manifest: ${what} → ${expect === 'ok' ? 'written' : 'exit 1, one line, nothing written'}`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'tendril-mft-'));
    try {
      const input = join(dir, 'manifest.json');
      const output = join(dir, 'manifest.S');
      writeFileSync(input, text);
      const r = await pool.run(() => launchTendril(['elftool', 'gen-manifest', input, output], { timeoutMs: 20_000 }));
      if (expect === 'ok') {
        t.is(r.status, 0, r.stderr);
        t.regex(readFileSync(output, 'utf8'), /\.note\.solo5\.manifest/);
      } else {
        t.is(r.status, 1);
        t.true(oneLine(r.stderr), JSON.stringify(r.stderr));
        t.regex(r.stderr, expect);
        t.true(r.stderr.includes(input), 'names the input');
        t.false(existsSync(output), 'no output file');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

// --- Regressions: bugs the fuzzer found, now fixed ------------------------------

test('--block-ro on a FIFO is refused at once, not a hang (found by the fuzzer)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-fifo-'));
  try {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    // The bound only catches a hang: refusing takes milliseconds.
    const r = await launchTendril(['run', '--mem=2', `--block-ro:storage=${fifo}`, guest('test_blk')], { timeoutMs: 60_000 });
    t.is(r.timedOut, undefined, `still running after 60 s as ${r.timedOut}`);
    t.is(r.status, 1);
    t.true(oneLine(r.stderr), r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a newline in a manifest device name is shown escaped and does not split the refusal (found by the fuzzer)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-nl-'));
  try {
    // test_blk's one device is "storage" at entry 1: change one letter of its name to a newline.
    const img = Buffer.from(loadBases().find((b) => b.name === 'test_blk')!.bytes);
    const at = img.indexOf(Buffer.from('storage\0'));
    img[at + 1] = 0x0a;
    const file = join(dir, 'nl.spt');
    writeFileSync(file, img);
    const r = await launchTendril(['run', '--mem=2', file], { timeoutMs: 10_000 });
    t.is(r.status, 1);
    t.regex(r.stderr, /invalid device name/);
    t.true(oneLine(r.stderr), JSON.stringify(r.stderr));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('gen-manifest with an unwritable OUT is a one-line error, not an internal error (found by the fuzzer)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-mft-'));
  try {
    const input = join(dir, 'manifest.json');
    writeFileSync(input, doc([dev('disk')]));
    for (const output of [join(dir, 'missing', 'out.S'), dir]) {
      const r = await launchTendril(['elftool', 'gen-manifest', input, output], { timeoutMs: 20_000 });
      t.is(r.status, 1);
      t.true(oneLine(r.stderr), r.stderr);
      t.notRegex(r.stderr, /internal error|please report this bug/, r.stderr);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
