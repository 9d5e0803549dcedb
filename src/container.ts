/** The one place that builds drivers and stores from configuration. */
import path from 'node:path';
import type { Config } from './config/schema.ts';
import { createSqliteStore } from './metadata/dialects.ts';
import type { MetadataStore } from './metadata/store.ts';
import { Registry } from './registry/registry.ts';
import type { StorageDriver } from './storage/driver.ts';
import { FilesystemDriver } from './storage/drivers/filesystem.ts';

export interface Services {
  readonly storage: StorageDriver;
  readonly metadata: MetadataStore;
  readonly registry: Registry;
  /** Closes the metadata store and the storage driver. */
  close(): Promise<void>;
}

/** Builds storage, metadata (migrated) and the registry for `config`. */
export async function createServices(config: Config): Promise<Services> {
  const storage = new FilesystemDriver({
    root: config.storage.filesystem.root ?? path.join(config.data, 'blobs'),
  });
  const metadata = createSqliteStore(config.metadata.sqlite.path ?? path.join(config.data, 'berth.db'));
  try {
    await metadata.migrate();
  } catch (e) {
    await metadata.close();
    throw e;
  }
  const registry = new Registry({
    storage,
    metadata,
    options: {
      deletes: config.registry.deletes,
      maxManifestSize: config.registry.maxManifestSize,
      uploadPurgeAfter: config.uploads.purgeAfter,
    },
  });
  return {
    storage,
    metadata,
    registry,
    async close() {
      await metadata.close();
      await storage.close();
    },
  };
}
