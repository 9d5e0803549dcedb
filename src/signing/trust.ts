/**
 * A namespace's signature trust configuration: which signers it accepts and what it does about images without a
 * verified signature (`mode`).
 *
 * - `cosign.keys`: public keys (PEM, SPKI: ECDSA P-256/P-384, Ed25519, RSA) for key-based cosign signatures.
 * - `cosign.keyless`: trust roots for keyless signatures (Fulcio certificate chain, Rekor and CT log keys,
 *   timestamp authorities), either as a sigstore `trusted_root.json` document or as PEM lists, plus the accepted
 *   identities (certificate SAN and OIDC issuer, exact or as a regular expression).
 * - `notation`: X.509 trust stores and trust policies with Notation's semantics
 *   (https://github.com/notaryproject/specifications, trust-store-trust-policy.md): a policy applies to the
 *   repositories its `registryScopes` name (`<host>/<repository>`; Berth ignores the host) or to all (`*`).
 */
import { z } from 'zod';
import { schemaProblem } from '../util/schema-problem.ts';

const name = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'letters, digits, ".", "_" and "-"');
const pem = z.string().min(1).max(200_000).includes('-----BEGIN ', { message: 'expected PEM text' });

/** A keyless identity matcher: each given field must match the certificate. */
export const identityMatcherSchema = z
  .object({
    /** The certificate's SAN (e-mail, URI), exactly. */
    subject: z.string().min(1).max(1000).optional(),
    /** A regular expression (ECMAScript, anchored by the caller's `^…$` if wanted) over the SAN. */
    subjectRegExp: z.string().min(1).max(1000).optional(),
    /** The OIDC issuer in the certificate's Fulcio extension, exactly. */
    issuer: z.string().min(1).max(1000).optional(),
    issuerRegExp: z.string().min(1).max(1000).optional(),
  })
  .strict()
  .refine((m) => (m.subject ?? m.subjectRegExp) !== undefined, {
    message: 'subject or subjectRegExp is required',
  })
  .refine((m) => (m.issuer ?? m.issuerRegExp) !== undefined, {
    message: 'issuer or issuerRegExp is required',
  });

export const cosignKeySchema = z.object({ name, publicKey: pem }).strict();

export const keylessTrustSchema = z
  .object({
    name,
    /**
     * A sigstore trusted root (the `trusted_root.json` of the public-good instance or a private one), with
     * certificate authorities, transparency logs, CT logs and timestamp authorities.
     */
    trustedRoot: z.record(z.string(), z.unknown()).optional(),
    /** Alternatively: the Fulcio root (and intermediate) certificates, PEM. */
    fulcioRoots: z.array(pem).max(20).optional(),
    /** Alternatively: Rekor public keys (PEM), for the signed entry timestamps and inclusion proofs. */
    rekorKeys: z.array(pem).max(20).optional(),
    /** Alternatively: RFC 3161 timestamp authority certificate chains (PEM). */
    timestampAuthorities: z.array(pem).max(20).optional(),
    /** Accepted signers: a certificate matching any of these. */
    identities: z.array(identityMatcherSchema).min(1).max(100),
    /**
     * Whether a proof of the signing time (a Rekor entry or a signed timestamp) is required. Without one, a
     * short-lived Fulcio certificate proves nothing once it expired; default true.
     */
    requireSignedTime: z.boolean().default(true),
  })
  .strict()
  .refine((k) => k.trustedRoot !== undefined || (k.fulcioRoots?.length ?? 0) > 0, {
    message: 'trustedRoot or fulcioRoots is required',
  });

export const notationTrustStoreSchema = z
  .object({
    /** Notation's trust store types. */
    type: z.enum(['ca', 'signingAuthority', 'tsa']),
    name,
    certificates: z.array(pem).min(1).max(50),
  })
  .strict();

