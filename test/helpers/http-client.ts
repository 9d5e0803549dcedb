/**
 * A small HTTP client for tests that talk to a real Berth process: raw paths (nothing normalises `..` or
 * percent-escapes, unlike `fetch`), streamed or slow bodies, raw bytes over a socket for requests Node's client
 * refuses to send, and the usual pushes (monolithic, chunked, manifest).
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';

export interface HttpResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

export type RequestBody = Buffer | string | AsyncIterable<Uint8Array>;

export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string | number | string[]>;
  /** A Buffer/string is sent with its Content-Length; an iterable is streamed (chunked unless a length is set). */
  readonly body?: RequestBody | null;
  /** Fail when no complete response arrived within this many ms (default 15 s). */
  readonly timeoutMs?: number;
  /** Called once the request is on the wire (headers sent), e.g. to abort it from outside. */
  readonly onRequest?: (req: http.ClientRequest) => void;
}

export function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One request on a fresh connection (`agent: false`). `path` is sent verbatim. Resolves once the whole response
 * body has arrived. An error writing the request body after the response started (the server answered early,
 * e.g. 413, and closed) is ignored; any other error or a timeout rejects.
 */
export function request(baseUrl: string, path: string, options: RequestOptions = {}): Promise<HttpResponse> {
  const base = new URL(baseUrl);
  const method = options.method ?? 'GET';
  const headers: Record<string, string | number | string[]> = { ...(options.headers ?? {}) };
  const body = options.body ?? null;
  const hasLength = Object.keys(headers).some((k) => k.toLowerCase() === 'content-length');
  if ((typeof body === 'string' || Buffer.isBuffer(body)) && !hasLength) {
    headers['Content-Length'] = Buffer.byteLength(body);
  }
  const timeoutMs = options.timeoutMs ?? 15_000;
  return new Promise<HttpResponse>((resolve, reject) => {
    let settled = false;
    let responded = false;
    const done = (err: Error | null, res?: HttpResponse): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // The response is complete: drop the connection (and whatever of the body is still unsent).
      req.destroy();
      if (err) reject(err);
      else resolve(res as HttpResponse);
    };
    const req = http.request({
      host: base.hostname,
      port: base.port,
      method,
      path,
      headers,
      agent: false,
    });
    const timer = setTimeout(() => {
      done(new Error(`no response to ${method} ${path.slice(0, 200)} within ${timeoutMs} ms`));
      req.destroy();
    }, timeoutMs);
    req.on('response', (res) => {
      responded = true;
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () =>
        done(null, { status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', (e) => done(e));
      res.on('aborted', () => done(new Error(`response to ${method} ${path.slice(0, 200)} was cut short`)));
    });
    req.on('error', (e) => {
      // A server may answer early (413) and close while the body is still being written: give the response a
      // moment to arrive before calling the request failed.
      if (!responded) setTimeout(() => responded || done(e), 200);
    });
    options.onRequest?.(req);
    if (body === null) {
      req.end();
    } else if (typeof body === 'string' || Buffer.isBuffer(body)) {
      req.end(body);
    } else {
      void (async () => {
        try {
          for await (const chunk of body) {
            if (settled || req.destroyed) return;
            if (!req.write(chunk)) {
              await new Promise<void>((r) => {
                const go = (): void => {
                  req.off('drain', go).off('close', go);
                  r();
                };
                req.on('drain', go).on('close', go);
              });
            }
          }
          if (!req.destroyed) req.end();
        } catch (e) {
          req.destroy(e as Error);
        }
      })();
    }
  });
}

/** An HTTP response parsed from raw socket bytes, or `null` status when the server sent nothing. */
export interface RawResponse {
  readonly status: number | null;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  /** Everything received, for messages. */
  readonly raw: Buffer;
}

/**
 * Writes `data` verbatim to a new connection, half-closes it and collects whatever comes back until the server
 * closes (or `timeoutMs`, which rejects: a server that neither answers nor closes is hanging). Parses the first
 * response (status line, headers, Content-Length body).
 */
export function rawRequest(baseUrl: string, data: Buffer | string, timeoutMs = 10_000): Promise<RawResponse> {
  const base = new URL(baseUrl);
  return new Promise<RawResponse>((resolve, reject) => {
    const socket = net.connect(Number(base.port), base.hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`raw request got no complete answer within ${timeoutMs} ms`));
    }, timeoutMs);
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parseRawResponse(Buffer.concat(chunks)));
    };
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      // Stop as soon as the first response is complete (the server may keep the connection open).
      const parsed = parseRawResponse(Buffer.concat(chunks));
      if (parsed.status !== null && parsed.complete) finish();
    });
    socket.on('error', () => finish());
    socket.on('close', () => finish());
    socket.write(data);
    socket.end();
  });
}

