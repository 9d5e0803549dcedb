/**
 * The typed failures of reading an image layer. Each names what was wrong with the bytes, so a caller can tell
 * a layer it cannot read (an unsupported compression) from a layer that is broken (bad checksum, cut short).
 */

/** Base class: every layer-reading failure is a `LayerError`. */
export class LayerError extends Error {
  override name = 'LayerError';
}

/** The layer uses a format this process cannot decode (zstd on a Node without `zlib.createZstdDecompress`). */
export class UnsupportedLayerError extends LayerError {
  override name = 'UnsupportedLayerError';
}

/** A tar header is malformed: its checksum does not match, or a numeric or PAX field cannot be parsed. */
export class CorruptLayerError extends LayerError {
  override name = 'CorruptLayerError';
}

/** The stream ended inside a header or an entry's body (or the compressed stream ended early). */
export class TruncatedLayerError extends LayerError {
  override name = 'TruncatedLayerError';
}

/** `read()` was asked for an entry larger than the cap it was given; nothing was buffered. */
export class EntryTooLargeError extends LayerError {
  override name = 'EntryTooLargeError';
}

/** The wanted files of an image add up to more than the walker's total cap (`maxTotalBytes`). */
export class WantedFilesTooLargeError extends LayerError {
  override name = 'WantedFilesTooLargeError';
}
