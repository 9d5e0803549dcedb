/**
 * Benchmark data: one file of random (incompressible) bytes written once per run from a seeded AES-128-CTR
 * keystream, and "blob sources" that stream views of it. Uploads stream from the file; downloads are compared
 * byte for byte against it as they arrive (the harness keeps the file in memory for that, see `residentFile`).
 *
 * Every push uploads content no registry has seen: a variant is the file (repeated to the wanted size) with its
 * last 32 bytes replaced by fresh random bytes, and its digest comes from one hash of the shared prefix
 * (`Hash.copy()`), so each variant costs no extra pass over the data.
 */
import { createCipheriv, createHash, randomBytes, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { MiB } from './stats.ts';

export const TAIL_BYTES = 32;

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Writes `size` bytes of AES-128-CTR keystream (seeded, so reproducible) to `file`. */
export async function writeRandomFile(file: string, size: number, seed: string): Promise<void> {
  const key = createHash('sha256').update(`berth-bench-key:${seed}`).digest().subarray(0, 16);
  const iv = createHash('sha256').update(`berth-bench-iv:${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, iv);
  const zeros = Buffer.alloc(4 * MiB);
  async function* chunks(): AsyncGenerator<Buffer> {
    for (let done = 0; done < size;) {
      const n = Math.min(zeros.length, size - done);
      yield cipher.update(zeros.subarray(0, n));
      done += n;
    }
  }
  await pipeline(Readable.from(chunks()), createWriteStream(file));
}

export type Segment =
  | { readonly kind: 'file'; readonly path: string; readonly start: number; readonly length: number }
  | { readonly kind: 'bytes'; readonly data: Buffer };

function segmentLength(s: Segment): number {
  return s.kind === 'file' ? s.length : s.data.length;
}

/** Bytes of a blob, described as a list of file ranges and small buffers, with a known digest. */
export class BlobSource {
  readonly size: number;

  constructor(
    readonly segments: readonly Segment[],
    readonly digest: string,
  ) {
    this.size = segments.reduce((n, s) => n + segmentLength(s), 0);
  }

  static fromBuffer(data: Buffer): BlobSource {
    return new BlobSource([{ kind: 'bytes', data }], sha256(data));
  }

  /** Streams bytes [start, end) in chunks of up to 1 MiB. */
  open(start = 0, end = this.size): Readable {
    const segments = this.segments;
    async function* gen(): AsyncGenerator<Buffer> {
      let offset = 0;
      for (const s of segments) {
        const len = segmentLength(s);
        const from = Math.max(start, offset);
        const to = Math.min(end, offset + len);
        if (from < to) {
          if (s.kind === 'bytes') {
            yield s.data.subarray(from - offset, to - offset);
          } else {
            const stream = createReadStream(s.path, {
              start: s.start + (from - offset),
              end: s.start + (to - offset) - 1,
              highWaterMark: MiB,
            });
            for await (const chunk of stream) yield chunk as Buffer;
          }
        }
        offset += len;
        if (offset >= end) break;
      }
    }
    return Readable.from(gen(), { objectMode: false, highWaterMark: MiB });
  }

  /**
   * A synchronous check of bytes [start, end) of this blob, for the raw client (which hands over bytes that are
   * valid only during the call). Loads the files the blob is made of into memory first.
   */
  async syncVerifier(start = 0, end = this.size): Promise<SyncVerifier> {
    const parts: Buffer[] = [];
    let offset = 0;
    for (const s of this.segments) {
      const len = segmentLength(s);
      const from = Math.max(start, offset);
      const to = Math.min(end, offset + len);
      if (from < to) {
        if (s.kind === 'bytes') {
          parts.push(s.data.subarray(from - offset, to - offset));
        } else {
          const resident = await residentFile(s.path);
          if (!resident) throw new Error(`${s.path} is too large to verify from memory`);
          parts.push(resident.subarray(s.start + (from - offset), s.start + (to - offset)));
        }
      }
      offset += len;
    }
    return new SyncVerifier(this.digest, parts, end - start);
  }
}

/** Compares bytes pushed to it, in order, with the expected parts; throws on the first difference. */
export class SyncVerifier {
  private part = 0;
  private offsetInPart = 0;
  private received = 0;

  constructor(
    private readonly digest: string,
    private readonly parts: readonly Buffer[],
    private readonly expectedLength: number,
  ) {}

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      const part = this.parts[this.part];
      if (!part) throw new Error(`content is longer than the expected ${this.expectedLength} bytes`);
      const n = Math.min(chunk.length - off, part.length - this.offsetInPart);
      if (!chunk.subarray(off, off + n).equals(part.subarray(this.offsetInPart, this.offsetInPart + n))) {
        throw new Error(
          `content differs from the pushed blob ${this.digest} within bytes ${this.received}..${this.received + n}`,
        );
      }
      off += n;
      this.received += n;
      this.offsetInPart += n;
      if (this.offsetInPart === part.length) {
        this.part++;
        this.offsetInPart = 0;
      }
    }
  }

  /** Throws unless exactly the expected bytes were pushed. */
  finish(): void {
    if (this.received !== this.expectedLength) {
      throw new Error(`content ended after ${this.received} of ${this.expectedLength} bytes`);
    }
  }
}

/** Files up to this size are compared from memory (see `residentFile`). */
const RESIDENT_LIMIT = 1536 * MiB;
const residentFiles = new Map<string, Promise<Buffer | null>>();

/**
 * The whole of `file` in memory when it is at most RESIDENT_LIMIT bytes (the data file is 256 MiB in quick mode,
 * 1 GiB in full mode; the machine has RAM to spare), else null. With the expected bytes resident, verifying a
 * pull is a memcmp per received chunk: no read(2) copy from the page cache competing with the registry for CPU.
 */
export function residentFile(file: string): Promise<Buffer | null> {
  let loaded = residentFiles.get(file);
  if (!loaded) {
    loaded = stat(file).then((st) => (st.size <= RESIDENT_LIMIT ? readFile(file) : null));
    residentFiles.set(file, loaded);
  }
  return loaded;
}

/** Hashes a stream of segments (used once per prefix). */
async function hashSegments(segments: readonly Segment[]): Promise<Hash> {
  const hash = createHash('sha256');
  const source = new BlobSource(segments, 'unknown');
  for await (const chunk of source.open()) hash.update(chunk as Buffer);
  return hash;
}

/**
 * Makes distinct blobs of `repeat` times the file's size: the file repeated, last 32 bytes unique per variant.
 */
export class VariantFactory {
  private constructor(
    private readonly prefix: readonly Segment[],
    private readonly prefixHash: Hash,
    readonly size: number,
  ) {}

  static async create(file: string, fileSize: number, repeat: number): Promise<VariantFactory> {
    const prefix: Segment[] = [];
    for (let i = 0; i < repeat; i++) {
      const last = i === repeat - 1;
      prefix.push({ kind: 'file', path: file, start: 0, length: last ? fileSize - TAIL_BYTES : fileSize });
    }
    return new VariantFactory(prefix, await hashSegments(prefix), fileSize * repeat);
  }

  next(): BlobSource {
    const tail = randomBytes(TAIL_BYTES);
    const digest = `sha256:${this.prefixHash.copy().update(tail).digest('hex')}`;
    return new BlobSource([...this.prefix, { kind: 'bytes', data: tail }], digest);
  }
}

// ---------------------------------------------------------------------------------------------------------
// An OCI image layout for skopeo: one layer, a real tar.gz (gzip level 0: stored blocks, fast to make and
// still gzip, so skopeo copies it as is and does not recompress).

export const MEDIA_TYPE_OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_TYPE_OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const MEDIA_TYPE_OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const MEDIA_TYPE_OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

export interface OciImage {
  dir: string;
  tag: string;
  /** `oci:DIR:TAG` */
  reference: string;
  layerDigest: string;
  layerSize: number;
  layerPath: string;
  configDigest: string;
  configBytes: Buffer;
  manifestDigest: string;
  manifestBytes: Buffer;
}

function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512);
  const field = (value: string, offset: number, length: number): void => {
    h.write(value, offset, Math.min(length, Buffer.byteLength(value)), 'ascii');
  };
  const octal = (value: number, offset: number, length: number): void => {
    field(`${value.toString(8).padStart(length - 1, '0')}\0`, offset, length);
  };
  field(name, 0, 100);
  octal(0o644, 100, 8);
  octal(0, 108, 8);
  octal(0, 116, 8);
  octal(size, 124, 12);
  octal(0, 136, 12);
  h.fill(0x20, 148, 156); // checksum field counts as spaces
  field('0', 156, 1);
  field('ustar\0', 257, 6);
  field('00', 263, 2);
  let sum = 0;
  for (const byte of h) sum += byte;
  field(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return h;
}

function hashingTap(hash: Hash, counter: { bytes: number }): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      counter.bytes += chunk.length;
      cb(null, chunk);
    },
  });
}

/** Writes an OCI image layout whose single layer is tar.gz of the data file. */
export async function writeOciLayout(dir: string, dataFile: string, dataSize: number): Promise<OciImage> {
  const blobs = path.join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const tarParts = async function* (): AsyncGenerator<Buffer> {
    yield tarHeader('bench.bin', dataSize);
    for await (const chunk of createReadStream(dataFile, { highWaterMark: MiB })) yield chunk as Buffer;
    const pad = (512 - (dataSize % 512)) % 512;
    yield Buffer.alloc(pad + 1024);
  };
  const diffHash = createHash('sha256');
  const layerHash = createHash('sha256');
  const tarCount = { bytes: 0 };
  const layerCount = { bytes: 0 };
  const tmp = path.join(blobs, 'layer.tmp');
  await pipeline(
    Readable.from(tarParts()),
    hashingTap(diffHash, tarCount),
    createGzip({ level: 0, chunkSize: MiB }),
    hashingTap(layerHash, layerCount),
    createWriteStream(tmp),
  );
  const layerHex = layerHash.digest('hex');
  const layerPath = path.join(blobs, layerHex);
  await rename(tmp, layerPath);
  const diffId = `sha256:${diffHash.digest('hex')}`;
  const configBytes = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: [diffId] },
    }),
  );
  const configDigest = sha256(configBytes);
  await writeFile(path.join(blobs, configDigest.slice(7)), configBytes);
  const manifestBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_MANIFEST,
      config: { mediaType: MEDIA_TYPE_OCI_CONFIG, digest: configDigest, size: configBytes.length },
      layers: [
        { mediaType: MEDIA_TYPE_OCI_LAYER_GZIP, digest: `sha256:${layerHex}`, size: layerCount.bytes },
      ],
    }),
  );
  const manifestDigest = sha256(manifestBytes);
  await writeFile(path.join(blobs, manifestDigest.slice(7)), manifestBytes);
  const tag = 'bench';
  await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_OCI_INDEX,
      manifests: [
        {
          mediaType: MEDIA_TYPE_OCI_MANIFEST,
          digest: manifestDigest,
          size: manifestBytes.length,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  return {
    dir,
    tag,
    reference: `oci:${dir}:${tag}`,
    layerDigest: `sha256:${layerHex}`,
    layerSize: layerCount.bytes,
    layerPath,
    configDigest,
    configBytes,
    manifestDigest,
    manifestBytes,
  };
}

/** sha256 of a file, streamed. */
export async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: MiB })) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}
