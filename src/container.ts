/** The one place that builds drivers and stores from configuration. */
import path from 'node:path';
import { AdminError } from './admin/errors.ts';
import { checkPassword, checkUsername } from './admin/validation.ts';
import { bootstrapAdmin } from './auth/bootstrap.ts';
import { createAuthServices, type AuthLog, type AuthServices } from './auth/setup.ts';
import { ConfigError } from './config/load.ts';
import type { Config } from './config/schema.ts';
import { describeFailure, StartupError } from './config/startup-error.ts';
import { JobRunner } from './jobs/runner.ts';
import { silentLogger, type Logger } from './logger.ts';
import { createPostgresStore, createSqliteStore } from './metadata/dialects.ts';
import type { KyselyMetadataStore } from './metadata/kysely-store.ts';
import type { MetadataStore } from './metadata/store.ts';
import { Registry } from './registry/registry.ts';
import type { StorageDriver } from './storage/driver.ts';
import { FilesystemDriver } from './storage/drivers/filesystem.ts';

export interface Services {
  readonly storage: StorageDriver;
  readonly metadata: MetadataStore;
  readonly registry: Registry;
  readonly auth: AuthServices;
  /** The job runner over the metadata database: enqueue through it; `createApp` starts it (`jobs.enabled`). */
  readonly jobs: JobRunner;
  /** Stops the job runner, closes the metadata store and the storage driver. */
  close(): Promise<void>;
}

export interface ServiceOptions {
  /** Password of the first administrator; default `BERTH_ADMIN_PASSWORD`. */
  readonly adminPassword?: string | undefined;
  /** Where the storage driver logs (the AWS SDK's warnings, with S3); default `silentLogger`. */
  readonly logger?: Logger;
}

/** Builds storage, metadata (migrated), access control and the registry for `config`. */
export async function createServices(
  config: Config,
  log: AuthLog = silentLog,
  options: ServiceOptions = {},
): Promise<Services> {
  const storage = await createStorage(config, options.logger);
  const metadata = await openMetadata(config, log);
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
      checkFirstAdmin,
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
      minFreeSpace: config.storage.filesystem.minFree,
      blobRedirectSeconds:
        config.storage.driver === 's3' && config.storage.s3.redirect
          ? Math.max(1, Math.round(config.storage.s3.redirectExpiry / 1000))
          : null,
    },
  });
  const jobs = new JobRunner(metadata.jobStore(), {
    concurrency: config.jobs.concurrency,
    pollIntervalMs: config.jobs.pollInterval,
    leaseDurationMs: config.jobs.leaseDuration,
    retentionMs: config.jobs.retention,
    logger: options.logger ?? silentLogger,
  });
  return {
    storage,
    metadata,
    registry,
    auth,
    jobs,
    async close() {
      await jobs.stop();
      await metadata.close();
      await storage.close();
    },
  };
}

/** The first administrator follows the rules the CLI and the API enforce for every user. */
function checkFirstAdmin(username: string, password: string): void {
  try {
    checkUsername(username, 'auth.adminUsername');
    checkPassword(password, 'BERTH_ADMIN_PASSWORD');
  } catch (e) {
    if (!(e instanceof AdminError)) throw e;
    const source =
      e.field === 'auth.adminUsername' ? 'config key auth.adminUsername' : 'BERTH_ADMIN_PASSWORD';
    throw new ConfigError(`${source}: ${e.message}`);
  }
}

const silentLog: AuthLog = { warn: () => undefined, error: () => undefined };

/** The blob storage driver the configuration names. The S3 driver (and the AWS SDK) load only when used. */
async function createStorage(config: Config, logger: Logger = silentLogger): Promise<StorageDriver> {
  if (config.storage.driver === 's3') {
    const s3 = config.storage.s3;
    const { S3Driver } = await import('./storage/drivers/s3.ts');
    return new S3Driver({
      bucket: s3.bucket as string,
      prefix: s3.prefix,
      region: s3.region,
      ...(s3.endpoint !== null ? { endpoint: s3.endpoint } : {}),
      forcePathStyle: s3.forcePathStyle,
      ...(s3.accessKeyId !== null && s3.secretAccessKey !== null
        ? { credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } }
        : {}),
      partSize: s3.partSize,
      logger,
    });
  }
  return new FilesystemDriver({ root: config.storage.filesystem.root ?? path.join(config.data, 'blobs') });
}

/**
 * The metadata store, opened and answering (not yet migrated). A database that cannot be opened or reached is a
 * StartupError naming the key that points at it.
 */
async function openMetadata(config: Config, log: AuthLog): Promise<KyselyMetadataStore> {
  let store: KyselyMetadataStore | undefined;
  try {
    store = createMetadata(config, log);
    await store.ping();
    return store;
  } catch (e) {
    await store?.close().catch(() => undefined);
    const [key, what] =
      config.metadata.driver === 'postgres'
        ? ['metadata.postgres.url', 'cannot connect to PostgreSQL']
        : [
            config.metadata.sqlite.path === null ? 'data' : 'metadata.sqlite.path',
            `cannot open the SQLite database ${sqliteFile(config)}`,
          ];
    throw new StartupError(key, `${what}: ${describeFailure(e)}`, { cause: e });
  }
}

/** The metadata store the configuration names (not yet migrated). */
function createMetadata(config: Config, log: AuthLog): KyselyMetadataStore {
  const file = sqliteFile(config);
  if (file !== null) return createSqliteStore(file);
  const pg = config.metadata.postgres;
  return createPostgresStore(pg.url as string, {
    schema: pg.schema ?? undefined,
    maxConnections: pg.maxConnections,
    onIdleError: (err) => log.warn({ err }, 'PostgreSQL connection error'),
  });
}

/** The SQLite database file the configuration names, or null when metadata lives in PostgreSQL. */
export function sqliteFile(config: Config): string | null {
  if (config.metadata.driver !== 'sqlite') return null;
  return config.metadata.sqlite.path ?? path.join(config.data, 'berth.db');
}
