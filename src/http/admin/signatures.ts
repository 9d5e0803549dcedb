/**
 * Admin API: a namespace's signature trust (`/namespaces/{ns}/signatures/trust`), recomputing its verdicts, and
 * the verdicts about one manifest (`/repositories/{name}/signatures?reference=`, the name one path segment with
 * its slashes URL-encoded, `team%2Fapp`, as the other repository routes take it).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { SignatureAdmin } from '../../admin/signature-admin.ts';
import { actorOf, badRequest, jsonBody, sendJson, stringQuery } from './request.ts';

/** The document is checked by `SignatureAdmin` (which names the offending field); here only its shape as JSON. */
const trustBody = z.record(z.string(), z.unknown());

type NsParams = { Params: { ns: string } };
type RepositoryParams = { Params: { name: string } };

export function registerSignatureRoutes(api: FastifyInstance, signatures: SignatureAdmin): void {
  api.get<NsParams>('/namespaces/:ns/signatures/trust', async (request, reply) =>
    sendJson(reply, 200, await signatures.getTrust(actorOf(request), request.params.ns)),
  );
  api.put<NsParams>('/namespaces/:ns/signatures/trust', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, trustBody);
    return sendJson(reply, 200, await signatures.setTrust(actor, request.params.ns, body));
  });
  api.delete<NsParams>('/namespaces/:ns/signatures/trust', async (request, reply) =>
    sendJson(reply, 200, await signatures.removeTrust(actorOf(request), request.params.ns)),
  );
  api.post<NsParams>('/namespaces/:ns/signatures/recompute', async (request, reply) =>
    sendJson(reply, 200, await signatures.recompute(actorOf(request), request.params.ns)),
  );
  api.get<RepositoryParams>('/repositories/:name/signatures', async (request, reply) => {
    const reference = stringQuery(request, 'reference');
    if (reference === undefined) throw badRequest('reference (a tag or a digest) is required', 'reference');
    return sendJson(reply, 200, await signatures.verdicts(actorOf(request), request.params.name, reference));
  });
}
