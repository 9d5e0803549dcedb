/**
 * Where the S3 driver keeps everything in its bucket. Layout below the optional `prefix`:
 *
 * ```
 * <prefix>/<key>                                 committed objects, one S3 object per key
 * <prefix>/_uploads/<id>/upload                  empty marker: the resumable upload `id` (a random UUID) exists
 * <prefix>/_uploads/<id>/part-<offset>-<nonce>   one segment of its bytes, starting at byte <offset>: a plain,
 *                                                readable object, written once and never overwritten
 * <prefix>/_uploads/<id>/commit-<nonce>          JSON {key, uploadId}: a multipart upload a commit has started
 *                                                (so that an abort after a crash mid-commit can abort it too)
 * ```
 *
 * Every S3 key the driver uses is built here.
 */
import { randomBytes } from 'node:crypto';

import { assertValidKey, InvalidPathError } from '../../driver.ts';
import { isUploadId, isValidKey } from '../../driver-helpers.ts';

/** Top-level key segment the driver keeps for itself; keys starting with it are refused. */
const UPLOADS_DIR = '_uploads';
const MARKER = 'upload';
const SEGMENT_RE = /^part-(?:0|[1-9][0-9]{0,15})-[0-9a-f]{12}$/;
const COMMIT_RE = /^commit-[0-9a-f]{12}$/;

/** The S3 keys of one driver: its objects and its uploads, below its prefix. Builds keys; makes no request. */
export class S3Keys {
  /** `''` or `<prefix>/`. */
  private readonly root: string;
  /** `<prefix>/_uploads/`, the upload area. */
  readonly uploads: string;

  /** @param prefix `''` or a valid key (checked by the caller), with no leading or trailing slash */
  constructor(prefix: string) {
    this.root = prefix === '' ? '' : `${prefix}/`;
    this.uploads = `${this.root}${UPLOADS_DIR}/`;
  }

  /** Validates `key` (InvalidPathError, also for keys in the upload area) and maps it into the bucket. */
  objectKey(key: string): string {
    assertValidKey(key);
    if (key.split('/', 1)[0] === UPLOADS_DIR) throw new InvalidPathError(key);
    return `${this.root}${key}`;
  }

  /** The S3 prefix listing `prefix` (a key or `''`, validated) covers. */
  listPrefix(prefix: string): string {
    assertValidKey(prefix, { allowEmpty: true });
    return prefix === '' ? this.root : `${this.objectKey(prefix)}/`;
  }

  /**
   * The key of a listed S3 object below the prefix, or undefined for the upload area and for keys outside the
   * grammar (objects put there by others), which listing skips.
   */
  keyOf(s3Key: string): string | undefined {
    const key = s3Key.slice(this.root.length);
    return key.split('/', 1)[0] === UPLOADS_DIR || !isValidKey(key) ? undefined : key;
  }

  /** The S3 key of object `name` of upload `id`. */
  uploadKey(id: string, name: string): string {
    return `${this.uploads}${id}/${name}`;
  }

  /** The key of the marker object of upload `id`. */
  markerKey(id: string): string {
    return this.uploadKey(id, MARKER);
  }

  /** The id of the upload an S3 key in the upload area belongs to, or undefined for a stray. */
  uploadIdOf(s3Key: string): string | undefined {
    const id = s3Key.slice(this.uploads.length).split('/', 1)[0] as string;
    return isUploadId(id) ? id : undefined;
  }
}

/** The name of a new segment starting at upload byte `start`. */
export function newSegmentName(start: number): string {
  return `part-${start}-${nonce()}`;
}

/** Whether `name` is a segment name `newSegmentName` could have made (upload handles are checked with it). */
export function isSegmentName(name: string): boolean {
  return SEGMENT_RE.test(name);
}

/** The name of a new commit note. */
export function newCommitNoteName(): string {
  return `commit-${nonce()}`;
}

/** Whether `name` (relative to its upload) is a commit note's. */
export function isCommitNoteName(name: string): boolean {
  return COMMIT_RE.test(name);
}

/** A random suffix that keeps names written by concurrent requests apart. */
function nonce(): string {
  return randomBytes(6).toString('hex');
}
