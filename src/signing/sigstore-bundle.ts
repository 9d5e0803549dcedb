/**
 * Verification of a sigstore bundle (media types `application/vnd.dev.sigstore.bundle+json;version=0.1`, `0.2`,
 * `application/vnd.dev.sigstore.bundle.v0.3+json`) as the signature of a manifest.
 *
 * cosign 3 signs an image (`cosign sign`, new bundle format) with a DSSE envelope of payload type
 * `application/vnd.in-toto+json` holding an in-toto Statement (`https://in-toto.io/Statement/v1`) whose subject
 * digest is the manifest's (`{"sha256": "<hex>"}`) and whose predicate type is `https://sigstore.dev/cosign/sign/v1`
 * (predicate `{}`); `cosign attest` writes the same with another predicate type. It pushes the bundle as the single
 * layer of a referrer whose artifact type is `application/vnd.dev.sigstore.bundle.v0.3+json`. A bundle verifies
 * here when its statement names `subject.digest` and the envelope verifies: keyless against `trust.keyless`
 * (certificate chain, identity, transparency log entry / RFC 3161 timestamp, offline), or with a `publicKey` hint
 * against `trust.keys`.
 *
 * A message-signature bundle signs raw bytes; with only the manifest's digest at hand its signature cannot be
 * checked (ECDSA and Ed25519 verification need the signed bytes), so such a bundle does not verify.
 */
import { bundleFromJSON, ValidationError, type Bundle } from '@sigstore/bundle';
import { toSignedEntity } from '@sigstore/verify';
import { verifiesWithKey } from './cosign.ts';
import { sha256Fingerprint } from './pem.ts';
import { allRekorLogs, checkKeyless, checkTimes, describe, keylessMaterial } from './sigstore-checks.ts';
import type { CosignTrust } from './trust.ts';
import { unverified, type SignatureVerdict, type SignedSubject } from './verdict.ts';
import { createPublicKey, type KeyObject } from 'node:crypto';

/** The artifact type of cosign 3's bundle referrers (and the bundle v0.3 media type). */
export const SIGSTORE_BUNDLE_V03_MEDIA_TYPE = 'application/vnd.dev.sigstore.bundle.v0.3+json';
/** The predicate type cosign 3 uses for an image signature. */
export const COSIGN_SIGN_PREDICATE_TYPE = 'https://sigstore.dev/cosign/sign/v1';
const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
const STATEMENT_TYPES = new Set(['https://in-toto.io/Statement/v1', 'https://in-toto.io/Statement/v0.1']);

/**
 * Verifies the sigstore bundle `bundleJson` (the referrer's layer bytes) as a signature of `subject`, against
 * `trust` at time `now`; one verdict, never throws.
 */
export function verifySigstoreBundle(
  bundleJson: Buffer,
  subject: SignedSubject,
  trust: CosignTrust,
  now: Date,
): Promise<SignatureVerdict> {
  // Asynchronous in its contract so that later checks (e.g. fetching revocation data) can be added.
  return Promise.resolve(verifyBundle(bundleJson, subject, trust, now));
}

function verifyBundle(
  bundleJson: Buffer,
  subject: SignedSubject,
  trust: CosignTrust,
  now: Date,
): SignatureVerdict {
  const fail = (reason: string, extra: Parameters<typeof unverified>[3] = {}): SignatureVerdict =>
    unverified('cosign', 'sigstore-bundle', reason, extra);
  let bundle: Bundle;
  try {
    bundle = bundleFromJSON(JSON.parse(bundleJson.toString('utf8')));
  } catch (err) {
    const fields = err instanceof ValidationError ? ` (${err.fields.join(', ')})` : '';
    return fail(`not a sigstore bundle: ${describe(err)}${fields}`);
  }
  if (bundle.content.$case !== 'dsseEnvelope') {
    return fail(
      'the bundle holds a message signature over bytes that are not available here; ' +
        'only DSSE (in-toto statement) bundles, as cosign writes for images, can be verified',
    );
  }
  const envelope = bundle.content.dsseEnvelope;
  const statement = subjectProblem(envelope.payloadType, envelope.payload, subject);
  if (typeof statement === 'string') return fail(statement);
  const notes =
    statement.predicateType === COSIGN_SIGN_PREDICATE_TYPE
      ? []
      : [
          `an attestation of predicate type ${statement.predicateType ?? '(none)'}, not a cosign image signature`,
        ];

  const content = bundle.verificationMaterial.content;
  if (content.$case === 'publicKey') {
    return verifyKeyBased(bundle, pae(envelope.payloadType, envelope.payload), trust, notes);
  }
  if (trust.keyless.length === 0) {
    return fail('the bundle is keyless but no keyless trust (Fulcio root) is configured');
  }
  const failures: string[] = [];
  let first: { fingerprint: string | null; notes: string[] } | undefined;
  for (const keyless of trust.keyless) {
    const outcome = checkKeyless(bundle, undefined, keyless, now);
    if (outcome.ok) {
      return {
        tool: 'cosign',
        format: 'sigstore-bundle',
        verified: true,
        signer: outcome.signer,
        fingerprint: outcome.fingerprint,
        reason: null,
        notes: [...notes, ...outcome.notes],
        signedAt: outcome.signedAt,
      };
    }
    first ??= { fingerprint: outcome.fingerprint, notes: outcome.notes };
    failures.push(trust.keyless.length > 1 ? `${keyless.name}: ${outcome.reason}` : outcome.reason);
  }
  return fail(failures.join('; '), { fingerprint: first?.fingerprint ?? null, notes: first?.notes ?? [] });
}

