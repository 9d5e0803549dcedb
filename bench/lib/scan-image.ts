/**
 * The scanning workload's Debian image: one gzip-compressed layer holding this machine's own
 * `/etc/os-release` and `/var/lib/dpkg/status` trimmed to about a hundred installed packages, plus filler files
 * (deterministic sizes, half random and half text content, a tenth of them executables starting like ELF files so
 * the Go detector streams them) so that the tar walk, decompression and executable detection do realistic work.
 */
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { padded, ustarHeader } from '../../test/helpers/tar.ts';

/** Packages always kept when the machine has them: the OSV fixtures have Debian 12 advisories for them. */
const KEEP = ['libc6', 'zlib1g'];

export interface DebianImageOptions {
  /** About how many installed packages to keep (default 100). */
  packages?: number;
  /** Bytes of filler file content (default 50 MiB). */
  fillerBytes?: number;
  /** Number of filler files (default 3,000). */
  fillerFiles?: number;
  /** The dpkg status database and os-release to take (defaults: this machine's). */
  statusFile?: string;
  osReleaseFile?: string;
}

export interface DebianImage {
  /** Names of the packages in the layer's dpkg status. */
  packages: string[];
  /** Tar entries in the layer. */
  entries: number;
  /** Uncompressed tar bytes and compressed blob bytes. */
  tarBytes: number;
  blobBytes: number;
}

/**
 * The paragraphs of a dpkg status database of installed packages (`Status: install ok installed`), the `KEEP`
 * ones first, then in file order, `count` at most.
 */
export function trimStatus(status: string, count: number): { text: string; names: string[] } {
  const installed = status
    .split(/\n\s*\n/)
    .map((p) => p.trim())
    .filter((p) => /^Status: install ok installed$/m.test(p))
    .map((p) => ({ name: /^Package: (\S+)$/m.exec(p)?.[1] ?? '', text: p }))
    .filter((p) => p.name !== '');
  const kept = [
    ...installed.filter((p) => KEEP.includes(p.name)),
    ...installed.filter((p) => !KEEP.includes(p.name)),
  ].slice(0, count);
  return { text: `${kept.map((p) => p.text).join('\n\n')}\n`, names: kept.map((p) => p.name) };
}

/** A small deterministic generator (mulberry32) for filler sizes: the same image every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TEXT = Buffer.from(
  'Lorem ipsum dolor sit amet, consectetur adipiscing elit; usr/share/doc changelog entry -- maintainers\n',
);

function filler(size: number, executable: boolean): Buffer {
  const body = Buffer.alloc(size);
  const half = Math.floor(size / 2);
  randomBytes(half).copy(body);
  for (let at = half; at < size; at += TEXT.length) TEXT.copy(body, at, 0, Math.min(TEXT.length, size - at));
  if (executable && size >= 4) body.write('\x7fELF', 0, 'latin1');
  return body;
}

/** Writes the image's single layer (tar.gz, zlib's default level as docker uses) to `file`. */
export async function writeDebianImage(file: string, options: DebianImageOptions = {}): Promise<DebianImage> {
  const status = await readFile(options.statusFile ?? '/var/lib/dpkg/status', 'utf8');
  const osRelease = await readFile(options.osReleaseFile ?? '/etc/os-release');
  const trimmed = trimStatus(status, options.packages ?? 100);
  if (trimmed.names.length === 0) throw new Error('no installed package in the dpkg status database');
  const files = options.fillerFiles ?? 3_000;
  const average = (options.fillerBytes ?? 50 * 1024 * 1024) / files;
  const random = prng(0x5ca9);
  let entries = 0;
  let tarBytes = 0;
  function* entry(name: string, body: Buffer, mode = 0o644): Generator<Buffer> {
    entries++;
    const header = ustarHeader(name, body.length, '0', mode);
    const data = padded(body);
    tarBytes += header.length + data.length;
    yield header;
    yield data;
  }
  function* tar(): Generator<Buffer> {
    yield* entry('etc/os-release', osRelease);
    for (let i = 0; i < files; i++) {
      // Sizes from 0.1x to 1.9x the average, so the total is about fillerBytes.
      const size = Math.round(average * (0.1 + 1.8 * random()));
      const executable = i % 10 === 0;
      const dir = executable ? 'usr/bin' : `usr/share/filler/${String(i % 50).padStart(2, '0')}`;
      yield* entry(
        `${dir}/file-${i}${executable ? '' : '.dat'}`,
        filler(size, executable),
        executable ? 0o755 : 0o644,
      );
    }
    yield* entry('var/lib/dpkg/status', Buffer.from(trimmed.text));
    tarBytes += 1024;
    yield Buffer.alloc(1024);
  }
  await pipeline(Readable.from(tar(), { objectMode: false }), zlib.createGzip(), createWriteStream(file));
  return { packages: trimmed.names, entries, tarBytes, blobBytes: (await stat(file)).size };
}
