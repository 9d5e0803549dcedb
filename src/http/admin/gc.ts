/** Admin API: garbage collection runs (system administrators only; see `admin/gc-admin.ts`). */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { GcAdmin } from '../../admin/gc-admin.ts';
import { actorOf, badRequest, jsonBody, pageQuery, sendJson } from './request.ts';

const gcStart = z.object({ dryRun: z.boolean().optional() }).strict();

function runId(request: FastifyRequest): number {
  const raw = (request.params as { id?: string }).id ?? '';
  if (!/^[1-9]\d{0,14}$/.test(raw)) throw badRequest('the run id must be a positive whole number', 'id');
  return Number(raw);
}

export function registerGcRoutes(api: FastifyInstance, gc: GcAdmin): void {
  api.post('/gc', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, gcStart, true);
    return sendJson(reply, 202, await gc.start(actor, body));
  });
  api.get('/gc', async (request, reply) =>
    sendJson(reply, 200, await gc.list(actorOf(request), pageQuery(request))),
  );
  api.get('/gc/:id', async (request, reply) =>
    sendJson(reply, 200, await gc.get(actorOf(request), runId(request))),
  );
}
