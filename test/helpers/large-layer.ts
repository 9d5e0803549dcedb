/**
 * A large tar layer generated on the fly, never on disk and never whole in memory: large unwanted files, a large
 * executable with its Go build information at its very end, a large web archive streamed through its entries,
 * and the files the collectors want at the end of the layer. Used by the 1 GiB inventory test (`large-layer-child.ts`) and the scanning benchmark (`bench/`).
 */
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import { padded, ustarHeader } from './tar.ts';

const MiB = 1024 * 1024;
const CHUNK = 256 * 1024;

/** The packages `inventory()` must find in a layer from {@link largeLayer}, as `ecosystem:name@version`. */
export const LARGE_LAYER_PACKAGES: readonly string[] = [
  'Debian:base-files@12.4+deb12u5',
  'Debian:zlib1g@1:1.2.13.dfsg-1',
  // Found only by streaming the executable to its last bytes.
  'Go:example.com/huge@v0.3.1',
  'Go:stdlib@1.22.3',
  // From the web archive: its nested jar, and its own pom.properties after its large entry.
  'Maven:org.acme:inner@0.9.0',
  'Maven:org.acme:webapp@3.1.0',
  'npm:left-pad@1.3.0',
];

/** A 1 MiB pattern, varied enough not to be all zeros; its first bytes make it look like an ELF file. */
const pattern = Buffer.alloc(MiB);
for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 31 + (i >> 9)) & 0xff;
pattern.write('\x7fELF', 0, 'latin1');
// The Go build information magic at unaligned offsets: the detector must look at it and go on.
for (let at = 4099; at < MiB; at += 65_536) pattern.write('\xff Go buildinf:', at, 'latin1');

/**
 * Go build information (Go >= 1.18 layout) padded to a multiple of 16 bytes, to end a file with: found only by
 * a detector that read the file to its end.
 */
function goBuildInfo(goVersion: string, modinfo: string): Buffer {
  const header = Buffer.alloc(32);
  header.write('\xff Go buildinf:\x08\x02', 0, 'latin1');
  const version = Buffer.from(goVersion);
  const mod = Buffer.from(modinfo);
  // Both lengths are below 128: one-byte varints.
  const blob = Buffer.concat([
    header,
    Buffer.from([version.length]),
    version,
    Buffer.from([mod.length]),
    mod,
  ]);
  return Buffer.concat([blob, Buffer.alloc((16 - (blob.length % 16)) % 16)]);
}

/** `size` bytes of the pattern, in fresh chunks (as a stream delivers them), the last ones replaced by `tail`. */
function* body(size: number, tail?: Buffer): Generator<Buffer> {
  for (let offset = 0; offset < size; offset += CHUNK) {
    const length = Math.min(CHUNK, size - offset);
    const chunk = Buffer.allocUnsafe(length);
    const start = offset % MiB;
    // `CHUNK` divides a MiB: a chunk never wraps around the pattern.
    pattern.copy(chunk, 0, start, start + length);
    if (tail && offset + length === size) tail.copy(chunk, length - tail.length);
    yield chunk;
  }
}

function* file(name: string, size: number, mode = 0o644, tail?: Buffer): Generator<Buffer> {
  yield ustarHeader(name, size, '0', mode);
  yield* body(size, tail);
  const padding = (512 - (size % 512)) % 512;
  if (padding > 0) yield Buffer.alloc(padding);
}

/** A zip local file header (CRC left 0: the reader does not check it). */
function localHeader(name: string, method: number, flags: number, compressed: number, size: number): Buffer {
  const header = Buffer.alloc(30);
  header.writeUInt32LE(0x04034b50, 0);
  header.writeUInt16LE(20, 4);
  header.writeUInt16LE(flags, 6);
  header.writeUInt16LE(method, 8);
  header.writeUInt32LE(compressed, 18);
  header.writeUInt32LE(size, 22);
  header.writeUInt16LE(Buffer.byteLength(name), 26);
  return Buffer.concat([header, Buffer.from(name)]);
}

/**
 * A web archive of `size` bytes, generated as it streams: a large stored entry, then a nested jar (stored)
 * with its pom.properties, then the war's own pom.properties deflated with a data descriptor.
 */
