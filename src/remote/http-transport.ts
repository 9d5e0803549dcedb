/**
 * One HTTP exchange with a remote registry on `node:http`/`node:https` (not global fetch: a custom CA bundle,
 * `insecure`, and exact control of streaming and timeouts). Keep-alive agents live per transport, so one per
 * client. No redirects, no authentication, no fallback: the registry client layers those on top.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { rootCertificates } from 'node:tls';
import { RemoteError } from './registry-client.ts';

export const DEFAULT_TIMEOUT_MS = 30_000;

/** A request body: bytes in memory (repeatable) or a stream of exactly `length` bytes (sent once). */
export type RequestBody =
  | { readonly kind: 'buffer'; readonly bytes: Buffer }
  | { readonly kind: 'stream'; readonly stream: Readable; readonly length: number };

export interface TransportRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: RequestBody;
  readonly signal?: AbortSignal;
}

export interface TransportResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The URL that answered (the request's). */
  readonly url: URL;
  /** The body; consume it (`readBody`, `drain`) or destroy it. */
  readonly body: IncomingMessage;
}

export interface TransportOptions {
  readonly caBundle?: string | null;
  readonly insecure?: boolean;
  readonly timeoutMs?: number;
}

/** Network error codes meaning the peer could not be reached or dropped the connection. */
function networkError(err: unknown, url: URL): RemoteError {
  if (err instanceof RemoteError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const message = err instanceof Error ? err.message : String(err);
  return new RemoteError(`${url.origin}: ${code ? `${code} ` : ''}${message}`, 'network', { cause: err });
}

function isAbort(err: unknown, signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true || (err instanceof Error && err.name === 'AbortError');
}

export class HttpTransport {
  readonly timeoutMs: number;
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;

  constructor(options: TransportOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.httpAgent = new http.Agent({ keepAlive: true });
    this.httpsAgent = new https.Agent({
      keepAlive: true,
      // `ca` replaces the default roots: keep the system's and add the private CA.
      ...(options.caBundle ? { ca: [...rootCertificates, options.caBundle] } : {}),
      rejectUnauthorized: options.insecure !== true,
    });
  }

  /**
   * Sends one request and resolves when the response headers arrived. Rejects with a RemoteError (`network`,
   * `timeout`) when the remote cannot be reached, does not answer in time or drops the connection; with the
   * signal's reason (an AbortError) when the caller aborted; with the body stream's own error when it failed.
   *
   * Timeouts: the connection and the response headers must come within `timeoutMs`; while a streamed body is
   * being sent, the socket may not stay idle for longer, and the headers clock restarts once it is all sent
   * (the remote may verify a large blob before it answers).
   */
  send(request: TransportRequest): Promise<TransportResponse> {
    const { url, body, signal } = request;
    return new Promise<TransportResponse>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const headers: Record<string, string> = { ...request.headers };
      if (body?.kind === 'buffer') headers['content-length'] = String(body.bytes.length);
      else if (body?.kind === 'stream') headers['content-length'] = String(body.length);
      else if (request.method === 'POST' || request.method === 'PUT') headers['content-length'] = '0';
      const isHttps = url.protocol === 'https:';
      const req = (isHttps ? https : http).request(url, {
        method: request.method,
        headers,
        agent: isHttps ? this.httpsAgent : this.httpAgent,
      });
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const fail = (err: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        req.destroy();
        if (body?.kind === 'stream') body.stream.destroy();
        reject(isAbort(err, signal) ? (signal?.reason ?? err) : err);
      };
      const onAbort = (): void => fail(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      const armHeadersTimer = (): void => {
        clearTimeout(timer);
        timer = setTimeout(
          () =>
            fail(
              new RemoteError(
                `${url.origin}: no response to ${request.method} in ${this.timeoutMs} ms`,
                'timeout',
              ),
            ),
          this.timeoutMs,
        );
      };
      req.on('error', (err) => fail(networkError(err, url)));
      req.on('response', (res) => {
        if (settled) {
          res.destroy();
          return;
        }
        settled = true;
        clearTimeout(timer);
        req.setTimeout(0);
        if (body?.kind === 'stream' && !req.writableFinished) {
          // The remote answered before taking the whole body (a refusal): stop sending, and drop the
          // connection once the answer is read, since it is mid-request.
          body.stream.unpipe();
          body.stream.destroy();
          res.once('close', () => req.destroy());
        }
        // From here the signal destroys the body; the reader sees the reason as the stream's error.
        signal?.removeEventListener('abort', onAbort);
        if (signal) {
          const abortBody = (): void => {
            res.destroy(signal.reason as Error);
          };
          signal.addEventListener('abort', abortBody, { once: true });
          res.once('close', () => signal.removeEventListener('abort', abortBody));
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, url, body: res });
      });
      if (body?.kind === 'stream') {
        // While the body goes out, a socket idle for timeoutMs means a stalled remote; afterwards the headers
        // clock takes over.
        armHeadersTimer();
        req.once('socket', (socket) => {
          const connected = (): void => {
            clearTimeout(timer);
            req.setTimeout(this.timeoutMs, () =>
              fail(new RemoteError(`${url.origin}: upload stalled for ${this.timeoutMs} ms`, 'timeout')),
            );
          };
          if (socket.connecting) socket.once(isHttps ? 'secureConnect' : 'connect', connected);
          else connected();
        });
        req.once('finish', () => {
          if (settled) return;
          req.setTimeout(0);
          armHeadersTimer();
        });
        const counted = body.stream.pipe(exactLength(body.length));
        body.stream.once('error', (err) => fail(err));
        counted.once('error', (err) => fail(err));
        counted.pipe(req);
      } else {
        armHeadersTimer();
        req.end(body?.kind === 'buffer' ? body.bytes : undefined);
      }
    });
  }

  /** Closes idle keep-alive connections and refuses to keep more. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/** A pass-through that errors when the stream carries more or fewer than `length` bytes. */
