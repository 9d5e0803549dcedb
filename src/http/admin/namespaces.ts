/** Admin API: namespaces, their members and their repository rules. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AdminService } from '../../admin/admin-service.ts';
import type { Visibility } from '../../metadata/auth-store.ts';
import { actorOf, badRequest, jsonBody, pageQuery, sendJson, sendNoContent } from './request.ts';

const namespaceCreate = z
  .object({
    name: z.string(),
    visibility: z.string().optional(),
    description: z.string().optional(),
  })
  .strict();

const namespaceUpdate = z
  .object({
    visibility: z.string().optional(),
    description: z.string().optional(),
  })
  .strict();

const memberSet = z.object({ role: z.string() }).strict();

const ruleCreate = z
  .object({
    pattern: z.string(),
    kind: z.string(),
    principal: z.string(),
    role: z.string(),
  })
  .strict();

type NsParams = { Params: { ns: string } };
type MemberParams = { Params: { ns: string; kind: string; principal: string } };
type RuleParams = { Params: { ns: string; id: string } };

export function registerNamespaceRoutes(api: FastifyInstance, admin: AdminService): void {
  api.get('/namespaces', async (request, reply) =>
    sendJson(reply, 200, await admin.listNamespaces(actorOf(request), pageQuery(request))),
  );
  api.post('/namespaces', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, namespaceCreate);
    return sendJson(
      reply,
      201,
      await admin.createNamespace(actor, {
        name: body.name,
        ...(body.visibility !== undefined ? { visibility: body.visibility as Visibility } : {}),
        ...(body.description !== undefined ? { description: body.description } : {}),
      }),
    );
  });
  api.get<NsParams>('/namespaces/:ns', async (request, reply) =>
    sendJson(reply, 200, await admin.getNamespace(actorOf(request), request.params.ns)),
  );
  api.patch<NsParams>('/namespaces/:ns', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, namespaceUpdate);
    return sendJson(
      reply,
      200,
      await admin.updateNamespace(actor, request.params.ns, {
        ...(body.visibility !== undefined ? { visibility: body.visibility as Visibility } : {}),
        ...(body.description !== undefined ? { description: body.description } : {}),
      }),
    );
  });
  api.delete<NsParams>('/namespaces/:ns', async (request, reply) => {
    await admin.deleteNamespace(actorOf(request), request.params.ns);
    return sendNoContent(reply);
  });

  // --- members ---
  api.get<NsParams>('/namespaces/:ns/members', async (request, reply) =>
    sendJson(reply, 200, await admin.listMembers(actorOf(request), request.params.ns, pageQuery(request))),
  );
  api.put<MemberParams>('/namespaces/:ns/members/:kind/:principal', async (request, reply) => {
    const actor = actorOf(request);
    const { ns, kind, principal } = request.params;
    const body = await jsonBody(request, memberSet);
    return sendJson(reply, 200, await admin.setMember(actor, ns, kind, principal, body.role));
  });
  api.delete<MemberParams>('/namespaces/:ns/members/:kind/:principal', async (request, reply) => {
    const { ns, kind, principal } = request.params;
    await admin.removeMember(actorOf(request), ns, kind, principal);
    return sendNoContent(reply);
  });

  // --- rules ---
  api.get<NsParams>('/namespaces/:ns/rules', async (request, reply) =>
    sendJson(reply, 200, await admin.listRules(actorOf(request), request.params.ns, pageQuery(request))),
  );
  api.post<NsParams>('/namespaces/:ns/rules', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, ruleCreate);
    return sendJson(reply, 201, await admin.addRule(actor, request.params.ns, body));
  });
  api.delete<RuleParams>('/namespaces/:ns/rules/:id', async (request, reply) => {
    const actor = actorOf(request);
    const { ns, id } = request.params;
    if (!/^[1-9]\d{0,14}$/.test(id)) throw badRequest('the rule id must be a positive whole number', 'id');
    await admin.deleteRule(actor, Number(id), ns);
    return sendNoContent(reply);
  });
}
