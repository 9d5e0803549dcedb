/**
 * Admin API: replication (system administrators only; the use cases live in `admin/replication-admin.ts`): remote
 * registries, policies, running a policy, executions with their tasks, retry and cancel. `{id}` of a registry or a
 * policy is its id or its name.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { ReplicationAdmin } from '../../admin/replication-admin.ts';
import { actorOf, badRequest, jsonBody, pageQuery, sendJson, sendNoContent, stringQuery } from './request.ts';

const registryBody = z
  .object({
    name: z.string().optional(),
    url: z.string().optional(),
    username: z.string().nullable().optional(),
    password: z.string().nullable().optional(),
    caBundle: z.string().nullable().optional(),
    insecure: z.boolean().optional(),
    concurrency: z.number().nullable().optional(),
  })
  .strict();

const globList = z.array(z.string());

const policyBody = z
  .object({
    name: z.string().optional(),
    registry: z.union([z.string(), z.number()]).optional(),
    direction: z.string().optional(),
    repositories: globList.optional(),
    excludeRepositories: globList.optional(),
    tags: globList.optional(),
    excludeTags: globList.optional(),
    rewrite: z
      .object({ stripPrefix: z.string().optional(), addPrefix: z.string().optional() })
      .strict()
      .optional(),
    trigger: z.string().optional(),
    schedule: z.string().nullable().optional(),
    replicateDeletions: z.boolean().optional(),
    bandwidthLimit: z.number().nullable().optional(),
    enabled: z.boolean().optional(),
  })
  .strict();

function ref(request: FastifyRequest): string {
  const raw = (request.params as { id?: string }).id ?? '';
  if (raw === '' || raw.length > 128) throw badRequest('an id or a name is required', 'id');
  return raw;
}

function executionId(request: FastifyRequest): number {
  const raw = (request.params as { id?: string }).id ?? '';
  if (!/^[1-9]\d{0,14}$/.test(raw))
    throw badRequest('the execution id must be a positive whole number', 'id');
  return Number(raw);
}

export function registerReplicationRoutes(api: FastifyInstance, replication: ReplicationAdmin): void {
  api.get('/replication/registries', async (request, reply) =>
    sendJson(reply, 200, await replication.listRegistries(actorOf(request))),
  );
  api.post('/replication/registries', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, registryBody);
    return sendJson(reply, 201, await replication.createRegistry(actor, body));
  });
  api.get('/replication/registries/:id', async (request, reply) =>
    sendJson(reply, 200, await replication.getRegistry(actorOf(request), ref(request))),
  );
  api.patch('/replication/registries/:id', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, registryBody);
    return sendJson(reply, 200, await replication.updateRegistry(actor, ref(request), body));
  });
  api.delete('/replication/registries/:id', async (request, reply) => {
    await replication.deleteRegistry(actorOf(request), ref(request));
    return sendNoContent(reply);
  });

  api.get('/replication/policies', async (request, reply) =>
    sendJson(reply, 200, await replication.listPolicies(actorOf(request))),
  );
  api.post('/replication/policies', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, policyBody);
    return sendJson(reply, 201, await replication.createPolicy(actor, body));
  });
  api.get('/replication/policies/:id', async (request, reply) =>
    sendJson(reply, 200, await replication.getPolicy(actorOf(request), ref(request))),
  );
  api.patch('/replication/policies/:id', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, policyBody);
    return sendJson(reply, 200, await replication.updatePolicy(actor, ref(request), body));
  });
  api.delete('/replication/policies/:id', async (request, reply) => {
    await replication.deletePolicy(actorOf(request), ref(request));
    return sendNoContent(reply);
  });
  api.post('/replication/policies/:id/run', async (request, reply) => {
    const actor = actorOf(request);
    await jsonBody(request, z.object({}).strict(), true);
    return sendJson(reply, 202, await replication.run(actor, ref(request)));
  });

  api.get('/replication/executions', async (request, reply) => {
    const policy = stringQuery(request, 'policy');
    return sendJson(
      reply,
      200,
      await replication.listExecutions(actorOf(request), {
        ...pageQuery(request),
        ...(policy !== undefined ? { policy } : {}),
      }),
    );
  });
  api.get('/replication/executions/:id', async (request, reply) =>
    sendJson(
      reply,
      200,
      await replication.getExecution(actorOf(request), executionId(request), pageQuery(request)),
    ),
  );
  api.post('/replication/executions/:id/retry', async (request, reply) =>
    sendJson(reply, 202, await replication.retry(actorOf(request), executionId(request))),
  );
  api.post('/replication/executions/:id/cancel', async (request, reply) =>
    sendJson(reply, 200, await replication.cancel(actorOf(request), executionId(request))),
  );
}
