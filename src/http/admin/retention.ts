/** Admin API: a namespace's retention policy (`/namespaces/{ns}/retention`) and runs of it. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { RetentionAdmin } from '../../admin/retention-admin.ts';
import { actorOf, jsonBody, sendJson, sendNoContent } from './request.ts';

/** The policy is checked by `RetentionAdmin` (which names the offending field); here only its shape as JSON. */
const policyBody = z.record(z.string(), z.unknown());

const runBody = z.object({ dryRun: z.boolean() }).strict();

type NsParams = { Params: { ns: string } };

export function registerRetentionRoutes(api: FastifyInstance, retention: RetentionAdmin): void {
  api.get<NsParams>('/namespaces/:ns/retention', async (request, reply) =>
    sendJson(reply, 200, await retention.get(actorOf(request), request.params.ns)),
  );
  api.put<NsParams>('/namespaces/:ns/retention', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, policyBody);
    return sendJson(reply, 200, await retention.set(actor, request.params.ns, body));
  });
  api.delete<NsParams>('/namespaces/:ns/retention', async (request, reply) => {
    await retention.remove(actorOf(request), request.params.ns);
    return sendNoContent(reply);
  });
  api.post<NsParams>('/namespaces/:ns/retention/run', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, runBody);
    return sendJson(reply, 200, await retention.run(actor, request.params.ns, body.dryRun));
  });
}
