/**
 * The administration use cases, shared by the HTTP API (`http/admin`) and the CLI (`cli/admin`): users, robot
 * accounts, teams, namespaces with their members and repository rules, token signing keys and the audit log.
 *
 * Every use case takes the acting `Actor`, enforces who may do it, validates its input, makes the change,
 * forgets this process's cached credentials and roles (other instances converge within `auth.cacheTtl`) and
 * records an audit event. Who may do what:
 * - the system (the CLI on the database, `principal: null`) and system administrators: everything;
 * - a user with the `admin` role on a namespace (directly, through a team, or their personal namespace): that
 *   namespace's settings, members and rules;
 * - any user: `me`, and their own password (with the current one).
 * Denied changes are audited too (`success: false`). Failures are `AdminError`s (not-found, conflict, invalid,
 * forbidden).
 *
 * Why robots never manage namespaces, even with the `admin` role: robot credentials live in CI systems; a
 * leaked one should not be able to hand out access. Their `admin` role grants repository rights only.
 */
import { randomBytes } from 'node:crypto';
import type { AuditLog } from '../auth/audit.ts';
import { ROBOT_PREFIX, type Authenticator } from '../auth/authenticator.ts';
import { maxRole, type Authorizer } from '../auth/authorizer.ts';
import { hashPassword, hashSecret, randomSecret } from '../auth/passwords.ts';
import type { Action, Principal } from '../auth/principal.ts';
import type { AuthServices } from '../auth/setup.ts';
import type { SigningKeys } from '../auth/token/signing-keys.ts';
import {
  ConflictError,
  NotFoundError,
  type AuditEvent,
  type AuthStore,
  type MemberKind,
  type Role,
  type Visibility,
} from '../metadata/auth-store.ts';
import type { Page } from '../metadata/store.ts';
import { conflict, forbidden, invalid, notFound } from './errors.ts';
import {
  checkDescription,
  checkEmail,
  checkFuture,
  checkKind,
  checkLimit,
  checkNamespaceName,
  checkPassword,
  checkPattern,
  checkRole,
  checkTeamName,
  checkUsername,
  checkVisibility,
  robotName,
} from './validation.ts';
import {
  keyView,
  memberView,
  namespaceView,
  robotView,
  ruleView,
  teamView,
  userView,
  type KeyView,
  type ListResult,
  type LoginLockView,
  type MeView,
  type MemberView,
  type NamespaceView,
  type RobotView,
  type RuleView,
  type TeamDetailView,
  type TeamView,
  type UserView,
} from './views.ts';

/** Who is acting. */
export interface Actor {
  /** The caller with its live admin flag (see `AccessControl.resolve`); null = the system (the CLI). */
  readonly principal: Principal | null;
  /** The client address, for the audit log (HTTP only). */
  readonly sourceAddr?: string | null;
  /** How the change arrived, for the audit log. */
  readonly via?: 'api' | 'cli';
}

/** The CLI acting directly on the database. */
export const SYSTEM_ACTOR: Actor = Object.freeze({ principal: null, sourceAddr: null, via: 'cli' });

export interface PageInput {
  readonly limit?: number | undefined;
  /** Cursor: the `next` of the previous page. */
  readonly after?: string | undefined;
}

export interface AuditFilter {
  readonly actor?: string | undefined;
  /** Exact action, or a prefix ending with `.` (`user.`). */
  readonly action?: string | undefined;
  /** Exact target, or a prefix ending with `*` (`team/app*`). */
  readonly target?: string | undefined;
  readonly success?: boolean | undefined;
  readonly since?: Date | undefined;
  readonly until?: Date | undefined;
  /** Cursor: the `next` of the previous page (events older than it). */
  readonly before?: string | undefined;
  readonly limit?: number | undefined;
}

export interface AuditResult {
  /** Newest first. */
  readonly events: AuditEvent[];
  /** Pass as `before` for older events; null when there are none. */
  readonly next: string | null;
}

export interface AdminDeps {
  readonly store: AuthStore;
  readonly audit: AuditLog;
  readonly authenticator: Authenticator;
  readonly authorizer: Authorizer;
  readonly keys: SigningKeys;
}

export interface AdminOptions {
  /** `auth.personalNamespaces`: users administer the namespace named like them. */
  readonly personalNamespaces: boolean;
}

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;
export const DEFAULT_AUDIT_PAGE_SIZE = 50;

/** A random password for `users add` without one: 24 characters, 144 bits. */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}

/** The robot login name for a lookup: the prefix is optional. */
function robotKey(name: string): string {
  return name.startsWith(ROBOT_PREFIX) ? name : `${ROBOT_PREFIX}${name}`;
}

