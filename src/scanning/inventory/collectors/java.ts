/**
 * Maven artifacts in Java archives (`.jar`, `.war`, `.ear`, and the jars nested one level inside them, as in
 * Spring Boot's `BOOT-INF/lib/`), from the `META-INF/maven/<groupId>/<artifactId>/pom.properties` files Maven
 * writes into every artifact it builds. Archives are streamed through their local file headers, never held
 * whole: a 500 MiB war costs the same memory as a small jar.
 */
import * as zlib from 'node:zlib';
import { ByteSource } from '../byte-source.ts';
import { purl } from '../purl.ts';
import type { Collector, Package } from '../types.ts';

const ARCHIVE = /\.(?:jar|war|ear)$/i;
const NESTED = /\.jar$/i;
const POM_PROPERTIES = /^META-INF\/maven\/[^/]+\/[^/]+\/pom\.properties$/;
/** Cap on a pom.properties file read into memory (real ones are a few hundred bytes). */
const MAX_PROPERTIES = 64 * 1024;
/** Cap on an entry name. */
const MAX_NAME = 64 * 1024;
/** Compressed bytes fed to the inflater at a time; bounds the output buffered per step (deflate: < 1032x). */
const INFLATE_STEP = 16 * 1024;
const SUMMARY_TAG = 'java-archive\n';

const LOCAL_HEADER = 0x04034b50;
const DATA_DESCRIPTOR = 0x08074b50;
const FLAG_DATA_DESCRIPTOR = 0x8;
const STORED = 0;
const DEFLATED = 8;

/** One Maven artifact found in an archive. */
export interface MavenArtifact {
  readonly groupId: string;
  readonly artifactId: string;
  readonly version: string;
  /** The nested jar it was found in (its entry name in the outer archive); absent for the archive itself. */
  readonly nested?: string;
}

/** The archive is not a zip this reader can follow any further (what was found so far still counts). */
class ZipStop extends Error {}

/** Java `.properties` text as key/value pairs (`key=value`, `key: value`; `#` and `!` comments). */
export function parseProperties(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith('!')) continue;
    const m = /^([^=:\s]+)\s*[=:\s]\s*(.*)$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** Streams the raw (compressed) bytes of an entry whose compressed size is known. */
async function* rawBytes(source: ByteSource, size: number): AsyncGenerator<Buffer> {
  let remaining = size;
  while (remaining > 0) {
    const chunk = await source.readSome(Math.min(remaining, 64 * 1024));
    if (chunk.length === 0) throw new ZipStop('archive ends inside an entry');
    remaining -= chunk.length;
    yield chunk;
  }
}

/**
 * Inflates a raw deflate stream from `source`: exactly `compressedSize` bytes when known, else up to the end of
 * the deflate stream (entries with a data descriptor), whose excess input is put back into `source`.
 */
async function* inflated(source: ByteSource, compressedSize: number | null): AsyncGenerator<Buffer> {
  const inflater = zlib.createInflateRaw();
  const out: Buffer[] = [];
  let failure: Error | null = null;
  let ended = false;
  inflater.on('data', (chunk: Buffer) => out.push(chunk));
  inflater.on('error', (err: Error) => (failure = err));
  inflater.on('end', () => (ended = true));
  // A write's callback may never come once the inflater failed: a step also ends at its error.
  const settle = (start: (done: () => void) => void): Promise<void> =>
    new Promise<void>((resolve) => {
      const done = (): void => {
        inflater.off('error', done);
        resolve();
      };
      inflater.once('error', done);
      if (failure) done();
      else start(done);
    });
  let fed = 0;
  let remaining = compressedSize ?? Infinity;
  try {
    for (;;) {
      if (remaining === 0) {
        await settle((done) => inflater.end(done));
        if (failure) throw new ZipStop('corrupt deflate data');
        yield* out.splice(0);
        return;
      }
      const chunk = await source.readSome(Math.min(INFLATE_STEP, remaining));
      if (chunk.length === 0) throw new ZipStop('archive ends inside a deflated entry');
      fed += chunk.length;
      remaining -= chunk.length;
      await settle((done) => inflater.write(chunk, () => done()));
      if (failure) throw new ZipStop('corrupt deflate data');
      yield* out.splice(0);
      // zlib stops taking input at the end of the deflate stream: what it did not take belongs to what follows.
      const excess = fed - inflater.bytesWritten;
      if (excess > 0 || ended) {
        if (compressedSize !== null) return; // the declared size included trailing bytes: already consumed
        source.unread(chunk.subarray(chunk.length - excess));
        return;
      }
    }
  } finally {
    inflater.destroy();
  }
}

