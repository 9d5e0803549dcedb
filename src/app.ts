/**
 * Builds the HTTP application (without listening): tests call `inject()` on it, `berth serve` listens.
 */
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import path from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Config } from './config/schema.ts';
import type { Services } from './container.ts';
import { AccessControl, callerOf } from './http/auth/access-control.ts';
import { registerAdminApi } from './http/admin/api.ts';
import { registerTokenEndpoint } from './http/auth/token-endpoint.ts';
import { registerDistributionApi } from './http/distribution/dispatch.ts';
import { peerCertificateName } from './http/tls.ts';
import { registerDiskReserve } from './http/plugins/disk-reserve.ts';
import { clientErrorHandler, registerErrorEnvelope, sendError } from './http/plugins/error-envelope.ts';
import { registerRawBody } from './http/plugins/raw-body.ts';
import { limitConnections, serverOptions } from './http/server-options.ts';
import { proxyTrust } from './http/trusted-proxies.ts';
import { UrlBuilder } from './http/urls.ts';
import { registerHealth } from './http/health.ts';
import { bindRemoteAddress, createProcessLogger } from './http/process-logger.ts';
import { registerV1Search } from './http/v1-search.ts';
import { registerMetricsRoute } from './metrics/endpoint.ts';
import { registerHttpMetrics } from './metrics/http-hooks.ts';
import { RegistryError } from './oci/errors.ts';
import { scheduleUploadPurge } from './registry/upload-purge.ts';
import { scheduleRetention } from './lifecycle/retention-job.ts';

export interface AppOptions {
  /** Start the job runner (`services.jobs`) when `jobs.enabled` (off in unit tests). */
  readonly backgroundJobs?: boolean;
  /** The logger (see `http/process-logger.ts`); `false` for none (tests). Default: a new process logger. */
  readonly logger?: FastifyBaseLogger | false;
  /** Serve HTTPS with these options (see `http/tls.ts`). */
  readonly https?: HttpsServerOptions | null;
}

