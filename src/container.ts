/** The one place that builds drivers and stores from configuration. */
import path from 'node:path';
import type { Readable } from 'node:stream';
import { AdminError } from './admin/errors.ts';
import { checkPassword, checkUsername } from './admin/validation.ts';
import { bootstrapAdmin } from './auth/bootstrap.ts';
import { createAuthServices, type AuthLog, type AuthServices } from './auth/setup.ts';
import { ConfigError } from './config/load.ts';
import type { Config } from './config/schema.ts';
import { describeFailure, StartupError } from './config/startup-error.ts';
import { PullEventRecorder } from './events/pull-events.ts';
import { PullStatsRecorder } from './lifecycle/pull-stats.ts';
import { RetentionService } from './lifecycle/retention.ts';
import { EventRelay } from './events/relay.ts';
import type { WebhookServiceDeps } from './admin/webhook-service.ts';
import { setUpWebhooks } from './webhooks/setup.ts';
import { Collector } from './gc/collector.ts';
import { GcService } from './gc/service.ts';
import { createReplication, secretBoxFor } from './replication/setup.ts';
import type { ReplicationService } from './replication/service.ts';
import { RequestPressure } from './jobs/request-pressure.ts';
import { JobRunner } from './jobs/runner.ts';
import { ImmutableTags } from './lifecycle/immutable-tags.ts';
import { silentLogger, type Logger } from './logger.ts';
import { connectionStatsOf, createPostgresStore, createSqliteStore } from './metadata/dialects.ts';
import type { KyselyMetadataStore } from './metadata/kysely-store.ts';
import type { MetadataStore } from './metadata/store.ts';
import type { WebhookStore } from './metadata/webhook-store.ts';
import type { UsageStore } from './metadata/usage.ts';
import { BerthMetrics } from './metrics/metrics.ts';
import { observeMethods } from './observability/instrument.ts';
import type { OperationObserver } from './observability/operation-observer.ts';
import { Registry } from './registry/registry.ts';
import type { UpstreamStore } from './metadata/upstream-store.ts';
import { CachingBlobService, CachingManifestService, CachingTagService } from './proxy/caching-services.ts';
import { applyEviction } from './proxy/eviction.ts';
import { ProxyRouter } from './proxy/proxy-router.ts';
import { PullThroughCache } from './proxy/pull-through-cache.ts';
import { UpstreamClients } from './proxy/upstream-clients.ts';
import { UpstreamDirectory } from './proxy/upstream-directory.ts';
import type { SecretBox } from './remote/secret-box.ts';
import { SignatureService } from './signing/service.ts';
import type { VulnDbStore } from './metadata/vulndb-store.ts';
import { signatureVerifiers } from './signing/verifiers.ts';
import type { StorageDriver } from './storage/driver.ts';
import { FilesystemDriver } from './storage/drivers/filesystem.ts';
import { createTracing } from './tracing/setup.ts';
import type { Tracing } from './tracing/tracing.ts';
import { SERVICE_SUBJECT_PREFIX } from './auth/token/token-service.ts';
import type { ScanStore } from './metadata/scan-store.ts';
import { HarborScanning } from './scanning/external.ts';
import { attachSboms, type SbomSettings } from './scanning/sbom/documents.ts';
import { ScanService } from './scanning/service.ts';
import { findVulnerabilities } from './scanning/vulndb/match.ts';
import { VERSION } from './version.ts';
import { reachableAddress } from './config/listen.ts';