function parseRawResponse(all: Buffer): RawResponse & { complete: boolean } {
  // Skip interim 1xx responses (`100 Continue`).
  let raw = all;
  while (/^HTTP\/1\.[01] 1\d\d /.test(raw.subarray(0, 16).toString('latin1'))) {
    const end = raw.indexOf('\r\n\r\n');
    if (end === -1) break;
    raw = raw.subarray(end + 4);
  }
  const headEnd = raw.indexOf('\r\n\r\n');
  if (headEnd === -1) return { status: null, headers: {}, body: Buffer.alloc(0), raw: all, complete: false };
  const lines = raw.subarray(0, headEnd).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const rest = raw.subarray(headEnd + 4);
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const { body, complete } = decodeChunked(rest);
    return { status: m ? Number(m[1]) : null, headers, body, raw: all, complete };
  }
  const len = headers['content-length'] !== undefined ? Number(headers['content-length']) : undefined;
  return {
    status: m ? Number(m[1]) : null,
    headers,
    body: len !== undefined ? rest.subarray(0, len) : rest,
    raw: all,
    complete: len !== undefined ? rest.length >= len : false,
  };
}

function decodeChunked(data: Buffer): { body: Buffer; complete: boolean } {
  const parts: Buffer[] = [];
  let pos = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', pos);
    if (lineEnd === -1) return { body: Buffer.concat(parts), complete: false };
    const size = parseInt(data.subarray(pos, lineEnd).toString('latin1'), 16);
    if (!Number.isFinite(size)) return { body: Buffer.concat(parts), complete: false };
    if (size === 0) return { body: Buffer.concat(parts), complete: true };
    if (data.length < lineEnd + 2 + size + 2) return { body: Buffer.concat(parts), complete: false };
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    pos = lineEnd + 2 + size + 2;
  }
}

/** The path and query of a `Location` header (absolute or relative), for reuse with `request()`. */
export function locationPath(res: HttpResponse): string {
  const loc = res.headers.location;
  if (typeof loc !== 'string') throw new Error(`no Location header (status ${res.status})`);
  const u = new URL(loc, 'http://placeholder');
  return `${u.pathname}${u.search}`;
}

/** Appends a query parameter to a path that may already carry a query string. */
export function withQuery(path: string, key: string, value: string): string {
  return `${path}${path.includes('?') ? '&' : '?'}${encodeURIComponent(key)}=${encodeURIComponent(value)}`;
}

/** Size from an upload `Range: 0-<last>` header (`0-0` is read as 0 bytes: callers use chunks > 1 byte). */
export function rangeSize(res: HttpResponse): number {
  const r = res.headers.range;
  const m = typeof r === 'string' ? /^(?:bytes=)?0-(\d+)$/.exec(r) : null;
  if (!m) throw new Error(`bad Range header ${String(r)} (status ${res.status})`);
  const last = Number(m[1]);
  return last === 0 ? 0 : last + 1;
}

function expectStatus(res: HttpResponse, status: number, what: string): void {
  if (res.status !== status) {
    throw new Error(
      `${what}: expected ${status}, got ${res.status} ${res.body.toString('utf8').slice(0, 500)}`,
    );
  }
}

