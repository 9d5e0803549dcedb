/**
 * One HTTP attempt of a webhook delivery: a POST to the endpoint, connected to the address the `AddressGuard`
 * checked. Only a 2xx answer succeeds; redirects are not followed (a 3xx fails); the timeout covers the whole
 * exchange, from connecting to the end of the part of the response that is read.
 */
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { VERSION } from '../version.ts';
import type { CheckedAddress } from './address-guard.ts';
import { parseRetryAfter } from './retry-schedule.ts';

/**
 * Keep-alive agents, one per checked address and origin: a connection is reused only to the very address the
 * guard checked (a later delivery that resolves elsewhere gets its own agent after its own check), and reusing
 * connections spares each delivery a TCP (and TLS) handshake. Idle sockets close after `IDLE_SOCKET_MS`; unused
 * agents are dropped beyond `MAX_AGENTS`.
 */
const agents = new Map<string, http.Agent>();
const MAX_AGENTS = 256;
const IDLE_SOCKET_MS = 15_000;

function agentFor(url: URL, address: CheckedAddress): http.Agent {
  const key = `${url.protocol}//${url.host}|${address.address}`;
  let agent = agents.get(key);
  if (agent === undefined) {
    if (agents.size >= MAX_AGENTS) {
      const [oldest, old] = agents.entries().next().value as [string, http.Agent];
      agents.delete(oldest);
      old.destroy();
    }
    const options = { keepAlive: true, maxSockets: 16, maxFreeSockets: 4, timeout: IDLE_SOCKET_MS };
    agent = url.protocol === 'https:' ? new https.Agent(options) : new http.Agent(options);
    agents.set(key, agent);
  }
  return agent;
}

/** Bytes of the response body kept for the delivery log. */
export const SNIPPET_BYTES = 1024;

export const USER_AGENT = `Berth-Webhooks/${VERSION}`;

/** Headers the registry sets; an endpoint's static headers cannot replace them. */
const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  'content-type',
  'content-length',
  'transfer-encoding',
  'connection',
  'host',
  'user-agent',
  'webhook-id',
  'webhook-timestamp',
  'webhook-signature',
]);

/**
 * The request headers of a delivery: the endpoint's static headers (except the reserved ones, ignored whatever
 * their case), then the content type, the user agent and the signature headers.
 */
export function deliveryHeaders(
  staticHeaders: Readonly<Record<string, string>>,
  contentType: string,
  signatureHeaders: Readonly<Record<string, string>>,
): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(staticHeaders)) {
    if (!RESERVED_HEADERS.has(name.toLowerCase())) headers[name] = value;
  }
  headers['content-type'] = contentType;
  headers['user-agent'] = USER_AGENT;
  return { ...headers, ...signatureHeaders };
}

export interface DeliveryRequest {
  readonly url: URL;
  /** Where to connect (from `AddressGuard.check`), whatever the host name resolves to now. */
  readonly address: CheckedAddress;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface DeliverOptions {
  /** The whole exchange, in ms. */
  readonly timeoutMs: number;
  /** Aborts the attempt (the job's signal). */
  readonly signal?: AbortSignal;
  /** Response bytes kept (default `SNIPPET_BYTES`). */
  readonly snippetBytes?: number;
  readonly now?: () => Date;
}

export interface DeliveryResult {
  /** A 2xx answer. */
  readonly ok: boolean;
  /** null when no response arrived. */
  readonly statusCode: number | null;
  readonly durationMs: number;
  /** Why it failed (`HTTP 500`, `timed out after 10000 ms`, a connection error), or null. */
  readonly error: string | null;
  /** The start of the response body (UTF-8, at most `snippetBytes` bytes), or null. */
  readonly snippet: string | null;
  /** The time a `Retry-After` answer asked for, or null. */
  readonly retryAfter: Date | null;
}

/**
 * POSTs `request`; never throws for network or HTTP failures, which are described in the result. The connection
 * goes to `request.address` (TLS still verifies the certificate against the URL's host name).
 */
export function deliver(request: DeliveryRequest, options: DeliverOptions): Promise<DeliveryResult> {
  const now = options.now ?? ((): Date => new Date());
  const limit = options.snippetBytes ?? SNIPPET_BYTES;
  const started = performance.now();
  const body = Buffer.from(request.body, 'utf8');
  const pinned: LookupFunction = (_hostname, lookupOptions, callback) => {
    const { address, family } = request.address;
    if (lookupOptions.all) callback(null, [{ address, family }]);
    else callback(null, address, family);
  };
  const client = request.url.protocol === 'https:' ? https : http;

  return new Promise<DeliveryResult>((resolve) => {
    let settled = false;
    let statusCode: number | null = null;
    let retryAfter: Date | null = null;
    const chunks: Buffer[] = [];
    let kept = 0;

    // `keep`: the response was read to its end, so the connection may serve the next delivery.
    const finish = (error: string | null, keep = false): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (!keep) req.destroy();
      const ok = error === null && statusCode !== null && statusCode >= 200 && statusCode < 300;
      const snippet = chunks.length === 0 ? null : Buffer.concat(chunks).subarray(0, limit).toString('utf8');
      resolve({
        ok,
        statusCode,
        durationMs: Math.round(performance.now() - started),
        error: error ?? (ok ? null : `HTTP ${statusCode}`),
        snippet,
        retryAfter,
      });
    };

    // `finish` settles exactly once, whichever of timeout, abort, error, enough body or end comes first, and
    // destroys the request (and its socket) so nothing is left running after it, unless the response ended.
    const req = client.request(request.url, {
      method: 'POST',
      headers: { ...request.headers, 'content-length': String(body.length) },
      lookup: pinned,
      agent: agentFor(request.url, request.address),
    });
    const timer = setTimeout(() => finish(`timed out after ${options.timeoutMs} ms`), options.timeoutMs);
    const onAbort = (): void => finish('aborted');
    if (options.signal?.aborted) onAbort();
    else options.signal?.addEventListener('abort', onAbort, { once: true });

    req.on('error', (error) => finish(error.message || error.name));
    req.on('response', (res) => {
      statusCode = res.statusCode ?? null;
      const header = res.headers['retry-after'];
      retryAfter = parseRetryAfter(Array.isArray(header) ? header[0] : header, now());
      res.on('data', (chunk: Buffer) => {
        if (kept < limit) {
          chunks.push(chunk);
          kept += chunk.length;
        }
        // Enough for the log: stop reading (and do not wait for a body that may never end).
        if (kept >= limit) finish(null);
      });
      res.on('end', () => finish(null, true));
      res.on('error', (error) => finish(error.message));
      res.on('aborted', () => finish('the response was cut short'));
    });
    req.end(body);
  });
}
