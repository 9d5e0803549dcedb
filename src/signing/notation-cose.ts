/**
 * The Notary Project COSE envelope (specifications: signature-envelope-cose.md): a COSE_Sign1_Tagged message (CBOR
 * tag 18) `[protected, unprotected, payload, signature]`. The protected header (a CBOR map in a byte string) has
 * `alg` (label 1), `crit` (2), `content type` (3) and the signed attributes by name, times as CBOR tag 1; the
 * unprotected header has `x5chain` (label 33: DER certificates, leaf first), the signing agent and the optional
 * `io.cncf.notary.timestampSignature`. The signature covers the Sig_structure of RFC 9052 section 4.4.
 */
import { decode, encode, Tag } from 'cbor2';
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

const COSE_SIGN1_TAG = 18;
const LABEL_ALG = 1;
const LABEL_CRIT = 2;
const LABEL_CONTENT_TYPE = 3;
const LABEL_X5CHAIN = 33;
/** COSE algorithm identifiers (RFC 9053, RFC 8230). */
const ALGORITHMS = new Map<number, NotationAlgorithm>([
  [-37, 'PS256'],
  [-38, 'PS384'],
  [-39, 'PS512'],
  [-7, 'ES256'],
  [-35, 'ES384'],
  [-36, 'ES512'],
]);

type Header = Map<unknown, unknown>;

function headerMap(value: unknown, what: string): Header {
  if (value instanceof Map) return value as Header;
  // A map whose keys are all strings may decode to a plain object.
  if (
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value) &&
    !(value instanceof Uint8Array)
  ) {
    return new Map(Object.entries(value));
  }
  throw new EnvelopeError(`${what} is not a CBOR map`);
}

function bytes(value: unknown, what: string): Buffer {
  if (!(value instanceof Uint8Array)) throw new EnvelopeError(`${what} is not a byte string`);
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

function time(value: unknown, name: string): Date | null {
  if (value === undefined) return null;
  // Notation encodes times as tag 1 (epoch seconds), which the decoder turns into a Date.
  if (!(value instanceof Date) || Number.isNaN(value.getTime()))
    throw new EnvelopeError(`${name} is not a time`);
  return value;
}

/** Decodes a COSE envelope; throws EnvelopeError for anything that is not one. Verifies nothing. */
export function decodeCoseEnvelope(input: Buffer): NotationEnvelope {
  let message: unknown;
  try {
    message = decode(input, { preferMap: true, rejectDuplicateKeys: true });
  } catch {
    throw new EnvelopeError('the envelope is not CBOR');
  }
  if (!(message instanceof Tag) || Number(message.tag) !== COSE_SIGN1_TAG) {
    throw new EnvelopeError('the envelope is not a tagged COSE_Sign1 message');
  }
  const parts: unknown = message.contents;
  if (!Array.isArray(parts) || parts.length !== 4)
    throw new EnvelopeError('COSE_Sign1 is not a 4-element array');
  const protectedBytes = bytes(parts[0], 'the protected header');
  const unprotected = headerMap(parts[1], 'the unprotected header');
  if (parts[2] === null) throw new EnvelopeError('the payload is detached');
  const payload = bytes(parts[2], 'the payload');
  const signature = bytes(parts[3], 'the signature');
  let protectedHeader: Header;
  try {
    protectedHeader = headerMap(
      decode(protectedBytes, { preferMap: true, rejectDuplicateKeys: true }),
      'protected',
    );
  } catch (err) {
    throw err instanceof EnvelopeError ? err : new EnvelopeError('the protected header is not CBOR');
  }

  const alg = ALGORITHMS.get(Number(protectedHeader.get(LABEL_ALG)));
  if (alg === undefined) {
    throw new EnvelopeError(`unsupported signature algorithm ${String(protectedHeader.get(LABEL_ALG))}`);
  }
  if (protectedHeader.get(LABEL_CONTENT_TYPE) !== NOTATION_PAYLOAD_CONTENT_TYPE) {
    throw new EnvelopeError(`the payload content type is not ${NOTATION_PAYLOAD_CONTENT_TYPE}`);
  }
  const scheme = protectedHeader.get(SIGNING_SCHEME);
  if (scheme !== 'notary.x509' && scheme !== 'notary.x509.signingAuthority') {
    throw new EnvelopeError(`unsupported signing scheme ${JSON.stringify(scheme)}`);
  }
  const crit = protectedHeader.get(LABEL_CRIT) ?? [];
  if (!Array.isArray(crit)) throw new EnvelopeError('crit is not a list of labels');
  for (const label of crit) {
    if (!protectedHeader.has(label)) throw new EnvelopeError(`critical header ${String(label)} is missing`);
  }
  const plugin = protectedHeader.get(VERIFICATION_PLUGIN);

  const x5chain = unprotected.get(LABEL_X5CHAIN);
  // RFC 9360: one certificate may be a bare byte string instead of an array.
  const chain: unknown[] = x5chain instanceof Uint8Array ? [x5chain] : Array.isArray(x5chain) ? x5chain : [];
  if (chain.length === 0) throw new EnvelopeError('the envelope has no x5chain certificate chain');
  if (chain.length > MAX_CHAIN_LENGTH) {
    throw new EnvelopeError(`the x5chain has more than ${MAX_CHAIN_LENGTH} certificates`);
  }
  const certificates = chain.map((c, i) => bytes(c, `x5chain[${i}]`));
  const tsa = unprotected.get('io.cncf.notary.timestampSignature');

  // RFC 9052 section 4.4: Sig_structure = ["Signature1", body_protected, external_aad, payload].
  // Plain Uint8Arrays: the encoder writes a Buffer as a tagged object, not as a byte string.
  const sigStructure = encode([
    'Signature1',
    new Uint8Array(protectedBytes),
    new Uint8Array(0),
    new Uint8Array(payload),
  ]);
  return {
    format: 'notation-cose',
    algorithm: alg,
    signingScheme: scheme as SigningScheme,
    signingTime: time(protectedHeader.get(SIGNING_TIME), SIGNING_TIME),
    authenticSigningTime: time(protectedHeader.get(AUTHENTIC_SIGNING_TIME), AUTHENTIC_SIGNING_TIME),
    expiry: time(protectedHeader.get(EXPIRY), EXPIRY),
    critical: crit.map((label) => String(label)),
    verificationPlugin: typeof plugin === 'string' ? plugin : null,
    payload,
    certificates,
    signature,
    signedBytes: Buffer.from(sigStructure),
    timestampToken: tsa === undefined ? null : bytes(tsa, 'io.cncf.notary.timestampSignature'),
  };
}
