/**
 * Ties the disk reserve (see `storage/disk-reserve.ts`) to the application: with the embedded SQLite database, a
 * reserve file beside it is created when the app is ready, released as soon as a request fails because the disk
 * is full (before the error is answered, so the cleanup that follows, a cancel or the purge, finds room in the
 * database), and re-created once space is back until the app closes.
 */
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../../config/schema.ts';
import { sqliteFile } from '../../container.ts';
import { isStorageFull } from '../../registry/storage-full.ts';
import { DiskReserve } from '../../storage/disk-reserve.ts';

/** The reserve file's name, in the directory of the SQLite database. */
export const DISK_RESERVE_FILE = 'berth.reserve';

export function registerDiskReserve(app: FastifyInstance, config: Config): void {
  const database = sqliteFile(config);
  if (database === null) return; // PostgreSQL's disk is not ours to manage
  const reserve = new DiskReserve({
    file: path.join(path.dirname(database), DISK_RESERVE_FILE),
    // Re-created only when new uploads would be accepted again, when the blobs share that filesystem.
    headroom: config.storage.driver === 'filesystem' ? config.storage.filesystem.minFree : 0,
    log: app.log,
  });
  app.addHook('onReady', async () => {
    await reserve.ensure();
  });
  app.addHook('onError', async (_request, _reply, error) => {
    if (isStorageFull(error)) await reserve.release();
  });
  app.addHook('onClose', async () => reserve.close());
}
