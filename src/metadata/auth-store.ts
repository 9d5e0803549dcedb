/**
 * The AuthStore port: identities and access control kept in the metadata database. Local users, robot accounts
 * (CI credentials), teams, namespaces with their members and roles, repository rules, token signing keys,
 * refresh tokens and the audit log. Implemented by `KyselyAuthStore` on SQLite and PostgreSQL, over the same
 * database (and migrations) as the MetadataStore.
 *
 * Contract shared by every implementation (checked by `testing/auth-store-suite.ts`):
 * - Every method is atomic. Names are stored verbatim and compared case-sensitively; callers validate them.
 * - Creating something whose name exists throws `ConflictError`; updating or deleting something absent returns
 *   null/false; referring to an absent principal or namespace in a membership throws `NotFoundError`.
 * - Deleting a user, robot, team or namespace removes its memberships, rules and team memberships with it;
 *   deleting a user or robot also revokes its refresh tokens.
 * - Secrets are never stored in clear: callers pass hashes.
 * - Lists are sorted by name (byte-wise), paginated with `after` (exclusive) like `PageOptions`.
 */
import type { Page, PageOptions } from './store.ts';

/** Namespace roles, weakest first. Each includes the rights of the ones before it. */
export const ROLES = ['reader', 'developer', 'maintainer', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Who can be a namespace member or the subject of a rule. */
export type MemberKind = 'user' | 'team' | 'robot';

export type Visibility = 'public' | 'private';

export interface UserRecord {
  readonly username: string;
  /** The password hash (see `auth/passwords.ts`), or null for a user who cannot log in with a password. */
  readonly passwordHash: string | null;
  readonly email: string | null;
  /** System administrator: every right everywhere. */
  readonly isAdmin: boolean;
  readonly disabled: boolean;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface RobotRecord {
  /** The robot's full login name, e.g. `robot$ci-builder`. */
  readonly name: string;
  readonly description: string;
  readonly secretHash: string;
  /** After this instant the secret no longer authenticates; null = never expires. */
  readonly expiresAt: Date | null;
  /** Set when revoked; a revoked robot never authenticates. */
  readonly revokedAt: Date | null;
  readonly createdBy: string | null;
  readonly createdAt: Date;
  readonly lastUsedAt: Date | null;
}

export interface TeamRecord {
  readonly name: string;
  readonly description: string;
  readonly createdAt: Date;
}

export interface NamespaceRecord {
  readonly name: string;
  readonly visibility: Visibility;
  readonly description: string;
  readonly createdAt: Date;
}

export interface MemberRecord {
  readonly namespace: string;
  readonly kind: MemberKind;
  /** Username, team name or robot name. */
  readonly principal: string;
  readonly role: Role;
}

/** A role granted on the repositories of `namespace` whose name (without the namespace) matches `pattern`. */
export interface RepositoryRuleRecord {
  readonly id: number;
  readonly namespace: string;
  /** A glob over the rest of the repository name: `*` matches within a path component, `**` across them. */
  readonly pattern: string;
  readonly kind: MemberKind;
  readonly principal: string;
  readonly role: Role;
}

export interface SigningKeyRecord {
  /** Key id (the JWK thumbprint), as in the JWT header. */
  readonly kid: string;
  /** JWS algorithm, e.g. `ES256`. */
  readonly algorithm: string;
  /** The private key as a JWK JSON string. */
  readonly privateJwk: string;
  /** The public key as a JWK JSON string. */
  readonly publicJwk: string;
  readonly createdAt: Date;
  /** When set, the key no longer signs; it verifies until tokens it signed have expired. */
  readonly retiredAt: Date | null;
}

export type SubjectKind = 'user' | 'robot';

export interface RefreshTokenRecord {
  /** The public part of the refresh token (a random id); the secret part is only stored hashed. */
  readonly id: string;
  readonly secretHash: string;
  readonly subjectKind: SubjectKind;
  readonly subject: string;
  readonly clientId: string;
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly revokedAt: Date | null;
}

export interface AuditEventInput {
  readonly time: Date;
  /** Who acted: a username, robot name, `anonymous`, or null for the system. */
  readonly actor: string | null;
  readonly actorKind: 'user' | 'robot' | 'anonymous' | 'system' | 'external';
  /** What happened, dotted: `login`, `push`, `delete`, `user.create`, `member.set`, ... */
  readonly action: string;
  /** What it happened to: a repository (`ns/repo:tag`, `ns/repo@digest`), a user, a namespace... */
  readonly target: string | null;
  readonly sourceAddr: string | null;
  readonly success: boolean;
  readonly detail: Record<string, unknown> | null;
}

export interface AuditEvent extends AuditEventInput {
  /** Increasing id; newer events have larger ids. */
  readonly id: number;
}

export interface AuditQuery {
  readonly actor?: string | undefined;
  /** Exact action, or a prefix ending with `.` (e.g. `user.`). */
  readonly action?: string | undefined;
  /** Exact target, or a prefix ending with `*` (e.g. `team/app*`). */
  readonly target?: string | undefined;
  readonly success?: boolean | undefined;
  readonly since?: Date | undefined;
  readonly until?: Date | undefined;
  /** Only events with id < before (pagination cursor, newest first). */
  readonly before?: number | undefined;
  readonly limit: number;
}

/** Failed logins of one account from one address, or of every account from one address. */
export interface LoginFailureGroup {
  /** The login name tried; null for a group of every account from `address`. */
  readonly account: string | null;
  readonly address: string;
  /** How many failures the group has since the time asked about. */
  readonly failures: number;
  /** The most recent failure. */
  readonly last: Date;
}

/** A name that must be unique is taken. */
export class ConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConflictError';
  }
}

