/**
 * The RegistryClient over HTTP: the distribution API of a remote registry (Berth, CNCF Distribution, Docker
 * Hub...) with the remote's authentication, fallback URLs and redirects. See registry-client.ts for the
 * contract of each method.
 */
import type { Readable } from 'node:stream';
import { looksLikeDigest, digestOf, isDigest, type Digest, type DigestAlgorithm } from '../oci/digest.ts';
import { descriptor, type Descriptor } from '../oci/manifest.ts';
import { baseMediaType, MediaType } from '../oci/media-types.ts';
import { silentLogger, type Logger } from '../logger.ts';
import { VERSION } from '../version.ts';
import { RemoteAuth } from './auth.ts';
import {
  drain,
  HttpTransport,
  parseRetryAfter,
  readBody,
  watchSilence,
  type RequestBody,
  type TransportResponse,
} from './http-transport.ts';
import {
  RemoteError,
  type CallOptions,
  type ListOptions,
  type RegistryClient,
  type RemoteBlob,
  type RemoteEndpoint,
  type RemoteManifest,
  type RemoteManifestHead,
} from './registry-client.ts';

/** Every manifest and index type a HEAD or GET asks for unless told otherwise. */
export const DEFAULT_MANIFEST_ACCEPT: readonly string[] = [
  MediaType.OciManifest,
  MediaType.OciIndex,
  MediaType.DockerManifest,
  MediaType.DockerManifestList,
];

const DEFAULT_MAX_MANIFEST_SIZE = 4 * 1024 * 1024;
/** Largest JSON answer read (tag lists, catalogs, referrers, error bodies). */
const MAX_JSON_SIZE = 16 * 1024 * 1024;
const MAX_ERROR_BODY = 64 * 1024;
const MAX_REDIRECTS = 5;
/** How long a fallback URL that answered stays preferred before the primary is tried again. */
const HEALTHY_FOR_MS = 30_000;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

export interface RegistryClientOptions {
  /** Default `berth/<version>`. */
  readonly userAgent?: string;
  readonly logger?: Logger;
}

export { parseRetryAfter };

/** Creates a client of the remote registry at `endpoint`. */
export function createRegistryClient(
  endpoint: RemoteEndpoint,
  options: RegistryClientOptions = {},
): HttpRegistryClient {
  return new HttpRegistryClient(endpoint, options);
}

interface Exchange {
  readonly method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';
  /** A path with query below the base URL (`/v2/...`), or an absolute URL (a Location, a Link). */
  readonly target: string | URL;
  /** The token scopes the request needs. */
  readonly scopes: readonly string[];
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: RequestBody;
  /** Follow redirects (reads of blobs and manifests). */
  readonly followRedirects?: boolean;
  readonly signal?: AbortSignal | undefined;
}

export class HttpRegistryClient implements RegistryClient {
  readonly url: string;
  private readonly bases: readonly URL[];
  private readonly transport: HttpTransport;
  private readonly auth: RemoteAuth;
  private readonly userAgent: string;
  private readonly logger: Logger;
  /** The fallback that answered last, and until when it stays preferred. */
  private healthy: { index: number; until: number } | null = null;

