/**
 * Upload endpoints: `POST /v2/<name>/blobs/uploads/` (session, monolithic `?digest=`, mount `?mount=&from=`),
 * `PATCH|PUT|GET|DELETE /v2/<name>/blobs/uploads/<uuid>`.
 */
import { eventContextOf } from './event-context.ts';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { parseDigest } from '../../oci/digest.ts';
import { isValidRepositoryName } from '../../oci/reference.ts';
import { BlobUploadInvalidError, DigestInvalidError } from '../../oci/errors.ts';
import { type UploadBody, uploadRange } from '../../registry/uploads.ts';
import { contentLength, parseContentRange, queryParam } from '../headers.ts';
import { bodyStream, hasBody } from '../plugins/raw-body.ts';
import { routePath } from '../routes.ts';
import type { MethodTable, RouteContext } from './context.ts';

function uploadBody(request: FastifyRequest): UploadBody {
  return {
    stream: bodyStream(request),
    length: contentLength(request.headers['content-length']),
    range: parseContentRange(request.headers['content-range'] as string | undefined),
  };
}

/**
 * Who an upload session is bound to: the caller's identity (`user:alice`, `robot:robot$ci`) when access control is
 * on, else null (anyone may use any session, as in an open registry).
 */
function uploadOwner(ctx: RouteContext): string | null {
  if (!ctx.access.enabled) return null;
  const { kind, name } = ctx.caller.principal;
  return `${kind}:${name}`;
}

function sendSession(ctx: RouteContext, reply: FastifyReply, status: number, id: string, size: number): void {
  reply
    .code(status)
    .headers({
      Location: ctx.urls.url(ctx.request, routePath('upload', { name: ctx.params.name, uuid: id })),
      Range: uploadRange(size),
      'Docker-Upload-UUID': id,
      'Content-Length': '0',
    })
    .send();
}

function sendCreated(ctx: RouteContext, digest: string): void {
  ctx.reply
    .code(201)
    .headers({
      Location: ctx.urls.url(ctx.request, routePath('blob', { name: ctx.params.name, digest })),
      'Docker-Content-Digest': digest,
      'Content-Length': '0',
    })
    .send();
}

export const uploadStartRoutes: MethodTable = {
  async POST(ctx) {
    const { request, params, registry } = ctx;
    const mount = queryParam(request.query, 'mount');
    const digestParam = queryParam(request.query, 'digest');
    if (mount !== undefined) {
      const digest = parseDigest(mount).digest;
      const from = queryParam(request.query, 'from');
      // A malformed `from` cannot name a readable repository: fall back to a normal upload, as for any failed mount.
      // Mounting reads `from`: the caller must be allowed to pull there (anywhere, when `from` is absent and
      // access control is on, mounting is not attempted).
      const mayRead =
        from !== undefined
          ? isValidRepositoryName(from) && (await ctx.access.can(ctx.caller, from, 'pull'))
          : !ctx.access.enabled;
      if (mayRead) {
        const link = await registry.uploads.mount(
          params.name,
          digest,
          from,
          eventContextOf(request, ctx.caller),
        );
        if (link) return sendCreated(ctx, digest);
      }
    } else if (digestParam !== undefined) {
      const digest = parseDigest(digestParam).digest;
      const link = await registry.uploads.uploadWhole(
        params.name,
        digest,
        uploadBody(request),
        eventContextOf(request, ctx.caller),
      );
      return sendCreated(ctx, link.digest);
    } else if (hasBody(request)) {
      throw new BlobUploadInvalidError('a POST with a body must carry ?digest=');
    }
    const session = await registry.uploads.start(params.name, uploadOwner(ctx));
    sendSession(ctx, ctx.reply, 202, session.id, 0);
  },
};

export const uploadRoutes: MethodTable = {
  async GET(ctx) {
    const session = await ctx.registry.uploads.get(
      ctx.params.name,
      ctx.params.uuid as string,
      uploadOwner(ctx),
    );
    sendSession(ctx, ctx.reply, 204, session.id, session.size);
  },
  async PATCH(ctx) {
    const session = await ctx.registry.uploads.append(
      ctx.params.name,
      ctx.params.uuid as string,
      uploadOwner(ctx),
      uploadBody(ctx.request),
    );
    sendSession(ctx, ctx.reply, 202, session.id, session.size);
  },
  async PUT(ctx) {
    const { request, params, registry } = ctx;
    const digest = queryParam(request.query, 'digest');
    if (digest === undefined) {
      // Validate the session first so an unknown upload is still BLOB_UPLOAD_UNKNOWN.
      await registry.uploads.get(params.name, params.uuid as string, uploadOwner(ctx));
      throw new DigestInvalidError('PUT must carry ?digest=');
    }
    const body = hasBody(request) ? uploadBody(request) : null;
    const link = await registry.uploads.complete(
      params.name,
      params.uuid as string,
      uploadOwner(ctx),
      digest,
      body,
      eventContextOf(request, ctx.caller),
    );
    sendCreated(ctx, link.digest);
  },
  async DELETE(ctx) {
    await ctx.registry.uploads.cancel(ctx.params.name, ctx.params.uuid as string, uploadOwner(ctx));
    ctx.reply.code(204).send();
  },
};
