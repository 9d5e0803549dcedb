/**
 * Verification of cosign's classic signatures: a "simple signing" JSON payload (one layer of media type
 * `application/vnd.dev.cosign.simplesigning.v1+json` in the `sha256-<hex>.sig` manifest or in an OCI 1.1 referrer
 * of artifact type `application/vnd.dev.cosign.artifact.sig.v1+json`), signed over its exact bytes, with the
 * signature and its verification material in the layer's annotations:
 *
 * - `dev.cosignproject.cosign/signature`: the signature, base64 (ASN.1 DER for ECDSA);
 * - `dev.sigstore.cosign/certificate` / `dev.sigstore.cosign/chain`: the keyless signing certificate and its chain
 *   (PEM);
 * - `dev.sigstore.cosign/bundle`: the Rekor entry, `{"SignedEntryTimestamp": b64, "Payload": {"body": b64,
 *   "integratedTime": n, "logIndex": n, "logID": hex}}`;
 * - `dev.sigstore.cosign/rfc3161timestamp`: `{"SignedRFC3161Timestamp": b64}`.
 *
 * The payload names the signed manifest in `critical.image["docker-manifest-digest"]`. A keyless signature is
 * converted to a sigstore bundle (v0.1, a message signature over the payload, as sigstore-go's OCI example does)
 * and checked with @sigstore/verify's pieces (see sigstore-checks.ts).
 */
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { bundleFromJSON, type Bundle } from '@sigstore/bundle';
import { toSignedEntity } from '@sigstore/verify';
import { pemBlocks, sha256Fingerprint } from './pem.ts';
import { allRekorLogs, checkKeyless, checkTimes, describe } from './sigstore-checks.ts';
import type { CosignKey, CosignTrust } from './trust.ts';
import { unverified, type SignatureVerdict, type SignedSubject } from './verdict.ts';

/** The simple-signing layer media type. */
export const COSIGN_SIMPLE_SIGNING_MEDIA_TYPE = 'application/vnd.dev.cosign.simplesigning.v1+json';
/** The artifact type of cosign's OCI 1.1 signature referrers. */
export const COSIGN_SIGNATURE_ARTIFACT_TYPE = 'application/vnd.dev.cosign.artifact.sig.v1+json';

/** The layer annotations cosign writes (see the module comment for their content). */
export const ANNOTATION_SIGNATURE = 'dev.cosignproject.cosign/signature';
export const ANNOTATION_CERTIFICATE = 'dev.sigstore.cosign/certificate';
export const ANNOTATION_CHAIN = 'dev.sigstore.cosign/chain';
export const ANNOTATION_BUNDLE = 'dev.sigstore.cosign/bundle';
export const ANNOTATION_RFC3161 = 'dev.sigstore.cosign/rfc3161timestamp';

/** One simple-signing layer: its bytes and its descriptor's annotations. */
export interface CosignSimpleSignature {
  readonly payload: Buffer;
  readonly annotations: Readonly<Record<string, string>>;
}

/**
 * Verifies one simple-signing layer for `subject` against `trust` at time `now`; one verdict, never throws.
 *
 * Keyless (a certificate annotation and keyless trust configured): chain to a configured Fulcio root, the
 * signature with the certificate's key, the identity, and the signing time (the Rekor SignedEntryTimestamp or an
 * RFC 3161 timestamp, verified offline; without one, only when `requireSignedTime` is false, at `now`).
 * Key-based: any configured key verifying the payload bytes. Either way the payload must name `subject.digest`.
 */
export function verifyCosignSignature(
  sig: CosignSimpleSignature,
  subject: SignedSubject,
  trust: CosignTrust,
  now: Date,
): Promise<SignatureVerdict> {
  // Asynchronous in its contract so that later checks (e.g. fetching revocation data) can be added.
  return Promise.resolve(verifyLayer(sig, subject, trust, now));
}