/** Turns the store's errors into AdminErrors. */
function fromStore(e: unknown): never {
  if (e instanceof ConflictError) throw conflict(e.message);
  if (e instanceof NotFoundError) throw notFound(e.message);
  throw e;
}

function listOf<R, T>(page: Page<R>, view: (r: R) => T, key: (r: R) => string): ListResult<T> {
  const last = page.items[page.items.length - 1];
  return { items: page.items.map(view), next: page.hasMore && last !== undefined ? key(last) : null };
}

/** One page of an in-memory list, ordered by `key` (code-unit order, byte order for ASCII names). */
function paginate<T>(
  items: readonly T[],
  key: (t: T) => string,
  limit: number,
  after?: string,
): ListResult<T> {
  const sorted = [...items].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  const rest = after === undefined ? sorted : sorted.filter((t) => key(t) > after);
  const page = rest.slice(0, limit);
  const last = page[page.length - 1];
  return { items: page, next: rest.length > limit && last !== undefined ? key(last) : null };
}

/** Rule ids as cursors: zero-padded so that string order is numeric order. */
function ruleKey(id: number): string {
  return String(id).padStart(16, '0');
}

export class AdminService {
  constructor(
    private readonly deps: AdminDeps,
    private readonly options: AdminOptions,
  ) {}

  static from(auth: AuthServices, options: AdminOptions): AdminService {
    return new AdminService(auth, options);
  }

  // --- the caller ----------------------------------------------------------------------------------

  /** Who the caller is, with their teams and namespace roles. */
  async me(actor: Actor): Promise<MeView> {
    const p = actor.principal;
    if (p === null)
      return { kind: 'system', name: null, isAdmin: true, email: null, teams: [], namespaces: [] };
    if (p.kind === 'anonymous') throw forbidden('authentication required');
    if (p.kind === 'external') {
      return { kind: 'external', name: p.name, isAdmin: false, email: null, teams: [], namespaces: [] };
    }
    const { store } = this.deps;
    const roles = new Map<string, Role>();
    for (const m of await store.membershipsOf(p.kind, p.name))
      roles.set(m.namespace, maxRole(roles.get(m.namespace) ?? null, m.role) as Role);
    if (p.kind === 'user' && this.options.personalNamespaces) roles.set(p.name, 'admin');
    const user = p.kind === 'user' ? await store.getUser(p.name) : null;
    return {
      kind: p.kind,
      name: p.name,
      isAdmin: p.isAdmin,
      email: user?.email ?? null,
      teams: p.kind === 'user' ? await store.teamsOf(p.name) : [],
      namespaces: [...roles.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([namespace, role]) => ({ namespace, role })),
    };
  }

  // --- users ---------------------------------------------------------------------------------------

  async listUsers(actor: Actor, page: PageInput = {}): Promise<ListResult<UserView>> {
    await this.requireSystem(actor, 'listing users');
    const { limit, after } = this.page(page);
    return listOf(await this.deps.store.listUsers({ limit, after }), userView, (u) => u.username);
  }

  async getUser(actor: Actor, username: string): Promise<UserView> {
    await this.requireSystem(actor, 'reading users');
    return userView(await this.user(username));
  }

  /**
   * Creates a user. `password`: a string sets it, null creates a user without one (client certificates only),
   * undefined generates one, returned once as `password`.
   */
  async createUser(
    actor: Actor,
    input: { username: string; password?: string | null; email?: string | null; isAdmin?: boolean },
  ): Promise<{ user: UserView; password: string | null }> {
    await this.requireSystem(actor, 'creating users', 'user.create', input.username);
    const username = checkUsername(input.username);
    if (typeof input.password === 'string') checkPassword(input.password);
    const email = checkEmail(input.email ?? null);
    if (this.options.personalNamespaces && (await this.deps.store.getNamespace(username))) {
      throw conflict(
        `a namespace named ${username} exists; with auth.personalNamespaces a user of that name would administer it`,
      );
    }
    const generated = input.password === undefined ? generatePassword() : null;
    const clear = input.password ?? generated;
    const passwordHash = clear === null ? null : await hashPassword(clear);
    const isAdmin = input.isAdmin === true;
    const user = await this.deps.store
      .createUser({ username, passwordHash, email, isAdmin })
      .catch((e: unknown) => fromStore(e));
    this.changed();
    await this.record(actor, 'user.create', username, { isAdmin, email, hasPassword: clear !== null });
    return { user: userView(user), password: generated };
  }

