/**
 * A small reader of ZIP archives on disk (APPNOTE 6.3), enough for OSV's `all.zip`: the central directory is read
 * from the end of the file, then each entry's data with positioned reads, one entry in memory at a time. Stored
 * and deflated entries; ZIP64 sizes and offsets; entries written with data descriptors (the central directory
 * holds their sizes). Encrypted entries and other methods are reported per entry, not read.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { crc32, inflateRawSync } from 'node:zlib';

/** The archive as a whole cannot be read (no end of central directory, a truncated or inconsistent directory). */
export class ZipError extends Error {
  readonly code = 'ZIP_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'ZipError';
  }
}

/** One entry of the central directory. */
export interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly flags: number;
  readonly crc: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localHeaderOffset: number;
}

/** An entry read: its bytes, or why it could not be (bad CRC, unsupported method, too large...). */
export type ZipEntryContent =
  | { readonly entry: ZipEntry; readonly data: Buffer; readonly error?: undefined }
  | { readonly entry: ZipEntry; readonly data?: undefined; readonly error: string };

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
/** The end record is 22 bytes plus a comment of at most 65535. */
const MAX_TAIL = 22 + 0xffff;
/** The largest central directory read (about ten million entries). */
const MAX_DIRECTORY = 1 << 30;

async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buffer, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  if (done < length) throw new ZipError(`truncated archive: wanted ${length} bytes at ${position}`);
  return buffer;
}

function u64(buffer: Buffer, offset: number): number {
  const value = buffer.readBigUInt64LE(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipError('a ZIP64 value is out of range');
  return Number(value);
}

/** The central directory's offset, size and entry count, from the (ZIP64) end of central directory. */
async function directoryOf(
  fh: FileHandle,
  fileSize: number,
): Promise<{ offset: number; size: number; count: number }> {
  const tailLength = Math.min(fileSize, MAX_TAIL);
  const tail = await readAt(fh, fileSize - tailLength, tailLength);
  let at = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIG && i + 22 + tail.readUInt16LE(i + 20) <= tail.length) {
      at = i;
      break;
    }
  }
  if (at < 0) throw new ZipError('not a ZIP archive (no end of central directory record)');
  let count = tail.readUInt16LE(at + 10);
  let size = tail.readUInt32LE(at + 12);
  let offset = tail.readUInt32LE(at + 16);
  const eocdPosition = fileSize - tailLength + at;
  if ((count === 0xffff || size === 0xffffffff || offset === 0xffffffff) && eocdPosition >= 20) {
    const locator = await readAt(fh, eocdPosition - 20, 20);
    if (locator.readUInt32LE(0) === ZIP64_LOCATOR_SIG) {
      const position = u64(locator, 8);
      if (position + 56 > fileSize) throw new ZipError('the ZIP64 end record lies outside the file');
      const record = await readAt(fh, position, 56);
      if (record.readUInt32LE(0) !== ZIP64_EOCD_SIG) throw new ZipError('bad ZIP64 end record signature');
      count = u64(record, 32);
      size = u64(record, 40);
      offset = u64(record, 48);
    }
  }
  if (offset + size > fileSize) throw new ZipError('the central directory lies outside the file');
  if (size > MAX_DIRECTORY) throw new ZipError('the central directory is too large');
  return { offset, size, count };
}

