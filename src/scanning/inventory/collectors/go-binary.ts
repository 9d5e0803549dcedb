/**
 * Go modules compiled into executables, from the build information the Go linker embeds (Go 1.18 and later):
 * a 32-byte header starting `\xff Go buildinf:` at a 16-byte aligned offset, followed by the Go version and
 * the module information as length-prefixed strings. Executables are streamed: only the header and the two
 * strings are kept.
 */
import { purl } from '../purl.ts';
import type { Collector, Package } from '../types.ts';

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
const BUILDINFO_MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');
const HEADER_SIZE = 32;
/** Flag of the header's 16th byte: version and modinfo follow inline (Go >= 1.18), not as pointers. */
const FLAG_INLINE = 0x2;
/** Cap on what is kept after the magic: real module information is tens of KiB. */
const MAX_CAPTURE = 1024 * 1024;
/** Marks a summary as this collector's in the shared map of files. */
const SUMMARY_TAG = 'go-buildinfo\n';

/** The build information of a Go executable. */
export interface GoBuildInfo {
  /** The toolchain, e.g. `go1.21.5` (possibly with a suffix such as ` X:boringcrypto`). */
  readonly goVersion: string;
  /** The module information text (`path`, `mod`, `dep`, `=>`, `build` lines), sentinels removed. */
  readonly modinfo: string;
}

/** An unsigned LEB128 varint (Go's `binary.Uvarint`) at `pos`: [value, next position], or null. */
function uvarint(bytes: Buffer, pos: number): [number, number] | null {
  let value = 0;
  let scale = 1;
  for (let i = pos; i < bytes.length && i < pos + 8; i++) {
    const byte = bytes[i]!;
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) return [value, i + 1];
    scale *= 128;
  }
  return null;
}

/**
 * Parses the build information that starts at `bytes[0]` (the magic). `complete`: false when more bytes are
 * needed; `info`: null when these bytes are not inline build information (pre-1.18 pointer format, garbage).
 */
export function parseBuildInfo(bytes: Buffer): { complete: boolean; info: GoBuildInfo | null } {
  if (bytes.length < HEADER_SIZE + 2) return { complete: false, info: null };
  if (!bytes.subarray(0, BUILDINFO_MAGIC.length).equals(BUILDINFO_MAGIC))
    return { complete: true, info: null };
  if ((bytes[15]! & FLAG_INLINE) === 0) return { complete: true, info: null };
  const versionLength = uvarint(bytes, HEADER_SIZE);
  if (!versionLength) return { complete: bytes.length < HEADER_SIZE + 8, info: null };
  const versionEnd = versionLength[1] + versionLength[0];
  if (versionEnd > MAX_CAPTURE) return { complete: true, info: null };
  const modLength = versionEnd < bytes.length ? uvarint(bytes, versionEnd) : null;
  if (!modLength) return { complete: bytes.length >= versionEnd + 8, info: null };
  const modEnd = modLength[1] + modLength[0];
  if (modEnd > MAX_CAPTURE) return { complete: true, info: null };
  if (bytes.length < modEnd) return { complete: false, info: null };
  const goVersion = bytes.toString('utf8', versionLength[1], versionEnd);
  let mod = bytes.subarray(modLength[1], modEnd);
  // The linker wraps modinfo in two 16-byte sentinels (as debug/buildinfo strips them).
  if (mod.length >= 33 && mod[mod.length - 17] === 0x0a) mod = mod.subarray(16, mod.length - 16);
  if (!goVersion.startsWith('go')) return { complete: true, info: null };
  return { complete: true, info: { goVersion, modinfo: mod.toString('utf8') } };
}

/**
 * Finds aligned build information in a file fed to it chunk by chunk: scans each chunk (and the seam with the
 * one before) for the magic at a 16-byte aligned file offset, then captures from there until the header and
 * both strings are in. A false hit (the magic followed by something else) is dropped and the captured bytes
 * after it scanned again. Holds at most `MAX_CAPTURE` bytes plus a chunk.
 */
