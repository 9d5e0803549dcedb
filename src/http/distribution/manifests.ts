/** `GET|HEAD|PUT|DELETE /v2/<name>/manifests/<reference>` */
import type { FastifyRequest } from 'fastify';
import { ManifestUnknownError, PayloadTooLargeError } from '../../oci/errors.ts';
import { baseMediaType } from '../../oci/media-types.ts';
import { parseReference } from '../../oci/reference.ts';
import { queryParams } from '../headers.ts';
import { readBody } from '../plugins/raw-body.ts';
import { routePath } from '../routes.ts';
import { eventContextOf } from './event-context.ts';
import type { Handler, MethodTable } from './context.ts';

/**
 * True when the client's Accept list admits `mediaType`. No Accept header, a wildcard (`*\/*`, `application/*`)
 * or the exact type admit it. A list that excludes the stored type gets 404, as distribution answers.
 */
export function accepts(request: FastifyRequest, mediaType: string): boolean {
  const header = request.headers.accept;
  if (header === undefined || header.trim() === '') return true;
  const [type] = mediaType.split('/');
  for (const part of header.split(',')) {
    const t = part.split(';')[0]?.trim().toLowerCase();
    if (t === undefined || t === '') continue;
    if (t === '*/*' || t === mediaType || t === `${type}/*`) return true;
  }
  return false;
}

function matchesEtag(request: FastifyRequest, digest: string): boolean {
  const header = request.headers['if-none-match'];
  if (header === undefined) return false;
  return header.split(',').some((v) => {
    const tag = v.trim().replace(/^W\//, '').replace(/^"|"$/g, '');
    return tag === digest || tag === '*';
  });
}

const fetchManifest: Handler = async ({ request, reply, params, registry, caller }) => {
  const reference = parseReference(params.reference as string, false);
  const manifest = await registry.manifests.get(params.name, reference);
  if (!accepts(request, manifest.mediaType)) {
    throw new ManifestUnknownError(`manifest is a ${manifest.mediaType}, which the Accept header excludes`);
  }
  reply.headers({
    'Content-Type': manifest.mediaType,
    'Docker-Content-Digest': manifest.digest,
    ETag: `"${manifest.digest}"`,
    'Content-Length': String(manifest.size),
  });
  if (manifest.warning !== undefined) reply.header('Warning', manifest.warning);
  if (matchesEtag(request, manifest.digest)) {
    reply.removeHeader('Content-Length');
    return reply.code(304).send();
  }
  if (request.method === 'HEAD') return reply.code(200).send();
  registry.manifests.recordPull(manifest, reference, () => eventContextOf(request, caller));
  return reply.code(200).send(manifest.payload);
};

export const manifestRoutes: MethodTable = {
  GET: fetchManifest,
  HEAD: fetchManifest,
  async PUT({ request, reply, params, registry, urls, access, caller }) {
    const reference = parseReference(params.reference as string, true);
    const limit = registry.deps.options.maxManifestSize;
    const tooLarge = (): Error => new PayloadTooLargeError(`manifest is larger than ${limit} bytes`);
    const declared = Number(request.headers['content-length']);
    if (Number.isFinite(declared) && declared > limit) throw tooLarge();
    const body = await readBody(request, limit, tooLarge);
    const result = await registry.manifests.put({
      repository: params.name,
      reference,
      body,
      contentType: baseMediaType(request.headers['content-type']),
      tags: queryParams(request.query, 'tag'),
      context: eventContextOf(request, caller),
      // Moving an existing tag needs more than push (the maintainer role); an open registry skips the lookup.
      ...(access.enabled
        ? {
            beforeTagMove: (tag: string) =>
              access.require(request, caller, {
                kind: 'repository',
                name: params.name,
                actions: ['overwrite'],
                target: `${params.name}:${tag}`,
              }),
          }
        : {}),
    });
    reply.code(201).headers({
      Location: urls.url(request, routePath('manifest', { name: params.name, reference: result.digest })),
      'Docker-Content-Digest': result.digest,
      'Content-Length': '0',
    });
    if (result.subject) reply.header('OCI-Subject', result.subject);
    if (result.tags.length > 0) reply.header('OCI-Tag', result.tags);
    return reply.send();
  },
  async DELETE({ request, reply, params, registry, caller }) {
    const reference = parseReference(params.reference as string, false);
    await registry.manifests.delete(params.name, reference, eventContextOf(request, caller));
    return reply.code(202).header('Content-Length', '0').send();
  },
};
