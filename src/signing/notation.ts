/**
 * Verification of Notation signatures (https://github.com/notaryproject/specifications): one signature envelope,
 * JWS (`application/jose+json`) or COSE (`application/cose`), against a namespace's Notation trust stores and
 * trust policies, as Notation's verification (trust-store-trust-policy.md, "Signature Verification") does it:
 *
 * 1. the trust policy for the subject's repository is chosen (`notation-policy.ts`);
 * 2. integrity: the envelope is well formed, has no critical attribute this verifier does not understand, its
 *    certificate chain is a code-signing chain, its signature verifies with the leaf's key under the algorithm the
 *    key calls for, and its payload names the subject (digest, and media type and size when known);
 * 3. authenticity: the chain contains a certificate of one of the policy's trust stores of the type the signing
 *    scheme calls for (`ca` for notary.x509, `signingAuthority` for notary.x509.signingAuthority), and the leaf's
 *    subject is a trusted identity;
 * 4. expiry: `io.cncf.notary.expiry` is later than now;
 * 5. authentic timestamp: for notary.x509 the chain is valid over the time range an RFC 3161 timestamp
 *    countersignature proves (genTime ± accuracy; the TSA must chain to one of the policy's `tsa` stores) or,
 *    without a timestamp, now; for notary.x509.signingAuthority it is valid at the authentic signing time;
 * 6. revocation: needs OCSP or CRL fetches, which an offline verifier cannot make: noted, never failed.
 *
 * Berth's mapping of Notation's outcome to a verdict: `verified` is true only when integrity and authenticity
 * were checked and passed and every check the policy's level enforces passed. Failures of checks the level only
 * logs go into `notes`. Levels `audit` and `skip` never give a verified verdict, since under them Notation accepts
 * any signature (audit records, skip does not look); their reason starts "trust policy <name> is at level ...".
 */
import { createHash } from 'node:crypto';
import type { NotationTrust, NotationTrustPolicy } from './trust.ts';
import { unverified, type SignatureFormat, type SignatureVerdict, type SignedSubject } from './verdict.ts';
import {
  algorithmForKey,
  EnvelopeError,
  parsePayload,
  signedAttributesProblem,
  unknownCritical,
  verifyWithAlgorithm,
  type NotationEnvelope,
} from './notation-envelope.ts';
import { decodeJwsEnvelope } from './notation-jws.ts';
import { decodeCoseEnvelope } from './notation-cose.ts';
import { checkActions, selectTrustPolicy, type NotationCheck } from './notation-policy.ts';
import { verifyTimestampToken, type VerifiedTimestamp } from './notation-timestamp.ts';
import {
  chainsTo,
  codeSigningChainProblem,
  parseCertificates,
  parseDn,
  parsePemCertificates,
  rdnsInclude,
  subjectDn,
  subjectRdns,
  validityProblem,
  type ChainCertificate,
} from './x509-chain.ts';

/** The envelope media types Notation uses for the signature manifest's layer. */
export const NOTATION_JWS_MEDIA_TYPE = 'application/jose+json';
export const NOTATION_COSE_MEDIA_TYPE = 'application/cose';

/** The note of every verdict whose policy does not skip revocation. */
export const REVOCATION_NOTE = 'revocation not checked (offline)';

/** One verdict for one Notation signature envelope (the signature manifest's layer); never throws for bad input. */
export async function verifyNotationSignature(
  envelope: Buffer,
  envelopeMediaType: string,
  subject: SignedSubject,
  trust: NotationTrust,
  now: Date,
): Promise<SignatureVerdict> {
  const format: SignatureFormat | null =
    envelopeMediaType === NOTATION_JWS_MEDIA_TYPE
      ? 'notation-jws'
      : envelopeMediaType === NOTATION_COSE_MEDIA_TYPE
        ? 'notation-cose'
        : null;
  if (format === null) {
    // The verdict needs a format; the JWS one stands for "not a known Notation envelope" here.
    return unverified(
      'notation',
      'notation-jws',
      `unsupported Notation envelope media type ${JSON.stringify(envelopeMediaType)} (expected ` +
        `${NOTATION_JWS_MEDIA_TYPE} or ${NOTATION_COSE_MEDIA_TYPE})`,
    );
  }
  try {
    return Promise.resolve(verify(envelope, format, subject, trust, now));
  } catch (err) {
    // Parsers of untrusted bytes can fail in ways not foreseen; a bad signature is a verdict, not an error.
    return unverified('notation', format, `the signature could not be verified: ${(err as Error).message}`);
  }
}

