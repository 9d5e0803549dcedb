/** Matching a keyless certificate's identity (SAN and OIDC issuer) against configured identity matchers. */
import type { IdentityMatcher } from './trust.ts';

/** A certificate's identity as Fulcio writes it. */
export interface CertificateIdentity {
  /** The SAN: an e-mail address or a URI (e.g. a workflow reference). */
  readonly subject: string | undefined;
  /** The OIDC issuer from Fulcio's extension 1.3.6.1.4.1.57264.1.8 (or the older 1.3.6.1.4.1.57264.1.1). */
  readonly issuer: string | undefined;
}

/**
 * Whether `identity` satisfies `matcher`: every field the matcher gives must match (exact strings compare
 * exactly; regular expressions are ECMAScript, unanchored unless the pattern anchors itself, as cosign's
 * `--certificate-identity-regexp` is). A pattern that does not compile matches nothing.
 */
export function identityMatches(matcher: IdentityMatcher, identity: CertificateIdentity): boolean {
  return (
    fieldMatches(matcher.subject, matcher.subjectRegExp, identity.subject) &&
    fieldMatches(matcher.issuer, matcher.issuerRegExp, identity.issuer)
  );
}

/** Whether `identity` satisfies any of `matchers`. */
export function anyIdentityMatches(
  matchers: readonly IdentityMatcher[],
  identity: CertificateIdentity,
): boolean {
  return matchers.some((m) => identityMatches(m, identity));
}

function fieldMatches(
  exact: string | undefined,
  pattern: string | undefined,
  value: string | undefined,
): boolean {
  if (exact !== undefined && value !== exact) return false;
  if (pattern !== undefined) {
    if (value === undefined) return false;
    try {
      if (!new RegExp(pattern, 'u').test(value)) return false;
    } catch {
      return false;
    }
  }
  return true;
}
