// `tendril image build GUEST -o IMAGE.tar [--name NAME:TAG] [--add FILE[=/DEST]]...`:
// package a unikernel as an OCI image layout tarball for `ctr images import`
// (see docs/containerd.md). The guest is validated first: an image that
// tendril-oci would refuse to run is not built.

import { readFileSync, statSync } from 'node:fs';
import { writeUserFile } from '../files.js';
import { basename } from 'node:path';
import { loadGuestImage } from '../../loader/image.js';
import { UsageError } from '../errors.js';
import { buildImageLayout, normalizeImageName, type ImageFile } from '../oci/image.js';

const USAGE = `usage: tendril image build GUEST -o IMAGE.tar [--name NAME[:TAG]] [--add FILE[=/DEST]]...
Write an OCI image layout tarball holding the unikernel GUEST at /BASENAME
(its Entrypoint) and each FILE at /DEST (default: /BASENAME of FILE).
Import it with: ctr images import IMAGE.tar
  -o, --output IMAGE.tar   where to write the tarball
  --name NAME[:TAG]        image name (default tendril/GUEST-BASENAME:latest)
  --add FILE[=/DEST]       also put FILE in the image (e.g. a disk image)`;

/** A path inside the image: absolute, normalised, no '..' or empty parts. */
function imagePath(word: string, dest: string): string {
  const parts = dest.split('/').slice(1);
  if (!dest.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..')) {
    throw new UsageError(`image build: ${word}: '${dest}' is not a plain absolute path inside the image`, 'e.g. --add disk.img=/data/disk.img');
  }
  return dest;
}

function readAdded(word: string, spec: string): ImageFile {
  const eq = spec.indexOf('=');
  const src = eq < 0 ? spec : spec.slice(0, eq);
  const dest = imagePath(word, eq < 0 ? `/${basename(src)}` : spec.slice(eq + 1));
  let st;
  try {
    st = statSync(src);
  } catch (e) {
    throw new UsageError(`image build: ${word}: cannot read ${src}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!st.isFile()) throw new UsageError(`image build: ${word}: ${src} is not a regular file`);
  return { dest, data: readFileSync(src), mode: st.mode & 0o777 };
}

function buildVerb(argv: string[]): number {
  let output: string | undefined;
  let name: string | undefined;
  let guestPath: string | undefined;
  const adds: [string, string][] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new UsageError(`image build: ${a} needs a value`, USAGE.split('\n')[0]);
      return v;
    };
    if (a === '-o' || a === '--output') output = value();
    else if (a.startsWith('--output=')) output = a.slice('--output='.length);
    else if (a === '--name') name = value();
    else if (a.startsWith('--name=')) name = a.slice('--name='.length);
    else if (a === '--add') adds.push([a, value()]);
    else if (a.startsWith('--add=')) adds.push([a, a.slice('--add='.length)]);
    else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    } else if (a.startsWith('-')) throw new UsageError(`image build: unknown option ${a}`, USAGE.split('\n')[0]);
    else if (guestPath === undefined) guestPath = a;
    else throw new UsageError(`image build: more than one guest (${guestPath}, ${a})`, USAGE.split('\n')[0]);
  }
  if (!guestPath) throw new UsageError('image build: missing GUEST', USAGE.split('\n')[0]);
  if (!output) throw new UsageError('image build: missing -o IMAGE.tar', USAGE.split('\n')[0]);
  const guest = loadGuestImage(guestPath);
  const base = basename(guestPath);
  const ref = normalizeImageName(name ?? `tendril/${base.replace(/\.spt$/, '').toLowerCase().replace(/[^a-z0-9._-]/g, '-')}`);
  const files = adds.map(([word, spec]) => readAdded(word, spec));
  const { tarball, manifestDigest } = buildImageLayout({ guest, entrypoint: `/${base}`, name: ref, files });
  writeUserFile(output, tarball, 'the image');
  process.stdout.write(`${ref} ${manifestDigest}\n`);
  return 0;
}

export function imageVerb(argv: string[]): number {
  const [cmd, ...rest] = argv;
  if (cmd === 'build') return buildVerb(rest);
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return cmd === undefined ? 1 : 0;
  }
  throw new UsageError(`image: unknown command '${cmd}'`, 'the only command is: tendril image build');
}
