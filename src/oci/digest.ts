/**
 * Content digests as the OCI image-spec defines them: `algorithm ":" encoded`. Berth accepts the two registered
 * algorithms, sha256 (64 lowercase hex) and sha512 (128 lowercase hex); anything else is DIGEST_INVALID.
 */
import { createHash, type Hash } from 'node:crypto';
import { DigestInvalidError } from './errors.ts';

export type DigestAlgorithm = 'sha256' | 'sha512';

/** A digest string that has passed `parseDigest`. */
export type Digest = `${DigestAlgorithm}:${string}`;

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
const DIGEST_RE = /^(sha256|sha512):([a-f0-9]+)$/;
const GENERIC_DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export interface ParsedDigest {
  readonly algorithm: DigestAlgorithm;
  readonly hex: string;
  readonly digest: Digest;
}

/** True when `s` has the grammar of a digest (any algorithm), so it is a digest reference rather than a tag. */
export function looksLikeDigest(s: string): boolean {
  return s.includes(':') && GENERIC_DIGEST_RE.test(s);
}

/** Parses and validates a digest; throws DigestInvalidError for a bad grammar or an unsupported algorithm. */
export function parseDigest(s: string): ParsedDigest {
  const m = DIGEST_RE.exec(s);
  if (!m) {
    if (looksLikeDigest(s))
      throw new DigestInvalidError(`unsupported digest algorithm or encoding: ${clip(s)}`);
    throw new DigestInvalidError(`invalid digest: ${clip(s)}`);
  }
  const algorithm = m[1] as DigestAlgorithm;
  const hex = m[2] as string;
  if (hex.length !== HEX_LENGTH[algorithm]) {
    throw new DigestInvalidError(`invalid ${algorithm} digest length: ${clip(s)}`);
  }
  return { algorithm, hex, digest: s as Digest };
}

/** True for a valid, supported digest. */
export function isDigest(s: string): s is Digest {
  const m = DIGEST_RE.exec(s);
  return m !== null && (m[2] as string).length === HEX_LENGTH[m[1] as DigestAlgorithm];
}

/** Digest of in-memory bytes (manifests only; blobs are hashed as they stream). */
export function digestOf(bytes: Uint8Array, algorithm: DigestAlgorithm = 'sha256'): Digest {
  return `${algorithm}:${createHash(algorithm).update(bytes).digest('hex')}`;
}

/** A streaming hasher: feed chunks as they pass, read the digest at the end. */
export class DigestHasher {
  private readonly hash: Hash;
  private bytes = 0;
  constructor(readonly algorithm: DigestAlgorithm) {
    this.hash = createHash(algorithm);
  }
  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
  }
  get size(): number {
    return this.bytes;
  }
  digest(): Digest {
    return `${this.algorithm}:${this.hash.digest('hex')}`;
  }
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}...` : s;
}
