/**
 * Writes OCI image layouts (image-spec `image-layout.md`) by hand, so end-to-end tests can seed a registry with
 * `skopeo copy oci:DIR:TAG docker://HOST/REPO:TAG` without any network access or daemon.
 *
 * Layers are real gzip'd tar archives holding one file of random (incompressible) bytes, so every layer digest is
 * unique per call and podman, buildah, containerd and docker can really unpack them. Configs carry the matching
 * `rootfs.diff_ids` (sha256 of the uncompressed tar), which docker and containerd check on pull.
 *
 * Several images may live in one layout: each call adds a descriptor with `org.opencontainers.image.ref.name`
 * to the layout's `index.json` (replacing an older one with the same tag).
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

export const MEDIA_TYPE_OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MEDIA_TYPE_OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_TYPE_OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const MEDIA_TYPE_OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const MEDIA_TYPE_OCI_EMPTY = 'application/vnd.oci.empty.v1+json';
/** The empty JSON blob `{}` every artifact without a config points at. */
export const EMPTY_BLOB = Buffer.from('{}');
export const EMPTY_BLOB_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  platform?: Platform;
  annotations?: Record<string, string>;
  data?: string;
}

export interface LayerInfo extends Descriptor {
  /** sha256 of the uncompressed tar (what goes into `rootfs.diff_ids`). */
  diffId: string;
  /** Path of the single file inside the tar. */
  fileName: string;
}

export interface WrittenImage {
  /** The manifest's descriptor (as written into index.json, minus the ref-name annotation). */
  descriptor: Descriptor;
  manifestDigest: string;
  manifestSize: number;
  /** The exact manifest bytes. */
  manifestBytes: Buffer;
  configDigest: string;
  layers: LayerInfo[];
  platform: Platform;
}

export interface WrittenLayout {
  dir: string;
  tag: string;
  /** `oci:DIR:TAG`, as skopeo names it. */
  reference: string;
}

export interface ImageLayout extends WrittenLayout, WrittenImage {}

export interface IndexLayout extends WrittenLayout {
  indexDigest: string;
  indexSize: number;
  indexBytes: Buffer;
  descriptor: Descriptor;
  /** One per platform, in index order. */
  children: WrittenImage[];
}

export interface ArtifactLayout extends WrittenLayout {
  manifestDigest: string;
  manifestSize: number;
  manifestBytes: Buffer;
  descriptor: Descriptor;
  artifactType: string;
  subject: Descriptor;
  /** The artifact's single payload blob. */
  layer: Descriptor;
}

export interface ImageOptions {
  tag: string;
  /** Number of layers (>= 1). */
  layers: number;
  /** Size in bytes of the random file inside each layer. */
  layerSize: number;
  /** linux/amd64 by default. */
  platform?: Platform;
}

export interface IndexOptions {
  tag: string;
  layers: number;
  layerSize: number;
  /** linux/amd64 and linux/arm64 by default. */
  platforms?: Platform[];
}

