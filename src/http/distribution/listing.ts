/** `GET /v2/<name>/tags/list`, `GET /v2/_catalog`, `GET /v2/<name>/referrers/<digest>` */
import { parseDigest } from '../../oci/digest.ts';
import { MediaType } from '../../oci/media-types.ts';
import { parsePageSize, queryParam } from '../headers.ts';
import { type RouteName, type RouteParams, routePath } from '../routes.ts';
import type { MethodTable, RouteContext } from './context.ts';

/** Sets an RFC 5988 `Link: <...?last=x&n=y>; rel="next"` header when more items remain. */
function linkNext(
  ctx: RouteContext,
  route: RouteName,
  params: RouteParams,
  items: string[],
  hasMore: boolean,
  n: number,
): void {
  const last = items[items.length - 1];
  if (!hasMore || last === undefined) return;
  const query = new URLSearchParams({ last, n: String(n) }).toString();
  ctx.reply.header('Link', `<${routePath(route, params)}?${query}>; rel="next"`);
}

export const tagsRoutes: MethodTable = {
  async GET(ctx) {
    const { request, reply, params, registry, limits } = ctx;
    const n = parsePageSize(queryParam(request.query, 'n'), limits.tagsPageSize, limits.tagsPageSize);
    const last = queryParam(request.query, 'last');
    const page = await registry.tags.list(params.name, n, last);
    linkNext(ctx, 'tags', { name: params.name }, page.items, page.hasMore, n);
    return reply.code(200).type('application/json').send({ name: params.name, tags: page.items });
  },
};

export const catalogRoutes: MethodTable = {
  async GET(ctx) {
    const { request, reply, registry, limits, access, caller } = ctx;
    const n = parsePageSize(queryParam(request.query, 'n'), limits.catalogPageSize, limits.catalogPageSize);
    const last = queryParam(request.query, 'last');
    const page = await registry.catalog.list(
      n,
      last,
      access.enabled ? await access.pullFilter(caller) : undefined,
    );
    linkNext(ctx, 'catalog', {}, page.items, page.hasMore, n);
    return reply.code(200).type('application/json').send({ repositories: page.items });
  },
};

export const referrersRoutes: MethodTable = {
  async GET({ request, reply, params, registry }) {
    const subject = parseDigest(params.digest as string).digest;
    const artifactType = queryParam(request.query, 'artifactType');
    const index = await registry.referrers.list(params.name, subject, artifactType || undefined);
    if (artifactType) reply.header('OCI-Filters-Applied', 'artifactType');
    // A Buffer, not a string: Fastify appends `; charset=utf-8` to JSON-ish types of string payloads, and clients
    // compare this Content-Type exactly.
    return reply
      .code(200)
      .type(MediaType.OciIndex)
      .send(Buffer.from(JSON.stringify(index)));
  },
};
