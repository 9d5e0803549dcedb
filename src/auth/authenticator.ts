/**
 * Authentication of credentials: local users (scrypt), robot accounts (`robot$...`, random secrets), an htpasswd
 * file, and client certificates. Failed attempts are rate-limited and audited with their reason (kept for the
 * administrator; the client only ever hears "invalid username or password").
 *
 * Why caches: clients that send Basic credentials on every request (and robots in CI) would otherwise pay a
 * memory-hard hash per request, and every request with a token checks that its subject is still active. A
 * verified credential and an account's status are remembered for `cacheTtl` (bounded LRU caches), so a password
 * change, a disabled user or a revoked robot takes effect within that bound on every instance.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { AuthStore } from '../metadata/auth-store.ts';
import type { AuditLog } from './audit.ts';
import type { Htpasswd } from './htpasswd.ts';
import type { LoginLimiter } from './login-limiter.ts';
import { hashPassword, randomSecret, secretMatches, verifyPassword } from './passwords.ts';
import type { Principal } from './principal.ts';

/** Robot login names start with this. */
export const ROBOT_PREFIX = 'robot$';

/** Most entries each cache holds. */
const CACHE_SIZE = 10_000;

export interface LoginContext {
  readonly sourceAddr: string;
  /** How the credentials arrived (for the audit log): `token`, `basic`, `api`. */
  readonly via: string;
  /**
   * Audit successes too (token endpoint logins), not only failures: at most once per principal and address per
   * `loginAuditInterval`.
   */
  readonly auditSuccess?: boolean;
}

/** Why a login failed, for the audit log only. */
export type LoginFailure =
  | 'unknown account'
  | 'wrong password'
  | 'user disabled'
  | 'no password set'
  | 'robot revoked'
  | 'robot expired';

export interface AuthenticatorOptions {
  /** How long (ms) a verified credential and an account's status are remembered. */
  readonly cacheTtl: number;
  /** A successful login of one principal from one address is audited at most once per this many ms (0: always). */
  readonly loginAuditInterval: number;
}

/** A cached account status: the principal, or null when it cannot act (gone, disabled, revoked, expired). */
interface Status {
  readonly principal: Principal | null;
}

export class Authenticator {
  private readonly verified: LRUCache<string, Principal>;
  private readonly statuses: LRUCache<string, Promise<Status>>;
  /** Successful logins recently audited, by principal and address (see LoginContext.auditSuccess). */
  private readonly auditedLogins: LRUCache<string, true> | null;
  private dummyHash: Promise<string> | undefined;

  constructor(
    private readonly store: AuthStore,
    private readonly htpasswd: Htpasswd | null,
    readonly limiter: LoginLimiter,
    private readonly audit: AuditLog,
    options: AuthenticatorOptions,
  ) {
    const ttl = Math.max(1, options.cacheTtl);
    this.verified = new LRUCache({ max: CACHE_SIZE, ttl });
    this.statuses = new LRUCache({ max: CACHE_SIZE, ttl });
    this.auditedLogins =
      options.loginAuditInterval > 0
        ? new LRUCache({ max: CACHE_SIZE, ttl: options.loginAuditInterval })
        : null;
  }

  /**
   * The principal for `username`/`password`, or null when they are wrong (the failure is recorded, with its
   * reason, in the audit log). Throws TOOMANYREQUESTS when this name from this address, or this address, has
   * failed too often.
   */
  async login(username: string, password: string, ctx: LoginContext): Promise<Principal | null> {
    const key = createHash('sha256').update(username).update('\0').update(password).digest('base64');
    const hit = this.verified.get(key);
    if (hit) {
      if (ctx.auditSuccess) await this.auditLogin(hit, ctx);
      return hit;
    }
    const recentFailures = await this.limiter.check(username, ctx.sourceAddr);
    const result = await this.verify(username, password);
    if (typeof result === 'string') {
      await this.limiter.fail(username, ctx.sourceAddr);
      await this.audit.record({
        actor: {
          kind: username.startsWith(ROBOT_PREFIX) ? 'robot' : 'user',
          name: username.slice(0, 256),
          isAdmin: false,
        },
        action: 'login',
        sourceAddr: ctx.sourceAddr,
        success: false,
        detail: { via: ctx.via, reason: result },
      });
      return null;
    }
    // Forgiving failures is a database write: only when there are some.
    if (recentFailures > 0) await this.limiter.succeed(username, ctx.sourceAddr);
    this.verified.set(key, result);
    if (ctx.auditSuccess) await this.auditLogin(result, ctx);
    return result;
  }

