/**
 * Admin API: webhook endpoints (global, and per namespace), their secrets, their delivery log, redelivery and
 * test events. The use cases and who may perform them live in `admin/webhook-service.ts`.
 *
 * The routes are always registered (the document lists them); a server built without the webhook services
 * (`AdminApiOptions.webhooks`) answers them with 503.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { WebhookService } from '../../admin/webhook-service.ts';
import { RegistryError } from '../../oci/errors.ts';
import { actorOf, badRequest, jsonBody, pageQuery, sendJson, sendNoContent, stringQuery } from './request.ts';

const headers = z.record(z.string(), z.string());

const webhookCreate = z
  .object({
    name: z.string(),
    url: z.string(),
    format: z.string().optional(),
    events: z.array(z.string()).optional(),
    repositoryGlob: z.string().optional(),
    tagGlob: z.string().optional(),
    includePulls: z.boolean().optional(),
    headers: headers.optional(),
  })
  .strict();

const webhookUpdate = z
  .object({
    url: z.string().optional(),
    format: z.string().optional(),
    events: z.array(z.string()).optional(),
    repositoryGlob: z.string().optional(),
    tagGlob: z.string().optional(),
    includePulls: z.boolean().optional(),
    headers: headers.optional(),
    enabled: z.boolean().optional(),
  })
  .strict();

type NsParams = { Params: { ns: string } };
type IdParams = { Params: { id: string } };
type DeliveryParams = { Params: { id: string; deliveryId: string } };

function idOf(value: string, field: string, what: string): number {
  if (!/^[1-9]\d{0,14}$/.test(value)) throw badRequest(`the ${what} must be a positive whole number`, field);
  return Number(value);
}

/** Copies the defined fields only (`exactOptionalPropertyTypes`-friendly). */
function defined<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export function registerWebhookRoutes(api: FastifyInstance, webhooks: WebhookService | null): void {
  const service = (): WebhookService => {
    if (webhooks === null)
      throw new RegistryError('UNSUPPORTED', 'webhooks are not available on this server', { status: 503 });
    return webhooks;
  };
  const listQuery = (request: FastifyRequest) => ({
    ...pageQuery(request),
    ...defined({ namespace: stringQuery(request, 'namespace') }),
  });

  api.get('/webhooks', async (request, reply) =>
    sendJson(reply, 200, await service().list(actorOf(request), listQuery(request))),
  );
  api.post('/webhooks', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, webhookCreate);
    return sendJson(reply, 201, await service().create(actor, null, defined(body)));
  });
  api.get<NsParams>('/namespaces/:ns/webhooks', async (request, reply) =>
    sendJson(
      reply,
      200,
      await service().list(actorOf(request), { ...pageQuery(request), namespace: request.params.ns }),
    ),
  );
  api.post<NsParams>('/namespaces/:ns/webhooks', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, webhookCreate);
    return sendJson(reply, 201, await service().create(actor, request.params.ns, defined(body)));
  });

  api.get<IdParams>('/webhooks/:id', async (request, reply) =>
    sendJson(reply, 200, await service().get(actorOf(request), idOf(request.params.id, 'id', 'webhook id'))),
  );
  api.patch<IdParams>('/webhooks/:id', async (request, reply) => {
    const actor = actorOf(request);
    const id = idOf(request.params.id, 'id', 'webhook id');
    const body = await jsonBody(request, webhookUpdate);
    return sendJson(reply, 200, await service().update(actor, id, defined(body)));
  });
  api.delete<IdParams>('/webhooks/:id', async (request, reply) => {
    await service().delete(actorOf(request), idOf(request.params.id, 'id', 'webhook id'));
    return sendNoContent(reply);
  });
  api.post<IdParams>('/webhooks/:id/rotate-secret', async (request, reply) =>
    sendJson(
      reply,
      200,
      await service().rotateSecret(actorOf(request), idOf(request.params.id, 'id', 'webhook id')),
    ),
  );
  api.post<IdParams>('/webhooks/:id/test', async (request, reply) =>
    sendJson(
      reply,
      202,
      await service().sendTest(actorOf(request), idOf(request.params.id, 'id', 'webhook id')),
    ),
  );
  api.get<IdParams>('/webhooks/:id/deliveries', async (request, reply) =>
    sendJson(
      reply,
      200,
      await service().listDeliveries(actorOf(request), idOf(request.params.id, 'id', 'webhook id'), {
        ...pageQuery(request),
        ...defined({ outcome: stringQuery(request, 'outcome') }),
      }),
    ),
  );
  api.post<DeliveryParams>('/webhooks/:id/deliveries/:deliveryId/redeliver', async (request, reply) => {
    const actor = actorOf(request);
    const id = idOf(request.params.id, 'id', 'webhook id');
    const deliveryId = idOf(request.params.deliveryId, 'deliveryId', 'delivery id');
    return sendJson(reply, 202, await service().redeliver(actor, id, deliveryId));
  });
}
