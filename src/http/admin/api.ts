/**
 * The admin API: JSON under `/api/v1` for users, robots, teams, namespaces, members, rules, signing keys, the
 * audit log, webhooks, the job queue, retention, upstreams, image signatures, the vulnerability database and scanning,
 * documented by `docs/api/openapi.yaml` (served as `/api/v1/openapi.json`). The use cases and who may perform
 * them live in `admin/admin-service.ts` (webhooks: `admin/webhook-service.ts`, jobs: `admin/job-admin.ts`, the
 * others in `admin/*-admin.ts`); this layer authenticates, parses and maps errors.
 *
 * Every endpoint but the document needs credentials: Basic (a user or robot) or a Bearer token from
 * `/auth/token` (any scope: the caller's live rights decide). Anonymous callers get 401 with the registry's
 * challenge. With `auth.mode: none` there is nobody to check, so the API refuses everything with 403.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { parse as parseYaml } from 'yaml';
import { AdminService } from '../../admin/admin-service.ts';
import { AdminError } from '../../admin/errors.ts';
import { WebhookService, type WebhookServiceDeps } from '../../admin/webhook-service.ts';
import { JobAdmin, type JobAdminPort } from '../../admin/job-admin.ts';
import type { AccessControl } from '../auth/access-control.ts';
import type { AuthServices } from '../../auth/setup.ts';
import type { Config } from '../../config/schema.ts';
import { RegistryError } from '../../oci/errors.ts';
import { sendError, toRegistryError } from '../plugins/error-envelope.ts';
import { registerAccountRoutes } from './accounts.ts';
import { registerJobRoutes } from './jobs.ts';
import { GcAdmin } from '../../admin/gc-admin.ts';
import type { GcService } from '../../gc/service.ts';
import { registerGcRoutes } from './gc.ts';
import { ReplicationAdmin } from '../../admin/replication-admin.ts';
import type { ReplicationService } from '../../replication/service.ts';
import { registerReplicationRoutes } from './replication.ts';
import { registerNamespaceRoutes } from './namespaces.ts';
import { setActor, toHttpError } from './request.ts';
import { RepositoryAdmin } from '../../admin/repository-admin.ts';
import type { Registry } from '../../registry/registry.ts';
import { registerRepositoryRoutes } from './repositories.ts';
import { RetentionAdmin } from '../../admin/retention-admin.ts';
import type { RetentionService } from '../../lifecycle/retention.ts';
import { registerRetentionRoutes } from './retention.ts';
import { registerSystemRoutes } from './system.ts';
import { UsageAdmin } from '../../admin/usage-admin.ts';
import type { UsageStore } from '../../metadata/usage.ts';
import { registerUsageRoutes } from './usage.ts';
import { registerWebhookRoutes } from './webhooks.ts';
import { ImmutableTagAdmin } from '../../admin/immutable-tag-admin.ts';
import type { ImmutableTags } from '../../lifecycle/immutable-tags.ts';
import { registerImmutableTagRoutes } from './immutable-tags.ts';

import { UpstreamAdmin, type UpstreamAdminDeps } from '../../admin/upstream-admin.ts';
import { SignatureAdmin } from '../../admin/signature-admin.ts';
import type { MetadataStore } from '../../metadata/store.ts';
import type { SignatureService } from '../../signing/service.ts';
import { registerSignatureRoutes } from './signatures.ts';
import { registerUpstreamRoutes } from './upstreams.ts';
import { VulnDbAdmin } from '../../admin/vulndb-admin.ts';
import type { PackageKey, VulnDbStore } from '../../metadata/vulndb-store.ts';
import { registerVulnDbRoutes } from './vulndb.ts';
import { registerScanningRoutes } from './scanning.ts';
import { ScanAdmin } from '../../admin/scan-admin.ts';
import type { ScanStore } from '../../metadata/scan-store.ts';
import type { SecretBox } from '../../remote/secret-box.ts';
import type { ScanService } from '../../scanning/service.ts';
import type { SbomSettings } from '../../scanning/sbom/documents.ts';

export const ADMIN_API_PREFIX = '/api/v1';

/** Where the OpenAPI document is, relative to this file (`src/http/admin/`). */
const OPENAPI_PATH = new URL('../../../docs/api/openapi.yaml', import.meta.url);

