/**
 * A StorageDriver over a local (or network-mounted POSIX) directory.
 *
 * Layout under `root`:
 *
 * ```
 * <root>/<key>                 committed objects, one regular file per key
 * <root>/_tmp/<uuid>           files being written by `put`, renamed into place once complete
 * <root>/_uploads/<id>/data    bytes of the resumable upload `id` (a random UUID)
 * ```
 *
 * Atomicity rests on rename(2): every object is first written and fsynced somewhere else on the same
 * filesystem, then renamed over its key and the parent directory fsynced. A reader holds a file descriptor, so an
 * overwrite or delete never changes the bytes of a stream that is already open.
 */
import { randomUUID } from 'node:crypto';
import { constants as fsConstants, type Stats } from 'node:fs';
import { access, mkdir, open, opendir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import {
  assertValidKey,
  InvalidPathError,
  ObjectNotFoundError,
  RangeNotSatisfiableError,
  StorageError,
  UploadNotFoundError,
  type ByteRange,
  type ObjectInfo,
  type ReadHints,
  type StorageDriver,
  type UploadHandle,
  type UploadInfo,
} from '../driver.ts';
import {
  assertByteCount,
  isUploadId,
  isValidKey,
  isWellFormedRange,
  issuedUploadId,
  toBytes,
  uploadIdOf,
} from '../driver-helpers.ts';
import { leaseFileRange, openFileRange } from '../file-range-stream.ts';
import { FreeSpaceProbe, type StatfsFn } from '../free-space.ts';
import { DEFAULT_OPEN_FILE_CACHE, OpenFileCache, type OpenFileCacheOptions } from '../open-file-cache.ts';

/** Top-level names the driver keeps for itself; keys starting with them are refused. */
const UPLOADS_DIR = '_uploads';
const TMP_DIR = '_tmp';
const RESERVED = new Set([UPLOADS_DIR, TMP_DIR]);

export interface FilesystemDriverOptions {
  /** The directory holding everything. Created lazily by the first write (or `ping`). */
  readonly root: string;
  /** Limits of the cache of open descriptors that immutable reads share (see OpenFileCache). */
  readonly openFiles?: OpenFileCacheOptions;
  /** How `freeSpace()` reads the filesystem's free space; default `fs.promises.statfs` (tests inject one). */
  readonly statfs?: StatfsFn;
}

/**
 * Stores objects as files below `options.root`. Construction touches nothing on disk; directories are created
 * on demand by the first write. All I/O on request paths is asynchronous.
 *
 * Keys whose first segment is `_uploads` or `_tmp` are refused with `InvalidPathError`: those names hold the
 * driver's private state.
 */
export class FilesystemDriver implements StorageDriver {
  readonly name = 'filesystem';
  private readonly root: string;
  private readonly tmpDir: string;
  private readonly uploadsDir: string;
  /** Descriptors of committed objects read with `immutable`; told of every put, commit and delete. */
  private readonly openFiles: OpenFileCache;
  private readonly space: FreeSpaceProbe;

  constructor(options: FilesystemDriverOptions) {
    this.root = path.resolve(options.root);
    this.openFiles = new OpenFileCache(options.openFiles ?? DEFAULT_OPEN_FILE_CACHE);
    this.tmpDir = path.join(this.root, TMP_DIR);
    this.uploadsDir = path.join(this.root, UPLOADS_DIR);
    this.space = new FreeSpaceProbe(this.root, { statfs: options.statfs });
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    const file = this.pathOf(key);
    try {
      const st = await stat(file);
      // A directory is a key prefix, not an object.
      return st.isFile() ? { size: st.size, modifiedAt: st.mtime } : null;
    } catch (err) {
      if (isAbsent(err)) return null;
      throw err;
    }
  }

  /**
   * With `hints.immutable` the descriptor comes from the open-file cache (shared, kept a few seconds after use);
   * otherwise the stream opens its own and closes it on end, error and early destroy().
   */
  async read(key: string, range?: ByteRange, hints?: ReadHints): Promise<Readable> {
    const choose = (st: Stats): [number, number] => {
      if (!st.isFile()) throw new ObjectNotFoundError(key);
      if (range === undefined) return [0, st.size];
      if (!rangeFits(range, st.size)) throw new RangeNotSatisfiableError(key, st.size);
      return [range.start, range.end + 1];
    };
    const file = this.pathOf(key);
    try {
      return hints?.immutable
        ? await leaseFileRange(this.openFiles, file, choose)
        : await openFileRange(file, choose);
    } catch (err) {
      if (isAbsent(err)) throw new ObjectNotFoundError(key);
      throw err;
    }
  }

  async put(key: string, body: Readable | Uint8Array): Promise<number> {
    const dest = this.pathOf(key);
    const tmp = path.join(this.tmpDir, randomUUID());
    const fh = await openCreating(tmp, 'wx');
    let written: number;
    try {
      try {
        written = await writeBody(fh, body, 0);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await renameInto(tmp, dest);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    this.openFiles.invalidate(dest);
    await fsyncDir(path.dirname(dest));
    return written;
  }

  /**
   * Removes the file. Empty parent directories are left in place: removing them would race with a concurrent
   * `put` that has just created them, and the blob layout bounds their number anyway. Deletion is not fsynced:
   * after a power loss a just-deleted object may reappear (as an unreferenced object, it is deleted again by the
   * next sweep that lists it).
   */
  async delete(key: string): Promise<boolean> {
    const file = this.pathOf(key);
    try {
      await unlink(file);
      return true;
    } catch (err) {
      if (isAbsent(err) || errCode(err) === 'EISDIR') return false;
      // macOS reports unlink(2) on a directory as EPERM.
      if (errCode(err) === 'EPERM' && (await stat(file).catch(() => null))?.isDirectory()) return false;
      throw err;
    } finally {
      // Also when the file was already gone (removed by hand): no later read may be served from a descriptor.
      this.openFiles.invalidate(file);
    }
  }

  /**
   * Walks the directory tree below `prefix` (depth first, one directory handle open at a time). Skips the
   * driver's private directories, symlinks and anything else that is not a regular file, and file names outside
   * the key grammar (strays an operator may have left), so every yielded key is usable with the other methods.
   */
  async *list(prefix: string): AsyncIterable<string> {
    assertValidKey(prefix, { allowEmpty: true });
    if (prefix !== '') this.pathOf(prefix); // reserved-name check
    const stack: string[] = [prefix];
    while (stack.length > 0) {
      const rel = stack.pop() as string;
      const dir = rel === '' ? this.root : path.join(this.root, ...rel.split('/'));
      let handle;
      try {
        handle = await opendir(dir);
      } catch (err) {
        if (isAbsent(err)) continue; // no such prefix, or the prefix is an object (ENOTDIR)
        throw err;
      }
      for await (const entry of handle) {
        if (rel === '' && RESERVED.has(entry.name)) continue;
        const key = rel === '' ? entry.name : `${rel}/${entry.name}`;
        if (!isValidKey(key)) continue;
        if (entry.isDirectory()) stack.push(key);
        else if (entry.isFile()) yield key;
      }
    }
  }

  async createUpload(): Promise<UploadHandle> {
    const id = randomUUID();
    const dir = this.uploadDir(id);
    await mkdir(dir, { recursive: true });
    const fh = await open(path.join(dir, 'data'), 'wx');
    await fh.close();
    return { id };
  }

  /*
   * The append/truncate protocol. The caller's metadata records the size after every successful append, and
   * that recorded size is the only one that counts: a crash or a body error in the middle of an append can leave
   * bytes past it in the data file, with no way to tell from the file alone how many of them were meant to be
   * there. So each append first cuts the file back to the offset the caller passes (the size it recorded) and
   * only then writes. A file shorter than the offset means bytes the caller believes stored were lost, and the
   * upload cannot continue.
   */
  async appendUpload(
    handle: UploadHandle,
    offset: number,
    body: Readable,
  ): Promise<{ handle: UploadHandle; size: number }> {
    const id = uploadIdOf(handle);
    assertByteCount(offset, 'offset');
    const fh = await this.openUploadData(id, 'r+');
    try {
      const { size } = await fh.stat();
      if (size < offset) throw new UploadNotFoundError(id, 'upload is shorter than expected');
      if (size > offset) await fh.truncate(offset);
      const written = await writeBody(fh, body, offset);
      // The caller records the new size once we resolve; make sure the bytes it counts survive a crash.
      await fh.datasync();
      return { handle: { id }, size: offset + written };
    } finally {
      await fh.close();
    }
  }

  async readUpload(handle: UploadHandle, size: number): Promise<Readable> {
    const id = uploadIdOf(handle);
    assertByteCount(size, 'size');
    try {
      return await openFileRange(path.join(this.uploadDir(id), 'data'), (st) => {
        if (st.size < size) throw new UploadNotFoundError(id, 'upload is shorter than expected');
        return [0, size];
      });
    } catch (err) {
      if (isAbsent(err)) throw new UploadNotFoundError(id);
      throw err;
    }
  }

  /**
   * Cuts the data file to `size`, fsyncs it and renames it over `key`. When an object already exists at `key`
   * it is kept (keys of committed blobs are content addresses, so it holds the same bytes). Two commits racing to
   * the same key are safe: each rename atomically replaces one complete file with another identical one.
   */
  async commitUpload(handle: UploadHandle, size: number, key: string): Promise<void> {
    const dest = this.pathOf(key);
    const id = uploadIdOf(handle);
    assertByteCount(size, 'size');
    const dir = this.uploadDir(id);
    const data = path.join(dir, 'data');
    const fh = await this.openUploadData(id, 'r+');
    try {
      const st = await fh.stat();
      if (st.size < size) throw new UploadNotFoundError(id, 'upload is shorter than expected');
      if (st.size > size) await fh.truncate(size);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if ((await this.stat(key)) === null) {
      try {
        await renameInto(data, dest);
      } catch (err) {
        // The data file vanished under us (a concurrent abort or commit of the same handle).
        if (errCode(err) === 'ENOENT' && !(await exists(data))) throw new UploadNotFoundError(id);
        throw err;
      }
      this.openFiles.invalidate(dest);
      await fsyncDir(path.dirname(dest));
    }
    await rm(dir, { recursive: true, force: true });
  }

  async abortUpload(handle: UploadHandle): Promise<void> {
    const id = issuedUploadId(handle);
    if (id === undefined) return; // a handle we could never have issued: nothing to discard
    await rm(this.uploadDir(id), { recursive: true, force: true });
  }

  /**
   * Yields one entry per upload directory. `modifiedAt` is the data file's mtime (the last append), or the
   * directory's when the data file is gone (a crash between a commit's rename and its cleanup), so that garbage
   * collection can abort such leftovers too.
   */
  async *listUploads(): AsyncIterable<UploadInfo> {
    let handle;
    try {
      handle = await opendir(this.uploadsDir);
    } catch (err) {
      if (isAbsent(err)) return;
      throw err;
    }
    for await (const entry of handle) {
      if (!entry.isDirectory() || !isUploadId(entry.name)) continue;
      const dir = this.uploadDir(entry.name);
      const st =
        (await stat(path.join(dir, 'data')).catch(nullIfAbsent)) ?? (await stat(dir).catch(nullIfAbsent));
      if (st === null) continue; // removed while we were listing
      yield { handle: { id: entry.name }, modifiedAt: st.mtime };
    }
  }

  /**
   * Checks that the root is a readable, writable directory. Creates it when missing, as the first write would:
   * otherwise a fresh deployment could never become ready.
   */
  async ping(): Promise<void> {
    try {
      await mkdir(this.root, { recursive: true });
      const st = await stat(this.root);
      if (!st.isDirectory()) throw new Error('not a directory');
      await access(this.root, fsConstants.R_OK | fsConstants.W_OK | fsConstants.X_OK);
    } catch (err) {
      throw new StorageError(`filesystem storage root ${this.root} is not a writable directory`, {
        cause: err,
      });
    }
  }

  /** statfs(2) of the root's filesystem, sampled at most once a second (see StorageDriver.freeSpace). */
  freeSpace(): Promise<number> {
    return this.space.available();
  }

  /** Writes, fsyncs and removes `_uploads/<uuid>/probe`, creating the root when it is missing (as `ping`). */
  async checkWritable(): Promise<void> {
    const dir = this.uploadDir(randomUUID());
    try {
      const fh = await openCreating(path.join(dir, 'probe'), 'wx');
      try {
        await fh.writeFile('berth');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rm(dir, { recursive: true });
    } catch (err) {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw new StorageError(
        `cannot write to the filesystem storage at ${this.root}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }

  /** Closes the cached descriptors; reads still streaming close theirs when they end. */
  async close(): Promise<void> {
    this.openFiles.close();
  }

  /** Validates `key` and maps it below the root. Never touches the filesystem. */
  private pathOf(key: string): string {
    assertValidKey(key);
    const segments = key.split('/');
    if (RESERVED.has(segments[0] as string)) throw new InvalidPathError(key);
    return path.join(this.root, ...segments);
  }

  private uploadDir(id: string): string {
    return path.join(this.uploadsDir, id);
  }

  private async openUploadData(id: string, flags: 'r' | 'r+'): Promise<FileHandle> {
    try {
      return await open(path.join(this.uploadDir(id), 'data'), flags);
    } catch (err) {
      if (isAbsent(err)) throw new UploadNotFoundError(id);
      throw err;
    }
  }
}

function rangeFits(range: ByteRange, size: number): boolean {
  return isWellFormedRange(range) && range.end < size;
}

/**
 * Writes `body` at `start` and returns the byte count. A Readable goes through `pipeline`, so a body that errors
 * or is destroyed early rejects the promise, a write error destroys the body, and only one chunk is in flight.
 */
async function writeBody(fh: FileHandle, body: Readable | Uint8Array, start: number): Promise<number> {
  if (body instanceof Uint8Array) {
    await writeFully(fh, body, start);
    return body.byteLength;
  }
  let position = start;
  await pipeline(body, async (source: AsyncIterable<unknown>) => {
    for await (const chunk of source) {
      const bytes = toBytes(chunk);
      await writeFully(fh, bytes, position);
      position += bytes.byteLength;
    }
  });
  return position - start;
}

async function writeFully(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await fh.write(bytes, done, bytes.byteLength - done, position + done);
    done += bytesWritten;
  }
}

/** Opens (creating) `file`, making its parent directories on first use. */
async function openCreating(file: string, flags: string): Promise<FileHandle> {
  try {
    return await open(file, flags);
  } catch (err) {
    if (errCode(err) !== 'ENOENT') throw err;
    await mkdir(path.dirname(file), { recursive: true });
    return await open(file, flags);
  }
}

/** rename(2), creating the destination's parent directories when they are missing. */
async function renameInto(from: string, to: string): Promise<void> {
  try {
    await rename(from, to);
  } catch (err) {
    if (errCode(err) !== 'ENOENT') throw err;
    await mkdir(path.dirname(to), { recursive: true });
    await rename(from, to);
  }
}

/** Makes a rename or creation in `dir` durable. Filesystems that cannot fsync a directory are tolerated. */
async function fsyncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch (err) {
    if (errCode(err) !== 'EINVAL' && errCode(err) !== 'ENOTSUP') throw err;
  } finally {
    await fh.close();
  }
}

async function exists(file: string): Promise<boolean> {
  return (await stat(file).catch(nullIfAbsent)) !== null;
}

function errCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}

/** ENOENT, or ENOTDIR when a path component is a file (key `a/b` while `a` is an object). */
function isAbsent(err: unknown): boolean {
  const code = errCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function nullIfAbsent(err: unknown): null {
  if (isAbsent(err)) return null;
  throw err;
}
