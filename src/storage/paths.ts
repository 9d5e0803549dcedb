/**
 * The storage layout, drawn once. Every key a registry component writes is built here.
 *
 * ```
 * <root>/
 *   blobs/
 *     sha256/
 *       ab/                       first two hex characters, to keep directories small
 *         abcdef0123...           the blob's bytes, named by the digest's hex; written once, shared by
 *                                 every repository that links it (links live in metadata)
 *     sha512/...
 *   (driver-private upload area, e.g. `_uploads/<id>` on the filesystem, multipart uploads on S3)
 * ```
 *
 * Which repositories may see a blob is metadata (repository blob links), never the storage layout.
 */
import { parseDigest } from '../oci/digest.ts';

/** The key of a committed blob. Throws DigestInvalidError for a malformed digest. */
export function blobKey(digest: string): string {
  const { algorithm, hex } = parseDigest(digest);
  return `blobs/${algorithm}/${hex.slice(0, 2)}/${hex}`;
}

/** The prefix under which all blobs live (for listing by garbage collection). */
export const BLOBS_PREFIX = 'blobs';
