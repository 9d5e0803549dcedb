/** Durations in configuration and admin API documents. */
import { z } from 'zod';

export const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration: a number of seconds, or a string such as `500ms`, `30s`, `15m`, `24h`, `7d`. Parsed to ms. */
export const duration = z
  .union([
    z.number().nonnegative(),
    z.string().regex(DURATION_RE, 'expected a duration such as 30s, 15m, 24h or 7d'),
  ])
  .transform((v) => {
    if (typeof v === 'number') return Math.round(v * 1000);
    const m = DURATION_RE.exec(v) as RegExpExecArray;
    return Math.round(Number(m[1]) * (UNIT_MS[m[2] as string] as number));
  });

/** `ms` as the shortest exact duration string (`300000` -> `5m`), which `duration` parses back to `ms`. */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