export interface AdminApiOptions {
  readonly config: Config;
  readonly access: AccessControl;
  readonly auth: AuthServices;
  /** The webhook store and delivery functions; without them the webhook routes answer 503. */
  readonly webhooks?: WebhookServiceDeps | undefined;
  /** The job queue (`Services.jobs`); without it, no `/jobs` routes. */
  readonly jobs?: JobAdminPort;
  /** The registry's use cases; without them, no `/repositories` routes. */
  readonly registry?: Registry;
  /** Garbage collection (`Services.gc`); without it, no `/gc` routes. */
  readonly gc?: GcService;
  /** Replication (`Services.replication`); without it, no `/replication` routes. */
  readonly replication?: ReplicationService;
  /** The immutable tag rules (`Services.immutableTags`); without them, the `/immutable-tags` routes answer 503. */
  readonly immutableTags?: ImmutableTags;
  /** Retention policies; without them, no `/namespaces/{ns}/retention` routes. */
  readonly retention?: RetentionService;
  /** Namespace usage and quotas; without it, no `/usage` and quota routes (nor the repository listing). */
  readonly usage?: UsageStore;
  /** The pull-through cache's upstreams; without them, no `/upstreams` routes. */
  readonly upstreams?: Omit<UpstreamAdminDeps, 'admin' | 'audit'>;
  /**
   * Signature trust and verdicts (`Services.signatures`, and the metadata store resolving references); without
   * them, no `/signatures` routes.
   */
  readonly signatures?: { readonly service: SignatureService; readonly metadata: MetadataStore };
  /** The vulnerability database and where uploaded archives are spooled; without it, no `/vulndb` routes. */
  readonly vulnDb?: {
    readonly store: VulnDbStore;
    readonly spoolDir: string;
    /** Told what an import changed (scanning rematches the affected reports). */
    readonly onImported?: (revision: number, changed: readonly PackageKey[]) => Promise<void>;
  };
  /**
   * Vulnerability scanning (`Services.scanning`, its store, the metadata store resolving references, the secret
   * box sealing scanner credentials, the SBOM settings); without them, no `/scan`, `/sbom`, `/scanning` and
   * `/scanners` routes.
   */
  readonly scanning?: {
    readonly service: ScanService;
    readonly store: ScanStore;
    readonly metadata: MetadataStore;
    readonly secrets: SecretBox | null;
    readonly sbom: SbomSettings;
  };
}

export function registerAdminApi(app: FastifyInstance, options: AdminApiOptions): void {
  const { access } = options;
  const admin = AdminService.from(options.auth, {
    personalNamespaces: options.config.auth.personalNamespaces,
  });
  let openapi: string | null | undefined;
  const openapiJson = (request: FastifyRequest): string | null => {
    if (openapi === undefined) {
      try {
        openapi = JSON.stringify(parseYaml(readFileSync(OPENAPI_PATH, 'utf8')));
      } catch (err) {
        request.log.warn({ err }, 'cannot load docs/api/openapi.yaml');
        openapi = null;
      }
    }
    return openapi;
  };

  app.register(
    async (api) => {
      api.setErrorHandler((error, request, reply) => {
        const e = error instanceof AdminError ? toHttpError(error) : toRegistryError(error, request);
        if (e.status >= 500) reply.header('connection', 'close');
        sendError(reply, e);
      });

      api.addHook('onRequest', async (request) => {
        if (request.routeOptions.url === `${ADMIN_API_PREFIX}/openapi.json`) return;
        if (!access.enabled) {
          throw new RegistryError(
            'DENIED',
            'the admin API needs access control: set auth.mode to basic or token (meanwhile the berth CLI manages the database directly)',
          );
        }
        // A disabled, revoked, expired or deleted account's token or credentials fail authentication.
        const caller = await access.authenticate(request);
        if (caller.principal.kind === 'anonymous') throw access.challenge(request, []);
        setActor(request, {
          principal: caller.principal,
          sourceAddr: request.ip,
          via: 'api',
          authVia: caller.via,
        });
      });

      api.get('/openapi.json', async (request, reply) => {
        const doc = openapiJson(request);
        if (doc === null)
          throw new RegistryError('UNSUPPORTED', 'the OpenAPI document is not installed', { status: 404 });
        return reply.code(200).type('application/json; charset=utf-8').send(doc);
      });
      registerAccountRoutes(api, admin);
      registerNamespaceRoutes(api, admin);
      registerSystemRoutes(api, admin);
      registerWebhookRoutes(
        api,
        options.webhooks ? new WebhookService(admin, options.auth.audit, options.webhooks) : null,
      );
      if (options.jobs) registerJobRoutes(api, new JobAdmin(options.jobs, options.auth.audit));
      if (options.registry)
        registerRepositoryRoutes(api, new RepositoryAdmin(admin, options.registry, options.usage));
      if (options.usage) registerUsageRoutes(api, new UsageAdmin(admin, options.usage, options.auth.audit));
      if (options.gc) registerGcRoutes(api, new GcAdmin(admin, options.gc, options.auth.audit));
      if (options.replication) {
        registerReplicationRoutes(
          api,
          new ReplicationAdmin(
            admin,
            options.replication,
            options.auth.audit,
            options.config.replication.concurrency,
          ),
        );
      }
      registerImmutableTagRoutes(
        api,
        options.immutableTags
          ? new ImmutableTagAdmin(admin, options.auth.audit, options.immutableTags)
          : null,
      );
      if (options.retention) {
        registerRetentionRoutes(api, new RetentionAdmin(admin, options.auth.audit, options.retention));
      }
      if (options.upstreams) {
        registerUpstreamRoutes(
          api,
          new UpstreamAdmin({ ...options.upstreams, admin, audit: options.auth.audit }),
        );
      }
      if (options.signatures) {
        registerSignatureRoutes(
          api,
          new SignatureAdmin(
            admin,
            options.auth.audit,
            options.signatures.service,
            options.signatures.metadata,
          ),
        );
      }
      if (options.vulnDb) {
        registerVulnDbRoutes(
          api,
          new VulnDbAdmin(admin, options.auth.audit, options.vulnDb.store, options.vulnDb.onImported),
          {
            spoolDir: options.vulnDb.spoolDir,
          },
        );
      }
      if (options.scanning) {
        const { service, store, metadata, secrets, sbom } = options.scanning;
        registerScanningRoutes(
          api,
          new ScanAdmin(admin, options.auth.audit, service, store, metadata, secrets, sbom),
        );
      }
    },
    { prefix: ADMIN_API_PREFIX },
  );
}
