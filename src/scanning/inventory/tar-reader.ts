/**
 * A streaming reader of tar archives as image layers carry them: POSIX ustar, GNU long names and link names
 * (typeflags `L` and `K`), and POSIX pax extended headers (`x` for the next entry, `g` for all that follow) with
 * the `path`, `linkpath` and `size` keywords. Bodies are read into memory only when the consumer asks, up to a
 * cap; every other body is skipped as it streams past.
 */
import { ByteSource, type Chunk } from './byte-source.ts';
import { CorruptLayerError, EntryTooLargeError, LayerError, TruncatedLayerError } from './errors.ts';

const BLOCK = 512;
/** Cap on the body of a GNU long name/link or a pax header: real ones are a few hundred bytes. */
const MAX_META_BODY = 1024 * 1024;
/** Default cap of `TarEntry.read()`. */
export const DEFAULT_READ_CAP = 8 * 1024 * 1024;

/** The kind of an entry, folded from the tar typeflag. */
export type TarEntryType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';

/** One entry of a tar stream. */
export interface TarEntry {
  /** Normalised path: no leading `./` or `/`, no trailing `/`, no empty or `.` segments, `..` resolved. */
  readonly path: string;
  readonly type: TarEntryType;
  /** Body size in bytes (0 for the header-only types: links, directories, devices, fifos). */
  readonly size: number;
  /** Target of a symlink (as written) or of a hardlink (normalised like `path`); '' otherwise. */
  readonly linkname: string;
  /** Permission bits (`mode & 0o7777`). */
  readonly mode: number;
  /**
   * The whole body in memory. Only valid before the iteration moves on, and at most once. Rejects with
   * `EntryTooLargeError` (reading nothing) when `size` exceeds `maxBytes`, with `TruncatedLayerError` when the
   * stream ends inside the body.
   */
  read(maxBytes?: number): Promise<Buffer>;
  /**
   * The body as it streams past, in chunks of at most 64 KiB, without holding it: for files too large to
   * buffer. Only valid before the iteration moves on, and at most once (and not after `read`). Chunks may be
   * views of the reader's buffers: copy what must outlive the next chunk. The consumer may stop early; what it
   * did not read is skipped when the iteration moves on. The iteration throws `TruncatedLayerError` when the
   * stream ends inside the body.
   */
  stream(): AsyncIterable<Buffer>;
}

/** Largest chunk `TarEntry.stream()` yields. */
const STREAM_CHUNK = 64 * 1024;

/**
 * Normalises an archive path to the form entries are keyed by: `./usr//lib/` -> `usr/lib`, `/etc/x` -> `etc/x`;
 * `..` never climbs above the root. The root itself is ''.
 */
export function normaliseTarPath(raw: string): string {
  const out: string[] = [];
  for (const segment of raw.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') out.pop();
    else out.push(segment);
  }
  return out.join('/');
}

/** A NUL-terminated field as a string (UTF-8, as GNU and BSD tar write non-ASCII names). */
function cString(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const nul = field.indexOf(0);
  return (nul === -1 ? field : field.subarray(0, nul)).toString('utf8');
}

/**
 * A numeric header field: octal text (NUL/space padded), or GNU base-256 when the top bit of the first byte is
 * set (how GNU tar stores sizes of 8 GiB and more).
 */
function numeric(block: Buffer, start: number, length: number, what: string): number {
  const field = block.subarray(start, start + length);
  if ((field[0]! & 0x80) !== 0) {
    if (field[0] === 0xff) throw new CorruptLayerError(`tar header: negative base-256 ${what}`);
    let value = field[0]! & 0x7f;
    for (let i = 1; i < field.length; i++) value = value * 256 + field[i]!;
    if (!Number.isSafeInteger(value)) throw new CorruptLayerError(`tar header: ${what} too large`);
    return value;
  }
  const text = field
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^[\0 ]+/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text))
    throw new CorruptLayerError(`tar header: ${what} is not octal: ${JSON.stringify(text)}`);
  return parseInt(text, 8);
}

/**
 * Checks the header checksum: the sum of the 512 bytes with the checksum field read as eight spaces. Both the
 * unsigned sum (POSIX) and the signed one (some historic tars) are accepted, as GNU tar does.
 */
function verifyChecksum(block: Buffer): void {
  const stored = numeric(block, 148, 8, 'checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  if (stored !== unsigned && stored !== signed) {
    throw new CorruptLayerError(`tar header checksum mismatch (stored ${stored}, computed ${unsigned})`);
  }
}

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

