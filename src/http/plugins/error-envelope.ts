/**
 * The one place that writes the spec's error envelope `{"errors":[{"code","message","detail"}]}`. Handlers throw
 * RegistryError subclasses; framework errors (bad URL, body too large...), a full disk (507) and anything
 * unexpected are mapped here, the latter to 500 UNKNOWN with the cause logged but never sent.
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type ErrorCode, InsufficientStorageError, RegistryError } from '../../oci/errors.ts';
import { isClientAbort } from '../../registry/client-abort.ts';
import { isStorageFull } from '../../registry/storage-full.ts';

export function errorBody(code: ErrorCode, message: string, detail?: unknown): string {
  return JSON.stringify({ errors: [{ code, message, ...(detail !== undefined ? { detail } : {}) }] });
}

/** Sends `error` as the envelope. Safe to call from any hook or handler. */
export function sendError(reply: FastifyReply, error: RegistryError): void {
  reply.code(error.status).headers(error.headers).type('application/json; charset=utf-8');
  if (reply.request.method === 'HEAD') {
    reply.header('content-length', '0').send();
    return;
  }
  reply.send(errorBody(error.code, error.message, error.detail));
}

/** Maps an error of any kind to a RegistryError. */
export function toRegistryError(error: unknown, request: FastifyRequest): RegistryError {
  if (error instanceof RegistryError) return error;
  if (isClientAbort(error)) {
    request.log.debug({ err: error }, 'client went away mid-request');
    return new RegistryError('BLOB_UPLOAD_INVALID', 'the request body ended early');
  }
  if (isStorageFull(error)) {
    request.log.warn({ err: error }, 'storage full');
    return new InsufficientStorageError();
  }
  const fe = error as Partial<FastifyError> & { code?: string };
  switch (fe.code) {
    case 'FST_ERR_BAD_URL':
      return new RegistryError('NAME_INVALID', 'malformed request URL');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new RegistryError('SIZE_INVALID', 'request body too large', { status: 413 });
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new RegistryError('SIZE_INVALID', 'Content-Length does not match the body');
    default:
      break;
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new RegistryError('UNSUPPORTED', fe.message ?? 'bad request', { status: fe.statusCode });
  }
  request.log.error({ err: error }, 'unexpected error');
  return new RegistryError('UNKNOWN', 'internal server error');
}

/**
 * Requests Node's HTTP parser rejects before any route runs (malformed framing or Content-Length, unknown
 * methods, oversized headers): answer with the envelope on the raw socket, then close it.
 */
export function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  let status = 400;
  let code: ErrorCode = 'UNSUPPORTED';
  let message = 'malformed HTTP request';
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408;
    message = 'request timed out';
  } else if (error.code === 'HPE_HEADER_OVERFLOW') {
    status = 431;
    code = 'SIZE_INVALID';
    message = 'request headers too large';
  }
  const body = errorBody(code, message);
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nDocker-Distribution-API-Version: registry/2.0\r\n` +
        `Connection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

export function registerErrorEnvelope(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const e = toRegistryError(error, request);
    if (e.status >= 500) reply.header('connection', 'close');
    sendError(reply, e);
  });
  app.setNotFoundHandler((request, reply) => {
    sendError(
      reply,
      new RegistryError('UNSUPPORTED', `no route for ${request.method} ${request.url.split('?')[0]}`, {
        status: 404,
      }),
    );
  });
}
