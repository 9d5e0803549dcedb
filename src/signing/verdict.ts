/**
 * A verdict: what verifying one signature against a namespace's trust configuration concluded.
 *
 * Verdicts are per signature artifact and per signed manifest digest; a manifest counts as signed when one of its
 * verdicts is `verified`. The verifiers (`cosign.ts`, `sigstore-bundle.ts`, `notation.ts`) are pure functions of the
 * signature's bytes, the signed digest, the trust configuration and the time: they never throw for a bad
 * signature, they return a verdict saying exactly why it does not verify.
 */
import type { Digest } from '../oci/digest.ts';

/** The tool that made a signature. */
export type SignatureTool = 'cosign' | 'notation';

/**
 * The signature's envelope:
 * - `cosign-simple-signing`: cosign's classic format, a simple-signing JSON payload layer with the signature in the
 *   `dev.cosignproject.cosign/signature` annotation (tag scheme `sha256-<hex>.sig` or an OCI 1.1 referrer);
 * - `sigstore-bundle`: a sigstore bundle (v0.1 to v0.3) as a referrer (cosign 3);
 * - `notation-jws` / `notation-cose`: a Notation signature envelope.
 */
export type SignatureFormat = 'cosign-simple-signing' | 'sigstore-bundle' | 'notation-jws' | 'notation-cose';

export interface SignatureVerdict {
  readonly tool: SignatureTool;
  readonly format: SignatureFormat;
  /** True only when the signature verified cryptographically against a trusted key or root, for `subject`. */
  readonly verified: boolean;
  /**
   * Who signed, as far as the signature says: the configured key's name for key-based signatures, the
   * certificate's identity (SAN, e.g. an e-mail or a workflow URI) for keyless ones, the certificate's subject DN
   * for Notation. Null when nothing identifies the signer (e.g. a signature no configured key verifies).
   */
  readonly signer: string | null;
  /** `sha256:<hex>` of the public key (SPKI DER) or of the signing certificate (DER); null when unknown. */
  readonly fingerprint: string | null;
  /** Why the signature is not verified (null when verified): a sentence a user can act on. */
  readonly reason: string | null;
  /**
   * Checks that could not be done offline or were skipped by configuration (e.g. `certificate revocation not
   * checked (offline)`, `no transparency log entry: signed time not proven`); empty when none.
   */
  readonly notes: readonly string[];
  /** When the signature says it was made (a proven time when the format has one), ISO 8601; null when unknown. */
  readonly signedAt: string | null;
}

/** The manifest a signature signs, as the registry knows it. */
export interface SignedSubject {
  readonly repository: string;
  readonly digest: Digest;
  /** The subject's media type and size, when known (Notation's payload names them and must match). */
  readonly mediaType?: string;
  readonly size?: number;
}

/** A verdict that did not verify, for `reason`. */
export function unverified(
  tool: SignatureTool,
  format: SignatureFormat,
  reason: string,
  extra: Partial<Omit<SignatureVerdict, 'tool' | 'format' | 'verified' | 'reason'>> = {},
): SignatureVerdict {
  return {
    tool,
    format,
    verified: false,
    signer: extra.signer ?? null,
    fingerprint: extra.fingerprint ?? null,
    reason,
    notes: extra.notes ?? [],
    signedAt: extra.signedAt ?? null,
  };
}
