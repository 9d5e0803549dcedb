/**
 * HTTP client helpers on node:http with keep-alive agents (no fetch: undici's buffering and its own connection
 * pool would be a second variable). Bodies are streamed; only small responses are collected into memory.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';

export interface BufferedResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface RequestOptions {
  headers?: Record<string, string | number>;
  /** A Buffer/string is sent with Content-Length; a Readable is piped (chunked unless Content-Length is set). */
  body?: Buffer | string | Readable;
  /** Abort after this many ms (default 10 minutes: a 5 GiB push may take a while). */
  timeoutMs?: number;
}

export class HttpError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly body?: string,
  ) {
    super(message);
  }
}

/** A client for one registry base URL (`http://127.0.0.1:PORT`). */
export class RegistryClient {
  readonly agent: http.Agent;
  private readonly base: URL;

  constructor(
    readonly baseUrl: string,
    maxSockets = 64,
  ) {
    this.base = new URL(baseUrl);
    this.agent = new http.Agent({
      keepAlive: true,
      maxSockets,
      maxFreeSockets: maxSockets,
      scheduling: 'lifo',
    });
  }

  /** The path (with query) of a registry URL or path; Location headers are absolute URLs. */
  pathOf(urlOrPath: string): string {
    const u = new URL(urlOrPath, this.base);
    if (u.host !== this.base.host) throw new Error(`unexpected redirect to another host: ${urlOrPath}`);
    return u.pathname + u.search;
  }

  /** Sends a request and resolves with the response as soon as its headers arrive (the body is unread). */
  send(method: string, urlOrPath: string, options: RequestOptions = {}): Promise<IncomingMessage> {
    const headers: Record<string, string | number> = { ...options.headers };
    const body = options.body;
    if (body === undefined) {
      if (method === 'PUT' || method === 'POST' || method === 'PATCH') headers['Content-Length'] ??= 0;
    } else if (!(body instanceof Readable)) {
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: this.base.hostname,
          port: this.base.port,
          method,
          path: this.pathOf(urlOrPath),
          headers,
          agent: this.agent,
          timeout: options.timeoutMs ?? 600_000,
        },
        resolve,
      );
      req.once('error', reject);
      req.once('timeout', () => req.destroy(new Error(`${method} ${urlOrPath}: timed out`)));
      if (body instanceof Readable) {
        body.once('error', (err) => req.destroy(err));
        body.pipe(req);
      } else {
        req.end(body);
      }
    });
  }

  /** Sends a request and reads the whole (small) response body. */
  async request(method: string, urlOrPath: string, options: RequestOptions = {}): Promise<BufferedResponse> {
    const res = await this.send(method, urlOrPath, options);
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    return { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) };
  }

  /** Like request(), but throws unless the status is one of `expected`. */
  async expect(
    expected: number | readonly number[],
    method: string,
    urlOrPath: string,
    options: RequestOptions = {},
  ): Promise<BufferedResponse> {
    const res = await this.request(method, urlOrPath, options);
    const ok = typeof expected === 'number' ? [expected] : expected;
    if (!ok.includes(res.status)) {
      const text = res.body.toString('utf8').slice(0, 500);
      throw new HttpError(
        `${method} ${urlOrPath}: expected ${ok.join('/')}, got ${res.status} ${text}`,
        res.status,
        text,
      );
    }
    return res;
  }

  /** Closes idle keep-alive connections. */
  close(): void {
    this.agent.destroy();
  }
}

/** Reads a single header value. */
export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Reads a required header (throws naming the request). */
export function requireHeader(headers: IncomingHttpHeaders, name: string, what: string): string {
  const v = header(headers, name);
  if (v === undefined) throw new Error(`${what}: response has no ${name} header`);
  return v;
}

/** Runs `fn` over `items` with at most `concurrency` in flight; rejects on the first failure. */
export async function mapLimit<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (failed === undefined && next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i] as T, i);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  if (failed !== undefined) throw failed;
  return results;
}

/** Same as mapLimit over the integers 0..count-1, without building an array of inputs. */
export async function forCount(
  count: number,
  concurrency: number,
  fn: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (failed === undefined && next < count) {
      const i = next++;
      try {
        await fn(i);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  if (failed !== undefined) throw failed;
}