  /** Changes a user's email, administrator flag or disabled flag. */
  async updateUser(
    actor: Actor,
    username: string,
    changes: { email?: string | null; isAdmin?: boolean; disabled?: boolean },
  ): Promise<UserView> {
    await this.requireSystem(actor, 'changing users', 'user.update', username);
    const patch: { email?: string | null; isAdmin?: boolean; disabled?: boolean } = {};
    if (changes.email !== undefined) patch.email = checkEmail(changes.email);
    if (changes.isAdmin !== undefined) patch.isAdmin = changes.isAdmin;
    if (changes.disabled !== undefined) patch.disabled = changes.disabled;
    const before = await this.user(username);
    if (Object.keys(patch).length === 0) return userView(before);
    if (patch.isAdmin === false || patch.disabled === true)
      await this.keepAnAdmin(before, patch.isAdmin === false ? 'demote' : 'disable');
    const after = await this.deps.store.updateUser(username, patch);
    if (!after) throw notFound(`user ${username} does not exist`);
    let refreshTokensRevoked = 0;
    if (patch.disabled === true && !before.disabled)
      refreshTokensRevoked = await this.deps.store.revokeRefreshTokensOf('user', username);
    this.changed();
    await this.record(actor, 'user.update', username, {
      changes: patch,
      ...(refreshTokensRevoked > 0 ? { refreshTokensRevoked } : {}),
    });
    return userView(after);
  }

  /**
   * Sets a user's password (generated and returned once when `password` is undefined) and revokes their refresh
   * tokens. Administrators may set anyone's; a user their own, giving the current one.
   */
  async setPassword(
    actor: Actor,
    username: string,
    input: { password?: string | undefined; currentPassword?: string | undefined },
  ): Promise<{ user: UserView; password: string | null }> {
    const p = actor.principal;
    const self = p !== null && p.kind === 'user' && p.name === username;
    if (!this.isSystem(actor)) {
      if (!self) await this.deny(actor, "changing another user's password", 'user.update', username);
      if (input.currentPassword === undefined)
        throw invalid('the current password is required to change your own password', 'currentPassword');
      const ok = await this.deps.authenticator.login(username, input.currentPassword, {
        sourceAddr: actor.sourceAddr ?? '',
        via: actor.via ?? 'api',
      });
      if (!ok) await this.deny(actor, 'the current password is wrong', 'user.update', username);
    }
    if (input.password !== undefined) checkPassword(input.password);
    await this.user(username);
    const generated = input.password === undefined ? generatePassword() : null;
    const passwordHash = await hashPassword(input.password ?? (generated as string));
    const after = await this.deps.store.updateUser(username, { passwordHash });
    if (!after) throw notFound(`user ${username} does not exist`);
    const refreshTokensRevoked = await this.deps.store.revokeRefreshTokensOf('user', username);
    this.changed();
    await this.record(actor, 'user.update', username, {
      changes: { password: 'changed' },
      refreshTokensRevoked,
    });
    return { user: userView(after), password: generated };
  }

  /** Deletes a user with their memberships, team memberships, rules and refresh tokens. */
  async deleteUser(actor: Actor, username: string): Promise<void> {
    await this.requireSystem(actor, 'deleting users', 'user.delete', username);
    await this.keepAnAdmin(await this.user(username), 'delete');
    await this.deps.store.revokeRefreshTokensOf('user', username);
    if (!(await this.deps.store.deleteUser(username))) throw notFound(`user ${username} does not exist`);
    this.changed();
    await this.record(actor, 'user.delete', username, null);
  }

  // --- robots --------------------------------------------------------------------------------------

  async listRobots(actor: Actor, page: PageInput = {}): Promise<ListResult<RobotView>> {
    await this.requireSystem(actor, 'listing robots');
    const { limit, after } = this.page(page);
    return listOf(await this.deps.store.listRobots({ limit, after }), robotView, (r) => r.name);
  }

  async getRobot(actor: Actor, name: string): Promise<RobotView> {
    await this.requireSystem(actor, 'reading robots');
    return robotView(await this.robot(name));
  }

  /** Creates a robot account (`name` with or without `robot$`); its secret is returned here only. */
  async createRobot(
    actor: Actor,
    input: { name: string; description?: string; expiresAt?: Date | null },
  ): Promise<{ robot: RobotView; secret: string }> {
    await this.requireSystem(actor, 'creating robots', 'robot.create', input.name);
    const name = robotName(input.name);
    const description = checkDescription(input.description ?? '');
    const expiresAt = input.expiresAt ? checkFuture(input.expiresAt, 'expiresAt') : null;
    const secret = randomSecret();
    const robot = await this.deps.store
      .createRobot({
        name,
        description,
        secretHash: hashSecret(secret),
        expiresAt,
        createdBy: actor.principal?.name ?? null,
      })
      .catch((e: unknown) => fromStore(e));
    this.changed();
    await this.record(actor, 'robot.create', name, { expiresAt });
    return { robot: robotView(robot), secret };
  }

