/**
 * Multipart uploads: cutting a body into parts in memory, and the requests that assemble an object from parts.
 *
 * A body is read into part-sized buffers and each part is sent while the next one is filled, so at most two parts
 * are in memory per operation, however long the body. An object holds at most MAX_PARTS parts.
 */
import type { Readable } from 'node:stream';

import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  UploadPartCommand,
  UploadPartCopyCommand,
  type CompletedPart,
} from '@aws-sdk/client-s3';

import type { BufferRecycler } from '../../buffer-recycler.ts';
import { StorageError } from '../../driver.ts';
import { toBytes } from '../../driver-helpers.ts';
import type { S3Bucket } from './bucket.ts';
import { isNotFound, isUnsupported } from './errors.ts';
import { quiet } from './promises.ts';
import { sendBody } from './send-body.ts';

const MiB = 1024 * 1024;
/** S3's smallest multipart part (except the last one). */
export const MIN_PART_SIZE = 5 * MiB;
/** S3's largest multipart part, and the largest object a single PutObject or CopyObject may write. */
export const MAX_PART_SIZE = 5 * 1024 * MiB;
export const DEFAULT_PART_SIZE = 8 * MiB;
export const MAX_PARTS = 10_000;
/** A part buffer starts as a list of the body's own chunks and becomes one allocation past this size. */
const SMALL_PART = 256 * 1024;

/** A part of a body, in memory; `release` hands its buffer back to the recycler once it has been sent. */
export interface Part {
  readonly bytes: Buffer;
  readonly release: () => void;
}

/**
 * Reads `source` into parts of `want()` bytes each (asked again for every part, never more than the recycler's
 * buffer size), the last one shorter, or none for an empty source. A part starts as a list of the source's own
 * chunks and moves into a recycled buffer once it grows past SMALL_PART, so a small body costs no part-sized
 * allocation. Returning early destroys a Readable source (as `for await` does).
 */
export async function* cutParts(
  source: AsyncIterable<unknown> | Iterable<unknown>,
  want: () => number,
  buffers: BufferRecycler,
): AsyncGenerator<Part, void, undefined> {
  let part = new PartBuilder(want(), buffers);
  for await (const chunk of source) {
    let bytes = toBytes(chunk);
    while (bytes.byteLength > 0) {
      bytes = bytes.subarray(part.add(bytes));
      if (part.full) {
        yield part.take();
        part = new PartBuilder(want(), buffers);
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
    private readonly buffers: BufferRecycler,
  ) {}

  get full(): boolean {
    return this.size === this.capacity;
  }

  /** Takes as much of `bytes` as fits; returns how much. */
  add(bytes: Uint8Array): number {
    const n = Math.min(bytes.byteLength, this.capacity - this.size);
    const piece = bytes.subarray(0, n);
    if (this.buffer === undefined && this.size + n > SMALL_PART) {
      this.buffer = this.buffers.take();
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
    const { buffer, buffers } = this;
    if (buffer === undefined)
      return { bytes: Buffer.concat(this.chunks, this.size), release: () => undefined };
    return { bytes: buffer.subarray(0, this.size), release: () => buffers.give(buffer) };
  }
}

/**
 * One multipart upload of `key`: S3 publishes the object only at `complete`, whole, and never when it is aborted.
 * Parts are numbered from 1; every part but the last must hold at least MIN_PART_SIZE bytes.
 */
export class MultipartUpload {
  constructor(
    private readonly bucket: S3Bucket,
    readonly key: string,
    readonly uploadId: string,
  ) {}

  /** Starts a multipart upload of `key` (CreateMultipartUpload). */
  static async start(bucket: S3Bucket, key: string): Promise<MultipartUpload> {
    const created = await bucket.client.send(
      new CreateMultipartUploadCommand({ Bucket: bucket.name, Key: key }),
    );
    return new MultipartUpload(bucket, key, created.UploadId as string);
  }

  /** Sends part `number` (UploadPart); a stream body must hold exactly `length` bytes. */
  async sendPart(number: number, body: Uint8Array | Readable, length: number): Promise<CompletedPart> {
    const command = new UploadPartCommand({
      Bucket: this.bucket.name,
      Key: this.key,
      UploadId: this.uploadId,
      PartNumber: number,
      Body: body,
      ContentLength: length,
    });
    const out = await sendBody(body, (abortSignal) => this.bucket.client.send(command, { abortSignal }));
    return { PartNumber: number, ETag: out.ETag };
  }

  /**
   * Makes the first `length` bytes of the object at `sourceKey` part `number`, server-side (UploadPartCopy): no
   * byte passes through this process. Not every S3-compatible server has it (see `isUnsupported`).
   */
  async copyPart(number: number, sourceKey: string, length: number): Promise<CompletedPart> {
    const out = await this.bucket.client.send(
      new UploadPartCopyCommand({
        Bucket: this.bucket.name,
        Key: this.key,
        UploadId: this.uploadId,
        PartNumber: number,
        CopySource: this.bucket.copySource(sourceKey),
        CopySourceRange: `bytes=0-${length - 1}`,
      }),
    );
    return { PartNumber: number, ETag: out.CopyPartResult?.ETag };
  }

  /** Publishes the object made of `parts` (CompleteMultipartUpload). */
  async complete(parts: CompletedPart[]): Promise<void> {
    await this.bucket.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucket.name,
        Key: this.key,
        UploadId: this.uploadId,
        MultipartUpload: { Parts: parts },
      }),
    );
  }

  /** Discards the upload and its parts; succeeds also when it is gone already. */
  async abort(): Promise<void> {
    try {
      await this.bucket.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket.name, Key: this.key, UploadId: this.uploadId }),
      );
    } catch (err) {
      // Already completed or aborted; or a server that cannot abort (s3rver answers MethodNotAllowed).
      if (isNotFound(err) || isUnsupported(err)) return;
      throw err;
    }
  }
}

/**
 * Sends a body longer than one part as a multipart upload of `s3Key`: the parts already `read`, then the `rest`.
 * A part is sent while the next is read, never more. Returns the byte count; aborts the upload if anything fails.
 */
export async function putMultipart(
  bucket: S3Bucket,
  s3Key: string,
  read: Part[],
  rest: AsyncIterator<Part>,
): Promise<number> {
  const upload = await MultipartUpload.start(bucket, s3Key);
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
      sent.push(quiet(upload.sendPart(number, bytes, bytes.byteLength).finally(release)));
    }
    await upload.complete(await Promise.all(sent));
    return size;
  } catch (err) {
    await Promise.allSettled(sent);
    await upload.abort().catch(() => undefined);
    throw err;
  }
}
