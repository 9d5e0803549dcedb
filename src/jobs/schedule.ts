/**
 * Recurring jobs: a schedule names a cron expression or a fixed period, and each of its time slots is one job.
 * The runner enqueues the most recent slot with the dedupe key `schedule:<name>:<slot epoch ms>` on every poll;
 * the unique `(queue, dedupe_key)` index lets exactly one enqueue per slot succeed across every instance sharing
 * the database, and slots missed during downtime are not replayed (only the latest one is ever enqueued).
 */
import { Cron } from 'croner';

/** A five- or six-field cron expression (UTC), or a period in milliseconds (slots at multiples of it since the epoch). */
export type ScheduleSpec = string | { readonly everyMs: number };

/** A parsed schedule spec: the start of the latest slot at or before a time. */
export interface SlotClock {
  /** The start (epoch ms) of the latest slot at or before `now`, or null when there is none. */
  latestSlot(now: number): number | null;
}

/** Parses `spec`; throws a RangeError for an invalid cron expression or period. */
export function slotClock(spec: ScheduleSpec): SlotClock {
  if (typeof spec !== 'string') {
    const every = spec.everyMs;
    if (!Number.isSafeInteger(every) || every <= 0)
      throw new RangeError(`everyMs must be a positive whole number of milliseconds, got ${every}`);
    return { latestSlot: (now) => Math.floor(now / every) * every };
  }
  let cron: Cron;
  try {
    cron = new Cron(spec, { paused: true, timezone: 'UTC' });
  } catch (e) {
    throw new RangeError(`invalid cron expression ${JSON.stringify(spec)}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return {
    // previousRuns excludes its reference time: ask from just after `now` so a slot starting at `now` counts.
    latestSlot: (now) => cron.previousRuns(1, new Date(now + 1))[0]?.getTime() ?? null,
  };
}

/** The dedupe key of one slot of schedule `name`. */
export function slotKey(name: string, slot: number): string {
  return `schedule:${name}:${slot}`;
}
