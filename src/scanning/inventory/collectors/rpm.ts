/**
 * rpm packages from the SQLite rpm database (rpm >= 4.16: RHEL 9 and its rebuilds, Fedora 33+, openSUSE and
 * SLE 15 SP4+): `var/lib/rpm/rpmdb.sqlite`, or `usr/lib/sysimage/rpm/rpmdb.sqlite` where the distribution moved
 * it. Each row of its `Packages` table is an rpm header blob. (The older Berkeley DB `Packages` and the ndb
 * `Packages.db` formats are not read.)
 */
import { createRequire } from 'node:module';
import type BetterSqlite3Type from 'better-sqlite3';
import { distroQualifier, purl } from '../purl.ts';
import type { Collector, Ecosystem, OsInfo, Package } from '../types.ts';

const DATABASES = ['var/lib/rpm/rpmdb.sqlite', 'usr/lib/sysimage/rpm/rpmdb.sqlite'];
/** Real databases are 5 to 20 MiB (a full server install approaches 100 MiB of headers only rarely). */
const MAX_DATABASE_BYTES = 64 * 1024 * 1024;

/** Header tags read here (rpmtag.h). */
export const RPMTAG = {
  NAME: 1000,
  VERSION: 1001,
  RELEASE: 1002,
  EPOCH: 1003,
  ARCH: 1022,
  SOURCERPM: 1044,
} as const;

const TYPE_INT32 = 4;
const TYPE_STRING = 6;
const TYPE_STRING_ARRAY = 8;
const TYPE_I18NSTRING = 9;
/** Sanity caps of a header: rpm itself refuses more than 0xffff entries or 256 MiB of data. */
const MAX_ENTRIES = 0xffff;

/** The fields of one rpm header that matter here; absent fields are null. */
export interface RpmHeader {
  readonly name: string | null;
  readonly version: string | null;
  readonly release: string | null;
  readonly epoch: number | null;
  readonly arch: string | null;
  readonly sourceRpm: string | null;
}

/**
 * Parses an rpm header blob as rpmdb stores it (no leading magic): index entry count and data size (32-bit
 * big-endian), the 16-byte index entries (tag, type, offset, count), then the data store. Returns null for a
 * blob that is not a well-formed header; fields whose entry is missing or malformed are null.
 */
export function parseRpmHeader(blob: Buffer): RpmHeader | null {
  if (blob.length < 8) return null;
  const count = blob.readUInt32BE(0);
  const dataLength = blob.readUInt32BE(4);
  if (count > MAX_ENTRIES) return null;
  const dataStart = 8 + count * 16;
  if (dataStart + dataLength > blob.length) return null;
  const data = blob.subarray(dataStart, dataStart + dataLength);
  const strings = new Map<number, string>();
  const ints = new Map<number, number>();
  for (let i = 0; i < count; i++) {
    const at = 8 + i * 16;
    const tag = blob.readUInt32BE(at);
    const type = blob.readUInt32BE(at + 4);
    const offset = blob.readUInt32BE(at + 8);
    const n = blob.readUInt32BE(at + 12);
    if (offset >= data.length || n === 0) continue;
    if (type === TYPE_STRING || type === TYPE_STRING_ARRAY || type === TYPE_I18NSTRING) {
      const end = data.indexOf(0, offset);
      if (end !== -1) strings.set(tag, data.toString('utf8', offset, end));
    } else if (type === TYPE_INT32 && offset + 4 <= data.length) {
      ints.set(tag, data.readUInt32BE(offset));
    }
  }
  return {
    name: strings.get(RPMTAG.NAME) ?? null,
    version: strings.get(RPMTAG.VERSION) ?? null,
    release: strings.get(RPMTAG.RELEASE) ?? null,
    epoch: ints.get(RPMTAG.EPOCH) ?? null,
    arch: strings.get(RPMTAG.ARCH) ?? null,
    sourceRpm: strings.get(RPMTAG.SOURCERPM) ?? null,
  };
}

/** `bash-5.1.8-6.el9.src.rpm` -> name `bash`, version-release `5.1.8-6.el9`; null when it is not so named. */
export function parseSourceRpm(file: string): { name: string; versionRelease: string } | null {
  const m = /^(.+)-([^-]+)-([^-]+)\.(?:no)?src\.rpm$/.exec(file);
  return m ? { name: m[1]!, versionRelease: `${m[2]}-${m[3]}` } : null;
}