export const notationTrustPolicySchema = z
  .object({
    name,
    /** `*`, or `<host>/<repository>` names; the host is not compared (see the module comment). */
    registryScopes: z.array(z.string().min(1).max(512)).min(1).max(100),
    signatureVerification: z
      .object({
        level: z.enum(['strict', 'permissive', 'audit', 'skip']),
        /** Per-check overrides, as Notation has them. */
        override: z
          .object({
            integrity: z.enum(['enforce']).optional(),
            authenticity: z.enum(['enforce', 'log', 'skip']).optional(),
            authenticTimestamp: z.enum(['enforce', 'log', 'skip']).optional(),
            expiry: z.enum(['enforce', 'log', 'skip']).optional(),
            revocation: z.enum(['enforce', 'log', 'skip']).optional(),
          })
          .strict()
          .optional(),
      })
      .strict(),
    /** `<type>:<name>` of trust stores, e.g. `ca:acme`. */
    trustStores: z
      .array(
        z.string().regex(/^(ca|signingAuthority|tsa):[A-Za-z0-9][A-Za-z0-9._-]*$/, 'expected <type>:<name>'),
      )
      .max(50)
      .default([]),
    /** `*`, or `x509.subject: <DN>` (the listed RDNs must all be in the signing certificate's subject). */
    trustedIdentities: z.array(z.string().min(1).max(1000)).max(100).default([]),
  })
  .strict();

export const signatureTrustSchema = z
  .object({
    /** `off`: no checks on pull; `warn`: pulls of unsigned images pass with a Warning header; `enforce`: 412. */
    mode: z.enum(['off', 'warn', 'enforce']).default('off'),
    /** Refuse pushing a signature that does not verify against this configuration (default false). */
    admission: z.boolean().default(false),
    cosign: z
      .object({
        keys: z.array(cosignKeySchema).max(100).default([]),
        keyless: z.array(keylessTrustSchema).max(20).default([]),
      })
      .strict()
      .prefault({}),
    notation: z
      .object({
        trustStores: z.array(notationTrustStoreSchema).max(50).default([]),
        trustPolicies: z.array(notationTrustPolicySchema).max(50).default([]),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type IdentityMatcher = z.output<typeof identityMatcherSchema>;
export type CosignKey = z.output<typeof cosignKeySchema>;
export type KeylessTrust = z.output<typeof keylessTrustSchema>;
export type NotationTrustStore = z.output<typeof notationTrustStoreSchema>;
export type NotationTrustPolicy = z.output<typeof notationTrustPolicySchema>;
export type SignatureTrust = z.output<typeof signatureTrustSchema>;
export type CosignTrust = SignatureTrust['cosign'];
export type NotationTrust = SignatureTrust['notation'];

/** The configuration of a namespace that configured nothing. */
export const NO_TRUST: SignatureTrust = signatureTrustSchema.parse({});

/** Thrown for a trust document that does not parse, naming the offending field. */
export class SignatureTrustError extends Error {
  constructor(
    message: string,
    readonly field: string | undefined,
  ) {
    super(message);
    this.name = 'SignatureTrustError';
  }
}

/** Parses and checks a trust document; throws SignatureTrustError naming the first problem. */
export function parseSignatureTrust(document: unknown): SignatureTrust {
  const result = signatureTrustSchema.safeParse(document);
  if (!result.success) {
    const problem = schemaProblem(result.error, 'trust');
    throw new SignatureTrustError(problem.message, problem.field);
  }
  const trust = result.data;
  const stores = new Set(trust.notation.trustStores.map((s) => `${s.type}:${s.name}`));
  for (const [i, policy] of trust.notation.trustPolicies.entries()) {
    for (const ref of policy.trustStores) {
      if (!stores.has(ref)) {
        throw new SignatureTrustError(
          `notation.trustPolicies.${i}.trustStores: no trust store ${ref}`,
          `notation.trustPolicies.${i}.trustStores`,
        );
      }
    }
  }
  const lists: [string, readonly { name: string; type?: string }[]][] = [
    ['cosign.keys', trust.cosign.keys],
    ['cosign.keyless', trust.cosign.keyless],
    ['notation.trustStores', trust.notation.trustStores],
    ['notation.trustPolicies', trust.notation.trustPolicies],
  ];
  for (const [path, list] of lists) {
    const seen = new Set<string>();
    for (const [i, item] of list.entries()) {
      // Trust stores are named per type (`ca:acme` and `tsa:acme` are two stores), as policies refer to them.
      const key = item.type === undefined ? item.name : `${item.type}:${item.name}`;
      if (seen.has(key)) {
        throw new SignatureTrustError(`${path}.${i}.name: duplicate name ${key}`, `${path}.${i}.name`);
      }
      seen.add(key);
    }
  }
  return trust;
}
