/**
 * Request bodies are never parsed by the framework: every content type is handed to handlers as the raw,
 * unconsumed stream (blobs are bytes whatever their Content-Type says; manifests are read as exact bytes).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';

export function registerRawBody(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
}

/** The request body as a stream (the raw request when the framework saw no body). */
export function bodyStream(request: FastifyRequest): Readable {
  const body = request.body as Readable | undefined;
  return body && typeof (body as Readable).pipe === 'function' ? body : request.raw;
}

/** True when the request announces a body (a positive Content-Length or a chunked transfer encoding). */
export function hasBody(request: FastifyRequest): boolean {
  const len = request.headers['content-length'];
  if (len !== undefined) return Number(len) > 0;
  return request.headers['transfer-encoding'] !== undefined;
}

/**
 * Reads the whole body, failing with `onTooLarge()` past `limit` bytes (for manifests, never for blobs). On
 * overflow the rest of the body is left to Node, which discards it, so the error response still gets through.
 */
export function readBody(request: FastifyRequest, limit: number, onTooLarge: () => Error): Promise<Buffer> {
  const stream = bodyStream(request);
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > limit) {
        cleanup();
        stream.resume();
        reject(onTooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks, total));
    };
    const onError = (e: Error): void => {
      cleanup();
      reject(e);
    };
    const cleanup = (): void => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
  });
}