class BuildInfoScanner {
  /** File offset of the next byte to be scanned. */
  private offset = 0;
  /** The last bytes scanned (fewer than the magic), for a magic across two chunks. */
  private tail = Buffer.alloc(0);
  /** The bytes from an aligned magic on, while it is being captured. */
  private capture: Buffer | null = null;

  /** Feeds the next bytes of the file; the build information once found, else null. */
  feed(chunk: Buffer): GoBuildInfo | null {
    let pending: Buffer | null = chunk;
    while (pending) {
      const data: Buffer = pending;
      pending = null;
      if (this.capture) {
        this.capture = Buffer.concat([this.capture, data]);
        this.offset += data.length;
      } else {
        const overlap = BUILDINFO_MAGIC.length - 1;
        const before = this.offset;
        const previous = this.tail;
        const seam = Buffer.concat([previous, data.subarray(0, overlap)]);
        const found = alignedMagic(seam, before - previous.length) ?? alignedMagic(data, before);
        // The chunk itself is not copied on this path, the hot one: executables are scanned whole.
        this.tail = Buffer.from(
          data.length >= overlap
            ? data.subarray(data.length - overlap)
            : Buffer.concat([previous, data]).subarray(Math.max(0, previous.length + data.length - overlap)),
        );
        this.offset += data.length;
        if (found === null) continue;
        this.capture =
          found >= before
            ? Buffer.from(data.subarray(found - before))
            : Buffer.concat([previous.subarray(found - (before - previous.length)), data]);
      }
      const parsed = parseBuildInfo(this.capture);
      if (parsed.info) return parsed.info;
      if (!parsed.complete && this.capture.length <= MAX_CAPTURE + HEADER_SIZE + 32) continue;
      // Not build information: scan what follows the false magic as fresh bytes.
      const rest = this.capture.subarray(1);
      this.capture = null;
      this.tail = Buffer.alloc(0);
      this.offset -= rest.length;
      pending = rest;
    }
    return null;
  }

  /** At the end of the file: what a capture in progress holds, if anything. */
  finish(): GoBuildInfo | null {
    return this.capture ? parseBuildInfo(this.capture).info : null;
  }
}

/** The file offset of the first 16-byte aligned magic in `bytes` (at file offset `base`), or null. */
function alignedMagic(bytes: Buffer, base: number): number | null {
  for (let at = bytes.indexOf(BUILDINFO_MAGIC); at !== -1; at = bytes.indexOf(BUILDINFO_MAGIC, at + 1)) {
    if ((base + at) % 16 === 0) return base + at;
  }
  return null;
}

/**
 * Reads a streamed file and returns its Go build information, or null when it is not an ELF file or carries
 * none (readable). Stops reading at the build information, or at once when the file is not ELF. Rejects only
 * with the errors of iterating `body`.
 */
export async function scanGoBinary(body: AsyncIterable<Buffer>): Promise<GoBuildInfo | null> {
  let head = Buffer.alloc(0); // the first bytes, until the ELF magic is checked
  const scanner = new BuildInfoScanner();
  for await (const chunk of body) {
    if (head.length < ELF_MAGIC.length) {
      head = Buffer.concat([head, chunk.subarray(0, ELF_MAGIC.length - head.length)]);
      if (head.length >= ELF_MAGIC.length && !head.equals(ELF_MAGIC)) return null;
    }
    const info = scanner.feed(chunk);
    if (info) return info;
  }
  return head.equals(ELF_MAGIC) ? scanner.finish() : null;
}

/** One module of the module information: path and version (after any `=>` replacement). */
export interface GoModule {
  readonly path: string;
  readonly version: string;
}

/**
 * Parses module information text: `path` (the main package), `mod` (the main module), `dep` (each dependency)
 * and `=>` (a replacement of the line before). Dependencies replaced by a local directory (no version) are left
 * out, their version being unknown.
 */
