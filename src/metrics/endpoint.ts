/**
 * Serving the metrics: a `/metrics` route on the registry's listener, or a separate plain-HTTP listener
 * (`metrics.listen`), both optionally behind a bearer token (`metrics.token`).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { METRICS_PATH } from './http-hooks.ts';
import type { BerthMetrics } from './metrics.ts';

/**
 * True when `authorization` is `Bearer <token>`. Compared in constant time (over SHA-256 digests, so neither the
 * length nor a prefix of the token leaks through timing).
 */
export function bearerMatches(authorization: string | undefined, token: string): boolean {
  if (authorization === undefined) return false;
  const m = /^bearer\s+(.+)$/i.exec(authorization.trim());
  if (!m) return false;
  const given = createHash('sha256')
    .update(m[1] as string)
    .digest();
  const expected = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, expected);
}

/** Adds `GET /metrics` to `app`; with `token`, callers must present it as a bearer token. */
export function registerMetricsRoute(
  app: FastifyInstance,
  metrics: BerthMetrics,
  token: string | null,
): void {
  app.get(METRICS_PATH, async (request, reply) => {
    if (token !== null && !bearerMatches(request.headers.authorization, token)) {
      return reply
        .code(401)
        .header('WWW-Authenticate', 'Bearer realm="metrics"')
        .type('text/plain; charset=utf-8')
        .send('unauthorized\n');
    }
    const body = await metrics.scrape();
    return reply.code(200).type(metrics.contentType).send(body);
  });
}

export interface MetricsListener {
  /** The address bound (the port chosen when `listen` asked for port 0). */
  readonly address: AddressInfo;
  /** Stops listening and closes idle connections. */
  close(): Promise<void>;
}

/**
 * Serves `/metrics` (nothing else: 404; other methods than GET and HEAD: 405) on a plain-HTTP listener at
 * `host:port`.
 */
export async function startMetricsListener(
  host: string,
  port: number,
  metrics: BerthMetrics,
  token: string | null,
): Promise<MetricsListener> {
  const server = createServer((req, res) => {
    handle(req, res, metrics, token).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' });
      res.end(`error collecting metrics: ${error instanceof Error ? error.message : String(error)}\n`);
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    address: server.address() as AddressInfo,
    close: () => closeServer(server),
  };
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  metrics: BerthMetrics,
  token: string | null,
): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  const text = (status: number, body: string, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  if (path !== METRICS_PATH) return text(404, 'not found\n');
  if (req.method !== 'GET' && req.method !== 'HEAD')
    return text(405, 'method not allowed\n', { Allow: 'GET, HEAD' });
  if (token !== null && !bearerMatches(req.headers.authorization, token)) {
    return text(401, 'unauthorized\n', { 'WWW-Authenticate': 'Bearer realm="metrics"' });
  }
  const body = await metrics.scrape();
  res.writeHead(200, { 'Content-Type': metrics.contentType, 'Content-Length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => {
    server.close((error) => (error ? reject(error) : resolve()));
    server.closeIdleConnections();
  });
}
