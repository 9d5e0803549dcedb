/**
 * A StorageDriver over an S3 bucket: AWS S3 or any server speaking the S3 protocol.
 *
 * Atomicity is S3's own: a PutObject, CopyObject or CompleteMultipartUpload makes a whole object appear at once,
 * and a GetObject reads one version whole even when the key is overwritten meanwhile.
 *
 * This class checks the options, builds the client and hands each call to the module doing that job, in `s3/`:
 * `keys.ts` (the layout in the bucket), `objects.ts` (committed objects: stat, read, put, delete, list, presign),
 * `uploads.ts` (resumable uploads and their commit protocol), `parts.ts` (multipart uploads and the part
 * buffers), `bucket.ts` (plain object requests: head, get, put, copy, delete, list), `segments.ts` (the upload
 * handle's segment list), `sdk-logger.ts` (the AWS SDK's logging).
 *
 * Limits: an object holds at most 10,000 parts, so a `put` or a committed upload is at most 10,000 × `partSize`
 * (78 GiB at 8 MiB). A crash in the middle of a `put` leaves an invisible incomplete multipart upload: give the
 * bucket a lifecycle rule that aborts incomplete multipart uploads after a day or so.
 */
import { randomUUID } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';

import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';

import { silentLogger, type Logger } from '../../logger.ts';
import {
  assertValidKey,
  StorageError,
  type ByteRange,
  type ObjectInfo,
  type StorageDriver,
  type UploadHandle,
  type UploadInfo,
} from '../driver.ts';
import { S3Bucket } from './s3/bucket.ts';
import { S3Keys } from './s3/keys.ts';
import { S3Objects } from './s3/objects.ts';
import { DEFAULT_PART_SIZE, MAX_PART_SIZE, MIN_PART_SIZE } from './s3/parts.ts';
import { sdkLogger } from './s3/sdk-logger.ts';
import { S3Uploads } from './s3/uploads.ts';

export { MIN_PART_SIZE };

export interface S3DriverOptions {
  readonly bucket: string;
  /** Key prefix inside the bucket (`berth` stores `blobs/...` as `berth/blobs/...`). Default: none. */
  readonly prefix?: string;
  /** Default: the standard AWS chain (AWS_REGION, profile...), or `us-east-1` when `endpoint` is set. */
  readonly region?: string;
  /** An S3-compatible server (`http://127.0.0.1:9000`). Default: AWS. */
  readonly endpoint?: string;
  /** Path-style URLs (`endpoint/bucket/key`), which most S3-compatible servers need. */
  readonly forcePathStyle?: boolean;
  /** Static credentials. Default: the standard AWS chain (environment, profile, instance role...). */
  readonly credentials?: {
    readonly accessKeyId: string;
    readonly secretAccessKey: string;
    readonly sessionToken?: string;
  };
  /** Bytes per multipart part and per upload segment: at least 5 MiB, at most 5 GiB. Default 8 MiB. */
  readonly partSize?: number;
  /**
   * Whether the SDK adds CRC checksums to every request that supports them (`when_supported`, which some
   * S3-compatible servers reject or store verbatim as aws-chunked framing), or only where S3 requires them
   * (`when_required`, the default).
   */
  readonly checksums?: 'when_required' | 'when_supported';
  /** Concurrent connections to the server (each open read stream holds one). Default 256. */
  readonly maxSockets?: number;
  /**
   * Where the AWS SDK logs: its warnings (sockets at capacity...) at warn, one line per request at debug (see
   * `s3/sdk-logger.ts`); request failures are the driver's rejections. Default: `silentLogger`.
   */
  readonly logger?: Logger;
}

/**
 * Stores objects in an S3 bucket. Construction makes no request. Keys whose first segment is `_uploads` are
 * refused with `InvalidPathError`: that name holds the driver's private state. Every instance with the same
 * options sees the same objects and uploads; nothing is kept in process between calls.
 */