function exactLength(length: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, callback: TransformCallback) {
      seen += chunk.length;
      if (seen > length) callback(new Error(`the body has more than the ${length} bytes announced`));
      else callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      callback(seen === length ? null : new Error(`the body ended after ${seen} of ${length} bytes`));
    },
  });
}

/**
 * Reads a whole response body, at most `maxBytes` (a `protocol` RemoteError beyond); silence for `timeoutMs`
 * is a `timeout` RemoteError, a dropped connection a `network` one.
 */
export async function readBody(res: TransportResponse, maxBytes: number, timeoutMs: number): Promise<Buffer> {
  const announced = Number(res.headers['content-length']);
  if (Number.isFinite(announced) && announced > maxBytes) {
    res.body.destroy();
    throw new RemoteError(
      `${res.url.origin}: response of ${announced} bytes exceeds the limit of ${maxBytes}`,
      'protocol',
    );
  }
  const body = watchSilence(res, timeoutMs);
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of body) {
      total += (chunk as Buffer).length;
      if (total > maxBytes) {
        throw new RemoteError(
          `${res.url.origin}: response exceeds the limit of ${maxBytes} bytes`,
          'protocol',
        );
      }
      chunks.push(chunk as Buffer);
    }
  } catch (err) {
    body.destroy();
    if (err instanceof RemoteError || isAbort(err, undefined)) throw err;
    throw networkError(err, res.url);
  }
  return Buffer.concat(chunks);
}

/** Reads and discards a (small) body so the connection can be reused; never throws. */
export async function drain(res: TransportResponse, timeoutMs: number): Promise<void> {
  try {
    await readBody(res, 64 * 1024, timeoutMs);
  } catch {
    // the connection is dropped instead
  }
}

/**
 * The response body as a stream that errors (RemoteError) unless it carries exactly `size` bytes when
 * `size` is given: a connection that drops or a body that ends short never looks like a complete one. The
 * remote staying silent for `timeoutMs` while the reader waits is a `timeout`; a reader that stops reading
 * (backpressure) does not count as silence.
 */
export function watchSilence(res: TransportResponse, timeoutMs: number, size?: number): Readable {
  const source = res.body;
  let received = 0;
  let timer: NodeJS.Timeout | undefined;
  let done = false;
  const origin = res.url.origin;
  const out = new Readable({
    read() {
      arm();
      source.resume();
    },
    destroy(err, callback) {
      done = true;
      clearTimeout(timer);
      source.destroy();
      callback(err);
    },
  });
  const fail = (err: Error): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    out.destroy(err);
  };
  function arm(): void {
    if (done) return;
    clearTimeout(timer);
    timer = setTimeout(
      () => fail(new RemoteError(`${origin}: the body stayed silent for ${timeoutMs} ms`, 'timeout')),
      timeoutMs,
    );
  }
  source.on('data', (chunk: Buffer) => {
    if (done) return;
    received += chunk.length;
    if (size !== undefined && received > size) {
      fail(new RemoteError(`${origin}: the body is longer than the ${size} bytes announced`, 'protocol'));
      return;
    }
    if (out.push(chunk)) arm();
    else {
      // The reader is full: not the remote's silence.
      clearTimeout(timer);
      source.pause();
    }
  });
  source.once('end', () => {
    if (done) return;
    if (size !== undefined && received < size) {
      fail(
        new RemoteError(`${origin}: the body ended after ${received} of ${size} bytes`, 'network', {
          cause: undefined,
        }),
      );
      return;
    }
    done = true;
    clearTimeout(timer);
    out.push(null);
  });
  source.once('error', (err) => {
    if (isAbort(err, undefined)) fail(err);
    else fail(networkError(err, res.url));
  });
  source.once('close', () => {
    if (!source.complete)
      fail(
        new RemoteError(`${origin}: the connection closed after ${received} bytes of the body`, 'network'),
      );
  });
  source.pause();
  return out;
}

/** Seconds from a `Retry-After` (delta seconds or an HTTP-date); undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: number = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed);
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, Math.ceil((at - now) / 1000));
}
