/**
 * Notation trust policy semantics (specifications: trust-store-trust-policy.md), as Berth applies them.
 *
 * Policy selection: a registry scope is `<host>[:port]/<repository>`; Berth serves one registry under many names,
 * so it ignores the host and a scope applies when its part after the first `/` is the subject's repository. `*`
 * applies to every repository; a policy naming the repository wins over `*`.
 *
 * Verification levels: each level says, for each check, whether a failure fails verification (`enforce`), is only
 * recorded (`log`) or the check is not done (`skip`):
 *
 * | level      | integrity | authenticity | authenticTimestamp | expiry  | revocation |
 * | ---------- | --------- | ------------ | ------------------ | ------- | ---------- |
 * | strict     | enforce   | enforce      | enforce            | enforce | enforce    |
 * | permissive | enforce   | enforce      | log                | log     | log        |
 * | audit      | enforce   | log          | log                | log     | log        |
 * | skip       | skip      | skip         | skip               | skip    | skip       |
 *
 * `override` changes single checks of strict, permissive and audit (integrity is always enforced).
 */
import type { NotationTrustPolicy } from './trust.ts';

/** The checks of Notation's verification, in the order they run. */
export type NotationCheck = 'integrity' | 'authenticity' | 'authenticTimestamp' | 'expiry' | 'revocation';
export type CheckAction = 'enforce' | 'log' | 'skip';
export type CheckActions = Readonly<Record<NotationCheck, CheckAction>>;

const LEVELS: Record<NotationTrustPolicy['signatureVerification']['level'], CheckActions> = {
  strict: {
    integrity: 'enforce',
    authenticity: 'enforce',
    authenticTimestamp: 'enforce',
    expiry: 'enforce',
    revocation: 'enforce',
  },
  permissive: {
    integrity: 'enforce',
    authenticity: 'enforce',
    authenticTimestamp: 'log',
    expiry: 'log',
    revocation: 'log',
  },
  audit: {
    integrity: 'enforce',
    authenticity: 'log',
    authenticTimestamp: 'log',
    expiry: 'log',
    revocation: 'log',
  },
  skip: {
    integrity: 'skip',
    authenticity: 'skip',
    authenticTimestamp: 'skip',
    expiry: 'skip',
    revocation: 'skip',
  },
};

/** The repository a registry scope names (the part after the first `/`), or null for `*` and host-only scopes. */
function scopeRepository(scope: string): string | null {
  const slash = scope.indexOf('/');
  return slash < 0 ? null : scope.slice(slash + 1);
}

/**
 * The policy that applies to `repository`: the first naming it in a registry scope, else the first with `*`, else
 * null.
 */
export function selectTrustPolicy(
  policies: readonly NotationTrustPolicy[],
  repository: string,
): NotationTrustPolicy | null {
  const specific = policies.find((p) => p.registryScopes.some((s) => scopeRepository(s) === repository));
  return specific ?? policies.find((p) => p.registryScopes.includes('*')) ?? null;
}

/** What the policy's level and overrides do with each check. */
export function checkActions(policy: NotationTrustPolicy): CheckActions {
  const { level, override } = policy.signatureVerification;
  const base = LEVELS[level];
  if (level === 'skip' || override === undefined) return base;
  return {
    integrity: 'enforce',
    authenticity: override.authenticity ?? base.authenticity,
    authenticTimestamp: override.authenticTimestamp ?? base.authenticTimestamp,
    expiry: override.expiry ?? base.expiry,
    revocation: override.revocation ?? base.revocation,
  };
}
