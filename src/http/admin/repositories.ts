/** Admin API: repositories as a whole. The name is one path segment, its slashes URL-encoded (`team%2Fapp`). */
import type { FastifyInstance } from 'fastify';
import type { RepositoryAdmin } from '../../admin/repository-admin.ts';
import { actorOf, sendJson } from './request.ts';

type RepositoryParams = { Params: { name: string } };

export function registerRepositoryRoutes(api: FastifyInstance, repositories: RepositoryAdmin): void {
  api.delete<RepositoryParams>('/repositories/:name', async (request, reply) =>
    sendJson(reply, 200, await repositories.delete(actorOf(request), request.params.name)),
  );
}