function verify(
  bytes: Buffer,
  format: SignatureFormat,
  subject: SignedSubject,
  trust: NotationTrust,
  now: Date,
): SignatureVerdict {
  const policy = selectTrustPolicy(trust.trustPolicies, subject.repository);
  if (policy === null) {
    return unverified(
      'notation',
      format,
      `no Notation trust policy applies to repository ${subject.repository}`,
    );
  }
  const level = policy.signatureVerification.level;
  const atLevel = `trust policy ${policy.name} is at level ${level}`;
  if (level === 'skip') return unverified('notation', format, `${atLevel}: signatures are not verified`);
  const prefix = (reason: string): string => (level === 'audit' ? `${atLevel}: ${reason}` : reason);

  // Integrity: always enforced.
  let envelope: NotationEnvelope;
  try {
    envelope = format === 'notation-jws' ? decodeJwsEnvelope(bytes) : decodeCoseEnvelope(bytes);
  } catch (err) {
    if (!(err instanceof EnvelopeError)) throw err;
    return unverified('notation', format, prefix(`malformed signature envelope: ${err.message}`));
  }
  const integrity = integrityProblem(envelope, subject);
  const chain = integrity.chain;
  const leaf = chain?.[0];
  const identity = {
    signer: leaf === undefined ? null : subjectDn(leaf.cert),
    fingerprint: leaf === undefined ? null : `sha256:${createHash('sha256').update(leaf.der).digest('hex')}`,
    signedAt: (envelope.authenticSigningTime ?? envelope.signingTime)?.toISOString() ?? null,
  };
  if (integrity.problem !== null || chain === undefined || leaf === undefined) {
    return unverified('notation', format, prefix(integrity.problem ?? 'empty certificate chain'), identity);
  }

  const actions = checkActions(policy);
  const failures: Array<{ check: NotationCheck; message: string }> = [];
  const notes: string[] = [];
  let signedAt = identity.signedAt;

  if (actions.authenticity !== 'skip') {
    const problem = authenticityProblem(envelope, chain, leaf, policy, trust);
    if (problem !== null) failures.push({ check: 'authenticity', message: problem });
  }
  if (actions.expiry !== 'skip' && envelope.expiry !== null && now >= envelope.expiry) {
    failures.push({ check: 'expiry', message: `the signature expired at ${envelope.expiry.toISOString()}` });
  }
  if (actions.authenticTimestamp !== 'skip') {
    const result = authenticTimestamp(envelope, chain, policy, trust, now);
    if (result.problem !== null) failures.push({ check: 'authenticTimestamp', message: result.problem });
    if (result.provenTime !== null) signedAt = result.provenTime.toISOString();
  }
  if (actions.revocation !== 'skip') notes.push(REVOCATION_NOTE);

  const enforced = failures.find((f) => actions[f.check] === 'enforce');
  for (const f of failures) {
    if (f !== enforced && actions[f.check] === 'log')
      notes.push(`${f.check} check failed (logged only): ${f.message}`);
  }
  const extra = { ...identity, signedAt, notes };
  if (enforced !== undefined) return unverified('notation', format, prefix(enforced.message), extra);
  if (level === 'audit') {
    const logged = failures[0];
    return unverified(
      'notation',
      format,
      logged !== undefined
        ? `${atLevel}: ${logged.message}`
        : actions.authenticity === 'skip'
          ? `${atLevel}: authenticity is not checked`
          : `${atLevel}: the signature is authentic, but the level only records verification results`,
      extra,
    );
  }
  if (actions.authenticity !== 'enforce') {
    const why = failures.find((f) => f.check === 'authenticity')?.message ?? 'the signer is not established';
    return unverified(
      'notation',
      format,
      `trust policy ${policy.name} does not enforce authenticity (${actions.authenticity}): ${why}`,
      extra,
    );
  }
  return { tool: 'notation', format, verified: true, reason: null, ...extra };
}

