/**
 * Throwaway sigstore material for negative and format tests: a DER encoder just large enough for X.509 v3
 * certificates (a CA and Fulcio-style leaf certificates with a SAN and the OIDC issuer extension), cosign classic
 * simple-signing payloads, and Rekor bundles (hashedrekord entries with a SignedEntryTimestamp) signed by a
 * throwaway Rekor key.
 */
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';

// --- DER ---
function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
const tlv = (tag: number, body: Buffer): Buffer =>
  Buffer.concat([Buffer.from([tag]), len(body.length), body]);
const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
function int(n: number): Buffer {
  const bytes: number[] = [];
  for (let v = n; v > 0 || bytes.length === 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  if ((bytes[0] ?? 0) & 0x80) bytes.unshift(0);
  return tlv(0x02, Buffer.from(bytes));
}
const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
const octets = (b: Buffer): Buffer => tlv(0x04, b);
const bits = (b: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), b]));
const bool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0]));
function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out = [40 * (parts[0] ?? 0) + (parts[1] ?? 0)];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}
function time(d: Date): Buffer {
  const s = d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
  return tlv(0x17, Buffer.from(s, 'ascii'));
}
const name = (cn: string): Buffer => seq(set(seq(oid('2.5.4.3'), utf8(cn))));
const ext = (id: string, critical: boolean, value: Buffer): Buffer =>
  seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));

/** A key pair and the certificate (DER) that carries its public key. */
export interface Issued {
  readonly key: KeyObject;
  readonly publicKey: KeyObject;
  readonly der: Buffer;
  readonly pem: string;
}

export interface CertificateOptions {
  readonly subjectName: string;
  readonly issuer?: Issued;
  readonly issuerName?: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly ca?: boolean;
  /** An e-mail SAN, or a URI SAN when it contains "://". */
  readonly san?: string;
  /** The OIDC issuer, written in Fulcio's extension 1.3.6.1.4.1.57264.1.8. */
  readonly oidcIssuer?: string;
  readonly serial?: number;
}

/** Issues an ECDSA P-256 certificate (self-signed without `issuer`). */
export function issue(options: CertificateOptions): Issued {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  const extensions: Buffer[] = [];
  if (options.ca === true) {
    extensions.push(ext('2.5.29.19', true, seq(bool(true))));
    extensions.push(ext('2.5.29.15', true, bits(Buffer.from([0x06]))));
  }
  if (options.san !== undefined) {
    const tag = options.san.includes('://') ? 0x86 : 0x81;
    extensions.push(ext('2.5.29.17', true, seq(tlv(tag, Buffer.from(options.san, 'ascii')))));
  }
  if (options.oidcIssuer !== undefined) {
    extensions.push(ext('1.3.6.1.4.1.57264.1.8', false, utf8(options.oidcIssuer)));
  }
  const ecdsaWithSha256 = seq(oid('1.2.840.10045.4.3.2'));
  const tbs = seq(
    tlv(0xa0, int(2)),
    int(options.serial ?? 1),
    ecdsaWithSha256,
    name(options.issuer === undefined ? options.subjectName : (options.issuerName ?? 'issuer')),
    seq(time(options.notBefore), time(options.notAfter)),
    name(options.subjectName),
    spki,
    ...(extensions.length > 0 ? [tlv(0xa3, seq(...extensions))] : []),
  );
  const signature = sign('sha256', tbs, options.issuer?.key ?? privateKey);
  const der = seq(tbs, ecdsaWithSha256, bits(signature));
  return { key: privateKey, publicKey, der, pem: toPem(der, 'CERTIFICATE') };
}

/** PEM text of `der`. */
export function toPem(der: Buffer, label: string): string {
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** cosign's simple-signing payload for `digest`, byte for byte as cosign writes it (`optional` null). */
export function simpleSigningPayload(reference: string, digest: string): Buffer {
  return Buffer.from(
    JSON.stringify({
      critical: {
        identity: { 'docker-reference': reference },
        image: { 'docker-manifest-digest': digest },
        type: 'cosign container image signature',
      },
      optional: null,
    }),
    'utf8',
  );
}

/** A throwaway Rekor: a P-256 key that signs SignedEntryTimestamps for hashedrekord entries. */
export class FakeRekor {
  readonly key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  readonly publicKeyPem = this.key.publicKey.export({ format: 'pem', type: 'spki' }).toString();
  readonly logID = createHash('sha256')
    .update(this.key.publicKey.export({ format: 'der', type: 'spki' }))
    .digest('hex');

  /**
   * The `dev.sigstore.cosign/bundle` annotation for a hashedrekord v0.0.1 entry of `signature` over `payload` by
   * `signerPem` (a certificate or public key PEM), integrated at `integratedTime` (seconds).
   */
  bundleAnnotation(payload: Buffer, signature: Buffer, signerPem: string, integratedTime: number): string {
    return this.logged(
      {
        apiVersion: '0.0.1',
        kind: 'hashedrekord',
        spec: {
          data: { hash: { algorithm: 'sha256', value: createHash('sha256').update(payload).digest('hex') } },
          signature: {
            content: signature.toString('base64'),
            publicKey: { content: Buffer.from(signerPem).toString('base64') },
          },
        },
      },
      integratedTime,
    );
  }

  /** The same for a dsse v0.0.1 entry of a DSSE envelope (`payload` is the envelope's payload, not its PAE). */
  dsseAnnotation(payload: Buffer, signature: Buffer, signerPem: string, integratedTime: number): string {
    return this.logged(
      {
        apiVersion: '0.0.1',
        kind: 'dsse',
        spec: {
          payloadHash: { algorithm: 'sha256', value: createHash('sha256').update(payload).digest('hex') },
          signatures: [
            { signature: signature.toString('base64'), verifier: Buffer.from(signerPem).toString('base64') },
          ],
        },
      },
      integratedTime,
    );
  }

  private logged(entry: unknown, integratedTime: number): string {
    const body = Buffer.from(JSON.stringify(entry)).toString('base64');
    const logIndex = 4242;
    // The SET signs the canonical JSON (keys sorted) of body, integratedTime, logID and logIndex.
    const canonical = JSON.stringify({ body, integratedTime, logID: this.logID, logIndex });
    const set = sign('sha256', Buffer.from(canonical, 'utf8'), this.key.privateKey);
    return JSON.stringify({
      SignedEntryTimestamp: set.toString('base64'),
      Payload: { body, integratedTime, logIndex, logID: this.logID },
    });
  }
}
