/**
 * A new webhook signing secret in the Standard Webhooks form: `whsec_` and 32 random bytes in base64 (the
 * receiver base64-decodes the part after the prefix to get the HMAC key).
 */
import { randomBytes } from 'node:crypto';

export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}
