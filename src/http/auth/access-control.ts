/**
 * Access control at the HTTP edge: who is calling (`authenticate`), whether they may do what a request needs
 * (`require`), and what a token request may be granted (`grant`). In mode `none` everything is allowed.
 *
 * Decisions follow Docker's token flow: a request without credentials that needs more than anonymous access
 * gets 401 with a `WWW-Authenticate` challenge naming the scope; a token lacking an action the caller's roles
 * would allow gets 401 `error="insufficient_scope"` (the client fetches a new token); a caller whose roles do
 * not allow it gets 403 DENIED with a message the client prints (and, for pushes, deletes and tag moves, an
 * audit record).
 *
 * Why tokens are checked against live rights: a token is signed for minutes, but an administrator who
 * disables a user, revokes a robot or removes a membership expects it to bite at once. Every request with a
 * token of a local user or robot checks that its subject is still active and intersects the token's grants
 * with the subject's current rights (both cached for `auth.cacheTtl`, so a change reaches every instance
 * within that bound). Tokens of an external issuer carry all Berth knows of their subject and are taken as
 * they are.
 */
import type { FastifyRequest } from 'fastify';
import type { AuditLog } from '../../auth/audit.ts';
import type { Authenticator } from '../../auth/authenticator.ts';
import type { Authorizer } from '../../auth/authorizer.ts';
import {
  ALL_ACTIONS,
  ANONYMOUS,
  type AccessEntry,
  type Action,
  type Principal,
} from '../../auth/principal.ts';
import { formatScopes } from '../../auth/scopes.ts';
import { InvalidTokenError, type TokenService } from '../../auth/token/token-service.ts';
import { RegistryError } from '../../oci/errors.ts';
import { isValidRepositoryName } from '../../oci/reference.ts';

export type AuthMode = 'none' | 'basic' | 'token';

export interface Caller {
  /** Who is calling, with their current admin flag. */
  readonly principal: Principal;
  readonly via: 'open' | 'anonymous' | 'token' | 'basic' | 'certificate';
  /** The token's grants, for bearer callers. */
  readonly tokenAccess: readonly AccessEntry[] | null;
}

/** What a request needs. */
export type Need =
  | { readonly kind: 'authenticated' }
  | { readonly kind: 'catalog' }
  | {
      readonly kind: 'repository';
      readonly name: string;
      readonly actions: readonly Action[];
      /** What the request acts on, for the audit record of a denial (`ns/repo:tag`); default the repository. */
      readonly target?: string;
      /**
       * A repository the request would like to pull from but does not need (the source of a cross-repository
       * mount): challenges ask for it too, and a token without it is sent back for a new one when the caller's
       * roles allow it.
       */
      readonly wantsPull?: string | undefined;
      /**
       * The name the client asked for, which its token's grants name, when the request is routed to another
       * repository (a pull-through cache's `?ns=` or mirror name); roles are checked on `name`.
       */
      readonly tokenName?: string;
    };

type RepositoryNeed = Extract<Need, { kind: 'repository' }>;

export interface AccessControlDeps {
  readonly mode: AuthMode;
  readonly authenticator: Authenticator;
  readonly authorizer: Authorizer;
  readonly tokens: TokenService | null;
  readonly audit: AuditLog;
  /** The token realm; null = `<request base>/auth/token`. */
  readonly realm: string | null;
  readonly service: string;
  /** The verified client certificate's common name for a request, if any. */
  readonly peerName?: (request: FastifyRequest) => string | null;
  /** The base URL (`scheme://host`) of a request, for the default realm. */
  readonly baseUrl: (request: FastifyRequest) => string;
  /**
   * The repository whose rights also decide a token's pull of `name` (a pull-through cache's mirror name stands
   * for its cached repository), or null.
   */
  aliasOf?: (name: string) => Promise<string | null>;
}

const OPEN_CALLER: Caller = { principal: ANONYMOUS, via: 'open', tokenAccess: null };
const TOKEN_ACTIONS: readonly Action[] = ['pull', 'push', 'delete'];

/** The caller of each authenticated request, for the access log. */
const callers = new WeakMap<FastifyRequest, Caller>();

