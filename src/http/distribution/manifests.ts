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
import { PullRefusedError, refusalOf } from '../../registry/pull-policy.ts';

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
  const policyWarnings = await checkPullPolicies(registry, access, request, caller, manifest, reference);
  reply.headers({
    'Content-Type': manifest.mediaType,
    'Docker-Content-Digest': manifest.digest,
    ETag: `"${manifest.digest}"`,
    'Content-Length': String(manifest.size),
  });
  const warnings = [manifest.warning, ...policyWarnings].filter((w): w is string => w !== undefined);
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
 * Applies the namespace's pull policies (signatures, vulnerabilities; see `registry/pull-policy.ts`) to a pull of
 * `manifest`: principals that may push to the repository pass (a signer or scanner must read what it checks).
 * Returns the Warning headers of warn decisions; a refusal is audited and thrown (412).
 */
async function checkPullPolicies(
  registry: Registry,
  access: AccessControl,
  request: FastifyRequest,
  caller: Caller,
  manifest: ManifestRecord,
  reference: Reference,
): Promise<string[]> {
  const policies = registry.deps.pullPolicies ?? [];
  if (policies.length === 0) return [];
  let canPush: Promise<boolean> | undefined;
  // Whether the principal may push by its rights, not by the token's scope: a client pulling asks for a pull
  // token even when its principal may push.
  const bypass = () =>
    (canPush ??= access.enabled
      ? access.principalCan(caller, manifest.repository, 'push')
      : Promise.resolve(false));
  const warnings: string[] = [];
  for (const policy of policies) {
    try {
      const decision = await policy.checkPull(manifest, bypass);
      if (decision.outcome === 'warn') warnings.push(decision.warning);
    } catch (e) {
      if (e instanceof PullRefusedError) {
        refusalOf.set(request, e.reason);
        await access.deps.audit.record({
          actor: caller.principal,
          action: 'pull',
          target: `${manifest.repository}@${manifest.digest}`,
          sourceAddr: request.ip,
          success: false,
          detail: {
            reason: e.reason,
            reference: reference.kind === 'tag' ? reference.tag : reference.digest,
          },
        });
      }
      throw e;
    }
  }
  return warnings;
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
