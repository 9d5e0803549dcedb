/** The scheduled job that runs every namespace's retention policy, run by the job runner. */
import type { JobRunner } from '../jobs/runner.ts';
import type { Logger } from '../logger.ts';
import type { RetentionService } from './retention.ts';

/** The job queue (and schedule name) of retention runs. */
export const RETENTION_QUEUE = 'retention';

/**
 * Registers the `retention` queue on `runner`, whose handler runs every namespace's policy
 * (`RetentionService.runAll`), and schedules it on `schedule` (a cron expression, UTC): each slot runs once across
 * the instances sharing the database. Call it before `runner.start()`. Throws a RangeError for an invalid
 * expression (the configuration's check refuses one earlier).
 */
export function scheduleRetention(
  runner: JobRunner,
  retention: RetentionService,
  schedule: string,
  log: Logger,
): void {
  runner.register(
    RETENTION_QUEUE,
    async () => {
      const runs = await retention.runAll();
      const tags = runs.reduce((n, r) => n + r.tagsUntagged, 0);
      const manifests = runs.reduce((n, r) => n + r.manifestsDeleted, 0);
      log.info({ namespaces: runs.length, tagsUntagged: tags, manifestsDeleted: manifests }, 'retention ran');
    },
    // A failed round is retried a little (a repeated run is harmless), then left to the next slot.
    { maxAttempts: 3, concurrency: 1 },
  );
  runner.schedule(RETENTION_QUEUE, schedule, RETENTION_QUEUE);
}
