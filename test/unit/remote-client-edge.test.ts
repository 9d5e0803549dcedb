/**
 * The HTTP registry client against small in-process servers, for what a real registry cannot be made to do:
 * a token realm and a blob redirect on other origins (who receives credentials), token caching, bodies cut
 * short or going silent, Retry-After, fallback URLs, manifests that do not match their digest, Link pagination,
 * upload Locations.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import { digestOf, type Digest } from '../../src/oci/digest.ts';
import type { Logger } from '../../src/logger.ts';
import { MediaType } from '../../src/oci/media-types.ts';
import { parseChallenges } from '../../src/remote/auth.ts';
import {
  createRegistryClient,
  parseRetryAfter,
  type HttpRegistryClient,
} from '../../src/remote/http-registry-client.ts';
import { RemoteError, type RemoteEndpoint } from '../../src/remote/registry-client.ts';
import { createCertificateAuthority, issueServerCertificate } from '../../src/tls/certificates.ts';
import { freePort } from '../helpers/distribution.ts';

interface Seen {
  readonly method: string;
  readonly url: string;
  readonly authorization: string | undefined;
}

interface Stub {
  readonly url: string;
  readonly seen: Seen[];
  close(): Promise<void>;
}

const stubs: Stub[] = [];
const clients: HttpRegistryClient[] = [];

/** A loopback HTTP server running `handler`, recording every request. */
async function stub(
  handler: (req: IncomingMessage, res: ServerResponse) => void | Promise<void>,
): Promise<Stub> {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
    void Promise.resolve(handler(req, res)).catch((err: unknown) => {
      res.statusCode = 500;
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const s: Stub = {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  stubs.push(s);
  return s;
}

function client(endpoint: RemoteEndpoint, logger?: Logger): HttpRegistryClient {
  const c = createRegistryClient(endpoint, logger ? { logger } : {});
  clients.push(c);
  return c;
}

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of stubs.splice(0)) await s.close();
});

