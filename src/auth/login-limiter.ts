/**
 * Failed-login limits. A login name tried from one address may fail `maxFailures` times within `window`; then
 * that pair is refused (429 with `Retry-After`) until its oldest counted failure leaves the window. Every
 * account from one address together may fail `maxFailuresPerAddress` times (a much higher ceiling, against
 * password spraying); then the address is refused. A success forgives the failures of its pair.
 *
 * Why per pair and not per account: a per-account limit lets anyone lock a user out by failing on purpose, and
 * a low per-address limit locks out everyone behind one address (an office NAT, a CI fleet) after a few typos
 * or made-up names. Guessing one account's password stays bounded per address, and the address ceiling bounds
 * guessing across accounts.
 *
 * Why in the metadata database: several instances share the counters, so N instances do not allow N times the
 * attempts. Rows older than the window are pruned now and then by whichever instance records a failure.
 */
import type { AuthStore, LoginFailureGroup } from '../metadata/auth-store.ts';
import { RegistryError } from '../oci/errors.ts';

export interface LoginLimits {
  /** Failures allowed per (login name, address) pair within `window`. */
  readonly maxFailures: number;
  /** Failures allowed per address, of every login name together, within `window`. */
  readonly maxFailuresPerAddress: number;
  /** The window, ms. */
  readonly window: number;
}

/** A pair or an address currently refused. */
export interface LoginLock {
  /** The login name; null when the whole address is refused. */
  readonly account: string | null;
  readonly address: string;
  /** Failures counted in the window. */
  readonly failures: number;
  /** When attempts are allowed again. */
  readonly until: Date;
}

/** How often (ms) one process prunes expired failures. */
const PRUNE_INTERVAL = 60_000;

export class LoginLimiter {
  private lastPrune = 0;

  constructor(
    private readonly store: AuthStore,
    private readonly limits: LoginLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Throws TOOMANYREQUESTS (429, Retry-After) when the pair or the address is over its limit; otherwise returns
   * how many recent failures the pair has (a success need forgive nothing when there are none).
   */
  async check(account: string, address: string): Promise<number> {
    const [pair, all] = await Promise.all([
      this.lockedUntil(account, address),
      this.lockedUntil(undefined, address),
    ]);
    const wait = Math.max(pair.until, all.until) - this.now();
    if (wait > 0) {
      throw new RegistryError('TOOMANYREQUESTS', 'too many failed logins; try again later', {
        headers: { 'Retry-After': String(Math.ceil(wait / 1000)) },
      });
    }
    return pair.failures;
  }

  /** Records a failed attempt. */
  async fail(account: string, address: string): Promise<void> {
    const now = this.now();
    await this.store.recordLoginFailure({ account, address, at: new Date(now) });
    if (now - this.lastPrune >= PRUNE_INTERVAL) {
      this.lastPrune = now;
      await this.store.clearLoginFailures({ before: new Date(now - this.limits.window) });
    }
  }

  /** Records a success: the pair's failures are forgiven (the address's others are not). */
  async succeed(account: string, address: string): Promise<void> {
    await this.store.clearLoginFailures({ account, address });
  }

  /** The pairs and addresses refused now, sorted by address then login name (the address itself first). */
  async locks(): Promise<LoginLock[]> {
    const now = this.now();
    const groups = await this.store.loginFailureGroups({
      since: new Date(now - this.limits.window),
      perPair: this.limits.maxFailures,
      perAddress: this.limits.maxFailuresPerAddress,
    });
    const out: LoginLock[] = [];
    for (const group of groups) {
      const { until } = await this.lockedUntil(group.account ?? undefined, group.address);
      if (until > now) out.push(toLock(group, until));
    }
    return out;
  }

  /**
   * Lifts locks by forgetting failures: of `account` (from every address, or only from `address`), or of every
   * account from `address`. Returns how many failures were forgotten.
   */
  unlock(filter: { account?: string | undefined; address?: string | undefined }): Promise<number> {
    if (filter.account === undefined && filter.address === undefined) {
      return Promise.reject(new RangeError('unlock needs an account or an address'));
    }
    return this.store.clearLoginFailures(filter);
  }

  /**
   * When the pair (or, without `account`, the address) may try again (epoch ms, or 0 when it may now), and how
   * many recent failures it has (at most its limit).
   */
  private async lockedUntil(
    account: string | undefined,
    address: string,
  ): Promise<{ until: number; failures: number }> {
    const limit = account === undefined ? this.limits.maxFailuresPerAddress : this.limits.maxFailures;
    const recent = await this.store.recentLoginFailures({
      account,
      address,
      since: new Date(this.now() - this.limits.window),
      limit,
    });
    // The limit-th most recent failure opens the lock; it lifts when that failure leaves the window.
    const opener = recent.length >= limit ? recent[limit - 1] : undefined;
    return {
      until: opener === undefined ? 0 : opener.getTime() + this.limits.window,
      failures: recent.length,
    };
  }
}

function toLock(group: LoginFailureGroup, until: number): LoginLock {
  return { account: group.account, address: group.address, failures: group.failures, until: new Date(until) };
}
