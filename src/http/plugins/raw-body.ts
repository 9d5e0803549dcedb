/**
 * Request bodies are never parsed by the framework: every content type is handed to handlers as the raw,
 * unconsumed stream (blobs are bytes whatever their Content-Type says; manifests are read as exact bytes).
 * A body that stops arriving is cut after `bodyIdleTimeout` (see `watchBodyIdle`).
 */
import type { IncomingMessage } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';

export interface RawBodyOptions {
  /** Milliseconds without a received body byte, while the server waits for one, before the connection is closed. */
  readonly bodyIdleTimeout: number;
}

export function registerRawBody(app: FastifyInstance, options: RawBodyOptions): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request, payload, done) => {
    watchBodyIdle(payload as IncomingMessage, options.bodyIdleTimeout, request.log);
    done(null, payload);
  });
}

/**
 * Closes the connection of `body` when no byte of it arrives for `idleMs` while the server is waiting for bytes.
 * The handler reading the body then fails as if the client had gone away, so whatever the request held (an
 * upload's lock) is released and the client can resume from the last acknowledged byte.
 *
 * Why a watchdog rather than Node's socket timeout: the socket timeout also runs while the server itself holds
 * the body back (storage slower than the client pauses the socket) and while it works after the body (hashing or
 * committing a large upload), and Node reuses it for keep-alive. Here only the client's silence counts: a tick
 * every quarter of `idleMs` compares the socket's byte count with the last tick's, and bytes still buffered for
 * the handler mean the wait is ours. No work is done per chunk. The watch ends with the body.
 */
function watchBodyIdle(body: IncomingMessage, idleMs: number, log: FastifyBaseLogger): void {
  const socket = body.socket;
  let bytes = socket.bytesRead;
  let lastProgress = Date.now();
  const timer = setInterval(
    () => {
      if (body.complete || body.destroyed) {
        stop();
        return;
      }
      const now = Date.now();
      if (socket.bytesRead !== bytes || body.readableLength > 0) {
        bytes = socket.bytesRead;
        lastProgress = now;
      } else if (now - lastProgress >= idleMs) {
        stop();
        log.info({ idleMs }, 'request body stalled: closing the connection');
        socket.destroy();
      }
    },
    Math.max(1, Math.floor(idleMs / 4)),
  );
  timer.unref();
  const stop = (): void => {
    clearInterval(timer);
    body.off('end', stop).off('close', stop);
  };
  body.once('end', stop).once('close', stop);
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