async function collect(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function caught(promise: Promise<unknown>): Promise<RemoteError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof RemoteError, `expected a RemoteError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a RemoteError');
}

function json(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length, ...headers });
  res.end(body);
}

const CREDS = { username: 'mirror', password: 'mirror-secret' };
const BASIC = `Basic ${Buffer.from('mirror:mirror-secret').toString('base64')}`;

/** A token service counting its requests; answers `token` (or `access_token`) valid for `expiresIn` s. */
async function tokenService(
  options: { field?: 'token' | 'access_token'; expiresIn?: number; delayMs?: number } = {},
) {
  let issued = 0;
  const realm = await stub(async (req, res) => {
    if (options.delayMs) await new Promise((resolve) => setTimeout(resolve, options.delayMs));
    issued++;
    json(res, 200, {
      [options.field ?? 'token']: `tok-${issued}`,
      ...(options.expiresIn !== undefined ? { expires_in: options.expiresIn } : {}),
    });
  });
  return { realm, issuedCount: () => issued };
}

/** A registry that wants `Bearer tok-*` from `realm` and serves `blob` under any blob path. */
async function bearerRegistry(
  realmUrl: string,
  blob: Buffer,
  extra?: (req: IncomingMessage, res: ServerResponse) => boolean,
) {
  return stub((req, res) => {
    if (!req.headers.authorization?.startsWith('Bearer tok-')) {
      const scope = req.url?.startsWith('/v2/') && req.url !== '/v2/' ? ',scope="repository:r:pull"' : '';
      json(
        res,
        401,
        { errors: [{ code: 'UNAUTHORIZED' }] },
        {
          'www-authenticate': `Bearer realm="${realmUrl}/token",service="stub"${scope}`,
        },
      );
      return;
    }
    if (extra?.(req, res)) return;
    res.writeHead(200, { 'content-length': blob.length, 'content-type': 'application/octet-stream' });
    res.end(req.method === 'HEAD' ? undefined : blob);
  });
}

const BLOB = randomBytes(50_000);
const BLOB_DIGEST = digestOf(BLOB);

describe('remote client: credentials', () => {
  it('sends Basic credentials only to the token realm the remote named, and nothing to a redirect target', async () => {
    const { realm } = await tokenService();
    const cdn = await stub((_req, res) => {
      res.writeHead(200, { 'content-length': BLOB.length });
      res.end(BLOB);
    });
    const registry = await bearerRegistry(realm.url, BLOB, (req, res) => {
      if (req.method === 'GET' && req.url?.includes('/blobs/')) {
        res.writeHead(307, { location: `${cdn.url}/bucket/blob?signature=abc` });
        res.end();
        return true;
      }
      return false;
    });
    const logged: string[] = [];
    const record = (fields: object, message?: string): void => {
      logged.push(JSON.stringify({ fields, message }));
    };
    const logger: Logger = { debug: record, info: record, warn: record, error: record };
    const c = client({ urls: [registry.url], credentials: CREDS }, logger);
    const blob = await c.getBlob('r', BLOB_DIGEST);
    assert.ok(blob);
    assert.ok((await collect(blob.body)).equals(BLOB));

    assert.equal(realm.seen.length, 1);
    assert.equal(realm.seen[0]?.authorization, BASIC);
    const query = new URL(realm.seen[0]?.url ?? '', realm.url).searchParams;
    assert.equal(query.get('service'), 'stub');
    assert.deepEqual(query.getAll('scope'), ['repository:r:pull']);
    // The registry saw no credentials, then the token; the redirect target saw nothing.
    assert.deepEqual(
      registry.seen.map((s) => s.authorization),
      [undefined, 'Bearer tok-1'],
    );
    assert.equal(cdn.seen.length, 1);
    assert.equal(cdn.seen[0]?.authorization, undefined);
    assert.equal(cdn.seen[0]?.url, '/bucket/blob?signature=abc');
    // The client logged what it did (a token fetch, a redirect) but no secret.
    assert.ok(logged.length >= 2, logged.join('\n'));
    for (const secret of [CREDS.password, BASIC.slice(6), 'tok-1']) {
      assert.ok(!logged.some((line) => line.includes(secret)), `${secret} logged`);
    }
  });

  it('does not answer a challenge of a redirect target (no credentials to the realm it names)', async () => {
    const evilRealm = await stub((_req, res) => json(res, 200, { token: 'stolen' }));
    const cdn = await stub((_req, res) =>
      json(res, 401, {}, { 'www-authenticate': `Bearer realm="${evilRealm.url}/token",service="cdn"` }),
    );
    const registry = await stub((req, res) => {
      if (req.headers.authorization !== BASIC) {
        json(res, 401, {}, { 'www-authenticate': 'Basic realm="stub"' });
        return;
      }
      res.writeHead(302, { location: `${cdn.url}/blob` });
      res.end();
    });
    const c = client({ urls: [registry.url], credentials: CREDS });
    const err = await caught(c.getBlob('r', BLOB_DIGEST));
    assert.equal(err.details.status, 401);
    assert.equal(evilRealm.seen.length, 0);
    assert.ok(cdn.seen.every((s) => s.authorization === undefined));
  });

  it('asks the token service anonymously without credentials, and reads access_token', async () => {
    const { realm } = await tokenService({ field: 'access_token' });
    const registry = await bearerRegistry(realm.url, BLOB);
    const c = client({ urls: [registry.url] });
    assert.equal(await c.headBlob('r', BLOB_DIGEST), BLOB.length);
    assert.equal(realm.seen[0]?.authorization, undefined);
    assert.equal(registry.seen.at(-1)?.authorization, 'Bearer tok-1');
  });

  it('answers a Basic challenge with the credentials, then sends them up front', async () => {
    const registry = await stub((req, res) => {
      if (req.headers.authorization !== BASIC) {
        json(res, 401, { errors: [{ code: 'UNAUTHORIZED' }] }, { 'www-authenticate': 'Basic realm="stub"' });
        return;
      }
      res.writeHead(200, { 'content-length': BLOB.length });
      res.end(req.method === 'HEAD' ? undefined : BLOB);
    });
    const c = client({ urls: [registry.url], credentials: CREDS });
    for (let i = 0; i < 3; i++) assert.equal(await c.headBlob('r', BLOB_DIGEST), BLOB.length);
    assert.deepEqual(
      registry.seen.map((s) => s.authorization),
      [undefined, BASIC, BASIC, BASIC],
    );
    const wrong = client({ urls: [registry.url], credentials: { ...CREDS, password: 'bad' } });
    const err = await caught(wrong.headBlob('r', BLOB_DIGEST));
    assert.equal(err.details.status, 401);
  });

  it('caches a token for its lifetime and shares one fetch between concurrent calls', async () => {
    const { realm, issuedCount } = await tokenService({ expiresIn: 300, delayMs: 50 });
    const registry = await bearerRegistry(realm.url, BLOB);
    const c = client({ urls: [registry.url], credentials: CREDS });
    // A cold client: every call takes a 401, but they all wait for the one token fetch.
    const sizes = await Promise.all(Array.from({ length: 8 }, () => c.headBlob('r', BLOB_DIGEST)));
    assert.deepEqual(sizes, Array(8).fill(BLOB.length));
    assert.equal(issuedCount(), 1);
    // Warm: the token goes up front, no 401 and no token request.
    const before = registry.seen.length;
    for (let i = 0; i < 5; i++) await c.headBlob('r', BLOB_DIGEST);
    assert.equal(issuedCount(), 1);
    assert.equal(registry.seen.length, before + 5);
    assert.ok(registry.seen.slice(before).every((s) => s.authorization === 'Bearer tok-1'));
    // Another scope is another token, fetched up front since the client knows the realm now.
    await c.headBlob('other', BLOB_DIGEST);
    assert.equal(issuedCount(), 2);
    assert.deepEqual(new URL(realm.seen[1]?.url ?? '', realm.url).searchParams.getAll('scope'), [
      'repository:other:pull',
    ]);
    assert.equal(registry.seen.at(-1)?.authorization, 'Bearer tok-2');
  });

  it('fetches a new token once the cached one is about to expire', async () => {
    const { issuedCount, realm } = await tokenService({ expiresIn: 1 });
    const registry = await bearerRegistry(realm.url, BLOB);
    const c = client({ urls: [registry.url] });
    await c.headBlob('r', BLOB_DIGEST);
    await c.headBlob('r', BLOB_DIGEST);
    assert.equal(issuedCount(), 1);
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await c.headBlob('r', BLOB_DIGEST);
    assert.equal(issuedCount(), 2);
    assert.equal(registry.seen.at(-1)?.authorization, 'Bearer tok-2');
  });

  it('parses challenges with quoted and unquoted parameters and several schemes', () => {
    assert.deepEqual(
      parseChallenges(
        'Bearer realm="https://auth.example/token",service=registry.example,scope="repository:a/b:pull,push"',
      ),
      [
        {
          scheme: 'bearer',
          params: {
            realm: 'https://auth.example/token',
            service: 'registry.example',
            scope: 'repository:a/b:pull,push',
          },
        },
      ],
    );
    assert.deepEqual(
      parseChallenges('Basic realm="x y", Bearer realm="r"').map((c) => c.scheme),
      ['basic', 'bearer'],
    );
  });
});

describe('remote client: bodies and errors', () => {
  it('a blob body cut short errors the stream with a RemoteError instead of ending', async () => {
    const registry = await stub((_req, res) => {
      res.writeHead(200, { 'content-length': BLOB.length });
      res.write(BLOB.subarray(0, 20_000), () => setTimeout(() => res.socket?.destroy(), 20));
    });
    const c = client({ urls: [registry.url] });
    const blob = await c.getBlob('r', BLOB_DIGEST);
    assert.ok(blob);
    assert.equal(blob.size, BLOB.length);
    const err = await caught(collect(blob.body));
    assert.equal(err.kind, 'network');
  });

  it('a blob body that goes silent errors with a timeout', async () => {
    const registry = await stub((_req, res) => {
      res.writeHead(200, { 'content-length': BLOB.length });
      res.write(BLOB.subarray(0, 1000));
    });
    const c = client({ urls: [registry.url], timeoutMs: 300 });
    const blob = await c.getBlob('r', BLOB_DIGEST);
    assert.ok(blob);
    const started = Date.now();
    const err = await caught(collect(blob.body));
    assert.equal(err.kind, 'timeout');
    assert.ok(Date.now() - started >= 250);
  });

  it('a remote that never answers is a timeout', async () => {
    const registry = await stub(() => undefined);
    const c = client({ urls: [registry.url], timeoutMs: 300 });
    const err = await caught(c.headBlob('r', BLOB_DIGEST));
    assert.equal(err.kind, 'timeout');
  });

  it('maps a 429 with its OCI code and Retry-After (seconds or an HTTP date)', async () => {
    let date = false;
    const registry = await stub((_req, res) => {
      const retryAfter = date ? new Date(Date.now() + 120_000).toUTCString() : '7';
      json(
        res,
        429,
        { errors: [{ code: 'TOOMANYREQUESTS', message: 'slow down' }] },
        { 'retry-after': retryAfter },
      );
    });
    const c = client({ urls: [registry.url] });
    const err = await caught(c.getManifest('r', 'v1'));
    assert.equal(err.kind, 'http');
    assert.equal(err.details.status, 429);
    assert.equal(err.details.code, 'TOOMANYREQUESTS');
    assert.equal(err.details.retryAfter, 7);
    assert.equal(err.transient, true);
    date = true;
    const err2 = await caught(c.getManifest('r', 'v1'));
    assert.ok(
      err2.details.retryAfter !== undefined &&
        err2.details.retryAfter >= 118 &&
        err2.details.retryAfter <= 121,
    );
    assert.equal(parseRetryAfter('soon'), undefined);
  });

  it('refuses a manifest whose bytes do not hash to the digest asked for', async () => {
    const real = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest }));
    const registry = await stub((_req, res) => {
      res.writeHead(200, { 'content-type': MediaType.OciManifest, 'content-length': real.length });
      res.end(real);
    });
    const c = client({ urls: [registry.url] });
    const asked = digestOf(Buffer.from('something else'));
    const err = await caught(c.getManifest('r', asked));
    assert.equal(err.kind, 'protocol');
    assert.equal(registry.seen[0]?.url, `/v2/r/manifests/${asked}`);
    // By tag the bytes are whatever the remote has: their digest is computed (sha512 asked by digest too).
    const byTag = await c.getManifest('r', 'v1');
    assert.equal(byTag?.digest, digestOf(real));
    assert.equal(byTag?.mediaType, MediaType.OciManifest);
    const sha512 = `sha512:${createHash('sha512').update(real).digest('hex')}` as Digest;
    assert.equal((await c.getManifest('r', sha512))?.digest, sha512);
  });

  it('follows Link pagination of tag lists, relative and absolute', async () => {
    const registry = await stub((req, res) => {
      const url = new URL(req.url ?? '', 'http://x');
      const last = url.searchParams.get('last');
      if (last === null) {
        json(res, 200, { name: 'r', tags: ['a', 'b'] }, { link: '</v2/r/tags/list?last=b&n=2>; rel="next"' });
      } else if (last === 'b') {
        const host = req.headers.host ?? '';
        json(
          res,
          200,
          { name: 'r', tags: ['c', 'd'] },
          { link: `<http://${host}/v2/r/tags/list?last=d&n=2>; rel="next"` },
        );
      } else {
        json(res, 200, { name: 'r', tags: ['e'] });
      }
    });
    const c = client({ urls: [registry.url] });
    const tags: string[] = [];
    for await (const tag of c.listTags('r', { pageSize: 2 })) tags.push(tag);
    assert.deepEqual(tags, ['a', 'b', 'c', 'd', 'e']);
    assert.deepEqual(
      registry.seen.map((s) => s.url),
      ['/v2/r/tags/list?n=2', '/v2/r/tags/list?last=b&n=2', '/v2/r/tags/list?last=d&n=2'],
    );
  });

  it('uploads with POST then a streamed PUT to the Location, keeping its query', async () => {
    let received: Buffer | null = null;
    let putUrl = '';
    let contentLength: string | undefined;
    const registry = await stub(async (req, res) => {
      if (req.method === 'POST') {
        res.writeHead(202, { location: '/v2/r/blobs/uploads/abc?_state=xyz', 'content-length': 0 });
        res.end();
        return;
      }
      putUrl = req.url ?? '';
      contentLength = req.headers['content-length'];
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      received = Buffer.concat(chunks);
      res.writeHead(201, { 'content-length': 0 });
      res.end();
    });
    const c = client({ urls: [registry.url] });
    const chunks = Array.from({ length: 4 }, (_, i) => BLOB.subarray(i * 12_500, (i + 1) * 12_500));
    await c.putBlob('r', BLOB_DIGEST, BLOB.length, Readable.from(chunks));
    assert.ok(received !== null && (received as Buffer).equals(BLOB));
    assert.equal(contentLength, String(BLOB.length));
    const put = new URL(putUrl, 'http://x');
    assert.equal(put.pathname, '/v2/r/blobs/uploads/abc');
    assert.equal(put.searchParams.get('_state'), 'xyz');
    assert.equal(put.searchParams.get('digest'), BLOB_DIGEST);
    // A body shorter than announced fails instead of committing a short blob.
    await assert.rejects(c.putBlob('r', BLOB_DIGEST, BLOB.length + 10, Readable.from([BLOB])), /ended after/);
    assert.equal(registry.seen.at(-1)?.method, 'DELETE'); // the upload was cancelled
  });

  it('a PUT refused before the body is read rejects with the error, and the body is destroyed', async () => {
    const registry = await stub((req, res) => {
      if (req.method === 'POST') {
        res.writeHead(202, { location: `/v2/r/blobs/uploads/u1`, 'content-length': 0 });
        res.end();
        return;
      }
      json(res, 400, { errors: [{ code: 'DIGEST_INVALID' }] }, { connection: 'close' });
    });
    const c = client({ urls: [registry.url] });
    // Much more than socket buffers hold, produced lazily: only an early answer ends this upload.
    const body = Readable.from(
      (function* () {
        for (let i = 0; i < 4096; i++) yield BLOB;
      })(),
    );
    const err = await caught(c.putBlob('r', BLOB_DIGEST, BLOB.length * 4096, body));
    assert.equal(err.details.code, 'DIGEST_INVALID');
    assert.equal(body.destroyed, true);
  });
});

