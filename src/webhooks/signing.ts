/**
 * Standard Webhooks signing (https://www.standardwebhooks.com/): every delivery carries `webhook-id`,
 * `webhook-timestamp` (Unix seconds) and `webhook-signature`, a space-separated list of `v1,<base64 HMAC-SHA256>`
 * of `${id}.${timestamp}.${body}` keyed with the base64-decoded part of the endpoint's `whsec_` secret.
 *
 * The verifier is the receiver's side, written from the specification; the tests' receivers use it, and
 * docs/webhooks.md shows the same steps for receivers in JavaScript and in shell.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const SECRET_PREFIX = 'whsec_';

/** Default `verify` tolerance: the specification's five minutes either way. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/** A new endpoint secret: `whsec_` and the base64 of 32 random bytes. */
export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64');
}

/** True when `secret` is `whsec_` followed by base64 of 24 to 64 bytes. */
export function isValidSecret(secret: string): boolean {
  if (!secret.startsWith(SECRET_PREFIX)) return false;
  const encoded = secret.slice(SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0) return false;
  const length = Buffer.from(encoded, 'base64').length;
  return length >= 24 && length <= 64;
}

/** The HMAC key of a secret (the bytes after `whsec_`; a secret without the prefix is taken as base64 as is). */
function secretKey(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  return Buffer.from(encoded, 'base64');
}

/** `v1,<signature>` of one message with one secret. */
export function signature(secret: string, id: string, timestamp: number, body: string | Uint8Array): string {
  const hmac = createHmac('sha256', secretKey(secret));
  hmac.update(`${id}.${timestamp}.`);
  hmac.update(body);
  return `v1,${hmac.digest('base64')}`;
}

/** The secrets of an endpoint, as the WebhookStore keeps them. */
export interface SigningSecrets {
  readonly secret: string;
  /** The secret before the last rotation, also used until `previousSecretUntil`. */
  readonly previousSecret: string | null;
  readonly previousSecretUntil: Date | null;
}

export type SignatureHeaders = Readonly<
  Record<'webhook-id' | 'webhook-timestamp' | 'webhook-signature', string>
>;

/**
 * The Standard Webhooks headers of a delivery. `id` is the event id (the same on every attempt, so receivers drop
 * duplicates); `now` gives the timestamp. While the previous secret is within its grace period the signature
 * header carries both signatures, the current one first.
 */
export function sign(
  id: string,
  body: string,
  secrets: SigningSecrets,
  now: Date = new Date(),
): SignatureHeaders {
  const timestamp = Math.floor(now.getTime() / 1000);
  const signatures = [signature(secrets.secret, id, timestamp, body)];
  if (
    secrets.previousSecret !== null &&
    secrets.previousSecretUntil !== null &&
    secrets.previousSecretUntil.getTime() > now.getTime()
  ) {
    signatures.push(signature(secrets.previousSecret, id, timestamp, body));
  }
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signatures.join(' '),
  };
}

/** Why a delivery failed verification. */
export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookVerificationError';
  }
}

export interface VerifyOptions {
  /** Largest accepted distance between the timestamp and `now`, in seconds (default 300). */
  readonly toleranceSeconds?: number;
  readonly now?: Date;
}

function header(
  headers: Readonly<Record<string, string | readonly string[] | undefined>>,
  name: string,
): string {
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== name) continue;
    const text = Array.isArray(value) ? value.join(',') : (value as string | undefined);
    if (text !== undefined && text !== '') return text;
  }
  throw new WebhookVerificationError(`missing ${name} header`);
}

/**
 * Verifies a received delivery as the specification says: the three headers present, the timestamp within the
 * tolerance of `now`, and one of the `v1` signatures equal (compared in constant time) to the HMAC of
 * `${id}.${timestamp}.${body}` with `secret`. `body` is the raw request body. Throws `WebhookVerificationError`;
 * returns the webhook id.
 */
export function verify(
  secret: string,
  headers: Readonly<Record<string, string | readonly string[] | undefined>>,
  body: string | Uint8Array,
  options: VerifyOptions = {},
): string {
  const id = header(headers, 'webhook-id');
  const timestampText = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!/^\d{1,15}$/.test(timestampText)) throw new WebhookVerificationError('invalid webhook-timestamp');
  const timestamp = Number(timestampText);
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  if (timestamp < now - tolerance) throw new WebhookVerificationError('webhook-timestamp too old');
  if (timestamp > now + tolerance) throw new WebhookVerificationError('webhook-timestamp too new');
  const expected = Buffer.from(signature(secret, id, timestamp, body).slice('v1,'.length), 'base64');
  for (const entry of signatures.split(' ')) {
    const comma = entry.indexOf(',');
    if (comma === -1 || entry.slice(0, comma) !== 'v1') continue;
    const candidate = Buffer.from(entry.slice(comma + 1), 'base64');
    if (candidate.length === expected.length && timingSafeEqual(candidate, expected)) return id;
  }
  throw new WebhookVerificationError('no matching signature');
}
