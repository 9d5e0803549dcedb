/**
 * Imports OSV records into the vulnerability database: from an OSV `all.zip` (the archive osv.dev publishes per
 * ecosystem, one `<ID>.json` per advisory), a directory of OSV JSON files (searched recursively), one JSON file
 * (a record or an array of records), or any (async) iterable of records (the admin API's JSON body).
 *
 * Incremental: a record whose `modified` is not later than the stored one's is counted unchanged and not
 * written. Withdrawn records are stored with their `withdrawn` time and stop matching. Records are written in
 * batches ({@link DEFAULT_BATCH_SIZE} records, or fewer when large), each batch one transaction: an interrupted
 * import leaves every committed batch and nothing half-written. A record that is not valid OSV is counted and
 * passed over, never aborting the import. Memory stays bounded: one batch, and one archive entry or file, at a
 * time. The source's import state (`VulnDbStore.recordImport`) is written when the import completes.
 */
import type { Dirent } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { OsvError, parseAdvisory, type Advisory } from '../osv.ts';
import {
  keyString,
  type AffectedKey,
  type NewAdvisory,
  type PackageKey,
  type VulnDbStore,
} from '../../metadata/vulndb-store.ts';
import { normalPackageName } from './package-key.ts';
import { readZip } from './zip-reader.ts';

export { ZipError } from './zip-reader.ts';

/** Records per transaction. */
export const DEFAULT_BATCH_SIZE = 500;
/** Bytes of stored records per transaction, whatever their number (Debian records list thousands of versions). */
const MAX_BATCH_BYTES = 16 * 1024 * 1024;
/** The largest single record (one archive entry or one file of a directory). */
const MAX_RECORD_BYTES = 64 * 1024 * 1024;
/** The largest JSON file read whole (a record or an array of them). */
const MAX_JSON_FILE_BYTES = 512 * 1024 * 1024;
/** Invalid records described in the summary (all are counted). */
export const MAX_INVALID_SAMPLES = 10;

/** A record passed over, and why. */
export interface InvalidRecord {
  /** The archive entry or file it came from, or its position (`#3`) in a list of records. */
  readonly entry: string;
  /** Its `id` when it has a string one. */
  readonly id: string | null;
  readonly reason: string;
}

/** What an import did. */
export interface ImportSummary {
  /** Where the records came from, as recorded in the import state. */
  readonly source: string;
  readonly added: number;
  readonly updated: number;
  readonly unchanged: number;
  /** Records passed over as not valid OSV (or unreadable entries). */
  readonly invalid: number;
  /** The first {@link MAX_INVALID_SAMPLES} of them. */
  readonly invalidSamples: readonly InvalidRecord[];
  /** The database revision when the import ended. */
  readonly revision: number;
  /**
   * The packages whose advisories changed (named by an added or updated advisory, before or after the update),
   * sorted by ecosystem then name: the images holding one of them need a new scan.
   */
  readonly changed: readonly PackageKey[];
}

export interface ImportOptions {
  /** Name recorded in the import state; default: the file or directory's base name, `records` for iterables. */
  readonly source?: string;
  /** Records per transaction (default {@link DEFAULT_BATCH_SIZE}). */
  readonly batchSize?: number;
}

/** What `importRecords` consumes: a record's text or parsed JSON, where it came from, or why it could not be read. */
type Item =
  | { readonly entry: string; readonly value: unknown; readonly error?: undefined }
  | { readonly entry: string; readonly error: string; readonly value?: undefined };

const RATING_KEYS = ['severity', 'urgency', 'ubuntu_priority'];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The rating words of a `*_specific` object, nothing else (they can be large and matching never reads them). */
function ratingsOnly(v: unknown): Record<string, unknown> | undefined {
  if (!isObject(v)) return undefined;
  const out: Record<string, unknown> = {};
  for (const k of RATING_KEYS) if (typeof v[k] === 'string') out[k] = v[k];
  return Object.keys(out).length === 0 ? undefined : out;
}

/**
 * The record as stored: what parsing and matching read (`details` dropped, `summary` as truncated by the parser,
 * GIT ranges dropped, ecosystem- and database-specific objects reduced to their rating words). Parsing it again
 * gives the same advisory but for `details`.
 */