  /**
   * Replaces a robot's secret (the old one stops working at once in this process, within `auth.cacheTtl`
   * elsewhere) and revokes its refresh tokens; `expiresAt` (when given) replaces the expiry.
   */
  async rotateRobot(
    actor: Actor,
    name: string,
    input: { expiresAt?: Date | null } = {},
  ): Promise<{ robot: RobotView; secret: string }> {
    await this.requireSystem(actor, 'rotating robot secrets', 'robot.rotate', robotKey(name));
    const robot = await this.robot(name);
    if (robot.revokedAt !== null) throw conflict(`robot ${robot.name} is revoked; create a new one`);
    const changes: { secretHash: string; expiresAt?: Date | null } = { secretHash: '' };
    if (input.expiresAt !== undefined)
      changes.expiresAt = input.expiresAt === null ? null : checkFuture(input.expiresAt, 'expiresAt');
    const secret = randomSecret();
    changes.secretHash = hashSecret(secret);
    const after = await this.deps.store.updateRobot(robot.name, changes);
    if (!after) throw notFound(`robot ${robot.name} does not exist`);
    await this.deps.store.revokeRefreshTokensOf('robot', robot.name);
    this.changed();
    await this.record(
      actor,
      'robot.rotate',
      robot.name,
      input.expiresAt !== undefined ? { expiresAt: changes.expiresAt } : null,
    );
    return { robot: robotView(after), secret };
  }

  /** Revokes a robot for good (it stays listed); revoking a revoked robot changes nothing. */
  async revokeRobot(actor: Actor, name: string): Promise<RobotView> {
    await this.requireSystem(actor, 'revoking robots', 'robot.revoke', robotKey(name));
    const robot = await this.robot(name);
    if (robot.revokedAt !== null) return robotView(robot);
    const after = await this.deps.store.updateRobot(robot.name, { revokedAt: new Date() });
    if (!after) throw notFound(`robot ${robot.name} does not exist`);
    await this.deps.store.revokeRefreshTokensOf('robot', robot.name);
    this.changed();
    await this.record(actor, 'robot.revoke', robot.name, null);
    return robotView(after);
  }

  async deleteRobot(actor: Actor, name: string): Promise<void> {
    const key = robotKey(name);
    await this.requireSystem(actor, 'deleting robots', 'robot.delete', key);
    if (!(await this.deps.store.deleteRobot(key))) throw notFound(`robot ${key} does not exist`);
    this.changed();
    await this.record(actor, 'robot.delete', key, null);
  }

  // --- teams ---------------------------------------------------------------------------------------

  async listTeams(actor: Actor, page: PageInput = {}): Promise<ListResult<TeamView>> {
    await this.requireSystem(actor, 'listing teams');
    const { limit, after } = this.page(page);
    return listOf(await this.deps.store.listTeams({ limit, after }), teamView, (t) => t.name);
  }

  async getTeam(actor: Actor, name: string): Promise<TeamDetailView> {
    await this.requireSystem(actor, 'reading teams');
    const team = await this.team(name);
    return { ...teamView(team), members: await this.deps.store.listTeamMembers(name) };
  }

  async createTeam(actor: Actor, input: { name: string; description?: string }): Promise<TeamView> {
    await this.requireSystem(actor, 'creating teams', 'team.create', input.name);
    const name = checkTeamName(input.name);
    const description = checkDescription(input.description ?? '');
    const team = await this.deps.store.createTeam({ name, description }).catch((e: unknown) => fromStore(e));
    this.changed();
    await this.record(actor, 'team.create', name, null);
    return teamView(team);
  }

  async deleteTeam(actor: Actor, name: string): Promise<void> {
    await this.requireSystem(actor, 'deleting teams', 'team.delete', name);
    if (!(await this.deps.store.deleteTeam(name))) throw notFound(`team ${name} does not exist`);
    this.changed();
    await this.record(actor, 'team.delete', name, null);
  }

  async listTeamMembers(actor: Actor, team: string, page: PageInput = {}): Promise<ListResult<string>> {
    await this.requireSystem(actor, 'reading teams');
    await this.team(team);
    const { limit, after } = this.page(page);
    return paginate(await this.deps.store.listTeamMembers(team), (u) => u, limit, after);
  }