  constructor(endpoint: RemoteEndpoint, options: RegistryClientOptions = {}) {
    if (endpoint.urls.length === 0) throw new TypeError('a remote endpoint needs at least one URL');
    this.bases = endpoint.urls.map((u) => {
      const url = new URL(u);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw new TypeError(`remote URL ${url.origin} is not http(s)`);
      }
      return new URL(url.origin);
    });
    this.url = (this.bases[0] as URL).origin;
    this.userAgent = options.userAgent ?? `berth/${VERSION}`;
    this.logger = options.logger ?? silentLogger;
    this.transport = new HttpTransport({
      caBundle: endpoint.caBundle ?? null,
      insecure: endpoint.insecure === true,
      timeoutMs: endpoint.timeoutMs ?? 30_000,
    });
    this.auth = new RemoteAuth(this.transport, endpoint.credentials ?? null, this.userAgent, this.logger);
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.transport.close();
  }

  async ping(options: CallOptions = {}): Promise<void> {
    const res = await this.request({ method: 'GET', target: '/v2/', scopes: [], signal: options.signal });
    if (res.status !== 200) throw await this.errorOf(res, 'GET /v2/');
    await drain(res, this.transport.timeoutMs);
  }

  async headManifest(
    repository: string,
    reference: string,
    accept: readonly string[] = DEFAULT_MANIFEST_ACCEPT,
    options: CallOptions = {},
  ): Promise<RemoteManifestHead | null> {
    const res = await this.request({
      method: 'HEAD',
      target: manifestPath(repository, reference),
      scopes: [pullScope(repository)],
      headers: { accept: accept.join(', ') },
      followRedirects: true,
      signal: options.signal,
    });
    if (res.status === 404) return this.discard(res, null);
    if (res.status !== 200) throw await this.errorOf(res, `HEAD manifest ${repository}:${reference}`);
    await drain(res, this.transport.timeoutMs);
    const size = contentLength(res);
    if (size === null) throw protocol(res, 'a manifest HEAD without Content-Length');
    const header = singleHeader(res, 'docker-content-digest');
    return {
      digest: header !== undefined && isDigest(header) ? header : null,
      mediaType: baseMediaType(singleHeader(res, 'content-type')) ?? '',
      size,
    };
  }

  async getManifest(
    repository: string,
    reference: string,
    accept: readonly string[] = DEFAULT_MANIFEST_ACCEPT,
    options: CallOptions & { readonly maxSize?: number } = {},
  ): Promise<RemoteManifest | null> {
    let algorithm: DigestAlgorithm = 'sha256';
    const byDigest = looksLikeDigest(reference);
    if (byDigest) {
      if (!isDigest(reference)) {
        throw new RemoteError(`unsupported digest ${reference}`, 'protocol');
      }
      algorithm = reference.slice(0, reference.indexOf(':')) as DigestAlgorithm;
    }
    const res = await this.request({
      method: 'GET',
      target: manifestPath(repository, reference),
      scopes: [pullScope(repository)],
      headers: { accept: accept.join(', ') },
      followRedirects: true,
      signal: options.signal,
    });
    if (res.status === 404) return this.discard(res, null);
    if (res.status !== 200) throw await this.errorOf(res, `GET manifest ${repository}:${reference}`);
    const body = await readBody(res, options.maxSize ?? DEFAULT_MAX_MANIFEST_SIZE, this.transport.timeoutMs);
    const digest = digestOf(body, algorithm);
    if (byDigest && digest !== reference) {
      throw protocol(res, `manifest ${repository}@${reference}: the bytes received hash to ${digest}`);
    }
    return { digest, mediaType: manifestMediaType(res, body), body };
  }

  async headBlob(repository: string, digest: Digest, options: CallOptions = {}): Promise<number | null> {
    const res = await this.request({
      method: 'HEAD',
      target: blobPath(repository, digest),
      scopes: [pullScope(repository)],
      followRedirects: true,
      signal: options.signal,
    });
    if (res.status === 404) return this.discard(res, null);
    if (res.status !== 200) throw await this.errorOf(res, `HEAD blob ${repository}@${digest}`);
    await drain(res, this.transport.timeoutMs);
    const size = contentLength(res);
    if (size === null) throw protocol(res, 'a blob HEAD without Content-Length');
    return size;
  }

  async getBlob(repository: string, digest: Digest, options: CallOptions = {}): Promise<RemoteBlob | null> {
    const res = await this.request({
      method: 'GET',
      target: blobPath(repository, digest),
      scopes: [pullScope(repository)],
      followRedirects: true,
      signal: options.signal,
    });
    if (res.status === 404) return this.discard(res, null);
    if (res.status !== 200) throw await this.errorOf(res, `GET blob ${repository}@${digest}`);
    const size = contentLength(res);
    if (size === null) {
      res.body.destroy();
      throw protocol(res, `blob ${repository}@${digest} without Content-Length`);
    }
    return { size, body: watchSilence(res, this.transport.timeoutMs, size) };
  }

  async mountBlob(
    repository: string,
    digest: Digest,
    from: string,
    options: CallOptions = {},
  ): Promise<boolean> {
    const query = new URLSearchParams({ mount: digest, from });
    const res = await this.request({
      method: 'POST',
      target: `/v2/${repository}/blobs/uploads/?${query.toString()}`,
      scopes: [pushScope(repository), pullScope(from)],
      signal: options.signal,
    });
    if (res.status === 201) return this.discard(res, true);
    if (res.status === 202) {
      // The remote started an upload instead of mounting: cancel it, best effort.
      await drain(res, this.transport.timeoutMs);
      const location = singleHeader(res, 'location');
      if (location !== undefined) {
        try {
          const cancel = await this.request({
            method: 'DELETE',
            target: new URL(location, res.url),
            scopes: [pushScope(repository)],
            signal: options.signal,
          });
          await drain(cancel, this.transport.timeoutMs);
        } catch (err) {
          this.logger.debug(
            { remote: this.url, repository, err },
            'could not cancel an upload after a mount',
          );
        }
      }
      return false;
    }
    if (res.status >= 400 && res.status < 500 && res.status !== 429) return this.discard(res, false);
    throw await this.errorOf(res, `mount ${from}@${digest} into ${repository}`);
  }

  async putBlob(
    repository: string,
    digest: Digest,
    size: number,
    body: Readable,
    options: CallOptions = {},
  ): Promise<void> {
    let start: TransportResponse;
    try {
      start = await this.request({
        method: 'POST',
        target: `/v2/${repository}/blobs/uploads/`,
        scopes: [pushScope(repository)],
        signal: options.signal,
      });
    } catch (err) {
      body.destroy();
      throw err;
    }
    if (start.status === 201) {
      // The remote already has it (or mounted it on its own).
      body.destroy();
      return this.discard(start, undefined);
    }
    if (start.status !== 202) {
      body.destroy();
      throw await this.errorOf(start, `starting an upload to ${repository}`);
    }
    await drain(start, this.transport.timeoutMs);
    const location = singleHeader(start, 'location');
    if (location === undefined) {
      body.destroy();
      throw protocol(start, 'an upload started without a Location');
    }
    const uploadUrl = new URL(location, start.url);
    const putUrl = new URL(uploadUrl);
    putUrl.searchParams.append('digest', digest);
    let res: TransportResponse;
    try {
      res = await this.request({
        method: 'PUT',
        target: putUrl,
        scopes: [pushScope(repository)],
        headers: { 'content-type': 'application/octet-stream' },
        body: { kind: 'stream', stream: body, length: size },
        signal: options.signal,
      });
    } catch (err) {
      await this.cancelUpload(uploadUrl, repository);
      throw err;
    }
    if (res.status !== 201) {
      const error = await this.errorOf(res, `uploading ${digest} to ${repository}`);
      await this.cancelUpload(uploadUrl, repository);
      throw error;
    }
    await drain(res, this.transport.timeoutMs);
  }

  async putManifest(
    repository: string,
    reference: string,
    mediaType: string,
    body: Buffer,
    options: CallOptions = {},
  ): Promise<Digest> {
    let digest: Digest;
    if (looksLikeDigest(reference)) {
      if (!isDigest(reference)) throw new RemoteError(`unsupported digest ${reference}`, 'protocol');
      digest = digestOf(body, reference.slice(0, reference.indexOf(':')) as DigestAlgorithm);
      if (digest !== reference) {
        throw new RemoteError(`the manifest bytes hash to ${digest}, not ${reference}`, 'protocol');
      }
    } else {
      digest = digestOf(body);
    }
    const res = await this.request({
      method: 'PUT',
      target: manifestPath(repository, reference),
      scopes: [pushScope(repository)],
      headers: { 'content-type': mediaType },
      body: { kind: 'buffer', bytes: body },
      signal: options.signal,
    });
    if (res.status !== 201 && res.status !== 200) {
      throw await this.errorOf(res, `PUT manifest ${repository}:${reference}`);
    }
    await drain(res, this.transport.timeoutMs);
    const header = singleHeader(res, 'docker-content-digest');
    if (header !== undefined && isDigest(header)) {
      const algorithm = header.slice(0, header.indexOf(':')) as DigestAlgorithm;
      if (digestOf(body, algorithm) !== header) {
        throw protocol(
          res,
          `the remote stored the manifest as ${header}, which is not the digest of the bytes sent`,
        );
      }
    }
    return digest;
  }

  async deleteManifest(repository: string, reference: string, options: CallOptions = {}): Promise<boolean> {
    const res = await this.request({
      method: 'DELETE',
      target: manifestPath(repository, reference),
      // Distribution (and Berth) check the `delete` action for DELETE.
      scopes: [`repository:${repository}:delete`],
      signal: options.signal,
    });
    if (res.status === 404) return this.discard(res, false);
    if (res.status !== 202 && res.status !== 200 && res.status !== 204) {
      throw await this.errorOf(res, `DELETE manifest ${repository}:${reference}`);
    }
    return this.discard(res, true);
  }

  async *listTags(repository: string, options: ListOptions = {}): AsyncIterable<string> {
    const first = `/v2/${repository}/tags/list${pageQuery(options.pageSize)}`;
    for await (const page of this.pages(first, [pullScope(repository)], options.signal, true)) {
      const tags = (page as { tags?: unknown } | null)?.tags;
      if (tags === null || tags === undefined) continue;
      if (!Array.isArray(tags))
        throw new RemoteError(`${this.url}: a tag list without a tags array`, 'protocol');
      for (const tag of tags) if (typeof tag === 'string') yield tag;
    }
  }

  async *catalog(options: ListOptions = {}): AsyncIterable<string> {
    const first = `/v2/_catalog${pageQuery(options.pageSize)}`;
    for await (const page of this.pages(first, ['registry:catalog:*'], options.signal, false)) {
      const repositories = (page as { repositories?: unknown } | null)?.repositories;
      if (repositories === null || repositories === undefined) continue;
      if (!Array.isArray(repositories)) {
        throw new RemoteError(`${this.url}: a catalog without a repositories array`, 'protocol');
      }
      for (const name of repositories) if (typeof name === 'string') yield name;
    }
  }

  async listReferrers(
    repository: string,
    digest: Digest,
    options: CallOptions = {},
  ): Promise<Descriptor[] | null> {
    const out: Descriptor[] = [];
    let target: string | URL = `/v2/${repository}/referrers/${digest}`;
    for (let page = 0; ; page++) {
      const res: TransportResponse = await this.request({
        method: 'GET',
        target,
        scopes: [pullScope(repository)],
        headers: { accept: MediaType.OciIndex },
        signal: options.signal,
      });
      if (res.status === 404) {
        // A registry with the API answers an index even when it knows no referrers; Distribution 2.8 answers
        // its plain 404 (or the NAME_UNKNOWN/MANIFEST_UNKNOWN error JSON) for a route it does not have.
        if (page > 0 || baseMediaType(singleHeader(res, 'content-type')) !== MediaType.OciIndex) {
          return this.discard(res, page > 0 ? out : null);
        }
      } else if (res.status !== 200) {
        throw await this.errorOf(res, `GET referrers of ${repository}@${digest}`);
      }
      const body = await readBody(res, MAX_JSON_SIZE, this.transport.timeoutMs);
      const index = parseJson(res, body) as { manifests?: unknown } | null;
      const manifests = index?.manifests;
      if (!Array.isArray(manifests)) {
        if (res.status === 404) return null;
        throw protocol(res, 'a referrers answer that is not an image index');
      }
      try {
        manifests.forEach((m, i) => out.push(descriptor(m, `manifests[${i}]`)));
      } catch (err) {
        throw protocol(res, `a referrers index with an invalid descriptor: ${(err as Error).message}`);
      }
      const next = nextLink(res);
      if (next === null || res.status === 404) return out;
      target = next;
    }
  }

  // ---------------------------------------------------------------------------------------------------------

  /** The JSON pages of a paginated listing (`Link: <...>; rel="next"`); `emptyOn404` ends quietly on 404. */
  private async *pages(
    first: string,
    scopes: readonly string[],
    signal: AbortSignal | undefined,
    emptyOn404: boolean,
  ): AsyncIterable<unknown> {
    let target: string | URL | null = first;
    const seen = new Set<string>();
    while (target !== null) {
      const res: TransportResponse = await this.request({ method: 'GET', target, scopes, signal });
      if (res.status === 404 && emptyOn404) {
        await drain(res, this.transport.timeoutMs);
        return;
      }
      if (res.status !== 200) throw await this.errorOf(res, `GET ${res.url.pathname}`);
      const body = await readBody(res, MAX_JSON_SIZE, this.transport.timeoutMs);
      yield parseJson(res, body);
      const next = nextLink(res);
      if (next !== null && seen.has(next.href)) {
        throw protocol(res, 'pagination loops back to a page already read');
      }
      if (next !== null) seen.add(next.href);
      target = next;
    }
  }

  /** Drains a response and returns `value`. */
  private async discard<T>(res: TransportResponse, value: T): Promise<T> {
    await drain(res, this.transport.timeoutMs);
    return value;
  }

  /**
   * Sends `exchange` to the first base URL that answers (starting at the one that answered last, for a while),
   * authenticating as the remote asks and following redirects when told. A network error, a timeout or a 5xx
   * moves to the next URL when the request can be repeated (no streamed body); the last failure is thrown.
   */
  private async request(exchange: Exchange): Promise<TransportResponse> {
    const absolute = exchange.target instanceof URL;
    const repeatable = exchange.body?.kind !== 'stream';
    const order = absolute ? [-1] : this.baseOrder();
    let lastError: unknown;
    for (let n = 0; n < order.length; n++) {
      const index = order[n] as number;
      const url =
        exchange.target instanceof URL ? exchange.target : new URL(exchange.target, this.bases[index] as URL);
      const canMoveOn = repeatable && n < order.length - 1;
      try {
        const res = await this.authenticated(exchange, url);
        if (res.status >= 500 && canMoveOn) {
          lastError = await this.errorOf(res, `${exchange.method} ${url.pathname}`);
          this.logger.debug({ remote: url.origin, status: res.status }, 'remote URL failed; trying the next');
          continue;
        }
        if (!absolute) this.markHealthy(index, res.status < 500);
        return res;
      } catch (err) {
        if (
          !(err instanceof RemoteError) ||
          (err.kind !== 'network' && err.kind !== 'timeout') ||
          !canMoveOn
        ) {
          throw err;
        }
        lastError = err;
        this.logger.debug({ remote: url.origin, err: err.message }, 'remote URL failed; trying the next');
      }
    }
    throw lastError;
  }

  /** Base indices to try: the recently healthy one first, then the rest in order. */
  private baseOrder(): number[] {
    const all = this.bases.map((_, i) => i);
    const healthy = this.healthy;
    if (healthy === null || healthy.until <= Date.now() || healthy.index === 0) return all;
    return [healthy.index, ...all.filter((i) => i !== healthy.index)];
  }

  private markHealthy(index: number, ok: boolean): void {
    if (!ok) return;
    if (index === 0) this.healthy = null;
    else if (this.healthy?.index !== index || this.healthy.until <= Date.now()) {
      this.healthy = { index, until: Date.now() + HEALTHY_FOR_MS };
    }
  }

  /**
   * One exchange with one URL, with authentication: the Authorization known to work for the origin is sent
   * up front; a 401 is answered once (Basic, or a token for the scopes) when the request can be repeated.
   * Redirects are followed for reads, without credentials to any other origin.
   */
  private async authenticated(exchange: Exchange, url: URL): Promise<TransportResponse> {
    const origin = url.origin;
    const ownOrigin = this.bases.some((b) => b.origin === origin);
    let authorization = ownOrigin
      ? await this.auth.authorizationFor(origin, exchange.scopes, exchange.signal)
      : undefined;
    let res = await this.follow(exchange, url, authorization);
    // Only a challenge of the origin itself is answered: a redirect target's 401 names no realm of ours.
    if (res.status === 401 && ownOrigin && res.url.origin === origin && exchange.body?.kind !== 'stream') {
      const challenge = res.headers['www-authenticate'];
      const retry = await this.auth.answerChallenge(
        origin,
        Array.isArray(challenge) ? challenge.join(', ') : challenge,
        exchange.scopes,
        authorization,
        exchange.signal,
      );
      if (retry !== undefined) {
        await drain(res, this.transport.timeoutMs);
        authorization = retry;
        res = await this.follow(exchange, url, authorization);
      }
    }
    return res;
  }

  /** Sends to `url`, following redirects when the exchange allows; Authorization only to `url`'s origin. */
  private async follow(
    exchange: Exchange,
    url: URL,
    authorization: string | undefined,
  ): Promise<TransportResponse> {
    const origin = url.origin;
    let current = url;
    for (let hops = 0; ; hops++) {
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...exchange.headers };
      // Credentials belong to the origin they were made for: a redirect elsewhere (a CDN, a bucket) gets none.
      if (authorization !== undefined && current.origin === origin) headers.authorization = authorization;
      const res = await this.transport.send({
        method: exchange.method,
        url: current,
        headers,
        ...(exchange.body ? { body: exchange.body } : {}),
        ...(exchange.signal ? { signal: exchange.signal } : {}),
      });
      const location = singleHeader(res, 'location');
      if (!exchange.followRedirects || !REDIRECT_STATUSES.has(res.status) || location === undefined)
        return res;
      await drain(res, this.transport.timeoutMs);
      if (hops >= MAX_REDIRECTS) throw protocol(res, `more than ${MAX_REDIRECTS} redirects`);
      const next = new URL(location, current);
      if (next.protocol !== 'http:' && next.protocol !== 'https:') {
        throw protocol(res, `a redirect to a ${next.protocol} URL`);
      }
      this.logger.debug(
        { from: current.origin, to: next.origin, status: res.status },
        'following a redirect',
      );
      current = next;
    }
  }

  /** The RemoteError for a failed answer: its status, first OCI error code and Retry-After. Drains the body. */
  private async errorOf(res: TransportResponse, what: string): Promise<RemoteError> {
    let code: string | undefined;
    let text = '';
    if (res.body.readable && !res.body.readableEnded) {
      try {
        const body = await readBody(res, MAX_ERROR_BODY, this.transport.timeoutMs);
        text = body.toString('utf8');
        const parsed = JSON.parse(text) as { errors?: { code?: unknown; message?: unknown }[] };
        const first = parsed.errors?.[0];
        if (typeof first?.code === 'string') code = first.code;
        if (typeof first?.message === 'string') text = first.message;
      } catch {
        // not JSON, or cut: the status says enough
      }
    }
    const retryAfter = parseRetryAfter(singleHeader(res, 'retry-after'));
    const detail = code ? ` ${code}` : '';
    const message = `${this.url}: ${what}: ${res.status}${detail}${text && text.length < 300 ? ` (${text.trim()})` : ''}`;
    return new RemoteError(message, 'http', {
      status: res.status,
      ...(code !== undefined ? { code } : {}),
      ...(retryAfter !== undefined ? { retryAfter } : {}),
    });
  }

  private async cancelUpload(uploadUrl: URL, repository: string): Promise<void> {
    try {
      const res = await this.request({
        method: 'DELETE',
        target: uploadUrl,
        scopes: [pushScope(repository)],
      });
      await drain(res, this.transport.timeoutMs);
    } catch {
      // best effort: the remote purges abandoned uploads itself
    }
  }
}

