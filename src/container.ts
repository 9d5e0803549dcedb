/** The one place that builds drivers and stores from configuration. */
import path from 'node:path';
import { bootstrapAdmin } from './auth/bootstrap.ts';
import { createAuthServices, type AuthLog, type AuthServices } from './auth/setup.ts';
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
  readonly auth: AuthServices;
  /** Closes the metadata store and the storage driver. */
  close(): Promise<void>;
}

/** Builds storage, metadata (migrated) and the registry for `config`. */
export interface ServiceOptions {
  /** Password of the first administrator; default `BERTH_ADMIN_PASSWORD`. */
  readonly adminPassword?: string | undefined;
}

export async function createServices(
  config: Config,
  log: AuthLog = silentLog,
  options: ServiceOptions = {},
): Promise<Services> {
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
  let auth: AuthServices;
  try {
    auth = await createAuthServices(config, metadata.authStore(), log);
    const admin = await bootstrapAdmin(
      auth.store,
      config.auth.adminUsername,
      options.adminPassword ?? process.env.BERTH_ADMIN_PASSWORD,
    );
    if (admin === 'created' || admin === 'promoted') {
      log.warn({ username: config.auth.adminUsername }, `administrator ${admin} from BERTH_ADMIN_PASSWORD`);
    } else if (admin === 'none' && config.auth.mode !== 'none') {
      log.warn({}, 'no administrator exists: set BERTH_ADMIN_PASSWORD or run `berth users add --admin NAME`');
    }
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
    auth,
    async close() {
      await metadata.close();
      await storage.close();
    },
  };
}

const silentLog: AuthLog = { warn: () => undefined, error: () => undefined };