function verifyLayer(
  sig: CosignSimpleSignature,
  subject: SignedSubject,
  trust: CosignTrust,
  now: Date,
): SignatureVerdict {
  const fail = (reason: string, extra: Parameters<typeof unverified>[3] = {}): SignatureVerdict =>
    unverified('cosign', 'cosign-simple-signing', reason, extra);
  const encoded = sig.annotations[ANNOTATION_SIGNATURE];
  if (encoded === undefined || encoded === '')
    return fail(`the layer has no ${ANNOTATION_SIGNATURE} annotation`);
  const signature = Buffer.from(encoded, 'base64');
  if (signature.length === 0) return fail('the signature annotation is not base64');
  const certificate = sig.annotations[ANNOTATION_CERTIFICATE];

  const reasons: SignatureVerdict[] = [];
  if (certificate !== undefined && certificate !== '') {
    const verdict = verifyKeyless(sig, signature, certificate, subject, trust, now);
    if (verdict.verified || trust.keys.length === 0) return verdict;
    reasons.push(verdict);
  }
  if (trust.keys.length > 0) {
    const verdict = verifyWithKeys(sig, signature, subject, trust);
    if (verdict.verified) return verdict;
    reasons.unshift(verdict);
  }
  return reasons[0] ?? fail('no cosign public key is configured and the signature carries no certificate');
}

function verifyKeyless(
  sig: CosignSimpleSignature,
  signature: Buffer,
  certificatePem: string,
  subject: SignedSubject,
  trust: CosignTrust,
  now: Date,
): SignatureVerdict {
  const fail = (reason: string, extra: Parameters<typeof unverified>[3] = {}): SignatureVerdict =>
    unverified('cosign', 'cosign-simple-signing', reason, extra);
  const leaf = pemBlocks(certificatePem, 'CERTIFICATE')[0];
  if (leaf === undefined) return fail('the certificate annotation holds no PEM certificate');
  const fingerprint = sha256Fingerprint(leaf);
  if (trust.keyless.length === 0) {
    return fail('the signature is keyless but no keyless trust (Fulcio root) is configured', { fingerprint });
  }
  let bundle: Bundle;
  try {
    // The chain annotation's certificates may only serve as intermediates: trust comes from the configuration.
    const chain = pemBlocks(sig.annotations[ANNOTATION_CHAIN] ?? '', 'CERTIFICATE');
    const certificates = [leaf, ...chain].map((der) => ({ rawBytes: b64(der) }));
    bundle = toBundle(sig, signature, { x509CertificateChain: { certificates } });
  } catch (err) {
    return fail(`the signature's annotations are malformed: ${describe(err)}`, { fingerprint });
  }
  const failures: string[] = [];
  let firstNotes: string[] = [];
  for (const keyless of trust.keyless) {
    const outcome = checkKeyless(bundle, sig.payload, keyless, now);
    if (outcome.ok) {
      const named = payloadDigest(sig.payload);
      if (named !== subject.digest) {
        return fail(digestReason(named, subject), {
          signer: outcome.signer,
          fingerprint,
          notes: outcome.notes,
        });
      }
      return {
        tool: 'cosign',
        format: 'cosign-simple-signing',
        verified: true,
        signer: outcome.signer,
        fingerprint: outcome.fingerprint,
        reason: null,
        notes: outcome.notes,
        signedAt: outcome.signedAt,
      };
    }
    if (failures.length === 0) firstNotes = outcome.notes;
    failures.push(trust.keyless.length > 1 ? `${keyless.name}: ${outcome.reason}` : outcome.reason);
  }
  return fail(failures.join('; '), { fingerprint, notes: firstNotes });
}

function verifyWithKeys(
  sig: CosignSimpleSignature,
  signature: Buffer,
  subject: SignedSubject,
  trust: CosignTrust,
): SignatureVerdict {
  const fail = (reason: string, extra: Parameters<typeof unverified>[3] = {}): SignatureVerdict =>
    unverified('cosign', 'cosign-simple-signing', reason, extra);
  const names: string[] = [];
  for (const configured of trust.keys) {
    names.push(configured.name);
    const key = loadKey(configured);
    if (key === null || !verifiesWithKey(key, sig.payload, signature)) continue;
    const fingerprint = sha256Fingerprint(key.export({ format: 'der', type: 'spki' }));
    const named = payloadDigest(sig.payload);
    if (named !== subject.digest)
      return fail(digestReason(named, subject), { signer: configured.name, fingerprint });
    const notes: string[] = [];
    let signedAt: string | null = null;
    if (sig.annotations[ANNOTATION_BUNDLE] !== undefined) {
      // The Rekor entry only proves when the signature was logged; a key-based signature verifies without it.
      let bundle: Bundle;
      try {
        bundle = toBundle(sig, signature, { publicKey: { hint: '' } });
      } catch (err) {
        return fail(`the signature's annotations are malformed: ${describe(err)}`, {
          signer: configured.name,
          fingerprint,
        });
      }
      try {
        const times = checkTimes(toSignedEntity(bundle, sig.payload), allRekorLogs(trust), [], notes);
        const first = times[0];
        if (first !== undefined) signedAt = first.toISOString();
      } catch (err) {
        return fail(describe(err), { signer: configured.name, fingerprint, notes });
      }
    }
    return {
      tool: 'cosign',
      format: 'cosign-simple-signing',
      verified: true,
      signer: configured.name,
      fingerprint,
      reason: null,
      notes,
      signedAt,
    };
  }
  return fail(`the signature does not verify with any configured key (${names.join(', ')})`);
}