  /** Adds a user to a team (adding a member again changes nothing). */
  async addTeamMember(actor: Actor, team: string, username: string): Promise<void> {
    await this.requireSystem(actor, 'changing teams', 'team.member.add', team);
    await this.deps.store.addTeamMember(team, username).catch((e: unknown) => fromStore(e));
    this.changed();
    await this.record(actor, 'team.member.add', team, { user: username });
  }

  async removeTeamMember(actor: Actor, team: string, username: string): Promise<void> {
    await this.requireSystem(actor, 'changing teams', 'team.member.remove', team);
    await this.team(team);
    if (!(await this.deps.store.removeTeamMember(team, username)))
      throw notFound(`${username} is not a member of team ${team}`);
    this.changed();
    await this.record(actor, 'team.member.remove', team, { user: username });
  }

  // --- namespaces ----------------------------------------------------------------------------------

  /** Every namespace for administrators; for other users, the namespaces they administer. */
  async listNamespaces(actor: Actor, page: PageInput = {}): Promise<ListResult<NamespaceView>> {
    const { limit, after } = this.page(page);
    const { store } = this.deps;
    if (this.isSystem(actor))
      return listOf(await store.listNamespaces({ limit, after }), namespaceView, (n) => n.name);
    const p = actor.principal as Principal;
    if (p.kind !== 'user') await this.deny(actor, 'listing namespaces');
    const names = new Set<string>();
    for (const m of await store.membershipsOf('user', p.name)) if (m.role === 'admin') names.add(m.namespace);
    if (this.options.personalNamespaces) names.add(p.name);
    const items: NamespaceView[] = [];
    for (const name of [...names].sort()) {
      if (after !== undefined && name <= after) continue;
      const ns = await store.getNamespace(name);
      if (ns) items.push(namespaceView(ns));
      if (items.length > limit) break;
    }
    const shown = items.slice(0, limit);
    const last = shown[shown.length - 1];
    return { items: shown, next: items.length > limit && last ? last.name : null };
  }

  async getNamespace(actor: Actor, name: string): Promise<NamespaceView> {
    await this.requireNamespaceAdmin(actor, name, 'reading the settings of namespace');
    return namespaceView(await this.namespace(name));
  }

  async createNamespace(
    actor: Actor,
    input: { name: string; visibility?: Visibility; description?: string },
  ): Promise<NamespaceView> {
    await this.requireSystem(actor, 'creating namespaces', 'namespace.create', input.name);
    const name = checkNamespaceName(input.name);
    const visibility = checkVisibility(input.visibility ?? 'private');
    const description = checkDescription(input.description ?? '');
    const ns = await this.deps.store
      .createNamespace({ name, visibility, description })
      .catch((e: unknown) => fromStore(e));
    this.changed();
    await this.record(actor, 'namespace.create', name, { visibility });
    return namespaceView(ns);
  }

  async updateNamespace(
    actor: Actor,
    name: string,
    changes: { visibility?: Visibility; description?: string },
  ): Promise<NamespaceView> {
    await this.requireNamespaceAdmin(actor, name, 'changing the settings of namespace', 'namespace.update');
    const patch: { visibility?: Visibility; description?: string } = {};
    if (changes.visibility !== undefined) patch.visibility = checkVisibility(changes.visibility);
    if (changes.description !== undefined) patch.description = checkDescription(changes.description);
    if (Object.keys(patch).length === 0) return namespaceView(await this.namespace(name));
    const ns = await this.deps.store.updateNamespace(name, patch);
    if (!ns) throw notFound(`namespace ${name} does not exist`);
    this.changed();
    await this.record(actor, 'namespace.update', name, { changes: patch });
    return namespaceView(ns);
  }

  /** Deletes the namespace record with its members and rules; its repositories stay. */
  async deleteNamespace(actor: Actor, name: string): Promise<void> {
    await this.requireSystem(actor, 'deleting namespaces', 'namespace.delete', name);
    if (!(await this.deps.store.deleteNamespace(name))) throw notFound(`namespace ${name} does not exist`);
    this.changed();
    await this.record(actor, 'namespace.delete', name, null);
  }

  // --- members -------------------------------------------------------------------------------------

  /** Members sorted by kind then principal; the cursor is `kind:principal`. */
  async listMembers(actor: Actor, namespace: string, page: PageInput = {}): Promise<ListResult<MemberView>> {
    await this.requireNamespaceAdmin(actor, namespace, 'listing the members of namespace');
    await this.namespace(namespace);
    const { limit, after } = this.page(page);
    const members = (await this.deps.store.listMembers(namespace)).map(memberView);
    const result = paginate(members, (m) => `${m.kind}:${m.principal}`, limit, after);
    return result;
  }

