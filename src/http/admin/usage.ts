/** Admin API: storage usage per namespace and namespace quotas. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { UsageAdmin } from '../../admin/usage-admin.ts';
import { actorOf, jsonBody, sendJson } from './request.ts';

const quotaSet = z.object({ bytes: z.number().nullable() }).strict();

type NsParams = { Params: { ns: string } };

export function registerUsageRoutes(api: FastifyInstance, usage: UsageAdmin): void {
  api.get('/usage', async (request, reply) => sendJson(reply, 200, await usage.report(actorOf(request))));
  api.get<NsParams>('/namespaces/:ns/usage', async (request, reply) =>
    sendJson(reply, 200, await usage.namespaceUsage(actorOf(request), request.params.ns)),
  );
  api.put<NsParams>('/namespaces/:ns/quota', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, quotaSet);
    return sendJson(reply, 200, await usage.setQuota(actor, request.params.ns, body.bytes));
  });
}
