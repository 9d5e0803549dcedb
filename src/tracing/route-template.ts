/**
 * The low-cardinality route of a request, for span names and the `http.route` attribute: the distribution API is
 * one catch-all route, so its endpoints are told apart by `matchRoute` and named by their path with placeholders
 * (`/v2/{name}/manifests/{reference}`); other routes by their Fastify URL pattern.
 */
import type { FastifyRequest } from 'fastify';
import { matchRoute, routePath, ROUTES, type RouteName } from '../http/routes.ts';

const PLACEHOLDERS = { name: '{name}', reference: '{reference}', digest: '{digest}', uuid: '{uuid}' };

const TEMPLATES: ReadonlyMap<RouteName, string> = new Map(
  ROUTES.map((r) => [r.name, routePath(r.name, PLACEHOLDERS)]),
);

/** The path template of a distribution API route, e.g. `/v2/{name}/blobs/{digest}` for `blob`. */
export function distributionRouteTemplate(route: RouteName): string {
  return TEMPLATES.get(route) as string;
}

/**
 * The route template of `request`: the distribution endpoint its path matches, else the URL pattern of the
 * Fastify route it reached; undefined when it reached none (a 404 from the not-found handler).
 */
export function requestRouteTemplate(request: FastifyRequest): string | undefined {
  const pattern = request.routeOptions.url;
  if (pattern === undefined) return undefined;
  if (pattern === '/v2' || pattern === '/v2/' || pattern === '/v2/*') {
    const match = matchRoute(pathOf(request.raw.url));
    return match ? distributionRouteTemplate(match.route) : pattern;
  }
  return pattern;
}

/** The path of a request target, without its query string. */
export function pathOf(url: string | undefined): string {
  const raw = url ?? '/';
  const q = raw.indexOf('?');
  return q === -1 ? raw : raw.slice(0, q);
}