/**
 * Parses pax extended header records, `"<length> <keyword>=<value>\n"`, where length counts the whole record
 * in bytes. An empty value is kept as '' (it means "unset" for the keyword).
 */
export function parsePaxRecords(body: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let pos = 0;
  while (pos < body.length) {
    if (body[pos] === 0) break; // some writers pad the body with NULs
    const space = body.indexOf(0x20, pos);
    const lengthText = space === -1 ? '' : body.toString('latin1', pos, space);
    const length = /^[0-9]+$/.test(lengthText) ? parseInt(lengthText, 10) : NaN;
    if (!Number.isSafeInteger(length) || length <= space - pos + 1 || pos + length > body.length) {
      throw new CorruptLayerError('pax header: malformed record length');
    }
    const record = body.subarray(space + 1, pos + length);
    if (record[record.length - 1] !== 0x0a)
      throw new CorruptLayerError('pax header: record not ended by newline');
    const text = record.subarray(0, record.length - 1).toString('utf8');
    const eq = text.indexOf('=');
    if (eq <= 0) throw new CorruptLayerError('pax header: record without keyword');
    records.set(text.slice(0, eq), text.slice(eq + 1));
    pos += length;
  }
  return records;
}

/** Typeflags whose size field says nothing about a body (POSIX: no data blocks follow them). */
const HEADER_ONLY = new Set(['1', '2', '3', '4', '5', '6']);

function entryType(flag: string, rawName: string): TarEntryType {
  switch (flag) {
    case '0':
    case '\0':
    case '7':
      // Pre-POSIX archives mark directories only by a trailing slash on a regular-file typeflag.
      return rawName.endsWith('/') ? 'dir' : 'file';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '5':
      return 'dir';
    default:
      return 'other'; // devices, fifos, GNU sparse ('S'), volume labels and the like
  }
}

/**
 * Iterates the entries of a tar stream in order. The stream ends at the two zero blocks of the end-of-archive
 * marker (the rest, record padding, is not read) or at a clean end of input on a block boundary. Bodies the
 * consumer does not `read()` are skipped; padding to the 512-byte block is handled. Throws (from the iteration)
 * `CorruptLayerError` for a bad checksum or malformed field and `TruncatedLayerError` for a stream cut inside a
 * header or body. Leaving the loop early stops the input stream.
 */
