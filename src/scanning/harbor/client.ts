/**
 * A client of a scanner adapter speaking Harbor's Pluggable Scanner API v1.1: read its metadata, ask it to scan
 * an artifact, poll for the report. Every failure is a `ScannerError`; nothing else is thrown.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { z } from 'zod';
import { schemaProblem } from '../../util/schema-problem.ts';
import { ScannerError } from './errors.ts';
import {
  errorResponseSchema,
  metadataSchema,
  reportSchema,
  SCAN_REQUEST_MIME_TYPE,
  SCAN_RESPONSE_MIME_TYPE,
  scanResponseSchema,
  METADATA_MIME_TYPE,
  VULNERABILITY_REPORT_MIME_TYPE,
  type HarborVulnerabilityReport,
  type ScanRequest,
  type ScannerAdapterMetadata,
} from './protocol.ts';

/** Options of {@link HarborScannerClient}. */
export interface HarborScannerClientOptions {
  /** The adapter's base URL (the operations are under `<url>/api/v1/`), e.g. `http://trivy-adapter:8080`. */
  readonly url: string;
  /** The `Authorization` header sent to the adapter (`Bearer …`, `Basic …`), when it wants one. */
  readonly authorization?: string;
  /** Longest wait for one request, headers and body (default 30 s). */
  readonly timeoutMs?: number;
  /** Largest body read from the adapter (default 64 MiB); past it, `BAD_RESPONSE`/`MALFORMED_REPORT`. */
  readonly maxResponseBytes?: number;
  /** The report media type asked for in `Accept` (default `VULNERABILITY_REPORT_MIME_TYPE`). */
  readonly reportMimeType?: string;
  /** The fetch implementation (default the global one). */
  readonly fetch?: typeof globalThis.fetch;
}

/** Per-call options. */
export interface CallOptions {
  /** Aborts the call: it rejects with `ScannerError` `ABORTED`. */
  readonly signal?: AbortSignal;
}

/** Options of {@link HarborScannerClient.pollReport}. */
export interface PollOptions extends CallOptions {
  /** Longest total wait for the report (default 10 min); past it, `ScannerError` `REPORT_TIMEOUT`. */
  readonly maxWaitMs?: number;
  /** Wait between polls when the adapter sends no usable `Refresh-After` (default 5 s). */
  readonly defaultRefreshMs?: number;
  /** Shortest wait between polls, whatever `Refresh-After` says (default 1 s): a 0 must not make a busy loop. */
  readonly minRefreshMs?: number;
  /** Longest wait between polls, whatever `Refresh-After` says (default 60 s). */
  readonly maxRefreshMs?: number;
}

/** One look at a report: still being made (with the adapter's advice on when to look again), or ready. */
export type ReportState =
  | { readonly state: 'pending'; readonly refreshAfterMs: number | null }
  | { readonly state: 'ready'; readonly report: HarborVulnerabilityReport };

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: string;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** `Refresh-After` in milliseconds: the spec's integer seconds; null when absent or not such a number. */
export function parseRefreshAfter(value: string | null): number | null {
  if (value === null || !/^\s*\d{1,7}\s*$/.test(value)) return null;
  return Number(value.trim()) * 1000;
}

/** The client; one per registered adapter. Holds no connection state of its own: safe to share. */
export class HarborScannerClient {
  readonly #base: URL;
  readonly #authorization: string | undefined;
  readonly #timeoutMs: number;
  readonly #maxResponseBytes: number;
  readonly #reportMimeType: string;
  readonly #fetch: typeof globalThis.fetch;