  /** Grants `role` on the namespace to a user, team or robot (changing the role it had). */
  async setMember(
    actor: Actor,
    namespace: string,
    kind: string,
    principal: string,
    role: string,
  ): Promise<MemberView> {
    await this.requireNamespaceAdmin(actor, namespace, 'changing the members of namespace', 'member.set');
    const k = checkKind(kind);
    const r = checkRole(role);
    const name = k === 'robot' ? robotKey(principal) : principal;
    await this.namespace(namespace);
    const previous = (await this.deps.store.listMembers(namespace)).find(
      (m) => m.kind === k && m.principal === name,
    );
    const member = await this.deps.store.setMember(namespace, k, name, r).catch((e: unknown) => fromStore(e));
    this.changed();
    await this.record(actor, 'member.set', namespace, {
      kind: k,
      principal: name,
      role: r,
      ...(previous ? { previousRole: previous.role } : {}),
    });
    return memberView(member);
  }

  async removeMember(actor: Actor, namespace: string, kind: string, principal: string): Promise<void> {
    await this.requireNamespaceAdmin(actor, namespace, 'changing the members of namespace', 'member.remove');
    const k = checkKind(kind);
    const name = k === 'robot' ? robotKey(principal) : principal;
    await this.namespace(namespace);
    if (!(await this.deps.store.removeMember(namespace, k, name)))
      throw notFound(`${k} ${name} is not a member of namespace ${namespace}`);
    this.changed();
    await this.record(actor, 'member.remove', namespace, { kind: k, principal: name });
  }

  // --- repository rules ----------------------------------------------------------------------------

  /** Rules sorted by id; the cursor is the id. */
  async listRules(actor: Actor, namespace: string, page: PageInput = {}): Promise<ListResult<RuleView>> {
    await this.requireNamespaceAdmin(actor, namespace, 'listing the rules of namespace');
    await this.namespace(namespace);
    const { limit, after } = this.page(page);
    let afterKey: string | undefined;
    if (after !== undefined) {
      if (!/^\d{1,15}$/.test(after)) throw invalid('after must be a rule id', 'after');
      afterKey = ruleKey(Number(after));
    }
    const rules = (await this.deps.store.listRules(namespace)).map(ruleView);
    const result = paginate(rules, (r) => ruleKey(r.id), limit, afterKey);
    return { items: result.items, next: result.next === null ? null : String(Number(result.next)) };
  }

  /** Grants `role` on the namespace's repositories matching `pattern` (the name after the namespace). */
  async addRule(
    actor: Actor,
    namespace: string,
    input: { pattern: string; kind: string; principal: string; role: string },
  ): Promise<RuleView> {
    await this.requireNamespaceAdmin(actor, namespace, 'changing the rules of namespace', 'rule.add');
    const pattern = checkPattern(input.pattern);
    const kind: MemberKind = checkKind(input.kind);
    const role = checkRole(input.role);
    const principal = kind === 'robot' ? robotKey(input.principal) : input.principal;
    await this.namespace(namespace);
    const rule = await this.deps.store
      .addRule({ namespace, pattern, kind, principal, role })
      .catch((e: unknown) => fromStore(e));
    this.changed();
    await this.record(actor, 'rule.add', namespace, { id: rule.id, pattern, kind, principal, role });
    return ruleView(rule);
  }

  /**
   * Deletes a rule by id. With `namespace` (the HTTP API), the rule must belong to it; without (the CLI), it is
   * looked for in every namespace, so the audit event names it fully.
   */
  async deleteRule(actor: Actor, id: number, namespace?: string): Promise<RuleView> {
    if (namespace !== undefined) {
      await this.requireNamespaceAdmin(actor, namespace, 'changing the rules of namespace', 'rule.delete');
    } else {
      await this.requireSystem(actor, 'deleting rules', 'rule.delete', null);
    }
    if (!Number.isSafeInteger(id) || id < 1)
      throw invalid('the rule id must be a positive whole number', 'id');
    const rule = await this.findRule(id, namespace);
    if (!rule || !(await this.deps.store.deleteRule(id))) {
      throw notFound(
        namespace === undefined
          ? `rule ${id} does not exist`
          : `rule ${id} does not exist in namespace ${namespace}`,
      );
    }
    this.changed();
    await this.record(actor, 'rule.delete', rule.namespace, { ...ruleView(rule) });
    return ruleView(rule);
  }

  // --- signing keys --------------------------------------------------------------------------------

