/**
 * Failed-login rate limiting, per account and per source address: after `maxFailures` failures within
 * `window`, further attempts on that account or from that address are refused with 429 and `Retry-After` until
 * the oldest failure leaves the window. A success clears the account's failures (not the address's).
 *
 * Why in memory: the limit protects against guessing, and a per-instance bound is still a bound (N instances
 * allow N times the attempts). The state is tiny and expires by itself.
 */
import { RegistryError } from '../oci/errors.ts';

export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly maxFailures: number,
    private readonly window: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Throws TOOMANYREQUESTS (429, Retry-After) when the account or the address is over the limit. */
  check(account: string, address: string): void {
    const wait = Math.max(this.retryAfter(`a:${account}`), this.retryAfter(`i:${address}`));
    if (wait > 0) {
      throw new RegistryError('TOOMANYREQUESTS', 'too many failed logins; try again later', {
        headers: { 'Retry-After': String(Math.ceil(wait / 1000)) },
      });
    }
  }

  /** Records a failed attempt. */
  fail(account: string, address: string): void {
    for (const key of [`a:${account}`, `i:${address}`]) {
      const list = this.recent(key);
      list.push(this.now());
      this.failures.set(key, list);
    }
    if (this.failures.size > 100_000) this.sweep();
  }

  /** Records a success: the account's failures are forgiven. */
  succeed(account: string): void {
    this.failures.delete(`a:${account}`);
  }

  private retryAfter(key: string): number {
    const list = this.recent(key);
    if (list.length < this.maxFailures) return 0;
    return (list[list.length - this.maxFailures] as number) + this.window - this.now();
  }

  private recent(key: string): number[] {
    const cutoff = this.now() - this.window;
    const list = (this.failures.get(key) ?? []).filter((t) => t > cutoff);
    if (list.length === 0) this.failures.delete(key);
    else this.failures.set(key, list);
    return list;
  }

  private sweep(): void {
    for (const key of [...this.failures.keys()]) this.recent(key);
  }
}
