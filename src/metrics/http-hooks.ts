/**
 * Fastify hooks feeding the HTTP metrics: requests and durations by route template, body bytes, uploads in
 * flight, pushes and pulls, refusals. `/metrics` itself is not counted (scrapes would drown the registry's
 * traffic in small numbers).
 */
import { refusalOf } from '../registry/pull-policy.ts';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { matchedRoute } from '../http/distribution/dispatch.ts';
import type { RouteName } from '../http/routes.ts';
import type { BerthMetrics } from './metrics.ts';

/** The path of the metrics endpoint, not counted in the HTTP metrics. */
export const METRICS_PATH = '/metrics';

/** Route templates of the distribution API (one Fastify route dispatched by `routes.ts`). */
export const DISTRIBUTION_TEMPLATES: Readonly<Record<RouteName, string>> = {
  base: '/v2/',
  catalog: '/v2/_catalog',
  tags: '/v2/{name}/tags/list',
  manifest: '/v2/{name}/manifests/{reference}',
  uploadStart: '/v2/{name}/blobs/uploads/',
  upload: '/v2/{name}/blobs/uploads/{uuid}',
  blob: '/v2/{name}/blobs/{digest}',
  referrers: '/v2/{name}/referrers/{digest}',
};

const DISTRIBUTION_URLS = new Set(['/v2', '/v2/', '/v2/*']);
const TOKEN_URL = '/auth/token';

/** The route label of `request`: a template, or `unmatched` (a 404 of the router, an unknown /v2 path). */
export function routeTemplate(request: FastifyRequest): string {
  const url = request.routeOptions.url;
  if (url === undefined) return 'unmatched';
  if (DISTRIBUTION_URLS.has(url)) {
    const route = matchedRoute(request);
    return route === undefined ? 'unmatched' : DISTRIBUTION_TEMPLATES[route];
  }
  return url;
}

/** Body bytes counted on requests that announced no Content-Length (chunked uploads). */
const counted = new WeakMap<IncomingMessage, { bytes: number }>();

export function registerHttpMetrics(app: FastifyInstance, metrics: BerthMetrics): void {
  app.addHook('onRequest', (request, reply, done) => {
    const raw = request.raw;
    if (raw.headers['content-length'] === undefined && raw.headers['transfer-encoding'] !== undefined) {
      countRequestBody(raw);
    }
    const method = request.method;
    if ((method === 'PATCH' || method === 'PUT' || method === 'POST') && isUploadPath(raw.url)) {
      // `close` fires once whatever happens (finished, aborted, destroyed): the gauge always comes back down.
      metrics.uploadsInProgress(1);
      reply.raw.once('close', () => metrics.uploadsInProgress(-1));
    }
    done();
  });

  app.addHook('onResponse', (request, reply, done) => {
    const route = routeTemplate(request);
    if (route === METRICS_PATH) {
      done();
      return;
    }
    const method = request.method;
    const status = reply.statusCode;
    metrics.httpRequest(method, route, status, reply.elapsedTime / 1000);
    metrics.httpBytes(requestBytes(request), responseBytes(method, status, reply));
    if (status === 401 || status === 403) {
      metrics.authFailure(route === TOKEN_URL ? 'token' : status === 401 ? 'unauthenticated' : 'denied');
    } else {
      const activity = activityOf(matchedRoute(request), method, status);
      if (activity !== undefined) metrics.registryActivity(activity);
      const refusal = status === 412 ? refusalOf.get(request) : undefined;
      if (refusal !== undefined) metrics.pullRefused(refusal);
    }
    done();
  });
}

/** Which push or pull a response completed, if any. */
function activityOf(
  route: RouteName | undefined,
  method: string,
  status: number,
): 'blobPush' | 'blobPull' | 'manifestPush' | 'manifestPull' | undefined {
  switch (route) {
    case 'manifest':
      if (method === 'GET' && status === 200) return 'manifestPull';
      if (method === 'PUT' && status === 201) return 'manifestPush';
      return undefined;
    case 'blob':
      return method === 'GET' && (status === 200 || status === 206 || status === 307)
        ? 'blobPull'
        : undefined;
    case 'upload':
      return method === 'PUT' && status === 201 ? 'blobPush' : undefined;
    case 'uploadStart':
      return method === 'POST' && status === 201 ? 'blobPush' : undefined;
    default:
      return undefined;
  }
}

function isUploadPath(url: string | undefined): boolean {
  return url !== undefined && url.startsWith('/v2/') && url.includes('/blobs/uploads');
}

function requestBytes(request: FastifyRequest): number {
  const length = request.headers['content-length'];
  if (length !== undefined) return Number(length) || 0;
  return counted.get(request.raw)?.bytes ?? 0;
}

/**
 * The response's Content-Length. Every body Berth sends announces its length (fastify sets it for buffered bodies,
 * blob streams set it themselves), so the few responses without one (none today) count 0 rather than every
 * response paying for byte counting.
 */
function responseBytes(method: string, status: number, reply: FastifyReply): number {
  if (method === 'HEAD' || status === 204 || status === 304) return 0;
  const length = reply.getHeader('content-length');
  return length === undefined ? 0 : Number(length) || 0;
}

/** Counts what the request stream delivers, without reading it (a `data` listener would start the flow). */
function countRequestBody(raw: IncomingMessage): void {
  const c = { bytes: 0 };
  counted.set(raw, c);
  const push = raw.push;
  raw.push = function (this: IncomingMessage, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk !== null && chunk !== undefined) c.bytes += (chunk as { length: number }).length;
    return push.call(this, chunk, encoding);
  };
}