/** A referenced user, robot, team or namespace does not exist. */
export class NotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotFoundError';
  }
}

export interface AuthStore {
  // --- users ---------------------------------------------------------------------------------------
  /** Creates a user; ConflictError when the username exists. */
  createUser(user: {
    username: string;
    passwordHash: string | null;
    email?: string | null;
    isAdmin: boolean;
  }): Promise<UserRecord>;
  /** The user, or null. */
  getUser(username: string): Promise<UserRecord | null>;
  /** Users sorted by username. */
  listUsers(options: PageOptions): Promise<Page<UserRecord>>;
  /** Changes the given fields (and updatedAt); null when the user does not exist. */
  updateUser(
    username: string,
    changes: { passwordHash?: string | null; email?: string | null; isAdmin?: boolean; disabled?: boolean },
  ): Promise<UserRecord | null>;
  /** Deletes the user with its memberships, team memberships, rules and refresh tokens; false when absent. */
  deleteUser(username: string): Promise<boolean>;
  /** Number of enabled system administrators. */
  countAdmins(): Promise<number>;

  // --- robots --------------------------------------------------------------------------------------
  createRobot(robot: {
    name: string;
    description: string;
    secretHash: string;
    expiresAt: Date | null;
    createdBy: string | null;
  }): Promise<RobotRecord>;
  getRobot(name: string): Promise<RobotRecord | null>;
  listRobots(options: PageOptions): Promise<Page<RobotRecord>>;
  updateRobot(
    name: string,
    changes: { secretHash?: string; expiresAt?: Date | null; revokedAt?: Date | null; description?: string },
  ): Promise<RobotRecord | null>;
  /** Records a successful authentication (best effort, may be coalesced). */
  touchRobot(name: string, at: Date): Promise<void>;
  deleteRobot(name: string): Promise<boolean>;

  // --- teams ---------------------------------------------------------------------------------------
  createTeam(team: { name: string; description: string }): Promise<TeamRecord>;
  getTeam(name: string): Promise<TeamRecord | null>;
  listTeams(options: PageOptions): Promise<Page<TeamRecord>>;
  deleteTeam(name: string): Promise<boolean>;
  /** Adds a user to a team (idempotent); NotFoundError when either is absent. */
  addTeamMember(team: string, username: string): Promise<void>;
  /** Removes a user from a team; false when they were not a member. */
  removeTeamMember(team: string, username: string): Promise<boolean>;
  /** Usernames in the team, sorted. */
  listTeamMembers(team: string): Promise<string[]>;
  /** Team names the user belongs to, sorted. */
  teamsOf(username: string): Promise<string[]>;