  /** Throws a RangeError when `options.url` is not an absolute http(s) URL. */
  constructor(options: HarborScannerClientOptions) {
    let base: URL;
    try {
      base = new URL(options.url);
    } catch {
      throw new RangeError(`scanner adapter URL is not an absolute URL: ${options.url}`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:')
      throw new RangeError(`scanner adapter URL must be http(s): ${options.url}`);
    // Relative resolution keeps a path prefix (an adapter behind a proxy) only with a trailing slash.
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    this.#base = base;
    this.#authorization = options.authorization;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.#reportMimeType = options.reportMimeType ?? VULNERABILITY_REPORT_MIME_TYPE;
    this.#fetch = options.fetch ?? globalThis.fetch;
  }

  /** `GET /api/v1/metadata`: the scanner's name, vendor, version, capabilities and properties. */
  async metadata(options: CallOptions = {}): Promise<ScannerAdapterMetadata> {
    const answer = await this.#send('GET', 'api/v1/metadata', { accept: METADATA_MIME_TYPE, ...options });
    if (answer.status !== 200) throw errorOf(answer, 'metadata');
    return parse(answer, metadataSchema, 'metadata', 'BAD_RESPONSE');
  }

  /**
   * `POST /api/v1/scan`: asks the adapter to scan `request.artifact`, pulling it from `request.registry` with
   * the given authorization. Resolves to the scan request id to poll the report with.
   */
  async requestScan(request: ScanRequest, options: CallOptions = {}): Promise<string> {
    const answer = await this.#send('POST', 'api/v1/scan', {
      accept: SCAN_RESPONSE_MIME_TYPE,
      contentType: SCAN_REQUEST_MIME_TYPE,
      body: JSON.stringify(request),
      ...options,
    });
    // The spec answers 202; a 200 or 201 carries the same document.
    if (answer.status !== 202 && answer.status !== 200 && answer.status !== 201)
      throw errorOf(answer, 'scan request');
    return parse(answer, scanResponseSchema, 'scan response', 'BAD_RESPONSE').id;
  }

  /**
   * `GET /api/v1/scan/{id}/report` once: pending on 302 (with `Refresh-After`), the validated report on 200.
   * Rejects with `NOT_FOUND` on 404, `MALFORMED_REPORT` for a report that is not one, `HTTP_STATUS` otherwise.
   */
  fetchReport(id: string, options: CallOptions = {}): Promise<ReportState> {
    return this.#fetchReport(id, options.signal, this.#timeoutMs);
  }

