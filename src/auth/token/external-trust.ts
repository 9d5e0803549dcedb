/**
 * Trust in an external token issuer, the way distribution trusts one: tokens signed by a key from a JWKS URL,
 * or by a certificate from a PEM bundle (named by an `x5c` chain ending at a bundle certificate, or by a `kid`
 * that is the key's libtrust fingerprint or JWK thumbprint).
 */
import { createHash, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  calculateJwkThumbprint,
  createRemoteJWKSet,
  decodeProtectedHeader,
  type JWK,
  type JWTVerifyGetKey,
} from 'jose';

/** distribution's (libtrust) key id: base32 of the first 240 bits of SHA-256 over the DER SPKI, in 4-char groups. */
export function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: 'spki', format: 'der' });
  const hash = createHash('sha256').update(der).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of hash) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  return (out.match(/.{4}/g) as string[]).join(':');
}

/** True when `issuer` is a CA certificate that issued `cert` (names, key usage and signature). */
function issuedBy(cert: X509Certificate, issuer: X509Certificate): boolean {
  return issuer.ca && cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
}

function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Builds the key resolver for externally issued tokens; null when none is configured. */
export async function externalKeyResolver(options: {
  jwksUrl: string | null;
  certBundle: string | null;
}): Promise<JWTVerifyGetKey | null> {
  const remote = options.jwksUrl ? createRemoteJWKSet(new URL(options.jwksUrl)) : null;
  let bundle: X509Certificate[] = [];
  const byKid = new Map<string, KeyObject>();
  if (options.certBundle) {
    bundle = splitPem(readFileSync(options.certBundle, 'utf8')).map((p) => new X509Certificate(p));
    if (bundle.length === 0) throw new Error(`no certificate in ${options.certBundle}`);
    for (const cert of bundle) {
      byKid.set(libtrustKeyId(cert.publicKey), cert.publicKey);
      byKid.set(
        await calculateJwkThumbprint(cert.publicKey.export({ format: 'jwk' }) as JWK),
        cert.publicKey,
      );
    }
  }
  if (!remote && bundle.length === 0) return null;
  return async (header, token) => {
    if (bundle.length > 0) {
      const x5c = header.x5c;
      if (Array.isArray(x5c) && x5c.length > 0) {
        const chain = x5c.map((b64) => new X509Certificate(Buffer.from(b64, 'base64')));
        // Every certificate above the leaf must be a CA that issued the one below it: otherwise the holder of any
        // leaf certificate of a bundle CA (a TLS server certificate, say) could issue trusted token signers.
        for (let i = 0; i + 1 < chain.length; i++) {
          if (!issuedBy(chain[i] as X509Certificate, chain[i + 1] as X509Certificate))
            throw new Error('broken x5c chain');
        }
        const top = chain[chain.length - 1] as X509Certificate;
        const now = Date.now();
        const valid = (c: X509Certificate): boolean =>
          Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);
        // The top of the chain is a bundle certificate itself, or was issued by a bundle CA.
        const anchored = bundle.some(
          (root) => root.fingerprint256 === top.fingerprint256 || (issuedBy(top, root) && valid(root)),
        );
        if (anchored && chain.every(valid)) return (chain[0] as X509Certificate).publicKey;
        throw new Error('x5c chain is not trusted');
      }
      const kid = header.kid ?? decodeProtectedHeader(token).kid;
      const key = kid !== undefined ? byKid.get(kid) : undefined;
      if (key) return key;
    }
    if (remote) return remote(header, token);
    throw new Error('no trusted key for this token');
  };
}