function pullScope(repository: string): string {
  return `repository:${repository}:pull`;
}

function pushScope(repository: string): string {
  return `repository:${repository}:pull,push`;
}

function manifestPath(repository: string, reference: string): string {
  // A digest's `:` stays as is: some registries do not decode `%3A` in paths.
  return `/v2/${repository}/manifests/${encodeURIComponent(reference).replace(/%3A/g, ':')}`;
}

function blobPath(repository: string, digest: Digest): string {
  return `/v2/${repository}/blobs/${digest}`;
}

function pageQuery(pageSize: number | undefined): string {
  return pageSize === undefined ? '' : `?n=${pageSize}`;
}

function singleHeader(res: TransportResponse, name: string): string | undefined {
  const value = res.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function contentLength(res: TransportResponse): number | null {
  const value = singleHeader(res, 'content-length');
  if (value === undefined || !/^\d+$/.test(value.trim())) return null;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : null;
}

function protocol(res: TransportResponse, message: string): RemoteError {
  return new RemoteError(`${res.url.origin}: ${message}`, 'protocol', { status: res.status });
}

function parseJson(res: TransportResponse, body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch (err) {
    throw new RemoteError(`${res.url.origin}: an answer that is not JSON`, 'protocol', { cause: err });
  }
}

/** The manifest's media type: Content-Type, else the body's `mediaType` field, else empty. */
function manifestMediaType(res: TransportResponse, body: Buffer): string {
  const header = baseMediaType(singleHeader(res, 'content-type'));
  if (header !== undefined && header !== 'application/octet-stream' && header !== 'text/plain') return header;
  try {
    const parsed = JSON.parse(body.toString('utf8')) as { mediaType?: unknown };
    if (typeof parsed.mediaType === 'string') return parsed.mediaType;
  } catch {
    // not JSON: keep what the header said
  }
  return header ?? '';
}

/** The `rel="next"` target of a `Link` header, resolved against the answering URL; null when none. */
export function nextLink(res: TransportResponse): URL | null {
  const header = res.headers.link;
  const values = Array.isArray(header) ? header : header === undefined ? [] : [header];
  for (const value of values) {
    for (const m of value.matchAll(/<([^>]*)>\s*((?:;\s*[^;,]+)*)/g)) {
      const params = m[2] ?? '';
      if (/;\s*rel\s*=\s*"?(?:[^";,]*\s)?next(?:\s[^";,]*)?"?/i.test(params)) {
        try {
          return new URL(m[1] as string, res.url);
        } catch {
          return null;
        }
      }
    }
  }
  return null;
}