const DESCRIPTOR_SIGNATURE = Buffer.from([0x50, 0x4b, 0x07, 0x08]);

/**
 * Streams a stored entry whose size only follows its data (zip writing to a pipe does this): the data ends at
 * the first data descriptor signature whose compressed-size field equals the bytes before it, which is put back
 * into `source` for the reader. Best effort: stored data can contain such a sequence by chance.
 */
async function* storedUntilDescriptor(source: ByteSource): AsyncGenerator<Buffer> {
  let count = 0; // data bytes yielded so far
  let pending: Buffer = Buffer.alloc(0); // bytes read but not yet yielded
  for (;;) {
    let at = pending.indexOf(DESCRIPTOR_SIGNATURE);
    while (at !== -1 && at + 16 <= pending.length) {
      // Signature, CRC-32, then the compressed size.
      if (pending.readUInt32LE(at + 8) === count + at) {
        if (at > 0) yield pending.subarray(0, at);
        source.unread(pending.subarray(at));
        return;
      }
      at = pending.indexOf(DESCRIPTOR_SIGNATURE, at + 1);
    }
    // Keep what could still begin a descriptor: an incomplete candidate, or the last 15 bytes.
    const keep = at !== -1 ? pending.length - at : Math.min(15, pending.length);
    if (pending.length > keep) {
      const out = pending.subarray(0, pending.length - keep);
      count += out.length;
      yield out;
    }
    const chunk = await source.readSome(64 * 1024);
    if (chunk.length === 0) throw new ZipStop('archive ends inside a stored entry');
    pending = Buffer.concat([pending.subarray(pending.length - keep), chunk]);
  }
}

/** One entry of a zip stream. */
interface ZipEntry {
  readonly name: string;
  /** The uncompressed content; may be consumed once, partly or not at all (the reader skips the rest). */
  readonly body: AsyncIterable<Buffer>;
}

/**
 * Iterates the entries of a zip archive in stream order, through the local file headers, up to the central
 * directory. Throws `ZipStop` where it cannot go on (an unknown method with a data descriptor, a corrupt
 * deflate stream, the archive cut short); errors of the input pass through.
 */
async function* zipEntries(source: ByteSource): AsyncGenerator<ZipEntry> {
  for (;;) {
    const header = await source.readUpTo(30);
    if (header.length < 4 || header.readUInt32LE(0) !== LOCAL_HEADER) return; // central directory, or the end
    if (header.length < 30) throw new ZipStop('archive ends inside a local header');
    const flags = header.readUInt16LE(6);
    const method = header.readUInt16LE(8);
    let compressedSize = header.readUInt32LE(18);
    const nameLength = header.readUInt16LE(26);
    const extraLength = header.readUInt16LE(28);
    if (nameLength > MAX_NAME) throw new ZipStop('entry name too long');
    const name = (await source.readUpTo(nameLength)).toString('utf8');
    const extra = await source.readUpTo(extraLength);
    if (extra.length < extraLength) throw new ZipStop('archive ends inside a local header');
    // Zip64: sizes of 0xffffffff are in the extra field 0x0001 (uncompressed size first, then compressed).
    let zip64 = false;
    for (let at = 0; at + 4 <= extra.length;) {
      const id = extra.readUInt16LE(at);
      const length = extra.readUInt16LE(at + 2);
      if (id === 0x0001) {
        zip64 = true;
        if (compressedSize === 0xffffffff && at + 20 <= extra.length) {
          compressedSize = Number(extra.readBigUInt64LE(at + 12));
        }
      }
      at += 4 + length;
    }
    const descriptor = (flags & FLAG_DATA_DESCRIPTOR) !== 0;
    let body: AsyncGenerator<Buffer>;
    if (!descriptor) {
      if (method === DEFLATED) body = inflated(source, compressedSize);
      else if (method === STORED) body = rawBytes(source, compressedSize);
      else body = (async function* () {})(); // unknown method: its bytes are skipped below
    } else if (method === DEFLATED) {
      body = inflated(source, null);
    } else if (method === STORED) {
      body = storedUntilDescriptor(source);
    } else {
      // Another method whose size only follows its data: nothing delimits it.
      throw new ZipStop('entry of an unknown method with a data descriptor');
    }
    // The consumer gets a view that cannot end the body early (leaving a loop calls `return`): what it leaves
    // is read here after it, since the end of a deflate stream is what delimits a descriptor entry. A failure
    // of the body is kept and rethrown here, however the consumer handled it.
    let failure: unknown = null;
    const view: AsyncIterator<Buffer> = {
      next: () =>
        body.next().catch((err: unknown) => {
          failure ??= err;
          throw err;
        }),
      return: () => Promise.resolve({ done: true, value: undefined }),
    };
    yield { name, body: { [Symbol.asyncIterator]: () => view } };
    if (failure !== null) throw failure;
    if (!descriptor && method !== DEFLATED && method !== STORED) {
      if ((await source.skip(compressedSize)) < compressedSize) throw new ZipStop('archive ends in an entry');
    } else {
      while (!(await body.next()).done) {
        // drained
      }
    }
    if (descriptor) {
      // Optional signature, CRC-32, then compressed and uncompressed sizes (8 bytes each in Zip64).
      const signature = await source.readUpTo(4);
      const hasSignature = signature.length === 4 && signature.readUInt32LE(0) === DATA_DESCRIPTOR;
      if (!hasSignature) source.unread(signature);
      const rest = 4 + (zip64 ? 16 : 8);
      if ((await source.skip(rest)) < rest) throw new ZipStop('archive ends inside a data descriptor');
    }
  }
}

