import { Transform, type TransformCallback } from 'node:stream';
import type { DigestHasher } from '../oci/digest.ts';

/**
 * A pass-through that feeds every chunk to `hasher` (when given) and counts bytes, failing the stream once more
 * than `limit` bytes pass. Blob bodies go through one of these on their way to storage, so the digest is
 * known the moment the last byte is stored, with no second read.
 */
export class HashingStream extends Transform {
  bytes = 0;
  constructor(
    private readonly hasher: DigestHasher | null,
    private readonly limit = Number.POSITIVE_INFINITY,
  ) {
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.limit) {
      done(new BodyTooLongError(this.limit));
      return;
    }
    this.hasher?.update(chunk);
    done(null, chunk);
  }
}

/** The body carried more bytes than its Content-Length or Content-Range announced. */
export class BodyTooLongError extends Error {
  constructor(readonly limit: number) {
    super(`body is longer than the announced ${limit} bytes`);
  }
}