/** The OSV ecosystem and purl namespace of an rpm-based OS, from os-release `ID` (then `ID_LIKE`). */
export function rpmFlavour(os: OsInfo | null): { ecosystem: Ecosystem; namespace: string } {
  const byId = (id: string): { ecosystem: Ecosystem; namespace: string } | null => {
    if (id === 'rhel') return { ecosystem: 'Red Hat', namespace: 'redhat' };
    if (id === 'rocky') return { ecosystem: 'Rocky Linux', namespace: 'rocky' };
    if (id === 'almalinux') return { ecosystem: 'AlmaLinux', namespace: 'almalinux' };
    if (id === 'opensuse' || id.startsWith('opensuse-'))
      return { ecosystem: 'openSUSE', namespace: 'opensuse' };
    if (id === 'sles' || id === 'sled' || id.startsWith('sle-') || id === 'suse')
      return { ecosystem: 'SUSE', namespace: 'suse' };
    return null;
  };
  if (os) {
    const own = byId(os.id);
    if (own) return own;
    // Other rpm distributions (CentOS, Fedora, Oracle Linux, Amazon Linux...) have no OSV ecosystem of their
    // own: they are reported under the closest one, Red Hat's, with their own purl namespace.
    for (const like of os.idLike) {
      const flavour = byId(like);
      if (flavour) return { ecosystem: flavour.ecosystem, namespace: os.id };
    }
    return { ecosystem: 'Red Hat', namespace: os.id };
  }
  return { ecosystem: 'Red Hat', namespace: 'redhat' };
}

let binding: typeof BetterSqlite3Type | undefined;

/**
 * The SQLite binding for this Node.js, loaded on first use (as `src/metadata/dialects.ts` picks it: the
 * Node-API build `better-sqlite3-napi` on Node >= 22, `better-sqlite3` before).
 */
function sqlite(): typeof BetterSqlite3Type {
  binding ??= createRequire(import.meta.url)(
    Number(process.versions.node.split('.')[0]) >= 22 ? 'better-sqlite3-napi' : 'better-sqlite3',
  ) as typeof BetterSqlite3Type;
  return binding;
}

/**
 * The header blobs of the `Packages` table of an rpmdb.sqlite file's bytes; empty when the bytes are not such
 * a database. The database is opened in memory (SQLite copies the bytes), never on disk; `file` is left as it
 * was.
 */
export function readRpmdbHeaders(file: Buffer): Buffer[] {
  if (file.length < 100 || file.toString('latin1', 0, 16) !== 'SQLite format 3\0') return [];
  // rpm keeps its database in WAL mode (header bytes 18 and 19 = 2); an in-memory database cannot use a WAL,
  // so it is opened as a rollback-journal database, which reads the same pages. The two bytes are changed
  // only while SQLite copies the buffer (synchronously), sparing a copy of a file of tens of MiB.
  const [read, write] = [file[18]!, file[19]!];
  let db: BetterSqlite3Type.Database | undefined;
  try {
    if (read === 2) file[18] = 1;
    if (write === 2) file[19] = 1;
    try {
      db = new (sqlite())(file);
    } finally {
      file[18] = read;
      file[19] = write;
    }
    const rows = db.prepare('SELECT blob FROM Packages ORDER BY hnum').raw().all() as unknown[][];
    return rows.map((row) => row[0]).filter((blob): blob is Buffer => Buffer.isBuffer(blob));
  } catch {
    return [];
  } finally {
    db?.close();
  }
}

/** The packages of one rpm database file. */
function packagesOf(file: Buffer, location: string, os: OsInfo | null): Package[] {
  const { ecosystem, namespace } = rpmFlavour(os);
  const distro = distroQualifier(os);
  const out: Package[] = [];
  for (const blob of readRpmdbHeaders(file)) {
    const header = parseRpmHeader(blob);
    if (!header?.name || !header.version || !header.release) continue;
    // The imported signing keys are pseudo-packages of the database, not software.
    if (header.name === 'gpg-pubkey') continue;
    const versionRelease = `${header.version}-${header.release}`;
    const version = header.epoch !== null ? `${header.epoch}:${versionRelease}` : versionRelease;
    const source = header.sourceRpm ? parseSourceRpm(header.sourceRpm) : null;
    out.push({
      ecosystem,
      name: header.name,
      version,
      ...(source
        ? {
            sourceName: source.name,
            sourceVersion:
              header.epoch !== null ? `${header.epoch}:${source.versionRelease}` : source.versionRelease,
          }
        : {}),
      // purl-spec: the epoch is a qualifier of rpm purls, not part of the version.
      purl: purl('rpm', namespace, header.name, versionRelease, {
        arch: header.arch,
        epoch: header.epoch !== null ? String(header.epoch) : null,
        distro,
        upstream: header.sourceRpm,
      }),
      locations: [location],
    });
  }
  return out;
}

/** The rpm collector. */
export const rpmCollector: Collector = {
  name: 'rpm',
  wants: (path) => DATABASES.includes(path),
  maxFileBytes: (path) => (DATABASES.includes(path) ? MAX_DATABASE_BYTES : undefined),
  collect(files, os) {
    const out: Package[] = [];
    for (const path of DATABASES) {
      const content = files.get(path);
      if (content) out.push(...packagesOf(content, path, os));
    }
    return out;
  },
};
