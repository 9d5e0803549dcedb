/** Admin API: the job queue (system administrators only; see `admin/job-admin.ts`). */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { JobAdmin } from '../../admin/job-admin.ts';
import { actorOf, badRequest, pageQuery, sendJson, stringQuery } from './request.ts';

/** The `{id}` path parameter: a positive whole number, else 400. */
function jobId(request: FastifyRequest): number {
  const raw = (request.params as { id?: string }).id ?? '';
  if (!/^[1-9]\d{0,14}$/.test(raw)) throw badRequest('the job id must be a positive whole number', 'id');
  return Number(raw);
}

export function registerJobRoutes(api: FastifyInstance, jobs: JobAdmin): void {
  api.get('/jobs', async (request, reply) =>
    sendJson(
      reply,
      200,
      await jobs.list(actorOf(request), {
        ...pageQuery(request),
        queue: stringQuery(request, 'queue'),
        state: stringQuery(request, 'state'),
      }),
    ),
  );
  api.get('/jobs/:id', async (request, reply) =>
    sendJson(reply, 200, await jobs.get(actorOf(request), jobId(request))),
  );
  api.post('/jobs/:id/retry', async (request, reply) =>
    sendJson(reply, 200, await jobs.retry(actorOf(request), jobId(request))),
  );
  api.post('/jobs/:id/cancel', async (request, reply) =>
    sendJson(reply, 200, await jobs.cancel(actorOf(request), jobId(request))),
  );
}