  /** Token signing keys, newest first (the cursor is a key id). Private keys are never returned. */
  async listKeys(actor: Actor, page: PageInput = {}): Promise<ListResult<KeyView>> {
    await this.requireSystem(actor, 'listing signing keys');
    const { limit, after } = this.page(page);
    const keys = await this.deps.store.listSigningKeys();
    const signing = keys.find((k) => k.retiredAt === null)?.kid;
    let start = 0;
    if (after !== undefined) {
      start = keys.findIndex((k) => k.kid === after) + 1;
      if (start === 0) throw invalid(`no signing key ${after}`, 'after');
    }
    const items = keys.slice(start, start + limit).map((k) => keyView(k, k.kid === signing));
    const last = items[items.length - 1];
    return { items, next: start + limit < keys.length && last ? last.kid : null };
  }

  /** Creates a new signing key and retires the others (they verify until their tokens expire). */
  async rotateKey(actor: Actor): Promise<KeyView> {
    await this.requireSystem(actor, 'rotating signing keys', 'key.rotate', null);
    const retired = (await this.deps.store.listSigningKeys())
      .filter((k) => k.retiredAt === null)
      .map((k) => k.kid);
    const kid = await this.deps.keys.rotate();
    const key = (await this.deps.store.listSigningKeys()).find((k) => k.kid === kid);
    if (!key) throw new Error(`signing key ${kid} vanished after rotation`);
    await this.record(actor, 'key.rotate', kid, { retired });
    return keyView(key, true);
  }

  /** Deletes retired keys that can no longer verify any token; returns their ids. */
  async pruneKeys(actor: Actor): Promise<string[]> {
    await this.requireSystem(actor, 'pruning signing keys', 'key.prune', null);
    const pruned = await this.deps.keys.prune();
    await this.record(actor, 'key.prune', null, { pruned });
    return pruned;
  }

  // --- failed-login locks --------------------------------------------------------------------------

  /** The login names (per address) and addresses refused now after too many failed logins. */
  async listLoginLocks(actor: Actor): Promise<ListResult<LoginLockView>> {
    await this.requireSystem(actor, 'listing login locks');
    return { items: await this.deps.authenticator.limiter.locks(), next: null };
  }

  /**
   * Lifts failed-login locks: of the login name `account` (from every address, or from `address` only), or of
   * every name from `address`. Returns how many failures were forgotten.
   */
  async unlockLogins(actor: Actor, filter: { account?: string; address?: string }): Promise<number> {
    const target = filter.account ?? filter.address ?? null;
    await this.requireSystem(actor, 'lifting login locks', 'login.unlock', target);
    if (filter.account === undefined && filter.address === undefined)
      throw invalid('name a login name or an address to unlock', 'account');
    if (filter.address !== undefined && (filter.address === '' || filter.address.length > 100))
      throw invalid('invalid address', 'address');
    const forgotten = await this.deps.authenticator.limiter.unlock(filter);
    await this.record(actor, 'login.unlock', target, {
      ...(filter.account !== undefined && filter.address !== undefined ? { address: filter.address } : {}),
      forgotten,
    });
    return forgotten;
  }

  // --- audit log -----------------------------------------------------------------------------------

  /** Audit events matching every given filter, newest first. */
  async queryAudit(actor: Actor, filter: AuditFilter = {}): Promise<AuditResult> {
    await this.requireSystem(actor, 'reading the audit log');
    const limit =
      filter.limit === undefined ? DEFAULT_AUDIT_PAGE_SIZE : checkLimit(filter.limit, MAX_PAGE_SIZE);
    let before: number | undefined;
    if (filter.before !== undefined) {
      if (!/^\d{1,15}$/.test(filter.before)) throw invalid('before must be an event id', 'before');
      before = Number(filter.before);
    }
    const page = await this.deps.store.queryAudit({
      actor: filter.actor,
      action: filter.action,
      target: filter.target,
      success: filter.success,
      since: filter.since,
      until: filter.until,
      before,
      limit,
    });
    const last = page.items[page.items.length - 1];
    return { events: page.items, next: page.hasMore && last ? String(last.id) : null };
  }

  // --- helpers -------------------------------------------------------------------------------------

  private page(input: PageInput): { limit: number; after: string | undefined } {
    return {
      limit: input.limit === undefined ? DEFAULT_PAGE_SIZE : checkLimit(input.limit, MAX_PAGE_SIZE),
      after: input.after === undefined || input.after === '' ? undefined : input.after,
    };
  }

  // The checks below are shared with the other administration services (`webhook-service.ts`), so that one
  // place decides who a system or namespace administrator is and audits refusals the same way.