/**
 * Whether `signature` over `payload` verifies with `key` as cosign signs: ECDSA (DER) with SHA-256, or for P-384
 * and P-521 keys also SHA-384 / SHA-512 (what KMS keys of those curves sign with); Ed25519 over the bytes; RSA
 * PKCS#1 v1.5 with SHA-256.
 */
export function verifiesWithKey(key: KeyObject, payload: Buffer, signature: Buffer): boolean {
  const attempt = (algorithm: string | null): boolean => {
    try {
      return verify(algorithm, payload, key, signature);
    } catch {
      return false;
    }
  };
  switch (key.asymmetricKeyType) {
    case 'ed25519':
      return attempt(null);
    case 'ec': {
      const curve = key.asymmetricKeyDetails?.namedCurve;
      if (attempt('sha256')) return true;
      if (curve === 'secp384r1') return attempt('sha384');
      if (curve === 'secp521r1') return attempt('sha512');
      return false;
    }
    case 'rsa':
      return attempt('sha256');
    default:
      return false;
  }
}

/** The digest the payload names (`critical.image["docker-manifest-digest"]`), or null when it names none. */
export function payloadDigest(payload: Buffer): string | null {
  try {
    const parsed = JSON.parse(payload.toString('utf8')) as {
      critical?: { image?: { 'docker-manifest-digest'?: unknown } };
    };
    const digest = parsed.critical?.image?.['docker-manifest-digest'];
    return typeof digest === 'string' ? digest : null;
  } catch {
    return null;
  }
}

function digestReason(named: string | null, subject: SignedSubject): string {
  return named === null
    ? 'the payload is not a cosign simple-signing payload naming a manifest digest'
    : `the payload names another digest (${named}), not ${subject.digest}`;
}

function loadKey(configured: CosignKey): KeyObject | null {
  try {
    return createPublicKey(configured.publicKey);
  } catch {
    return null;
  }
}

/** The layer as a sigstore bundle v0.1 (JSON form) with the given verification material content. */
function toBundle(sig: CosignSimpleSignature, signature: Buffer, content: Record<string, unknown>): Bundle {
  const tlogEntries: unknown[] = [];
  const rekor = sig.annotations[ANNOTATION_BUNDLE];
  if (rekor !== undefined && rekor !== '') {
    const parsed = JSON.parse(rekor) as {
      SignedEntryTimestamp?: string;
      Payload?: { body?: string; integratedTime?: number; logIndex?: number; logID?: string };
    };
    const body = Buffer.from(parsed.Payload?.body ?? '', 'base64');
    const kind = JSON.parse(body.toString('utf8')) as { kind?: string; apiVersion?: string };
    tlogEntries.push({
      logIndex: String(parsed.Payload?.logIndex ?? ''),
      logId: { keyId: Buffer.from(parsed.Payload?.logID ?? '', 'hex').toString('base64') },
      kindVersion: { kind: kind.kind ?? '', version: kind.apiVersion ?? '' },
      integratedTime: String(parsed.Payload?.integratedTime ?? ''),
      inclusionPromise: { signedEntryTimestamp: parsed.SignedEntryTimestamp ?? '' },
      canonicalizedBody: body.toString('base64'),
    });
  }
  const rfc3161Timestamps: unknown[] = [];
  const timestamp = sig.annotations[ANNOTATION_RFC3161];
  if (timestamp !== undefined && timestamp !== '') {
    const parsed = JSON.parse(timestamp) as { SignedRFC3161Timestamp?: string };
    rfc3161Timestamps.push({ signedTimestamp: parsed.SignedRFC3161Timestamp ?? '' });
  }
  return bundleFromJSON({
    mediaType: 'application/vnd.dev.sigstore.bundle+json;version=0.1',
    verificationMaterial: { ...content, tlogEntries, timestampVerificationData: { rfc3161Timestamps } },
    messageSignature: {
      messageDigest: {
        algorithm: 'SHA2_256',
        digest: b64(createHash('sha256').update(sig.payload).digest()),
      },
      signature: b64(signature),
    },
  });
}

function b64(bytes: Buffer): string {
  return bytes.toString('base64');
}
