// Hostile manifest JSON for `tendril elftool gen-manifest IN OUT` (abi.md §5.2).
//
// Each case is a document built from a valid manifest plus zero to two
// defects (wrong types, missing or extra keys, bad names, too many devices,
// duplicate names) and then serialised, possibly corrupted at the text level
// (BOM, trailing comma, truncation, invalid UTF-8, deep nesting, empty file).
// An independent model of the rules says whether it is valid; the in-process
// parser (parseManifestJson) must agree with the model and throw nothing but
// a ManifestError; a sample is run for real: valid → exit 0 and OUT written;
// invalid → exit 1, one stderr line, and no OUT.

import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManifestError } from '../../loader/errors.js';
import { parseManifestJson } from '../../loader/manifest.js';
import { oneLine, Pool } from '../helpers.js';
import { launchChecked, looksLikeCrash } from './launch.js';
import { Rng } from './mutate.js';
import type { Finding } from './elf.js';

export interface ManifestCase {
  index: number;
  what: string[];
  text: Buffer;
  /** The model's verdict. */
  valid: boolean;
}

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const name = (rng: Rng, n = 1 + rng.int(12)) => Array.from({ length: n }, () => rng.pick([...ALNUM])).join('');

/** The rules of abi.md §5.2 written independently of loader/manifest.ts. */
export function modelValid(doc: unknown): boolean {
  const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (!isObj(doc)) return false;
  const keys = Object.keys(doc).sort().join(',');
  if (keys !== 'devices,type,version') return false;
  if (doc.type !== 'solo5.manifest' || doc.version !== 1 || !Array.isArray(doc.devices)) return false;
  if (doc.devices.length > 63) return false;
  const names = new Set<string>();
  for (const d of doc.devices) {
    if (!isObj(d) || Object.keys(d).sort().join(',') !== 'name,type') return false;
    if (typeof d.name !== 'string' || d.name.length < 1 || d.name.length > 67) return false;
    if (![...d.name].every((ch) => ALNUM.includes(ch))) return false;
    if (d.type !== 'BLOCK_BASIC' && d.type !== 'NET_BASIC') return false;
    if (names.has(d.name)) return false;
    names.add(d.name);
  }
  return true;
}

const BAD_VALUES: unknown[] = [null, true, 0, 1, -1, 1.5, 2, '', '1', 'solo5.manifest ', 'SOLO5.MANIFEST', [], {}, [1], { a: 1 }, 'x'.repeat(5000)];
const BAD_NAMES: unknown[] = [
  '', 'a'.repeat(68), 'a'.repeat(1000), 'stor-age', 'stor_age', 'stor age', 'storage\n', 'a/b', '../x', 'é', 'naïve', 'ストレージ',
  '\u0000', 'a\u0000b', '😀', 'x.y', 42, null, ['storage'], { name: 'x' }, true,
];
const BAD_TYPES: unknown[] = ['block_basic', 'BLOCK', 'NET', 'BLOCK_BASIC ', 'RESERVED_FIRST', '', 1, 2, 0x40000000, null, ['NET_BASIC']];
const EXTRA_KEYS = ['__proto__', 'constructor', 'toString', 'Type', 'devices ', 'name', 'extra', ''];

type Doc = Record<string, unknown>;

function device(rng: Rng): Record<string, unknown> {
  return { name: name(rng), type: rng.pick(['BLOCK_BASIC', 'NET_BASIC']) };
}