function verifyKeyBased(
  bundle: Bundle,
  signed: Buffer,
  trust: CosignTrust,
  notes: string[],
): SignatureVerdict {
  const fail = (reason: string, extra: Parameters<typeof unverified>[3] = {}): SignatureVerdict =>
    unverified('cosign', 'sigstore-bundle', reason, extra);
  if (trust.keys.length === 0)
    return fail('the bundle is signed with a key but no cosign public key is configured');
  const entity = toSignedEntity(bundle);
  const signature = entity.signature.signature;
  for (const configured of trust.keys) {
    let key: KeyObject;
    try {
      key = createPublicKey(configured.publicKey);
    } catch {
      continue;
    }
    if (!verifiesWithKey(key, signed, signature)) continue;
    const fingerprint = sha256Fingerprint(key.export({ format: 'der', type: 'spki' }));
    const timestampAuthorities = trust.keyless.flatMap((k) => {
      try {
        return keylessMaterial(k).timestampAuthorities;
      } catch {
        return [];
      }
    });
    const logNotes = [...notes];
    let times: Date[];
    try {
      times = checkTimes(entity, allRekorLogs(trust), timestampAuthorities, logNotes);
    } catch (err) {
      return fail(describe(err), { signer: configured.name, fingerprint, notes: logNotes });
    }
    const first = times.length > 0 ? new Date(Math.min(...times.map((t) => t.getTime()))) : null;
    return {
      tool: 'cosign',
      format: 'sigstore-bundle',
      verified: true,
      signer: configured.name,
      fingerprint,
      reason: null,
      notes: logNotes,
      signedAt: first?.toISOString() ?? null,
    };
  }
  return fail(
    `the signature does not verify with any configured key (${trust.keys.map((k) => k.name).join(', ')})`,
    {
      notes,
    },
  );
}

/** The statement when the DSSE payload is an in-toto statement naming `subject.digest`, else why not. */
function subjectProblem(
  payloadType: string,
  payload: Buffer,
  subject: SignedSubject,
): { predicateType: string | undefined } | string {
  if (payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    return `the DSSE payload type is ${payloadType}, not an in-toto statement (${IN_TOTO_PAYLOAD_TYPE})`;
  }
  let statement: { _type?: unknown; subject?: unknown; predicateType?: unknown };
  try {
    statement = JSON.parse(payload.toString('utf8')) as typeof statement;
  } catch {
    return 'the DSSE payload is not JSON';
  }
  if (typeof statement._type !== 'string' || !STATEMENT_TYPES.has(statement._type)) {
    return 'the DSSE payload is not an in-toto statement';
  }
  const [algorithm, hex] = subject.digest.split(':') as [string, string];
  const subjects = Array.isArray(statement.subject)
    ? (statement.subject as { digest?: Record<string, unknown> }[])
    : [];
  if (!subjects.some((s) => s.digest?.[algorithm] === hex)) {
    const named = subjects.flatMap((s) =>
      Object.entries(s.digest ?? {}).map(([a, h]) => `${a}:${String(h)}`),
    );
    return `the statement names another digest (${named.join(', ') || 'none'}), not ${subject.digest}`;
  }
  return { predicateType: typeof statement.predicateType === 'string' ? statement.predicateType : undefined };
}

/** DSSE's pre-authentication encoding: what a DSSE signature signs. */
function pae(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${type.length} `, 'utf8'),
    type,
    Buffer.from(` ${payload.length} `, 'utf8'),
    payload,
  ]);
}