/** `POST /v2/<repo>/blobs/uploads/?digest=` with the whole blob; returns the digest. */
export async function pushBlob(baseUrl: string, repo: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  const res = await request(baseUrl, `/v2/${repo}/blobs/uploads/?digest=${encodeURIComponent(digest)}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: data,
  });
  expectStatus(res, 201, `monolithic push of ${digest} to ${repo}`);
  return digest;
}

/** Opens an upload session; returns its Location path. */
export async function startUpload(baseUrl: string, repo: string): Promise<string> {
  const res = await request(baseUrl, `/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expectStatus(res, 202, `upload start in ${repo}`);
  return locationPath(res);
}

/** PATCH one chunk at `offset` with a Content-Range; returns the new Location path. */
export async function patchChunk(
  baseUrl: string,
  location: string,
  chunk: Buffer,
  offset: number,
): Promise<string> {
  const res = await request(baseUrl, location, {
    method: 'PATCH',
    headers: {
      'Content-Type': 'application/octet-stream',
      'Content-Range': `${offset}-${offset + chunk.length - 1}`,
    },
    body: chunk,
  });
  expectStatus(res, 202, `PATCH ${offset}+${chunk.length}`);
  return locationPath(res);
}

/** `PUT <location>?digest=` with no body; returns the response (201 expected). */
export async function completeUpload(
  baseUrl: string,
  location: string,
  digest: string,
): Promise<HttpResponse> {
  return request(baseUrl, withQuery(location, 'digest', digest), { method: 'PUT' });
}

/** Chunked upload: POST, PATCH per chunk (Content-Range), PUT ?digest=. Returns the digest. */
export async function pushBlobChunked(
  baseUrl: string,
  repo: string,
  data: Buffer,
  chunkSize: number,
): Promise<string> {
  const digest = sha256(data);
  let location = await startUpload(baseUrl, repo);
  for (let off = 0; off < data.length; off += chunkSize) {
    location = await patchChunk(baseUrl, location, data.subarray(off, off + chunkSize), off);
  }
  const res = await completeUpload(baseUrl, location, digest);
  expectStatus(res, 201, `completing chunked upload of ${digest}`);
  return digest;
}

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';

export interface BlobRef {
  readonly digest: string;
  readonly size: number;
}

/** The bytes of an OCI image manifest over `config` and `layers`. */
export function imageManifest(
  config: BlobRef,
  layers: readonly BlobRef[],
  annotations?: Record<string, string>,
): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: OCI_LAYER, digest: l.digest, size: l.size })),
      ...(annotations ? { annotations } : {}),
    }),
  );
}

/** `PUT /v2/<repo>/manifests/<reference>`; returns the digest the registry answered with. */
export async function pushManifest(
  baseUrl: string,
  repo: string,
  reference: string,
  bytes: Buffer,
  mediaType = OCI_MANIFEST,
): Promise<string> {
  const res = await request(baseUrl, `/v2/${repo}/manifests/${reference}`, {
    method: 'PUT',
    headers: { 'Content-Type': mediaType },
    body: bytes,
  });
  expectStatus(res, 201, `manifest PUT ${repo}:${reference}`);
  const digest = res.headers['docker-content-digest'];
  if (typeof digest !== 'string') throw new Error('manifest PUT answered without Docker-Content-Digest');
  return digest;
}

/** A body that yields `data` in `chunkSize` pieces with `delayMs` between them (a slow client). */
export async function* slowBody(data: Buffer, chunkSize: number, delayMs: number): AsyncGenerator<Buffer> {
  for (let off = 0; off < data.length; off += chunkSize) {
    if (off > 0 && delayMs > 0) await sleep(delayMs);
    yield data.subarray(off, off + chunkSize);
  }
}

/** mulberry32: a tiny seeded PRNG, so generated requests and contents are reproducible. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` pseudo-random bytes from `rand`. */
export function randomBytesFrom(rand: () => number, n: number): Buffer {
  const buf = Buffer.allocUnsafe(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) buf.writeUInt32LE(Math.floor(rand() * 4294967296), i);
  for (; i < n; i++) buf[i] = Math.floor(rand() * 256);
  return buf;
}
