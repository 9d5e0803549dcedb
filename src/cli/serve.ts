/**
 * `berth serve`: load config, build services, listen (HTTPS when `tls.certificate` is set, with the
 * certificate files watched and reloaded), shut down gracefully on SIGTERM/SIGINT.
 */
import { X509Certificate } from 'node:crypto';
import type { Server as TlsServer } from 'node:tls';
import { createApp } from '../app.ts';
import { parseListen } from '../config/listen.ts';
import { loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { describeFailure, StartupError } from '../config/startup-error.ts';
import { createServices } from '../container.ts';
import { createProcessLogger } from '../http/process-logger.ts';
import { describeCertificate, loadTlsOptions, watchTls } from '../http/tls.ts';
import { startMetricsListener, type MetricsListener } from '../metrics/endpoint.ts';
import { VERSION } from '../version.ts';

export interface ServeFlags {
  readonly config?: string;
  readonly listen?: string;
  readonly data?: string;
}

/** True for a host only this machine can reach: `localhost`, `127.0.0.0/8`, `::1`. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^(::ffff:)?127\.\d+\.\d+\.\d+$/i.test(host);
}

export { parseListen };

export async function serve(flags: ServeFlags): Promise<void> {
  const config = loadConfig({
    file: flags.config ?? process.env.BERTH_CONFIG,
    overrides: { listen: flags.listen, data: flags.data },
  });
  // Before anything is opened: a bad certificate or key stops the process with a ConfigError (exit 2).
  const https = loadTlsOptions(config.tls);
  const logger = createProcessLogger(config);
  const services = await createServices(config, logger, { logger });
  try {
    await services.storage.checkWritable();
  } catch (e) {
    await services.close();
    throw new StartupError(storageKey(config), describeFailure(e), { cause: e });
  }
  const app = createApp(config, services, { https, logger });
  let stopTlsWatch: (() => void) | undefined;
  let metricsListener: MetricsListener | undefined;
  let closing = false;
  const shutdown = (signal: string): void => {
    if (closing) return;
    closing = true;
    stopTlsWatch?.();
    app.log.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      app.log.warn('shutdown timeout reached; exiting with requests in flight');
      process.exit(1);
    }, config.http.shutdownTimeout);
    force.unref();
    Promise.all([app.close(), metricsListener?.close()])
      .then(() => services.close())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          app.log.error({ err }, 'error during shutdown');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  const { host, port } = parseListen(config.listen);
  try {
    await app.listen({ host, port });
  } catch (e) {
    await services.close();
    throw listenFailure(e, config.listen);
  }
  if (services.metrics && config.metrics.listen !== null && !closing) {
    const at = parseListen(config.metrics.listen);
    try {
      metricsListener = await startMetricsListener(at.host, at.port, services.metrics, config.metrics.token);
    } catch (e) {
      await app.close();
      await services.close();
      throw new StartupError('metrics.listen', describeFailure(e), { cause: e });
    }
    app.log.info({ listen: metricsListener.address }, 'serving metrics');
  }
  if (https && !closing) {
    const leaf = new X509Certificate(String(https.cert));
    app.log.info(
      { certificate: describeCertificate(leaf), clientAuth: config.tls.clientAuth },
      'serving HTTPS',
    );
    if (Date.parse(leaf.validTo) < Date.now()) {
      app.log.warn({ validTo: leaf.validTo }, 'TLS certificate has expired');
    }
    stopTlsWatch = watchTls(app.server as unknown as TlsServer, config.tls, app.log);
  }
  app.log.info(
    {
      version: VERSION,
      listen: config.listen,
      tls: https !== null,
      auth: config.auth.mode,
      data: config.data,
      storage: config.storage.driver,
      metadata: config.metadata.driver,
    },
    'berth ready',
  );
  if (config.auth.mode === 'none' && !isLoopback(host)) {
    app.log.warn(
      { listen: config.listen },
      'the registry is open (auth.mode: none) on a non-loopback address: anyone who can reach it may push, pull and delete',
    );
  }
}

/** The key that names the blob storage. */
function storageKey(config: Config): string {
  if (config.storage.driver === 's3') return 'storage.s3.bucket';
  return config.storage.filesystem.root === null ? 'data' : 'storage.filesystem.root';
}

/** A StartupError naming `listen` for the ways binding the address fails; other errors as they are. */
function listenFailure(error: unknown, listen: string): unknown {
  const problems: Record<string, string> = {
    EADDRINUSE: `${listen} is already in use`,
    EACCES: `no permission to listen on ${listen} (ports below 1024 need privileges)`,
    EADDRNOTAVAIL: `${listen}: the address is not one of this machine's`,
    ENOTFOUND: `${listen}: the host name does not resolve`,
  };
  const problem = problems[(error as { code?: string }).code ?? ''];
  return problem === undefined ? error : new StartupError('listen', problem, { cause: error });
}