/** The caller `authenticate` found for `request`, if it ran. */
export function callerOf(request: FastifyRequest): Caller | undefined {
  return callers.get(request);
}

export class AccessControl {
  constructor(readonly deps: AccessControlDeps) {}

  get enabled(): boolean {
    return this.deps.mode !== 'none';
  }

  /**
   * Identifies the caller from a bearer token, Basic credentials or a client certificate; anonymous without
   * any. Invalid credentials, and tokens whose subject is no longer active, get 401 with a challenge (429 when
   * too many logins failed).
   */
  async authenticate(request: FastifyRequest): Promise<Caller> {
    const caller = await this.identify(request);
    callers.set(request, caller);
    return caller;
  }

  /** Throws 401/403 unless `caller` may do what `need` says. */
  async require(request: FastifyRequest, caller: Caller, need: Need): Promise<void> {
    if (!this.enabled) return;
    if (need.kind === 'authenticated' || need.kind === 'catalog') {
      if (caller.via === 'anonymous')
        throw this.challenge(request, need.kind === 'catalog' ? [catalogScope] : []);
      if (need.kind === 'catalog' && caller.tokenAccess && !hasCatalog(caller.tokenAccess)) {
        throw this.challenge(request, [catalogScope], { error: 'insufficient_scope' });
      }
      return;
    }
    const scopes = needScopes(need);
    const external = caller.principal.kind === 'external';
    if (caller.tokenAccess) {
      const granted = tokenActions(caller.tokenAccess, need.tokenName ?? need.name);
      // No token carries `overwrite`: an external issuer's `push` grant also allows moving tags (the issuer's
      // policy decides); for local principals, overwriting is checked against live roles only.
      const fromToken = need.actions
        .filter((a) => a !== 'overwrite' || external)
        .map((a) => (a === 'overwrite' ? 'push' : a));
      const tokenAllows = fromToken.every((a) => granted.has(a));
      if (external) {
        if (tokenAllows) return;
        throw this.challenge(request, scopes, { error: 'insufficient_scope' });
      }
      const live = await this.liveActions(caller, need.name);
      const roleAllows = need.actions.every((a) => live.has(a));
      if (roleAllows && tokenAllows) return this.requireWanted(request, caller, need, scopes);
      // Berth has no roles for anonymous callers: what a new token could carry is for the token service to
      // decide, so a token that is not enough asks for another one (except for an overwrite, which no token
      // carries).
      if (roleAllows || caller.principal.kind === 'anonymous') {
        throw this.challenge(request, scopes, { error: 'insufficient_scope' });
      }
      throw await this.denied(request, caller, need);
    }
    const live = await this.liveActions(caller, need.name);
    if (need.actions.every((a) => live.has(a))) return;
    if (caller.via === 'anonymous') throw this.challenge(request, scopes);
    throw await this.denied(request, caller, need);
  }

  /** True when `caller` may perform `action` on `repository` (no error): by its token and its live rights. */
  async can(caller: Caller, repository: string, action: Action): Promise<boolean> {
    if (!this.enabled) return true;
    if (caller.tokenAccess && action !== 'overwrite') {
      if (!tokenActions(caller.tokenAccess, repository).has(action)) return false;
      if (caller.principal.kind === 'external') return true;
    }
    return (await this.liveActions(caller, repository)).has(action);
  }

  /**
   * True when `caller`'s principal may perform `action` on `repository` by its live rights, whatever the scope of
   * the token it presents (clients ask for `pull` scope to pull, also when their principal may push). An
   * external issuer's principal has no live rights: its token's grant decides. Always true without access control.
   */
  async principalCan(caller: Caller, repository: string, action: Action): Promise<boolean> {
    if (!this.enabled) return true;
    if (caller.principal.kind === 'external') {
      return caller.tokenAccess !== null && tokenActions(caller.tokenAccess, repository).has(action);
    }
    return (await this.liveActions(caller, repository)).has(action);
  }

  /** Which repositories `caller` may see in listings (catalog, search). */
  async pullFilter(caller: Caller): Promise<(repository: string) => boolean> {
    if (!this.enabled) return () => true;
    return this.deps.authorizer.pullFilter(caller.principal);
  }

