/**
 * Builds real image-layer blobs for tests with the system's GNU tar: the files are written to a temporary
 * directory and archived in the order given (no recursion, no sorting), then compressed as asked.
 */
import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { link, mkdir, symlink, truncate, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';

const run = promisify(execFile);

/** What a path of a test layer holds. */
export type LayerContent =
  string | Buffer | { symlink: string } | { hardlink: string } | { dir: true } | { zeros: number };

/** A layer's entries, archived in this order. */
export type LayerSpec = ReadonlyArray<readonly [path: string, content: LayerContent]>;

/** Options of `buildLayer`. */
export interface BuildLayerOptions {
  /** GNU tar `--format` (default `gnu`: long names as `L`/`K` entries; `posix`: pax headers). */
  format?: 'gnu' | 'posix' | 'ustar';
  compression?: 'gzip' | 'zstd' | 'none';
}

let counter = 0;

/**
 * Writes the layer under `workDir` and returns the path of the blob. `{ zeros: n }` is an n-byte file of
 * zeros (sparse on disk, archived in full); `{ hardlink: p }` a hard link to the earlier entry `p`.
 */
export async function buildLayer(
  workDir: string,
  spec: LayerSpec,
  options: BuildLayerOptions = {},
): Promise<string> {
  const id = counter++;
  const root = join(workDir, `layer-${id}`);
  await mkdir(root, { recursive: true });
  for (const [path, content] of spec) {
    const target = join(root, path);
    await mkdir(dirname(target), { recursive: true });
    if (typeof content === 'string' || Buffer.isBuffer(content)) await writeFile(target, content);
    else if ('symlink' in content) await symlink(content.symlink, target);
    else if ('hardlink' in content) await link(join(root, content.hardlink), target);
    else if ('dir' in content) await mkdir(target, { recursive: true });
    else {
      await writeFile(target, '');
      await truncate(target, content.zeros);
    }
  }
  const tarPath = join(workDir, `layer-${id}.tar`);
  await run('tar', [
    `--format=${options.format ?? 'gnu'}`,
    '--no-recursion',
    '--owner=0',
    '--group=0',
    '-cf',
    tarPath,
    '-C',
    root,
    '--',
    ...spec.map(([path]) => path),
  ]);
  const compression = options.compression ?? 'none';
  if (compression === 'none') return tarPath;
  if (compression === 'gzip') {
    await pipeline(createReadStream(tarPath), zlib.createGzip(), createWriteStream(`${tarPath}.gz`));
    return `${tarPath}.gz`;
  }
  await run('zstd', ['-q', '-f', '-o', `${tarPath}.zst`, tarPath]);
  return `${tarPath}.zst`;
}
