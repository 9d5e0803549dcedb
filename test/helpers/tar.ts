/**
 * Builds real image-layer blobs for tests with the system's GNU tar: the files are written to a temporary
 * directory and archived in the order given (no recursion, no sorting), then compressed as asked.
 */
import { execFile } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, link, mkdir, open, symlink, truncate, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';

const run = promisify(execFile);

/** What a path of a test layer holds. */
export type LayerContent =
  | string
  | Buffer
  | { symlink: string }
  | { hardlink: string }
  | { dir: true }
  | { zeros: number }
  | { fragments: number }
  | { data: string | Buffer; mode: number };

/** A layer's entries, archived in this order. */
export type LayerSpec = ReadonlyArray<readonly [path: string, content: LayerContent]>;

/** Options of `buildLayer`. */
export interface BuildLayerOptions {
  /** GNU tar `--format` (default `gnu`: long names as `L`/`K` entries; `posix`: pax headers). */
  format?: 'gnu' | 'posix' | 'ustar';
  compression?: 'gzip' | 'zstd' | 'none';
  /** GNU tar `--pax-option` values (posix format), e.g. `comment=x` for a global pax header. */
  paxOptions?: string[];
  /** Archive holes of sparse files as sparse entries (GNU tar `--sparse`). */
  sparse?: boolean;
}

let counter = 0;

/**
 * Writes the layer under `workDir` and returns the path of the blob. `{ zeros: n }` is an n-byte file of
 * zeros (sparse on disk, archived in full); `{ fragments: n }` n one-byte fragments 1 MiB apart (sparse);
 * `{ data, mode }` a file with those permission bits (an executable);
 * `{ hardlink: p }` a hard link to the earlier entry `p`.
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
    else if ('data' in content) {
      await writeFile(target, content.data);
      await chmod(target, content.mode);
    } else if ('symlink' in content) await symlink(content.symlink, target);
    else if ('hardlink' in content) await link(join(root, content.hardlink), target);
    else if ('dir' in content) await mkdir(target, { recursive: true });
    else if ('fragments' in content) {
      // One byte at the start of every MiB: a sparse file of many data fragments.
      const handle = await open(target, 'w');
      for (let i = 0; i < content.fragments; i++)
        await handle.write(Buffer.from([i + 1]), 0, 1, i * 1024 * 1024);
      await handle.close();
    } else {
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
    ...(options.paxOptions ?? []).map((option) => `--pax-option=${option}`),
    ...(options.sparse ? ['--sparse'] : []),
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

/**
 * One hand-made ustar header block (for the cases GNU tar will not write on request, such as a pax `size`
 * that differs from the header's, or layers generated on the fly): name, octal size, typeflag, permission
 * bits, a correct checksum.
 */
export function ustarHeader(name: string, size: number, typeflag: string, mode = 0o644): Buffer {
  const block = Buffer.alloc(512);
  block.write(name, 0, 100, 'utf8');
  block.write(`${mode.toString(8).padStart(7, '0')}\0`, 100, 'latin1');
  block.write('0000000\0', 108, 'latin1');
  block.write('0000000\0', 116, 'latin1');
  block.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  block.write('00000000000\0', 136, 'latin1');
  block.write(typeflag, 156, 'latin1');
  block.write('ustar\0' + '00', 257, 'latin1');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return block;
}

/** A pax extended-header body: `"<length> <key>=<value>\n"` records, the length counting itself. */
export function paxBody(records: Record<string, string>): Buffer {
  let out = '';
  for (const [key, value] of Object.entries(records)) {
    const rest = ` ${key}=${value}\n`;
    let length = Buffer.byteLength(rest) + 1;
    while (String(length).length + Buffer.byteLength(rest) !== length) length++;
    out += `${length}${rest}`;
  }
  return Buffer.from(out);
}

/** `body` padded with zeros to whole 512-byte blocks. */
export function padded(body: Buffer): Buffer {
  return Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]);
}