export function parseModinfo(modinfo: string): {
  path: string | null;
  main: GoModule | null;
  deps: GoModule[];
} {
  let path: string | null = null;
  let main: GoModule | null = null;
  const deps: (GoModule | null)[] = [];
  let last: 'main' | 'dep' | null = null;
  for (const line of modinfo.split('\n')) {
    const fields = line.split('\t');
    const [kind, modPath = '', version = ''] = fields;
    if (kind === 'path') {
      path = modPath || null;
      last = null;
    } else if (kind === 'mod' && modPath) {
      main = { path: modPath, version };
      last = 'main';
    } else if (kind === 'dep' && modPath) {
      deps.push(version ? { path: modPath, version } : null);
      last = 'dep';
    } else if (kind === '=>' && last) {
      const replaced = modPath && version ? { path: modPath, version } : null;
      if (last === 'main') main = replaced;
      else deps[deps.length - 1] = replaced;
      last = null;
    } else {
      last = null;
    }
  }
  return { path, main, deps: deps.filter((dep): dep is GoModule => dep !== null) };
}

/**
 * The stdlib version as OSV's Go ecosystem writes it: `go1.21.5` -> `1.21.5`, `go1.20` -> `1.20.0`,
 * `go1.22rc1` -> `1.22.0-rc.1`; null for a toolchain string that is not a release (`devel +abc`).
 */
export function stdlibVersion(goVersion: string): string | null {
  const m = /^go(\d+)\.(\d+)(?:\.(\d+))?(?:(rc|beta)(\d+))?(?:$|[\s-+])/.exec(goVersion);
  if (!m) return null;
  const base = `${m[1]}.${m[2]}.${m[3] ?? '0'}`;
  return m[4] ? `${base}-${m[4]}.${m[5]}` : base;
}

function goPurl(path: string, version: string): string {
  const slash = path.lastIndexOf('/');
  return slash === -1
    ? purl('golang', null, path, version)
    : purl('golang', path.slice(0, slash), path.slice(slash + 1), version);
}

/** The packages of one binary's build information, found at `location`. */
export function goPackages(info: GoBuildInfo, location: string): Package[] {
  const out: Package[] = [];
  const { main, deps } = parseModinfo(info.modinfo);
  const add = (name: string, version: string, packagePurl: string): void => {
    out.push({ ecosystem: 'Go', name, version, purl: packagePurl, locations: [location] });
  };
  if (main && main.version && main.version !== '(devel)')
    add(main.path, main.version, goPurl(main.path, main.version));
  for (const dep of deps) add(dep.path, dep.version, goPurl(dep.path, dep.version));
  const std = stdlibVersion(info.goVersion);
  if (std) add('stdlib', std, purl('golang', null, 'stdlib', std));
  return out;
}

/** The Go binary collector: every executable regular file is streamed and checked for build information. */
export const goBinaryCollector: Collector = {
  name: 'go-binary',
  wants: () => false,
  wantsStream: (_path, mode) => (mode & 0o111) !== 0,
  async extract(_path, _mode, body) {
    const info = await scanGoBinary(body);
    return info ? Buffer.from(SUMMARY_TAG + JSON.stringify(info)) : null;
  },
  collect(files) {
    const out: Package[] = [];
    const tag = Buffer.from(SUMMARY_TAG);
    for (const [path, content] of files) {
      if (!content.subarray(0, tag.length).equals(tag)) continue;
      try {
        const info = JSON.parse(content.toString('utf8', tag.length)) as Partial<GoBuildInfo>;
        if (typeof info.goVersion !== 'string' || typeof info.modinfo !== 'string') continue;
        out.push(...goPackages({ goVersion: info.goVersion, modinfo: info.modinfo }, path));
      } catch {
        continue;
      }
    }
    return out;
  },
};
