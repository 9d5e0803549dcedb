/**
 * The SignatureStore port: namespaces' signature trust configurations and the verdicts of verifying signatures
 * against them. Implemented over the metadata database by `KyselySignatureStore` (migration 0014).
 *
 * Contract: every method is atomic. Verdicts belong to their signature manifest: they disappear with it.
 */
import type { Digest } from '../oci/digest.ts';
import type { SignatureVerdict } from '../signing/verdict.ts';

export interface TrustRecord {
  readonly namespace: string;
  /** The stored document (a `SignatureTrust`, parsed by the caller). */
  readonly document: unknown;
  /** Grows by one on every change of the namespace's configuration; 0 means "never configured". */
  readonly revision: number;
  readonly updatedBy: string | null;
  readonly updatedAt: Date;
}

/** One signature's verdict, where it lives and when it was computed. */
export interface StoredVerdict extends SignatureVerdict {
  readonly repository: string;
  /** The signature manifest (cosign `.sig` manifest, sigstore bundle referrer, Notation signature). */
  readonly signatureDigest: Digest;
  /** The manifest it signs. */
  readonly subject: Digest;
  /** Which signature within the signature manifest (its layer index). */
  readonly layer: number;
  /** The trust revision the verdict was computed under. */
  readonly trustRevision: number;
  readonly checkedAt: Date;
}

export interface NewVerdict {
  readonly subject: Digest;
  readonly layer: number;
  readonly verdict: SignatureVerdict;
}

export interface SignatureStore {
  /** The namespace's trust configuration, or null when it was never configured. */
  getTrust(namespace: string): Promise<TrustRecord | null>;

  /** Every configured namespace's trust, ordered by namespace. */
  listTrust(): Promise<TrustRecord[]>;

  /** Stores `document` as the namespace's configuration with the next revision; returns the stored record. */
  putTrust(namespace: string, document: unknown, updatedBy: string | null): Promise<TrustRecord>;

  /**
   * Replaces every verdict of the signature manifest `signatureDigest` in `repository` by `verdicts`, computed
   * under trust `revision`. Returns false (and stores nothing) when that manifest does not exist.
   */
  replaceVerdicts(
    repository: string,
    signatureDigest: Digest,
    verdicts: readonly NewVerdict[],
    revision: number,
  ): Promise<boolean>;

  /** The verdicts about `subject` in `repository`, of every revision, ordered by signature digest and layer. */
  verdictsFor(repository: string, subject: Digest): Promise<StoredVerdict[]>;

  /** The verdicts of the signature manifest `signatureDigest` in `repository`. */
  verdictsOf(repository: string, signatureDigest: Digest): Promise<StoredVerdict[]>;

  /**
   * Signature manifests of the namespace's repositories (by their referrers artifact type, or by a cosign
   * `sha256-<hex>.sig` tag), ordered by repository then digest, after the (repository, digest) cursor `after`.
   */
  signatureManifests(
    namespace: string,
    options: { after?: { repository: string; digest: Digest }; limit: number },
  ): Promise<{ repository: string; digest: Digest }[]>;

  /** The cosign tag-scheme tags (`sha256-<hex>.sig`) pointing at the manifest `digest` in `repository`. */
  signatureTags(repository: string, digest: Digest): Promise<string[]>;

  /** The indexes in `repository` that list `child` among their manifests. */
  parentIndexes(repository: string, child: Digest): Promise<Digest[]>;
}
