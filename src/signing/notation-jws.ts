/**
 * The Notary Project JWS envelope (specifications: signature-envelope-jws.md): JWS JSON Serialization with one
 * signature, `{payload, protected, header, signature}`. The protected header carries `alg`, `cty`, `crit` and the
 * signed attributes; the unprotected header carries the `x5c` chain (standard base64 DER, leaf first), the
 * signing agent and the optional `io.cncf.notary.timestampSignature`.
 */
import {
  AUTHENTIC_SIGNING_TIME,
  EnvelopeError,
  EXPIRY,
  MAX_CHAIN_LENGTH,
  NOTATION_PAYLOAD_CONTENT_TYPE,
  SIGNING_SCHEME,
  SIGNING_TIME,
  VERIFICATION_PLUGIN,
  type NotationAlgorithm,
  type NotationEnvelope,
  type SigningScheme,
} from './notation-envelope.ts';

const ALGORITHMS = new Set<string>(['PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512']);
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function record(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new EnvelopeError(`${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function b64url(value: unknown, what: string): string {
  if (typeof value !== 'string' || !BASE64URL.test(value))
    throw new EnvelopeError(`${what} is not base64url`);
  return value;
}

/** RFC 3339 date-time (section 5.6), as the specification requires for JWS signed times. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

function time(value: unknown, name: string): Date | null {
  if (value === undefined) return null;
  const t = typeof value === 'string' && RFC3339.test(value) ? new Date(value) : null;
  if (t === null || Number.isNaN(t.getTime())) throw new EnvelopeError(`${name} is not an RFC 3339 time`);
  return t;
}

/** Decodes a JWS envelope; throws EnvelopeError for anything that is not one. Verifies nothing. */
export function decodeJwsEnvelope(bytes: Buffer): NotationEnvelope {
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new EnvelopeError('the envelope is not JSON');
  }
  const jws = record(doc, 'the envelope');
  const protectedB64 = b64url(jws.protected, 'protected');
  const payloadB64 = b64url(jws.payload, 'payload');
  const signature = Buffer.from(b64url(jws.signature, 'signature'), 'base64url');
  let protectedHeader: Record<string, unknown>;
  try {
    protectedHeader = record(
      JSON.parse(Buffer.from(protectedB64, 'base64url').toString('utf8')),
      'protected',
    );
  } catch (err) {
    throw err instanceof EnvelopeError ? err : new EnvelopeError('the protected header is not JSON');
  }
  const header = record(jws.header ?? {}, 'header');

  const alg = protectedHeader.alg;
  if (typeof alg !== 'string' || !ALGORITHMS.has(alg)) {
    throw new EnvelopeError(`unsupported signature algorithm ${JSON.stringify(alg)}`);
  }
  if (protectedHeader.cty !== NOTATION_PAYLOAD_CONTENT_TYPE) {
    throw new EnvelopeError(`the payload content type is not ${NOTATION_PAYLOAD_CONTENT_TYPE}`);
  }
  const scheme = protectedHeader[SIGNING_SCHEME];
  if (scheme !== 'notary.x509' && scheme !== 'notary.x509.signingAuthority') {
    throw new EnvelopeError(`unsupported signing scheme ${JSON.stringify(scheme)}`);
  }
  const crit = protectedHeader.crit ?? [];
  if (!Array.isArray(crit) || !crit.every((c): c is string => typeof c === 'string')) {
    throw new EnvelopeError('crit is not a list of header names');
  }
  for (const name of crit) {
    // RFC 7515 section 4.1.11: a critical header must be present.
    if (!(name in protectedHeader)) throw new EnvelopeError(`critical header ${name} is missing`);
  }
  const plugin = protectedHeader[VERIFICATION_PLUGIN];

  const x5c = header.x5c;
  if (!Array.isArray(x5c) || x5c.length === 0)
    throw new EnvelopeError('the envelope has no x5c certificate chain');
  if (x5c.length > MAX_CHAIN_LENGTH)
    throw new EnvelopeError(`the x5c chain has more than ${MAX_CHAIN_LENGTH} certificates`);
  const certificates = x5c.map((c: unknown, i) => {
    if (typeof c !== 'string' || !BASE64.test(c)) throw new EnvelopeError(`x5c[${i}] is not base64`);
    return Buffer.from(c, 'base64');
  });
  const tsa = header['io.cncf.notary.timestampSignature'];
  if (tsa !== undefined && (typeof tsa !== 'string' || !BASE64.test(tsa))) {
    throw new EnvelopeError('io.cncf.notary.timestampSignature is not base64');
  }

  return {
    format: 'notation-jws',
    algorithm: alg as NotationAlgorithm,
    signingScheme: scheme as SigningScheme,
    signingTime: time(protectedHeader[SIGNING_TIME], SIGNING_TIME),
    authenticSigningTime: time(protectedHeader[AUTHENTIC_SIGNING_TIME], AUTHENTIC_SIGNING_TIME),
    expiry: time(protectedHeader[EXPIRY], EXPIRY),
    critical: crit,
    verificationPlugin: typeof plugin === 'string' ? plugin : null,
    payload: Buffer.from(payloadB64, 'base64url'),
    certificates,
    signature,
    // RFC 7515 section 5.2: the signing input is the two encoded parts as they appear in the envelope.
    signedBytes: Buffer.from(`${protectedB64}.${payloadB64}`, 'ascii'),
    timestampToken: typeof tsa === 'string' ? Buffer.from(tsa, 'base64') : null,
  };
}
