/** How long a failed job waits before its next attempt. */

export interface BackoffOptions {
  /** The delay scale of the first retry. Default 1 s. */
  readonly baseMs?: number;
  /** The largest delay. Default 1 h. */
  readonly maxMs?: number;
}

export const DEFAULT_BACKOFF_BASE_MS = 1_000;
export const DEFAULT_BACKOFF_MAX_MS = 60 * 60 * 1_000;

/**
 * The delay after failed attempt number `attempt` (1 = the first attempt failed): exponential,
 * `base * 2^(attempt-1)` capped at `max`, with "equal jitter" (a uniform pick in the upper half of that bound), so
 * the delay is within [bound/2, bound]. The jitter spreads the retries of jobs that failed together (an endpoint
 * down for everyone); keeping half of the bound keeps a floor under the wait.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const base = options.baseMs ?? DEFAULT_BACKOFF_BASE_MS;
  const max = options.maxMs ?? DEFAULT_BACKOFF_MAX_MS;
  const exponent = Math.min(Math.max(attempt, 1) - 1, 52);
  const bound = Math.min(max, base * 2 ** exponent);
  return Math.round(bound / 2 + random() * (bound / 2));
}