  /** True for the system (the CLI) and system administrators. */
  isSystem(actor: Actor): boolean {
    return actor.principal === null || actor.principal.isAdmin;
  }

  /** True when `actor` may manage `namespace`: the system, system administrators, users with its `admin` role. */
  async administers(actor: Actor, namespace: string): Promise<boolean> {
    if (this.isSystem(actor)) return true;
    const p = actor.principal as Principal;
    return p.kind === 'user' && (await this.deps.authorizer.namespaceRole(p, namespace)) === 'admin';
  }

  /** Throws `forbidden` unless `actor` is the system or a system administrator (auditing `action` if given). */
  async requireSystem(
    actor: Actor,
    what: string,
    action: string | null = null,
    target: string | null = null,
  ): Promise<void> {
    if (!this.isSystem(actor)) await this.deny(actor, `${what} needs a system administrator`, action, target);
  }

  /**
   * Allows system administrators and users with the `admin` role on the namespace; otherwise throws `forbidden`
   * (auditing `action` if given).
   */
  async requireNamespaceAdmin(
    actor: Actor,
    namespace: string,
    what: string,
    action: string | null = null,
  ): Promise<void> {
    if (await this.administers(actor, namespace)) return;
    await this.deny(actor, `${what} ${namespace} needs its admin role`, action, namespace);
  }

  /**
   * Allows the system and principals that may perform `action` on `repository` (system administrators, namespace
   * roles, repository rules, and pulls from a public namespace); otherwise throws `forbidden`.
   */
  async requireRepositoryAction(
    actor: Actor,
    repository: string,
    action: Action,
    what: string,
  ): Promise<void> {
    if (this.isSystem(actor)) return;
    const actions = await this.deps.authorizer.repositoryActions(actor.principal as Principal, repository);
    if (!actions.has(action)) await this.deny(actor, `${what} ${repository} needs ${action} access`);
  }

  /** Throws `forbidden`, auditing the refused change (reads are not audited). */
  private async deny(
    actor: Actor,
    why: string,
    action: string | null = null,
    target: string | null = null,
  ): Promise<never> {
    if (action !== null) await this.record(actor, action, target, { denied: why }, false);
    throw forbidden(`requested access to the resource is denied: ${why}`);
  }

  /** Refuses to delete, demote or disable the last enabled administrator. */
  private async keepAnAdmin(user: { username: string; isAdmin: boolean; disabled: boolean }, what: string) {
    if (!user.isAdmin || user.disabled) return;
    if ((await this.deps.store.countAdmins()) <= 1) {
      throw conflict(
        `cannot ${what} ${user.username}: it is the last enabled administrator; make another user an administrator first`,
      );
    }
  }

  private async findRule(id: number, namespace: string | undefined) {
    const { store } = this.deps;
    if (namespace !== undefined) return (await store.listRules(namespace)).find((r) => r.id === id) ?? null;
    let after: string | undefined;
    for (;;) {
      const page = await store.listNamespaces({ limit: 500, after });
      for (const ns of page.items) {
        const rule = (await store.listRules(ns.name)).find((r) => r.id === id);
        if (rule) return rule;
      }
      const last = page.items[page.items.length - 1];
      if (!page.hasMore || !last) return null;
      after = last.name;
    }
  }

  private async user(username: string) {
    const user = await this.deps.store.getUser(username);
    if (!user) throw notFound(`user ${username} does not exist`);
    return user;
  }

  private async robot(name: string) {
    const key = robotKey(name);
    const robot = await this.deps.store.getRobot(key);
    if (!robot) throw notFound(`robot ${key} does not exist`);
    return robot;
  }

  private async team(name: string) {
    const team = await this.deps.store.getTeam(name);
    if (!team) throw notFound(`team ${name} does not exist`);
    return team;
  }

  private async namespace(name: string) {
    const ns = await this.deps.store.getNamespace(name);
    if (!ns) throw notFound(`namespace ${name} does not exist`);
    return ns;
  }

  /** This process forgets cached credentials and roles at once. */
  private changed(): void {
    this.deps.authenticator.invalidate();
    this.deps.authorizer.invalidate();
  }

  private async record(
    actor: Actor,
    action: string,
    target: string | null,
    detail: Record<string, unknown> | null,
    success = true,
  ): Promise<void> {
    await this.deps.audit.record({
      actor: actor.principal,
      action,
      target,
      sourceAddr: actor.sourceAddr ?? null,
      success,
      detail: actor.via ? { via: actor.via, ...detail } : detail,
    });
  }
}