/** One defect at the document level. */
function defect(rng: Rng, doc: Doc, what: string[]): void {
  const devs = Array.isArray(doc.devices) ? (doc.devices as unknown[]) : undefined;
  switch (rng.int(12)) {
    case 0: {
      const k = rng.pick(['type', 'version', 'devices']);
      const v = rng.pick(BAD_VALUES);
      doc[k] = v;
      what.push(`${k} = ${JSON.stringify(v)?.slice(0, 30)}`);
      break;
    }
    case 1: {
      const k = rng.pick(['type', 'version', 'devices']);
      delete doc[k];
      what.push(`missing ${k}`);
      break;
    }
    case 2: {
      const k = rng.pick(EXTRA_KEYS);
      Object.defineProperty(doc, k, { value: rng.pick(BAD_VALUES), enumerable: true, configurable: true, writable: true });
      what.push(`extra key ${JSON.stringify(k)}`);
      break;
    }
    case 3: {
      const n = rng.pick([63, 64, 65, 100, 1000, 100_000]);
      doc.devices = Array.from({ length: n }, (_, i) => ({ name: `d${i}`, type: i % 2 ? 'NET_BASIC' : 'BLOCK_BASIC' }));
      what.push(`${n} devices`);
      break;
    }
    case 4:
    case 5:
      if (devs?.length) {
        const d = devs[rng.int(devs.length)] as Record<string, unknown>;
        if (typeof d === 'object' && d) {
          const v = rng.pick(BAD_NAMES);
          d.name = v;
          what.push(`device name ${JSON.stringify(v)?.slice(0, 30)}`);
        }
      }
      break;
    case 6:
      if (devs?.length) {
        const d = devs[rng.int(devs.length)] as Record<string, unknown>;
        if (typeof d === 'object' && d) {
          const v = rng.pick(BAD_TYPES);
          d.type = v;
          what.push(`device type ${JSON.stringify(v)}`);
        }
      }
      break;
    case 7:
      if (devs?.length) {
        const d = devs[rng.int(devs.length)] as Record<string, unknown>;
        if (typeof d === 'object' && d) {
          const k = rng.pick(['name', 'type']);
          delete d[k];
          what.push(`device without ${k}`);
        }
      }
      break;
    case 8:
      if (devs?.length) {
        const d = devs[rng.int(devs.length)] as Record<string, unknown>;
        if (typeof d === 'object' && d) {
          const k = rng.pick(EXTRA_KEYS);
          Object.defineProperty(d, k, { value: 1, enumerable: true, configurable: true, writable: true });
          what.push(`device extra key ${JSON.stringify(k)}`);
        }
      }
      break;
    case 9:
      if (devs && devs.length >= 1) {
        devs.push({ ...(devs[0] as object) });
        what.push('duplicate device name');
      }
      break;
    case 10:
      if (devs) {
        devs.push(rng.pick([null, 1, 'storage', [], ['storage', 'BLOCK_BASIC']]));
        what.push('device that is not an object');
      }
      break;
    default: {
      const n = rng.pick([67, 68]);
      if (devs) devs.push({ name: 'n'.repeat(n), type: 'BLOCK_BASIC' });
      what.push(`${n}-char name`);
    }
  }
}

/** Text-level corruption: returns the bytes and whether the text still parses to `doc`. */
function serialise(rng: Rng, doc: unknown, what: string[]): { text: Buffer; same: boolean } {
  const json = JSON.stringify(doc);
  switch (rng.int(28)) {
    case 0: what.push('pretty-printed'); return { text: Buffer.from(JSON.stringify(doc, null, 2)), same: true };
    case 1: what.push('BOM'); return { text: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(json)]), same: false };
    case 2: what.push('trailing comma'); return { text: Buffer.from(json.replace(/}$/, ',}')), same: false };
    case 3: {
      const at = rng.int(json.length);
      what.push(`truncated at ${at}`);
      return { text: Buffer.from(json.slice(0, at)), same: false };
    }
    case 4: {
      // Invalid UTF-8 inside a string: decoded as U+FFFD, so the text still parses; the model sees the decoded value.
      const b = Buffer.from(json);
      const q = b.indexOf('"name":"');
      what.push('invalid UTF-8 in a string');
      if (q < 0) return { text: Buffer.concat([b, Buffer.from([0xff, 0xfe])]), same: false };
      const at = q + 8;
      return { text: Buffer.concat([b.subarray(0, at), Buffer.from([0xff, 0xc3]), b.subarray(at)]), same: false };
    }
    case 5: {
      const depth = rng.pick([100, 10_000, 200_000]);
      what.push(`nested ${depth} deep`);
      const inner = `${'['.repeat(depth)}${']'.repeat(depth)}`;
      return { text: Buffer.from(json.replace(/"devices":/, `"devices":${inner},"x":`)), same: false };
    }
    case 6: what.push('empty file'); return { text: Buffer.alloc(0), same: false };
    case 7: what.push('whitespace only'); return { text: Buffer.from(' \n\t\r\n'), same: false };
    case 8: {
      const v = rng.pick(['null', '[]', '"solo5.manifest"', '1', 'true', '{}', '[{"type":"solo5.manifest","version":1,"devices":[]}]']);
      what.push(`top level ${v}`);
      return { text: Buffer.from(v), same: false };
    }
    case 9: what.push('comment'); return { text: Buffer.from(`// manifest\n${json}`), same: false };
    case 10: what.push('duplicate key, last wins'); return { text: Buffer.from(json.replace(/^{/, '{"version":2,')), same: true };
    case 11: what.push('NUL byte appended'); return { text: Buffer.from(`${json}\0`), same: false };
    case 12: what.push('random bytes'); return { text: rng.bytes(1 + rng.int(200)), same: false };
    default: return { text: Buffer.from(json), same: true };
  }
}

export function manifestCase(seed: number, index: number): ManifestCase {
  const rng = new Rng(seed ^ 0x6d667431, index);
  const doc: Doc = { type: 'solo5.manifest', version: 1, devices: Array.from({ length: rng.int(5) }, () => device(rng)) };
  // Device names must start unique for the model to be the only judge of duplicates.
  (doc.devices as { name: string }[]).forEach((d, i) => { d.name = `${d.name}${i}`; });
  const what: string[] = [];
  const n = rng.chance(0.15) ? 0 : rng.chance(0.7) ? 1 : 2;
  for (let i = 0; i < n; i++) defect(rng, doc, what);
  const { text, same } = serialise(rng, doc, what);
  let valid = false;
  if (same) valid = modelValid(doc);
  else {
    try {
      valid = modelValid(JSON.parse(text.toString('utf8')));
    } catch {
      valid = false;
    }
  }
  if (what.length === 0) what.push('valid manifest');
  return { index, what, text, valid };
}

