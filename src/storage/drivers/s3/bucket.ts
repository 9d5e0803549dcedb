/**
 * The plain requests the S3 driver makes on the objects of its bucket, by S3 key (mapped by S3Keys). Absence is
 * reported as the SDK's error (see `errors.ts`), or as null where stated: each caller turns it into its own
 * terms (ObjectNotFoundError, UploadNotFoundError, a result).
 */
import { Readable } from 'node:stream';

import {
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  type _Object as S3Object,
} from '@aws-sdk/client-s3';

import { StorageError, type ObjectInfo } from '../../driver.ts';
import { isNotFound, OutOfRange } from './errors.ts';
import { sendBody } from './send-body.ts';

export class S3Bucket {
  constructor(
    readonly client: S3Client,
    /** The bucket's name. */
    readonly name: string,
  ) {}

  /** Size and modification time of the object (HeadObject), or null when there is none. */
  async head(s3Key: string): Promise<ObjectInfo | null> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.name, Key: s3Key }));
      return { size: out.ContentLength ?? 0, modifiedAt: out.LastModified ?? new Date(0) };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /** Writes the object whole with one PutObject; a stream body needs its `length`. */
  async putObject(s3Key: string, body: Uint8Array | Readable, length?: number): Promise<void> {
    const command = new PutObjectCommand({
      Bucket: this.name,
      Key: s3Key,
      Body: body,
      ContentLength: body instanceof Uint8Array ? body.byteLength : length,
    });
    await sendBody(body, (abortSignal) => this.client.send(command, { abortSignal }));
  }

  /** The object's bytes. */
  async getObject(s3Key: string): Promise<Readable> {
    const out = await this.client.send(new GetObjectCommand({ Bucket: this.name, Key: s3Key }));
    return out.Body as Readable;
  }

  /**
   * GETs bytes `[start, end]` of an object; throws OutOfRange when `end` is past its end (S3 answers such a range
   * with the bytes up to the end, and a `start` past the end with 416 InvalidRange). Trims what a server sends
   * beyond the range (s3rver answers `bytes=0-0` with the whole object).
   */
  async getObjectRange(s3Key: string, start: number, end: number): Promise<Readable> {
    const out = await this.client.send(
      new GetObjectCommand({ Bucket: this.name, Key: s3Key, Range: `bytes=${start}-${end}` }),
    );
    const body = out.Body as Readable;
    const got = parseContentRange(out.ContentRange) ?? fullRange(out.ContentLength);
    if (got === null || end >= got.total || got.start > start || got.end < end) {
      body.destroy();
      if (got !== null && end >= got.total) throw new OutOfRange(got.total);
      throw new StorageError(`S3 answered range ${start}-${end} of ${s3Key} with ${out.ContentRange}`);
    }
    if (got.start === start && got.end === end) return body;
    return Readable.from(slice(body, start - got.start, end - start + 1));
  }

  /** Copies an object within the bucket, server-side (CopyObject: up to 5 GiB). */
  async copyObject(from: string, to: string): Promise<void> {
    await this.client.send(
      new CopyObjectCommand({ Bucket: this.name, Key: to, CopySource: this.copySource(from) }),
    );
  }

  /** The `CopySource` naming an object of this bucket. */
  copySource(s3Key: string): string {
    return `${this.name}/${s3Key.split('/').map(encodeURIComponent).join('/')}`;
  }

  /** Deletes the object; succeeds also when there was none. */
  async deleteObject(s3Key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.name, Key: s3Key }));
  }

  /** Deletes up to 1000 objects with one request; StorageError naming the first that could not be deleted. */
  async deleteObjects(s3Keys: readonly string[]): Promise<void> {
    const out = await this.client.send(
      new DeleteObjectsCommand({
        Bucket: this.name,
        Delete: { Objects: s3Keys.map((Key) => ({ Key })), Quiet: true },
      }),
    );
    const failed = out.Errors?.[0];
    if (failed !== undefined) {
      throw new StorageError(`cannot delete ${failed.Key}: ${failed.Code} ${failed.Message}`);
    }
  }

  /** Every object below `s3Prefix`, page by page (ListObjectsV2, 1000 keys a request). */
  async *listObjects(s3Prefix: string): AsyncIterable<S3Object> {
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.name, Prefix: s3Prefix, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key !== undefined) yield object;
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  /** Resolves when the bucket answers a HeadBucket; StorageError otherwise. */
  async ping(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.name }));
    } catch (err) {
      throw new StorageError(`S3 bucket ${this.name} does not answer`, { cause: err });
    }
  }
}

/** `take` bytes of `source` after skipping `skip`; destroys the source when done. */
async function* slice(source: Readable, skip: number, take: number): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    let bytes = chunk as Buffer;
    if (skip > 0) {
      const dropped = Math.min(skip, bytes.byteLength);
      bytes = bytes.subarray(dropped);
      skip -= dropped;
    }
    if (bytes.byteLength === 0) continue;
    if (bytes.byteLength >= take) {
      yield bytes.subarray(0, take);
      return; // leaving the loop destroys the source
    }
    yield bytes;
    take -= bytes.byteLength;
  }
  if (take > 0) throw new StorageError('S3 response ended early');
}

/**
 * The `Content-Range` of a ranged GET's response (`bytes <start>-<end>/<total>`). Not the parser of the PATCH
 * request header in `src/http/headers.ts`: that one reads a client's `<start>-<end>` and answers bad input with
 * 416, this one reads what S3 sends.
 */
function parseContentRange(header: string | undefined): { start: number; end: number; total: number } | null {
  const m = header === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header);
  if (m === null) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: Number(m[3]) };
}

/** A server that ignored the Range header and sent the whole object. */
function fullRange(length: number | undefined): { start: number; end: number; total: number } | null {
  return length === undefined ? null : { start: 0, end: length - 1, total: length };
}
