/** Builds the authentication and authorization services from configuration (used by `container.ts`). */
import type { Config } from '../config/schema.ts';
import { describeFailure, StartupError } from '../config/startup-error.ts';
import type { AuthStore } from '../metadata/auth-store.ts';
import { AuditLog } from './audit.ts';
import { Authenticator } from './authenticator.ts';
import { Authorizer } from './authorizer.ts';
import { Htpasswd } from './htpasswd.ts';
import { LoginLimiter } from './login-limiter.ts';
import { externalKeyResolver } from './token/external-trust.ts';
import { SigningKeys } from './token/signing-keys.ts';
import { TokenService } from './token/token-service.ts';

export interface AuthServices {
  readonly store: AuthStore;
  readonly audit: AuditLog;
  readonly authenticator: Authenticator;
  readonly authorizer: Authorizer;
  readonly keys: SigningKeys;
  /** The token service; null unless `auth.mode` is `token`. */
  readonly tokens: TokenService | null;
}

export interface AuthLog {
  warn(obj: unknown, msg?: string): void;
  error(obj: unknown, msg?: string): void;
}

export async function createAuthServices(
  config: Config,
  store: AuthStore,
  log: AuthLog,
): Promise<AuthServices> {
  const auth = config.auth;
  const audit = new AuditLog(store, (err) => log.error({ err }, 'cannot write the audit log'));
  let htpasswd: Htpasswd | null = null;
  if (auth.htpasswd.path) {
    try {
      htpasswd = new Htpasswd(auth.htpasswd.path, (m) => log.warn(m));
    } catch (e) {
      throw new StartupError('auth.htpasswd.path', describeFailure(e), { cause: e });
    }
  }
  const limiter = new LoginLimiter(store, {
    maxFailures: auth.maxFailedLogins,
    maxFailuresPerAddress: auth.maxFailedLoginsPerAddress,
    window: auth.failedLoginWindow,
  });
  const authenticator = new Authenticator(store, htpasswd, limiter, audit, {
    cacheTtl: auth.cacheTtl,
    loginAuditInterval: auth.loginAuditInterval,
  });
  const authorizer = new Authorizer(store, {
    personalNamespaces: auth.personalNamespaces,
    cacheTtl: auth.cacheTtl,
  });
  const keys = new SigningKeys(store, auth.token.expiration);
  let tokens: TokenService | null = null;
  if (auth.mode === 'token') {
    await keys.ensure();
    const external = await externalKeyResolver({
      jwksUrl: auth.token.trustJwksUrl,
      certBundle: auth.token.trustCertBundle,
    }).catch((e: unknown) => {
      throw new StartupError('auth.token.trustCertBundle', describeFailure(e), { cause: e });
    });
    tokens = new TokenService(keys, store, external, {
      issuer: auth.token.issuer,
      service: auth.token.service,
      expiration: auth.token.expiration,
      refreshExpiration: auth.token.refreshExpiration,
      trustIssuer: auth.token.trustIssuer,
    });
  }
  return { store, audit, authenticator, authorizer, keys, tokens };
}