  async #fetchReport(id: string, signal: AbortSignal | undefined, timeoutMs: number): Promise<ReportState> {
    const answer = await this.#send('GET', `api/v1/scan/${encodeURIComponent(id)}/report`, {
      accept: this.#reportMimeType,
      timeoutMs,
      ...(signal ? { signal } : {}),
    });
    if (answer.status === 302)
      return { state: 'pending', refreshAfterMs: parseRefreshAfter(answer.headers.get('refresh-after')) };
    if (answer.status !== 200) throw errorOf(answer, 'scan report');
    return { state: 'ready', report: parse(answer, reportSchema, 'report', 'MALFORMED_REPORT') };
  }

  /**
   * Polls the report of scan `id` until it is ready, waiting between polls as `Refresh-After` says (bounded by
   * `minRefreshMs`/`maxRefreshMs`). Rejects with `REPORT_TIMEOUT` when the next wait would pass `maxWaitMs`,
   * `ABORTED` when `signal` aborts (also during a wait), and as {@link fetchReport} does.
   */
  async pollReport(id: string, options: PollOptions = {}): Promise<HarborVulnerabilityReport> {
    const maxWaitMs = options.maxWaitMs ?? 600_000;
    const minRefreshMs = options.minRefreshMs ?? 1000;
    const maxRefreshMs = Math.max(minRefreshMs, options.maxRefreshMs ?? 60_000);
    const defaultRefreshMs = options.defaultRefreshMs ?? 5000;
    const deadline = Date.now() + maxWaitMs;
    const pending = () =>
      new ScannerError('REPORT_TIMEOUT', `scan ${id}: report still pending after ${maxWaitMs} ms`);
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw pending();
      // One poll never outlasts the polling budget; a poll cut short by it is the budget running out.
      const budgetBound = remaining < this.#timeoutMs;
      let result: ReportState;
      try {
        result = await this.#fetchReport(id, options.signal, budgetBound ? remaining : this.#timeoutMs);
      } catch (error) {
        if (budgetBound && error instanceof ScannerError && error.code === 'TIMEOUT') throw pending();
        throw error;
      }
      if (result.state === 'ready') return result.report;
      const wait = Math.min(maxRefreshMs, Math.max(minRefreshMs, result.refreshAfterMs ?? defaultRefreshMs));
      if (Date.now() + wait > deadline) throw pending();
      try {
        await sleep(wait, undefined, options.signal ? { signal: options.signal } : {});
      } catch (error) {
        throw new ScannerError('ABORTED', `scan ${id}: polling aborted`, null, { cause: error });
      }
    }
  }

  async #send(
    method: 'GET' | 'POST',
    path: string,
    options: CallOptions & { accept: string; contentType?: string; body?: string; timeoutMs?: number },
  ): Promise<Answer> {
    const url = new URL(path, this.#base);
    const headers: Record<string, string> = { accept: options.accept };
    if (options.contentType) headers['content-type'] = options.contentType;
    if (this.#authorization) headers.authorization = this.#authorization;
    const timeout = AbortSignal.timeout(options.timeoutMs ?? this.#timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    const failure = (error: unknown): ScannerError => {
      if (options.signal?.aborted)
        return new ScannerError('ABORTED', `${method} ${url.pathname}: aborted`, null, { cause: error });
      if (timeout.aborted)
        return new ScannerError('TIMEOUT', `${method} ${url.pathname}: no answer in time`, null, {
          cause: error,
        });
      const reason =
        error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : '';
      return new ScannerError('NETWORK', `${method} ${url.pathname}: ${reason || 'request failed'}`, null, {
        cause: error,
      });
    };
    if (options.signal?.aborted) throw failure(options.signal.reason);
    let response: Response;
    try {
      response = await this.#fetch(url, {
        method,
        headers,
        ...(options.body !== undefined ? { body: options.body } : {}),
        // A 302 is the report's "not yet", not a redirect to follow.
        redirect: 'manual',
        signal,
      });
    } catch (error) {
      throw failure(error);
    }
    let body: string;
    try {
      body = await readLimited(response, this.#maxResponseBytes);
    } catch (error) {
      if (error instanceof ScannerError) throw error;
      throw failure(error);
    }
    return { status: response.status, headers: response.headers, body };
  }
}

/** The body as UTF-8 text, rejecting (and cancelling the stream) past `limit` bytes. */
async function readLimited(response: Response, limit: number): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      throw new ScannerError('BAD_RESPONSE', `answer larger than ${limit} bytes`, response.status);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parse<T>(
  answer: Answer,
  schema: z.ZodType<T>,
  what: string,
  code: 'BAD_RESPONSE' | 'MALFORMED_REPORT',
): T {
  let json: unknown;
  try {
    json = JSON.parse(answer.body);
  } catch {
    throw new ScannerError(code, `${what}: not JSON`, answer.status);
  }
  const result = schema.safeParse(json);
  if (!result.success)
    throw new ScannerError(code, `${what}: ${schemaProblem(result.error, what).message}`, answer.status);
  return result.data;
}

/** The error of an unexpected answer, with the adapter's own message when its body is an error document. */
function errorOf(answer: Answer, what: string): ScannerError {
  let message: string | null = null;
  try {
    const parsed = errorResponseSchema.safeParse(JSON.parse(answer.body));
    if (parsed.success) message = parsed.data.error?.message ?? null;
  } catch {
    // Not JSON: the status says it all.
  }
  const text = `${what}: adapter answered ${answer.status}${message ? `: ${message}` : ''}`;
  return new ScannerError(answer.status === 404 ? 'NOT_FOUND' : 'HTTP_STATUS', text, answer.status);
}
