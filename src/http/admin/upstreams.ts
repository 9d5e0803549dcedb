/**
 * Admin API: the pull-through cache's upstreams (`/upstreams`). The use cases and who may perform them live in
 * `admin/upstream-admin.ts`. Bodies and answers are flat: the upstream's settings (as in `proxy.upstreams` of
 * the configuration file) beside its name, namespace and credentials; answers never carry the password.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { UpstreamAdmin, UpstreamView } from '../../admin/upstream-admin.ts';
import { actorOf, jsonBody, sendJson, sendNoContent } from './request.ts';

/** The settings are checked by `UpstreamAdmin` (which names the offending field); here only the JSON shape. */
const upstreamBody = z
  .object({
    name: z.string(),
    namespace: z.string(),
    username: z.string().nullable().optional(),
    password: z.string().nullable().optional(),
  })
  .catchall(z.unknown());

const changeBody = z
  .object({
    username: z.string().nullable().optional(),
    password: z.string().nullable().optional(),
  })
  .catchall(z.unknown());

type NameParams = { Params: { name: string } };

/** The view with its settings beside the other fields. */
function flat(view: UpstreamView): Record<string, unknown> {
  const { settings, ...rest } = view;
  return { ...rest, ...settings };
}

export function registerUpstreamRoutes(api: FastifyInstance, upstreams: UpstreamAdmin): void {
  api.get('/upstreams', async (request, reply) =>
    sendJson(reply, 200, { items: (await upstreams.list(actorOf(request))).map(flat) }),
  );
  api.post('/upstreams', async (request, reply) => {
    const actor = actorOf(request);
    const { name, namespace, username, password, ...settings } = await jsonBody(request, upstreamBody);
    const view = await upstreams.create(actor, { name, namespace, username, password, settings });
    return sendJson(reply, 201, flat(view));
  });
  api.get<NameParams>('/upstreams/:name', async (request, reply) =>
    sendJson(reply, 200, flat(await upstreams.get(actorOf(request), request.params.name))),
  );
  api.patch<NameParams>('/upstreams/:name', async (request, reply) => {
    const actor = actorOf(request);
    const { username, password, ...settings } = await jsonBody(request, changeBody);
    const view = await upstreams.update(actor, request.params.name, {
      username,
      password,
      ...(Object.keys(settings).length > 0 ? { settings } : {}),
    });
    return sendJson(reply, 200, flat(view));
  });
  api.delete<NameParams>('/upstreams/:name', async (request, reply) => {
    await upstreams.delete(actorOf(request), request.params.name);
    return sendNoContent(reply);
  });
  api.post<NameParams>('/upstreams/:name/check', async (request, reply) =>
    sendJson(reply, 200, await upstreams.check(actorOf(request), request.params.name)),
  );
}
