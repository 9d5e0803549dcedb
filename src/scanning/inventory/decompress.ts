/**
 * Turns a layer blob into its tar bytes. The compression is detected from the magic bytes, not the media type:
 * registries and tools are known to label gzip layers as plain tar and the reverse.
 */
import { Readable, pipeline, type Transform } from 'node:stream';
import * as zlib from 'node:zlib';

import type { Chunk } from './byte-source.ts';
import { CorruptLayerError, LayerError, TruncatedLayerError, UnsupportedLayerError } from './errors.ts';

/** The compressions a layer can come in. */
export type LayerCompression = 'gzip' | 'zstd' | 'none';

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/** The compression the first bytes of a blob announce; anything else is taken as an uncompressed tar. */
export function detectCompression(head: Buffer): LayerCompression {
  if (head.length >= 2 && head.subarray(0, 2).equals(GZIP_MAGIC)) return 'gzip';
  if (head.length >= 4 && head.subarray(0, 4).equals(ZSTD_MAGIC)) return 'zstd';
  return 'none';
}

type ZstdFactory = () => Transform;

/** `zlib.createZstdDecompress` when this Node has it (22.15+, 23.8+), else null. */
export function zstdDecompressor(): ZstdFactory | null {
  const factory = (zlib as unknown as { createZstdDecompress?: ZstdFactory }).createZstdDecompress;
  return typeof factory === 'function' ? () => factory.call(zlib) : null;
}

function toBuffer(chunk: Chunk): Buffer {
  return typeof chunk === 'string'
    ? Buffer.from(chunk)
    : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/** A decompressor's error as a layer error: a cut stream is truncated, anything else from zlib is corrupt. */
function asLayerError(err: unknown, compression: LayerCompression): unknown {
  if (err instanceof LayerError || !(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  if (
    typeof code !== 'string' ||
    !(code.startsWith('Z_') || code.startsWith('ZSTD') || code.startsWith('ERR_ZSTD'))
  ) {
    return err; // not the decompressor's: e.g. the source stream failed, keep its error as is
  }
  const Cls = /unexpected end of file/i.test(err.message) ? TruncatedLayerError : CorruptLayerError;
  return new Cls(`${compression} layer: ${err.message}`, { cause: err });
}

/**
 * The tar bytes of a layer blob streamed through the matching decompressor (or as is for an uncompressed
 * tar), in bounded memory. Rejects with `UnsupportedLayerError` for zstd on a Node without zstd support,
 * `TruncatedLayerError` or `CorruptLayerError` when the compressed stream is cut or damaged. Leaving the
 * iteration early stops the source.
 */
export async function* decompressLayer(blob: AsyncIterable<Chunk>): AsyncGenerator<Buffer> {
  const iterator = blob[Symbol.asyncIterator]();
  const head: Buffer[] = [];
  let headLength = 0;
  let ended = false;
  try {
    while (headLength < ZSTD_MAGIC.length) {
      const next = await iterator.next();
      if (next.done) {
        ended = true;
        break;
      }
      const chunk = toBuffer(next.value);
      head.push(chunk);
      headLength += chunk.length;
    }
  } catch (err) {
    await iterator.return?.();
    throw err;
  }
  const prefix = Buffer.concat(head);
  async function* whole(): AsyncGenerator<Buffer> {
    try {
      if (prefix.length > 0) yield prefix;
      while (!ended) {
        const next = await iterator.next();
        if (next.done) ended = true;
        else yield toBuffer(next.value);
      }
    } finally {
      if (!ended) await iterator.return?.();
    }
  }

  const compression = detectCompression(prefix);
  if (compression === 'none') {
    yield* whole();
    return;
  }
  let inflater: Transform;
  if (compression === 'gzip') {
    inflater = zlib.createGunzip();
  } else {
    const zstd = zstdDecompressor();
    if (!zstd) {
      if (!ended) await iterator.return?.();
      throw new UnsupportedLayerError(
        `zstd-compressed layer: this Node (${process.version}) has no zlib.createZstdDecompress; Node 22.15+ or 23.8+ is needed`,
      );
    }
    inflater = zstd();
  }
  // pipeline destroys the inflater with the source's error (and the source when the inflater fails or is
  // abandoned), so both kinds of failure surface in the loop below.
  pipeline(Readable.from(whole(), { objectMode: false }), inflater, () => {});
  try {
    for await (const chunk of inflater) yield chunk as Buffer;
  } catch (err) {
    throw asLayerError(err, compression);
  }
}