export interface Services {
  readonly storage: StorageDriver;
  readonly metadata: MetadataStore;
  readonly registry: Registry;
  readonly auth: AuthServices;
  /** Webhook endpoints and their delivery log. */
  readonly webhooks: WebhookStore;
  /** Namespace usage and quotas, repository summaries. */
  readonly usage: UsageStore;
  /** What the admin API and `berth webhooks` need to manage endpoints. */
  readonly webhookAdmin: WebhookServiceDeps;
  /** Hands committed events to their subscribers (started by the app with its background work). */
  readonly relay: EventRelay;
  /** Records pull events while some subscriber wants them (started with the relay). */
  readonly pullEvents: PullEventRecorder;
  /** Immutable tag rules: `isImmutable(repository, tag)` for retention, `add`/`remove` for the admin use cases. */
  readonly immutableTags: ImmutableTags;
  /** Counts pulls per manifest and tag, written once a minute (stopped by the app, and by `close()`). */
  readonly pullStats: PullStatsRecorder;
  /** Namespaces' retention policies: runs on demand (admin API, CLI) and on `retention.schedule` (the app). */
  readonly retention: RetentionService;
  /** OpenTelemetry tracing, or null when `tracing.enabled` is off. */
  readonly tracing: Tracing | null;
  /** The Prometheus metrics (`metrics.enabled`), else null. */
  readonly metrics: BerthMetrics | null;
  /** The job runner over the metadata database: enqueue through it; `createApp` starts it (`jobs.enabled`). */
  readonly jobs: JobRunner;
  /** Requests in flight and how busy the process is: background jobs yield to requests (the app counts them). */
  readonly load: RequestPressure;
  /** Garbage collection: runs, schedule and history. */
  readonly gc: GcService;
  /** The pull-through cache: its upstreams, its routing of `/v2` names, and the cache. */
  readonly proxy: ProxyServices;
  /** Replication to and from other registries: policies, executions (`app.ts` registers its jobs). */
  readonly replication: ReplicationService;
  /** Signature trust per namespace, verdicts, and the pull check (`app.ts` registers its recomputation job). */
  readonly signatures: SignatureService;
  /** The offline vulnerability database (imported OSV advisories) the built-in scanner matches against. */
  readonly vulnDb: VulnDbStore;
  /** Vulnerability scans: reports, policies, the pull check (`app.ts` registers its jobs). */
  readonly scanning: ScanService;
  readonly scanStore: ScanStore;
  /** What SBOMs say about their maker. */
  readonly sbom: SbomSettings;
  /** Stops the job runner, closes the metadata store and the storage driver, then flushes and stops tracing. */
  close(): Promise<void>;
}

export interface ProxyServices {
  readonly directory: UpstreamDirectory;
  readonly router: ProxyRouter;
  readonly cache: PullThroughCache;
  readonly store: UpstreamStore;
  /** The client of each upstream. */
  readonly clients: UpstreamClients;
  /** Seals and opens stored credentials of upstream and replication registries. */
  readonly secrets: SecretBox;
}

export interface ServiceOptions {
  /** Password of the first administrator; default `BERTH_ADMIN_PASSWORD`. */
  readonly adminPassword?: string | undefined;
  /** Where the storage driver logs (the AWS SDK's warnings, with S3); default `silentLogger`. */
  readonly logger?: Logger;
  /** More observers of storage and database operations (tracing), besides the metrics'. */
  readonly observers?: readonly OperationObserver[];
}

/** Builds tracing, storage, metadata (migrated), access control and the registry for `config`. */
export async function createServices(
  config: Config,
  log: AuthLog = silentLog,
  options: ServiceOptions = {},
): Promise<Services> {
  const tracing = await createTracing(config.tracing, log);
  try {
    return await buildServices(config, log, options, tracing);
  } catch (e) {
    await tracing?.shutdown();
    throw e;
  }
}