export async function* readTar(input: AsyncIterable<Chunk>): AsyncGenerator<TarEntry> {
  const source = new ByteSource(input[Symbol.asyncIterator]());
  try {
    let globalPax = new Map<string, string>();
    let pax: Map<string, string> | null = null;
    let longName: string | null = null;
    let longLink: string | null = null;

    const readMetaBody = async (size: number, what: string): Promise<Buffer> => {
      if (size > MAX_META_BODY) throw new CorruptLayerError(`${what} of ${size} bytes is implausibly large`);
      const body = await source.readUpTo(size);
      if (body.length < size) throw new TruncatedLayerError(`tar stream ends inside a ${what}`);
      await skipPadding(size);
      return body;
    };
    const skipPadding = async (size: number): Promise<void> => {
      const padding = (BLOCK - (size % BLOCK)) % BLOCK;
      if ((await source.skip(padding)) < padding)
        throw new TruncatedLayerError('tar stream ends inside padding');
    };

    for (;;) {
      const header = await source.readUpTo(BLOCK);
      if (header.length === 0) {
        if (pax || longName !== null || longLink !== null) {
          throw new TruncatedLayerError('tar stream ends after an extended header, before its entry');
        }
        return; // a clean end on a block boundary without the end marker, which some writers omit
      }
      if (header.length < BLOCK) throw new TruncatedLayerError('tar stream ends inside a header');
      if (isZeroBlock(header)) {
        const second = await source.readUpTo(BLOCK);
        if (second.length === 0 || isZeroBlock(second)) return;
        if (second.length < BLOCK)
          throw new TruncatedLayerError('tar stream ends inside the end-of-archive marker');
        throw new CorruptLayerError('tar stream has a lone zero block followed by data');
      }
      verifyChecksum(header);
      const flag = String.fromCharCode(header[156]!);
      const headerSize = numeric(header, 124, 12, 'size');
      if (flag === 'S') {
        // Old GNU sparse: when the header's `isextended` byte is set, extension blocks of the sparse map
        // follow it (each flagging whether another follows) before the body.
        let extended = header[482] !== 0;
        while (extended) {
          const extension = await source.readUpTo(BLOCK);
          if (extension.length < BLOCK)
            throw new TruncatedLayerError('tar stream ends inside a sparse header');
          extended = extension[504] !== 0;
        }
      }

      if (flag === 'L' || flag === 'K') {
        const text = cString(await readMetaBody(headerSize, 'GNU long name'), 0, headerSize);
        if (flag === 'L') longName = text;
        else longLink = text;
        continue;
      }
      if (flag === 'x') {
        pax = parsePaxRecords(await readMetaBody(headerSize, 'pax header'));
        continue;
      }
      if (flag === 'g') {
        const records = parsePaxRecords(await readMetaBody(headerSize, 'pax global header'));
        const merged = new Map(globalPax);
        for (const [key, value] of records) {
          if (value === '') merged.delete(key);
          else merged.set(key, value);
        }
        globalPax = merged;
        continue;
      }

      // POSIX ustar ("ustar\0") splits long names into prefix + name; GNU ("ustar  \0") uses that area otherwise.
      const isPosixUstar = header.toString('latin1', 257, 263) === 'ustar\0';
      const name = cString(header, 0, 100);
      const prefix = isPosixUstar ? cString(header, 345, 155) : '';
      const rawName = prefix ? `${prefix}/${name}` : name;
      const paxValue = (key: string): string | undefined => {
        const value = pax?.get(key) ?? globalPax.get(key);
        return value === '' ? undefined : value;
      };
      // PAX sparse files (GNU formats 0.1 to 1.0) keep their real name in GNU.sparse.name.
      const paxSparse =
        paxValue('GNU.sparse.major') !== undefined || paxValue('GNU.sparse.size') !== undefined;
      const rawPath = paxValue('GNU.sparse.name') ?? paxValue('path') ?? longName ?? rawName;
      const rawLink = paxValue('linkpath') ?? longLink ?? cString(header, 157, 100);
      const paxSize = paxValue('size');
      if (paxSize !== undefined && !/^[0-9]+$/.test(paxSize)) {
        throw new CorruptLayerError(`pax header: size is not a decimal number: ${JSON.stringify(paxSize)}`);
      }
      let size = paxSize !== undefined ? Number(paxSize) : headerSize;
      if (!Number.isSafeInteger(size)) throw new CorruptLayerError('pax header: size too large');
      if (HEADER_ONLY.has(flag)) size = 0;
      pax = null;
      longName = null;
      longLink = null;

      // A sparse file's body is a map plus data fragments, not the file's bytes: not readable as content.
      const type = paxSparse ? 'other' : entryType(flag, rawPath);
      let consumed = false;
      // Body bytes not yet read by a `stream()` consumer; skipped when the iteration moves on.
      let remaining = size;
      const entry: TarEntry = {
        path: normaliseTarPath(rawPath),
        type,
        size,
        linkname: type === 'hardlink' ? normaliseTarPath(rawLink) : type === 'symlink' ? rawLink : '',
        mode: numeric(header, 100, 8, 'mode') & 0o7777,
        read: async (maxBytes = DEFAULT_READ_CAP) => {
          if (consumed) throw new LayerError(`tar entry ${rawPath}: body already read or skipped`);
          if (size > maxBytes) {
            throw new EntryTooLargeError(
              `tar entry ${rawPath} is ${size} bytes, over the cap of ${maxBytes}`,
            );
          }
          consumed = true;
          remaining = 0;
          const body = await source.readUpTo(size);
          if (body.length < size)
            throw new TruncatedLayerError(`tar stream ends inside the body of ${rawPath}`);
          return body;
        },
        stream: () => {
          if (consumed) throw new LayerError(`tar entry ${rawPath}: body already read or skipped`);
          consumed = true;
          return (async function* () {
            while (remaining > 0) {
              const chunk = await source.readSome(Math.min(remaining, STREAM_CHUNK));
              if (chunk.length === 0)
                throw new TruncatedLayerError(`tar stream ends inside the body of ${rawPath}`);
              remaining -= chunk.length;
              yield chunk;
            }
          })();
        },
      };
      yield entry;
      if (!consumed || remaining > 0) {
        consumed = true;
        const rest = remaining;
        remaining = 0;
        if ((await source.skip(rest)) < rest) {
          throw new TruncatedLayerError(`tar stream ends inside the body of ${rawPath}`);
        }
      }
      await skipPadding(size);
    }
  } finally {
    await source.close();
  }
}
