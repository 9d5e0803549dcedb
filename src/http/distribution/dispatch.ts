/**
 * Mounts the distribution API: every `/v2` request goes through one Fastify route and is dispatched with the
 * route table (`routes.ts`), since repository names span several path segments.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AccessControl, Need } from '../auth/access-control.ts';
import type { Action } from '../../auth/principal.ts';
import { RegistryError } from '../../oci/errors.ts';
import { assertRepositoryName, isValidRepositoryName } from '../../oci/reference.ts';
import type { Registry } from '../../registry/registry.ts';
import { queryParam } from '../headers.ts';
import { matchRoute, type RouteName, type RouteParams } from '../routes.ts';
import type { UrlBuilder } from '../urls.ts';
import { blobRoutes } from './blobs.ts';
import type { HttpMethod, MethodTable } from './context.ts';
import { catalogRoutes, referrersRoutes, tagsRoutes } from './listing.ts';
import { manifestRoutes } from './manifests.ts';
import { uploadRoutes, uploadStartRoutes } from './uploads.ts';

const baseRoutes: MethodTable = {
  async GET({ reply }) {
    reply.code(200).type('application/json').send('{}');
  },
  async HEAD({ reply }) {
    reply.code(200).type('application/json').header('Content-Length', '2').send();
  },
};

const HANDLERS: Record<RouteName, MethodTable> = {
  base: baseRoutes,
  catalog: catalogRoutes,
  tags: tagsRoutes,
  manifest: manifestRoutes,
  uploadStart: uploadStartRoutes,
  upload: uploadRoutes,
  blob: blobRoutes,
  referrers: referrersRoutes,
};

/** What each endpoint needs of the caller, as data beside the handlers. */
const NEEDS: Record<
  RouteName,
  Partial<Record<HttpMethod, readonly Action[] | 'authenticated' | 'catalog'>>
> = {
  base: { GET: 'authenticated', HEAD: 'authenticated' },
  catalog: { GET: 'catalog' },
  tags: { GET: ['pull'] },
  manifest: { GET: ['pull'], HEAD: ['pull'], PUT: ['push'], DELETE: ['delete'] },
  uploadStart: { POST: ['push'] },
  upload: { GET: ['push'], PATCH: ['push'], PUT: ['push'], DELETE: ['push'] },
  blob: { GET: ['pull'], HEAD: ['pull'], DELETE: ['delete'] },
  referrers: { GET: ['pull'] },
};

/** The audit target of a request on `name`: `name:tag`, `name@digest`, or the repository. */
function targetOf(name: string, params: RouteParams): string {
  const ref = params.reference ?? params.digest;
  if (ref === undefined) return name;
  return ref.includes(':') ? `${name}@${ref}` : `${name}:${ref}`;
}

function needOf(
  route: RouteName,
  method: HttpMethod,
  name: string,
  request: FastifyRequest,
  params: RouteParams,
): Need {
  const need = NEEDS[route][method] ?? 'authenticated';
  if (need === 'authenticated' || need === 'catalog') return { kind: need };
  // A cross-repository mount would like to read its source: challenges ask for pull on it too.
  const from = route === 'uploadStart' ? queryParam(request.query, 'from') : undefined;
  return {
    kind: 'repository',
    name,
    actions: need,
    target: targetOf(name, params),
    ...(from !== undefined && queryParam(request.query, 'mount') !== undefined && isValidRepositoryName(from)
      ? { wantsPull: from }
      : {}),
  };
}

const MATCHED_ROUTE = Symbol('berth.matchedRoute');

/** The distribution route the dispatcher matched for `request` (metrics and tracing label requests with it). */
export function matchedRoute(request: FastifyRequest): RouteName | undefined {
  return (request as unknown as { [MATCHED_ROUTE]?: RouteName })[MATCHED_ROUTE];
}

/** Routes names to the pull-through cache (`proxy/proxy-router.ts`). */
export interface ProxyRouting {
  route(
    name: string,
    nsHost: string | undefined,
    read: boolean,
  ): Promise<{
    readonly localName: string;
    readonly upstream: string;
    readonly url: string;
    readonly byNamespaceHost: boolean;
  } | null>;
}

/** Routes whose writes a cached namespace refuses: pushes (deletes stay, with the delete permission). */
const PUSH_ROUTES: ReadonlySet<RouteName> = new Set(['manifest', 'uploadStart', 'upload']);

export interface DistributionOptions {
  readonly access: AccessControl;
  /** The pull-through cache's routing; absent: every name is a local repository. */
  readonly proxy?: ProxyRouting | null;
  readonly registry: Registry;
  readonly urls: UrlBuilder;
  readonly limits: { readonly catalogPageSize: number; readonly tagsPageSize: number };
}

export function registerDistributionApi(app: FastifyInstance, options: DistributionOptions): void {
  const handle = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const rawUrl = request.raw.url ?? '/';
    const q = rawUrl.indexOf('?');
    const path = q === -1 ? rawUrl : rawUrl.slice(0, q);
    const match = matchRoute(path);
    if (!match) {
      throw new RegistryError(
        'UNSUPPORTED',
        'no such endpoint; repository names are lowercase path components',
        {
          status: 404,
          detail: { path: path.slice(0, 300) },
        },
      );
    }
    (request as unknown as { [MATCHED_ROUTE]?: RouteName })[MATCHED_ROUTE] = match.route;
    const handler = HANDLERS[match.route][request.method as HttpMethod];
    if (!handler) {
      reply.header('Allow', Object.keys(HANDLERS[match.route]).join(', '));
      throw new RegistryError('UNSUPPORTED', `${request.method} is not supported on this endpoint`, {
        status: 405,
      });
    }
    if (match.params.name !== undefined) assertRepositoryName(match.params.name);
    const requested = match.params.name ?? '';
    const method = request.method as HttpMethod;
    let name = requested;
    if (options.proxy && requested !== '') {
      const ns = queryParam(request.query, 'ns');
      const read = method === 'GET' || method === 'HEAD';
      const cached = await options.proxy.route(requested, ns, read);
      if (cached) {
        if (PUSH_ROUTES.has(match.route) && !read) {
          throw new RegistryError(
            'UNSUPPORTED',
            `${requested} is in a pull-through cache of ${cached.url} (upstream ${cached.upstream}): it is read-only`,
            { status: 405 },
          );
        }
        name = cached.localName;
        if (cached.byNamespaceHost && ns !== undefined) reply.header('OCI-Namespace', ns);
      }
    }
    const caller = await options.access.authenticate(request);
    const need = needOf(match.route, method, name, request, match.params);
    await options.access.require(
      request,
      caller,
      need.kind === 'repository' && name !== requested ? { ...need, tokenName: requested } : need,
    );
    await handler({
      request,
      reply,
      params: { ...match.params, name },
      registry: options.registry,
      urls: options.urls,
      limits: options.limits,
      caller,
      access: options.access,
    });
  };
  // Every method the server knows reaches `handle`, so a method an endpoint lacks (OPTIONS, TRACE...) is 405
  // UNSUPPORTED with an Allow header rather than a 404 from the not-found handler.
  for (const url of ['/v2', '/v2/', '/v2/*']) {
    app.route({ method: app.supportedMethods, url, handler: handle });
  }
}
