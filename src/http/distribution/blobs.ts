/** `GET|HEAD|DELETE /v2/<name>/blobs/<digest>` */
import { parseDigest } from '../../oci/digest.ts';
import { parseRangeHeader } from '../headers.ts';
import type { Handler, MethodTable, RouteContext } from './context.ts';
import { eventContextOf } from './event-context.ts';

const fetchBlob: Handler = async ({ request, reply, params, registry, caller }: RouteContext) => {
  const digest = parseDigest(params.digest as string).digest;
  const link = await registry.blobs.stat(params.name, digest, request.method === 'HEAD');
  if (request.method === 'GET' && link.size > 0) {
    // Clients follow the redirect (carrying their Range header) and read from the object storage directly.
    const redirect = await registry.blobs.redirectUrl(digest);
    if (redirect !== null) {
      registry.blobs.recordPull(params.name, link, () => eventContextOf(request, caller));
      return reply.code(307).headers({ Location: redirect, 'Docker-Content-Digest': digest }).send();
    }
  }
  const range = parseRangeHeader(request.headers.range, link.size);
  // Open before setting any header: when the bytes are missing the error response must not carry this blob's
  // digest and length. An empty blob has no bytes to read (and no valid range to ask storage for).
  const blob =
    request.method === 'HEAD' || link.size === 0
      ? null
      : await registry.blobs.open(params.name, digest, link.size, range ?? undefined);
  reply.headers({
    'Docker-Content-Digest': digest,
    'Accept-Ranges': 'bytes',
    ETag: `"${digest}"`,
    'Content-Type': 'application/octet-stream',
  });
  if (range) {
    reply.code(206).header('Content-Range', `bytes ${range.start}-${range.end}/${link.size}`);
    reply.header('Content-Length', String(range.end - range.start + 1));
  } else {
    reply.code(200).header('Content-Length', String(link.size));
  }
  if (request.method === 'HEAD') return reply.send();
  if (!range || range.start === 0)
    registry.blobs.recordPull(params.name, link, () => eventContextOf(request, caller));
  return reply.send(blob ? blob.body : Buffer.alloc(0));
};

export const blobRoutes: MethodTable = {
  GET: fetchBlob,
  HEAD: fetchBlob,
  async DELETE({ request, reply, params, registry, caller }) {
    const digest = parseDigest(params.digest as string).digest;
    await registry.blobs.delete(params.name, digest, eventContextOf(request, caller));
    reply.code(202).header('Content-Length', '0').send();
  },
};
