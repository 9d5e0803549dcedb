/**
 * Authentication of credentials: local users (scrypt), robot accounts (`robot$...`, random secrets), an htpasswd
 * file, and client certificates. Failed attempts are rate-limited and audited.
 *
 * Why a cache of verified credentials: clients that send Basic credentials on every request (and robots in
 * CI) would otherwise pay a memory-hard hash per request. A success is remembered for `cacheTtl` by a hash of
 * the credentials, so a password change or revocation takes effect within that bound.
 */
import { createHash } from 'node:crypto';
import type { AuthStore } from '../metadata/auth-store.ts';
import type { AuditLog } from './audit.ts';
import type { Htpasswd } from './htpasswd.ts';
import type { LoginLimiter } from './login-limiter.ts';
import { hashPassword, randomSecret, secretMatches, verifyPassword } from './passwords.ts';
import type { Principal } from './principal.ts';

/** Robot login names start with this. */
export const ROBOT_PREFIX = 'robot$';

export interface LoginContext {
  readonly sourceAddr: string;
  /** How the credentials arrived (for the audit log): `token`, `basic`, `api`. */
  readonly via: string;
  /** Audit successes too (token endpoint logins), not only failures. */
  readonly auditSuccess?: boolean;
}

export class Authenticator {
  private readonly verified = new Map<string, { at: number; principal: Principal }>();
  private dummyHash: Promise<string> | undefined;

  constructor(
    private readonly store: AuthStore,
    private readonly htpasswd: Htpasswd | null,
    private readonly limiter: LoginLimiter,
    private readonly audit: AuditLog,
    private readonly cacheTtl: number,
  ) {}

  /**
   * The principal for `username`/`password`, or null when they are wrong (the failure is recorded). Throws
   * TOOMANYREQUESTS when the account or address has failed too often.
   */
  async login(username: string, password: string, ctx: LoginContext): Promise<Principal | null> {
    const key = createHash('sha256').update(username).update('\0').update(password).digest('base64');
    const hit = this.verified.get(key);
    if (hit && Date.now() - hit.at <= this.cacheTtl) {
      if (ctx.auditSuccess) await this.auditLogin(hit.principal, ctx);
      return hit.principal;
    }
    this.limiter.check(username, ctx.sourceAddr);
    const principal = await this.verify(username, password);
    if (!principal) {
      this.limiter.fail(username, ctx.sourceAddr);
      await this.audit.record({
        actor: {
          kind: username.startsWith(ROBOT_PREFIX) ? 'robot' : 'user',
          name: username.slice(0, 256),
          isAdmin: false,
        },
        action: 'login',
        sourceAddr: ctx.sourceAddr,
        success: false,
        detail: { via: ctx.via },
      });
      return null;
    }
    this.limiter.succeed(username);
    if (this.verified.size > 10_000) this.verified.clear();
    this.verified.set(key, { at: Date.now(), principal });
    if (ctx.auditSuccess) await this.auditLogin(principal, ctx);
    return principal;
  }

  /**
   * The principal named by a verified client certificate's common name: an enabled user or a valid robot of that
   * name, else null.
   */
  async fromCertificate(commonName: string): Promise<Principal | null> {
    return this.activePrincipal(commonName.startsWith(ROBOT_PREFIX) ? 'robot' : 'user', commonName);
  }

  /** The principal for a token subject when it is still an enabled user or a valid robot (htpasswd users too). */
  async activePrincipal(kind: 'user' | 'robot', name: string): Promise<Principal | null> {
    if (kind === 'robot') {
      const robot = await this.store.getRobot(name);
      if (
        !robot ||
        robot.revokedAt !== null ||
        (robot.expiresAt !== null && robot.expiresAt.getTime() <= Date.now())
      ) {
        return null;
      }
      return { kind: 'robot', name, isAdmin: false };
    }
    const user = await this.store.getUser(name);
    if (user) return user.disabled ? null : { kind: 'user', name, isAdmin: user.isAdmin };
    if (this.htpasswd?.has(name)) return { kind: 'user', name, isAdmin: false };
    return null;
  }

  private auditLogin(principal: Principal, ctx: LoginContext): Promise<void> {
    return this.audit.record({
      actor: principal,
      action: 'login',
      sourceAddr: ctx.sourceAddr,
      detail: { via: ctx.via },
    });
  }

  /** Forgets cached successes (after a password change or revocation in this process). */
  invalidate(): void {
    this.verified.clear();
  }

  private async verify(username: string, password: string): Promise<Principal | null> {
    if (username.startsWith(ROBOT_PREFIX)) {
      const robot = await this.store.getRobot(username);
      if (!robot || robot.revokedAt !== null) return null;
      if (robot.expiresAt !== null && robot.expiresAt.getTime() <= Date.now()) return null;
      if (!secretMatches(password, robot.secretHash)) return null;
      await this.store.touchRobot(username, new Date());
      return { kind: 'robot', name: username, isAdmin: false };
    }
    const user = await this.store.getUser(username);
    if (user) {
      // A disabled or password-less user gets the dummy check below: a quick refusal would tell it exists.
      if (!user.disabled && user.passwordHash !== null) {
        return (await verifyPassword(password, user.passwordHash))
          ? { kind: 'user', name: username, isAdmin: user.isAdmin }
          : null;
      }
    } else if (this.htpasswd?.has(username)) {
      // One real check, as for a local user: adding the dummy one after it would make a wrong password of an
      // htpasswd user take twice as long as an unknown name, telling which names the file has.
      return (await this.htpasswd.verify(username, password))
        ? { kind: 'user', name: username, isAdmin: false }
        : null;
    }
    // Spend the time a real check takes, so the answer's timing does not tell which usernames exist.
    this.dummyHash ??= hashPassword(randomSecret());
    await verifyPassword(password, await this.dummyHash);
    return null;
  }
}