/** Parses the central directory `dir` into entries. */
function entriesOf(dir: Buffer, count: number): ZipEntry[] {
  const entries: ZipEntry[] = [];
  let p = 0;
  // `count` may be wrong in a damaged archive: the bytes decide, the count only bounds nothing.
  while (p + 46 <= dir.length && dir.readUInt32LE(p) === CENTRAL_SIG) {
    const flags = dir.readUInt16LE(p + 8);
    const method = dir.readUInt16LE(p + 10);
    const crc = dir.readUInt32LE(p + 16);
    let compressedSize = dir.readUInt32LE(p + 20);
    let size = dir.readUInt32LE(p + 24);
    const nameLength = dir.readUInt16LE(p + 28);
    const extraLength = dir.readUInt16LE(p + 30);
    const commentLength = dir.readUInt16LE(p + 32);
    let localHeaderOffset = dir.readUInt32LE(p + 42);
    const end = p + 46 + nameLength + extraLength + commentLength;
    if (end > dir.length) throw new ZipError('truncated central directory entry');
    const name = dir.toString(flags & 0x800 ? 'utf8' : 'latin1', p + 46, p + 46 + nameLength);
    // ZIP64 extended information: present fields follow in this order, only for values saturated above.
    let e = p + 46 + nameLength;
    const extraEnd = e + extraLength;
    while (e + 4 <= extraEnd) {
      const id = dir.readUInt16LE(e);
      const length = dir.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let f = e + 4;
        const fieldEnd = Math.min(f + length, extraEnd);
        if (size === 0xffffffff && f + 8 <= fieldEnd) {
          size = u64(dir, f);
          f += 8;
        }
        if (compressedSize === 0xffffffff && f + 8 <= fieldEnd) {
          compressedSize = u64(dir, f);
          f += 8;
        }
        if (localHeaderOffset === 0xffffffff && f + 8 <= fieldEnd) localHeaderOffset = u64(dir, f);
      }
      e += 4 + length;
    }
    entries.push({ name, method, flags, crc, compressedSize, size, localHeaderOffset });
    p = end;
  }
  if (entries.length < Math.min(count, 1)) throw new ZipError('the central directory holds no entry');
  return entries;
}

/**
 * The entries of the archive at `path`, in directory order, each read when the iteration reaches it: entries whose
 * name `want` rejects are skipped unread, entries larger than `maxEntrySize` (uncompressed) are reported with an
 * error. Throws {@link ZipError} when the archive itself is unreadable (before the first entry, or on a local
 * header that is not where the directory says), and the file system's errors.
 */
export async function* readZip(
  path: string,
  options: { want?: (name: string) => boolean; maxEntrySize?: number } = {},
): AsyncGenerator<ZipEntryContent> {
  const maxEntrySize = options.maxEntrySize ?? 64 * 1024 * 1024;
  const fh = await open(path, 'r');
  try {
    const { size: fileSize } = await fh.stat();
    const { offset, size, count } = await directoryOf(fh, fileSize);
    const entries = entriesOf(await readAt(fh, offset, size), count);
    for (const entry of entries) {
      if (entry.name.endsWith('/')) continue;
      if (options.want !== undefined && !options.want(entry.name)) continue;
      yield await readEntry(fh, fileSize, entry, maxEntrySize);
    }
  } finally {
    await fh.close();
  }
}

async function readEntry(
  fh: FileHandle,
  fileSize: number,
  entry: ZipEntry,
  maxEntrySize: number,
): Promise<ZipEntryContent> {
  if (entry.flags & 0x1) return { entry, error: 'encrypted entry' };
  if (entry.method !== 0 && entry.method !== 8) {
    return { entry, error: `unsupported compression method ${entry.method}` };
  }
  if (entry.size > maxEntrySize) return { entry, error: `larger than ${maxEntrySize} bytes` };
  if (entry.localHeaderOffset + 30 > fileSize)
    throw new ZipError(`${entry.name}: local header outside the file`);
  const header = await readAt(fh, entry.localHeaderOffset, 30);
  if (header.readUInt32LE(0) !== LOCAL_SIG) throw new ZipError(`${entry.name}: bad local header signature`);
  const dataStart = entry.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
  if (dataStart + entry.compressedSize > fileSize) throw new ZipError(`${entry.name}: data outside the file`);
  // Deflate cannot expand data by more than about 1032:1; a larger claim is a corrupt directory.
  if (entry.method === 8 && entry.compressedSize > maxEntrySize) {
    return { entry, error: `larger than ${maxEntrySize} bytes` };
  }
  const raw = await readAt(fh, dataStart, entry.compressedSize);
  let data: Buffer;
  if (entry.method === 0) {
    data = raw;
  } else {
    try {
      data = inflateRawSync(raw, { maxOutputLength: Math.max(entry.size, 1) });
    } catch (e) {
      return { entry, error: `cannot inflate: ${(e as Error).message}` };
    }
  }
  if (data.length !== entry.size)
    return { entry, error: `size ${data.length}, the directory says ${entry.size}` };
  if (crc32(data) !== entry.crc) return { entry, error: 'CRC-32 mismatch' };
  return { entry, data };
}