/** The integrity check; the parsed chain whenever it parses, so later verdicts can name the signer. */
function integrityProblem(
  e: NotationEnvelope,
  subject: SignedSubject,
): { problem: string | null; chain?: ChainCertificate[] } {
  let chain: ChainCertificate[];
  try {
    chain = parseCertificates(e.certificates);
  } catch (err) {
    return { problem: `malformed signature envelope: ${(err as Error).message}` };
  }
  const problem = ((): string | null => {
    const attributes = signedAttributesProblem(e);
    if (attributes !== null) return `malformed signature envelope: ${attributes}`;
    if (e.verificationPlugin !== null) {
      return `the signature requires verification plugin ${e.verificationPlugin}, which Berth does not run`;
    }
    const unknown = unknownCritical(e);
    if (unknown.length > 0) return `the signature has unsupported critical attributes: ${unknown.join(', ')}`;
    const chainProblem = codeSigningChainProblem(chain);
    if (chainProblem !== null) return `invalid certificate chain: ${chainProblem}`;
    const leaf = chain[0] as ChainCertificate;
    const keyAlgorithm = algorithmForKey(leaf.cert.publicKey);
    if (keyAlgorithm !== e.algorithm) {
      return `the signature algorithm ${e.algorithm} does not match the signing certificate's key (${keyAlgorithm ?? 'unsupported key'})`;
    }
    if (!verifyWithAlgorithm(e.algorithm, leaf.cert.publicKey, e.signedBytes, e.signature)) {
      return "the signature does not verify with the signing certificate's key: the envelope was altered";
    }
    let target;
    try {
      target = parsePayload(e.payload);
    } catch (err) {
      return `malformed signature payload: ${(err as Error).message}`;
    }
    if (target.digest !== subject.digest) {
      return `the signature is for ${target.digest}, not ${subject.digest}`;
    }
    if (subject.mediaType !== undefined && target.mediaType !== subject.mediaType) {
      return `the signature is for media type ${target.mediaType}, not ${subject.mediaType}`;
    }
    if (subject.size !== undefined && target.size !== subject.size) {
      return `the signature is for size ${target.size}, not ${subject.size}`;
    }
    return null;
  })();
  return { problem, chain };
}

/** The trust stores of `type` the policy names, as parsed certificates. */
function storeCertificates(
  policy: NotationTrustPolicy,
  trust: NotationTrust,
  type: 'ca' | 'signingAuthority' | 'tsa',
): { names: string[]; certificates: ChainCertificate[] } {
  const names = policy.trustStores.filter((ref) => ref.startsWith(`${type}:`));
  const certificates = trust.trustStores
    .filter((s) => names.includes(`${s.type}:${s.name}`))
    .flatMap((s) => s.certificates.flatMap((pem) => parsePemCertificates(pem)));
  return { names, certificates };
}

function authenticityProblem(
  e: NotationEnvelope,
  chain: readonly ChainCertificate[],
  leaf: ChainCertificate,
  policy: NotationTrustPolicy,
  trust: NotationTrust,
): string | null {
  const type = e.signingScheme === 'notary.x509' ? 'ca' : 'signingAuthority';
  const stores = storeCertificates(policy, trust, type);
  if (stores.names.length === 0) {
    return `trust policy ${policy.name} has no ${type} trust store for the ${e.signingScheme} signing scheme`;
  }
  if (!chainsTo(chain, stores.certificates)) {
    return `the signing certificate chain does not lead to a certificate of trust store ${stores.names.join(', ')}`;
  }
  if (policy.trustedIdentities.includes('*')) return null;
  const actual = subjectRdns(leaf.cert);
  for (const identity of policy.trustedIdentities) {
    const m = /^x509\.subject\s*:\s*(.+)$/.exec(identity);
    const wanted = m?.[1] === undefined ? null : parseDn(m[1]);
    if (wanted !== null && wanted.length > 0 && rdnsInclude(actual, wanted)) return null;
  }
  return `the signing certificate subject ${subjectDn(leaf.cert)} is not a trusted identity of trust policy ${policy.name}`;
}

function authenticTimestamp(
  e: NotationEnvelope,
  chain: readonly ChainCertificate[],
  policy: NotationTrustPolicy,
  trust: NotationTrust,
  now: Date,
): { problem: string | null; provenTime: Date | null } {
  if (e.signingScheme === 'notary.x509.signingAuthority') {
    const time = e.authenticSigningTime as Date;
    const problem = validityProblem(chain, time);
    return {
      problem: problem === null ? null : `at the authentic signing time ${time.toISOString()}, ${problem}`,
      provenTime: problem === null ? time : null,
    };
  }
  if (e.timestampToken !== null) {
    // The spec's "Validate Trusted Timestamp": a timestamp must chain to a tsa trust store of the policy.
    const tsa = storeCertificates(policy, trust, 'tsa');
    if (tsa.names.length === 0) {
      return {
        problem: `the signature has a timestamp countersignature, but trust policy ${policy.name} has no tsa trust store`,
        provenTime: null,
      };
    }
    let stamp: VerifiedTimestamp;
    try {
      stamp = verifyTimestampToken(e.timestampToken, e.signature, tsa.certificates);
    } catch (err) {
      return {
        problem: `the timestamp countersignature does not verify: ${(err as Error).message}`,
        provenTime: null,
      };
    }
    // The whole range genTime ± accuracy must fall within the chain's validity.
    const problem = validityProblem(chain, stamp.lowerLimit) ?? validityProblem(chain, stamp.upperLimit);
    return {
      problem: problem === null ? null : `at the timestamp's time ${stamp.time.toISOString()}, ${problem}`,
      provenTime: problem === null ? stamp.time : null,
    };
  }
  return { problem: validityProblem(chain, now), provenTime: null };
}
