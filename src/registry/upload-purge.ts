/** The background job that purges stale upload sessions and orphaned upload bytes. */
import { randomUUID } from 'node:crypto';
import type { Logger } from '../logger.ts';
import type { MetadataStore } from '../metadata/store.ts';
import type { UploadService } from './uploads.ts';

/** This process's id as a lease holder. */
const INSTANCE_ID = randomUUID();

/** When the first round runs after start: soon, so that a crash's leftovers go right after the restart. */
export const FIRST_ROUND_DELAY_MS = 2_000;

/**
 * Runs `uploads.purgeStale()` shortly after start and then every `intervalMs`. Each round first takes the
 * `upload-purge` lease for the interval, and later rounds of instances that cannot take it are skipped, so one
 * instance of the fleet does the listing work per interval. The first round runs even without the lease: after a
 * crash the lease may still name the dead process for up to an interval, and purging on several instances at
 * once is safe (see UploadService.purgeStale). Returns a stop function.
 */
export function startUploadPurge(
  uploads: UploadService,
  metadata: MetadataStore,
  intervalMs: number,
  log: Logger,
  firstDelayMs = Math.min(intervalMs, FIRST_ROUND_DELAY_MS),
): () => void {
  let running = false;
  const run = async (first: boolean): Promise<void> => {
    if (running) return;
    running = true;
    try {
      const leased = await metadata.tryAcquireLease(
        'upload-purge',
        INSTANCE_ID,
        Math.max(intervalMs - 1000, 1000),
      );
      if (!leased && !first) return;
      const { sessions, orphans } = await uploads.purgeStale();
      if (sessions > 0 || orphans > 0) log.info({ sessions, orphans }, 'purged stale uploads');
    } catch (err) {
      log.warn({ err }, 'upload purge failed');
    } finally {
      running = false;
    }
  };
  const first = setTimeout(() => void run(true), firstDelayMs);
  const timer = setInterval(() => void run(false), intervalMs);
  first.unref();
  timer.unref();
  return () => {
    clearTimeout(first);
    clearInterval(timer);
  };
}
