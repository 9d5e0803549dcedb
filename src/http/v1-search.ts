/**
 * The Docker Hub v1 search API, as `docker search HOST/TERM` and `podman search` call it:
 * `GET /v1/_ping`, then `GET /v1/search?q=&n=&page=`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AccessControl } from './auth/access-control.ts';
import type { Registry } from '../registry/registry.ts';
import { parsePageSize, queryParam } from './headers.ts';
import { PaginationNumberInvalidError } from '../oci/errors.ts';

/**
 * containers/image (podman, buildah, skopeo) never sends credentials to `/v1/search`, and falls back to
 * `/v2/_catalog` with its credentials (or an anonymous token) only when the search does not answer 200. With
 * token authentication such a request is challenged, so that `podman search` after `podman login` lists the
 * private repositories the user may pull. Docker sends its credentials to `/v1/search` whenever it has any, so
 * its anonymous searches are answered.
 */
function withholdsCredentials(request: FastifyRequest, access: AccessControl): boolean {
  if (access.deps.mode !== 'token' || request.headers.authorization !== undefined) return false;
  const agent = request.headers['user-agent'] ?? '';
  return /^(containers|podman|buildah|skopeo)\//.test(agent) || agent.includes('github.com/containers/image');
}

/** Results list only repositories the caller may pull; anonymous callers see public namespaces. */
export function registerV1Search(app: FastifyInstance, registry: Registry, access: AccessControl): void {
  app.get('/v1/_ping', async (_request, reply) => {
    reply.code(200).type('application/json').send('true');
  });
  app.get('/v1/search', async (request, reply) => {
    const query = (queryParam(request.query, 'q') ?? '').trim().slice(0, 255);
    let perPage = parsePageSize(queryParam(request.query, 'n'), 25, 100);
    if (perPage === 0) perPage = 25;
    const pageParam = queryParam(request.query, 'page');
    if (pageParam !== undefined && !/^[1-9]\d{0,8}$/.test(pageParam)) {
      throw new PaginationNumberInvalidError('page must be a positive integer');
    }
    const page = pageParam === undefined ? 1 : Number(pageParam);
    if (withholdsCredentials(request, access)) {
      throw access.challenge(request, [{ type: 'registry', name: 'catalog', actions: ['search'] }]);
    }
    const caller = await access.authenticate(request);
    const filter = access.enabled ? await access.pullFilter(caller) : undefined;
    const { total, names } = await registry.catalog.search(query, page, perPage, filter);
    reply
      .code(200)
      .type('application/json')
      .send({
        query,
        num_results: total,
        num_pages: Math.max(1, Math.ceil(total / perPage)),
        page,
        page_size: perPage,
        results: names.map((name) => ({
          name,
          description: '',
          star_count: 0,
          is_official: false,
          is_automated: false,
        })),
      });
  });
}
