/**
 * `Location` URLs: the request's Host, `X-Forwarded-Proto`/`X-Forwarded-Host`, a configured `publicUrl`,
 * relative URLs, and untrusted forwarding headers.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestRegistry, randomBlob, sha256, type TestRegistry } from '../helpers/app.ts';

/** Every kind of response that carries a Location, for `repo`, with `headers` on each request. */
async function locations(
  reg: TestRegistry,
  repo: string,
  headers: Record<string, string>,
): Promise<string[]> {
  const out: string[] = [];
  const bytes = randomBlob(32);
  const digest = sha256(bytes);
  const post = await reg.inject({ method: 'POST', url: `/v2/${repo}/blobs/uploads/`, headers });
  assert.equal(post.statusCode, 202);
  out.push(String(post.headers.location));
  const uploadPath = new URL(String(post.headers.location), 'http://x').pathname;
  const patch = await reg.inject({ method: 'PATCH', url: uploadPath, headers, payload: bytes });
  assert.equal(patch.statusCode, 202);
  out.push(String(patch.headers.location));
  const status = await reg.inject({ method: 'GET', url: uploadPath, headers });
  assert.equal(status.statusCode, 204);
  out.push(String(status.headers.location));
  const put = await reg.inject({ method: 'PUT', url: `${uploadPath}?digest=${digest}`, headers });
  assert.equal(put.statusCode, 201);
  out.push(String(put.headers.location));
  const mono = randomBlob(16);
  const direct = await reg.inject({
    method: 'POST',
    url: `/v2/${repo}/blobs/uploads/?digest=${sha256(mono)}`,
    headers,
    payload: mono,
  });
  assert.equal(direct.statusCode, 201);
  out.push(String(direct.headers.location));
  const mount = await reg.inject({
    method: 'POST',
    url: `/v2/${repo}/mounted/blobs/uploads/?mount=${digest}&from=${repo}`,
    headers,
  });
  assert.equal(mount.statusCode, 201);
  out.push(String(mount.headers.location));
  const image = await reg.pushImage(repo, null);
  const manifest = await reg.inject({
    method: 'PUT',
    url: `/v2/${repo}/manifests/latest`,
    headers: { ...headers, 'content-type': image.mediaType },
    payload: image.bytes,
  });
  assert.equal(manifest.statusCode, 201);
  out.push(String(manifest.headers.location));
  return out;
}

function assertAllUnder(urls: string[], base: string, repo: string): void {
  const [start, patched, status, blob, direct, mounted, manifest] = urls;
  const uploadRe = new RegExp(`^${base.replace(/[.]/g, '\\.')}/v2/${repo}/blobs/uploads/[0-9a-f-]{36}$`);
  assert.match(start as string, uploadRe);
  assert.equal(patched, start);
  assert.equal(status, start);
  assert.match(
    blob as string,
    new RegExp(`^${base.replace(/[.]/g, '\\.')}/v2/${repo}/blobs/sha256:[0-9a-f]{64}$`),
  );
  assert.match(
    direct as string,
    new RegExp(`^${base.replace(/[.]/g, '\\.')}/v2/${repo}/blobs/sha256:[0-9a-f]{64}$`),
  );
  assert.match(
    mounted as string,
    new RegExp(`^${base.replace(/[.]/g, '\\.')}/v2/${repo}/mounted/blobs/sha256:[0-9a-f]{64}$`),
  );
  assert.match(
    manifest as string,
    new RegExp(`^${base.replace(/[.]/g, '\\.')}/v2/${repo}/manifests/sha256:[0-9a-f]{64}$`),
  );
}

describe('Location URLs (default config)', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry();
  });
  after(async () => {
    await reg.dispose();
  });

  it('are absolute, built from the request Host', async () => {
    assertAllUnder(
      await locations(reg, 'u/host', { host: 'registry.local:5000' }),
      'http://registry.local:5000',
      'u/host',
    );
  });

  it('honour X-Forwarded-Proto and X-Forwarded-Host', async () => {
    const urls = await locations(reg, 'u/fwd', {
      host: 'internal:5000',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'reg.example.com',
    });
    assertAllUnder(urls, 'https://reg.example.com', 'u/fwd');
  });

  it('take the first value of a forwarded list, with its port', async () => {
    const urls = await locations(reg, 'u/list', {
      host: 'internal',
      'x-forwarded-proto': 'https, http',
      'x-forwarded-host': 'reg.example.com:8443, proxy.internal',
    });
    assertAllUnder(urls, 'https://reg.example.com:8443', 'u/list');
  });

  it('X-Forwarded-Proto alone keeps the Host', async () => {
    const urls = await locations(reg, 'u/proto', { host: 'reg.example.com', 'x-forwarded-proto': 'https' });
    assertAllUnder(urls, 'https://reg.example.com', 'u/proto');
  });

  it('ignore malformed forwarded values', async () => {
    const urls = await locations(reg, 'u/bad', {
      host: 'registry.local',
      'x-forwarded-proto': 'javascript',
      'x-forwarded-host': 'evil.example.com/path?x',
    });
    assertAllUnder(urls, 'http://registry.local', 'u/bad');
  });
});

describe('Location URLs with publicUrl', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry({ publicUrl: 'https://pub.example.com' });
  });
  after(async () => {
    await reg.dispose();
  });

  it('use the configured base whatever the request says', async () => {
    const urls = await locations(reg, 'p/app', {
      host: 'internal:5000',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'other.example.com',
    });
    assertAllUnder(urls, 'https://pub.example.com', 'p/app');
  });
});

describe('Location URLs with a publicUrl that has a trailing slash', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry({ publicUrl: 'https://pub.example.com:8443/' });
  });
  after(async () => {
    await reg.dispose();
  });

  it('do not double the slash', async () => {
    assertAllUnder(await locations(reg, 'p/slash', {}), 'https://pub.example.com:8443', 'p/slash');
  });
});

describe('Location URLs when forwarded headers are not trusted', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry({ 'http.trustForwardedHeaders': false });
  });
  after(async () => {
    await reg.dispose();
  });

  it('use the request Host and scheme', async () => {
    const urls = await locations(reg, 'n/app', {
      host: 'registry.local',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'reg.example.com',
    });
    assertAllUnder(urls, 'http://registry.local', 'n/app');
  });
});

describe('relative Location URLs', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry({ 'http.relativeUrls': true });
  });
  after(async () => {
    await reg.dispose();
  });

  it('are paths', async () => {
    const urls = await locations(reg, 'r/app', {
      host: 'registry.local',
      'x-forwarded-host': 'reg.example.com',
    });
    assertAllUnder(urls, '', 'r/app');
  });
});