export interface ManifestSummary {
  cases: number;
  valid: number;
  invalid: number;
  crashes: Finding[];
  /** In-process parser and model disagree. */
  disagreements: Finding[];
  launched: number;
  /** Real gen-manifest runs that broke the contract (status, one line, OUT written or not). */
  badRuns: Finding[];
  hangs: Finding[];
  /** A crash-looking first run that did not repeat (reported, not counted). */
  unstable: Finding[];
  ms: number;
}

export async function runManifestCampaign(o: { seed: number; cases: number; launches: number; concurrency: number; dir: string; timeoutMs: number; log?: (s: string) => void }): Promise<ManifestSummary> {
  const t0 = Date.now();
  const s: ManifestSummary = { cases: o.cases, valid: 0, invalid: 0, crashes: [], disagreements: [], launched: 0, badRuns: [], hangs: [], unstable: [], ms: 0 };
  const describe = (c: ManifestCase) => `manifest case #${c.index} (${c.what.join('; ')})`;
  const launchable: ManifestCase[] = [];
  for (let i = 0; i < o.cases; i++) {
    const c = manifestCase(o.seed, i);
    if (c.valid) s.valid++;
    else s.invalid++;
    let accepted: boolean;
    try {
      parseManifestJson('in.json', c.text.toString('utf8'));
      accepted = true;
    } catch (e) {
      if (!(e instanceof ManifestError)) {
        s.crashes.push({ case: describe(c), detail: `in-process: ${(e as Error)?.stack ?? String(e)}` });
        continue;
      }
      accepted = false;
    }
    if (accepted !== c.valid) s.disagreements.push({ case: describe(c), detail: `model says ${c.valid ? 'valid' : 'invalid'}, parseManifestJson ${accepted ? 'accepted' : 'rejected'} it` });
    launchable.push(c);
  }
  // Launch a sample: the first `launches` distinct defect descriptions, then anything.
  const byWhat = new Map<string, ManifestCase>();
  for (const c of launchable) if (!byWhat.has(c.what.join(';'))) byWhat.set(c.what.join(';'), c);
  const sample = [...byWhat.values(), ...launchable.filter((c) => byWhat.get(c.what.join(';')) !== c)].slice(0, o.launches);
  const pool = new Pool(o.concurrency);
  await Promise.all(sample.map((c) => pool.run(async () => {
    const dir = join(o.dir, `m${c.index}`);
    mkdirSync(dir, { recursive: true });
    const input = join(dir, 'in.json');
    // One run in 20 writes to a directory that does not exist: gen-manifest must refuse it in one line too.
    const badOut = c.index % 20 === 7;
    const output = badOut ? join(dir, 'missing', 'out.S') : join(dir, 'out.S');
    writeFileSync(input, c.text);
    const { r, unstable } = await launchChecked(['elftool', 'gen-manifest', input, output], { timeoutMs: o.timeoutMs });
    s.launched++;
    if (unstable && !(badOut && /internal error: ENOENT/.test(unstable.stderr))) {
      s.unstable.push({ case: describe(c), detail: `first run: ${unstable.stderr.slice(0, 300)}` });
    }
    const written = existsSync(output);
    const seenAs = `status ${r.status}, stderr ${JSON.stringify(r.stderr.slice(0, 400))}, output ${written ? 'written' : 'absent'}`;
    if (r.timedOut) s.hangs.push({ case: describe(c), detail: seenAs });
    else if (looksLikeCrash(r.stderr) || r.signal) {
      s.crashes.push({ case: `${describe(c)}${badOut ? ' → OUT in a missing directory' : ''}`, detail: seenAs });
    } else if (badOut) {
      if (r.status !== 1 || !oneLine(r.stderr) || r.stdout !== '') s.badRuns.push({ case: describe(c), detail: `OUT in a missing directory: ${seenAs}` });
    } else if (c.valid) {
      const ok = r.status === 0 && r.stderr === '' && written && readFileSync(output, 'utf8').includes('.note.solo5.manifest');
      if (!ok) s.badRuns.push({ case: describe(c), detail: `valid manifest: ${seenAs}` });
    } else if (r.status !== 1 || !oneLine(r.stderr) || written || r.stdout !== '') {
      s.badRuns.push({ case: describe(c), detail: `invalid manifest: ${seenAs}` });
    }
    rmSync(dir, { recursive: true, force: true });
  })));
  s.ms = Date.now() - t0;
  return s;
}