  /**
   * The principal named by a verified client certificate's common name: an enabled user or a valid robot of that
   * name, else null.
   */
  async fromCertificate(commonName: string): Promise<Principal | null> {
    return this.activePrincipal(commonName.startsWith(ROBOT_PREFIX) ? 'robot' : 'user', commonName);
  }

  /**
   * The principal (with its current admin flag) when `name` is still an enabled user (htpasswd users too) or a
   * valid robot, else null. Remembered for `cacheTtl`.
   */
  async activePrincipal(kind: 'user' | 'robot', name: string): Promise<Principal | null> {
    const key = `${kind}:${name}`;
    let status = this.statuses.get(key);
    if (!status) {
      status = this.loadStatus(kind, name);
      status.catch(() => this.statuses.delete(key));
      this.statuses.set(key, status);
    }
    return (await status).principal;
  }

  /** Forgets cached credentials and account statuses (after a change made by this process). */
  invalidate(): void {
    this.verified.clear();
    this.statuses.clear();
  }

  private async loadStatus(kind: 'user' | 'robot', name: string): Promise<Status> {
    if (kind === 'robot') {
      const robot = await this.store.getRobot(name);
      const valid =
        robot !== null &&
        robot.revokedAt === null &&
        (robot.expiresAt === null || robot.expiresAt.getTime() > Date.now());
      return { principal: valid ? { kind: 'robot', name, isAdmin: false } : null };
    }
    const user = await this.store.getUser(name);
    if (user) return { principal: user.disabled ? null : { kind: 'user', name, isAdmin: user.isAdmin } };
    if (this.htpasswd?.has(name)) return { principal: { kind: 'user', name, isAdmin: false } };
    return { principal: null };
  }

  private async auditLogin(principal: Principal, ctx: LoginContext): Promise<void> {
    if (this.auditedLogins) {
      const key = `${principal.kind}:${principal.name}\0${ctx.sourceAddr}`;
      if (this.auditedLogins.has(key)) return;
      this.auditedLogins.set(key, true);
    }
    await this.audit.record({
      actor: principal,
      action: 'login',
      sourceAddr: ctx.sourceAddr,
      detail: { via: ctx.via },
    });
  }

  /** The principal, or why the credentials do not authenticate. */
  private async verify(username: string, password: string): Promise<Principal | LoginFailure> {
    if (username.startsWith(ROBOT_PREFIX)) {
      const robot = await this.store.getRobot(username);
      // Robot secrets are random and high-entropy: a quick refusal tells nothing a guess could use.
      if (!robot) return 'unknown account';
      if (!secretMatches(password, robot.secretHash)) return 'wrong password';
      if (robot.revokedAt !== null) return 'robot revoked';
      if (robot.expiresAt !== null && robot.expiresAt.getTime() <= Date.now()) return 'robot expired';
      await this.store.touchRobot(username, new Date());
      return { kind: 'robot', name: username, isAdmin: false };
    }
    const user = await this.store.getUser(username);
    if (user) {
      // A disabled or password-less user gets the dummy check below: a quick refusal would tell it exists.
      if (!user.disabled && user.passwordHash !== null) {
        return (await verifyPassword(password, user.passwordHash))
          ? { kind: 'user', name: username, isAdmin: user.isAdmin }
          : 'wrong password';
      }
    } else if (this.htpasswd?.has(username)) {
      // One real check, as for a local user: adding the dummy one after it would make a wrong password of an
      // htpasswd user take twice as long as an unknown name, telling which names the file has.
      return (await this.htpasswd.verify(username, password))
        ? { kind: 'user', name: username, isAdmin: false }
        : 'wrong password';
    }
    // Spend the time a real check takes, so the answer's timing does not tell which usernames exist.
    this.dummyHash ??= hashPassword(randomSecret());
    await verifyPassword(password, await this.dummyHash);
    if (!user) return 'unknown account';
    return user.disabled ? 'user disabled' : 'no password set';
  }
}
