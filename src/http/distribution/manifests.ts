/** `GET|HEAD|PUT|DELETE /v2/<name>/manifests/<reference>` */
import type { FastifyRequest } from 'fastify';
import { ManifestUnknownError, PayloadTooLargeError } from '../../oci/errors.ts';
import { baseMediaType } from '../../oci/media-types.ts';
import { parseReference, type Reference } from '../../oci/reference.ts';
import { queryParams } from '../headers.ts';
import { readBody } from '../plugins/raw-body.ts';
import { routePath } from '../routes.ts';
import { eventContextOf } from './event-context.ts';
import type { Handler, MethodTable } from './context.ts';
import type { AccessControl, Caller } from '../auth/access-control.ts';
import type { ManifestRecord } from '../../metadata/store.ts';
import type { Registry } from '../../registry/registry.ts';
import { SignatureRequiredError } from '../../signing/service.ts';

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

const fetchManifest: Handler = async ({ request, reply, params, registry, caller, access }) => {
  const reference = parseReference(params.reference as string, false);
  const manifest = await registry.manifests.get(params.name, reference);
  if (!accepts(request, manifest.mediaType)) {
    throw new ManifestUnknownError(`manifest is a ${manifest.mediaType}, which the Accept header excludes`);
  }
  const signatureWarning = await checkSignature(registry, access, request, caller, manifest, reference);
  reply.headers({
    'Content-Type': manifest.mediaType,
    'Docker-Content-Digest': manifest.digest,
    ETag: `"${manifest.digest}"`,
    'Content-Length': String(manifest.size),
  });
  const warnings = [manifest.warning, signatureWarning].filter((w): w is string => w !== undefined);
  if (warnings.length > 0) reply.header('Warning', warnings);
  if (matchesEtag(request, manifest.digest)) {
    reply.removeHeader('Content-Length');
    return reply.code(304).send();
  }
  if (request.method === 'HEAD') return reply.code(200).send();
  registry.manifests.recordPull(manifest, reference, () => eventContextOf(request, caller));
  return reply.code(200).send(manifest.payload);
};

/**
 * Applies the namespace's signature policy to a pull of `manifest` (see `SignatureService.checkPull`): principals
 * that may push to the repository pass (a signer must read what it signs). Returns the Warning header of `warn`
 * mode; a refusal under `enforce` is audited and thrown (412).
 */
async function checkSignature(
  registry: Registry,
  access: AccessControl,
  request: FastifyRequest,
  caller: Caller,
  manifest: ManifestRecord,
  reference: Reference,
): Promise<string | undefined> {
  const signatures = registry.deps.signatures;
  if (signatures === undefined) return undefined;
  const bypass = async () => access.enabled && (await access.can(caller, manifest.repository, 'push'));
  try {
    const decision = await signatures.checkPull(manifest, bypass);
    return decision.outcome === 'warn' ? decision.warning : undefined;
  } catch (e) {
    if (e instanceof SignatureRequiredError) {
      await access.deps.audit.record({
        actor: caller.principal,
        action: 'pull',
        target: `${manifest.repository}@${manifest.digest}`,
        sourceAddr: request.ip,
        success: false,
        detail: {
          reason: 'unsigned image',
          reference: reference.kind === 'tag' ? reference.tag : reference.digest,
        },
      });
    }
    throw e;
  }
}

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
