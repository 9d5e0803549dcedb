/** The background job that purges stale upload sessions and orphaned upload bytes. */
import type { FastifyBaseLogger } from 'fastify';
import type { UploadService } from './uploads.ts';

/**
 * Runs `uploads.purgeStale()` shortly after start and then every `intervalMs`. Several instances may run it at
 * once: each stale session is claimed by exactly one of them (see `UploadService.purgeStale`). Returns a stop
 * function.
 */
export function startUploadPurge(
  uploads: UploadService,
  intervalMs: number,
  log: FastifyBaseLogger,
): () => void {
  let running = false;
  const run = async (): Promise<void> => {
    if (running) return;
    running = true;
    try {
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
