/** The background job that purges stale upload sessions and orphaned upload bytes. */
import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { MetadataStore } from '../metadata/store.ts';
import type { UploadService } from './uploads.ts';

/** This process's id as a lease holder. */
const INSTANCE_ID = randomUUID();

/**
 * Runs `uploads.purgeStale()` shortly after start and then every `intervalMs`, on one instance of the fleet at a
 * time: each run first takes the `upload-purge` lease for the interval, and instances that cannot take it skip
 * the run. (Running on several at once would still be safe, since each stale session is claimed by exactly one
 * of them, but would repeat the listing work.) Returns a stop function.
 */
export function startUploadPurge(
  uploads: UploadService,
  metadata: MetadataStore,
  intervalMs: number,
  log: FastifyBaseLogger,
): () => void {
  let running = false;
  const run = async (): Promise<void> => {
    if (running) return;
    running = true;
    try {
      if (!(await metadata.tryAcquireLease('upload-purge', INSTANCE_ID, Math.max(intervalMs - 1000, 1000))))
        return;
      const { sessions, orphans } = await uploads.purgeStale();
      if (sessions > 0 || orphans > 0) log.info({ sessions, orphans }, 'purged stale uploads');
    } catch (err) {
      log.warn({ err }, 'upload purge failed');
    } finally {
      running = false;
    }
  };
  const first = setTimeout(() => void run(), Math.min(intervalMs, 10_000));
  const timer = setInterval(() => void run(), intervalMs);
  first.unref();
  timer.unref();
  return () => {
    clearTimeout(first);
    clearInterval(timer);
  };
}
