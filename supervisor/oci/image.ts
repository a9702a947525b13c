// An OCI image for a unikernel, as an image layout tarball that
// `ctr images import` (and any OCI tool) reads: oci-layout, index.json and
// blobs/sha256/{manifest, config, layer}. The single layer holds the guest at
// the root of the filesystem (mode 0755) plus any extra files (disk images).
// The image config's Entrypoint is the guest, so `ctr run IMAGE ID ARGS`
// gives tendril-oci a config.json whose process.args are [guest, ARGS...].
// Every timestamp is zero, so the same inputs always give the same digests.

import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { deviceTypeName } from '../../loader/manifest.js';
import type { GuestImage } from '../../loader/image.js';
import { UsageError } from '../errors.js';
import { tar, type TarEntry } from './tar.js';

export const MEDIA = {
  index: 'application/vnd.oci.image.index.v1+json',
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
} as const;

export interface ImageFile {
  /** Absolute path inside the image ("/disk.img"). */
  dest: string;
  data: Buffer;
  mode: number;
}

export interface ImageSpec {
  guest: GuestImage;
  /** Where the guest goes in the image ("/hello.spt"). */
  entrypoint: string;
  /** The full reference ("docker.io/library/hello:latest"). */
  name: string;
  files: ImageFile[];
}

/**
 * NAME[:TAG] as containerd and docker spell it in full: a name without a
 * registry gets docker.io, a single component gets library/, and a missing
 * tag is latest. Only the characters of the distribution reference grammar.
 */
export function normalizeImageName(ref: string): string {
  const m = /^((?:[a-zA-Z0-9.-]+(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)(?::([\w][\w.-]{0,127}))?$/.exec(ref);
  if (!m) throw new UsageError(`--name ${ref}: not an image reference`, 'use lower-case NAME[:TAG], e.g. --name hello:latest');
  let repo = m[1];
  const tag = m[2] ?? 'latest';
  const first = repo.split('/')[0];
  const hasDomain = repo.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  if (!hasDomain) repo = `docker.io/${repo.includes('/') ? repo : `library/${repo}`}`;
  return `${repo}:${tag}`;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

/** The parent directories of a path inside the image, outermost first ("a", "a/b"). */
function parents(path: string): string[] {
  const parts = path.split('/').slice(0, -1);
  return parts.map((_, i) => parts.slice(0, i + 1).join('/'));
}

function layerEntries(files: ImageFile[]): TarEntry[] {
  const seen = new Set<string>();
  const entries: TarEntry[] = [];
  for (const f of files) {
    const path = f.dest.replace(/^\/+/, '');
    if (seen.has(path)) throw new UsageError(`image: two files at ${f.dest}`);
    for (const dir of parents(path)) {
      if (seen.has(dir)) continue;
      seen.add(dir);
      entries.push({ path: dir, type: 'dir', mode: 0o755 });
    }
    seen.add(path);
    entries.push({ path, type: 'file', mode: f.mode, data: f.data });
  }
  return entries;
}

/** Any single-layer image: its files, Entrypoint and labels. The unikernel image below is one. */
export interface LayoutSpec {
  /** The full reference ("docker.io/library/hello:latest"). */
  name: string;
  entrypoint: string[];
  files: ImageFile[];
  labels: Record<string, string>;
  /** The history entry's created_by and comment. */
  createdBy: string;
  comment: string;
}

/** The image layout tarball, and the digest of its manifest. */
export function buildLayout(spec: LayoutSpec): { tarball: Buffer; manifestDigest: string; name: string } {
  const layerTar = tar(layerEntries(spec.files));
  const layer = gzipSync(layerTar, { level: 9 });
  const config = json({
    architecture: 'amd64',
    os: 'linux',
    config: { Entrypoint: spec.entrypoint, Labels: spec.labels },
    rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(layerTar)}`] },
    history: [{ created_by: spec.createdBy, comment: spec.comment }],
  });
  const manifest = json({
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    config: { mediaType: MEDIA.config, digest: `sha256:${sha256(config)}`, size: config.length },
    layers: [{ mediaType: MEDIA.layer, digest: `sha256:${sha256(layer)}`, size: layer.length }],
  });
  const manifestDigest = `sha256:${sha256(manifest)}`;
  const tag = spec.name.slice(spec.name.lastIndexOf(':') + 1);
  const index = json({
    schemaVersion: 2,
    mediaType: MEDIA.index,
    manifests: [{
      mediaType: MEDIA.manifest, digest: manifestDigest, size: manifest.length,
      platform: { architecture: 'amd64', os: 'linux' },
      annotations: { 'io.containerd.image.name': spec.name, 'org.opencontainers.image.ref.name': tag },
    }],
  });
  const blobs = [manifest, config, layer];
  const tarball = tar([
    { path: 'oci-layout', type: 'file', mode: 0o644, data: json({ imageLayoutVersion: '1.0.0' }) },
    { path: 'index.json', type: 'file', mode: 0o644, data: index },
    { path: 'blobs', type: 'dir', mode: 0o755 },
    { path: 'blobs/sha256', type: 'dir', mode: 0o755 },
    ...blobs.map((b): TarEntry => ({ path: `blobs/sha256/${sha256(b)}`, type: 'file', mode: 0o644, data: b })),
  ]);
  return { tarball, manifestDigest, name: spec.name };
}

/** A unikernel's image: the guest at its entrypoint (0755), the extra files, and labels naming its ABI and devices. */
export function buildImageLayout(spec: ImageSpec): { tarball: Buffer; manifestDigest: string; name: string } {
  const devices = spec.guest.manifest.devices.map((d) => `${d.name}:${deviceTypeName(d.type)}`).join(',');
  return buildLayout({
    name: spec.name,
    entrypoint: [spec.entrypoint],
    files: [{ dest: spec.entrypoint, data: spec.guest.bytes, mode: 0o755 }, ...spec.files],
    labels: { 'org.tendril.abi': 'solo5-spt/2', 'org.tendril.devices': devices },
    createdBy: `tendril image build ${spec.entrypoint}`,
    comment: 'Solo5 spt unikernel for tendril-oci',
  });
}