  /**
   * The token grant for `principal` asking for `requested`: for each repository, the intersection of the asked
   * and allowed actions (`*` asks for all); the catalog to anyone. A partial grant is not an error.
   */
  async grant(principal: Principal, requested: readonly AccessEntry[]): Promise<AccessEntry[]> {
    const out: AccessEntry[] = [];
    for (const entry of requested) {
      if (entry.type === 'registry' && entry.name === 'catalog') {
        const actions = entry.actions.filter((a) => a === '*' || a === 'search');
        if (actions.length > 0) out.push({ type: 'registry', name: 'catalog', actions });
        continue;
      }
      if (entry.type !== 'repository' || !isValidRepositoryName(entry.name)) continue;
      const allowed = new Set(await this.deps.authorizer.repositoryActions(principal, entry.name));
      const alias = this.deps.aliasOf ? await this.deps.aliasOf(entry.name) : null;
      if (alias !== null && (await this.deps.authorizer.repositoryActions(principal, alias)).has('pull')) {
        allowed.add('pull');
      }
      const asked = entry.actions.includes('*') ? TOKEN_ACTIONS : entry.actions;
      const actions = TOKEN_ACTIONS.filter((a) => asked.includes(a) && allowed.has(a));
      if (actions.length > 0) out.push({ type: 'repository', name: entry.name, actions: [...actions] });
    }
    return out;
  }

  /** A 401 with the challenge for this registry's mode (and `scopes`, when the request needs some). */
  challenge(
    request: FastifyRequest,
    scopes: readonly AccessEntry[],
    options: { error?: 'invalid_token' | 'insufficient_scope'; message?: string } = {},
  ): RegistryError {
    let header: string;
    if (this.deps.mode === 'basic' || !this.deps.tokens) {
      header = `Basic realm="${this.deps.service}",charset="UTF-8"`;
    } else {
      const realm = this.deps.realm ?? `${this.deps.baseUrl(request)}/auth/token`;
      header = `Bearer realm="${realm}",service="${this.deps.service}"`;
      if (scopes.length > 0) header += `,scope="${formatScopes(scopes)}"`;
      if (options.error) header += `,error="${options.error}"`;
    }
    return new RegistryError('UNAUTHORIZED', options.message ?? 'authentication required', {
      headers: { 'WWW-Authenticate': header },
      ...(scopes.length > 0
        ? { detail: scopes.map((s) => ({ Type: s.type, Name: s.name, Action: s.actions.join(',') })) }
        : {}),
    });
  }

  private async identify(request: FastifyRequest): Promise<Caller> {
    if (!this.enabled) return OPEN_CALLER;
    const header = request.headers.authorization;
    if (header !== undefined) {
      const space = header.indexOf(' ');
      const scheme = header.slice(0, space === -1 ? undefined : space).toLowerCase();
      const value = space === -1 ? '' : header.slice(space + 1).trim();
      if (scheme === 'bearer' && this.deps.tokens) {
        let verified;
        try {
          verified = await this.deps.tokens.verify(value);
        } catch (e) {
          if (!(e instanceof InvalidTokenError)) throw e;
          throw this.challenge(request, [], { error: 'invalid_token', message: e.message });
        }
        const { principal: subject, access } = verified;
        if (subject.kind !== 'user' && subject.kind !== 'robot') {
          return { principal: subject, via: 'token', tokenAccess: access };
        }
        const principal = await this.deps.authenticator.activePrincipal(subject.kind, subject.name);
        if (!principal) {
          throw this.challenge(request, [], {
            error: 'invalid_token',
            message: 'the account of this token is disabled, revoked, expired or gone',
          });
        }
        return { principal, via: 'token', tokenAccess: access };
      }
      if (scheme === 'basic') {
        const decoded = Buffer.from(value, 'base64').toString('utf8');
        const colon = decoded.indexOf(':');
        if (colon <= 0) throw this.challenge(request, [], { message: 'malformed Basic credentials' });
        const principal = await this.deps.authenticator.login(
          decoded.slice(0, colon),
          decoded.slice(colon + 1),
          { sourceAddr: request.ip, via: 'basic' },
        );
        if (!principal) throw this.challenge(request, [], { message: 'invalid username or password' });
        return { principal, via: 'basic', tokenAccess: null };
      }
      throw this.challenge(request, [], {
        message: `unsupported authorization scheme ${scheme.slice(0, 20)}`,
      });
    }
    const cn = this.deps.peerName?.(request) ?? null;
    if (cn !== null) {
      const principal = await this.deps.authenticator.fromCertificate(cn);
      if (principal) return { principal, via: 'certificate', tokenAccess: null };
    }
    return { principal: ANONYMOUS, via: 'anonymous', tokenAccess: null };
  }