export function trimRecord(raw: Record<string, unknown>, advisory: Advisory): Record<string, unknown> {
  const affected = Array.isArray(raw.affected) ? raw.affected : [];
  return {
    id: advisory.id,
    modified: advisory.modified,
    ...(advisory.published !== null ? { published: advisory.published } : {}),
    ...(advisory.withdrawn !== null ? { withdrawn: advisory.withdrawn } : {}),
    aliases: advisory.aliases,
    ...(advisory.upstream.length > 0 ? { upstream: advisory.upstream } : {}),
    ...(advisory.summary !== null ? { summary: advisory.summary } : {}),
    ...(Array.isArray(raw.severity) ? { severity: raw.severity } : {}),
    affected: affected.filter(isObject).map((a) => {
      const ranges = Array.isArray(a.ranges)
        ? a.ranges.filter((r) => isObject(r) && r.type !== 'GIT')
        : undefined;
      const eco = ratingsOnly(a.ecosystem_specific);
      const db = ratingsOnly(a.database_specific);
      return {
        ...(a.package !== undefined ? { package: a.package } : {}),
        ...(ranges !== undefined && ranges.length > 0 ? { ranges } : {}),
        ...(Array.isArray(a.versions) && a.versions.length > 0 ? { versions: a.versions } : {}),
        ...(Array.isArray(a.severity) ? { severity: a.severity } : {}),
        ...(eco !== undefined ? { ecosystem_specific: eco } : {}),
        ...(db !== undefined ? { database_specific: db } : {}),
      };
    }),
    references: advisory.references,
    ...(ratingsOnly(raw.database_specific) !== undefined
      ? { database_specific: ratingsOnly(raw.database_specific) }
      : {}),
  };
}

/** The packages `advisory` names, as the index stores them. */
function affectedKeys(advisory: Advisory): AffectedKey[] {
  const keys: AffectedKey[] = [];
  for (const a of advisory.affected) {
    if (a.package === null) continue;
    keys.push({
      ecosystem: a.package.base,
      release: a.package.release ?? '',
      name: normalPackageName(a.package.base, a.package.name),
    });
  }
  return keys;
}

function idOf(value: unknown): string | null {
  if (isObject(value) && typeof value.id === 'string') return value.id.slice(0, 200);
  return null;
}

/**
 * Imports `items` (records as JSON text, Buffers or parsed values, or {@link Item}s from the readers below) into
 * `store`. Throws only what the store or the item source throws; invalid records are counted.
 */
async function importItems(
  store: VulnDbStore,
  items: AsyncIterable<Item>,
  source: string,
  batchSize: number,
): Promise<ImportSummary> {
  let added = 0;
  let updated = 0;
  let unchanged = 0;
  let invalid = 0;
  const invalidSamples: InvalidRecord[] = [];
  const changed = new Map<string, PackageKey>();
  let revision = await store.revision();
  let batch: NewAdvisory[] = [];
  let batchBytes = 0;

  const reject = (entry: string, id: string | null, reason: string): void => {
    invalid++;
    if (invalidSamples.length < MAX_INVALID_SAMPLES) invalidSamples.push({ entry, id, reason });
  };
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const result = await store.writeBatch(batch, source);
    batch = [];
    batchBytes = 0;
    added += result.added;
    updated += result.updated;
    unchanged += result.unchanged;
    revision = result.revision;
    for (const k of result.changed) changed.set(keyString(k), k);
  };

  for await (const item of items) {
    if (item.error !== undefined) {
      reject(item.entry, null, item.error);
      continue;
    }
    let value = item.value;
    if (typeof value === 'string' || Buffer.isBuffer(value)) {
      try {
        value = JSON.parse(value.toString('utf8')) as unknown;
      } catch (e) {
        reject(item.entry, null, `not JSON: ${(e as Error).message}`);
        continue;
      }
    }
    let advisory: Advisory;
    try {
      advisory = parseAdvisory(value);
    } catch (e) {
      if (!(e instanceof OsvError)) throw e;
      reject(item.entry, idOf(value), e.message);
      continue;
    }
    const record = JSON.stringify(trimRecord(value as Record<string, unknown>, advisory));
    batch.push({
      id: advisory.id,
      modified: advisory.modified,
      published: advisory.published,
      withdrawn: advisory.withdrawn,
      summary: advisory.summary,
      record,
      affected: affectedKeys(advisory),
    });
    batchBytes += record.length;
    if (batch.length >= batchSize || batchBytes >= MAX_BATCH_BYTES) await flush();
  }
  await flush();
  await store.recordImport({ source, added, updated, unchanged, invalid, revision });
  const sorted = [...changed.values()].sort((a, b) =>
    a.ecosystem !== b.ecosystem
      ? a.ecosystem < b.ecosystem
        ? -1
        : 1
      : a.name < b.name
        ? -1
        : a.name > b.name
          ? 1
          : 0,
  );
  return { source, added, updated, unchanged, invalid, invalidSamples, revision, changed: sorted };
}

async function* zipItems(file: string): AsyncGenerator<Item> {
  for await (const content of readZip(file, {
    want: (name) => name.toLowerCase().endsWith('.json'),
    maxEntrySize: MAX_RECORD_BYTES,
  })) {
    if (content.error !== undefined) yield { entry: content.entry.name, error: content.error };
    else yield { entry: content.entry.name, value: content.data };
  }
}