  // --- namespaces and roles ------------------------------------------------------------------------
  createNamespace(ns: {
    name: string;
    visibility: Visibility;
    description: string;
  }): Promise<NamespaceRecord>;
  getNamespace(name: string): Promise<NamespaceRecord | null>;
  listNamespaces(options: PageOptions): Promise<Page<NamespaceRecord>>;
  updateNamespace(
    name: string,
    changes: { visibility?: Visibility; description?: string },
  ): Promise<NamespaceRecord | null>;
  /** Deletes the namespace record with its members and rules (repositories are not touched); false when absent. */
  deleteNamespace(name: string): Promise<boolean>;
  /** Grants (or changes) a member's role; NotFoundError when the namespace or principal is absent. */
  setMember(namespace: string, kind: MemberKind, principal: string, role: Role): Promise<MemberRecord>;
  removeMember(namespace: string, kind: MemberKind, principal: string): Promise<boolean>;
  /** Members of the namespace, sorted by kind then principal. */
  listMembers(namespace: string): Promise<MemberRecord[]>;
  /** Names of the public namespaces. */
  publicNamespaces(): Promise<string[]>;
  /**
   * Every membership that applies to a user (directly or through their teams) or a robot, in one call: the hot
   * path of authorization.
   */
  membershipsOf(kind: 'user' | 'robot', name: string): Promise<MemberRecord[]>;

  // --- repository rules ----------------------------------------------------------------------------
  /** Adds a rule; NotFoundError when the namespace or principal is absent. */
  addRule(rule: Omit<RepositoryRuleRecord, 'id'>): Promise<RepositoryRuleRecord>;
  listRules(namespace: string): Promise<RepositoryRuleRecord[]>;
  deleteRule(id: number): Promise<boolean>;
  /** Every rule that applies to a user (directly or through their teams) or a robot. */
  rulesOf(kind: 'user' | 'robot', name: string): Promise<RepositoryRuleRecord[]>;

  // --- token signing keys --------------------------------------------------------------------------
  /** Stores a new key; ConflictError when the kid exists. */
  addSigningKey(key: Omit<SigningKeyRecord, 'retiredAt'>): Promise<void>;
  /** Every key, newest first, retired ones included. */
  listSigningKeys(): Promise<SigningKeyRecord[]>;
  /** Marks a key retired at `at`; false when absent or already retired. */
  retireSigningKey(kid: string, at: Date): Promise<boolean>;
  deleteSigningKey(kid: string): Promise<boolean>;

  // --- refresh tokens ------------------------------------------------------------------------------
  createRefreshToken(token: Omit<RefreshTokenRecord, 'createdAt' | 'revokedAt'>): Promise<void>;
  getRefreshToken(id: string): Promise<RefreshTokenRecord | null>;
  revokeRefreshToken(id: string): Promise<boolean>;
  /** Revokes every refresh token of the subject; returns how many. */
  revokeRefreshTokensOf(kind: SubjectKind, subject: string): Promise<number>;

  // --- audit log -----------------------------------------------------------------------------------
  appendAudit(event: AuditEventInput): Promise<void>;
  /** Events matching every given filter, newest first, at most `limit`; `hasMore` when older ones match too. */
  queryAudit(query: AuditQuery): Promise<Page<AuditEvent>>;

  // --- failed logins -------------------------------------------------------------------------------
  /** Records one failed login of the login name `account` from `address` at `at`. */
  recordLoginFailure(failure: { account: string; address: string; at: Date }): Promise<void>;
  /**
   * Times of failed logins at or after `since`, newest first, at most `limit`: those of `account` from `address`
   * when `account` is given, else those of every account from `address`.
   */
  recentLoginFailures(query: {
    account?: string | undefined;
    address: string;
    since: Date;
    limit: number;
  }): Promise<Date[]>;
  /**
   * The groups of failed logins at or after `since` that reach a count: (account, address) pairs with at least
   * `perPair` failures, and addresses (account null) with at least `perAddress` failures of any accounts. Sorted
   * by address, then account (the address's own group first).
   */
  loginFailureGroups(query: {
    since: Date;
    perPair: number;
    perAddress: number;
  }): Promise<LoginFailureGroup[]>;
  /**
   * Forgets failed logins: those of `account` (from every address, or from `address` when given), or those from
   * `address` (of every account) when no account is given; with `before` alone, every failure before it.
   * Returns how many were forgotten.
   */
  clearLoginFailures(filter: {
    account?: string | undefined;
    address?: string | undefined;
    before?: Date | undefined;
  }): Promise<number>;
}
