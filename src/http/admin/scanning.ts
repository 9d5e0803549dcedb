/**
 * Admin API of vulnerability scanning: a namespace's policy (`/namespaces/{ns}/scanning/policy`), the scan report
 * of one manifest (`/repositories/{name}/scan?reference=`, JSON or CSV, with filters), requesting a scan (POST on
 * the same path), and the external scanners (`/scanners`). The repository name is one path segment with its
 * slashes URL-encoded (`team%2Fapp`), as the other repository routes take it.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { findingsCsv, type FindingFilter, type ScanAdmin } from '../../admin/scan-admin.ts';
import { SBOM_MEDIA_TYPES } from '../../scanning/sbom/documents.ts';
import { SEVERITY_ORDER, type FindingSeverity } from '../../scanning/report.ts';
import { actorOf, badRequest, boolQuery, jsonBody, sendJson, sendNoContent, stringQuery } from './request.ts';

/** The policy is checked by `ScanAdmin` (which names the offending field); here only its shape as JSON. */
const policyBody = z.record(z.string(), z.unknown());
const scannerBody = z
  .object({
    url: z.string().min(1).max(2000),
    /** The `Authorization` header value the adapter expects (`Bearer …`, `Basic …`), if any. */
    authorization: z.string().min(1).max(8000).optional(),
  })
  .strict();

type NsParams = { Params: { ns: string } };
type RepositoryParams = { Params: { name: string } };
type NameParams = { Params: { name: string } };

function referenceQuery(request: FastifyRequest): string {
  const reference = stringQuery(request, 'reference');
  if (reference === undefined) throw badRequest('reference (a tag or a digest) is required', 'reference');
  return reference;
}

function filterQuery(request: FastifyRequest): FindingFilter {
  const severity = stringQuery(request, 'severity');
  if (severity !== undefined && !SEVERITY_ORDER.includes(severity as FindingSeverity)) {
    throw badRequest(`severity must be one of ${SEVERITY_ORDER.join(', ')}`, 'severity');
  }
  const fixable = boolQuery(request, 'fixable');
  const pkg = stringQuery(request, 'package');
  const id = stringQuery(request, 'id');
  const packages = boolQuery(request, 'packages');
  return {
    ...(severity !== undefined ? { severity: severity as FindingSeverity } : {}),
    ...(fixable !== undefined ? { fixable } : {}),
    ...(pkg !== undefined ? { package: pkg } : {}),
    ...(id !== undefined ? { id } : {}),
    ...(packages !== undefined ? { packages } : {}),
  };
}

/** CSV when asked by `?format=csv` or an Accept header preferring `text/csv`. */
function wantsCsv(request: FastifyRequest): boolean {
  const format = stringQuery(request, 'format');
  if (format !== undefined && format !== 'csv' && format !== 'json') {
    throw badRequest('format must be json or csv', 'format');
  }
  if (format !== undefined) return format === 'csv';
  return /^\s*text\/csv\b/.test(request.headers.accept ?? '');
}

export function registerScanningRoutes(api: FastifyInstance, scanning: ScanAdmin): void {
  api.get<NsParams>('/namespaces/:ns/scanning/policy', async (request, reply) =>
    sendJson(reply, 200, await scanning.getPolicy(actorOf(request), request.params.ns)),
  );
  api.put<NsParams>('/namespaces/:ns/scanning/policy', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, policyBody);
    return sendJson(reply, 200, await scanning.setPolicy(actor, request.params.ns, body));
  });
  api.delete<NsParams>('/namespaces/:ns/scanning/policy', async (request, reply) =>
    sendJson(reply, 200, await scanning.removePolicy(actorOf(request), request.params.ns)),
  );
  api.get<RepositoryParams>('/repositories/:name/scan', async (request, reply) => {
    const reference = referenceQuery(request);
    const filter = filterQuery(request);
    const csv = wantsCsv(request);
    const view = await scanning.report(actorOf(request), request.params.name, reference, filter);
    if (!csv) return sendJson(reply, 200, view);
    return reply
      .code(200)
      .header('Cache-Control', 'no-store')
      .header('Content-Disposition', `attachment; filename="scan-${view.digest.replace(':', '-')}.csv"`)
      .type('text/csv; charset=utf-8; header=present')
      .send(findingsCsv(view));
  });
  api.post<RepositoryParams>('/repositories/:name/scan', async (request, reply) => {
    const reference = referenceQuery(request);
    const wait = boolQuery(request, 'wait') ?? false;
    const view = await scanning.scan(actorOf(request), request.params.name, reference, wait);
    return sendJson(reply, wait ? 200 : 202, view);
  });
  api.get<RepositoryParams>('/repositories/:name/sbom', async (request, reply) => {
    const reference = referenceQuery(request);
    const format = stringQuery(request, 'format') ?? 'spdx';
    if (format !== 'spdx' && format !== 'cyclonedx')
      throw badRequest('format must be spdx or cyclonedx', 'format');
    const document = await scanning.sbomDocument(actorOf(request), request.params.name, reference, format);
    return reply
      .code(200)
      .header('Cache-Control', 'no-store')
      .type(`${SBOM_MEDIA_TYPES[format]}; charset=utf-8`)
      .send(JSON.stringify(document));
  });
  api.get('/scanners', async (request, reply) =>
    sendJson(reply, 200, { scanners: await scanning.listScanners(actorOf(request)) }),
  );
  api.put<NameParams>('/scanners/:name', async (request, reply) => {
    const actor = actorOf(request);
    const body = await jsonBody(request, scannerBody);
    return sendJson(
      reply,
      200,
      await scanning.setScanner(actor, request.params.name, body.url, body.authorization ?? null),
    );
  });
  api.delete<NameParams>('/scanners/:name', async (request, reply) => {
    await scanning.removeScanner(actorOf(request), request.params.name);
    return sendNoContent(reply);
  });
}
