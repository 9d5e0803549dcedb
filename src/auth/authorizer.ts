/**
 * Authorization: which actions a principal may perform on a repository, from namespace roles (direct, through
 * teams, personal namespaces), repository rules and public namespaces. Roles: `reader` pulls; `developer` also
 * pushes (new tags only); `maintainer` also deletes and overwrites tags; `admin` also manages the namespace.
 * System administrators may do everything.
 *
 * Why a cache: these lookups run on every request. A caller's roles are cached for `cacheTtl` (a bounded LRU
 * cache), so a permission change reaches every instance within that bound (documented in
 * docs/configuration.md).
 */
import { LRUCache } from 'lru-cache';
import {
  ROLES,
  type AuthStore,
  type MemberRecord,
  type RepositoryRuleRecord,
  type Role,
} from '../metadata/auth-store.ts';
import { globMatch } from './glob.ts';
import type { Action, Principal } from './principal.ts';

const ROLE_ACTIONS: Record<Role, readonly Action[]> = {
  reader: ['pull'],
  developer: ['pull', 'push'],
  maintainer: ['pull', 'push', 'delete', 'overwrite'],
  admin: ['pull', 'push', 'delete', 'overwrite'],
};

/** The stronger of two roles. */
export function maxRole(a: Role | null, b: Role | null): Role | null {
  if (a === null) return b;
  if (b === null) return a;
  return ROLES.indexOf(a) >= ROLES.indexOf(b) ? a : b;
}

/** The actions a role grants. */
export function roleActions(role: Role | null): readonly Action[] {
  return role === null ? [] : ROLE_ACTIONS[role];
}

/** Splits a repository name into its namespace (first component) and the rest. */
export function splitNamespace(repository: string): { namespace: string; rest: string } {
  const i = repository.indexOf('/');
  return i === -1
    ? { namespace: repository, rest: '' }
    : { namespace: repository.slice(0, i), rest: repository.slice(i + 1) };
}

interface Profile {
  readonly active: boolean;
  readonly roles: ReadonlyMap<string, Role>;
  readonly rules: readonly RepositoryRuleRecord[];
}

export interface AuthorizerOptions {
  /** Users are admins of the namespace named like them. */
  readonly personalNamespaces: boolean;
  /** How long (ms) a caller's roles and the public namespaces are cached. */
  readonly cacheTtl: number;
}

export class Authorizer {
  private readonly profiles: LRUCache<string, Promise<Profile>>;
  private publicCache: { at: number; names: Promise<ReadonlySet<string>> } | null = null;

  constructor(
    private readonly store: AuthStore,
    private readonly options: AuthorizerOptions,
  ) {
    this.profiles = new LRUCache({ max: 10_000, ttl: Math.max(1, options.cacheTtl) });
  }

  /** The namespace role of `principal` (null for none), not counting repository rules or public access. */
  async namespaceRole(principal: Principal, namespace: string): Promise<Role | null> {
    if (principal.isAdmin) return 'admin';
    if (principal.kind === 'anonymous' || principal.kind === 'external') return null;
    const profile = await this.profile(principal);
    if (!profile.active) return null;
    let role = profile.roles.get(namespace) ?? null;
    if (this.options.personalNamespaces && principal.kind === 'user' && namespace === principal.name)
      role = 'admin';
    return role;
  }

  /** Every action `principal` may perform on `repository`. */
  async repositoryActions(principal: Principal, repository: string): Promise<Set<Action>> {
    if (principal.isAdmin) return new Set<Action>(['pull', 'push', 'delete', 'overwrite']);
    const { namespace, rest } = splitNamespace(repository);
    let role = await this.namespaceRole(principal, namespace);
    if (principal.kind === 'user' || principal.kind === 'robot') {
      const profile = await this.profile(principal);
      if (profile.active) {
        for (const rule of profile.rules) {
          if (rule.namespace === namespace && globMatch(rule.pattern, rest)) role = maxRole(role, rule.role);
        }
      }
    }
    const actions = new Set<Action>(roleActions(role));
    if ((await this.publicNamespaces()).has(namespace)) actions.add('pull');
    return actions;
  }

  /** A predicate telling which repositories `principal` may pull (for catalog and search listings). */
  async pullFilter(principal: Principal): Promise<(repository: string) => boolean> {
    if (principal.isAdmin) return () => true;
    const publicNs = await this.publicNamespaces();
    let profile: Profile = { active: false, roles: new Map(), rules: [] };
    if (principal.kind === 'user' || principal.kind === 'robot') profile = await this.profile(principal);
    const personal = this.options.personalNamespaces && principal.kind === 'user' ? principal.name : null;
    return (repository) => {
      const { namespace, rest } = splitNamespace(repository);
      if (publicNs.has(namespace)) return true;
      if (!profile.active) return false;
      if (namespace === personal || profile.roles.has(namespace)) return true;
      return profile.rules.some((r) => r.namespace === namespace && globMatch(r.pattern, rest));
    };
  }

  /** Forgets cached roles (after a change made by this process; other instances converge within cacheTtl). */
  invalidate(): void {
    this.profiles.clear();
    this.publicCache = null;
  }

  private publicNamespaces(): Promise<ReadonlySet<string>> {
    const now = Date.now();
    if (!this.publicCache || now - this.publicCache.at > this.options.cacheTtl) {
      const names = this.store.publicNamespaces().then((n) => new Set(n));
      names.catch(() => {
        this.publicCache = null;
      });
      this.publicCache = { at: now, names };
    }
    return this.publicCache.names;
  }

  private profile(principal: Principal): Promise<Profile> {
    const key = `${principal.kind}:${principal.name}`;
    const cached = this.profiles.get(key);
    if (cached) return cached;
    const profile = this.loadProfile(principal);
    profile.catch(() => this.profiles.delete(key));
    this.profiles.set(key, profile);
    return profile;
  }

  private async loadProfile(principal: Principal): Promise<Profile> {
    const kind = principal.kind === 'robot' ? 'robot' : 'user';
    const [active, memberships, rules] = await Promise.all([
      this.isActive(principal),
      this.store.membershipsOf(kind, principal.name),
      this.store.rulesOf(kind, principal.name),
    ]);
    const roles = new Map<string, Role>();
    for (const m of memberships as MemberRecord[])
      roles.set(m.namespace, maxRole(roles.get(m.namespace) ?? null, m.role) as Role);
    return { active, roles, rules };
  }

  /** A disabled user, or a revoked or expired robot, has no rights even with a token issued before. */
  private async isActive(principal: Principal): Promise<boolean> {
    if (principal.kind === 'robot') {
      const robot = await this.store.getRobot(principal.name);
      return (
        robot !== null &&
        robot.revokedAt === null &&
        (robot.expiresAt === null || robot.expiresAt.getTime() > Date.now())
      );
    }
    const user = await this.store.getUser(principal.name);
    // htpasswd users have no record: they are active as long as the file authenticates them.
    return user === null ? true : !user.disabled;
  }
}
