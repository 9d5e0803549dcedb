/**
 * X.509 certificate chains as the Notary Project signature specification requires them
 * (https://github.com/notaryproject/specifications, signature-specification.md, "Certificate Requirements"):
 * the chain is ordered leaf first, each certificate is issued and signed by the next, every issuer is a CA allowed
 * to sign certificates, and the last certificate is a self-signed root (a single self-signed leaf is a chain too).
 */
import { X509Certificate } from 'node:crypto';
import { X509Certificate as AsnCertificate } from '@sigstore/core';

/** The id-kp-codeSigning extended key usage. */
export const EKU_CODE_SIGNING = '1.3.6.1.5.5.7.3.3';
/** The id-kp-timeStamping extended key usage. */
export const EKU_TIME_STAMPING = '1.3.6.1.5.5.7.3.8';
const EKU_ANY = '2.5.29.37.0';

/** One certificate of a chain, with both parsers' views of it. */
export interface ChainCertificate {
  readonly der: Buffer;
  readonly cert: X509Certificate;
  /** The ASN.1 view, for the key usage and basic constraints extensions `node:crypto` does not expose. */
  readonly asn: AsnCertificate;
}

/** Parses DER certificates; throws with the position of the first one that does not parse. */
export function parseCertificates(ders: readonly Buffer[]): ChainCertificate[] {
  return ders.map((der, i) => {
    try {
      return { der, cert: new X509Certificate(der), asn: AsnCertificate.parse(der as Buffer<ArrayBuffer>) };
    } catch {
      throw new Error(`certificate ${i} of the chain does not parse`);
    }
  });
}

/** Parses the certificates of PEM text (one or more `CERTIFICATE` blocks); skips blocks that do not parse. */
export function parsePemCertificates(pem: string): ChainCertificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  const out: ChainCertificate[] = [];
  for (const block of blocks) {
    const body = block.replace(/-----(BEGIN|END) CERTIFICATE-----/g, '').replace(/\s+/g, '');
    try {
      out.push(...parseCertificates([Buffer.from(body, 'base64')]));
    } catch {
      // A trust store entry that does not parse trusts nothing.
    }
  }
  return out;
}

/** A certificate's subject as one line, `C=US, ST=WA, O=Example, CN=signer` (the order the certificate has). */
export function subjectDn(cert: X509Certificate): string {
  return cert.subject.split('\n').join(', ');
}

function selfSigned(c: ChainCertificate): boolean {
  return c.cert.issuer === c.cert.subject && c.cert.verify(c.cert.publicKey);
}

/**
 * Checks the structure of a signing certificate chain and the leaf's code-signing requirements; returns the first
 * problem, or null. Path length constraints and name constraints are not checked.
 */
export function codeSigningChainProblem(chain: readonly ChainCertificate[]): string | null {
  const leaf = chain[0];
  if (leaf === undefined) return 'the certificate chain is empty';
  for (let i = 0; i + 1 < chain.length; i++) {
    const child = chain[i] as ChainCertificate;
    const parent = chain[i + 1] as ChainCertificate;
    if (child.cert.issuer !== parent.cert.subject || !child.cert.verify(parent.cert.publicKey)) {
      return `certificate ${i} of the chain is not issued by certificate ${i + 1}`;
    }
    if (!parent.asn.isCA) return `certificate ${i + 1} of the chain is not a CA certificate`;
    const ku = parent.asn.extKeyUsage;
    if (ku !== undefined && !ku.keyCertSign)
      return `certificate ${i + 1} of the chain may not sign certificates`;
  }
  const root = chain[chain.length - 1] as ChainCertificate;
  if (!selfSigned(root)) return 'the certificate chain does not end with a self-signed root certificate';
  return leafProblem(leaf, EKU_CODE_SIGNING, 'code signing');
}

/**
 * The leaf requirements the specification ("Certificate Requirements") sets for signing and timestamping
 * certificates: not a CA; key usage present, critical, with digitalSignature (and without keyCertSign); extended
 * key usage present with `eku` (code signing or time stamping), without anyExtendedKeyUsage, and a code-signing
 * certificate without timeStamping.
 */
export function leafProblem(leaf: ChainCertificate, eku: string, purpose: string): string | null {
  if (leaf.asn.extBasicConstraints?.isCA === true) return 'the signing certificate is a CA certificate';
  const ku = leaf.asn.extKeyUsage;
  if (ku === undefined || !ku.digitalSignature) {
    return 'the signing certificate lacks the digitalSignature key usage';
  }
  if (!ku.critical) return 'the signing certificate key usage extension is not critical';
  if (ku.keyCertSign) return 'the signing certificate has the keyCertSign key usage';
  // `keyUsage` of node:crypto's certificate is the extended key usage list (undefined when absent).
  const ekus = leaf.cert.keyUsage ?? [];
  if (!ekus.includes(eku)) return `the signing certificate's extended key usage does not include ${purpose}`;
  if (ekus.includes(EKU_ANY)) return 'the signing certificate has the anyExtendedKeyUsage extended key usage';
  if (eku === EKU_CODE_SIGNING && ekus.includes(EKU_TIME_STAMPING)) {
    return 'the signing certificate has the timeStamping extended key usage';
  }
  return null;
}

/** The first certificate of `chain` not valid at `time` (notBefore <= time <= notAfter), described; or null. */
export function validityProblem(chain: readonly ChainCertificate[], time: Date): string | null {
  for (const [i, c] of chain.entries()) {
    const from = new Date(c.cert.validFrom);
    const to = new Date(c.cert.validTo);
    const which = i === 0 ? 'the signing certificate' : `certificate ${i} of the chain`;
    if (time < from) return `${which} is not valid before ${from.toISOString()}`;
    if (time > to) return `${which} expired at ${to.toISOString()}`;
  }
  return null;
}

/** True when some certificate of `chain` is byte-for-byte one of `anchors` (how Notation establishes trust). */
export function chainsTo(chain: readonly ChainCertificate[], anchors: readonly ChainCertificate[]): boolean {
  return chain.some((c) => anchors.some((a) => a.der.equals(c.der)));
}

/** A distinguished name's attributes, `[type, value]` in order; types upper-cased (`CN`, `O`, `ST`, ...). */
export type Rdns = ReadonlyArray<readonly [string, string]>;

/** The attributes of a certificate subject as `node:crypto` prints it (one `TYPE=value` a line). */
export function subjectRdns(cert: X509Certificate): Rdns {
  return cert.subject
    .split('\n')
    .flatMap((line) => line.split('+'))
    .map((part) => {
      const eq = part.indexOf('=');
      return [part.slice(0, eq).trim().toUpperCase(), part.slice(eq + 1).trim()] as const;
    });
}

/**
 * Parses an RFC 4514-style DN (`C=US, ST=WA, O=Example`): attributes split on unescaped `,` or `+`, `\` escapes
 * the next character. Returns null when a part has no `=`.
 */
export function parseDn(dn: string): Rdns | null {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < dn.length; i++) {
    const ch = dn[i] as string;
    if (ch === '\\' && i + 1 < dn.length) {
      current += dn[++i];
    } else if (ch === ',' || ch === '+') {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  const out: Array<readonly [string, string]> = [];
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq <= 0) return null;
    out.push([part.slice(0, eq).trim().toUpperCase(), part.slice(eq + 1).trim()]);
  }
  return out;
}

/** True when every attribute of `wanted` is in `actual` with the same value (Notation's identity match). */
export function rdnsInclude(actual: Rdns, wanted: Rdns): boolean {
  return wanted.every(([type, value]) => actual.some(([t, v]) => t === type && v === value));
}