describe('remote client: fallback URLs', () => {
  it('moves to the next URL when the first refuses connections', async () => {
    const refused = `http://127.0.0.1:${await freePort()}`;
    const registry = await stub((_req, res) => {
      res.writeHead(200, { 'content-length': BLOB.length });
      res.end();
    });
    const c = client({ urls: [refused, registry.url] });
    assert.equal(c.url, refused);
    assert.equal(await c.headBlob('r', BLOB_DIGEST), BLOB.length);
    const only = client({ urls: [refused] });
    const err = await caught(only.headBlob('r', BLOB_DIGEST));
    assert.equal(err.kind, 'network');
  });

  it('moves on after a 5xx and keeps using the healthy URL for a while', async () => {
    const failing = await stub((_req, res) => json(res, 503, { errors: [{ code: 'UNAVAILABLE' }] }));
    const healthy = await stub((_req, res) => {
      res.writeHead(200, { 'content-length': BLOB.length });
      res.end();
    });
    const c = client({ urls: [failing.url, healthy.url] });
    for (let i = 0; i < 3; i++) assert.equal(await c.headBlob('r', BLOB_DIGEST), BLOB.length);
    assert.equal(failing.seen.length, 1);
    assert.equal(healthy.seen.length, 3);
    // With every URL failing, the last failure is what the caller sees.
    const alone = client({ urls: [failing.url] });
    const err = await caught(alone.headBlob('r', BLOB_DIGEST));
    assert.equal(err.details.status, 503);
    assert.equal(err.transient, true);
  });
});