/** Reads a body into memory up to `max` bytes; null when it is longer. */
async function readSmall(body: AsyncIterable<Buffer>, max: number): Promise<Buffer | null> {
  const parts: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.length;
    if (total > max) return null;
    parts.push(Buffer.from(chunk));
  }
  return Buffer.concat(parts);
}

/** The artifact a pom.properties names, or null without groupId, artifactId and version. */
function artifactOf(properties: Buffer, nested: string | undefined): MavenArtifact | null {
  const fields = parseProperties(properties.toString('utf8'));
  const groupId = fields.get('groupId');
  const artifactId = fields.get('artifactId');
  const version = fields.get('version');
  if (!groupId || !artifactId || !version) return null;
  return nested === undefined ? { groupId, artifactId, version } : { groupId, artifactId, version, nested };
}

/**
 * The Maven artifacts of a Java archive streamed as `body`: every pom.properties of the archive and of the jars
 * nested directly in it. Reads the whole stream once, holding only small entries; an archive that is not a zip,
 * or stops being one partway, gives what was found before. Rejects only with the errors of iterating `body`.
 */
export async function scanJavaArchive(body: AsyncIterable<Buffer>): Promise<MavenArtifact[]> {
  const found: MavenArtifact[] = [];
  await scanZip(body, undefined, found);
  return found;
}

async function scanZip(
  body: AsyncIterable<Buffer>,
  nested: string | undefined,
  found: MavenArtifact[],
): Promise<void> {
  const source = new ByteSource(body[Symbol.asyncIterator]());
  try {
    for await (const entry of zipEntries(source)) {
      if (POM_PROPERTIES.test(entry.name)) {
        const content = await readSmall(entry.body, MAX_PROPERTIES);
        const artifact = content ? artifactOf(content, nested) : null;
        if (artifact) found.push(artifact);
      } else if (nested === undefined && NESTED.test(entry.name)) {
        await scanZip(entry.body, entry.name, found);
      }
    }
  } catch (err) {
    if (!(err instanceof ZipStop)) throw err;
  } finally {
    if (nested === undefined) await source.close();
  }
}

/** The Java archive collector: archives are streamed; their summary is the list of artifacts found. */
export const javaCollector: Collector = {
  name: 'java',
  wants: () => false,
  wantsStream: (path) => ARCHIVE.test(path),
  async extract(_path, _mode, body) {
    const artifacts = await scanJavaArchive(body);
    return artifacts.length > 0 ? Buffer.from(SUMMARY_TAG + JSON.stringify(artifacts)) : null;
  },
  collect(files) {
    const out: Package[] = [];
    const tag = Buffer.from(SUMMARY_TAG);
    for (const [path, content] of files) {
      if (!content.subarray(0, tag.length).equals(tag)) continue;
      let artifacts: unknown;
      try {
        artifacts = JSON.parse(content.toString('utf8', tag.length));
      } catch {
        continue;
      }
      if (!Array.isArray(artifacts)) continue;
      for (const artifact of artifacts as Partial<MavenArtifact>[]) {
        const { groupId, artifactId, version } = artifact;
        if (typeof groupId !== 'string' || typeof artifactId !== 'string' || typeof version !== 'string')
          continue;
        out.push({
          ecosystem: 'Maven',
          name: `${groupId}:${artifactId}`,
          version,
          purl: purl('maven', groupId, artifactId, version),
          locations: [path],
        });
      }
    }
    return out;
  },
};