export class S3Driver implements StorageDriver {
  readonly name = 's3';
  private readonly client: S3Client;
  private readonly bucket: S3Bucket;
  private readonly keys: S3Keys;
  private readonly objects: S3Objects;
  private readonly uploads: S3Uploads;

  constructor(options: S3DriverOptions) {
    if (typeof options.bucket !== 'string' || options.bucket === '') {
      throw new TypeError('S3Driver: bucket is required');
    }
    const prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    try {
      assertValidKey(prefix, { allowEmpty: true });
    } catch {
      throw new TypeError(`S3Driver: invalid prefix ${JSON.stringify(options.prefix)}`);
    }
    const partSize = options.partSize ?? DEFAULT_PART_SIZE;
    if (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE || partSize > MAX_PART_SIZE) {
      throw new TypeError(`S3Driver: partSize must be between 5 MiB and 5 GiB, got ${partSize}`);
    }

    const checksums = options.checksums === 'when_supported' ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED';
    const maxSockets = options.maxSockets ?? 256;
    const config: S3ClientConfig = {
      region: options.region ?? (options.endpoint !== undefined ? 'us-east-1' : undefined),
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle,
      credentials: options.credentials,
      requestChecksumCalculation: checksums,
      responseChecksumValidation: checksums,
      logger: sdkLogger(options.logger ?? silentLogger),
      requestHandler: {
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets }),
      },
    };
    this.client = new S3Client(config);
    this.bucket = new S3Bucket(this.client, options.bucket);
    this.keys = new S3Keys(prefix);
    this.objects = new S3Objects(this.bucket, this.keys, partSize);
    this.uploads = new S3Uploads(this.bucket, this.keys, partSize);
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    return this.objects.stat(key);
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    return this.objects.read(key, range);
  }

  async put(key: string, body: Readable | Uint8Array): Promise<number> {
    return this.objects.put(key, body);
  }

  /** See S3Objects.delete: two concurrent deletes of one key may both answer true. */
  async delete(key: string): Promise<boolean> {
    return this.objects.delete(key);
  }

  list(prefix: string): AsyncIterable<string> {
    return this.objects.list(prefix);
  }

  async createUpload(): Promise<UploadHandle> {
    return this.uploads.create();
  }

  async appendUpload(
    handle: UploadHandle,
    offset: number,
    body: Readable,
  ): Promise<{ handle: UploadHandle; size: number }> {
    return this.uploads.append(handle, offset, body);
  }

  async readUpload(handle: UploadHandle, size: number): Promise<Readable> {
    return this.uploads.read(handle, size);
  }

  /** See S3Uploads.commit: two commits racing to one key each publish a complete, identical object. */
  async commitUpload(handle: UploadHandle, size: number, key: string): Promise<void> {
    return this.uploads.commit(handle, size, this.keys.objectKey(key));
  }

  async abortUpload(handle: UploadHandle): Promise<void> {
    return this.uploads.abort(handle);
  }

  /** See S3Uploads.list: leftovers without a marker are listed too; the handles carry only the id. */
  listUploads(): AsyncIterable<UploadInfo> {
    return this.uploads.list();
  }

  async ping(): Promise<void> {
    return this.bucket.ping();
  }

  /** Puts and deletes `_uploads/<uuid>/probe`: an upload without a marker, which the purge removes if left. */
  async checkWritable(): Promise<void> {
    const key = this.keys.uploadKey(randomUUID(), 'probe');
    try {
      await this.bucket.putObject(key, Buffer.from('berth'));
      await this.bucket.deleteObject(key);
    } catch (err) {
      throw new StorageError(`cannot write to S3 bucket ${this.bucket.name}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /** See S3Objects.presignedUrl: a URL anyone may GET the object with for `expiresSeconds` seconds. */
  async presignedUrl(key: string, expiresSeconds: number): Promise<string> {
    return this.objects.presignedUrl(key, expiresSeconds);
  }
}