describe('remote client: TLS and aborts', () => {
  it('trusts a private CA from caBundle, refuses it without, and skips verification when insecure', async () => {
    const ca = await createCertificateAuthority();
    const leaf = await issueServerCertificate(ca, ['127.0.0.1']);
    const server = createHttpsServer({ cert: leaf.cert, key: leaf.key }, (_req, res) => {
      res.writeHead(200, { 'content-length': 0 });
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      await client({ urls: [url], caBundle: ca.cert }).ping();
      await client({ urls: [url], insecure: true }).ping();
      const err = await caught(client({ urls: [url] }).ping());
      assert.equal(err.kind, 'network');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('an abort rejects a pending call and destroys a body being read', async () => {
    const registry = await stub((req, res) => {
      if (req.url?.includes('slow')) return; // never answers
      res.writeHead(200, { 'content-length': BLOB.length });
      res.write(BLOB.subarray(0, 1000));
    });
    const c = client({ urls: [registry.url] });
    const pending = new AbortController();
    const call = c.headManifest('slow', 'v1', undefined, { signal: pending.signal });
    setTimeout(() => pending.abort(), 50);
    await assert.rejects(call, { name: 'AbortError' });

    const reading = new AbortController();
    const blob = await c.getBlob('r', BLOB_DIGEST, { signal: reading.signal });
    assert.ok(blob);
    setTimeout(() => reading.abort(), 50);
    await assert.rejects(collect(blob.body), { name: 'AbortError' });
  });
});
