/** PEM text to DER bytes, and the `sha256:<hex>` fingerprints verdicts report. */
import { createHash } from 'node:crypto';

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/** The DER bytes of every PEM block of type `label` (e.g. `CERTIFICATE`) in `text`, in order; [] when none. */
export function pemBlocks(text: string, label: string): Buffer[] {
  const blocks: Buffer[] = [];
  for (const match of text.matchAll(BLOCK)) {
    if (match[1] === label) blocks.push(Buffer.from((match[2] ?? '').replace(/\s+/g, ''), 'base64'));
  }
  return blocks;
}

/** `sha256:<hex>` of `der` (a certificate or an SPKI public key). */
export function sha256Fingerprint(der: Buffer): string {
  return `sha256:${createHash('sha256').update(der).digest('hex')}`;
}
