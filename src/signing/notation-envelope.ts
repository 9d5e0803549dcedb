/**
 * What the Notary Project signature envelopes (JWS and COSE) have in common once decoded: the signed attributes of
 * signature-specification.md ("Signature Envelope"), the payload, the certificate chain and the bytes the signature
 * covers. The format modules (`notation-jws.ts`, `notation-cose.ts`) decode into this shape.
 */
import { constants, verify as cryptoVerify, type KeyObject } from 'node:crypto';

/** The payload content type every Notary Project signature has. */
export const NOTATION_PAYLOAD_CONTENT_TYPE = 'application/vnd.cncf.notary.payload.v1+json';

/** The signed attributes this verifier understands; a critical attribute outside this set fails verification. */
export const SIGNING_SCHEME = 'io.cncf.notary.signingScheme';
export const SIGNING_TIME = 'io.cncf.notary.signingTime';
export const AUTHENTIC_SIGNING_TIME = 'io.cncf.notary.authenticSigningTime';
export const EXPIRY = 'io.cncf.notary.expiry';
export const VERIFICATION_PLUGIN = 'io.cncf.notary.verificationPlugin';
export const VERIFICATION_PLUGIN_MIN_VERSION = 'io.cncf.notary.verificationPluginMinVersion';
const UNDERSTOOD_CRITICAL = new Set([SIGNING_SCHEME, EXPIRY, AUTHENTIC_SIGNING_TIME]);

/** The longest certificate chain an envelope may carry; real chains have two to four certificates. */
export const MAX_CHAIN_LENGTH = 10;

/** The signing algorithms of the specification ("Algorithm Selection"). */
export type NotationAlgorithm = 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512';

/** `notary.x509`: the signing time is self-claimed; `notary.x509.signingAuthority`: a signing authority vouches. */
export type SigningScheme = 'notary.x509' | 'notary.x509.signingAuthority';

/** A decoded envelope: everything verification needs, nothing checked yet but the shape. */
export interface NotationEnvelope {
  readonly format: 'notation-jws' | 'notation-cose';
  readonly algorithm: NotationAlgorithm;
  readonly signingScheme: SigningScheme;
  /** `io.cncf.notary.signingTime` (notary.x509). */
  readonly signingTime: Date | null;
  /** `io.cncf.notary.authenticSigningTime` (notary.x509.signingAuthority). */
  readonly authenticSigningTime: Date | null;
  readonly expiry: Date | null;
  /** The names of the critical signed attributes. */
  readonly critical: readonly string[];
  /** `io.cncf.notary.verificationPlugin`, when the signature requires a plugin to verify. */
  readonly verificationPlugin: string | null;
  readonly payload: Buffer;
  /** The certificate chain (DER), leaf first. */
  readonly certificates: readonly Buffer[];
  readonly signature: Buffer;
  /** The bytes the signature covers: the JWS signing input or the COSE Sig_structure. */
  readonly signedBytes: Buffer;
  /** `io.cncf.notary.timestampSignature`: an RFC 3161 TimeStampToken over `signature`, DER. */
  readonly timestampToken: Buffer | null;
}

/** Thrown by the decoders for an envelope that is not a well-formed Notary Project envelope. */
export class EnvelopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EnvelopeError';
  }
}

/**
 * Checks the signed attributes the specification requires of both envelopes: the scheme is known, it has its
 * signing time, and the attributes that must be critical are. Returns the first problem, or null.
 */
export function signedAttributesProblem(e: NotationEnvelope): string | null {
  if (!e.critical.includes(SIGNING_SCHEME)) return `${SIGNING_SCHEME} is not marked critical`;
  if (e.signingScheme === 'notary.x509' && e.signingTime === null) {
    return `the notary.x509 signing scheme requires ${SIGNING_TIME}`;
  }
  if (e.signingScheme === 'notary.x509.signingAuthority') {
    if (e.authenticSigningTime === null) {
      return `the notary.x509.signingAuthority signing scheme requires ${AUTHENTIC_SIGNING_TIME}`;
    }
    if (!e.critical.includes(AUTHENTIC_SIGNING_TIME))
      return `${AUTHENTIC_SIGNING_TIME} is not marked critical`;
  }
  if (e.expiry !== null && !e.critical.includes(EXPIRY)) return `${EXPIRY} is not marked critical`;
  return null;
}

/**
 * The critical attributes this verifier does not understand. A verification plugin attribute counts: verifying
 * such a signature needs the plugin, which Berth does not run.
 */
export function unknownCritical(e: NotationEnvelope): string[] {
  return e.critical.filter((name) => !UNDERSTOOD_CRITICAL.has(name));
}

const HASH: Record<NotationAlgorithm, { hash: string; bytes: number }> = {
  PS256: { hash: 'sha256', bytes: 32 },
  PS384: { hash: 'sha384', bytes: 48 },
  PS512: { hash: 'sha512', bytes: 64 },
  ES256: { hash: 'sha256', bytes: 32 },
  ES384: { hash: 'sha384', bytes: 48 },
  ES512: { hash: 'sha512', bytes: 64 },
};

/**
 * The algorithm the specification assigns to a certificate key ("Algorithm Selection": RSA 2048/3072/4096 bits
 * sign with PS256/PS384/PS512, EC P-256/P-384/P-521 with ES256/ES384/ES512); null for any other key.
 */
export function algorithmForKey(key: KeyObject): NotationAlgorithm | null {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'rsa') {
    const bits = details?.modulusLength;
    return bits === 2048 ? 'PS256' : bits === 3072 ? 'PS384' : bits === 4096 ? 'PS512' : null;
  }
  if (key.asymmetricKeyType === 'ec') {
    const curve = details?.namedCurve;
    return curve === 'prime256v1'
      ? 'ES256'
      : curve === 'secp384r1'
        ? 'ES384'
        : curve === 'secp521r1'
          ? 'ES512'
          : null;
  }
  return null;
}

/**
 * Verifies `signature` over `data` with `key` under `algorithm`: RSASSA-PSS with the salt as long as the hash, or
 * ECDSA with the raw `r || s` encoding both JWS and COSE use. False for a wrong signature or an unusable key.
 */
export function verifyWithAlgorithm(
  algorithm: NotationAlgorithm,
  key: KeyObject,
  data: Buffer,
  signature: Buffer,
): boolean {
  const { hash, bytes } = HASH[algorithm];
  try {
    if (algorithm.startsWith('PS')) {
      return cryptoVerify(
        hash,
        data,
        { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: bytes },
        signature,
      );
    }
    return cryptoVerify(hash, data, { key, dsaEncoding: 'ieee-p1363' }, signature);
  } catch {
    return false;
  }
}

/** The descriptor the payload names (`targetArtifact`). */
export interface TargetArtifact {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

/** Decodes the payload `{"targetArtifact": {mediaType, digest, size, ...}}`; throws EnvelopeError otherwise. */
export function parsePayload(payload: Buffer): TargetArtifact {
  let doc: unknown;
  try {
    doc = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new EnvelopeError('the payload is not JSON');
  }
  const target = (doc as { targetArtifact?: unknown } | null)?.targetArtifact;
  if (typeof target !== 'object' || target === null)
    throw new EnvelopeError('the payload has no targetArtifact');
  const { mediaType, digest, size } = target as Record<string, unknown>;
  if (typeof mediaType !== 'string' || typeof digest !== 'string' || typeof size !== 'number') {
    throw new EnvelopeError('the payload targetArtifact lacks mediaType, digest or size');
  }
  return { mediaType, digest, size };
}