  /**
   * A token that has what the request needs but lacks pull on the repository it would like to read (a mount's
   * source) is sent back for a new one when the caller's roles allow that pull; otherwise the request goes on
   * without it (a mount falls back to an upload).
   */
  private async requireWanted(
    request: FastifyRequest,
    caller: Caller,
    need: RepositoryNeed,
    scopes: readonly AccessEntry[],
  ): Promise<void> {
    const from = need.wantsPull;
    if (from === undefined || !caller.tokenAccess) return;
    if (tokenActions(caller.tokenAccess, from).has('pull')) return;
    if ((await this.liveActions(caller, from)).has('pull')) {
      throw this.challenge(request, scopes, { error: 'insufficient_scope' });
    }
  }

  private async liveActions(caller: Caller, repository: string): Promise<Set<Action>> {
    if (caller.principal.kind === 'external') return new Set();
    return this.deps.authorizer.repositoryActions(caller.principal, repository);
  }

  /** The 403 for a caller whose roles do not allow `need`; pushes, deletes and tag moves are audited. */
  private async denied(
    request: FastifyRequest,
    caller: Caller,
    need: RepositoryNeed,
  ): Promise<RegistryError> {
    const action = need.actions.find((a) => a !== 'pull');
    if (action !== undefined) {
      await this.deps.audit.record({
        actor: caller.principal,
        action: action === 'overwrite' ? 'push' : action,
        target: need.target ?? need.name,
        sourceAddr: request.ip,
        success: false,
        detail: {
          reason: action === 'overwrite' ? 'tag overwrite denied' : `${action} denied`,
          via: caller.via,
        },
      });
    }
    const what = need.actions.includes('overwrite')
      ? `overwriting an existing tag in ${need.name} needs the maintainer role`
      : `${need.actions.join(', ')} access to ${need.name} is denied for ${caller.principal.name}`;
    return new RegistryError('DENIED', `requested access to the resource is denied: ${what}`, {
      detail: [{ Type: 'repository', Name: need.name, Action: need.actions.join(',') }],
    });
  }
}

const catalogScope: AccessEntry = { type: 'registry', name: 'catalog', actions: ['*'] };

function hasCatalog(access: readonly AccessEntry[]): boolean {
  return access.some((a) => a.type === 'registry' && a.name === 'catalog' && a.actions.length > 0);
}

function tokenActions(access: readonly AccessEntry[], repository: string): Set<Action> {
  const out = new Set<Action>();
  for (const a of access) {
    if (a.type !== 'repository' || a.name !== repository) continue;
    for (const action of a.actions) {
      if (action === '*') TOKEN_ACTIONS.forEach((x) => out.add(x));
      else if ((ALL_ACTIONS as readonly string[]).includes(action)) out.add(action as Action);
    }
  }
  return out;
}

/**
 * The scopes a challenge names for `need`: pull with push, as Docker clients ask, `push` for an overwrite, and
 * pull on the repository the request would like to read.
 */
function needScopes(need: RepositoryNeed): AccessEntry[] {
  const actions = new Set<string>();
  for (const a of need.actions) {
    if (a === 'push') actions.add('pull');
    actions.add(a === 'overwrite' ? 'push' : a);
  }
  // A challenge names what the client asked for: that is what it fetches a token for.
  const scopes: AccessEntry[] = [
    { type: 'repository', name: need.tokenName ?? need.name, actions: [...actions] },
  ];
  if (need.wantsPull !== undefined && need.wantsPull !== need.name) {
    scopes.push({ type: 'repository', name: need.wantsPull, actions: ['pull'] });
  }
  return scopes;
}
