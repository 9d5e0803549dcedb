/**
 * Admin API: the immutable tag rules of a namespace. The use cases and who may perform them live in
 * `admin/immutable-tag-admin.ts`. The routes are always registered (the document lists them); a server built
 * without the rules (no `RegistryDeps.immutableTags`) answers them with 503.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ImmutableTagAdmin } from '../../admin/immutable-tag-admin.ts';
import { RegistryError } from '../../oci/errors.ts';
import { actorOf, badRequest, jsonBody, pageQuery, sendJson, sendNoContent } from './request.ts';

const ruleCreate = z
  .object({
    repositoryGlob: z.string().optional(),
    tagGlob: z.string(),
  })
  .strict();

type NsParams = { Params: { ns: string } };
type RuleParams = { Params: { ns: string; id: string } };

export function registerImmutableTagRoutes(api: FastifyInstance, rules: ImmutableTagAdmin | null): void {
  const service = (): ImmutableTagAdmin => {
    if (rules === null)
      throw new RegistryError('UNSUPPORTED', 'immutable tags are not available on this server', {
        status: 503,
      });
    return rules;
  };

  api.get<NsParams>('/namespaces/:ns/immutable-tags', async (request, reply) =>
    sendJson(reply, 200, await service().list(actorOf(request), request.params.ns, pageQuery(request))),
  );
  api.post<NsParams>('/namespaces/:ns/immutable-tags', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, ruleCreate);
    return sendJson(
      reply,
      201,
      await service().add(actor, request.params.ns, {
        tagGlob: body.tagGlob,
        ...(body.repositoryGlob !== undefined ? { repositoryGlob: body.repositoryGlob } : {}),
      }),
    );
  });
  api.delete<RuleParams>('/namespaces/:ns/immutable-tags/:id', async (request, reply) => {
    const actor = actorOf(request);
    const { ns, id } = request.params;
    if (!/^[1-9]\d{0,14}$/.test(id)) throw badRequest('the rule id must be a positive whole number', 'id');
    await service().remove(actor, ns, Number(id));
    return sendNoContent(reply);
  });
}
