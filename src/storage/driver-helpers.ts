/**
 * Checks and conversions every StorageDriver implementation shares, so that the drivers agree on what they accept
 * (upload handles, byte counts, ranges, keys) and on how they read a body's chunks.
 */
import { UUID_RE } from '../util/uuid.ts';
import { assertValidKey, UploadNotFoundError, type ByteRange, type UploadHandle } from './driver.ts';

/** Whether `id` is an upload id as drivers issue them (`crypto.randomUUID()`). */
export function isUploadId(id: string): boolean {
  return UUID_RE.test(id);
}

/**
 * The id of a handle that may have been through JSON and a database, or undefined when it is not one a driver
 * could have issued (then it names no upload: nothing to read, commit or discard).
 */
export function issuedUploadId(handle: UploadHandle): string | undefined {
  const id = rawId(handle);
  return typeof id === 'string' && isUploadId(id) ? id : undefined;
}

/** The id of `handle` as `issuedUploadId` reads it; UploadNotFoundError when there is none. */
export function uploadIdOf(handle: UploadHandle): string {
  const id = issuedUploadId(handle);
  if (id === undefined) throw new UploadNotFoundError(String(rawId(handle)));
  return id;
}

function rawId(handle: UploadHandle): unknown {
  return typeof handle === 'object' && handle !== null ? handle.id : undefined;
}

/** Throws RangeError unless `n` is a non-negative safe integer (an offset or a size given by the caller). */
export function assertByteCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError(`${what} must be a non-negative integer, got ${n}`);
}

/** Whether `range` is a range at all (safe integers, `0 <= start <= end`), whatever the object's size. */
export function isWellFormedRange(range: ByteRange): boolean {
  const { start, end } = range;
  return Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && start <= end;
}

/** `assertValidKey` as a test: for skipping listed names that are not keys (strays, objects put by others). */
export function isValidKey(key: string): boolean {
  try {
    assertValidKey(key);
    return true;
  } catch {
    return false;
  }
}

/** A body chunk as bytes: a Readable yields Buffers, or strings when it has an encoding set. */
export function toBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk);
  throw new TypeError('body chunks must be Uint8Array or string');
}