export interface ArtifactOptions {
  tag: string;
  /** e.g. `application/vnd.example.sbom.v1`. */
  artifactType: string;
  /** Descriptor of the manifest the artifact refers to. */
  subject: Descriptor;
  /** The payload; a small random JSON document by default. */
  payload?: Buffer;
  /** Media type of the payload blob; `application/json` by default. */
  payloadMediaType?: string;
  annotations?: Record<string, string>;
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export const DEFAULT_PLATFORM: Platform = { architecture: 'amd64', os: 'linux' };
export const TWO_PLATFORMS: Platform[] = [
  { architecture: 'amd64', os: 'linux' },
  { architecture: 'arm64', os: 'linux', variant: 'v8' },
];

/** A random lowercase name component, for repository names and tags that never collide between tests. */
export function randomName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** Writes a blob under `blobs/sha256/` and returns its descriptor. */
export async function writeBlob(dir: string, mediaType: string, data: Buffer): Promise<Descriptor> {
  const digest = sha256(data);
  const blobDir = path.join(dir, 'blobs', 'sha256');
  await mkdir(blobDir, { recursive: true });
  await writeFile(path.join(blobDir, digest.slice('sha256:'.length)), data);
  return { mediaType, digest, size: data.length };
}

/** Reads a blob of a layout by digest. */
export async function readBlob(dir: string, digest: string): Promise<Buffer> {
  const [algorithm, hex] = digest.split(':');
  return readFile(path.join(dir, 'blobs', algorithm as string, hex as string));
}

interface IndexJson {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
}

/** Reads a layout's `index.json`. */
export async function readLayoutIndex(dir: string): Promise<IndexJson> {
  return JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')) as IndexJson;
}

/** The descriptor tagged `tag` in a layout's index.json (e.g. one written by `skopeo copy ... oci:DIR:TAG`). */
export async function layoutDescriptor(dir: string, tag: string): Promise<Descriptor> {
  const index = await readLayoutIndex(dir);
  const found = index.manifests.find((d) => d.annotations?.[REF_NAME_ANNOTATION] === tag);
  if (!found) throw new Error(`no manifest tagged ${tag} in ${dir}/index.json`);
  return found;
}

/** Creates `oci-layout` and adds `descriptor` to `index.json` under `tag`. */
async function tagInLayout(dir: string, tag: string, descriptor: Descriptor): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  let index: IndexJson = { schemaVersion: 2, mediaType: MEDIA_TYPE_OCI_INDEX, manifests: [] };
  try {
    index = await readLayoutIndex(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  index.manifests = index.manifests.filter((d) => d.annotations?.[REF_NAME_ANNOTATION] !== tag);
  index.manifests.push({
    ...descriptor,
    annotations: { ...descriptor.annotations, [REF_NAME_ANNOTATION]: tag },
  });
  await writeFile(path.join(dir, 'index.json'), JSON.stringify(index));
}

function tarHeader(name: string, size: number, type: '0' | '5', mode: number, mtime: number): Buffer {
  const h = Buffer.alloc(512, 0);
  const put = (value: string, offset: number, length: number): void => {
    h.write(value, offset, length, 'utf8');
  };
  const octal = (value: number, length: number): string => value.toString(8).padStart(length - 1, '0');
  if (Buffer.byteLength(name) > 100) throw new Error(`tar name too long: ${name}`);
  put(name, 0, 100);
  put(octal(mode, 8), 100, 8);
  put(octal(0, 8), 108, 8); // uid
  put(octal(0, 8), 116, 8); // gid
  put(octal(size, 12), 124, 12);
  put(octal(mtime, 12), 136, 12);
  put('        ', 148, 8); // checksum placeholder: eight spaces
  put(type, 156, 1);
  put('ustar\u0000', 257, 6);
  put('00', 263, 2);
  put('root', 265, 32);
  put('root', 297, 32);
  let sum = 0;
  for (const byte of h) sum += byte;
  put(`${octal(sum, 7)}\u0000 `, 148, 8);
  return h;
}

/**
 * A ustar archive with one directory and one regular file in it. Built by hand (no `tar` CLI) so the bytes are
 * deterministic for a given content and name.
 */
export function makeTar(fileName: string, content: Buffer, mtime = Math.floor(Date.now() / 1000)): Buffer {
  const parts: Buffer[] = [];
  const dirName = path.posix.dirname(fileName);
  if (dirName !== '.') parts.push(tarHeader(`${dirName}/`, 0, '5', 0o755, mtime));
  parts.push(tarHeader(fileName, content.length, '0', 0o644, mtime));
  parts.push(content);
  const pad = (512 - (content.length % 512)) % 512;
  parts.push(Buffer.alloc(pad + 1024, 0)); // padding + two zero blocks
  return Buffer.concat(parts);
}

/**
 * The regular files of a tar archive (ustar, with PAX `path` records and GNU long names), by path without a
 * leading `./` or `/`. Enough to check what a client put into a layer.
 */
export function readTar(tar: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  const str = (b: Buffer): string => {
    const nul = b.indexOf(0);
    return b.subarray(0, nul === -1 ? b.length : nul).toString('utf8');
  };
  let offset = 0;
  let nextName: string | undefined;
  while (offset + 512 <= tar.length) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((byte) => byte === 0)) break;
    const size = parseInt(str(header.subarray(124, 136)).trim() || '0', 8);
    const type = String.fromCharCode(header[156] ?? 0);
    const prefix = str(header.subarray(257, 263)).startsWith('ustar') ? str(header.subarray(345, 500)) : '';
    const body = tar.subarray(offset + 512, offset + 512 + size);
    offset += 512 + Math.ceil(size / 512) * 512;
    if (type === 'x') {
      for (const record of body.toString('utf8').split('\n')) {
        const m = /^\d+ path=(.*)$/.exec(record);
        if (m) nextName = m[1];
      }
      continue;
    }
    if (type === 'L') {
      nextName = str(body);
      continue;
    }
    if (type === 'g') continue;
    const name = (
      nextName ?? (prefix ? `${prefix}/${str(header.subarray(0, 100))}` : str(header.subarray(0, 100)))
    )
      .replace(/^\.?\//, '')
      .replace(/^\.\//, '');
    nextName = undefined;
    if (type === '0' || type === '\0') files.set(name, Buffer.from(body));
  }
  return files;
}

/** A gzip'd tar layer holding `fileName` with `size` random bytes, written into the layout. */
export async function writeRandomLayer(dir: string, size: number, fileName?: string): Promise<LayerInfo> {
  const name = fileName ?? `berth-e2e/${randomBytes(8).toString('hex')}.bin`;
  const tar = makeTar(name, randomBytes(size));
  const gz = gzipSync(tar, { level: 1 });
  const desc = await writeBlob(dir, MEDIA_TYPE_OCI_LAYER_GZIP, gz);
  return { ...desc, diffId: sha256(tar), fileName: name };
}

async function writeImage(dir: string, options: Omit<ImageOptions, 'tag'>): Promise<WrittenImage> {
  if (options.layers < 1) throw new Error('an image needs at least one layer');
  const platform = options.platform ?? DEFAULT_PLATFORM;
  const layers: LayerInfo[] = [];
  for (let i = 0; i < options.layers; i++) layers.push(await writeRandomLayer(dir, options.layerSize));
  const created = new Date().toISOString();
  const config = {
    created,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((l) => ({ created, created_by: `berth-e2e: add ${l.fileName}` })),
  };
  const configDesc = await writeBlob(dir, MEDIA_TYPE_OCI_CONFIG, Buffer.from(JSON.stringify(config)));
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_OCI_MANIFEST,
    config: configDesc,
    layers: layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const descriptor = await writeBlob(dir, MEDIA_TYPE_OCI_MANIFEST, manifestBytes);
  return {
    descriptor,
    manifestDigest: descriptor.digest,
    manifestSize: descriptor.size,
    manifestBytes,
    configDigest: configDesc.digest,
    layers,
    platform,
  };
}

/** Writes a single-platform image into the layout at `dir`, tagged `tag`. */
export async function writeImageLayout(dir: string, options: ImageOptions): Promise<ImageLayout> {
  const image = await writeImage(dir, options);
  await tagInLayout(dir, options.tag, image.descriptor);
  return { dir, tag: options.tag, reference: `oci:${dir}:${options.tag}`, ...image };
}

/** Writes an image index with one image per platform (linux/amd64 + linux/arm64 by default). */
export async function writeIndexLayout(dir: string, options: IndexOptions): Promise<IndexLayout> {
  const platforms = options.platforms ?? TWO_PLATFORMS;
  const children: WrittenImage[] = [];
  for (const platform of platforms) {
    children.push(await writeImage(dir, { layers: options.layers, layerSize: options.layerSize, platform }));
  }
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_OCI_INDEX,
    manifests: children.map((c) => ({ ...c.descriptor, platform: c.platform })),
  };
  const indexBytes = Buffer.from(JSON.stringify(index));
  const descriptor = await writeBlob(dir, MEDIA_TYPE_OCI_INDEX, indexBytes);
  await tagInLayout(dir, options.tag, descriptor);
  return {
    dir,
    tag: options.tag,
    reference: `oci:${dir}:${options.tag}`,
    indexDigest: descriptor.digest,
    indexSize: descriptor.size,
    indexBytes,
    descriptor,
    children,
  };
}

/**
 * Writes an artifact manifest (an OCI image manifest with `artifactType`, the empty config and one payload
 * layer) whose `subject` points at another manifest. The subject need not be in this layout.
 */
export async function writeArtifactLayout(dir: string, options: ArtifactOptions): Promise<ArtifactLayout> {
  const config = await writeBlob(dir, MEDIA_TYPE_OCI_EMPTY, EMPTY_BLOB);
  const payload =
    options.payload ??
    Buffer.from(JSON.stringify({ spdxVersion: 'SPDX-2.3', name: randomName('sbom'), packages: [] }));
  const layer = await writeBlob(dir, options.payloadMediaType ?? 'application/json', payload);
  const subject: Descriptor = {
    mediaType: options.subject.mediaType,
    digest: options.subject.digest,
    size: options.subject.size,
  };
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPE_OCI_MANIFEST,
    artifactType: options.artifactType,
    config: { ...config, data: EMPTY_BLOB.toString('base64') },
    layers: [layer],
    subject,
    annotations: options.annotations ?? { 'org.opencontainers.image.created': new Date().toISOString() },
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const written = await writeBlob(dir, MEDIA_TYPE_OCI_MANIFEST, manifestBytes);
  const descriptor: Descriptor = { ...written, artifactType: options.artifactType };
  await tagInLayout(dir, options.tag, descriptor);
  return {
    dir,
    tag: options.tag,
    reference: `oci:${dir}:${options.tag}`,
    manifestDigest: descriptor.digest,
    manifestSize: descriptor.size,
    manifestBytes,
    descriptor,
    artifactType: options.artifactType,
    subject,
    layer,
  };
}
