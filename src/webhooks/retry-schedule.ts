/**
 * When a failed webhook delivery is tried again: the Standard Webhooks schedule (immediately, then after 5 seconds,
 * 5 minutes, 30 minutes, 2 hours, 5 hours, 10 hours and 10 hours: 8 attempts over about 27.5 hours), or later when
 * the receiver asked for it with `Retry-After`.
 */

/** The delay of each attempt after the previous one failed; `[0]` is the first attempt's (immediately). */
export const RETRY_SCHEDULE_MS: readonly number[] = [
  0,
  5_000,
  5 * 60_000,
  30 * 60_000,
  2 * 3_600_000,
  5 * 3_600_000,
  10 * 3_600_000,
  10 * 3_600_000,
];

/** Attempts per delivery (the job runner's `maxAttempts` for the webhook delivery queue). */
export const WEBHOOK_MAX_ATTEMPTS = RETRY_SCHEDULE_MS.length;

/** The longest wait a `Retry-After` can impose. */
export const MAX_RETRY_AFTER_MS = 24 * 3_600_000;

/**
 * When to make the attempt after `failedAttempt` (1-based) failed at `now`: the schedule's time, or the
 * receiver's `retryAfter` when later (capped at `MAX_RETRY_AFTER_MS` from now).
 */
export function nextAttemptAt(failedAttempt: number, now: Date, retryAfter: Date | null = null): Date {
  const index = Math.min(Math.max(failedAttempt, 1), RETRY_SCHEDULE_MS.length - 1);
  const scheduled = now.getTime() + (RETRY_SCHEDULE_MS[index] as number);
  if (retryAfter === null) return new Date(scheduled);
  const asked = Math.min(retryAfter.getTime(), now.getTime() + MAX_RETRY_AFTER_MS);
  return new Date(Math.max(scheduled, asked));
}

/**
 * Parses a `Retry-After` header (delay seconds or an HTTP date) received at `now`; null when absent or invalid.
 */
export function parseRetryAfter(value: string | undefined, now: Date): Date | null {
  if (value === undefined) return null;
  const text = value.trim();
  if (/^\d{1,10}$/.test(text)) return new Date(now.getTime() + Number(text) * 1000);
  if (!/[a-z]/i.test(text)) return null;
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : new Date(at);
}
