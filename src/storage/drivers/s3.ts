/**
 * A StorageDriver over an S3 bucket: AWS S3 or any server speaking the S3 protocol.
 *
 * Layout in the bucket, below the optional `prefix`:
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
 * Atomicity is S3's own: a PutObject, CopyObject or CompleteMultipartUpload makes a whole object appear at once,
 * and a GetObject reads one version whole even when the key is overwritten meanwhile.
 *
 * `put` sends a body that fits in one part (`partSize`, 8 MiB by default) as a single PutObject and anything
 * longer as a multipart upload straight to the final key, which S3 publishes only at CompleteMultipartUpload; a
 * body error aborts it. At most two parts are in memory: one being sent, the next being filled.
 *
 * Resumable uploads. S3 cannot read back the parts of an uncompleted multipart upload, yet `readUpload` must
 * stream the bytes received so far (to re-hash an upload continued by another instance), so while an upload is
 * open its bytes live in ordinary objects, the segments above, and the handle is the truth about them:
 *
 * ```
 * { id, parts: [{ name: 'part-0-<nonce>', size: 8388608 }, { name: 'part-8388608-<nonce>', size: 1000 }, ...] }
 * ```
 *
 * The upload is the concatenation of the first `size` bytes of each listed segment. Segments the handle does not
 * list (left by an interrupted or superseded append) are ignored and deleted with the upload. Names carry a random
 * nonce, so a segment a live handle lists is never overwritten, even by two instances appending at the same offset
 * at once. An append cuts its body into segments of `partSize`: every segment of at least 5 MiB (the S3 minimum
 * for a multipart part) is final; a shorter remainder is stored on its own as a small "pending" segment, and the
 * next append that brings enough bytes streams the pending segments back in front of its first part, so that
 * pending bytes never reach `partSize` and each byte is copied at most a few times. Memory stays at two parts per
 * append, whatever the chunk sizes clients send.
 *
 * `commitUpload` assembles the segments server-side: a single segment is copied with CopyObject; several become
 * a multipart upload of the final key, one part per large segment by UploadPartCopy (no bytes pass through this
 * process) and one streamed UploadPart for each run of small segments. Servers without UploadPartCopy (s3rver)
 * get every part streamed through instead. Abort and commit delete the whole `_uploads/<id>/` prefix.
 *
 * Limits: an object holds at most 10,000 parts, so a `put` or a committed upload is at most 10,000 × `partSize`
 * (78 GiB at 8 MiB). A crash in the middle of a `put` leaves an invisible incomplete multipart upload: give the
 * bucket a lifecycle rule that aborts incomplete multipart uploads after a day or so.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';

import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
  type S3ClientConfig,
  type _Object as S3Object,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';

import {
  assertValidKey,
  InvalidPathError,
  ObjectNotFoundError,
  RangeNotSatisfiableError,
  StorageError,
  UploadNotFoundError,
  type ByteRange,
  type ObjectInfo,
  type StorageDriver,
  type UploadHandle,
  type UploadInfo,
} from '../driver.ts';

const MiB = 1024 * 1024;
/** S3's smallest multipart part (except the last one). */
export const MIN_PART_SIZE = 5 * MiB;
/** S3's largest multipart part, and the largest object a single PutObject or CopyObject may write. */
const MAX_PART_SIZE = 5 * 1024 * MiB;
const DEFAULT_PART_SIZE = 8 * MiB;
const MAX_PARTS = 10_000;
/** Pending (small) segments an upload may hold before an append merges them into one. */
const MAX_PENDING_SEGMENTS = 32;
/** Parts a commit copies or sends at once. */
const COMMIT_CONCURRENCY = 4;
/** A part buffer starts as a list of the body's own chunks and becomes one allocation past this size. */
const SMALL_PART = 256 * 1024;

/** Top-level key segment the driver keeps for itself; keys starting with it are refused. */
const UPLOADS_DIR = '_uploads';
const MARKER = 'upload';
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SEGMENT_RE = /^part-(?:0|[1-9][0-9]{0,15})-[0-9a-f]{12}$/;
const COMMIT_RE = /^commit-[0-9a-f]{12}$/;

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
  /** Where the SDK's warnings go (request failures are the driver's rejections instead). Default: the console. */
  readonly logger?: Pick<Console, 'warn'>;
}

/** One segment of an open upload: the first `size` bytes of `_uploads/<id>/<name>`. */
interface Segment {
  readonly name: string;
  readonly size: number;
}

interface ParsedHandle {
  readonly id: string;
  readonly parts: readonly Segment[];
}

