/**
 * The S3 driver's committed objects: stat, read, put, delete, list and presigned URLs.
 *
 * `put` sends a body that fits in one part (`partSize`, 8 MiB by default) as a single PutObject and anything
 * longer as a multipart upload straight to the final key, which S3 publishes only at CompleteMultipartUpload; a
 * body error aborts it. At most two parts are in memory: one being sent, the next being filled.
 */
import type { Readable } from 'node:stream';

import { GetObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';

import { BufferRecycler } from '../../buffer-recycler.ts';
import {
  ObjectNotFoundError,
  RangeNotSatisfiableError,
  type ByteRange,
  type ObjectInfo,
} from '../../driver.ts';
import { isWellFormedRange } from '../../driver-helpers.ts';
import type { S3Bucket } from './bucket.ts';
import { isInvalidRange, isNotFound, OutOfRange } from './errors.ts';
import type { S3Keys } from './keys.ts';
import { cutParts, putMultipart } from './parts.ts';

/** The StorageDriver methods on objects, over one bucket and prefix; each validates its key first. */
export class S3Objects {
  constructor(
    private readonly bucket: S3Bucket,
    private readonly keys: S3Keys,
    private readonly partSize: number,
  ) {}

  /** StorageDriver.stat. */
  async stat(key: string): Promise<ObjectInfo | null> {
    return this.bucket.head(this.keys.objectKey(key));
  }

  /** StorageDriver.read. */
  async read(key: string, range?: ByteRange): Promise<Readable> {
    const s3Key = this.keys.objectKey(key);
    if (range === undefined) {
      try {
        return await this.bucket.getObject(s3Key);
      } catch (err) {
        if (isNotFound(err)) throw new ObjectNotFoundError(key);
        throw err;
      }
    }
    const refuse = async (): Promise<never> => {
      const info = await this.stat(key);
      if (info === null) throw new ObjectNotFoundError(key);
      throw new RangeNotSatisfiableError(key, info.size);
    };
    if (!isWellFormedRange(range)) return refuse();
    try {
      return await this.bucket.getObjectRange(s3Key, range.start, range.end);
    } catch (err) {
      if (err instanceof OutOfRange || isInvalidRange(err)) return refuse();
      if (isNotFound(err)) throw new ObjectNotFoundError(key);
      throw err;
    }
  }

  /** StorageDriver.put: one PutObject, or a multipart upload for a body longer than one part. */
  async put(key: string, body: Readable | Uint8Array): Promise<number> {
    const s3Key = this.keys.objectKey(key);
    if (body instanceof Uint8Array && body.byteLength <= this.partSize) {
      await this.bucket.putObject(s3Key, body);
      return body.byteLength;
    }
    const buffers = new BufferRecycler(this.partSize);
    const parts = cutParts(body instanceof Uint8Array ? [body] : body, () => this.partSize, buffers);
    try {
      const first = await parts.next();
      if (first.done === true) {
        await this.bucket.putObject(s3Key, new Uint8Array(0));
        return 0;
      }
      const second = await parts.next();
      if (second.done === true) {
        await this.bucket.putObject(s3Key, first.value.bytes);
        return first.value.bytes.byteLength;
      }
      return await putMultipart(this.bucket, s3Key, [first.value, second.value], parts);
    } finally {
      await parts.return(undefined); // stops reading (and destroys) the body when a request failed
    }
  }

  /**
   * Deletes the object. S3's DeleteObject does not tell whether there was one, so a HeadObject asks first: two
   * concurrent deletes of one key may both answer true.
   */
  async delete(key: string): Promise<boolean> {
    const s3Key = this.keys.objectKey(key);
    if ((await this.bucket.head(s3Key)) === null) return false;
    await this.bucket.deleteObject(s3Key);
    return true;
  }

  /** Lists with ListObjectsV2, skipping the upload area and keys outside the grammar (objects put by others). */
  async *list(prefix: string): AsyncIterable<string> {
    for await (const object of this.bucket.listObjects(this.keys.listPrefix(prefix))) {
      const key = this.keys.keyOf(object.Key as string);
      if (key !== undefined) yield key;
    }
  }

  /**
   * A URL that lets anyone holding it GET the object at `key` (or a range of it, with a Range header) for
   * `expiresSeconds` seconds, without credentials: for redirecting blob downloads to the bucket. Makes no
   * request; the object need not exist.
   */
  async presignedUrl(key: string, expiresSeconds: number): Promise<string> {
    const s3Key = this.keys.objectKey(key);
    if (!Number.isSafeInteger(expiresSeconds) || expiresSeconds < 1 || expiresSeconds > 604_800) {
      throw new RangeError(`expiresSeconds must be between 1 and 604800, got ${expiresSeconds}`);
    }
    return getSignedUrl(this.bucket.client, new GetObjectCommand({ Bucket: this.bucket.name, Key: s3Key }), {
      expiresIn: expiresSeconds,
    });
  }
}
