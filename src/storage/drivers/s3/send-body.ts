import type { Readable } from 'node:stream';

/**
 * Runs `send`, a request whose body is `body`. The SDK pipes a stream body into the request without listening
 * for its errors: a failing body would crash the process with an unhandled 'error' event and leave the request
 * waiting for bytes that never come. So here the body's error aborts the request and becomes the rejection,
 * and the body is destroyed once the request is over (releasing the reads that feed it, on failure).
 */
export async function sendBody<T>(
  body: Uint8Array | Readable,
  send: (signal?: AbortSignal) => Promise<T>,
): Promise<T> {
  if (body instanceof Uint8Array) return send();
  const controller = new AbortController();
  let failure: unknown;
  const onError = (err: unknown) => {
    failure ??= err;
    controller.abort();
  };
  body.on('error', onError);
  try {
    return await send(controller.signal);
  } catch (err) {
    throw failure ?? err;
  } finally {
    body.destroy();
    // Late errors of the destroyed body (none are expected) must not go unhandled either.
    body.off('error', onError);
    body.on('error', () => undefined);
  }
}