/** What an upload's bytes are made of at commit or in a merged segment: stored segments and in-memory bytes. */
type Piece = { readonly segment: Segment } | { readonly bytes: Uint8Array };

/**
 * Stores objects in an S3 bucket. Construction makes no request. Keys whose first segment is `_uploads` are
 * refused with `InvalidPathError`: that name holds the driver's private state. Every instance with the same
 * options sees the same objects and uploads; nothing is kept in process between calls.
 */
export class S3Driver implements StorageDriver {
  readonly name = 's3';
  private readonly client: S3Client;
  private readonly bucket: string;
  /** `''` or `<prefix>/`. */
  private readonly root: string;
  private readonly partSize: number;
  /** Cleared when the server answers UploadPartCopy with NotImplemented; parts are then streamed through. */
  private partCopySupported = true;

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
    this.bucket = options.bucket;
    this.root = prefix === '' ? '' : `${prefix}/`;
    this.partSize = partSize;

    const checksums = options.checksums === 'when_supported' ? 'WHEN_SUPPORTED' : 'WHEN_REQUIRED';
    const maxSockets = options.maxSockets ?? 256;
    const config: S3ClientConfig = {
      region: options.region ?? (options.endpoint !== undefined ? 'us-east-1' : undefined),
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle,
      credentials: options.credentials,
      requestChecksumCalculation: checksums,
      responseChecksumValidation: checksums,
      logger: sdkLogger(options.logger ?? console),
      requestHandler: {
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets }),
      },
    };
    this.client = new S3Client(config);
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    const s3Key = this.objectKey(key);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: s3Key }));
      return { size: out.ContentLength ?? 0, modifiedAt: out.LastModified ?? new Date(0) };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    const s3Key = this.objectKey(key);
    if (range === undefined) {
      try {
        return await this.getObject(s3Key);
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
    const { start, end } = range;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end) {
      return refuse();
    }
    try {
      return await this.getObjectRange(s3Key, start, end);
    } catch (err) {
      if (err instanceof OutOfRange || isInvalidRange(err)) return refuse();
      if (isNotFound(err)) throw new ObjectNotFoundError(key);
      throw err;
    }
  }

  async put(key: string, body: Readable | Uint8Array): Promise<number> {
    const s3Key = this.objectKey(key);
    if (body instanceof Uint8Array && body.byteLength <= this.partSize) {
      await this.putObject(s3Key, body);
      return body.byteLength;
    }
    const pool = new BufferPool(this.partSize);
    const parts = cutParts(body instanceof Uint8Array ? [body] : body, () => this.partSize, pool);
    try {
      const first = await parts.next();
      if (first.done === true) {
        await this.putObject(s3Key, new Uint8Array(0));
        return 0;
      }
      const second = await parts.next();
      if (second.done === true) {
        await this.putObject(s3Key, first.value.bytes);
        return first.value.bytes.byteLength;
      }
      return await this.putMultipart(s3Key, [first.value, second.value], parts);
    } finally {
      await parts.return(undefined); // stops reading (and destroys) the body when a request failed
    }
  }

  /**
   * Deletes the object. S3's DeleteObject does not tell whether there was one, so a HeadObject asks first: two
   * concurrent deletes of one key may both answer true.
   */
  async delete(key: string): Promise<boolean> {
    const s3Key = this.objectKey(key);
    if ((await this.stat(key)) === null) return false;
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: s3Key }));
    return true;
  }

  /** Lists with ListObjectsV2, skipping the upload area and keys outside the grammar (objects put by others). */
  async *list(prefix: string): AsyncIterable<string> {
    assertValidKey(prefix, { allowEmpty: true });
    const s3Prefix = prefix === '' ? this.root : `${this.objectKey(prefix)}/`;
    for await (const object of this.listObjects(s3Prefix)) {
      const key = (object.Key as string).slice(this.root.length);
      if (key.split('/', 1)[0] === UPLOADS_DIR || !isValidKey(key)) continue;
      yield key;
    }
  }

  async createUpload(): Promise<UploadHandle> {
    const id = randomUUID();
    await this.putObject(this.uploadKey(id, MARKER), new Uint8Array(0));
    return toHandle(id, []);
  }

  async appendUpload(
    handle: UploadHandle,
    offset: number,
    body: Readable,
  ): Promise<{ handle: UploadHandle; size: number }> {
    const { id, parts } = parseHandle(handle);
    assertByteCount(offset, 'offset');
    await this.assertUploadExists(id);
    // Bytes past `offset` (an append the caller did not record) are dropped from the list, not from storage.
    const kept = await this.resolveParts(id, parts, offset);
    let split = kept.length;
    while (split > 0 && (kept[split - 1] as Segment).size < MIN_PART_SIZE) split--;
    const out: Segment[] = kept.slice(0, split);
    let pending: Segment[] = kept.slice(split);
    let pendingSize = totalSize(pending);
    let position = offset - pendingSize; // where the next segment starts

    // A handle written by an instance with a larger partSize may carry more pending bytes than one part.
    if (pendingSize >= this.partSize) {
      out.push(await this.writeSegment(id, position, pending.map(segmentPiece)));
      position += pendingSize;
      pending = [];
      pendingSize = 0;
    }

    // Segments are written one at a time while the next is read from the body: two part buffers at most.
    const written: Array<Promise<Segment>> = [];
    let received = 0;
    let first = true;
    const want = () => (first ? this.partSize - pendingSize : this.partSize);
    const cut = cutParts(body, want, new BufferPool(this.partSize));
    try {
      for await (const part of cut) {
        const { bytes } = part;
        const full = bytes.byteLength === want();
        received += bytes.byteLength;
        let pieces: Piece[] = [{ bytes }];
        if (first && pending.length > 0) {
          if (full || pending.length >= MAX_PENDING_SEGMENTS) {
            pieces = [...pending.map(segmentPiece), ...pieces]; // merge the pending segments in
          } else {
            out.push(...pending); // a small append after small appends: one more pending segment
            position += pendingSize;
          }
          pending = [];
        }
        first = false;
        const previous = written.at(-1);
        if (previous !== undefined) await previous;
        const start = position;
        position += piecesSize(pieces);
        written.push(quiet(this.writeSegment(id, start, pieces).finally(part.release)));
      }
      if (first) out.push(...pending); // an empty body
      out.push(...(await Promise.all(written)));
    } catch (err) {
      await Promise.allSettled(written);
      throw err;
    }
    return { handle: toHandle(id, out), size: offset + received };
  }

  async readUpload(handle: UploadHandle, size: number): Promise<Readable> {
    const { id, parts } = parseHandle(handle);
    assertByteCount(size, 'size');
    await this.assertUploadExists(id);
    const segments = await this.resolveParts(id, parts, size);
    return this.streamPieces(id, segments.map(segmentPiece));
  }

  /**
   * Assembles bytes `[0, size)` at `key` (see the file comment) unless an object is there already, then deletes
   * the upload. Two commits racing to one key each publish a complete, identical object.
   */
  async commitUpload(handle: UploadHandle, size: number, key: string): Promise<void> {
    const dest = this.objectKey(key);
    const { id, parts } = parseHandle(handle);
    assertByteCount(size, 'size');
    await this.assertUploadExists(id);
    const segments = await this.resolveParts(id, parts, size);
    let completed: string | undefined;
    if ((await this.stat(key)) === null) completed = await this.assemble(id, segments, dest);
    await this.removeUpload(id, completed);
  }

  async abortUpload(handle: UploadHandle): Promise<void> {
    const id: unknown = typeof handle === 'object' && handle !== null ? handle.id : undefined;
    if (typeof id !== 'string' || !UUID_RE.test(id)) return; // a handle we could never have issued
    await this.removeUpload(id);
  }

  /**
   * Yields one entry per upload id found below `_uploads/`, marker or not (a crash during a commit's or an
   * abort's cleanup leaves segments without a marker; garbage collection aborts those too). `modifiedAt` is the
   * latest modification of any of its objects, so the last append. The handles carry only the id: enough to
   * abort, not to continue.
   */
  async *listUploads(): AsyncIterable<UploadInfo> {
    const base = `${this.root}${UPLOADS_DIR}/`;
    let current: { id: string; modifiedAt: Date } | undefined;
    for await (const object of this.listObjects(base)) {
      const id = (object.Key as string).slice(base.length).split('/', 1)[0] as string;
      if (!UUID_RE.test(id)) continue;
      const modifiedAt = object.LastModified ?? new Date(0);
      if (current?.id === id) {
        if (modifiedAt > current.modifiedAt) current.modifiedAt = modifiedAt;
        continue;
      }
      if (current !== undefined) yield { handle: { id: current.id }, modifiedAt: current.modifiedAt };
      current = { id, modifiedAt };
    }
    if (current !== undefined) yield { handle: { id: current.id }, modifiedAt: current.modifiedAt };
  }

  async ping(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      throw new StorageError(`S3 bucket ${this.bucket} does not answer`, { cause: err });
    }
  }

  /** Puts and deletes `_uploads/<uuid>/probe`: an upload without a marker, which the purge removes if left. */
  async checkWritable(): Promise<void> {
    const key = `${this.root}${UPLOADS_DIR}/${randomUUID()}/probe`;
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: 'berth' }));
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      throw new StorageError(`cannot write to S3 bucket ${this.bucket}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  /**
   * A URL that lets anyone holding it GET the object at `key` (or a range of it, with a Range header) for
   * `expiresSeconds` seconds, without credentials: for redirecting blob downloads to the bucket. Makes no
   * request; the object need not exist.
   */
  async presignedUrl(key: string, expiresSeconds: number): Promise<string> {
    const s3Key = this.objectKey(key);
    if (!Number.isSafeInteger(expiresSeconds) || expiresSeconds < 1 || expiresSeconds > 604_800) {
      throw new RangeError(`expiresSeconds must be between 1 and 604800, got ${expiresSeconds}`);
    }
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: s3Key }), {
      expiresIn: expiresSeconds,
    });
  }

  // ---- objects ----

  /** Validates `key` and maps it into the bucket. Makes no request. */
  private objectKey(key: string): string {
    assertValidKey(key);
    if (key.split('/', 1)[0] === UPLOADS_DIR) throw new InvalidPathError(key);
    return `${this.root}${key}`;
  }

  private uploadKey(id: string, name: string): string {
    return `${this.root}${UPLOADS_DIR}/${id}/${name}`;
  }

  private async putObject(s3Key: string, body: Uint8Array | Readable, length?: number): Promise<void> {
    const command = new PutObjectCommand({
      Bucket: this.bucket,
      Key: s3Key,
      Body: body,
      ContentLength: body instanceof Uint8Array ? body.byteLength : length,
    });
    await this.sendBody(body, (abortSignal) => this.client.send(command, { abortSignal }));
  }

  /**
   * Runs `send`, a request whose body is `body`. The SDK pipes a stream body into the request without listening
   * for its errors: a failing body would crash the process with an unhandled 'error' event and leave the request
   * waiting for bytes that never come. So here the body's error aborts the request and becomes the rejection,
   * and the body is destroyed once the request is over (releasing the reads that feed it, on failure).
   */
  private async sendBody<T>(
    body: Uint8Array | Readable,
    send: (signal?: AbortSignal) => Promise<T>,
  ): Promise<T> {
    if (body instanceof Uint8Array) return send();
    const controller = new AbortController();
    let failure: unknown;
    const onError = (err: unknown) => {
      failure ??= err;
      controller.abort();
    };
    body.on('error', onError);
    try {
      return await send(controller.signal);
    } catch (err) {
      throw failure ?? err;
    } finally {
      body.destroy();
      // Late errors of the destroyed body (none are expected) must not go unhandled either.
      body.off('error', onError);
      body.on('error', () => undefined);
    }
  }

  private async getObject(s3Key: string): Promise<Readable> {
    const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: s3Key }));
    return out.Body as Readable;
  }

  /**
   * GETs bytes `[start, end]` of an object; throws OutOfRange when `end` is past its end (S3 answers such a range
   * with the bytes up to the end, and a `start` past the end with 416 InvalidRange). Trims what a server sends
   * beyond the range (s3rver answers `bytes=0-0` with the whole object).
   */
  private async getObjectRange(s3Key: string, start: number, end: number): Promise<Readable> {
    const out = await this.client.send(
      new GetObjectCommand({ Bucket: this.bucket, Key: s3Key, Range: `bytes=${start}-${end}` }),
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

  /** Sends a body longer than one part as a multipart upload of `s3Key`; aborts it if anything fails. */
  private async putMultipart(s3Key: string, read: Part[], rest: AsyncIterator<Part>): Promise<number> {
    const created = await this.client.send(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: s3Key }),
    );
    const uploadId = created.UploadId as string;
    const sent: Array<Promise<CompletedPart>> = [];
    let size = 0;
    try {
      for (;;) {
        let part = read.shift();
        if (part === undefined) {
          const step = await rest.next();
          if (step.done === true) break;
          part = step.value;
        }
        const number = sent.length + 1;
        if (number > MAX_PARTS) throw new StorageError(`object too large for ${MAX_PARTS} parts`);
        const { bytes, release } = part;
        size += bytes.byteLength;
        const previous = sent.at(-1);
        if (previous !== undefined) await previous;
        sent.push(quiet(this.uploadPart(s3Key, uploadId, number, bytes, bytes.byteLength).finally(release)));
      }
      await this.completeMultipart(s3Key, uploadId, await Promise.all(sent));
      return size;
    } catch (err) {
      await Promise.allSettled(sent);
      await this.abortMultipart(s3Key, uploadId).catch(() => undefined);
      throw err;
    }
  }

  private async uploadPart(
    s3Key: string,
    uploadId: string,
    number: number,
    body: Uint8Array | Readable,
    length: number,
  ): Promise<CompletedPart> {
    const command = new UploadPartCommand({
      Bucket: this.bucket,
      Key: s3Key,
      UploadId: uploadId,
      PartNumber: number,
      Body: body,
      ContentLength: length,
    });
    const out = await this.sendBody(body, (abortSignal) => this.client.send(command, { abortSignal }));
    return { PartNumber: number, ETag: out.ETag };
  }

  private async completeMultipart(s3Key: string, uploadId: string, parts: CompletedPart[]): Promise<void> {
    await this.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucket,
        Key: s3Key,
        UploadId: uploadId,
        MultipartUpload: { Parts: parts },
      }),
    );
  }

  private async abortMultipart(s3Key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: s3Key, UploadId: uploadId }),
      );
    } catch (err) {
      // Already completed or aborted; or a server that cannot abort (s3rver answers MethodNotAllowed).
      if (isNotFound(err) || isUnsupported(err)) return;
      throw err;
    }
  }

  /** Every object below `s3Prefix`, page by page (ListObjectsV2, 1000 keys a request). */
  private async *listObjects(s3Prefix: string): AsyncIterable<S3Object> {
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: s3Prefix, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key !== undefined) yield object;
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  // ---- uploads ----

  private async assertUploadExists(id: string): Promise<void> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.uploadKey(id, MARKER) }));
    } catch (err) {
      if (isNotFound(err)) throw new UploadNotFoundError(id);
      throw err;
    }
  }

  /**
   * The segments holding bytes `[0, size)`: the handle's, cut at `size`. A handle holding fewer bytes is not the
   * latest one for that size (the contract asks callers to hand back the latest), and is refused.
   */
  private async resolveParts(id: string, parts: readonly Segment[], size: number): Promise<Segment[]> {
    if (size > totalSize(parts)) throw new UploadNotFoundError(id, 'upload is shorter than expected');
    return truncate(parts, size);
  }

  /** Stores `pieces` as one new segment starting at upload byte `start`. */
  private async writeSegment(id: string, start: number, pieces: readonly Piece[]): Promise<Segment> {
    const name = `part-${start}-${randomBytes(6).toString('hex')}`;
    const size = piecesSize(pieces);
    const only = pieces.length === 1 ? pieces[0] : undefined;
    if (only !== undefined && 'bytes' in only) {
      await this.putObject(this.uploadKey(id, name), only.bytes);
    } else {
      await this.putObject(this.uploadKey(id, name), this.streamPieces(id, pieces), size);
    }
    return { name, size };
  }

  /**
   * A stream over the concatenated pieces, fetching one segment at a time. A missing segment (the upload was
   * committed or aborted meanwhile) errors the stream with UploadNotFoundError.
   */
  private streamPieces(id: string, pieces: readonly Piece[]): Readable {
    return Readable.from(this.piecesOf(id, pieces), { objectMode: false });
  }

  private async *piecesOf(id: string, pieces: readonly Piece[]): AsyncGenerator<Uint8Array> {
    for (const piece of pieces) {
      if ('bytes' in piece) {
        if (piece.bytes.byteLength > 0) yield piece.bytes;
        continue;
      }
      const { name, size } = piece.segment;
      let stream: Readable;
      try {
        stream = await this.getObjectRange(this.uploadKey(id, name), 0, size - 1);
      } catch (err) {
        if (isNotFound(err)) throw new UploadNotFoundError(id, 'upload segment is gone');
        if (err instanceof OutOfRange) throw new UploadNotFoundError(id, 'upload segment is short');
        throw err;
      }
      yield* stream;
    }
  }

  /**
   * Publishes `parts` at `dest`. Returns the id of the multipart upload it completed, if it used one.
   */
  private async assemble(id: string, parts: readonly Segment[], dest: string): Promise<string | undefined> {
    const groups = groupParts(parts, this.partSize);
    if (groups.length > MAX_PARTS) throw new StorageError(`upload ${id} too large for ${MAX_PARTS} parts`);
    if (groups.length === 0) {
      await this.putObject(dest, new Uint8Array(0));
      return undefined;
    }
    if (groups.length === 1) {
      const group = groups[0] as Segment[];
      const only = group.length === 1 ? (group[0] as Segment) : undefined;
      const stored = only === undefined ? null : await this.objectSize(this.uploadKey(id, only.name));
      if (only !== undefined && stored === null) throw new UploadNotFoundError(id, 'upload segment is gone');
      if (only !== undefined && stored === only.size) {
        await this.copyObject(id, this.uploadKey(id, only.name), dest);
      } else {
        await this.putObject(dest, this.streamPieces(id, group.map(segmentPiece)), totalSize(group));
      }
      return undefined;
    }

    const created = await this.client.send(
      new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: dest }),
    );
    const uploadId = created.UploadId as string;
    try {
      // Recorded before any part, so that an abort after a crash from here on can abort the multipart upload.
      const note = JSON.stringify({ key: dest, uploadId });
      await this.putObject(this.uploadKey(id, `commit-${randomBytes(6).toString('hex')}`), Buffer.from(note));
      const completed = await mapLimit(groups, COMMIT_CONCURRENCY, (group, i) =>
        this.assemblePart(id, dest, uploadId, i + 1, group),
      );
      await this.completeMultipart(dest, uploadId, completed);
      return uploadId;
    } catch (err) {
      await this.abortMultipart(dest, uploadId).catch(() => undefined);
      throw err;
    }
  }

  /** One part of a commit: a server-side copy of one large segment, or the group's bytes streamed through. */
  private async assemblePart(
    id: string,
    dest: string,
    uploadId: string,
    number: number,
    group: readonly Segment[],
  ): Promise<CompletedPart> {
    const only = group.length === 1 ? (group[0] as Segment) : undefined;
    if (only !== undefined && only.size >= MIN_PART_SIZE && this.partCopySupported) {
      try {
        const out = await this.client.send(
          new UploadPartCopyCommand({
            Bucket: this.bucket,
            Key: dest,
            UploadId: uploadId,
            PartNumber: number,
            CopySource: copySource(this.bucket, this.uploadKey(id, only.name)),
            CopySourceRange: `bytes=0-${only.size - 1}`,
          }),
        );
        return { PartNumber: number, ETag: out.CopyPartResult?.ETag };
      } catch (err) {
        if (isNotFound(err)) throw new UploadNotFoundError(id, 'upload segment is gone');
        if (!isUnsupported(err)) throw err;
        this.partCopySupported = false;
      }
    }
    const body = this.streamPieces(id, group.map(segmentPiece));
    return this.uploadPart(dest, uploadId, number, body, totalSize(group));
  }

  private async copyObject(id: string, from: string, to: string): Promise<void> {
    try {
      await this.client.send(
        new CopyObjectCommand({ Bucket: this.bucket, Key: to, CopySource: copySource(this.bucket, from) }),
      );
    } catch (err) {
      if (isNotFound(err)) throw new UploadNotFoundError(id, 'upload segment is gone');
      throw err;
    }
  }

  private async objectSize(s3Key: string): Promise<number | null> {
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: s3Key }));
      return out.ContentLength ?? 0;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  /**
   * Deletes everything below `_uploads/<id>/`: the marker first (the upload is gone for every instance from
   * then on), then, page by page, the segments, after aborting the multipart uploads that commit notes name
   * (except `completed`, which a commit has just completed).
   */
  private async removeUpload(id: string, completed?: string): Promise<void> {
    const base = this.uploadKey(id, '');
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: `${base}${MARKER}` }));
    let batch: string[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      const keys = batch;
      batch = [];
      const out = await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: keys.map((Key) => ({ Key })), Quiet: true },
        }),
      );
      const failed = out.Errors?.[0];
      if (failed !== undefined) {
        throw new StorageError(`cannot delete ${failed.Key}: ${failed.Code} ${failed.Message}`);
      }
    };
    for await (const object of this.listObjects(base)) {
      const key = object.Key as string;
      if (COMMIT_RE.test(key.slice(base.length))) {
        const note = await this.readCommitNote(key);
        if (note !== null && note.uploadId !== completed) await this.abortMultipart(note.key, note.uploadId);
      }
      batch.push(key);
      if (batch.length === 1000) await flush();
    }
    await flush();
  }

  private async readCommitNote(s3Key: string): Promise<{ key: string; uploadId: string } | null> {
    let text: string;
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of await this.getObject(s3Key)) chunks.push(chunk as Buffer);
      text = Buffer.concat(chunks).toString('utf8');
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
    try {
      const note = JSON.parse(text) as { key?: unknown; uploadId?: unknown };
      if (typeof note.key === 'string' && typeof note.uploadId === 'string') {
        return { key: note.key, uploadId: note.uploadId };
      }
    } catch {
      // a torn or foreign note: nothing to abort
    }
    return null;
  }
}

/**
 * The SDK's logger. Only warnings reach `target`: the SDK logs every failed request at error level, including
 * the expected ones (a HeadObject of an absent key, a ranged GET past the end), which the driver answers as
 * results or typed errors. Also dropped: the warning printed whenever a request with a stream body fails (such
 * requests are not retried), which the driver reports as the rejection it is.
 */
function sdkLogger(target: Pick<Console, 'warn'>): NonNullable<S3ClientConfig['logger']> {
  const ignore = () => undefined;
  return {
    trace: ignore,
    debug: ignore,
    info: ignore,
    warn: (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].includes('non-retryable streaming request')) return;
      target.warn(...args);
    },
    error: ignore,
  };
}

/** Thrown by getObjectRange: the range ends past the object's end. */
class OutOfRange extends Error {
  constructor(readonly size: number) {
    super(`range past the end (size ${size})`);
  }
}

/** The id and segments of a handle that may have been through JSON and a database; UploadNotFoundError if bad. */
function parseHandle(handle: UploadHandle): ParsedHandle {
  const id: unknown = typeof handle === 'object' && handle !== null ? handle.id : undefined;
  if (typeof id !== 'string' || !UUID_RE.test(id)) throw new UploadNotFoundError(String(id));
  const raw = handle.parts ?? [];
  if (!Array.isArray(raw)) throw new UploadNotFoundError(id, 'malformed upload handle');
  const parts: Segment[] = [];
  for (const item of raw as unknown[]) {
    const { name, size } = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
    if (
      typeof name !== 'string' ||
      !SEGMENT_RE.test(name) ||
      !Number.isSafeInteger(size) ||
      (size as number) < 1
    ) {
      throw new UploadNotFoundError(id, 'malformed upload handle');
    }
    parts.push({ name, size: size as number });
  }
  return { id, parts };
}

function toHandle(id: string, parts: readonly Segment[]): UploadHandle {
  return { id, parts: parts.map(({ name, size }) => ({ name, size })) };
}

function totalSize(parts: readonly Segment[]): number {
  let total = 0;
  for (const part of parts) total += part.size;
  return total;
}

function piecesSize(pieces: readonly Piece[]): number {
  let total = 0;
  for (const piece of pieces) total += 'bytes' in piece ? piece.bytes.byteLength : piece.segment.size;
  return total;
}

function segmentPiece(segment: Segment): Piece {
  return { segment };
}

/** The segments covering exactly bytes `[0, size)`; the last one may be cut short. */
function truncate(parts: readonly Segment[], size: number): Segment[] {
  const out: Segment[] = [];
  let at = 0;
  for (const part of parts) {
    if (at >= size) break;
    const keep = Math.min(part.size, size - at);
    out.push(keep === part.size ? part : { name: part.name, size: keep });
    at += keep;
  }
  return out;
}

/**
 * Groups segments into the parts of a multipart upload: a segment of at least 5 MiB alone (copied server-side),
 * runs of smaller ones together until they reach `partSize` (streamed), so that every part but the last is at
 * least 5 MiB. Appends leave small segments only at the end; a handle cut short can have them elsewhere.
 */
function groupParts(parts: readonly Segment[], partSize: number): Segment[][] {
  const groups: Segment[][] = [];
  let run: Segment[] = [];
  let runSize = 0;
  for (const part of parts) {
    if (part.size >= MIN_PART_SIZE && (run.length === 0 || runSize >= MIN_PART_SIZE)) {
      if (run.length > 0) groups.push(run);
      groups.push([part]);
      run = [];
      runSize = 0;
      continue;
    }
    run.push(part);
    runSize += part.size;
    if (runSize >= partSize) {
      groups.push(run);
      run = [];
      runSize = 0;
    }
  }
  if (run.length > 0) groups.push(run);
  return groups;
}

/** A part of a body, in memory; `release` hands its buffer back to the pool once it has been sent. */
interface Part {
  readonly bytes: Buffer;
  readonly release: () => void;
}

/**
 * Part-sized buffers for one put or append, reused once sent: an operation allocates as many as it has parts in
 * memory at once (two), however long its body, instead of leaving one garbage buffer per part to the collector.
 */
class BufferPool {
  private readonly free: Buffer[] = [];

  constructor(private readonly size: number) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafe(this.size);
  }

  give(buffer: Buffer): void {
    this.free.push(buffer);
  }
}

/**
 * Reads `source` into parts of `want()` bytes each (asked again for every part, never more than the pool's
 * buffer size), the last one shorter, or none for an empty source. A part starts as a list of the source's own
 * chunks and moves into a pooled buffer once it grows past SMALL_PART, so a small body costs no part-sized
 * allocation. Returning early destroys a Readable source (as `for await` does).
 */
async function* cutParts(
  source: AsyncIterable<unknown> | Iterable<unknown>,
  want: () => number,
  pool: BufferPool,
): AsyncGenerator<Part, void, undefined> {
  let part = new PartBuilder(want(), pool);
  for await (const chunk of source) {
    let bytes = toBytes(chunk);
    while (bytes.byteLength > 0) {
      bytes = bytes.subarray(part.add(bytes));
      if (part.full) {
        yield part.take();
        part = new PartBuilder(want(), pool);
      }
    }
  }
  if (part.size > 0) yield part.take();
}

class PartBuilder {
  private chunks: Uint8Array[] = [];
  private buffer: Buffer | undefined;
  size = 0;

  constructor(
    private readonly capacity: number,
    private readonly pool: BufferPool,
  ) {}

  get full(): boolean {
    return this.size === this.capacity;
  }

  /** Takes as much of `bytes` as fits; returns how much. */
  add(bytes: Uint8Array): number {
    const n = Math.min(bytes.byteLength, this.capacity - this.size);
    const piece = bytes.subarray(0, n);
    if (this.buffer === undefined && this.size + n > SMALL_PART) {
      this.buffer = this.pool.take();
      let at = 0;
      for (const chunk of this.chunks) {
        this.buffer.set(chunk, at);
        at += chunk.byteLength;
      }
      this.chunks = [];
    }
    if (this.buffer !== undefined) this.buffer.set(piece, this.size);
    else this.chunks.push(piece);
    this.size += n;
    return n;
  }

  take(): Part {
    const { buffer, pool } = this;
    if (buffer === undefined)
      return { bytes: Buffer.concat(this.chunks, this.size), release: () => undefined };
    return { bytes: buffer.subarray(0, this.size), release: () => pool.give(buffer) };
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

function parseContentRange(header: string | undefined): { start: number; end: number; total: number } | null {
  const m = header === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header);
  if (m === null) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: Number(m[3]) };
}

/** A server that ignored the Range header and sent the whole object. */
function fullRange(length: number | undefined): { start: number; end: number; total: number } | null {
  return length === undefined ? null : { start: 0, end: length - 1, total: length };
}

function copySource(bucket: string, s3Key: string): string {
  return `${bucket}/${s3Key.split('/').map(encodeURIComponent).join('/')}`;
}

/** Runs `fn` over `items`, `limit` at a time; results in order; the first failure rejects (after the rest settle). */
async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
) {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i] as T, i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const workers = Array.from({ length: Math.min(limit, items.length) }, worker);
  const settled = await Promise.allSettled(workers);
  for (const s of settled) if (s.status === 'rejected') throw s.reason;
  return results;
}

/** Marks a promise as handled (its rejection is awaited later), so that no unhandledRejection fires meanwhile. */
function quiet<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

function toBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk);
  throw new TypeError('body chunks must be Uint8Array or string');
}

function assertByteCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new RangeError(`${what} must be a non-negative integer, got ${n}`);
}

function isValidKey(key: string): boolean {
  try {
    assertValidKey(key);
    return true;
  } catch {
    return false;
  }
}

function errorName(err: unknown): string | undefined {
  return err instanceof Error ? err.name : undefined;
}

function httpStatus(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null || !('$metadata' in err)) return undefined;
  const meta = err.$metadata as { httpStatusCode?: number } | undefined;
  return meta?.httpStatusCode;
}

/** An absent object or multipart upload (not an absent bucket, which is a configuration error). */
function isNotFound(err: unknown): boolean {
  const name = errorName(err);
  if (name === 'NoSuchBucket') return false;
  return name === 'NoSuchKey' || name === 'NotFound' || name === 'NoSuchUpload' || httpStatus(err) === 404;
}

function isInvalidRange(err: unknown): boolean {
  return errorName(err) === 'InvalidRange' || httpStatus(err) === 416;
}

function isUnsupported(err: unknown): boolean {
  const name = errorName(err);
  return name === 'NotImplemented' || name === 'MethodNotAllowed' || httpStatus(err) === 501;
}