export function createApp(config: Config, services: Services, options: AppOptions = {}): FastifyInstance {
  const trust = proxyTrust(config.http.trustedProxies);
  const app = Fastify({
    ...serverOptions(config.http, options.https ?? null, trust),
    ...(options.logger === false
      ? { logger: false }
      : { loggerInstance: (options.logger ?? createProcessLogger(config)) as FastifyBaseLogger }),
    // One access-log line per request is written by our own hook (or none), not fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    clientErrorHandler,
    return503OnClosing: true,
    routerOptions: { maxParamLength: 16_384 },
    // Malformed percent-encoding in the path: answer with the envelope rather than a framework error page.
    frameworkErrors: (error, request, reply) => {
      const code = (error as { code?: string }).code;
      reply.header('Docker-Distribution-API-Version', 'registry/2.0');
      sendError(
        reply,
        new RegistryError(code === 'FST_ERR_BAD_URL' ? 'NAME_INVALID' : 'UNSUPPORTED', error.message, {
          status: 400,
        }),
      );
      void request;
    },
  });

  // First, so that a request's span covers every other hook and its context is active in the handler.
  if (services.tracing) services.tracing.instrumentHttp(app);
  limitConnections(app.server, config.http.maxConnections, app.log);
  registerRawBody(app, { bodyIdleTimeout: config.http.bodyIdleTimeout });
  registerErrorEnvelope(app);
  registerDiskReserve(app, config);

  // Background jobs yield to requests while the process is saturated (see jobs/request-pressure.ts).
  const { load } = services;
  app.addHook('onRequest', (_request, _reply, done) => {
    load.requestStarted();
    done();
  });
  app.addHook('onResponse', (_request, _reply, done) => {
    load.requestEnded();
    done();
  });
  app.addHook('onRequestAbort', (_request, done) => {
    load.requestEnded();
    done();
  });
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('Docker-Distribution-API-Version', 'registry/2.0');
    // Every line logged about the request, the access-log line included, names the client's address.
    bindRemoteAddress(request.log, request.ip);
    done();
  });
  if (config.log.accessLog) {
    app.addHook('onResponse', (request, reply, done) => {
      const principal = callerOf(request)?.principal;
      request.log.info(
        {
          method: request.method,
          path: (request.raw.url ?? '').split('?')[0],
          status: reply.statusCode,
          ms: Math.round(reply.elapsedTime * 10) / 10,
          ...(principal && principal.kind !== 'anonymous'
            ? { user: principal.name, userKind: principal.kind }
            : {}),
        },
        'request',
      );
      done();
    });
  }

  if (services.metrics) {
    registerHttpMetrics(app, services.metrics);
    // With `metrics.listen`, `berth serve` serves them on their own listener instead.
    if (config.metrics.listen === null) registerMetricsRoute(app, services.metrics, config.metrics.token);
  }

  const urls = new UrlBuilder({
    publicUrl: config.publicUrl,
    relativeUrls: config.http.relativeUrls,
    trustForwardedHeaders: config.http.trustForwardedHeaders,
    trustedProxy: trust,
  });
  const access = new AccessControl({
    mode: config.auth.mode,
    authenticator: services.auth.authenticator,
    authorizer: services.auth.authorizer,
    tokens: services.auth.tokens,
    audit: services.auth.audit,
    realm: config.auth.token.realm,
    service: config.auth.token.service,
    baseUrl: (request) => urls.absoluteBase(request),
    peerName: (request) => peerCertificateName(request.raw.socket),
    aliasOf: (name) => services.proxy.router.aliasOf(name),
  });
  registerDistributionApi(app, {
    access,
    proxy: services.proxy.router,
    registry: services.registry,
    urls,
    limits: { catalogPageSize: config.registry.catalogPageSize, tagsPageSize: config.registry.tagsPageSize },
  });
  registerV1Search(app, services.registry, access);
  registerHealth(app, [
    { name: 'storage', check: () => services.storage.ping() },
    { name: 'metadata', check: () => services.metadata.ping() },
    ...(services.storage.freeSpace
      ? [{ name: 'disk', check: () => services.registry.uploads.assertRoomForNewUpload() }]
      : []),
  ]);
  if (services.auth.tokens) registerTokenEndpoint(app, access, services.auth, services.auth.tokens);
  registerAdminApi(app, {
    config,
    access,
    auth: services.auth,
    jobs: services.jobs,
    webhooks: services.webhookAdmin,
    registry: services.registry,
    gc: services.gc,
    replication: services.replication,
    immutableTags: services.immutableTags,
    retention: services.retention,
    usage: services.usage,
    upstreams: {
      store: services.proxy.store,
      directory: services.proxy.directory,
      secrets: services.proxy.secrets,
      retention: services.retention,
      clientFor: (upstream) => services.proxy.clients.get(upstream),
    },
    signatures: { service: services.signatures, metadata: services.metadata },
    vulnDb: {
      store: services.vulnDb,
      spoolDir: path.join(config.data, 'vulndb-spool'),
      onImported: (revision, changed) => services.scanning.databaseChanged(revision, changed),
    },
    scanning: {
      service: services.scanning,
      store: services.scanStore,
      metadata: services.metadata,
      secrets: services.proxy.secrets,
      sbom: services.sbom,
    },
  });

  if (options.backgroundJobs !== false && config.jobs.enabled) {
    const { jobs } = services;
    app.addHook('onReady', async () => {
      if (config.uploads.purgeInterval > 0) {
        await scheduleUploadPurge(jobs, services.registry.uploads, config.uploads.purgeInterval, app.log);
      }
      services.gc.register(config.gc.schedule);
      if (config.replication.enabled) services.replication.register();
      services.signatures.register(jobs);
      services.scanning.register(jobs);
      if (config.retention.enabled) {
        scheduleRetention(jobs, services.retention, config.retention.schedule, app.log);
      }
      jobs.start();
      services.relay.start();
      await services.pullEvents.start();
      app.log.info({ instanceId: jobs.instanceId }, 'background jobs started');
    });
    app.addHook('onClose', async () => {
      await services.pullEvents.stop();
      await services.pullStats.stop();
      await services.relay.stop();
      await jobs.stop();
    });
  }
  return app;
}