function* war(name: string, size: number): Generator<Buffer> {
  const pom = (group: string, artifact: string, version: string): Buffer =>
    Buffer.from(`groupId=${group}\nartifactId=${artifact}\nversion=${version}\n`);
  const innerPom = pom('org.acme', 'inner', '0.9.0');
  const innerName = 'META-INF/maven/org.acme/inner/pom.properties';
  const nested = Buffer.concat([localHeader(innerName, 0, 0, innerPom.length, innerPom.length), innerPom]);
  const ownPom = pom('org.acme', 'webapp', '3.1.0');
  const deflated = zlib.deflateRawSync(ownPom);
  const descriptor = Buffer.alloc(16);
  descriptor.writeUInt32LE(0x08074b50, 0);
  descriptor.writeUInt32LE(deflated.length, 8);
  descriptor.writeUInt32LE(ownPom.length, 12);
  const tail = Buffer.concat([
    localHeader('WEB-INF/lib/inner.jar', 0, 0, nested.length, nested.length),
    nested,
    localHeader('META-INF/maven/org.acme/webapp/pom.properties', 8, 8, 0, 0),
    deflated,
    descriptor,
  ]);
  const bigName = 'WEB-INF/data/big.bin';
  const big = size - tail.length - 30 - bigName.length;
  yield ustarHeader(name, size, '0');
  yield localHeader(bigName, 0, 0, big, big);
  yield* body(big);
  yield tail;
  const padding = (512 - (size % 512)) % 512;
  if (padding > 0) yield Buffer.alloc(padding);
}

function* small(name: string, content: string): Generator<Buffer> {
  const body = Buffer.from(content);
  yield ustarHeader(name, body.length, '0');
  yield padded(body);
}

/** The tar stream of a layer of `total` bytes of file content (a whole number of MiB), in chunks. */
function* layerChunks(total: number): Generator<Buffer> {
  yield* small('etc/os-release', 'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n');
  // A quarter as one executable whose Go build information is in its last bytes (so the detector has to
  // stream all of it), the rest as unwanted files of 128 MiB at most.
  const executable = Math.floor(total / 4 / MiB) * MiB;
  yield* file(
    'usr/local/bin/huge-tool',
    executable,
    0o755,
    goBuildInfo('go1.22.3', 'path\texample.com/huge\nmod\texample.com/huge\tv0.3.1\t\n'),
  );
  // Then a web archive of an eighth (128 MiB of a GiB), streamed through its entries.
  const archive = Math.max(MiB, Math.floor(total / 8 / MiB) * MiB);
  yield* war('srv/app/app.war', archive);
  let left = total - executable - archive;
  for (let i = 0; left > 0; i++) {
    const size = Math.min(128 * MiB, left);
    yield* file(`srv/data/blob-${i}.bin`, size);
    left -= size;
  }
  yield* small(
    'var/lib/dpkg/status',
    'Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4+deb12u5\n\n' +
      'Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\n',
  );
  yield* small(
    'srv/app/package-lock.json',
    JSON.stringify({ lockfileVersion: 3, packages: { 'node_modules/left-pad': { version: '1.3.0' } } }),
  );
  yield Buffer.alloc(1024);
}

/** A generated layer: its uncompressed tar stream and how many bytes of it were produced so far. */
export interface LargeLayer {
  readonly stream: Readable;
  /** Bytes of tar generated so far (the whole layer once `stream` has ended). */
  generated(): number;
}

/**
 * An uncompressed tar layer of about `mib` MiB (rounded to whole MiB; at least 4 MiB gives a non-empty
 * executable), produced as it is read, in 256 KiB chunks. Its inventory is {@link LARGE_LAYER_PACKAGES}.
 */
export function largeLayer(mib: number): LargeLayer {
  const total = Math.max(0, Math.round(mib)) * MiB;
  let generated = 0;
  async function* counted(): AsyncGenerator<Buffer> {
    for (const chunk of layerChunks(total)) {
      generated += chunk.length;
      yield chunk;
    }
  }
  return {
    stream: Readable.from(counted(), { objectMode: false, highWaterMark: CHUNK }),
    generated: () => generated,
  };
}