async function buildServices(
  config: Config,
  log: AuthLog,
  options: ServiceOptions,
  tracing: Tracing | null,
): Promise<Services> {
  const metrics = config.metrics.enabled ? new BerthMetrics() : null;
  const observers = [
    ...(metrics ? [metrics.operationObserver] : []),
    ...(tracing ? [tracing.operationObserver] : []),
    ...(options.observers ?? []),
  ];
  // Every storage and database call made through these views reports to the observers (metrics, tracing).
  const storage = observeMethods(
    await createStorage(config, options.logger),
    'storage',
    config.storage.driver,
    observers,
  );
  const store = await openMetadata(config, log);
  store.configureReview({
    blobGracePeriodMs: config.gc.blobGracePeriod,
    manifestGracePeriodMs: config.gc.manifestGracePeriod,
  });
  metrics?.setConnections(connectionStatsOf(store));
  const metadata = observeMethods(store, 'database', config.metadata.driver, observers);
  try {
    await metadata.migrate();
  } catch (e) {
    await metadata.close();
    throw e;
  }
  let auth: AuthServices;
  try {
    auth = await createAuthServices(
      config,
      observeMethods(metadata.authStore(), 'database', config.metadata.driver, observers),
      log,
    );
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
  const logger = options.logger ?? silentLogger;
  const load = new RequestPressure();
  const jobs = new JobRunner(
    observeMethods(metadata.jobStore(), 'database', config.metadata.driver, observers),
    {
      gate: load,
      concurrency: config.jobs.concurrency,
      pollIntervalMs: config.jobs.pollInterval,
      leaseDurationMs: config.jobs.leaseDuration,
      retentionMs: config.jobs.retention,
      logger,
    },
  );
  metrics?.setJobQueueDepth(() => jobs.counts());
  const webhookStore = observeMethods(metadata.webhookStore(), 'database', config.metadata.driver, observers);
  const webhooks = setUpWebhooks(config, {
    store: webhookStore,
    jobs,
    logger,
    ...(metrics ? { onOutcome: (outcome: string) => metrics.webhookDelivery(outcome) } : {}),
  });
  const pullEvents = new PullEventRecorder(metadata, { wanted: () => webhookStore.wantsPulls(), logger });
  // Built below, once the registry is: the relay only calls it once started.
  const late: { replication?: ReplicationService; scanning?: ScanService } = {};
  const scanningSubscriber = {
    name: 'scanning',
    handle: async (events: Parameters<ScanService['subscriber']['handle']>[0]) => {
      if (config.jobs.enabled) await late.scanning?.subscriber.handle(events);
    },
  };
  const replicationSubscriber = {
    name: 'replication',
    handle: async (events: Parameters<ReplicationService['handleEvents']>[0]) => {
      if (config.replication.enabled && config.jobs.enabled) await late.replication?.handleEvents(events);
    },
  };
  const relay = new EventRelay(metadata, [webhooks.subscriber, replicationSubscriber, scanningSubscriber], {
    gate: load,
    pollIntervalMs: config.jobs.pollInterval,
    retentionMs: config.jobs.retention,
    logger,
  });
  const immutableTags = new ImmutableTags(
    observeMethods(metadata.immutableTagStore(), 'database', config.metadata.driver, observers),
    metadata,
    { cacheTtl: config.auth.cacheTtl },
  );
  const lifecycle = observeMethods(metadata.lifecycleStore(), 'database', config.metadata.driver, observers);
  const pullStats = new PullStatsRecorder(lifecycle, { logger });
  // Retention never untags an immutable tag.
  const retention = new RetentionService(metadata, lifecycle, {
    logger,
    protect: (repository, tag) => immutableTags.isImmutable(repository, tag),
  });
  const upstreamStore = observeMethods(
    metadata.upstreamStore(),
    'database',
    config.metadata.driver,
    observers,
  );
  const secrets = secretBoxFor(config);
  const directory = new UpstreamDirectory(config.proxy.upstreams, upstreamStore, secrets, { logger });
  const clients = new UpstreamClients(logger);
  const cache = new PullThroughCache(
    { directory, store: upstreamStore, metadata, clientFor: (upstream) => clients.get(upstream) },
    {
      spoolDir: path.join(config.data, 'proxy-spool'),
      instanceId: jobs.instanceId,
      logger,
      ...(metrics
        ? {
            observer: {
              lookup: (upstream, kind, result) => metrics.proxyLookup(upstream, kind, result),
              bytes: (upstream, bytes) => metrics.proxyBytes(upstream, bytes),
            },
          }
        : {}),
    },
  );
  const signatures = new SignatureService({
    store: observeMethods(metadata.signatureStore(), 'database', config.metadata.driver, observers),
    metadata,
    storage,
    verifiers: signatureVerifiers,
    jobs,
    logger,
  });
  const vulnDb = observeMethods(metadata.vulnDbStore(), 'database', config.metadata.driver, observers);
  const scanStore = observeMethods(metadata.scanStore(), 'database', config.metadata.driver, observers);
  const sbomSettings: SbomSettings = {
    toolVersion: VERSION,
    namespaceBase: `${(config.publicUrl ?? 'https://berth.invalid').replace(/\/+$/, '')}/sbom/spdx`,
  };
  const scanning: ScanService = new ScanService({
    store: scanStore,
    metadata,
    storage,
    matcher: {
      revision: () => vulnDb.revision(),
      match: (os, packages) => findVulnerabilities(vulnDb, os, packages),
    },
    external: new HarborScanning({
      secrets,
      registryUrl: () => config.publicUrl ?? `http://${reachableAddress(config.listen)}`,
      pullToken: async (scanner, repository) => {
        if (config.auth.mode === 'none' || auth.tokens === null) return null;
        const issued = await auth.tokens.issue(
          { kind: 'external', name: `${SERVICE_SUBJECT_PREFIX}scanner/${scanner}`, isAdmin: false },
          [{ type: 'repository', name: repository, actions: ['pull'] }],
        );
        return issued.token;
      },
    }),
    openLayer: async (repository, digest, size): Promise<Readable> =>
      (await registry.blobs.open(repository, digest, size)).body,
    afterScan: async (manifest, report) => {
      await attachSboms(registry, manifest, report, manifest.createdAt, sbomSettings);
    },
    jobs,
    logger,
    version: VERSION,
    ...(metrics
      ? {
          onScanned: (scanner: string, outcome: string, seconds: number) =>
            metrics.scan(scanner, outcome, seconds),
        }
      : {}),
  });
  const registry = new Registry(
    {
      storage,
      metadata,
      pullEvents,
      immutableTags,
      pullStats,
      signatures,
      pullPolicies: [signatures, scanning],
      options: {
        deletes: config.registry.deletes,
        maxManifestSize: config.registry.maxManifestSize,
        sparseManifests: config.registry.sparseManifests,
        uploadPurgeAfter: config.uploads.purgeAfter,
        quotaWarningThreshold: config.quotas.warningThreshold,
        minFreeSpace: config.storage.filesystem.minFree,
        blobRedirectSeconds:
          config.storage.driver === 's3' && config.storage.s3.redirect
            ? Math.max(1, Math.round(config.storage.s3.redirectExpiry / 1000))
            : null,
      },
    },
    {
      manifests: (deps) => new CachingManifestService(deps, cache),
      blobs: (deps) => new CachingBlobService(deps, cache),
      tags: (deps) => new CachingTagService(deps, cache),
    },
  );
  cache.attach(registry);
  await cache.prepare();
  // A configured upstream's eviction is its namespace's retention policy.
  for (const upstream of directory.configured) {
    await applyEviction(retention, upstream.namespace, upstream.settings.evictAfterDays, null);
  }
  const proxy: ProxyServices = {
    directory,
    router: new ProxyRouter(directory, metadata),
    cache,
    store: upstreamStore,
    clients,
    secrets,
  };
  const gcStore = observeMethods(metadata.gcStore(), 'database', config.metadata.driver, observers);
  const collector = new Collector(metadata, gcStore, storage, {
    blobGracePeriodMs: config.gc.blobGracePeriod,
    orphanedReferrers: config.gc.orphanedReferrers,
    sweepStorage: config.gc.sweepStorage,
    auditRetentionMs: config.audit.retention,
    historyRetentionMs: config.gc.historyRetention,
    // A collector that died holds its lease as long as a dead instance holds its jobs.
    leaseMs: config.jobs.leaseDuration,
  });
  const gc = new GcService(gcStore, collector, jobs, logger);
  const replication = createReplication(config, {
    store: observeMethods(metadata.replicationStore(), 'database', config.metadata.driver, observers),
    registry,
    jobs,
    logger,
    secrets,
  });
  late.replication = replication;
  late.scanning = scanning;
  return {
    replication,
    signatures,
    vulnDb,
    scanning,
    scanStore,
    sbom: sbomSettings,
    storage,
    metadata,
    registry,
    gc,
    proxy,
    auth,
    relay,
    pullEvents,
    immutableTags,
    pullStats,
    retention,
    webhooks: webhookStore,
    usage: observeMethods(metadata.usageStore(), 'database', config.metadata.driver, observers),
    webhookAdmin: webhooks.admin,
    tracing,
    metrics,
    jobs,
    load,
    async close() {
      try {
        await jobs.stop();
        await pullStats.stop();
        await metadata.close();
        await storage.close();
      } finally {
        await tracing?.shutdown();
      }
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
