/**
 * What the administration use cases return: the records without their secrets (password hashes, robot secret
 * hashes, private keys). Dates stay Dates; `JSON.stringify` writes them as RFC 3339.
 */
import type {
  MemberRecord,
  NamespaceRecord,
  RepositoryRuleRecord,
  Role,
  RobotRecord,
  SigningKeyRecord,
  TeamRecord,
  UserRecord,
} from '../metadata/auth-store.ts';
import type { LoginLock } from '../auth/login-limiter.ts';

export interface UserView {
  readonly username: string;
  readonly email: string | null;
  readonly isAdmin: boolean;
  readonly disabled: boolean;
  /** False for a user who can only authenticate with a client certificate. */
  readonly hasPassword: boolean;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export type RobotStatus = 'active' | 'expired' | 'revoked';

export interface RobotView {
  /** The login name, `robot$...`. */
  readonly name: string;
  readonly description: string;
  readonly status: RobotStatus;
  readonly expiresAt: Date | null;
  readonly revokedAt: Date | null;
  readonly createdBy: string | null;
  readonly createdAt: Date;
  readonly lastUsedAt: Date | null;
}

export type TeamView = TeamRecord;

export interface TeamDetailView extends TeamRecord {
  readonly members: string[];
}

export type NamespaceView = NamespaceRecord;
export type MemberView = MemberRecord;
export type RuleView = RepositoryRuleRecord;

export interface KeyView {
  readonly kid: string;
  readonly algorithm: string;
  /** True for the key that signs new tokens. */
  readonly active: boolean;
  readonly createdAt: Date;
  readonly retiredAt: Date | null;
  readonly publicJwk: Record<string, unknown>;
}

export interface MeView {
  readonly kind: 'user' | 'robot' | 'external' | 'system';
  readonly name: string | null;
  readonly isAdmin: boolean;
  readonly email: string | null;
  readonly teams: string[];
  /** The caller's namespace roles: direct, through teams, and their personal namespace. */
  readonly namespaces: { readonly namespace: string; readonly role: Role }[];
}

/** A login name refused from an address, or an address refused for every name, after failed logins. */
export type LoginLockView = LoginLock;

export interface ListResult<T> {
  readonly items: T[];
  /** The cursor of the next page (pass it as `after`), or null on the last page. */
  readonly next: string | null;
}

export function userView(u: UserRecord): UserView {
  return {
    username: u.username,
    email: u.email,
    isAdmin: u.isAdmin,
    disabled: u.disabled,
    hasPassword: u.passwordHash !== null,
    createdAt: u.createdAt,
    updatedAt: u.updatedAt,
  };
}

export function robotStatus(r: RobotRecord, now = Date.now()): RobotStatus {
  if (r.revokedAt !== null) return 'revoked';
  if (r.expiresAt !== null && r.expiresAt.getTime() <= now) return 'expired';
  return 'active';
}

export function robotView(r: RobotRecord): RobotView {
  return {
    name: r.name,
    description: r.description,
    status: robotStatus(r),
    expiresAt: r.expiresAt,
    revokedAt: r.revokedAt,
    createdBy: r.createdBy,
    createdAt: r.createdAt,
    lastUsedAt: r.lastUsedAt,
  };
}

export function keyView(k: SigningKeyRecord, active: boolean): KeyView {
  let publicJwk: Record<string, unknown> = {};
  try {
    publicJwk = JSON.parse(k.publicJwk) as Record<string, unknown>;
  } catch {
    // A corrupt record still lists; its JWK shows empty.
  }
  return {
    kid: k.kid,
    algorithm: k.algorithm,
    active,
    createdAt: k.createdAt,
    retiredAt: k.retiredAt,
    publicJwk,
  };
}

/** Copies only the fields a view has (records from a store may carry more). */
export function teamView(t: TeamRecord): TeamView {
  return { name: t.name, description: t.description, createdAt: t.createdAt };
}

export function namespaceView(n: NamespaceRecord): NamespaceView {
  return { name: n.name, visibility: n.visibility, description: n.description, createdAt: n.createdAt };
}

export function memberView(m: MemberRecord): MemberView {
  return { namespace: m.namespace, kind: m.kind, principal: m.principal, role: m.role };
}

export function ruleView(r: RepositoryRuleRecord): RuleView {
  return {
    id: r.id,
    namespace: r.namespace,
    pattern: r.pattern,
    kind: r.kind,
    principal: r.principal,
    role: r.role,
  };
}
