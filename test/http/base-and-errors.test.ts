/**
 * The API root, the version header on every response, the error envelope, name and digest validation, unknown
 * methods and unknown paths.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { assertApiVersion, assertError, createTestRegistry, type TestRegistry } from '../helpers/app.ts';

const GOOD_DIGEST = `sha256:${'a'.repeat(64)}`;

describe('base endpoint and errors', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry();
  });
  after(async () => {
    await reg.dispose();
  });

  it('GET /v2/ answers 200 {} as JSON with the API version header', async () => {
    const res = await reg.inject({ method: 'GET', url: '/v2/' });
    assert.equal(res.statusCode, 200);
    assert.deepEqual(JSON.parse(res.body), {});
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assertApiVersion(res);
  });

  it('GET /v2 (no trailing slash) and HEAD /v2/ answer 200 too', async () => {
    const noSlash = await reg.inject({ method: 'GET', url: '/v2' });
    assert.equal(noSlash.statusCode, 200);
    assertApiVersion(noSlash);
    const head = await reg.inject({ method: 'HEAD', url: '/v2/' });
    assert.equal(head.statusCode, 200);
    assert.equal(head.body, '');
    assertApiVersion(head);
  });

  it('error responses carry the API version header and the JSON envelope', async () => {
    const res = await reg.inject({ method: 'GET', url: `/v2/nothing/here/blobs/${GOOD_DIGEST}` });
    assertError(res, 404, 'BLOB_UNKNOWN');
    const body = JSON.parse(res.body) as { errors: { code: string; message: string; detail?: unknown }[] };
    assert.equal(body.errors.length, 1);
    assert.ok((body.errors[0]?.message ?? '').length > 0);
  });

  it('HEAD errors have the status and headers but no body', async () => {
    const res = await reg.inject({ method: 'HEAD', url: `/v2/nothing/blobs/${GOOD_DIGEST}` });
    assertError(res, 404, 'BLOB_UNKNOWN');
  });

  describe('repository names', () => {
    const bad: [string, string][] = [
      ['uppercase', 'Library/app'],
      ['dot-dot component', 'a/../b'],
      ['percent-encoded dot-dot', 'a/%2e%2e/b'],
      ['leading slash (empty component)', '/a'],
      ['double slash', 'a//b'],
      ['trailing dash', 'abc-'],
      ['leading dash', '-abc'],
      ['trailing dot', 'abc.'],
      ['trailing slash component', 'a/b/'],
      ['256 characters', 'a'.repeat(256)],
      ['256 characters across components', `${'a'.repeat(127)}/${'b'.repeat(128)}`],
      ['a space', 'a%20b'],
      ['malformed percent escape', 'a%zzb'],
      ['non-ascii', 'caf%C3%A9'],
    ];
    for (const [label, name] of bad) {
      it(`rejects a name with ${label} with 400 NAME_INVALID on every endpoint`, async () => {
        const urls: [string, string][] = [
          ['GET', `/v2/${name}/manifests/latest`],
          ['HEAD', `/v2/${name}/manifests/latest`],
          ['PUT', `/v2/${name}/manifests/latest`],
          ['GET', `/v2/${name}/blobs/${GOOD_DIGEST}`],
          ['POST', `/v2/${name}/blobs/uploads/`],
          ['GET', `/v2/${name}/tags/list`],
          ['GET', `/v2/${name}/referrers/${GOOD_DIGEST}`],
        ];
        for (const [method, url] of urls) {
          const res = await reg.injectRawPath(method as 'GET', url);
          assertError(res, 400, 'NAME_INVALID');
        }
      });
    }

    it('accepts names with separators and many components', async () => {
      for (const name of [
        'a/b/c',
        'a.b/c_d/e__f/g-h/i--j',
        'x0/1y',
        `${'a'.repeat(127)}/${'b'.repeat(127)}`,
      ]) {
        const res = await reg.inject({ method: 'GET', url: `/v2/${name}/manifests/latest` });
        assertError(res, 404, 'MANIFEST_UNKNOWN');
      }
    });
  });

  describe('digests', () => {
    const bad: [string, string][] = [
      ['too short', 'sha256:abc'],
      ['an unsupported algorithm', `md5:${'a'.repeat(32)}`],
      ['uppercase hex', `sha256:${'A'.repeat(64)}`],
      ['a sha512 of sha256 length', `sha512:${'a'.repeat(64)}`],
      ['no algorithm', 'a'.repeat(64)],
      ['an empty hex', 'sha256:'],
      ['non-hex characters', `sha256:${'g'.repeat(64)}`],
    ];
    for (const [label, digest] of bad) {
      it(`answers 400 DIGEST_INVALID for a digest with ${label}`, async () => {
        for (const [method, url] of [
          ['GET', `/v2/repo/blobs/${digest}`],
          ['HEAD', `/v2/repo/blobs/${digest}`],
          ['DELETE', `/v2/repo/blobs/${digest}`],
          ['GET', `/v2/repo/referrers/${digest}`],
          ['POST', `/v2/repo/blobs/uploads/?digest=${digest}`],
        ] as const) {
          const res = await reg.inject({ method, url, ...(method === 'POST' ? { payload: 'abc' } : {}) });
          assertError(res, 400, 'DIGEST_INVALID');
        }
      });
    }

    it('answers 400 DIGEST_INVALID for a malformed digest used as a manifest reference', async () => {
      for (const digest of ['sha256:abc', `md5:${'a'.repeat(32)}`, `sha256:${'A'.repeat(64)}`]) {
        assertError(
          await reg.inject({ method: 'GET', url: `/v2/repo/manifests/${digest}` }),
          400,
          'DIGEST_INVALID',
        );
        assertError(
          await reg.inject({ method: 'DELETE', url: `/v2/repo/manifests/${digest}` }),
          400,
          'DIGEST_INVALID',
        );
      }
    });
  });

  describe('unknown methods and paths', () => {
    const cases: [string, string][] = [
      ['POST', '/v2/'],
      ['DELETE', '/v2/'],
      ['POST', '/v2/repo/manifests/latest'],
      ['PATCH', '/v2/repo/manifests/latest'],
      ['PUT', `/v2/repo/blobs/${GOOD_DIGEST}`],
      ['POST', `/v2/repo/blobs/${GOOD_DIGEST}`],
      ['PATCH', `/v2/repo/blobs/${GOOD_DIGEST}`],
      ['GET', '/v2/repo/blobs/uploads/'],
      ['PUT', '/v2/repo/blobs/uploads/'],
      ['DELETE', '/v2/repo/blobs/uploads/'],
      ['POST', '/v2/repo/blobs/uploads/6d2a4e0e-3c5b-4c51-9d8c-5b8a8f0e9a11'],
      ['DELETE', '/v2/repo/tags/list'],
      ['PUT', '/v2/repo/tags/list'],
      ['POST', '/v2/_catalog'],
      ['DELETE', `/v2/repo/referrers/${GOOD_DIGEST}`],
      ['OPTIONS', '/v2/'],
      ['OPTIONS', '/v2/repo/manifests/latest'],
      ['OPTIONS', '/v2/repo/blobs/uploads/'],
      ['TRACE', `/v2/repo/blobs/${GOOD_DIGEST}`],
      ['TRACE', '/v2/_catalog'],
    ];
    for (const [method, url] of cases) {
      it(`${method} ${url.replace(/[a-f0-9]{64}|[0-9a-f-]{36}/, '…')} answers 405 UNSUPPORTED`, async () => {
        const res = await reg.inject({ method: method as 'GET', url });
        assertError(res, 405, 'UNSUPPORTED');
        assert.ok(res.headers.allow, 'an Allow header names the supported methods');
      });
    }

    it('unknown /v2 paths answer 404 with the envelope', async () => {
      for (const url of [
        '/v2/repo',
        '/v2/repo/nothing',
        '/v2/repo/manifests/',
        '/v2/repo/tags',
        '/v2/_catalog/x',
      ]) {
        const res = await reg.inject({ method: 'GET', url });
        assertError(res, 404, 'UNSUPPORTED');
        assertApiVersion(res);
      }
    });

    it('paths outside the API answer 404 with the envelope and the version header', async () => {
      for (const url of ['/', '/v3/', '/favicon.ico', '/v1/nothing']) {
        const res = await reg.inject({ method: 'GET', url });
        assertError(res, 404, 'UNSUPPORTED');
        assertApiVersion(res);
      }
    });
  });
});

describe('unexpected failures', () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await createTestRegistry();
  });
  after(async () => {
    await reg.dispose();
  });

  it('answer 500 UNKNOWN with the envelope and the version header, without internal details', async () => {
    await reg.services.metadata.close();
    const res = await reg.inject({ method: 'GET', url: '/v2/repo/tags/list' });
    assertError(res, 500, 'UNKNOWN');
    const body = JSON.parse(res.body) as { errors: { message: string; detail?: unknown }[] };
    assert.equal(body.errors[0]?.message, 'internal server error');
    assert.equal(body.errors[0]?.detail, undefined);
    const head = await reg.inject({ method: 'HEAD', url: `/v2/repo/blobs/${GOOD_DIGEST}` });
    assertError(head, 500, 'UNKNOWN');
  });
});