/** `.json` files under `dir`, depth first in name order (symbolic links are not followed). */
async function* directoryFiles(dir: string): AsyncGenerator<string> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    // The top directory's failure reaches the caller through stat; a subdirectory vanishing mid-import does not.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* directoryFiles(full);
    else if (entry.isFile() && entry.name.toLowerCase().endsWith('.json')) yield full;
  }
}

async function* directoryItems(dir: string): AsyncGenerator<Item> {
  for await (const file of directoryFiles(dir)) {
    const entry = path.relative(dir, file);
    try {
      const { size } = await stat(file);
      if (size > MAX_RECORD_BYTES) {
        yield { entry, error: `larger than ${MAX_RECORD_BYTES} bytes` };
        continue;
      }
      yield { entry, value: await readFile(file) };
    } catch (e) {
      yield { entry, error: `cannot read: ${(e as Error).message}` };
    }
  }
}

/** The records of one parsed JSON document: an array's elements, or the document itself. */
function* documentItems(value: unknown, name: string): Generator<Item> {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) yield { entry: `${name}#${i}`, value: value[i] };
  } else {
    yield { entry: name, value };
  }
}

async function* jsonFileItems(file: string): AsyncGenerator<Item> {
  const name = path.basename(file);
  const text = await readFile(file, 'utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    yield { entry: name, error: `not JSON: ${(e as Error).message}` };
    return;
  }
  yield* documentItems(value, name);
}

async function* iterableItems(records: AsyncIterable<unknown> | Iterable<unknown>): AsyncGenerator<Item> {
  let i = 0;
  for await (const value of records) yield { entry: `#${i++}`, value };
}

/** Imports an OSV `all.zip` at `file`. Throws `ZipError` when the archive itself is unreadable. */
export function importZip(
  store: VulnDbStore,
  file: string,
  options: ImportOptions = {},
): Promise<ImportSummary> {
  return importItems(store, zipItems(file), options.source ?? path.basename(file), batchSizeOf(options));
}

/** Imports every `.json` file under `dir` (recursively; other files are ignored). */
export function importDirectory(
  store: VulnDbStore,
  dir: string,
  options: ImportOptions = {},
): Promise<ImportSummary> {
  return importItems(
    store,
    directoryItems(dir),
    options.source ?? path.basename(path.resolve(dir)),
    batchSizeOf(options),
  );
}

/** Imports one JSON file holding a record or an array of records. */
export function importJsonFile(
  store: VulnDbStore,
  file: string,
  options: ImportOptions = {},
): Promise<ImportSummary> {
  return importItems(store, jsonFileItems(file), options.source ?? path.basename(file), batchSizeOf(options));
}

/** Imports records given as parsed JSON values or JSON texts (an array, a generator, a stream of parsed records). */
export function importRecords(
  store: VulnDbStore,
  records: AsyncIterable<unknown> | Iterable<unknown>,
  options: ImportOptions = {},
): Promise<ImportSummary> {
  return importItems(store, iterableItems(records), options.source ?? 'records', batchSizeOf(options));
}

/** What `importPath` found at a path. */
export type ImportKind = 'zip' | 'directory' | 'json';

/**
 * Imports whatever `target` is: a directory, a ZIP archive (by its signature, whatever its name) or a JSON file.
 * Throws the file system's error when `target` cannot be read, and a {@link ImportPathError} when it is neither a
 * directory nor a regular file or is too large a JSON file.
 */
export async function importPath(
  store: VulnDbStore,
  target: string,
  options: ImportOptions = {},
): Promise<ImportSummary & { kind: ImportKind }> {
  const info = await stat(target);
  if (info.isDirectory()) return { kind: 'directory', ...(await importDirectory(store, target, options)) };
  if (!info.isFile()) throw new ImportPathError(`${target} is neither a file nor a directory`);
  const head = Buffer.alloc(4);
  const fh = await open(target, 'r');
  try {
    await fh.read(head, 0, 4, 0);
  } finally {
    await fh.close();
  }
  if (head.readUInt16LE(0) === 0x4b50) return { kind: 'zip', ...(await importZip(store, target, options)) };
  if (info.size > MAX_JSON_FILE_BYTES) {
    throw new ImportPathError(`${target} is not a ZIP archive and too large a JSON file`);
  }
  return { kind: 'json', ...(await importJsonFile(store, target, options)) };
}

/** `importPath` was given something it cannot import. */
export class ImportPathError extends Error {
  readonly code = 'VULNDB_IMPORT_PATH';
  constructor(message: string) {
    super(message);
    this.name = 'ImportPathError';
  }
}

function batchSizeOf(options: ImportOptions): number {
  const n = options.batchSize ?? DEFAULT_BATCH_SIZE;
  return Number.isSafeInteger(n) && n > 0 ? n : DEFAULT_BATCH_SIZE;
}
