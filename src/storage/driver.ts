/**
 * The StorageDriver port: where blob bytes live. A driver knows nothing of repositories, manifests or
 * digests; it stores opaque objects under slash-separated keys (see `paths.ts` for the layout) and runs
 * resumable uploads whose bookkeeping the caller persists in metadata.
 *
 * Contract shared by every implementation (checked by `testing/driver-suite.ts`):
 * - Keys are relative, slash-separated, non-empty segments of `[A-Za-z0-9._-]`, never `.` or `..`;
 *   anything else throws `InvalidPathError` before touching storage.
 * - An object is visible either complete or not at all: no reader ever sees a partially written object.
 * - Nothing is buffered whole in memory: bodies are streamed.
 * - Upload handles are plain JSON (`UploadHandle`), so any process holding the same configuration can continue
 *   an upload another process started (several instances, restarts).
 */
import type { Readable } from 'node:stream';

export interface ObjectInfo {
  /** Size in bytes. */
  readonly size: number;
  /** Last modification time. */
  readonly modifiedAt: Date;
}

/** An inclusive byte range, `start <= end < size`. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/**
 * The JSON-serialisable state of one resumable upload. `id` is chosen by the driver; other fields are
 * driver-private (e.g. an S3 multipart upload id and part list). Callers store it verbatim and hand back the
 * latest value returned by the driver.
 */
export interface UploadHandle {
  readonly id: string;
  readonly [key: string]: unknown;
}

export interface UploadInfo {
  readonly handle: UploadHandle;
  readonly modifiedAt: Date;
}

/** What a caller knows about the object it reads, which a driver may use to read it faster. */
export interface ReadHints {
  /**
   * The caller guarantees the object's bytes never change while it exists (a content-addressed blob: a rewrite
   * holds the same bytes). A driver may then keep the object open between reads, so after another process deletes
   * it, reads may go on succeeding, with the same bytes, for a bounded time (seconds). Deletes and writes through
   * the same driver instance are seen at once.
   */
  readonly immutable?: boolean;
}

export interface StorageDriver {
  /** A short name for logs and metrics (`filesystem`, `s3`). */
  readonly name: string;

  /** Returns size and mtime of the object at `key`, or null when there is none. Never throws for absence. */
  stat(key: string): Promise<ObjectInfo | null>;

  /**
   * Opens a stream over the object at `key`, or over `range` of it. Throws `ObjectNotFoundError` when absent
   * and `RangeNotSatisfiableError` when `range.end >= size`. The stream ends after exactly the requested bytes.
   * `hints` may speed the read up; they never change what it returns while the caller's claims hold.
   */
  read(key: string, range?: ByteRange, hints?: ReadHints): Promise<Readable>;

  /**
   * Writes `body` as the object at `key`, atomically: until the returned promise resolves, readers see the old
   * object (or none); after it resolves, the new one, durably. If `body` errors, nothing is left behind.
   * Returns the number of bytes written.
   */
  put(key: string, body: Readable | Uint8Array): Promise<number>;

  /** Deletes the object at `key`; returns false when there was none. */
  delete(key: string): Promise<boolean>;

  /** Yields every object key below `prefix` (a directory-like prefix, `''` for all), in no particular order. */
  list(prefix: string): AsyncIterable<string>;

  /** Starts an empty resumable upload and returns its handle. */
  createUpload(): Promise<UploadHandle>;

  /**
   * Writes `body` into the upload starting at byte `offset`, which must be the size the caller recorded after the
   * previous append (0 for the first). Bytes past `offset` left by an earlier interrupted append are discarded.
   * Resolves with the new handle and the upload's total size once the bytes are stored; rejects (leaving
   * the upload valid at `offset`) if `body` errors. Throws `UploadNotFoundError` for an unknown handle.
   */
  appendUpload(
    handle: UploadHandle,
    offset: number,
    body: Readable,
  ): Promise<{ handle: UploadHandle; size: number }>;

  /** Streams bytes `[0, size)` of the upload (used to re-hash an upload continued elsewhere). */
  readUpload(handle: UploadHandle, size: number): Promise<Readable>;

  /**
   * Atomically turns bytes `[0, size)` of the upload into the object at `key` and forgets the upload. If an
   * object already exists at `key` (same content, content-addressed) it is kept and the upload is discarded.
   * Throws `UploadNotFoundError` when the upload is gone or holds fewer than `size` bytes.
   */
  commitUpload(handle: UploadHandle, size: number, key: string): Promise<void>;

  /** Discards the upload and its bytes. Idempotent: an unknown handle is not an error. */
  abortUpload(handle: UploadHandle): Promise<void>;

  /** Yields every upload the driver holds (including ones no session references any more, after a crash). */
  listUploads(): AsyncIterable<UploadInfo>;

  /**
   * Optional: a URL from which a client can GET the object at `key` directly (with Range support) for
   * `expiresSeconds`, without credentials. Drivers of storage that clients cannot reach leave it undefined.
   */
  presignedUrl?(key: string, expiresSeconds: number): Promise<string>;

  /**
   * Optional: how many bytes can still be written where the driver keeps its bytes (the free space of the
   * filesystem holding them, as an unprivileged writer may use it). Only drivers over a bounded local filesystem
   * have it; object storage leaves it undefined. The answer may be up to about a second old (so that callers on
   * request paths need not cache it); throws when the filesystem cannot be queried.
   */
  freeSpace?(): Promise<number>;

  /** Checks that the backend answers (readiness). Throws when it does not. */
  ping(): Promise<void>;

  /**
   * Checks that the storage takes writes, by writing a small probe object in the driver's upload area and removing
   * it again; run at start, so that storage that is read-only, full or misconfigured stops the process instead of
   * failing every push. Throws a `StorageError` saying where and why when the write or the removal fails. Leaves
   * nothing behind, except after a crash in the middle: the probe is then an upload no session owns, which
   * `listUploads` yields and the purge of orphaned uploads removes.
   */
  checkWritable(): Promise<void>;

  /** Releases resources (connections, handles). */
  close(): Promise<void>;
}

/** Base class of typed driver errors. */
export class StorageError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** No object at the key. */
export class ObjectNotFoundError extends StorageError {
  constructor(readonly key: string) {
    super(`object not found: ${key}`);
  }
}

/** A key outside the driver's grammar (traversal, absolute path, empty segment...). */
export class InvalidPathError extends StorageError {
  constructor(readonly key: string) {
    super(`invalid storage key: ${JSON.stringify(key)}`);
  }
}

/** The requested range does not fit in the object. */
export class RangeNotSatisfiableError extends StorageError {
  constructor(
    readonly key: string,
    readonly size: number,
  ) {
    super(`range not satisfiable for ${key} (size ${size})`);
  }
}

/** The upload does not exist (never did, was committed, aborted) or lacks the bytes the caller expects. */
export class UploadNotFoundError extends StorageError {
  constructor(
    readonly uploadId: string,
    reason = 'upload not found',
  ) {
    super(`${reason}: ${uploadId}`);
  }
}

const SEGMENT_RE = /^[A-Za-z0-9._-]+$/;

/** Validates a storage key against the contract above; throws InvalidPathError. Shared by every driver. */
export function assertValidKey(key: string, { allowEmpty = false } = {}): void {
  if (key === '' && allowEmpty) return;
  if (typeof key !== 'string' || key === '' || key.length > 1024) throw new InvalidPathError(key);
  for (const seg of key.split('/')) {
    if (!SEGMENT_RE.test(seg) || seg === '.' || seg === '..') throw new InvalidPathError(key);
  }
}
