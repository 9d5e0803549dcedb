/**
 * The distribution API's route table, as data: one entry per endpoint with its path pattern and a builder for
 * the same path. Used for dispatching requests (`dispatch.ts`) and for building `Location` and `Link` URLs, so
 * the two can never disagree. Names may have many `/`-separated components, so routes are matched with
 * anchored regular expressions on the raw path, most specific first, as distribution's `routes.go` does.
 */

export type RouteName =
  'base' | 'catalog' | 'tags' | 'manifest' | 'uploadStart' | 'upload' | 'blob' | 'referrers';

export interface RouteParams {
  name?: string;
  reference?: string;
  digest?: string;
  uuid?: string;
}

interface RouteDef {
  readonly name: RouteName;
  readonly pattern: RegExp;
  readonly build: (p: RouteParams) => string;
}

const NAME = '(?<name>[^?#]+?)';
const SEGMENT = '[^/?#]+';

/** Order matters: `blobs/uploads/` must win over `blobs/<digest>`. */
export const ROUTES: readonly RouteDef[] = [
  { name: 'base', pattern: /^\/v2\/?$/, build: () => '/v2/' },
  { name: 'catalog', pattern: /^\/v2\/_catalog$/, build: () => '/v2/_catalog' },
  {
    name: 'tags',
    pattern: new RegExp(`^/v2/${NAME}/tags/list$`),
    build: (p) => `/v2/${p.name}/tags/list`,
  },
  {
    name: 'manifest',
    pattern: new RegExp(`^/v2/${NAME}/manifests/(?<reference>${SEGMENT})$`),
    build: (p) => `/v2/${p.name}/manifests/${p.reference}`,
  },
  {
    name: 'uploadStart',
    pattern: new RegExp(`^/v2/${NAME}/blobs/uploads/?$`),
    build: (p) => `/v2/${p.name}/blobs/uploads/`,
  },
  {
    name: 'upload',
    pattern: new RegExp(`^/v2/${NAME}/blobs/uploads/(?<uuid>${SEGMENT})$`),
    build: (p) => `/v2/${p.name}/blobs/uploads/${p.uuid}`,
  },
  {
    name: 'blob',
    pattern: new RegExp(`^/v2/${NAME}/blobs/(?<digest>${SEGMENT})$`),
    build: (p) => `/v2/${p.name}/blobs/${p.digest}`,
  },
  {
    name: 'referrers',
    pattern: new RegExp(`^/v2/${NAME}/referrers/(?<digest>${SEGMENT})$`),
    build: (p) => `/v2/${p.name}/referrers/${p.digest}`,
  },
];

const BY_NAME = new Map(ROUTES.map((r) => [r.name, r]));

export interface RouteMatch {
  readonly route: RouteName;
  readonly params: RouteParams;
}

/**
 * Matches a raw request path (no query string). Captured parameters are percent-decoded; a malformed escape
 * yields the raw text, which then fails validation as an invalid name or digest.
 */
export function matchRoute(path: string): RouteMatch | null {
  for (const route of ROUTES) {
    const m = route.pattern.exec(path);
    if (!m) continue;
    const params: RouteParams = {};
    for (const [key, value] of Object.entries(m.groups ?? {})) {
      if (value !== undefined) params[key as keyof RouteParams] = safeDecode(value);
    }
    return { route: route.name, params };
  }
  return null;
}

/** The path of `route` with `params` (already valid, so nothing needs escaping but the query). */
export function routePath(route: RouteName, params: RouteParams = {}): string {
  return (BY_NAME.get(route) as RouteDef).build(params);
}

function safeDecode(s: string): string {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
