/** The background job that purges stale upload sessions and orphaned upload bytes, run by the job runner. */
import type { JobRunner } from '../jobs/runner.ts';
import type { Logger } from '../logger.ts';
import type { UploadService } from './uploads.ts';

/** The job queue (and schedule name) of the purge. */
export const UPLOAD_PURGE_QUEUE = 'upload-purge';

/**
 * Registers the `upload-purge` queue on `runner`, whose handler runs `uploads.purgeStale()`, and schedules it
 * every `intervalMs` (slots at multiples of the interval, so one instance of the fleet runs each slot). Call it
 * before `runner.start()`.
 *
 * The first round runs soon after start: besides the schedule, each runner enqueues one run with the dedupe key
 * `startup:<instance id>`. The schedule alone would not do it: the current slot may already have fired on another
 * instance (or on this process before it crashed), and then nothing would run until the next slot, up to an
 * interval later, although a crash's leftovers are best purged right after the restart. Purging on several
 * instances at once is safe (see UploadService.purgeStale), so the extra run costs one listing per start.
 */
export async function scheduleUploadPurge(
  runner: JobRunner,
  uploads: UploadService,
  intervalMs: number,
  log: Logger,
): Promise<void> {
  runner.register(
    UPLOAD_PURGE_QUEUE,
    async () => {
      const { sessions, orphans } = await uploads.purgeStale();
      if (sessions > 0 || orphans > 0) log.info({ sessions, orphans }, 'purged stale uploads');
    },
    // A failed round is retried a little, then left to the next slot.
    { maxAttempts: 3, concurrency: 1 },
  );
  runner.schedule(UPLOAD_PURGE_QUEUE, { everyMs: intervalMs }, UPLOAD_PURGE_QUEUE);
  await runner.enqueue(UPLOAD_PURGE_QUEUE, null, { dedupeKey: `startup:${runner.instanceId}` });
}
