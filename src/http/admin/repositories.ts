/** Admin API: repositories as a whole. The name is one path segment, its slashes URL-encoded (`team%2Fapp`). */
import type { FastifyInstance } from 'fastify';
import type { RepositoryAdmin } from '../../admin/repository-admin.ts';
import { actorOf, pageQuery, sendJson, stringQuery } from './request.ts';

type RepositoryParams = { Params: { name: string } };

export function registerRepositoryRoutes(api: FastifyInstance, repositories: RepositoryAdmin): void {
  api.get('/repositories', async (request, reply) =>
    sendJson(
      reply,
      200,
      await repositories.list(actorOf(request), {
        ...pageQuery(request),
        namespace: stringQuery(request, 'namespace'),
      }),
    ),
  );
  api.delete<RepositoryParams>('/repositories/:name', async (request, reply) =>
    sendJson(reply, 200, await repositories.delete(actorOf(request), request.params.name)),
  );
}
